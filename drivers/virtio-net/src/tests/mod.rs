//! The driver against an emulated virtio-net device: bring-up, the three
//! queues, filters, link, counters and the ways a device can misbehave.
mod fake;

use fake::{FakeVirtioNet, TestHal, WatchedHal, FACTORY, OFFERED};
use nic::offload::{self, tcp_checksums_ok as checksums_ok, TcpFrame, TxOffload};
use nic::{MacAddr, NicControl, NicDatapath, NicError, Offloads};

use crate::ctrl;
use crate::features;
use crate::hdr::{self, VirtioNetHdr};
use crate::{VirtioNetError, VirtioNetNic, QUEUE_LEN};

type Driver = VirtioNetNic<TestHal, FakeVirtioNet>;

const PEER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
const NEW: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x07]);

fn up() -> (Driver, FakeVirtioNet) {
    let dev = FakeVirtioNet::new();
    let nic = Driver::new(dev.clone()).expect("bring-up");
    (nic, dev)
}

fn frame(dst: MacAddr, len: usize, tag: u8) -> Vec<u8> {
    let mut f = vec![tag; len];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&PEER.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

fn received(nic: &mut Driver) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    nic.receive(usize::MAX, &mut |f| out.push(f.to_vec()));
    out
}

fn bring_up_error(configure: impl FnOnce(&mut fake::Device)) -> Option<VirtioNetError> {
    let dev = FakeVirtioNet::new();
    dev.with(configure);
    Driver::new(dev).err()
}

#[test]
fn brings_up_with_promiscuous_off_and_an_empty_table() {
    let (mut nic, dev) = up();
    let d = dev.0.borrow();
    assert_eq!(d.accepted, features::negotiate(OFFERED).unwrap());
    assert_eq!(d.accepted & (features::CSUM | features::HOST_TSO4), 0);
    assert!(!d.promisc && !d.allmulti && d.table.is_empty());
    assert_eq!(d.mac, FACTORY);
    #[rustfmt::skip]
    let want = vec![
        (ctrl::CLASS_RX, ctrl::RX_PROMISC, vec![0]),
        (ctrl::CLASS_RX, ctrl::RX_ALLMULTI, vec![0]),
        (ctrl::CLASS_MAC, ctrl::MAC_TABLE_SET, vec![0; 8]),
        (ctrl::CLASS_MAC, ctrl::MAC_ADDR_SET, FACTORY.0.to_vec()),
    ];
    assert_eq!(d.ctrl_log, want);
    assert!(d.notifies[0] >= 1, "receive buffers announced");
    drop(d);
    assert_eq!(nic.permanent_mac(), FACTORY);
    assert_eq!(nic.mac(), FACTORY);
    assert!(!nic.promiscuous() && !nic.all_multicast());
    assert_eq!(nic.filter_slots(), 64);
    assert!(nic.link_up());
    assert_eq!(nic.counters(), nic::Counters::default());
}

#[test]
fn frames_flow_both_ways_without_the_virtio_header() {
    let (mut nic, dev) = up();
    let inbound = [
        frame(FACTORY, 60, 1),
        frame(MacAddr::BROADCAST, 42, 2),
        frame(FACTORY, 1518, 3),
    ];
    for f in &inbound {
        assert!(dev.deliver(f));
    }
    assert!(!dev.deliver(&frame(PEER, 60, 4)), "not our MAC: filtered");
    assert_eq!(received(&mut nic), inbound);

    let a = frame(PEER, 60, 5);
    let b = frame(PEER, 1514, 6);
    assert_eq!(nic.transmit(&[&a, &b]), 2);
    assert_eq!(dev.take_sent(), vec![a, b]);
    assert_eq!(dev.0.borrow().notifies[1], 1, "one doorbell per batch");

    let c = nic.counters();
    assert_eq!((c.rx_frames, c.rx_bytes), (3, 60 + 42 + 1518));
    assert_eq!((c.tx_frames, c.tx_bytes), (2, 60 + 1514));
    assert_eq!((c.rx_drops, c.tx_drops), (0, 0));
}

