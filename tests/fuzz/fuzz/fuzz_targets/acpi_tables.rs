//! cargo-fuzz target; the body is `aggdom_fuzz::acpi_tables` (tests/fuzz/src/acpi_tables.rs),
//! which `cargo test -p aggdom-fuzz` also runs on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aggdom_fuzz::acpi_tables::run(data));
