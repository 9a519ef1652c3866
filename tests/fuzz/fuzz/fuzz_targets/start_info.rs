//! cargo-fuzz target; the body is `aggdom_fuzz::start_info` (tests/fuzz/src/start_info.rs),
//! which `cargo test -p aggdom-fuzz` also runs on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aggdom_fuzz::start_info::run(data));