#[test]
fn the_receive_queue_wraps_and_gets_every_buffer_back() {
    let (mut nic, dev) = up();
    let mut total = 0;
    for round in 0..40u32 {
        let n = (round * 11 % QUEUE_LEN as u32 + 1) as usize;
        for k in 0..n {
            assert!(dev.deliver(&frame(FACTORY, 60 + k, round as u8)));
        }
        let got = received(&mut nic);
        assert_eq!(got.len(), n);
        assert!(got.iter().all(|f| f[20] == round as u8));
        total += n as u64;
    }
    assert_eq!(nic.counters().rx_frames, total);
    assert_eq!(dev.0.borrow().missed, 0);
}

#[test]
fn the_budget_bounds_a_receive_call() {
    let (mut nic, dev) = up();
    for k in 0..10 {
        dev.deliver(&frame(FACTORY, 60, k));
    }
    let mut tags = Vec::new();
    assert_eq!(nic.receive(4, &mut |f| tags.push(f[20])), 4);
    assert_eq!(nic.receive(100, &mut |f| tags.push(f[20])), 6);
    assert_eq!(tags, (0..10).collect::<Vec<u8>>());
}

#[test]
fn runt_oversized_and_impossible_lengths_are_counted_and_dropped() {
    let (mut nic, dev) = up();
    let good = frame(FACTORY, 60, 9);
    let mut bytes = vec![0u8; 12];
    bytes.extend_from_slice(&good);
    dev.deliver_raw(&bytes, 12 + 13); // runt
    dev.deliver_raw(&bytes, 5); // shorter than the header
    dev.deliver_raw(&bytes, 12 + 1519); // oversized
    dev.deliver_raw(&bytes, 4096); // more than the buffer
    dev.deliver_raw(&bytes, u32::MAX);
    dev.deliver(&good);
    assert_eq!(received(&mut nic), vec![good]);
    let c = nic.counters();
    assert_eq!((c.rx_frames, c.rx_drops), (1, 5));
}

#[test]
fn a_mac_write_moves_reception_to_the_new_address() {
    let (mut nic, dev) = up();
    nic.set_mac(NEW).unwrap();
    assert_eq!(dev.0.borrow().mac, NEW);
    assert!(!dev.deliver(&frame(FACTORY, 60, 1)));
    assert!(dev.deliver(&frame(NEW, 60, 2)));
    assert_eq!(received(&mut nic).len(), 1);
    assert_eq!((nic.mac(), nic.permanent_mac()), (NEW, FACTORY));
    assert_eq!(nic.counters().mac_writes, 1);
    assert_eq!(nic.set_mac(MacAddr::BROADCAST), Err(NicError::InvalidMac));
}

#[test]
fn the_mac_table_holds_up_to_64_extra_addresses() {
    let (mut nic, dev) = up();
    let macs: Vec<MacAddr> = (0..64).map(|i| MacAddr([2, 0, 0, 0, 1, i])).collect();
    nic.set_filter(&macs).unwrap();
    assert_eq!(dev.0.borrow().table, macs);
    for m in &macs {
        assert!(dev.deliver(&frame(*m, 60, 0)));
        received(&mut nic);
    }
    assert!(dev.deliver(&frame(FACTORY, 60, 0)), "the primary MAC stays");
    let mut over = macs.clone();
    over.push(NEW);
    assert_eq!(nic.set_filter(&over), Err(NicError::FilterFull));
    assert_eq!(
        nic.set_filter(&[MacAddr([1, 0, 0x5e, 0, 0, 1])]),
        Err(NicError::InvalidMac)
    );
    assert_eq!(nic.filter(), &macs[..]);
    nic.set_filter(&[]).unwrap();
    assert!(!dev.deliver(&frame(macs[0], 60, 0)));
    assert_eq!(nic.counters().filter_writes, 2);
}

