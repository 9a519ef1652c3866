//! Fuzz the engine with operation sequences and raw frames: the input is a
//! mode byte then operations (guest/uplink/own frames, ticks, link changes,
//! binding, pin and exclusive changes; raw frame bytes inline). Every step
//! must keep the invariants the property tests check; any violation panics.
//! Run (needs `cargo install cargo-fuzz` and a nightly toolchain), in
//! drivers/aggregation: `cargo +nightly fuzz run ops_and_frames -- -max_total_time=180`.
//! On stable, `cargo check` in fuzz/ checks that it builds, and the same
//! entry runs on random bytes in `cargo test -p aggregation`.
#![no_main]

use std::sync::OnceLock;

use aggregation::testkit::Harness;
use aggregation::Mode;
use libfuzzer_sys::fuzz_target;

/// The fresh harness of each mode, built once: every input runs on a copy
/// (the same state `Harness::run_bytes` builds, for a memcpy).
static FRESH: OnceLock<[Harness; 2]> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&first, ops)) = data.split_first() else {
        return;
    };
    let fresh = FRESH.get_or_init(|| [Harness::new(Mode::Identity), Harness::new(Mode::Literal)]);
    let mut h = match Harness::mode_for(first) {
        Mode::Identity => fresh[0].clone(),
        Mode::Literal => fresh[1].clone(),
    };
    if let Err(why) = h.run_ops(ops) {
        panic!("invariant violated: {why}");
    }
});
