//! Host tests of the datapath on fake NICs: frames in, decisions carried
//! out, frames and MAC programming observed on the other side.
use crate::{Datapath, GuestPort, NicPort};
use aggregation::{Config, IdentityId, IpNet, Mode, UplinkId};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::{IpAddr, Ipv4Addr};
use nic::offload::{self, Segmenter, TcpFrame};
use nic::{Counters, FakeNic, MacAddr, NicControl, NicDatapath, NicError, Offloads, TxOffload};

/// The far side of a fake NIC, kept by the test while the datapath owns the NIC.
#[derive(Default)]
struct Wire {
    inbound: Vec<Vec<u8>>,
    outbound: Vec<Vec<u8>>,
    link: Option<bool>,
    /// Receive-mode changes (promiscuous or all-multicast turned on or
    /// off): on QEMU's e1000 each stops reception for a second.
    rx_mode_changes: u64,
    /// The NIC has no way to write its MAC register (virtio-net without
    /// the control queue's MAC command).
    no_mac_write: bool,
    /// Frames the transmit ring holds between flushes, if not the fake's
    /// default.
    tx_ring: Option<usize>,
    /// The driver cannot lend its receive buffers (the datapath copies).
    copy_only: bool,
    /// Frames handed to the device, in order across NICs: (this NIC's
    /// tag, frame) into a log several wires share.
    handed: Option<(usize, Rc<RefCell<Vec<(usize, Vec<u8>)>>>)>,
    /// The offload request each `outbound` frame was handed over with.
    outbound_offloads: Vec<TxOffload>,
}

/// A `FakeNic` whose wire the test holds.
struct TestNic {
    nic: FakeNic,
    wire: Rc<RefCell<Wire>>,
}

fn test_nic(mac: [u8; 6]) -> (Box<TestNic>, Rc<RefCell<Wire>>) {
    let wire = Rc::new(RefCell::new(Wire::default()));
    (
        Box::new(TestNic {
            nic: FakeNic::new(MacAddr(mac)),
            wire: wire.clone(),
        }),
        wire,
    )
}

/// A test NIC whose device finishes `offloads` itself.
fn offload_nic(mac: [u8; 6], offloads: Offloads) -> (Box<TestNic>, Rc<RefCell<Wire>>) {
    let (mut nic, wire) = test_nic(mac);
    nic.nic = nic.nic.with_offloads(offloads);
    (nic, wire)
}

impl TestNic {
    /// Moves frames from the wire into the fake's receive queue; what the
    /// queue cannot take waits on the wire.
    fn arrive(&mut self) {
        let mut w = self.wire.borrow_mut();
        let taken = w.inbound.iter().take_while(|f| self.nic.inject(f)).count();
        w.inbound.drain(..taken);
    }
}

impl NicDatapath for TestNic {
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.arrive();
        self.nic.receive(budget, sink)
    }
    fn receive_in_place(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(&mut [u8]),
    ) -> Option<usize> {
        if self.wire.borrow().copy_only {
            return None;
        }
        self.arrive();
        self.nic.receive_in_place(budget, sink)
    }
    fn queue_tx(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), NicError> {
        if let Some(n) = self.wire.borrow().tx_ring {
            self.nic.set_tx_capacity(n);
        }
        self.nic.queue_tx(len, fill)
    }
    fn offloads(&self) -> Offloads {
        self.nic.offloads()
    }
    fn queue_tx_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), NicError> {
        if let Some(n) = self.wire.borrow().tx_ring {
            self.nic.set_tx_capacity(n);
        }
        self.nic.queue_tx_offload(frame, req)
    }
    fn flush_tx(&mut self) {
        self.nic.flush_tx();
        let reqs = self.nic.sent_offloads().to_vec();
        let sent = self.nic.take_sent();
        let mut w = self.wire.borrow_mut();
        w.outbound_offloads.extend(reqs);
        if let Some((tag, log)) = &w.handed {
            log.borrow_mut()
                .extend(sent.iter().map(|f| (*tag, f.clone())));
        }
        w.outbound.extend(sent);
    }
    fn tx_space(&mut self) -> usize {
        self.nic.tx_space()
    }
}

impl NicControl for TestNic {
    fn kind(&self) -> &'static str {
        "test"
    }
    fn permanent_mac(&self) -> MacAddr {
        self.nic.permanent_mac()
    }
    fn mac(&self) -> MacAddr {
        self.nic.mac()
    }
    fn set_mac(&mut self, mac: MacAddr) -> Result<(), NicError> {
        if self.wire.borrow().no_mac_write {
            return Err(NicError::Unsupported);
        }
        self.nic.set_mac(mac)
    }
    fn filter_slots(&self) -> usize {
        self.nic.filter_slots()
    }
    fn filter(&self) -> &[MacAddr] {
        self.nic.filter()
    }
    fn set_filter(&mut self, macs: &[MacAddr]) -> Result<(), NicError> {
        self.nic.set_filter(macs)
    }
    fn promiscuous(&self) -> bool {
        self.nic.promiscuous()
    }
    fn set_promiscuous(&mut self, on: bool) -> Result<(), NicError> {
        if on != self.nic.promiscuous() {
            self.wire.borrow_mut().rx_mode_changes += 1;
        }
        self.nic.set_promiscuous(on)
    }
    fn all_multicast(&self) -> bool {
        self.nic.all_multicast()
    }
    fn set_all_multicast(&mut self, on: bool) -> Result<(), NicError> {
        if on != self.nic.all_multicast() {
            self.wire.borrow_mut().rx_mode_changes += 1;
        }
        self.nic.set_all_multicast(on)
    }
    fn link_up(&mut self) -> bool {
        if let Some(up) = self.wire.borrow_mut().link.take() {
            self.nic.set_link(up);
        }
        self.nic.link_up()
    }
    fn counters(&mut self) -> Counters {
        self.nic.counters()
    }
    fn reset(&mut self) -> Result<(), NicError> {
        self.nic.reset()
    }
}

const GW: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const UPLINK_MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];
const GUEST_MACS: [[u8; 6]; 2] = [[0x52, 0x54, 0, 0, 1, 1], [0x52, 0x54, 0, 0, 1, 2]];
const GUEST_IPS: [[u8; 4]; 2] = [[10, 0, 0, 11], [10, 0, 0, 12]];

/// An IPv4/UDP frame of `len` bytes.
fn ipv4(dst: [u8; 6], src: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4], len: usize) -> Vec<u8> {
    let mut f = alloc::vec![0u8; len.max(60)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src_ip);
    f[30..34].copy_from_slice(&dst_ip);
    f
}

struct Rig {
    dp: Datapath,
    uplinks: Vec<Rc<RefCell<Wire>>>,
    guests: Vec<Rc<RefCell<Wire>>>,
}

impl Rig {
    /// Binds guest `g`'s address to `ids`.
    fn bind(&mut self, g: usize, ids: &[IdentityId]) {
        self.dp
            .engine_mut()
            .bind(IpAddr::V4(Ipv4Addr::from(GUEST_IPS[g])), ids)
            .unwrap();
    }

    /// Guest `g` sends a minimum-size frame to 8.8.8.8 through the gateway.
    fn guest_sends(&self, g: usize) {
        self.guests[g].borrow_mut().inbound.push(ipv4(
            GW,
            GUEST_MACS[g],
            GUEST_IPS[g],
            [8, 8, 8, 8],
            60,
        ));
    }
}