#[test]
fn promiscuous_and_all_multicast_are_sent_only_on_change() {
    let (mut nic, dev) = up();
    let stranger = MacAddr([2, 0, 0, 0, 0, 0x33]);
    let mcast = MacAddr([1, 0, 0x5e, 0, 0, 9]);
    assert!(!dev.deliver(&frame(stranger, 60, 0)));
    assert!(!dev.deliver(&frame(mcast, 60, 0)));
    nic.set_all_multicast(true).unwrap();
    assert!(dev.deliver(&frame(mcast, 60, 0)));
    nic.set_promiscuous(true).unwrap();
    assert!(dev.deliver(&frame(stranger, 60, 0)));
    let before = dev.0.borrow().ctrl_log.len();
    nic.set_promiscuous(true).unwrap();
    nic.set_all_multicast(true).unwrap();
    assert_eq!(dev.0.borrow().ctrl_log.len(), before);
    nic.set_promiscuous(false).unwrap();
    assert!(!dev.deliver(&frame(stranger, 60, 0)));
    assert_eq!(nic.counters().filter_writes, 3);
}

#[test]
fn a_refused_command_changes_nothing() {
    let (mut nic, dev) = up();
    dev.with(|d| d.ctrl_ack = Some(ctrl::ACK_ERR));
    assert_eq!(nic.set_mac(NEW), Err(NicError::Rejected));
    assert_eq!(nic.set_promiscuous(true), Err(NicError::Rejected));
    assert_eq!(nic.set_filter(&[NEW]), Err(NicError::Rejected));
    assert_eq!(nic.mac(), FACTORY);
    assert!(!nic.promiscuous() && nic.filter().is_empty());
    assert_eq!(nic.counters().mac_writes, 0);
    dev.with(|d| d.ctrl_ack = Some(ctrl::ACK_OK));
    nic.set_mac(NEW).unwrap();
}

#[test]
fn an_unanswered_command_times_out_and_reset_recovers() {
    let (mut nic, dev) = up();
    dev.with(|d| d.ctrl_ack = None);
    assert_eq!(nic.set_mac(NEW), Err(NicError::Timeout));
    dev.with(|d| d.ctrl_ack = Some(ctrl::ACK_OK));
    assert_eq!(
        nic.set_mac(NEW),
        Err(NicError::Timeout),
        "no command after a lost one"
    );
    nic.reset().unwrap();
    nic.set_mac(NEW).unwrap();
    assert_eq!(dev.0.borrow().mac, NEW);
}

#[test]
fn link_transitions_are_read_from_config_space_and_counted() {
    let (mut nic, dev) = up();
    dev.with(|d| d.link = false);
    assert!(!nic.link_up());
    assert!(!nic.link_up());
    dev.with(|d| d.link = true);
    assert!(nic.link_up());
    assert_eq!(nic.counters().link_changes, 2);
}

#[test]
fn transmit_stops_when_the_queue_is_full_and_resumes_after_the_device_drains() {
    let (mut nic, dev) = up();
    dev.with(|d| d.tx_stalled = true);
    let f = frame(PEER, 60, 1);
    let frames: Vec<&[u8]> = vec![&f; QUEUE_LEN + 10];
    assert_eq!(nic.transmit(&frames), QUEUE_LEN);
    assert_eq!(nic.tx_space(), 0);
    assert_eq!(nic.queue_tx(60, &mut |_| {}), Err(NicError::TxFull));
    dev.with(|d| d.tx_stalled = false);
    dev.kick();
    assert_eq!(nic.tx_space(), QUEUE_LEN);
    assert_eq!(dev.take_sent().len(), QUEUE_LEN);
    assert_eq!(nic.counters().tx_frames, QUEUE_LEN as u64);
}

#[test]
fn frames_of_bad_length_are_taken_dropped_and_counted() {
    let (mut nic, dev) = up();
    let ok = frame(PEER, 60, 1);
    let runt = [0u8; 13];
    let giant = vec![0u8; 1519];
    assert_eq!(nic.transmit(&[&runt, &ok, &giant, &ok]), 4);
    assert_eq!(dev.take_sent(), vec![ok.clone(), ok]);
    assert_eq!(nic.counters().tx_drops, 2);
}

