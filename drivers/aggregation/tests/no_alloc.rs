//! Decisions allocate nothing: a counting global allocator around a burst of
//! every per-frame and per-tick call. (An integration test because the
//! crate itself forbids `unsafe`, and a `GlobalAlloc` impl needs it.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use aggregation::testkit::{
    self, guest_ip, guest_mac, uplink_mac, Harness, OWN_IP, PEER_IP, PEER_MAC,
};
use aggregation::{GuestId, Mode, UplinkId};

struct Counting;

thread_local! {
    // Per thread, so the test runner's own threads are not counted.
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn count() -> usize {
    COUNT.with(|c| c.get())
}

// SAFETY: forwards every call unchanged to the system allocator, which
// upholds the GlobalAlloc contract; the counter is a const-initialised
// thread-local, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn decisions_allocate_nothing() {
    for mode in [Mode::Identity, Mode::Literal] {
        let mut h = Box::new(Harness::new(mode));
        let e = &mut h.engine;
        let mut tx = vec![0u8; 1500];
        let mut rx = vec![0u8; 1500];
        let mut own = vec![0u8; 60];
        let before = count();
        for i in 0..2000u64 {
            let g = (i % 6) as u8;
            testkit::ipv4(&mut tx, PEER_MAC, guest_mac(g), guest_ip(g), PEER_IP);
            e.guest_transmit(i, GuestId(g as u16), &mut tx);
            testkit::ipv4(
                &mut rx,
                uplink_mac((i % 4) as u8),
                PEER_MAC,
                PEER_IP,
                guest_ip(g),
            );
            e.uplink_receive(i, UplinkId((i % 4) as u8), &mut rx);
            testkit::ipv4(&mut own, PEER_MAC, uplink_mac(0), OWN_IP, PEER_IP);
            e.own_transmit(i, &mut own);
            e.tick(i * 10_000_000);
            e.link_changed(i, UplinkId(1), i % 3 != 0);
        }
        let after = count();
        assert_eq!(after - before, 0, "{mode:?}: decisions allocated");
        // The burst took the full paths, not only early drops: frames went
        // out and in, own frames were sent, ticks rebalanced or failed over.
        let sum = |f: &dyn Fn(&aggregation::GuestCounters) -> u64| {
            e.guests()
                .map(|g| f(e.guest_counters(g).unwrap()))
                .sum::<u64>()
        };
        assert!(sum(&|c| c.tx_frames) > 0, "{mode:?}: no guest frame sent");
        assert!(sum(&|c| c.rx_frames) > 0, "{mode:?}: no frame delivered");
        let c = e.counters();
        assert!(c.own_tx_frames > 0, "{mode:?}: {c:?}");
        assert!(
            c.rebalance_runs > 0 && c.failover_moves > 0,
            "{mode:?}: {c:?}"
        );
    }
}