fn rig(mode: Mode, uplinks: usize) -> Rig {
    let mut dp = Datapath::new(Config::with_mode(mode), 16);
    let mut up_wires = Vec::new();
    for mac in &UPLINK_MACS[..uplinks] {
        let (nic, wire) = test_nic(*mac);
        dp.add_uplink(nic, 1000, false).unwrap();
        up_wires.push(wire);
    }
    let mut guest_wires = Vec::new();
    for (mac, ip) in GUEST_MACS.iter().zip(GUEST_IPS) {
        let (nic, wire) = test_nic([0x0e, 0, 0, 0, 9, mac[5]]);
        let port: Box<dyn GuestPort> = Box::new(NicPort::new(nic as Box<dyn nic::Nic>).unwrap());
        dp.add_guest(
            "g",
            port,
            MacAddr(*mac),
            &[IpNet::host(IpAddr::V4(Ipv4Addr::from(ip)))],
        )
        .unwrap();
        guest_wires.push(wire);
    }
    dp.program_all();
    Rig {
        dp,
        uplinks: up_wires,
        guests: guest_wires,
    }
}

/// Guest 0 (GUEST_MACS[0], GUEST_IPS[0]) behind a plain test NIC, as under
/// QEMU; returns that NIC's wire.
fn add_nic_guest(dp: &mut Datapath) -> Rc<RefCell<Wire>> {
    let (gnic, wire) = test_nic([0x0e, 0, 0, 0, 9, 1]);
    let port: Box<dyn GuestPort> = Box::new(NicPort::new(gnic as Box<dyn nic::Nic>).unwrap());
    dp.add_guest(
        "g",
        port,
        MacAddr(GUEST_MACS[0]),
        &[IpNet::host(IpAddr::V4(Ipv4Addr::from(GUEST_IPS[0])))],
    )
    .unwrap();
    wire
}

fn sent(w: &Rc<RefCell<Wire>>) -> Vec<Vec<u8>> {
    core::mem::take(&mut w.borrow_mut().outbound)
}

#[test]
fn identity_mode_sends_a_guest_frame_with_its_bound_identity_as_source() {
    let mut r = rig(Mode::Identity, 2);
    r.bind(0, &[IdentityId(1)]);
    let f = ipv4(GW, GUEST_MACS[0], GUEST_IPS[0], [8, 8, 8, 8], 100);
    r.guests[0].borrow_mut().inbound.push(f.clone());
    r.dp.poll(1);
    assert!(
        sent(&r.uplinks[0]).is_empty(),
        "uplink 0 holds an identity guest 0 is not bound to"
    );
    let out = sent(&r.uplinks[1]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        &out[0][6..12],
        &UPLINK_MACS[1],
        "source rewritten to identity 1"
    );
    assert_eq!(&out[0][12..], &f[12..], "payload untouched");
}

#[test]
fn identity_mode_receive_rewrites_the_destination_back_to_the_guest() {
    let mut r = rig(Mode::Identity, 2);
    r.bind(1, &[IdentityId(0)]);
    let f = ipv4(UPLINK_MACS[0], GW, [8, 8, 8, 8], GUEST_IPS[1], 80);
    r.uplinks[0].borrow_mut().inbound.push(f);
    r.dp.poll(1);
    let got = sent(&r.guests[1]);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0][0..6], &GUEST_MACS[1]);
    assert!(sent(&r.guests[0]).is_empty());
}

#[test]
fn literal_mode_writes_the_guest_mac_for_the_send_and_restores_it() {
    let mut r = rig(Mode::Literal, 2);
    r.bind(0, &[IdentityId(0)]);
    let before = r.dp.uplink(UplinkId(0)).unwrap().counters().mac_writes;
    r.guest_sends(0);
    r.dp.poll(1);
    let out = sent(&r.uplinks[0]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        &out[0][6..12],
        &GUEST_MACS[0],
        "literal mode keeps the guest's source MAC"
    );
    let nic = r.dp.uplink(UplinkId(0)).unwrap();
    assert_eq!(nic.mac(), MacAddr(UPLINK_MACS[0]), "register restored");
    assert_eq!(
        nic.counters().mac_writes - before,
        2,
        "one write, one restore"
    );
    assert!(
        nic.filter().contains(&MacAddr(GUEST_MACS[0])),
        "replies to the guest MAC are accepted"
    );
    assert_eq!(r.dp.counters().literal_mac_writes, 2);
}

#[test]
fn literal_mode_removing_a_guest_takes_its_mac_out_of_every_uplink_filter() {
    let mut r = rig(Mode::Literal, 2);
    for u in 0..2 {
        let nic = r.dp.uplink(UplinkId(u)).unwrap();
        assert!(nic.filter().contains(&MacAddr(GUEST_MACS[0])), "uplink {u}");
    }
    assert!(r.dp.remove_guest(aggregation::GuestId(0)).is_some());
    for u in 0..2 {
        let nic = r.dp.uplink(UplinkId(u)).unwrap();
        assert!(
            !nic.filter().contains(&MacAddr(GUEST_MACS[0])),
            "uplink {u} still accepts the departed guest's MAC: {:?}",
            nic.filter()
        );
        assert!(
            nic.filter().contains(&MacAddr(GUEST_MACS[1])),
            "uplink {u} still accepts the remaining guest"
        );
    }
    // A frame to the departed MAC no longer gets past the uplink's filter.
    r.uplinks[0]
        .borrow_mut()
        .inbound
        .push(ipv4(GUEST_MACS[0], GW, [8, 8, 8, 8], GUEST_IPS[0], 60));
    r.dp.poll(1);
    let c = r.dp.uplink(UplinkId(0)).unwrap().counters();
    assert_eq!(c.rx_frames, 0, "{c:?}");
}

#[test]
fn literal_mode_removing_a_guest_turns_promiscuous_off_once_the_filter_fits_again() {
    let mut dp = Datapath::new(Config::with_mode(Mode::Literal), 16);
    // One filter entry per uplink: two guest MACs do not fit.
    let nic = Box::new(FakeNic::new(MacAddr(UPLINK_MACS[0])).with_filter_slots(1));
    dp.add_uplink(nic, 1000, false).unwrap();
    let mut ids = Vec::new();
    for (mac, ip) in GUEST_MACS.iter().zip(GUEST_IPS) {
        let port_nic: Box<dyn nic::Nic> =
            Box::new(FakeNic::new(MacAddr([0x0e, 0, 0, 0, 9, mac[5]])));
        let port: Box<dyn GuestPort> = Box::new(NicPort::new(port_nic).unwrap());
        ids.push(
            dp.add_guest(
                "g",
                port,
                MacAddr(*mac),
                &[IpNet::host(IpAddr::V4(Ipv4Addr::from(ip)))],
            )
            .unwrap(),
        );
    }
    dp.program_all();
    assert!(dp.uplink(UplinkId(0)).unwrap().promiscuous());
    dp.remove_guest(ids[0]).unwrap();
    let nic = dp.uplink(UplinkId(0)).unwrap();
    assert!(!nic.promiscuous(), "one guest MAC fits the filter again");
    assert_eq!(nic.filter(), [MacAddr(GUEST_MACS[1])]);
}