#[test]
fn a_device_returning_tokens_it_was_not_given_stops_the_datapath_not_the_domain() {
    let (mut nic, dev) = up();
    dev.push_bogus_used(0, 5000, 60);
    assert_eq!(received(&mut nic).len(), 0);
    // Stopped: a good frame the device delivers after the bogus token is
    // not taken either (until the reset).
    assert!(dev.deliver(&frame(FACTORY, 60, 0)));
    assert_eq!(received(&mut nic).len(), 0);
    assert_eq!(nic.transmit(&[&frame(PEER, 60, 0)]), 0);
    assert_eq!(nic.tx_space(), 0);
    nic.reset().unwrap();
    assert!(dev.deliver(&frame(FACTORY, 60, 0)));
    assert_eq!(received(&mut nic).len(), 1);
}

#[test]
fn bring_up_failures_are_errors_not_panics() {
    assert_eq!(
        bring_up_error(|d| d.offered = OFFERED & !features::VERSION_1),
        Some(VirtioNetError::MissingFeatures(features::VERSION_1))
    );
    assert_eq!(
        bring_up_error(|d| d.refuse_features = true),
        Some(VirtioNetError::FeaturesRejected)
    );
    assert_eq!(
        bring_up_error(|d| d.reset_sticks = true),
        Some(VirtioNetError::ResetTimeout)
    );
    assert_eq!(
        bring_up_error(|d| d.max_queue[0] = 64),
        Some(VirtioNetError::Queue)
    );
    assert_eq!(
        bring_up_error(|d| d.ctrl_ack = Some(ctrl::ACK_ERR)),
        Some(VirtioNetError::Control(NicError::Rejected))
    );
    for mac in [
        MacAddr([0x03, 0, 0, 0, 0, 1]),
        MacAddr::BROADCAST,
        MacAddr([0; 6]),
    ] {
        assert_eq!(
            bring_up_error(|d| d.factory = mac),
            Some(VirtioNetError::NoMac),
            "{mac}"
        );
    }
}

#[test]
fn without_a_control_queue_it_moves_frames_but_stays_promiscuous() {
    let dev = FakeVirtioNet::new();
    dev.with(|d| d.offered = OFFERED & !features::CTRL_VQ);
    let mut nic = Driver::new(dev.clone()).unwrap();
    assert!(nic.promiscuous());
    assert_eq!(nic.filter_slots(), 0);
    assert_eq!(nic.set_mac(NEW), Err(NicError::Unsupported));
    assert_eq!(nic.set_promiscuous(false), Err(NicError::Unsupported));
    assert_eq!(nic.set_filter(&[NEW]), Err(NicError::FilterFull));
    nic.set_filter(&[]).unwrap();
    assert!(dev.deliver(&frame(PEER, 60, 0)));
    assert_eq!(received(&mut nic).len(), 1);
}

#[test]
fn arm_interrupt_asks_for_receive_notifications_only_and_reads_the_isr() {
    let (mut nic, dev) = up();
    assert!(!dev.wants_interrupts(0), "poll mode until armed");
    assert!(nic.arm_interrupt());
    assert!(dev.wants_interrupts(0));
    assert!(!dev.wants_interrupts(1), "transmit completions stay quiet");
    assert_eq!(dev.0.borrow().isr_reads, 1);
    // Frames still flow, and a reset goes back to poll mode until re-armed.
    assert!(dev.deliver(&frame(FACTORY, 60, 1)));
    assert_eq!(received(&mut nic).len(), 1);
    // While frames flow the caller polls: no interrupt per frame.
    assert!(!dev.wants_interrupts(0));
    assert!(received(&mut nic).is_empty());
    assert!(nic.arm_interrupt());
    assert!(dev.wants_interrupts(0));
    nic.reset().unwrap();
    assert!(!dev.wants_interrupts(0));
    assert!(nic.arm_interrupt());
    assert!(dev.wants_interrupts(0));
}

/// A device offering checksum and segmentation offloads (QEMU with a tap).
fn up_with_offloads() -> (Driver, FakeVirtioNet) {
    let dev = FakeVirtioNet::new();
    dev.with(|d| d.offered |= features::CSUM | features::HOST_TSO4 | features::HOST_TSO6);
    let nic = Driver::new(dev.clone()).expect("bring-up");
    (nic, dev)
}

