//! The driver against an emulated device: bring-up, both rings, filters,
//! link, counters and every way bring-up can fail.
mod fake;

use fake::{FakeE1000, NoMemHal, TestHal, FACTORY};
use nic::offload::{self, tcp_checksums_ok as checksums_ok, TcpFrame, TxOffload};
use nic::{MacAddr, NicControl, NicDatapath, NicError};

use crate::regs::{self, *};
use crate::{E1000Error, Registers, E1000, RX_RING_LEN, TX_RING_LEN};

type Driver = E1000<TestHal, FakeE1000>;

const PEER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
const NEW: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x07]);

fn up() -> (Driver, FakeE1000) {
    let dev = FakeE1000::new();
    let nic = Driver::with_registers(dev.clone()).expect("bring-up");
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

#[test]
fn brings_up_with_the_factory_mac_and_an_exact_filter() {
    let (mut nic, dev) = up();
    assert_eq!(nic.permanent_mac(), FACTORY);
    assert_eq!(nic.mac(), FACTORY);
    let mut want = vec![None; RAR_SLOTS];
    want[0] = Some(FACTORY);
    assert_eq!(dev.rar(), want);
    assert_eq!(dev.reg(RCTL), regs::rctl(false, false));
    assert_eq!(dev.reg(TCTL), regs::tctl());
    assert_eq!(dev.reg(RDT), u32::from(RX_RING_LEN - 1));
    assert_eq!(dev.reg(RDLEN), u32::from(RX_RING_LEN) * 16);
    assert_eq!(dev.reg(TDLEN), u32::from(TX_RING_LEN) * 16);
    assert_eq!(dev.reg(CTRL) & (CTRL_SLU | CTRL_RST), CTRL_SLU);
    assert_eq!(dev.0.borrow().phy[0], regs::phy_ctrl(false));
    assert!(nic.link_up());
    assert!(!nic.promiscuous() && !nic.all_multicast());
    assert!(nic.filter().is_empty());
    assert_eq!(nic.filter_slots(), 15);
    assert_eq!(nic.counters(), nic::Counters::default());
}

#[test]
fn reads_the_mac_from_the_eeprom_when_rar0_is_not_valid() {
    let dev = FakeE1000::new();
    dev.set_reg(RAH0, 0);
    dev.with(|s| s.eeprom[..3].copy_from_slice(&[0x0002, 0x0000, 0x0900]));
    let nic = Driver::with_registers(dev.clone()).unwrap();
    assert_eq!(nic.permanent_mac(), MacAddr([2, 0, 0, 0, 0, 9]));
    assert_eq!(dev.rar()[0], Some(MacAddr([2, 0, 0, 0, 0, 9])));
}

#[test]
fn bring_up_failures_are_errors_not_panics() {
    let dev = FakeE1000::new();
    dev.set_reg(RAH0, 0);
    dev.with(|s| s.eeprom = [0; 64]);
    assert_eq!(Driver::with_registers(dev).err(), Some(E1000Error::NoMac));

    let dev = FakeE1000::new();
    dev.with(|s| s.reset_sticks = true);
    assert_eq!(
        Driver::with_registers(dev).err(),
        Some(E1000Error::ResetTimeout)
    );

    struct Gone;
    impl Registers for Gone {
        fn read(&self, _: u32) -> u32 {
            u32::MAX
        }
        fn write(&mut self, _: u32, _: u32) {}
    }
    assert_eq!(
        E1000::<TestHal, Gone>::with_registers(Gone).err(),
        Some(E1000Error::Absent)
    );

    let r = E1000::<NoMemHal, FakeE1000>::with_registers(FakeE1000::new());
    assert_eq!(r.err(), Some(E1000Error::NoMemory));
}

#[test]
fn bad_bar_is_refused_before_any_access() {
    // SAFETY: both calls fail on their arguments before touching memory.
    unsafe {
        assert_eq!(
            E1000::<TestHal>::new(0, 0x20000).err(),
            Some(E1000Error::BadBar)
        );
        assert_eq!(
            E1000::<TestHal>::new(0xfebc_0000, 0x1000).err(),
            Some(E1000Error::BadBar)
        );
    }
}

#[test]
fn frames_flow_both_ways_with_exact_counters() {
    let (mut nic, dev) = up();
    let inbound = [
        frame(FACTORY, 60, 1),
        frame(MacAddr::BROADCAST, 42, 2),
        frame(FACTORY, 1514, 3),
    ];
    for f in &inbound {
        assert!(dev.deliver(f));
    }
    assert!(
        !dev.deliver(&frame(PEER, 60, 4)),
        "not our MAC: filtered by the device"
    );
    assert_eq!(received(&mut nic), inbound);

    let a = frame(PEER, 60, 5);
    let b = frame(PEER, 1518, 6);
    assert_eq!(nic.transmit(&[&a, &b]), 2);
    assert_eq!(dev.take_sent(), vec![a, b]);

    let c = nic.counters();
    assert_eq!((c.rx_frames, c.rx_bytes), (3, 60 + 42 + 1514));
    assert_eq!((c.tx_frames, c.tx_bytes), (2, 60 + 1518));
    assert_eq!((c.dev_rx_frames, c.dev_tx_frames), (3, 2));
    assert_eq!((c.rx_drops, c.rx_missed, c.tx_drops), (0, 0, 0));
}

#[test]
fn the_receive_ring_wraps_and_gives_every_buffer_back() {
    let (mut nic, dev) = up();
    let mut total = 0;
    for round in 0..40u32 {
        let n = (round * 7 % 120 + 1) as usize;
        for k in 0..n {
            assert!(dev.deliver(&frame(FACTORY, 60 + k, round as u8)));
        }
        let got = received(&mut nic);
        assert_eq!(got.len(), n);
        assert!(got.iter().all(|f| f[20] == round as u8));
        total += n as u64;
        // Every descriptor but one is the device's again.
        let (rdh, rdt) = (dev.reg(RDH), dev.reg(RDT));
        assert_eq!((rdt + 1) % u32::from(RX_RING_LEN), rdh);
    }
    assert_eq!(nic.counters().rx_frames, total);
    assert_eq!(nic.counters().rx_missed, 0);
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
fn bad_receive_descriptors_are_counted_and_dropped() {
    let (mut nic, dev) = up();
    let good = frame(FACTORY, 60, 9);
    dev.write_rx_desc(&good, 10, 0x03, 0); // runt
    dev.write_rx_desc(&good, 1600, 0x03, 0); // oversized
    dev.write_rx_desc(&good, 60, 0x03, 0x01); // CRC error
    dev.write_rx_desc(&good, 2048, 0x01, 0); // first part of a split frame
    dev.write_rx_desc(&good, 2048, 0x01, 0); // middle
    dev.write_rx_desc(&good, 100, 0x03, 0); // its end
    dev.write_rx_desc(&good, u16::MAX, 0x03, 0); // nonsense length
    dev.deliver(&good);
    assert_eq!(received(&mut nic), vec![good]);
    let c = nic.counters();
    assert_eq!((c.rx_frames, c.rx_drops), (1, 5));
}

#[test]
fn a_full_receive_ring_shows_up_as_missed_frames() {
    for clears in [true, false] {
        let dev = FakeE1000::new();
        dev.with(|s| s.stats_clear_on_read = clears);
        let mut nic = Driver::with_registers(dev.clone()).unwrap();
        let room = usize::from(RX_RING_LEN - 1);
        for k in 0..room + 5 {
            dev.deliver(&frame(FACTORY, 60, k as u8));
        }
        assert_eq!(nic.counters().rx_missed, 5, "clear on read: {clears}");
        assert_eq!(received(&mut nic).len(), room);
        dev.deliver(&frame(FACTORY, 60, 0));
        dev.deliver(&frame(FACTORY, 60, 0));
        assert_eq!(received(&mut nic).len(), 2);
        let c = nic.counters();
        assert_eq!(
            (c.rx_missed, c.dev_rx_frames),
            (5, room as u64 + 2),
            "clear on read: {clears}"
        );
    }
}

#[test]
fn hardware_error_statistics_are_folded_once() {
    for clears in [true, false] {
        let dev = FakeE1000::new();
        dev.with(|s| s.stats_clear_on_read = clears);
        dev.set_reg(CRCERRS, 4); // before the driver: not ours
        let mut nic = Driver::with_registers(dev.clone()).unwrap();
        let bump = |reg: u32, n: u32| dev.set_reg(reg, dev.reg(reg) + n);
        bump(CRCERRS, 2);
        bump(ROC, 1);
        bump(LATECOL, 3);
        let c = nic.counters();
        assert_eq!(
            (c.rx_errors, c.tx_errors),
            (3, 3),
            "clear on read: {clears}"
        );
        bump(RUC, 1);
        let c = nic.counters();
        assert_eq!(
            (c.rx_errors, c.tx_errors),
            (4, 3),
            "clear on read: {clears}"
        );
    }
}

#[test]
fn transmit_stops_at_a_full_ring_and_resumes_when_the_device_drains() {
    let (mut nic, dev) = up();
    dev.with(|s| s.tx_stalled = true);
    let f = frame(PEER, 60, 1);
    let frames: Vec<&[u8]> = vec![&f; 200];
    let room = usize::from(TX_RING_LEN - 1);
    assert_eq!(nic.transmit(&frames), room);
    assert_eq!(nic.tx_space(), 0);
    assert_eq!(nic.queue_tx(60, &mut |_| {}), Err(NicError::TxFull));
    dev.with(|s| s.tx_stalled = false);
    dev.transmit();
    assert_eq!(nic.tx_space(), room);
    assert_eq!(dev.take_sent().len(), room);
    assert_eq!(nic.transmit(&frames[..3]), 3);
    assert_eq!(nic.counters().tx_frames, room as u64 + 3);
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
fn queue_tx_is_sent_only_at_flush_and_in_order() {
    let (mut nic, dev) = up();
    for tag in 0..3u8 {
        nic.queue_tx(64, &mut |buf| buf.copy_from_slice(&frame(PEER, 64, tag)))
            .unwrap();
    }
    assert!(dev.take_sent().is_empty());
    nic.flush_tx();
    let tags: Vec<u8> = dev.take_sent().iter().map(|f| f[20]).collect();
    assert_eq!(tags, [0, 1, 2]);
}

#[test]
fn a_mac_write_moves_reception_to_the_new_address() {
    let (mut nic, dev) = up();
    dev.take_writes();
    nic.set_mac(NEW).unwrap();
    // Invalidate, low, high+valid: the slot never holds a mixed address.
    let (l, h) = rar_encode(NEW);
    assert_eq!(dev.take_writes(), vec![(RAH0, 0), (RAL0, l), (RAH0, h)]);
    assert!(!dev.deliver(&frame(FACTORY, 60, 1)));
    assert!(dev.deliver(&frame(NEW, 60, 2)));
    assert_eq!(received(&mut nic).len(), 1);
    assert_eq!(nic.mac(), NEW);
    assert_eq!(nic.permanent_mac(), FACTORY);
    assert_eq!(nic.counters().mac_writes, 1);
    assert_eq!(
        nic.set_mac(MacAddr([1, 0, 0x5e, 0, 0, 1])),
        Err(NicError::InvalidMac)
    );
    assert_eq!(nic.counters().mac_writes, 1);
}

#[test]
fn filter_entries_fill_slots_1_to_15() {
    let (mut nic, dev) = up();
    let macs: Vec<MacAddr> = (1..=15).map(|i| MacAddr([2, 0, 0, 0, 1, i])).collect();
    nic.set_filter(&macs).unwrap();
    let rar = dev.rar();
    assert_eq!(rar[0], Some(FACTORY));
    for (i, m) in macs.iter().enumerate() {
        assert_eq!(rar[i + 1], Some(*m));
        assert!(dev.deliver(&frame(*m, 60, 0)));
    }
    assert_eq!(received(&mut nic).len(), 15);

    let mut too_many = macs.clone();
    too_many.push(NEW);
    assert_eq!(nic.set_filter(&too_many), Err(NicError::FilterFull));
    assert_eq!(
        nic.set_filter(&[MacAddr::BROADCAST]),
        Err(NicError::InvalidMac)
    );
    assert_eq!(nic.filter(), &macs[..]);

    // Shrinking rewrites only what changed and clears the rest.
    dev.take_writes();
    nic.set_filter(&macs[..2]).unwrap();
    let rar = dev.rar();
    assert_eq!(&rar[1..3], &[Some(macs[0]), Some(macs[1])]);
    assert!(rar[3..].iter().all(Option::is_none));
    assert!(dev
        .take_writes()
        .iter()
        .all(|(reg, _)| *reg >= regs::ral(3)));
    assert!(!dev.deliver(&frame(macs[5], 60, 0)));
    assert_eq!(nic.counters().filter_writes, 2);
}

#[test]
fn promiscuous_and_all_multicast_set_rctl_bits_only_on_change() {
    let (mut nic, dev) = up();
    let stranger = MacAddr([2, 0, 0, 0, 0, 0x33]);
    let mcast = MacAddr([1, 0, 0x5e, 0, 0, 9]);
    assert!(!dev.deliver(&frame(stranger, 60, 0)));
    assert!(!dev.deliver(&frame(mcast, 60, 0)));
    nic.set_all_multicast(true).unwrap();
    assert!(dev.deliver(&frame(mcast, 60, 0)));
    assert!(!dev.deliver(&frame(stranger, 60, 0)));
    nic.set_promiscuous(true).unwrap();
    assert_eq!(dev.reg(RCTL) & (RCTL_UPE | RCTL_MPE), RCTL_UPE | RCTL_MPE);
    assert!(dev.deliver(&frame(stranger, 60, 0)));
    dev.take_writes();
    nic.set_promiscuous(true).unwrap();
    assert!(
        dev.take_writes().is_empty(),
        "no RCTL write without a change"
    );
    nic.set_promiscuous(false).unwrap();
    nic.set_all_multicast(false).unwrap();
    assert_eq!(dev.reg(RCTL), regs::rctl(false, false));
    assert!(!dev.deliver(&frame(stranger, 60, 0)));
    assert_eq!(nic.counters().filter_writes, 4);
}

#[test]
fn link_transitions_are_seen_and_counted() {
    let (mut nic, dev) = up();
    assert!(nic.link_up());
    dev.with(|s| s.link = false);
    assert!(!nic.link_up());
    assert!(!nic.link_up());
    dev.with(|s| s.link = true);
    assert!(nic.link_up());
    assert_eq!(nic.counters().link_changes, 2);
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
    let mut want = vec![None; RAR_SLOTS];
    want[0] = Some(FACTORY);
    assert_eq!(dev.rar(), want);
    assert_eq!(
        (dev.reg(RDH), dev.reg(RDT)),
        (0, u32::from(RX_RING_LEN - 1))
    );
    // The frame left in the ring before the reset is gone.
    assert!(received(&mut nic).is_empty());
    assert!(dev.deliver(&frame(FACTORY, 60, 0)));
    assert_eq!(received(&mut nic).len(), 1);
    let c = nic.counters();
    assert_eq!((c.rx_frames, c.mac_writes), (2, 1));
}

#[test]
fn arm_interrupt_clears_the_causes_and_unmasks_frames_and_link() {
    let (mut nic, dev) = up();
    assert_eq!(dev.reg(IMS), 0, "poll mode until armed");
    dev.set_reg(ICR, ICR_RXT0 | ICR_LSC);
    assert!(nic.arm_interrupt());
    assert_eq!(dev.reg(IMS), IMS_WAKE);
    assert_eq!(dev.reg(ICR), 0, "the causes were read, so the line drops");
    assert_eq!(IMS_WAKE & (ICR_RXT0 | ICR_LSC), ICR_RXT0 | ICR_LSC);
    // A reset masks everything again; arming again is all it takes.
    nic.reset().unwrap();
    assert_eq!(dev.reg(IMS), 0);
    assert!(nic.arm_interrupt());
    assert_eq!(dev.reg(IMS), IMS_WAKE);
    // Armed again while still unmasked: only the causes are read.
    dev.take_writes();
    assert!(nic.arm_interrupt());
    assert!(dev.take_writes().is_empty());
    // Interrupts come no closer than 128 us apart.
    assert_eq!(dev.reg(ITR), 500);
}

/// A TCP super-frame of `len` bytes from `FACTORY` to `PEER`.
fn super_frame(len: usize, ipv6: bool, mss: u16) -> (Vec<u8>, TxOffload) {
    let mut f = vec![0; len];
    let req = offload::tcp_test_frame(&mut f, FACTORY, PEER, ipv6, mss).unwrap();
    (f, req)
}

/// The payload of `frames` joined, and checks each has the headers of
/// `original` where the device does not change them.
fn joined_payload(frames: &[Vec<u8>], original: &[u8]) -> Vec<u8> {
    let t = TcpFrame::parse(original).unwrap();
    frames
        .iter()
        .flat_map(|f| {
            assert_eq!(f[..t.l3], original[..t.l3]);
            f[t.hdr_len..].to_vec()
        })
        .collect()
}

#[test]
fn a_tso_frame_leaves_as_mss_segments_with_valid_checksums() {
    let (mut nic, dev) = up();
    assert!(nic.offloads().tso4 && nic.offloads().csum && !nic.offloads().tso6);
    let (f, req) = super_frame(30_000, false, 1460);
    nic.queue_tx_offload(&f, &req).unwrap();
    assert!(dev.take_sent().is_empty(), "nothing before the doorbell");
    nic.flush_tx();
    let sent = dev.take_sent();
    let count = (30_000 - 54usize).div_ceil(1460);
    assert_eq!(sent.len(), count);
    assert_eq!(dev.0.borrow().contexts, 1);
    for (k, s) in sent.iter().enumerate() {
        let last = k + 1 == count;
        assert!(checksums_ok(s), "segment {k}");
        assert!(
            last || s.len() == 54 + 1460,
            "segment {k}: {} bytes",
            s.len()
        );
        assert_eq!(s[34 + 13] & 0x08 != 0, last, "PSH on the last only");
        assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + k as u16);
    }
    assert_eq!(joined_payload(&sent, &f), f[54..]);
    let c = nic.counters();
    let wire: usize = sent.iter().map(Vec::len).sum();
    assert_eq!((c.tx_frames, c.tx_bytes), (count as u64, wire as u64));
    assert_eq!(c.dev_tx_frames, count as u64);
    // Plain frames still go out after it, untouched.
    let plain = frame(PEER, 60, 7);
    assert_eq!(nic.transmit(&[&plain]), 1);
    assert_eq!(dev.take_sent(), vec![plain]);
}

#[test]
fn ipv6_segmentation_and_far_checksums_are_done_in_software() {
    let (mut nic, dev) = up();
    let (f, req) = super_frame(5000, true, 1440);
    nic.queue_tx_offload(&f, &req).unwrap();
    nic.flush_tx();
    let sent = dev.take_sent();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|s| checksums_ok(s)));
    assert_eq!(joined_payload(&sent, &f), f[74..]);
    assert_eq!(dev.0.borrow().contexts, 0, "legacy descriptors only");
}

