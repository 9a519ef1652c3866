//! Fuzz the engine with operation sequences and raw frames: the input is a
//! mode byte then operations (guest/uplink/own frames, ticks, link changes,
//! binding, pin and exclusive changes; raw frame bytes inline). Every step
//! must keep the invariants the property tests check; any violation panics.
//! Run (needs `cargo install cargo-fuzz` and a nightly toolchain), in
//! drivers/aggregation: `cargo +nightly fuzz run ops_and_frames -- -max_total_time=180`.
//! On stable, `cargo check` in fuzz/ checks that it builds, and the same
//! entry runs on random bytes in `cargo test -p aggregation`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = aggregation::testkit::Harness::run_bytes(data) {
        panic!("invariant violated: {why}");
    }
});