fn super_frame(len: usize, ipv6: bool, mss: u16) -> (Vec<u8>, TxOffload) {
    let mut f = vec![0; len];
    let req = offload::tcp_test_frame(&mut f, FACTORY, PEER, ipv6, mss).unwrap();
    (f, req)
}

#[test]
fn a_super_frame_goes_to_the_device_whole_with_its_gso_header() {
    let (mut nic, dev) = up_with_offloads();
    let all = Offloads {
        csum: true,
        tso4: true,
        tso6: true,
    };
    assert_eq!(nic.offloads(), all);
    for (len, ipv6, mss) in [(60_000usize, false, 1460u16), (9000, true, 1440)] {
        let (mut f, req) = super_frame(len, ipv6, mss);
        let t = TcpFrame::parse(&f).unwrap();
        // Whatever the caller left in the checksum field is replaced by the
        // pseudo-header sum over the whole TCP length.
        let want = offload::fold(t.pseudo_header_sum(&f, len - t.l4));
        f[t.l4 + 16..t.l4 + 18].copy_from_slice(&[0xde, 0xad]);
        nic.queue_tx_offload(&f, &req).unwrap();
        nic.flush_tx();
        let d = dev.0.borrow();
        let (sent, h) = (d.sent.last().unwrap().clone(), *d.sent_hdrs.last().unwrap());
        drop(d);
        assert_eq!(sent.len(), len);
        assert_eq!(sent[t.l4 + 16..t.l4 + 18], want.to_be_bytes());
        assert_eq!(sent[..t.l4 + 16], f[..t.l4 + 16]);
        assert_eq!(sent[t.l4 + 18..], f[t.l4 + 18..]);
        let gso_type = if ipv6 { hdr::GSO_TCPV6 } else { hdr::GSO_TCPV4 };
        let want_hdr = VirtioNetHdr {
            flags: hdr::F_NEEDS_CSUM,
            gso_type,
            hdr_len: t.hdr_len as u16,
            gso_size: mss,
            csum_start: t.l4 as u16,
            csum_offset: 16,
        };
        assert_eq!(h, want_hdr);
    }
    let c = nic.counters();
    let segs = (60_000 - 54usize).div_ceil(1460) + (9000 - 74usize).div_ceil(1440);
    assert_eq!(c.tx_frames, segs as u64);
    assert_eq!(nic.tx_space(), QUEUE_LEN, "every chain's buffers are back");
}

#[test]
fn a_partial_checksum_is_left_to_the_device() {
    let (mut nic, dev) = up_with_offloads();
    let (f, req) = super_frame(300, false, 1460);
    let csum_only = TxOffload { gso: None, ..req };
    nic.queue_tx_offload(&f, &csum_only).unwrap();
    nic.flush_tx();
    assert_eq!(dev.take_sent(), vec![f]);
    let h = dev.0.borrow().sent_hdrs[0];
    assert_eq!(
        (h.flags, h.gso_type, h.csum_start, h.csum_offset),
        (1, 0, 34, 16)
    );
}

#[test]
fn without_offloads_super_frames_are_segmented_in_software() {
    let (mut nic, dev) = up();
    assert_eq!(nic.offloads(), Offloads::NONE);
    let (f, req) = super_frame(10_000, false, 1460);
    nic.queue_tx_offload(&f, &req).unwrap();
    nic.flush_tx();
    let sent = dev.take_sent();
    assert_eq!(sent.len(), (10_000 - 54usize).div_ceil(1460));
    assert!(sent.iter().all(|s| checksums_ok(s) && s.len() <= 54 + 1460));
    let joined: Vec<u8> = sent.iter().flat_map(|s| s[54..].to_vec()).collect();
    assert_eq!(joined, f[54..]);
}