#[test]
fn a_denied_guest_gets_nothing_out() {
    let mut r = rig(Mode::Identity, 2);
    r.bind(0, &[]);
    r.guest_sends(0);
    r.dp.poll(1);
    assert!(sent(&r.uplinks[0]).is_empty() && sent(&r.uplinks[1]).is_empty());
    // The frame was taken from the port and refused as denied (not merely
    // left unread).
    let c =
        r.dp.engine()
            .guest_counters(aggregation::GuestId(0))
            .unwrap();
    assert_eq!(c.tx_drops.get(aggregation::DropReason::Denied), 1, "{c:?}");
    assert_eq!(c.tx_frames, 0, "{c:?}");
}

#[test]
fn guest_to_guest_frames_are_switched_locally() {
    let mut r = rig(Mode::Identity, 2);
    let f = ipv4(GUEST_MACS[1], GUEST_MACS[0], GUEST_IPS[0], GUEST_IPS[1], 60);
    r.guests[0].borrow_mut().inbound.push(f.clone());
    r.dp.poll(1);
    assert_eq!(sent(&r.guests[1]), [f]);
    assert!(sent(&r.uplinks[0]).is_empty() && sent(&r.uplinks[1]).is_empty());
}

#[test]
fn link_failure_moves_the_identity_and_a_learning_frame_announces_it() {
    let mut r = rig(Mode::Identity, 2);
    r.bind(0, &[IdentityId(0)]);
    r.uplinks[0].borrow_mut().link = Some(false);
    r.dp.poll(1);
    let learning = sent(&r.uplinks[1]);
    assert!(
        learning
            .iter()
            .any(|f| f[0..6] == [0xff; 6] && f[6..12] == UPLINK_MACS[0]),
        "uplink 1 announces identity 0: {learning:?}"
    );
    let nic1 = r.dp.uplink(UplinkId(1)).unwrap();
    let accepts = |m: [u8; 6]| nic1.mac() == MacAddr(m) || nic1.filter().contains(&MacAddr(m));
    assert!(
        accepts(UPLINK_MACS[0]) && accepts(UPLINK_MACS[1]),
        "uplink 1 holds both identities"
    );
    assert!(!nic1.promiscuous());
    // Guest 0's traffic resumes through uplink 1.
    r.guest_sends(0);
    r.dp.poll(2);
    let out = sent(&r.uplinks[1]);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][6..12], &UPLINK_MACS[0]);
    assert_eq!(r.dp.counters().moves, 1);
}

#[test]
fn frames_for_the_own_stack_queue_and_its_replies_leave_through_an_uplink() {
    let mut r = rig(Mode::Identity, 2);
    let own = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    r.dp.set_own_stack(IdentityId(0), &[own]).unwrap();
    r.uplinks[0].borrow_mut().inbound.push(ipv4(
        UPLINK_MACS[0],
        GW,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        60,
    ));
    r.dp.poll(1);
    assert_eq!(r.dp.own_rx().len(), 1);
    let reply = ipv4(GW, UPLINK_MACS[0], [10, 0, 0, 2], [10, 0, 0, 1], 60);
    assert!(r.dp.own_tx().push(&reply));
    r.dp.poll(2);
    // The reply leaves exactly once, through one uplink, under identity 0
    // (the own stack's MAC) with its payload as pushed.
    let out: Vec<Vec<u8>> = r.uplinks.iter().flat_map(sent).collect();
    let replies: Vec<&Vec<u8>> = out.iter().filter(|f| f[12..] == reply[12..]).collect();
    assert_eq!(
        replies.len(),
        1,
        "the own stack's reply on the uplinks: {out:?}"
    );
    assert_eq!(&replies[0][..12], &reply[..12], "its addresses");
}

/// An own-stack frame goes out through identity 0's holder, uplink 0; the
/// next one, in the same round, swaps identity 0 onto uplink 1. A switch
/// learns a MAC where it last saw it: the first frame, should it reach the
/// wire after uplink 1's learning frame, would teach the switch identity 0
/// on uplink 0 again, which no longer takes it. So the old holder hands
/// what it holds to the device before the learning frame goes out.
#[test]
fn a_swap_hands_the_old_holders_frames_to_the_device_before_the_learning_frame() {
    let mut r = rig(Mode::Identity, 2);
    let handed = Rc::new(RefCell::new(Vec::new()));
    for (u, w) in r.uplinks.iter().enumerate() {
        w.borrow_mut().handed = Some((u, handed.clone()));
    }
    let own = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    r.dp.set_own_stack(IdentityId(0), &[own]).unwrap();
    let first = ipv4(GW, UPLINK_MACS[0], [10, 0, 0, 2], [10, 0, 0, 1], 60);
    let second = ipv4(GW, UPLINK_MACS[0], [10, 0, 0, 2], [10, 0, 0, 1], 70);
    assert!(r.dp.own_tx().push(&first));
    assert!(r.dp.own_tx().push(&second));
    r.dp.poll(1);
    assert_eq!(
        r.dp.engine().counters().own_tx_swaps,
        1,
        "the second frame swapped"
    );
    assert_eq!(r.dp.engine().holder(IdentityId(0)), Some(UplinkId(1)));
    let handed = handed.borrow();
    let at = |u: usize, f: &dyn Fn(&[u8]) -> bool| {
        handed
            .iter()
            .position(|(t, x)| *t == u && f(x))
            .unwrap_or_else(|| panic!("not handed to uplink {u}: {handed:?}"))
    };
    let first_at = at(0, &|x| x == first.as_slice());
    let learning_at = at(1, &|x| x[0..6] == [0xff; 6] && x[6..12] == UPLINK_MACS[0]);
    let second_at = at(1, &|x| x == second.as_slice());
    assert!(
        first_at < learning_at && learning_at < second_at,
        "order handed: first frame {first_at}, learning frame {learning_at}, second frame {second_at}"
    );
}

/// Identity mode: the own stack knows guest 1 at identity 1 (what its ARP
/// reply named), and its reply to that MAC is delivered to guest 1, with
/// guest 1's own MAC as destination, instead of leaving through an uplink.
#[test]
fn own_stack_frames_to_a_guest_at_its_identity_are_switched_locally() {
    let mut r = rig(Mode::Identity, 2);
    r.bind(1, &[IdentityId(1)]);
    let own = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    r.dp.set_own_stack(IdentityId(0), &[own]).unwrap();
    let reply = ipv4(
        UPLINK_MACS[1],
        UPLINK_MACS[0],
        [10, 0, 0, 2],
        GUEST_IPS[1],
        60,
    );
    assert!(r.dp.own_tx().push(&reply));
    r.dp.poll(1);
    let out: Vec<Vec<u8>> = r.uplinks.iter().flat_map(sent).collect();
    assert!(out.is_empty(), "the own stack's reply left: {out:?}");
    let got = sent(&r.guests[1]);
    assert_eq!(got.len(), 1, "delivered to guest 1 once");
    assert_eq!(&got[0][0..6], &GUEST_MACS[1], "to guest 1's own MAC");
    assert_eq!(
        &got[0][6..],
        &reply[6..],
        "the rest as the own stack sent it"
    );
    assert!(sent(&r.guests[0]).is_empty());
}

/// A broadcast from outside, e.g. a gratuitous ARP.
fn outside_broadcast() -> Vec<u8> {
    let mut f = ipv4([0xff; 6], GW, [10, 0, 0, 1], [10, 0, 0, 255], 60);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&GW);
    f[28..32].copy_from_slice(&[10, 0, 0, 1]);
    f[38..42].copy_from_slice(&[10, 0, 0, 1]);
    f
}

