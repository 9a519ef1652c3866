//! Fuzz netback with a malicious frontend: the input is a sequence of the
//! frontend's moves (raw TX/RX ring slots with chosen grant refs, producer
//! indices, frames in odd slot sizes, receive buffers, xenstore state and
//! key changes), beside an honest guest. Netback must not panic, the
//! attacker must never receive the honest guest's bytes, and the honest
//! guest's vif must stay connected and clean.
//! Run: `cargo +nightly fuzz run frontend` in drivers/netback.
//! The same entry runs on random bytes in `cargo test -p netback`
//! (`random_frontend_moves_are_harmless`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = netback::testkit::fuzz::run(data) {
        panic!("invariant violated: {why}");
    }
});