#[test]
fn a_partial_checksum_is_completed_by_the_device() {
    let (mut nic, dev) = up();
    let (f, req) = super_frame(400, false, 1460);
    let csum_only = TxOffload { gso: None, ..req };
    nic.queue_tx_offload(&f, &csum_only).unwrap();
    nic.flush_tx();
    let sent = dev.take_sent();
    assert_eq!(sent.len(), 1);
    assert!(checksums_ok(&sent[0]));
    assert_eq!(sent[0][..50], f[..50]);
    assert_eq!(sent[0][52..], f[52..]);
    assert_eq!(dev.0.borrow().contexts, 1);
    let c = nic.counters();
    assert_eq!((c.tx_frames, c.tx_bytes), (1, 400));
    // Too long for a plain frame, and a field outside the frame.
    let (big, _) = super_frame(2000, false, 1460);
    assert_eq!(
        nic.queue_tx_offload(&big, &csum_only),
        Err(NicError::FrameLength)
    );
    let outside = TxOffload {
        csum: Some(nic::PartialCsum {
            start: 100,
            offset: 400,
        }),
        gso: None,
    };
    assert_eq!(nic.queue_tx_offload(&f, &outside), Err(NicError::Offload));
    assert_eq!(nic.counters().tx_drops, 1);
}