#[test]
fn floods_reach_the_own_stack_only_when_there_is_one() {
    let mut r = rig(Mode::Identity, 2);
    for t in 0..40 {
        r.uplinks[0].borrow_mut().inbound.push(outside_broadcast());
        r.dp.poll(t);
    }
    assert_eq!(sent(&r.guests[0]).len(), 40, "guests get the broadcasts");
    assert_eq!(
        r.dp.own_rx().len(),
        0,
        "queued for an own stack that is not there"
    );
    assert_eq!(r.dp.counters().own_queue_full, 0);
    r.dp.set_own_stack(IdentityId(0), &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))])
        .unwrap();
    r.uplinks[0].borrow_mut().inbound.push(outside_broadcast());
    r.dp.poll(100);
    assert_eq!(r.dp.own_rx().len(), 1, "the own stack hears broadcasts");
}

/// A neighbour solicitation from outside for `target`, to its
/// solicited-node group (RFC 4861 7.2.2), with the source option.
fn outside_ns(target: [u8; 16]) -> Vec<u8> {
    let mut body = [0u8; 32];
    let k = aggregation::testkit::nd_body(&mut body, 135, target, &[(1, MacAddr(GW))]);
    let (grp, mac) = aggregation::testkit::solicited_node(target);
    let mut f = alloc::vec![0u8; 120];
    let mut gw6 = [0u8; 16];
    gw6[0] = 0xfd;
    gw6[15] = 1;
    let n =
        aggregation::testkit::ipv6_packet(&mut f, mac, MacAddr(GW), gw6, grp, &[], 58, &body[..k]);
    f.truncate(n);
    f
}

/// Multicast from outside (IPv6 neighbour solicitations above all) is
/// accepted on every uplink, as broadcasts are, and taken from the
/// broadcast uplink alone; when its link goes down the next live uplink's
/// copy is taken. A solicitation reaches the guest owning its target. The
/// failover turns no receive mode on or off anywhere (on QEMU's e1000 that
/// write would stop the uplink taking over from receiving for a second).
#[test]
fn every_uplink_takes_in_multicast_and_a_failover_changes_no_receive_mode() {
    let mut r = rig(Mode::Identity, 2);
    let mut v6 = [0u8; 16];
    v6[0] = 0xfd;
    v6[15] = 0x11;
    let port_nic: Box<dyn nic::Nic> = Box::new(FakeNic::new(MacAddr([0x0e, 0, 0, 0, 9, 9])));
    let port: Box<dyn GuestPort> = Box::new(NicPort::new(port_nic).unwrap());
    let g =
        r.dp.add_guest(
            "v6",
            port,
            MacAddr([0x52, 0x54, 0, 0, 1, 9]),
            &[IpNet::host(IpAddr::V6(v6.into()))],
        )
        .unwrap();
    r.dp.program_all();
    let allmulti = |r: &mut Rig, u: u8| r.dp.uplink(UplinkId(u)).unwrap().all_multicast();
    assert!(allmulti(&mut r, 0) && allmulti(&mut r, 1));
    let duplicates = |r: &Rig, u: u8| {
        r.dp.engine()
            .uplink_counters(UplinkId(u))
            .unwrap()
            .rx_drops
            .get(aggregation::DropReason::DuplicateBroadcast)
    };
    r.uplinks[0].borrow_mut().inbound.push(outside_ns(v6));
    r.uplinks[1].borrow_mut().inbound.push(outside_ns(v6));
    r.dp.poll(1);
    assert_eq!(r.dp.engine().guest_counters(g).unwrap().rx_frames, 1);
    assert_eq!(r.dp.engine().counters().rx_nd_directed, 1);
    assert_eq!((duplicates(&r, 0), duplicates(&r, 1)), (0, 1));
    assert!(
        sent(&r.guests[0]).is_empty(),
        "an IPv4 guest is not solicited"
    );
    let modes_before: Vec<u64> = r
        .uplinks
        .iter()
        .map(|w| w.borrow().rx_mode_changes)
        .collect();
    r.uplinks[0].borrow_mut().link = Some(false);
    r.dp.poll(20_000_000);
    assert_eq!(r.dp.engine().broadcast_uplink(), Some(UplinkId(1)));
    assert_eq!(r.dp.engine().holder(IdentityId(0)), Some(UplinkId(1)));
    let modes_after: Vec<u64> = r
        .uplinks
        .iter()
        .map(|w| w.borrow().rx_mode_changes)
        .collect();
    assert_eq!(modes_after, modes_before, "receive-mode changes per uplink");
    assert!(allmulti(&mut r, 0) && allmulti(&mut r, 1));
    r.uplinks[1].borrow_mut().inbound.push(outside_ns(v6));
    r.dp.poll(40_000_000);
    assert_eq!(r.dp.engine().guest_counters(g).unwrap().rx_frames, 2);
    assert_eq!(duplicates(&r, 1), 1, "uplink 1's copy is the one taken now");
    // Back up: uplink 0 takes multicast again, still without a change.
    r.uplinks[0].borrow_mut().link = Some(true);
    r.dp.poll(60_000_000);
    assert_eq!(r.dp.engine().broadcast_uplink(), Some(UplinkId(0)));
    let modes_back: Vec<u64> = r
        .uplinks
        .iter()
        .map(|w| w.borrow().rx_mode_changes)
        .collect();
    assert_eq!(modes_back, modes_before, "receive-mode changes per uplink");
    assert_eq!(r.dp.counters().program_errors, 0);
}

#[test]
fn a_backlog_larger_than_one_batch_drains_over_polls() {
    let mut r = rig(Mode::Identity, 1);
    r.bind(0, &[IdentityId(0)]);
    for _ in 0..150 {
        r.guest_sends(0);
    }
    // More than one batch: one poll moves some but not all of them...
    r.dp.poll(1);
    let first = sent(&r.uplinks[0]).len();
    assert!(
        first > 0 && first < 150,
        "one poll sent {first} of a 150-frame backlog"
    );
    // ...and every frame still leaves, over the next polls.
    for _ in 0..4 {
        r.dp.poll(1);
    }
    assert_eq!(first + sent(&r.uplinks[0]).len(), 150);
    assert_eq!(r.dp.counters().uplink_tx_full, 0);
}

mod setup {
    use super::*;
    use crate::{build, Role};
    use aggdom_config::{parse, NicAddress};

    fn nics(n: usize) -> (Vec<Box<dyn nic::Nic>>, Vec<NicAddress>) {
        let nics = (0..n).map(|i| {
            Box::new(FakeNic::new(MacAddr([2, 0, 0, 0, 0, i as u8 + 1]))) as Box<dyn nic::Nic>
        });
        let addrs = (0..n).map(|i| NicAddress {
            bus: 0,
            device: 3 + i as u8,
            function: 0,
        });
        (nics.collect(), addrs.collect())
    }

