//! cargo-fuzz target; the body is `aggdom_fuzz::e1000_rx` (tests/fuzz/src/e1000_rx.rs),
//! which `cargo test -p aggdom-fuzz` also runs on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aggdom_fuzz::e1000_rx::run(data));
