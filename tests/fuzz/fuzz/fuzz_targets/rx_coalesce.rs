//! cargo-fuzz target; the body is `netback::testkit::coalesce` (through
//! `aggdom_fuzz::rx_coalesce`), which `cargo test -p aggdom-fuzz` also runs
//! on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aggdom_fuzz::rx_coalesce(data));