    #[test]
    fn a_plan_becomes_uplinks_guests_and_bindings() {
        let plan = parse("uplinks=0,1 guest=2,52:54:00:00:01:01,10.0.0.11 bind=10.0.0.11:1 pin=1")
            .unwrap();
        let (n, a) = nics(4);
        let built = build(&plan, n, &a).ok().expect("plan is valid");
        let roles: Vec<&str> = built
            .roles
            .iter()
            .map(|r| match r {
                Role::Uplink(_) => "uplink",
                Role::Guest(_) => "guest",
                Role::Spare(_) => "spare",
            })
            .collect();
        assert_eq!(roles, ["uplink", "uplink", "guest", "spare"]);
        let e = built.datapath.engine();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11));
        assert_eq!(
            e.binding(ip).unwrap().iter().collect::<Vec<_>>(),
            [IdentityId(1)]
        );
        assert!(e.is_pinned(IdentityId(1)));
    }

    #[test]
    fn an_ipv6_plan_binds_addresses_and_prefixes_and_gives_the_own_stack_a_link_local() {
        let plan = parse(
            "uplinks=0,1 guest=2,52:54:00:00:01:01,10.0.0.11+fd00::11+fd00:1::/64 \
             bind=fd00::11:0+1 bind=fd00:1::/64:1 ip=10.0.0.2/24,fd00::2/64",
        )
        .unwrap();
        let (n, a) = nics(3);
        let built = build(&plan, n, &a).ok().expect("plan is valid");
        let e = built.datapath.engine();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ids = |b: aggregation::IdentitySet| b.iter().map(|i| i.0).collect::<Vec<_>>();
        assert_eq!(ids(e.binding(ip("fd00::11")).unwrap()), [0, 1]);
        let prefix: IpNet = "fd00:1::/64".parse().unwrap();
        assert_eq!(ids(e.binding(prefix).unwrap()), [1]);
        let info = built.datapath.guests().next().unwrap().1;
        assert_eq!(info.ips.len(), 3);
        // Identity 0 is 02:00:00:00:00:01: fe80::ff:fe00:1 (modified EUI-64).
        let own = crate::own_addresses(plan.own.as_ref().unwrap(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            own,
            [
                (ip("10.0.0.2"), 24),
                (ip("fd00::2"), 64),
                (ip("fe80::ff:fe00:1"), 64)
            ]
        );
        // The own stack owns all three: a guest may not claim its link-local.
        assert_eq!(e.guest_of_ip(ip("fe80::ff:fe00:1")), None);
        assert!(e.binding(ip("fe80::ff:fe00:1")).is_none());
    }

    #[test]
    fn a_plan_the_engine_refuses_returns_every_nic_untouched() {
        // Identity 5 does not exist with two uplinks: found when resolving.
        let plan =
            parse("uplinks=0,1 guest=2,52:54:00:00:01:01,10.0.0.11 bind=10.0.0.11:5").unwrap();
        let (n, a) = nics(3);
        let Err((err, back)) = build(&plan, n, &a) else {
            panic!("must fail")
        };
        assert_eq!(err.item, "bind");
        assert_eq!(back.len(), 3);
        for (i, nic) in back.iter().enumerate() {
            assert_eq!(nic.mac(), MacAddr([2, 0, 0, 0, 0, i as u8 + 1]));
            assert!(!nic.promiscuous(), "guest port NIC was not touched");
        }
    }
}

/// Frames on `w` from guest IP `ip` (the source MAC may be an identity).
fn from_ip(out: &[Vec<u8>], ip: [u8; 4]) -> usize {
    out.iter().filter(|f| f[26..30] == ip).count()
}

#[test]
fn a_flooding_guest_does_not_starve_a_light_one() {
    let mut r = rig(Mode::Identity, 1);
    for g in 0..GUEST_IPS.len() {
        r.bind(g, &[IdentityId(0)]);
    }
    // Guest 0 floods full-size frames, far more than the uplink is given
    // per round, and more than its transmit ring holds; guest 1 sends one
    // small frame per round.
    r.uplinks[0].borrow_mut().tx_ring = Some(32);
    for _ in 0..3000 {
        let f = ipv4(GW, GUEST_MACS[0], GUEST_IPS[0], [8, 8, 8, 8], 1514);
        r.guests[0].borrow_mut().inbound.push(f);
    }
    let rounds = 40;
    let mut flood = 0;
    for round in 0..rounds {
        r.guest_sends(1);
        r.dp.poll(round);
        let out = sent(&r.uplinks[0]);
        // The light guest is served in the round it sent ...
        assert_eq!(from_ip(&out, GUEST_IPS[1]), 1, "round {round}");
        // ... and the flood moves at most a round's share at a time.
        let n = from_ip(&out, GUEST_IPS[0]);
        assert!(n <= super::datapath::MAX_FRAMES, "round {round}: {n}");
        flood += n;
    }
    // Over the rounds the flood gets a quantum per round, as bytes.
    let per_round = (super::datapath::QUANTUM / (1514 + super::datapath::FRAME_COST)) as usize;
    assert!(
        flood.abs_diff(rounds as usize * per_round) <= super::datapath::MAX_FRAMES,
        "{flood} flood frames in {rounds} rounds, {per_round} a round expected"
    );
    assert_eq!(r.dp.counters().uplink_tx_full, 0);
    let g =
        r.dp.engine()
            .guest_counters(aggregation::GuestId(1))
            .unwrap();
    assert_eq!(g.tx_frames, rounds);
}

#[test]
fn a_flooding_uplink_does_not_starve_the_others() {
    let mut r = rig(Mode::Identity, 2);
    r.bind(0, &[IdentityId(0)]);
    r.bind(1, &[IdentityId(1)]);
    // Uplink 0 is flooded with frames for guest 0; uplink 1 gets one frame
    // for guest 1 per round. (Uplink 1's driver cannot lend its buffers:
    // the copying receive path is served alike.)
    r.uplinks[1].borrow_mut().copy_only = true;
    for _ in 0..3000 {
        let f = ipv4(UPLINK_MACS[0], GW, [8, 8, 8, 8], GUEST_IPS[0], 1514);
        r.uplinks[0].borrow_mut().inbound.push(f);
    }
    for round in 0..20 {
        let f = ipv4(UPLINK_MACS[1], GW, [8, 8, 8, 8], GUEST_IPS[1], 60);
        r.uplinks[1].borrow_mut().inbound.push(f);
        r.dp.poll(round);
        assert_eq!(sent(&r.guests[1]).len(), 1, "round {round}");
        assert!(sent(&r.guests[0]).len() <= super::datapath::MAX_FRAMES);
    }
}

#[test]
fn a_round_that_leaves_frames_behind_says_so() {
    let mut r = rig(Mode::Identity, 2);
    r.bind(0, &[IdentityId(0)]);
    r.bind(1, &[IdentityId(1)]);
    // A few frames: all taken, nothing left for a sleeping loop to miss.
    for _ in 0..5 {
        let f = ipv4(UPLINK_MACS[0], GW, [8, 8, 8, 8], GUEST_IPS[0], 1514);
        r.uplinks[0].borrow_mut().inbound.push(f);
    }
    assert_eq!(r.dp.poll(0), 5);
    assert!(!r.dp.saturated());
    // More than a round takes from an uplink: the round says so until
    // the ring is empty, and not after.
    for _ in 0..100 {
        let f = ipv4(UPLINK_MACS[1], GW, [8, 8, 8, 8], GUEST_IPS[1], 1514);
        r.uplinks[1].borrow_mut().inbound.push(f);
    }
    let (mut rounds, mut moved) = (0, 0);
    loop {
        let n = r.dp.poll(rounds);
        if n == 0 {
            break;
        }
        rounds += 1;
        moved += n;
        assert_eq!(
            r.dp.saturated(),
            moved < 100,
            "round {rounds}: {moved} moved"
        );
    }
    assert_eq!(moved, 100);
    assert!(rounds > 1, "one round took them all");
    assert!(!r.dp.saturated());
    // A guest's flood likewise.
    for _ in 0..200 {
        r.guest_sends(0);
    }
    r.dp.poll(100);
    assert!(r.dp.saturated());
}

