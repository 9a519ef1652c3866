//! cargo-fuzz target; the body is `aggdom_fuzz::metrics_http` (tests/fuzz/src/metrics_http.rs),
//! which `cargo test -p aggdom-fuzz` also runs on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aggdom_fuzz::metrics_http::run(data));
