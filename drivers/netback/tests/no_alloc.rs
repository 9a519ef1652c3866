//! The datapath allocates nothing once a vif is connected: a counting
//! global allocator around bursts of `poll_tx`, `deliver_rx` and RX
//! batches, including multi-slot frames, checksum completion, segments,
//! drops and ring-full answers.
//! (An integration test because the crate forbids `unsafe`, and a
//! `GlobalAlloc` impl needs it.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hypervisor::{FakeHypervisor, XenbusState};
use netback::segment::{Csum, Gso, GsoKind, Offload};
use netback::testkit::create_vif;
use netback::wire::NETTXF_CSUM_BLANK;
use netback::{Config, Netback, VifId};

struct Counting;

thread_local! {
    /// Allocations made by this thread. Per thread: the test harness's own
    /// threads allocate while a test runs (reporting another test's end),
    /// which a global count blamed on the datapath (4 in one round, once).
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

/// This thread's allocations so far.
fn count() -> usize {
    COUNT.with(Cell::get)
}

// SAFETY: forwards every call unchanged to the system allocator, which
// upholds the GlobalAlloc contract; the counter is a const-initialised
// thread-local Cell, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // try_with: a thread being torn down has no counter any more.
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
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

/// The count is global: tests run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
    let super_frame = tcp(10_000);
    let gso_off = Offload {
        gso: Some(Gso {
            size: 1448,
            kind: GsoKind::TcpV4,
        }),
        csum: Csum::Partial {
            start: 34,
            offset: 16,
        },
    };

    for round in 0..20 {
        // Frontend work (granting pages) allocates; it happens outside.
        f.send(&mut hv, &udp(1514), 512, 0);
        f.send(&mut hv, &udp(60), 4096, 0);
        f.send(&mut hv, &[0u8; 10], 4096, 0); // a runt: dropped
        f.post_rx(&mut hv, if round % 2 == 0 { 20 } else { 0 });
        let vif = nb.vif_mut(id).unwrap();
        let before = count();
        let mut seen = 0;
        vif.poll_tx(&mut hv, |frame| {
            frame[0] = 0xff; // the datapath may rewrite in place
            seen += 1;
        });
        for frame in &rx_frames {
            let _ = vif.deliver_rx(&mut hv, frame);
        }
        // A batch, with a super-frame cut up for this frontend.
        let mut batch = vif.rx_batch(&mut hv);
        for frame in &rx_frames {
            let _ = batch.push(frame, Offload::NONE);
        }
        let _ = batch.push(&super_frame, gso_off);
        batch.finish();
        let after = count();
        assert_eq!(after - before, 0, "round {round}: the datapath allocated");
        assert_eq!(seen, 2, "{:?}", nb.vif(id).unwrap().counters());
        f.tx_responses();
        f.rx_frames();
    }
    let c = nb.vif(id).unwrap().counters();
    assert_eq!(c.tx_frames, 40);
    assert!(c.rx_frames > 0 && c.rx_drops_total() > 0, "{c:?}");
    assert!(c.rx_segmented > 0 && c.rx_batches > 0, "{c:?}");
}

/// A TCP/IPv4 frame with `payload` bytes after a 20-byte TCP header.
fn tcp(payload: usize) -> Vec<u8> {
    let mut f = vec![0x5a; 54 + payload];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    f[18..22].copy_from_slice(&[0; 4]);
    f[22] = 64;
    f[23] = 6;
    f[46] = 0x50;
    f
}

#[test]
fn offloads_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use netback::segment::OffloadCaps;
    let id = VifId {
        frontend: 5,
        handle: 0,
    };
    let mut hv = FakeHypervisor::new(1);
    let mut nb = Netback::new(&mut hv, Config::ALL_FEATURES).unwrap();
    let mut f = create_vif(&mut hv, 1, 5, 0, "00:16:3e:00:00:05", "10.0.0.5");
    nb.poll_control(&mut hv);
    f.num_queues = 2;
    f.split = true;
    f.gso = true;
    f.connect(&mut hv);
    nb.poll_control(&mut hv);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    hv.xs_write_as(0, &format!("{}/rate", f.backend_path), "1000000,1000")
        .unwrap();
    nb.poll_control(&mut hv);
    let gso = Gso {
        size: 1448,
        kind: GsoKind::TcpV4,
    };
    let super_frame = tcp(30_000);
    let small = tcp(1000);
    let off = Offload {
        gso: Some(gso),
        csum: Csum::Partial {
            start: 34,
            offset: 16,
        },
    };
    let caps = OffloadCaps {
        csum: true,
        tso4: true,
        tso6: false,
    };
    for round in 0..10 {
        f.send_gso(&mut hv, &super_frame, 1448, 1);
        f.send_gso(&mut hv, &super_frame, 1448, 1);
        f.tx_flags = NETTXF_CSUM_BLANK;
        f.send(&mut hv, &tcp(1000), 4096, 0);
        f.tx_flags = 0;
        for q in 0..2 {
            f.use_queue(q);
            f.post_rx(&mut hv, 20);
        }
        f.use_queue(0);
        let vif = nb.vif_mut(id).unwrap();
        let before = count();
        let mut seen = 0;
        vif.poll_tx(&mut hv, |_| seen += 1);
        vif.poll_tx_offload(&mut hv, caps, |_, _| seen += 1);
        let _ = vif.deliver_rx_offload(&mut hv, &super_frame, off);
        let _ = vif.deliver_rx_offload(&mut hv, &small, Offload { gso: None, ..off });
        let after = count();
        assert_eq!(after - before, 0, "round {round}: the datapath allocated");
        assert!(seen > 21, "{seen}");
        hv.advance_clock(1_000_000);
        f.tx_responses();
        for q in 0..2 {
            f.use_queue(q);
            f.rx_frames();
        }
        f.use_queue(0);
    }
    let c = nb.vif(id).unwrap().counters();
    assert_eq!(c.tx_gso, 20);
    assert!(c.rx_gso > 0, "{c:?}");
}