#[test]
fn literal_mode_frames_of_one_guest_share_one_write_and_one_restore() {
    let mut r = rig(Mode::Literal, 1);
    for g in 0..GUEST_IPS.len() {
        r.bind(g, &[IdentityId(0)]);
    }
    let before = r.dp.uplink(UplinkId(0)).unwrap().counters().mac_writes;
    for g in 0..2 {
        for _ in 0..5 {
            r.guest_sends(g);
        }
    }
    r.dp.poll(1);
    let out = sent(&r.uplinks[0]);
    assert_eq!(out.len(), 10);
    for (g, mac) in GUEST_MACS.iter().enumerate() {
        assert_eq!(
            out.iter().filter(|f| f[6..12] == *mac).count(),
            5,
            "guest {g}'s frames keep its MAC"
        );
    }
    let nic = r.dp.uplink(UplinkId(0)).unwrap();
    assert_eq!(nic.mac(), MacAddr(UPLINK_MACS[0]), "register restored");
    // One write and one restore per guest's batch, not per frame.
    assert_eq!(nic.counters().mac_writes - before, 4);
    assert_eq!(r.dp.counters().literal_mac_writes, 4);
}

#[test]
fn literal_mode_registers_hold_their_own_macs_between_batches() {
    let mut r = rig(Mode::Literal, 2);
    r.bind(0, &[IdentityId(0)]);
    r.dp.set_own_stack(IdentityId(0), &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))])
        .unwrap();
    // A guest frame, then an own-stack frame (which may swap identities,
    // claim step 5): each leaves, and every register ends as the engine
    // says its uplink's MAC is.
    r.guest_sends(0);
    r.dp.poll(1);
    let own = ipv4(GW, UPLINK_MACS[0], [10, 0, 0, 2], [8, 8, 8, 8], 60);
    r.dp.own_tx().push(&own);
    r.dp.poll(2);
    // (Besides the learning frames of the swap.)
    let ip = |w: &Rc<RefCell<Wire>>| sent(w).iter().filter(|f| f[12..14] == [8, 0]).count();
    assert_eq!(ip(&r.uplinks[0]) + ip(&r.uplinks[1]), 2);
    for u in 0..2 {
        let want = r.dp.engine().uplink_mac(UplinkId(u)).unwrap();
        assert_eq!(r.dp.uplink(UplinkId(u)).unwrap().mac(), want, "uplink {u}");
    }
    assert_eq!(r.dp.counters().literal_mac_writes, 2);
    assert_eq!(r.dp.counters().program_errors, 0);
}

#[test]
fn literal_mode_on_an_uplink_without_a_mac_command_falls_back_and_counts() {
    let mut dp = Datapath::new(Config::with_mode(Mode::Literal), 16);
    let (nic, wire) = test_nic(UPLINK_MACS[0]);
    wire.borrow_mut().no_mac_write = true;
    dp.add_uplink(nic, 1000, false).unwrap();
    let gwire = add_nic_guest(&mut dp);
    dp.program_all();
    assert_eq!(dp.literal_unsupported().collect::<Vec<_>>(), [UplinkId(0)]);
    for _ in 0..3 {
        gwire
            .borrow_mut()
            .inbound
            .push(ipv4(GW, GUEST_MACS[0], GUEST_IPS[0], [8, 8, 8, 8], 60));
    }
    dp.poll(1);
    assert_eq!(sent(&wire).len(), 3, "the frames still leave");
    assert_eq!(dp.counters().literal_unsupported, 3);
    assert_eq!(dp.counters().literal_mac_writes, 0);
}

/// A guest frame out through an uplink and the answer back: the tap sees
/// each on both ports, the uplink copy with the identity's MAC.
#[test]
fn the_tap_sees_both_ports_both_ways_after_rewriting() {
    use crate::{Tap, TapDir, TapPort};
    use aggregation::GuestId;
    type Seen = Rc<RefCell<Vec<(TapPort, TapDir, Vec<u8>)>>>;
    struct Recorder(Seen);
    impl Tap for Recorder {
        fn frame(&mut self, port: TapPort, dir: TapDir, frame: &[u8]) {
            self.0.borrow_mut().push((port, dir, frame.to_vec()));
        }
    }

    let mut r = rig(Mode::Identity, 1);
    let seen: Seen = Rc::default();
    assert!(r
        .dp
        .set_tap(Some(Box::new(Recorder(seen.clone()))))
        .is_none());

    let out = ipv4(GW, GUEST_MACS[0], GUEST_IPS[0], [8, 8, 8, 8], 60);
    r.guests[0].borrow_mut().inbound.push(out.clone());
    r.dp.poll(0);
    let back = ipv4(UPLINK_MACS[0], GW, [8, 8, 8, 8], GUEST_IPS[0], 60);
    r.uplinks[0].borrow_mut().inbound.push(back.clone());
    r.dp.poll(1);

    let seen = seen.borrow();
    let g = TapPort::Guest(GuestId(0));
    let u = TapPort::Uplink(UplinkId(0));
    let kinds: Vec<(TapPort, TapDir)> = seen.iter().map(|(p, d, _)| (*p, *d)).collect();
    assert_eq!(
        kinds,
        [
            (g, TapDir::In),
            (u, TapDir::Out),
            (u, TapDir::In),
            (g, TapDir::Out)
        ]
    );
    assert_eq!(seen[0].2, out, "as the guest sent it");
    assert_eq!(
        seen[1].2[6..12],
        UPLINK_MACS[0],
        "rewritten to the identity"
    );
    assert_eq!(seen[2].2, back, "as the wire brought it");
    assert_eq!(
        seen[3].2[0..6],
        GUEST_MACS[0],
        "rewritten back to the guest"
    );
    drop(seen);
    assert!(r.dp.set_tap(None).is_some());
}

/// The far side of a guest port that lends frames with offload requests,
/// as a Xen vif does.
#[derive(Default)]
struct OffloadWire {
    inbound: Vec<(Vec<u8>, TxOffload)>,
    delivered: Vec<(Vec<u8>, TxOffload)>,
    /// The port takes frames with requests (a vif); else plain ones only.
    takes: bool,
}

struct OffloadPort(Rc<RefCell<OffloadWire>>);

impl GuestPort for OffloadPort {
    fn receive(&mut self, _: usize, _: &mut dyn FnMut(&[u8])) -> usize {
        panic!("the datapath must use receive_offload when a port offers it");
    }
    fn receive_offload(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(&mut [u8], TxOffload),
    ) -> Option<usize> {
        let frames: Vec<_> = {
            let mut w = self.0.borrow_mut();
            let n = w.inbound.len().min(budget);
            w.inbound.drain(..n).collect()
        };
        for (mut f, req) in frames.iter().cloned() {
            sink(&mut f, req);
        }
        Some(frames.len())
    }
    fn deliver(&mut self, frame: &[u8]) -> Result<(), crate::PortError> {
        self.0
            .borrow_mut()
            .delivered
            .push((frame.to_vec(), TxOffload::NONE));
        Ok(())
    }
    fn takes_offload(&self) -> bool {
        self.0.borrow().takes
    }
    fn deliver_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), crate::PortError> {
        assert!(self.0.borrow().takes, "offered a request it does not take");
        self.0.borrow_mut().delivered.push((frame.to_vec(), *req));
        Ok(())
    }
    fn flush(&mut self) {}
}

