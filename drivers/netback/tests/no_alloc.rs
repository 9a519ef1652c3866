//! The datapath allocates nothing once a vif is connected: a counting
//! global allocator around bursts of `poll_tx` and `deliver_rx`, including
//! multi-slot frames, checksum completion, drops and ring-full answers.
//! (An integration test because the crate forbids `unsafe`, and a
//! `GlobalAlloc` impl needs it.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use hypervisor::{FakeHypervisor, XenbusState};
use netback::testkit::create_vif;
use netback::wire::NETTXF_CSUM_BLANK;
use netback::{Config, Netback, VifId};

struct Counting;
static COUNT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator, which
// upholds the GlobalAlloc contract; the counter is a relaxed atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
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

fn udp(len: usize) -> Vec<u8> {
    let mut f = vec![0x5a; len];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[18..22].copy_from_slice(&[0; 4]); // id, no fragmentation
    f[22] = 64;
    f[23] = 17;
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f
}

#[test]
fn datapath_allocates_nothing() {
    let id = VifId {
        frontend: 5,
        handle: 0,
    };
    let mut hv = FakeHypervisor::new(1);
    let mut nb = Netback::new(
        &mut hv,
        Config {
            max_frame_len: 9018,
            ..Config::DEFAULT
        },
    )
    .unwrap();
    let mut f = create_vif(&mut hv, 1, 5, 0, "00:16:3e:00:00:05", "10.0.0.5");
    nb.poll_control(&mut hv);
    f.connect(&mut hv);
    nb.poll_control(&mut hv);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    f.tx_flags = NETTXF_CSUM_BLANK;
    let rx_frames = [udp(60), udp(1514), udp(9018)];

    for round in 0..20 {
        // Frontend work (granting pages) allocates; it happens outside.
        f.send(&mut hv, &udp(1514), 512, 0);
        f.send(&mut hv, &udp(60), 4096, 0);
        f.send(&mut hv, &[0u8; 10], 4096, 0); // a runt: dropped
        f.post_rx(&mut hv, if round % 2 == 0 { 5 } else { 0 });
        let vif = nb.vif_mut(id).unwrap();
        let before = COUNT.load(Ordering::Relaxed);
        let mut seen = 0;
        vif.poll_tx(&mut hv, |frame| {
            frame[0] = 0xff; // the datapath may rewrite in place
            seen += 1;
        });
        for frame in &rx_frames {
            let _ = vif.deliver_rx(&mut hv, frame);
        }
        let after = COUNT.load(Ordering::Relaxed);
        assert_eq!(after - before, 0, "round {round}: the datapath allocated");
        assert_eq!(seen, 2, "{:?}", nb.vif(id).unwrap().counters());
        f.tx_responses();
        f.rx_frames();
    }
    let c = nb.vif(id).unwrap().counters();
    assert_eq!(c.tx_frames, 40);
    assert!(c.rx_frames > 0 && c.rx_drops_total() > 0, "{c:?}");
}