#[test]
fn a_super_frame_is_taken_whole_or_not_at_all() {
    let (mut nic, dev) = up_with_offloads();
    dev.with(|d| d.tx_stalled = true);
    let small = frame(PEER, 60, 1);
    assert_eq!(
        nic.transmit(&vec![&small[..]; QUEUE_LEN - 20]),
        QUEUE_LEN - 20
    );
    // 64 KiB needs 33 buffers; 20 are free.
    let (f, req) = super_frame(65_000, false, 1460);
    assert_eq!(nic.queue_tx_offload(&f, &req), Err(NicError::TxFull));
    assert_eq!(nic.tx_space(), 20);
    dev.with(|d| d.tx_stalled = false);
    dev.kick();
    dev.take_sent();
    nic.queue_tx_offload(&f, &req).unwrap();
    nic.flush_tx();
    assert_eq!(dev.take_sent(), vec![f.clone()]);
    assert_eq!(nic.tx_space(), QUEUE_LEN);
    let mut udp = f;
    udp[23] = 17;
    assert_eq!(nic.queue_tx_offload(&udp, &req), Err(NicError::Offload));
    assert_eq!(nic.tx_space(), QUEUE_LEN);
}

#[test]
fn frames_received_in_place_can_be_rewritten() {
    let (mut nic, dev) = up();
    for k in 0..5 {
        assert!(dev.deliver(&frame(FACTORY, 80, k)));
    }
    let mut seen = Vec::new();
    let n = nic.receive_in_place(3, &mut |f| {
        f[6..12].copy_from_slice(&NEW.0);
        seen.push(f.to_vec());
    });
    assert_eq!(n, Some(3));
    assert!(seen.iter().all(|f| f[6..12] == NEW.0 && f.len() == 80));
    assert_eq!(received(&mut nic).len(), 2);
    assert_eq!(nic.counters().rx_frames, 5);
}

#[test]
fn reset_restores_bring_up_state_and_keeps_counters() {
    let (mut nic, dev) = up();
    nic.set_mac(NEW).unwrap();
    nic.set_filter(&[PEER]).unwrap();
    nic.set_promiscuous(true).unwrap();
    dev.deliver(&frame(NEW, 60, 0));
    dev.deliver(&frame(NEW, 60, 0));
    nic.receive(1, &mut |_| {});
    nic.reset().unwrap();
    assert_eq!(nic.mac(), FACTORY);
    assert!(nic.filter().is_empty() && !nic.promiscuous());
    {
        let d = dev.0.borrow();
        assert!(!d.promisc && d.table.is_empty() && d.mac == FACTORY);
    }
    assert!(
        received(&mut nic).is_empty(),
        "frames from before the reset are gone"
    );
    assert!(dev.deliver(&frame(FACTORY, 60, 0)));
    assert_eq!(received(&mut nic).len(), 1);
    let c = nic.counters();
    assert_eq!((c.rx_frames, c.mac_writes), (2, 1));
}

#[test]
fn the_driver_can_live_in_a_static_mutex() {
    fn assert_send<T: Send>() {}
    assert_send::<VirtioNetNic<TestHal, virtio_drivers::transport::pci::PciTransport>>();
}

#[test]
fn dropping_the_driver_frees_its_memory_only_after_the_device_reset() {
    let dev = FakeVirtioNet::new();
    let nic = VirtioNetNic::<WatchedHal, FakeVirtioNet>::new(dev.clone()).expect("bring-up");
    // The reset takes a few status reads, as on a real device.
    dev.with(|d| d.reset_reads = 3);
    WatchedHal::watch(&dev);
    drop(nic);
    let (frees, live) = WatchedHal::frees();
    assert!(frees >= 4, "queues and buffers freed: {frees}");
    assert_eq!(live, 0, "{live} of {frees} frees before the device let go");
    assert!(dev.0.borrow().status.is_empty(), "the device is reset");
}

#[test]
fn a_device_that_never_resets_keeps_its_memory() {
    let dev = FakeVirtioNet::new();
    let nic = VirtioNetNic::<WatchedHal, FakeVirtioNet>::new(dev.clone()).expect("bring-up");
    dev.with(|d| d.reset_sticks = true);
    WatchedHal::watch(&dev);
    drop(nic);
    // It may still write into its queues and buffers: they are leaked, not
    // handed back to the heap.
    assert_eq!(WatchedHal::frees(), (0, 0));
}
