//! cargo-fuzz target; the body is `aggdom_fuzz::grant_split` (tests/fuzz/src/grant_split.rs),
//! which `cargo test -p aggdom-fuzz` also runs on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aggdom_fuzz::grant_split::run(data));
