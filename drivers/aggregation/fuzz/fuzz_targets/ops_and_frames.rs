//! Fuzz the engine with operation sequences and raw frames: the input is a
//! mode byte then operations (guest/uplink/own frames, ticks, link changes,
//! binding, pin and exclusive changes; raw frame bytes inline). Every step
//! must keep the invariants the property tests check; any violation panics.
//! Run: `cargo +nightly fuzz run ops_and_frames` in drivers/aggregation.
//! The same entry runs on random bytes in `cargo test -p aggregation`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = aggregation::testkit::Harness::run_bytes(data) {
        panic!("invariant violated: {why}");
    }
});