#[test]
fn a_tso_frame_is_taken_whole_or_not_at_all() {
    let (mut nic, dev) = up();
    dev.with(|s| s.tx_stalled = true);
    let filler = frame(PEER, 60, 1);
    let room = usize::from(TX_RING_LEN - 1);
    // Leave 20 descriptors: a 64 KiB frame needs 1 + 32.
    assert_eq!(nic.transmit(&vec![&filler[..]; room - 20]), room - 20);
    let (f, req) = super_frame(65_000, false, 1460);
    assert_eq!(nic.queue_tx_offload(&f, &req), Err(NicError::TxFull));
    assert_eq!(nic.tx_space(), 20);
    dev.with(|s| s.tx_stalled = false);
    dev.transmit();
    dev.take_sent();
    nic.queue_tx_offload(&f, &req).unwrap();
    nic.flush_tx();
    let sent = dev.take_sent();
    assert_eq!(sent.len(), (65_000 - 54usize).div_ceil(1460));
    assert!(sent.iter().all(|s| checksums_ok(s)));
    assert_eq!(nic.tx_space(), room);
    // A request that does not fit its frame takes nothing.
    let mut udp = f.clone();
    udp[23] = 17;
    assert_eq!(nic.queue_tx_offload(&udp, &req), Err(NicError::Offload));
    assert_eq!(nic.tx_space(), room);
}

