//! cargo-fuzz target; the body is `aggdom_fuzz::virtio_net_rx` (tests/fuzz/src/virtio_net_rx.rs),
//! which `cargo test -p aggdom-fuzz` also runs on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aggdom_fuzz::virtio_net_rx::run(data));