/// Addresses of [`offload::tcp_test_frame`]'s frames: guest 0 sends from
/// 192.0.2.1 to 192.0.2.2, outside; guest 1 is 192.0.2.3.
const TSO_IPS: [[u8; 4]; 2] = [[192, 0, 2, 1], [192, 0, 2, 3]];
const OUTSIDE: [u8; 4] = [192, 0, 2, 2];
const OWN_IP: [u8; 4] = [192, 0, 2, 9];

struct OffloadRig {
    dp: Datapath,
    uplink: Rc<RefCell<Wire>>,
    guests: [Rc<RefCell<OffloadWire>>; 2],
}

/// One uplink whose device does `uplink`; two guests on offload ports,
/// guest 1's taking requests if `guest1_takes`; an own stack at
/// [`OWN_IP`] under identity 0.
fn offload_rig(uplink: Offloads, guest1_takes: bool) -> OffloadRig {
    let mut dp = Datapath::new(Config::with_mode(Mode::Identity), 64);
    let (nic, wire) = offload_nic(UPLINK_MACS[0], uplink);
    dp.add_uplink(nic, 1000, false).unwrap();
    let guests = [true, guest1_takes].map(|takes| {
        Rc::new(RefCell::new(OffloadWire {
            takes,
            ..OffloadWire::default()
        }))
    });
    for (g, w) in guests.iter().enumerate() {
        dp.add_guest(
            "g",
            Box::new(OffloadPort(w.clone())),
            MacAddr(GUEST_MACS[g]),
            &[IpNet::host(IpAddr::V4(Ipv4Addr::from(TSO_IPS[g])))],
        )
        .unwrap();
    }
    dp.set_own_stack(IdentityId(0), &[IpAddr::V4(Ipv4Addr::from(OWN_IP))])
        .unwrap();
    dp.program_all();
    OffloadRig {
        dp,
        uplink: wire,
        guests,
    }
}

const TSO_ALL: Offloads = Offloads {
    csum: true,
    tso4: true,
    tso6: true,
};

/// A TCP super-frame from guest 0 of `len` bytes to `dst_ip` at `dst`,
/// cut at 1448, with its partial checksum, as netfront sends it.
fn gso_frame(dst: [u8; 6], dst_ip: [u8; 4], len: usize) -> (Vec<u8>, TxOffload) {
    let mut f = alloc::vec![0u8; len];
    let req =
        offload::tcp_test_frame(&mut f, MacAddr(GUEST_MACS[0]), MacAddr(dst), false, 1448).unwrap();
    f[30..34].copy_from_slice(&dst_ip);
    // The IPv4 header checksum and the TCP pseudo-header seed, again.
    f[24..26].fill(0);
    let c = !offload::fold(offload::sum(&f[14..34], 0));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let t = TcpFrame::parse(&f).unwrap();
    let seed = offload::fold(t.pseudo_header_sum(&f, len - t.l4));
    f[t.l4 + 16..t.l4 + 18].copy_from_slice(&seed.to_be_bytes());
    (f, req)
}

/// `frame`'s segments as the nic crate cuts them.
fn segments_of(frame: &[u8], req: &TxOffload) -> Vec<Vec<u8>> {
    let seg = Segmenter::new(frame, req.gso.unwrap()).unwrap();
    (0..seg.count())
        .map(|i| {
            let mut out = alloc::vec![0u8; seg.len(i)];
            seg.write(frame, i, &mut out);
            out
        })
        .collect()
}

/// The frame with its source MAC as identity 0's (what identity mode
/// does to it on the way out).
fn as_identity_0(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[6..12].copy_from_slice(&UPLINK_MACS[0]);
    f
}

#[test]
fn a_gso_frame_leaves_a_tso_uplink_whole_with_its_request_charged_once() {
    let mut r = offload_rig(TSO_ALL, true);
    let (f, req) = gso_frame(GW, OUTSIDE, 20_054);
    r.guests[0].borrow_mut().inbound.push((f.clone(), req));
    r.dp.poll(1);
    let w = r.uplink.borrow();
    assert_eq!(w.outbound, [as_identity_0(&f)], "one frame, rewritten");
    assert_eq!(w.outbound_offloads, [req], "with its request");
    let c =
        r.dp.engine()
            .guest_counters(aggregation::GuestId(0))
            .unwrap();
    assert_eq!((c.tx_frames, c.tx_bytes), (1, f.len() as u64), "{c:?}");
    let d = r.dp.counters();
    assert_eq!((d.gso_uplink_tso, d.gso_uplink_software), (1, 0), "{d:?}");
    assert_eq!(d.gso_software, 0);
}

#[test]
fn a_gso_frame_for_an_uplink_without_tso_leaves_as_correct_segments() {
    let mut r = offload_rig(Offloads::NONE, true);
    let (f, req) = gso_frame(GW, OUTSIDE, 20_054);
    r.guests[0].borrow_mut().inbound.push((f.clone(), req));
    r.dp.poll(1);
    let w = r.uplink.borrow();
    let want = segments_of(&as_identity_0(&f), &req);
    assert_eq!(want.len(), 14);
    assert_eq!(w.outbound, want);
    assert!(w.outbound.iter().all(|s| offload::tcp_checksums_ok(s)));
    assert!(w.outbound_offloads.iter().all(|r| *r == TxOffload::NONE));
    // Still one decision for the super-frame.
    let c =
        r.dp.engine()
            .guest_counters(aggregation::GuestId(0))
            .unwrap();
    assert_eq!((c.tx_frames, c.tx_bytes), (1, f.len() as u64), "{c:?}");
    let d = r.dp.counters();
    assert_eq!((d.gso_uplink_tso, d.gso_uplink_software), (0, 1), "{d:?}");
}

#[test]
fn a_partial_checksum_for_an_uplink_without_csum_is_completed() {
    let mut r = offload_rig(Offloads::NONE, true);
    let (f, mut req) = gso_frame(GW, OUTSIDE, 600);
    req.gso = None;
    assert!(!offload::tcp_checksums_ok(&f), "partial as sent");
    r.guests[0].borrow_mut().inbound.push((f.clone(), req));
    r.dp.poll(1);
    let w = r.uplink.borrow();
    assert_eq!(w.outbound.len(), 1);
    assert!(offload::tcp_checksums_ok(&w.outbound[0]));
}

#[test]
fn a_gso_frame_to_another_guest_keeps_its_request() {
    let mut r = offload_rig(TSO_ALL, true);
    let (f, req) = gso_frame(GUEST_MACS[1], TSO_IPS[1], 30_054);
    r.guests[0].borrow_mut().inbound.push((f.clone(), req));
    r.dp.poll(1);
    assert_eq!(r.guests[1].borrow().delivered, [(f, req)]);
    assert!(r.uplink.borrow().outbound.is_empty());
    assert_eq!(r.dp.counters().gso_guest, 1);
}