#[test]
fn frames_received_in_place_can_be_rewritten_before_the_buffer_goes_back() {
    let (mut nic, dev) = up();
    for k in 0..3 {
        dev.deliver(&frame(FACTORY, 100, k));
    }
    let mut seen = Vec::new();
    let n = nic.receive_in_place(10, &mut |f| {
        f[6..12].copy_from_slice(&NEW.0);
        seen.push(f.to_vec());
    });
    assert_eq!(n, Some(3));
    assert!(seen.iter().all(|f| f[6..12] == NEW.0 && f.len() == 100));
    assert_eq!((dev.reg(RDT) + 1) % u32::from(RX_RING_LEN), dev.reg(RDH));
    assert_eq!(nic.counters().rx_frames, 3);
}

#[test]
fn autonegotiation_can_be_turned_back_on() {
    let (mut nic, dev) = up();
    // Off after bring-up (so the write below is what turns it on).
    assert_eq!(dev.0.borrow().phy[0] & (PHY_CTRL_AUTONEG as u16), 0);
    nic.set_autonegotiation(true).unwrap();
    assert_eq!(
        dev.0.borrow().phy[0] & (PHY_CTRL_AUTONEG as u16),
        PHY_CTRL_AUTONEG as u16
    );
}

#[test]
fn dropping_the_driver_stops_dma() {
    let (nic, dev) = up();
    // Running before (so the clear below is the drop's doing).
    assert_eq!(dev.reg(RCTL) & RCTL_EN, RCTL_EN);
    assert_eq!(dev.reg(TCTL) & TCTL_EN, TCTL_EN);
    drop(nic);
    assert_eq!(dev.reg(RCTL) & RCTL_EN, 0);
    assert_eq!(dev.reg(TCTL) & TCTL_EN, 0);
}

#[test]
fn the_driver_can_live_in_a_static_mutex() {
    fn assert_send<T: Send>() {}
    assert_send::<E1000<TestHal, crate::Mmio>>();
}