#[test]
fn a_gso_frame_to_a_port_taking_plain_frames_arrives_as_segments() {
    let mut r = offload_rig(TSO_ALL, false);
    let (f, req) = gso_frame(GUEST_MACS[1], TSO_IPS[1], 30_054);
    r.guests[0].borrow_mut().inbound.push((f.clone(), req));
    r.dp.poll(1);
    let got: Vec<Vec<u8>> = r.guests[1]
        .borrow()
        .delivered
        .iter()
        .map(|(f, r)| {
            assert_eq!(*r, TxOffload::NONE);
            f.clone()
        })
        .collect();
    assert_eq!(got, segments_of(&f, &req));
    assert_eq!(r.dp.counters().gso_software, 1);
}

#[test]
fn a_gso_frame_to_the_own_stack_arrives_as_plain_complete_frames() {
    let mut r = offload_rig(TSO_ALL, true);
    let (f, req) = gso_frame(UPLINK_MACS[0], OWN_IP, 10_054);
    r.guests[0].borrow_mut().inbound.push((f.clone(), req));
    r.dp.poll(1);
    let mut got = Vec::new();
    while r.dp.own_rx().pop(|f| got.push(f.to_vec())).is_some() {}
    assert_eq!(got.len(), 7);
    assert_eq!(got, segments_of(&f, &req));
    assert!(got.iter().all(|s| offload::tcp_checksums_ok(s)));

    // A lone partial checksum: completed.
    let (f, mut req) = gso_frame(UPLINK_MACS[0], OWN_IP, 200);
    req.gso = None;
    r.guests[0].borrow_mut().inbound.push((f, req));
    r.dp.poll(2);
    let mut got = Vec::new();
    while r.dp.own_rx().pop(|f| got.push(f.to_vec())).is_some() {}
    assert_eq!(got.len(), 1);
    assert!(offload::tcp_checksums_ok(&got[0]));
    assert_eq!(r.dp.counters().csum_software, 1);
}

#[test]
fn a_flooded_gso_frame_reaches_other_guests_as_segments() {
    let mut r = offload_rig(TSO_ALL, true);
    let (f, req) = gso_frame([0xff; 6], OUTSIDE, 5_054);
    r.guests[0].borrow_mut().inbound.push((f.clone(), req));
    r.dp.poll(1);
    let got = &r.guests[1].borrow().delivered;
    assert_eq!(got.len(), 4, "{:?}", r.dp.counters());
    assert!(got
        .iter()
        .all(|(s, r)| *r == TxOffload::NONE && offload::tcp_checksums_ok(s)));
}

/// Requests a guest port may lend that do not fit their frames: each is
/// dropped and counted wherever the frame goes, and nothing panics.
#[test]
fn hostile_offload_requests_are_counted_drops() {
    use nic::{Gso, GsoKind, PartialCsum};
    let gso = |size| TxOffload {
        csum: None,
        gso: Some(Gso {
            kind: GsoKind::TcpV4,
            size,
        }),
    };
    let udp = |dst, ip| ipv4(dst, GUEST_MACS[0], TSO_IPS[0], ip, 3000);
    let (tcp, _) = gso_frame(GW, OUTSIDE, 3000);
    let cases: Vec<(&str, Vec<u8>, TxOffload)> = alloc::vec![
        ("gso on UDP", udp(GW, OUTSIDE), gso(1448)),
        ("gso size 0", tcp.clone(), gso(0)),
        ("gso size beyond a frame", tcp.clone(), gso(9000)),
        (
            "gso v6 on v4",
            tcp.clone(),
            TxOffload {
                gso: Some(Gso {
                    kind: GsoKind::TcpV6,
                    size: 1448
                }),
                csum: None
            }
        ),
        (
            "checksum field beyond the frame",
            ipv4(GW, GUEST_MACS[0], TSO_IPS[0], OUTSIDE, 100),
            TxOffload {
                csum: Some(PartialCsum {
                    start: 90,
                    offset: 16
                }),
                gso: None
            }
        ),
        (
            "a long frame with only a checksum",
            tcp.clone(),
            TxOffload {
                csum: Some(PartialCsum {
                    start: 34,
                    offset: 16
                }),
                gso: None
            }
        ),
    ];
    for uplink in [TSO_ALL, Offloads::NONE] {
        for (why, frame, req) in &cases {
            for (dst, ip) in [
                (GW, OUTSIDE),
                (GUEST_MACS[1], TSO_IPS[1]),
                (UPLINK_MACS[0], OWN_IP),
            ] {
                for takes in [true, false] {
                    let mut r = offload_rig(uplink, takes);
                    let mut f = frame.clone();
                    f[0..6].copy_from_slice(&dst);
                    f[30..34].copy_from_slice(&ip);
                    r.guests[0].borrow_mut().inbound.push((f, *req));
                    r.dp.poll(1);
                    let d = *r.dp.counters();
                    let out = r.uplink.borrow().outbound.len()
                        + r.guests[1].borrow().delivered.len()
                        + r.dp.own_rx().len();
                    // A port that takes requests gets the frame to judge
                    // (a vif counts its own drop); anywhere else it is
                    // dropped here or by the uplink's driver.
                    let to_port = takes && dst == GUEST_MACS[1];
                    if to_port {
                        assert_eq!(out, 1, "{why}: handed on");
                    } else {
                        assert_eq!(out, 0, "{why} to {ip:?}: {d:?}");
                        assert_eq!(
                            d.offload_errors + d.uplink_tx_full,
                            1,
                            "{why} to {ip:?}: {d:?}"
                        );
                    }
                }
            }
        }
    }
}

/// QEMU's guest ports are NICs: their frames carry no request and go out
/// through the uplink's plain path, as before offloads.
#[test]
fn plain_guest_frames_take_the_plain_path_on_an_offloading_uplink() {
    let mut dp = Datapath::new(Config::with_mode(Mode::Identity), 16);
    let (nic, up) = offload_nic(UPLINK_MACS[0], TSO_ALL);
    dp.add_uplink(nic, 1000, false).unwrap();
    let gw = add_nic_guest(&mut dp);
    dp.program_all();
    let f = ipv4(GW, GUEST_MACS[0], GUEST_IPS[0], [8, 8, 8, 8], 1000);
    gw.borrow_mut().inbound.push(f.clone());
    dp.poll(1);
    let w = up.borrow();
    assert_eq!(w.outbound, [as_identity_0(&f)]);
    assert_eq!(w.outbound_offloads, [TxOffload::NONE]);
    assert_eq!(*dp.counters(), crate::DatapathCounters::default());
}

/// The capture tap sees a super-frame as it crosses each port: whole, as
/// the guest sent it and as it left (the device segments it after).
#[test]
fn the_tap_sees_a_super_frame_whole_on_both_ports() {
    use crate::{Tap, TapDir, TapPort};
    type Seen = Rc<RefCell<Vec<(TapPort, TapDir, usize)>>>;
    struct Recorder(Seen);
    impl Tap for Recorder {
        fn frame(&mut self, port: TapPort, dir: TapDir, frame: &[u8]) {
            self.0.borrow_mut().push((port, dir, frame.len()));
        }
    }
    let mut r = offload_rig(TSO_ALL, true);
    let seen: Seen = Rc::default();
    r.dp.set_tap(Some(Box::new(Recorder(seen.clone()))));
    let (f, req) = gso_frame(GW, OUTSIDE, 40_054);
    r.guests[0].borrow_mut().inbound.push((f, req));
    r.dp.poll(1);
    assert_eq!(
        *seen.borrow(),
        [
            (TapPort::Guest(aggregation::GuestId(0)), TapDir::In, 40_054),
            (TapPort::Uplink(UplinkId(0)), TapDir::Out, 40_054)
        ]
    );
}
