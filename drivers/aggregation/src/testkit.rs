//! Frame builders and an operation-sequence harness that checks the engine's
//! invariants after every step. Shared by the unit tests, the property
//! tests, the cargo-fuzz target and the benchmark; not part of the API.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::{
    Config, Engine, GuestId, IdentityId, MacAddr, Mode, Moves, OwnTxDecision, RxDecision, Steering,
    TxDecision, UplinkConfig, UplinkId, MAX_UPLINKS,
};

/// Write an IPv4 frame header (no options) into `f`; returns 34.
pub fn ipv4(f: &mut [u8], dst: MacAddr, src: MacAddr, sip: [u8; 4], dip: [u8; 4]) -> usize {
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f[14] = 0x45;
    f[15..26].fill(0);
    f[23] = 17;
    f[26..30].copy_from_slice(&sip);
    f[30..34].copy_from_slice(&dip);
    34
}

/// Write an ARP frame into `f`; returns 42.
pub fn arp(
    f: &mut [u8],
    oper: u16,
    dst: MacAddr,
    sha: MacAddr,
    spa: [u8; 4],
    tha: MacAddr,
    tpa: [u8; 4],
) -> usize {
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&sha.0);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    f[20..22].copy_from_slice(&oper.to_be_bytes());
    f[22..28].copy_from_slice(&sha.0);
    f[28..32].copy_from_slice(&spa);
    f[32..38].copy_from_slice(&tha.0);
    f[38..42].copy_from_slice(&tpa);
    42
}

/// Write an IPv6 neighbour advertisement with a target link-layer address
/// option (RFC 4861 4.4) into `f`; returns 86. The checksum is left zero:
/// the engine patches it incrementally and does not verify it.
pub fn ipv6_na(f: &mut [u8], dst: MacAddr, src: MacAddr, sip: [u8; 16], dip: [u8; 16]) -> usize {
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f[14..86].fill(0);
    f[14] = 0x60;
    f[18..20].copy_from_slice(&32u16.to_be_bytes());
    f[20] = 58;
    f[21] = 255;
    f[22..38].copy_from_slice(&sip);
    f[38..54].copy_from_slice(&dip);
    f[54] = 136;
    f[62..78].copy_from_slice(&sip);
    f[78] = 2;
    f[79] = 1;
    f[80..86].copy_from_slice(&src.0);
    86
}

/// Uplink *k*'s factory MAC in the harness.
pub const fn uplink_mac(k: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, 0x10 + k])
}
/// Guest *g*'s MAC in the harness.
pub const fn guest_mac(g: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, 0x20 + g])
}
/// Guest *g*'s IPv4 address.
pub const fn guest_ip(g: u8) -> [u8; 4] {
    [10, 0, 0, 10 + g]
}
/// Guest 0's IPv6 address.
pub const GUEST0_V6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
/// A host out on the wire (gateway).
pub const PEER_MAC: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
pub const PEER_IP: [u8; 4] = [10, 0, 0, 1];
pub const OWN_IP: [u8; 4] = [10, 0, 0, 2];

pub const HARNESS_UPLINKS: u8 = 4;
pub const HARNESS_GUESTS: u8 = 6;

/// One step of a random operation sequence.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// A structured guest frame: `kind` picks the shape, `spoof` bit 0 uses
    /// another guest's source MAC, bit 1 another guest's source IP, bit 2
    /// truncates to `cut` bytes.
    GuestTx {
        guest: u8,
        kind: u8,
        other: u8,
        spoof: u8,
        cut: u8,
    },
    /// A structured frame from the wire.
    UplinkRx {
        uplink: u8,
        kind: u8,
        guest: u8,
        identity: u8,
    },
    OwnTx {
        to_guest: bool,
    },
    Tick {
        ms: u16,
    },
    Link {
        uplink: u8,
        up: bool,
    },
    Bind {
        guest: u8,
        set: u16,
    },
    BindAuto {
        guest: u8,
    },
    Pin {
        identity: u8,
        on: bool,
    },
    Exclusive {
        uplink: u8,
        on: bool,
    },
    /// The console's operator swap of two identities.
    Swap {
        a: u8,
        b: u8,
    },
    /// The console's rebalance-now.
    RebalanceNow,
    /// Raw bytes from the fuzzer: transmitted by a guest or received.
    RawTx {
        guest: u8,
        len: u8,
    },
    RawRx {
        uplink: u8,
        len: u8,
    },
}

/// An engine with four uplinks (filter slots 1, 2, 16, 4), six guests (guest
/// 0 also has an IPv6 address) and the own stack on identity 0, plus the
/// checks run after every [`Op`].
pub struct Harness {
    pub engine: Engine,
    pub now: u64,
    buf: [u8; 256],
}

impl Harness {
    pub fn new(mode: Mode) -> Harness {
        let mut cfg = Config::with_mode(mode);
        cfg.rebalance_interval_ns = 100_000_000;
        cfg.min_dwell_ns = 1_000_000_000;
        cfg.overload_permille = 300;
        let mut engine = Engine::new(cfg);
        let slots = [1, 2, 16, 4];
        for k in 0..HARNESS_UPLINKS {
            let mut u = UplinkConfig::new(uplink_mac(k));
            u.capacity_mbps = 1;
            u.filter_slots = slots[k as usize];
            engine.add_uplink(u).expect("harness uplink");
        }
        for g in 0..HARNESS_GUESTS {
            let v4 = IpAddr::V4(Ipv4Addr::from(guest_ip(g)));
            let v6 = IpAddr::V6(Ipv6Addr::from(GUEST0_V6));
            let ips: &[IpAddr] = if g == 0 { &[v4, v6] } else { &[v4] };
            engine.add_guest(guest_mac(g), ips).expect("harness guest");
        }
        engine
            .set_own_stack(IdentityId(0), &[IpAddr::V4(Ipv4Addr::from(OWN_IP))])
            .expect("own stack");
        Harness {
            engine,
            now: 0,
            buf: [0; 256],
        }
    }

    /// Decode `data` as a mode byte and a sequence of operations (raw frame
    /// bytes inline) and run them, checking after every step. The fuzz
    /// target's entry point. Returns the first violated property.
    pub fn run_bytes(data: &[u8]) -> Result<(), &'static str> {
        let Some((&first, mut rest)) = data.split_first() else {
            return Ok(());
        };
        let mode = if first & 1 == 0 {
            Mode::Identity
        } else {
            Mode::Literal
        };
        let mut h = Harness::new(mode);
        while let Some((op, tail, raw)) = decode(rest) {
            if let Some(raw) = raw {
                let n = raw.len().min(h.buf.len());
                h.buf[..n].copy_from_slice(&raw[..n]);
            }
            h.apply(op)?;
            rest = tail;
        }
        Ok(())
    }

    /// Run one operation and check every property the issue names.
    pub fn apply(&mut self, op: Op) -> Result<(), &'static str> {
        let e = &self.engine;
        let mut pinned_before = [None; MAX_UPLINKS];
        let mut excl_before = [None; MAX_UPLINKS];
        for (i, before) in pinned_before
            .iter_mut()
            .enumerate()
            .take(e.identity_count())
        {
            let id = IdentityId(i as u8);
            if e.is_pinned(id) {
                *before = e.holder(id);
            }
        }
        for (u, before) in excl_before.iter_mut().enumerate().take(e.uplink_count()) {
            let up = UplinkId(u as u8);
            if e.is_exclusive(up) {
                *before = Some((e.held(up), e.uplink_mac(up)));
            }
        }
        let mut moves = Moves::NONE;
        match op {
            Op::GuestTx {
                guest,
                kind,
                other,
                spoof,
                cut,
            } => self.guest_tx(guest, kind, other, spoof, cut)?,
            Op::UplinkRx {
                uplink,
                kind,
                guest,
                identity,
            } => self.uplink_rx(uplink, kind, guest, identity)?,
            Op::OwnTx { to_guest } => {
                let id0 = self.engine.identity_mac(IdentityId(0)).unwrap_or_default();
                let dst = if to_guest { guest_mac(1) } else { PEER_MAC };
                let n = ipv4(&mut self.buf, dst, id0, OWN_IP, PEER_IP);
                let d = self
                    .engine
                    .own_transmit(self.now, &mut self.buf[..n.max(60)]);
                if let OwnTxDecision::Send { uplink, moves: m } = d {
                    moves = m;
                    if !self.engine.is_link_up(uplink) {
                        return Err("own frame sent on a dead uplink");
                    }
                    if self.engine.holder(IdentityId(0)) != Some(uplink) {
                        return Err("own frame sent from an uplink not holding its source");
                    }
                }
            }
            Op::Tick { ms } => {
                self.now += ms as u64 * 1_000_000;
                moves = self.engine.tick(self.now);
            }
            Op::Link { uplink, up } => {
                moves = self
                    .engine
                    .link_changed(self.now, UplinkId(uplink % HARNESS_UPLINKS), up);
            }
            Op::Bind { guest, set } => {
                let ip = IpAddr::V4(Ipv4Addr::from(guest_ip(guest % HARNESS_GUESTS)));
                let mut ids = [IdentityId(0); MAX_UPLINKS];
                let mut n = 0;
                for i in 0..HARNESS_UPLINKS {
                    if set & (1 << i) != 0 {
                        ids[n] = IdentityId(i);
                        n += 1;
                    }
                }
                self.engine
                    .bind(ip, &ids[..n])
                    .map_err(|_| "bind refused")?;
            }
            Op::BindAuto { guest } => {
                let ip = IpAddr::V4(Ipv4Addr::from(guest_ip(guest % HARNESS_GUESTS)));
                self.engine.bind_auto(ip).map_err(|_| "bind_auto refused")?;
            }
            Op::Pin { identity, on } => {
                let id = IdentityId(identity % HARNESS_UPLINKS);
                let r = if on {
                    self.engine.pin(id)
                } else {
                    self.engine.unpin(id)
                };
                r.map_err(|_| "pin refused")?;
                if !on {
                    pinned_before[id.0 as usize] = None;
                }
            }
            Op::Exclusive { uplink, on } => {
                let u = UplinkId(uplink % HARNESS_UPLINKS);
                self.engine
                    .set_exclusive(u, on)
                    .map_err(|_| "set_exclusive refused")?;
                if !on {
                    excl_before[u.0 as usize] = None;
                }
            }
            Op::RawTx { guest, len } => {
                let g = GuestId((guest % HARNESS_GUESTS) as u16);
                let n = (len as usize).min(self.buf.len());
                let d = self.engine.guest_transmit(self.now, g, &mut self.buf[..n]);
                self.check_tx(g, d, n, None)?;
            }
            Op::Swap { a, b } => {
                let (a, b) = (
                    IdentityId(a % HARNESS_UPLINKS),
                    IdentityId(b % HARNESS_UPLINKS),
                );
                // Refusals (pinned, exclusive) are fine; a move must obey them.
                if let Ok(m) = self.engine.swap(self.now, a, b) {
                    moves = m;
                }
            }
            Op::RebalanceNow => moves = self.engine.rebalance_now(self.now),
            Op::RawRx { uplink, len } => {
                let n = (len as usize).min(self.buf.len());
                let d = self.engine.uplink_receive(
                    self.now,
                    UplinkId(uplink % (HARNESS_UPLINKS + 1)),
                    &mut self.buf[..n],
                );
                self.check_rx(d, n)?;
            }
        }
        let e = &self.engine;
        e.check_invariants()?;
        for (i, before) in pinned_before.iter().enumerate().take(e.identity_count()) {
            if let Some(h) = before {
                if e.holder(IdentityId(i as u8)) != Some(*h) {
                    return Err("a pinned identity moved");
                }
            }
        }
        for (u, before) in excl_before.iter().enumerate().take(e.uplink_count()) {
            if let Some(b) = before {
                let up = UplinkId(u as u8);
                if (e.held(up), e.uplink_mac(up)) != *b {
                    return Err("an exclusive uplink's MAC changed");
                }
            }
        }
        for m in moves.iter() {
            if e.holder(m.identity).is_none() || m.from == m.to {
                return Err("a move names nothing");
            }
        }
        Ok(())
    }

    fn guest_tx(
        &mut self,
        guest: u8,
        kind: u8,
        other: u8,
        spoof: u8,
        cut: u8,
    ) -> Result<(), &'static str> {
        let gi = guest % HARNESS_GUESTS;
        let oi = other % HARNESS_GUESTS;
        let g = GuestId(gi as u16);
        let src = if spoof & 1 != 0 && oi != gi {
            guest_mac(oi)
        } else {
            guest_mac(gi)
        };
        let sip = if spoof & 2 != 0 && oi != gi {
            guest_ip(oi)
        } else {
            guest_ip(gi)
        };
        let spoofed = src != guest_mac(gi) || sip != guest_ip(gi);
        let id = self
            .engine
            .identity_mac(IdentityId(other % HARNESS_UPLINKS))
            .unwrap_or_default();
        let b = &mut self.buf;
        let n = match kind % 7 {
            0 => ipv4(b, PEER_MAC, src, sip, PEER_IP),
            1 => arp(
                b,
                1,
                MacAddr::BROADCAST,
                src,
                sip,
                MacAddr::default(),
                PEER_IP,
            ),
            2 => arp(b, 2, PEER_MAC, src, sip, PEER_MAC, PEER_IP),
            3 => ipv4(b, guest_mac(oi), src, sip, guest_ip(oi)),
            4 => ipv4(b, id, src, sip, guest_ip(oi)),
            5 => {
                let mut v6 = GUEST0_V6;
                if gi != 0 || spoof & 2 != 0 {
                    v6[15] = 0x99;
                }
                ipv6_na(
                    b,
                    PEER_MAC,
                    src,
                    v6,
                    [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                )
            }
            _ => arp(
                b,
                1,
                MacAddr::BROADCAST,
                src,
                [0; 4],
                MacAddr::default(),
                sip,
            ),
        };
        let n = if spoof & 4 != 0 {
            (cut as usize).min(n)
        } else {
            n.max(60)
        };
        let d = self.engine.guest_transmit(self.now, g, &mut self.buf[..n]);
        if spoofed && !matches!(d, TxDecision::Drop(_)) {
            return Err("a spoofed frame was not dropped");
        }
        self.check_tx(g, d, n, Some(kind % 7))
    }

    /// The transmit properties: a denied IP never gets an uplink, no frame
    /// leaves with another guest's source, literal mode always restores.
    fn check_tx(
        &self,
        g: GuestId,
        d: TxDecision,
        n: usize,
        kind: Option<u8>,
    ) -> Result<(), &'static str> {
        let e = &self.engine;
        let gmac = e.guest_mac(g).ok_or("harness guest vanished")?;
        let TxDecision::Send {
            uplink, steering, ..
        } = d
        else {
            return Ok(());
        };
        if !e.is_link_up(uplink) {
            return Err("frame sent on a dead uplink");
        }
        let frame = &self.buf[..n];
        let p = crate::wire::parse(frame).map_err(|_| "sent a frame that does not parse")?;
        // The IP the binding was taken from.
        let ip = match p.l3 {
            crate::wire::L3::Arp { spa, tpa, .. } => {
                if spa == 0xffff_0000_0000 {
                    tpa
                } else {
                    spa
                }
            }
            crate::wire::L3::Ip {
                src: 0,
                dad_target: Some(t),
                ..
            } => t,
            crate::wire::L3::Ip { src, .. } => src,
            crate::wire::L3::Other(_) => return Err("sent a non-IP frame"),
        };
        let ipaddr = if ip >> 32 == 0xffff {
            IpAddr::V4(Ipv4Addr::from(ip as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(ip))
        };
        if e.guest_of_ip(ipaddr) != Some(g) {
            return Err("a frame left with another guest's source IP");
        }
        let binding = e.binding(ipaddr).ok_or("no binding")?;
        if binding.is_empty() {
            return Err("a denied IP got an uplink");
        }
        let src = MacAddr::from_u64(p.src);
        match (e.mode(), steering) {
            (Mode::Identity, Steering::Rewritten { identity, mac }) => {
                if src != mac || e.identity_mac(identity) != Some(mac) {
                    return Err("identity mode: source is not the chosen identity");
                }
                if e.holder(identity) != Some(uplink) || !binding.contains(identity) {
                    return Err("identity mode: identity not bound or not held by the uplink");
                }
                if let crate::wire::L3::Arp { sha, .. } = p.l3 {
                    if sha != p.src {
                        return Err("identity mode: ARP sender not rewritten");
                    }
                }
            }
            (Mode::Literal, Steering::WriteMacThenRestore { mac, restore }) => {
                if mac != gmac || src != gmac {
                    return Err("literal mode: frame source is not the sending guest");
                }
                if e.uplink_mac(uplink) != Some(restore) {
                    return Err("literal mode: restore is not the uplink's MAC");
                }
                if !e.held(uplink).iter().any(|i| binding.contains(i)) {
                    return Err("literal mode: uplink holds no bound identity");
                }
            }
            _ => return Err("steering does not match the mode"),
        }
        if kind == Some(3) || kind == Some(4) {
            return Err("a frame to a local guest left through an uplink");
        }
        Ok(())
    }

    fn uplink_rx(
        &mut self,
        uplink: u8,
        kind: u8,
        guest: u8,
        identity: u8,
    ) -> Result<(), &'static str> {
        let gi = guest % HARNESS_GUESTS;
        let id = self
            .engine
            .identity_mac(IdentityId(identity % HARNESS_UPLINKS))
            .unwrap_or_default();
        let b = &mut self.buf;
        let n = match kind % 6 {
            0 => ipv4(b, id, PEER_MAC, PEER_IP, guest_ip(gi)),
            1 => arp(
                b,
                1,
                MacAddr::BROADCAST,
                PEER_MAC,
                PEER_IP,
                MacAddr::default(),
                guest_ip(gi),
            ),
            2 => arp(b, 2, id, PEER_MAC, PEER_IP, id, guest_ip(gi)),
            3 => ipv4(b, guest_mac(gi), PEER_MAC, PEER_IP, guest_ip(gi)),
            4 => ipv4(b, MacAddr::BROADCAST, PEER_MAC, PEER_IP, [255; 4]),
            _ => ipv4(b, id, PEER_MAC, PEER_IP, OWN_IP),
        };
        let n = n.max(60);
        let d = self.engine.uplink_receive(
            self.now,
            UplinkId(uplink % HARNESS_UPLINKS),
            &mut self.buf[..n],
        );
        self.check_rx(d, n)
    }

    fn check_rx(&self, d: RxDecision, n: usize) -> Result<(), &'static str> {
        let e = &self.engine;
        if let RxDecision::ToGuest { guest } = d {
            let gmac = e.guest_mac(guest).ok_or("delivered to no guest")?;
            let p = crate::wire::parse(&self.buf[..n]).map_err(|_| "delivered a bad frame")?;
            if MacAddr::from_u64(p.dst) != gmac && p.dst & (1 << 40) == 0 {
                return Err("delivered unicast not addressed to the guest");
            }
            if let Some(ip) = p.dst_ip() {
                let ipaddr = if ip >> 32 == 0xffff {
                    IpAddr::V4(Ipv4Addr::from(ip as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(ip))
                };
                if let Some(b) = e.binding(ipaddr) {
                    if b.is_empty() {
                        return Err("a denied IP received a frame");
                    }
                }
            }
        }
        if let RxDecision::Flood { guests } = d {
            // A denied guest hears no broadcast: it must have an IP of the
            // frame's family bound (any IP, for other ethertypes).
            let l3 = crate::wire::parse(&self.buf[..n]).map_err(|_| "flooded a bad frame")?;
            for g in guests.iter() {
                let gi = g.0 as u8;
                let v4 = e.binding(IpAddr::V4(Ipv4Addr::from(guest_ip(gi))));
                let v4 = v4.ok_or("flooded to no guest")?;
                let v6 = match gi {
                    0 => e.binding(IpAddr::V6(Ipv6Addr::from(GUEST0_V6))),
                    _ => None,
                };
                let v6 = v6.unwrap_or_default();
                let ok = match l3.l3 {
                    crate::wire::L3::Arp { .. } => !v4.is_empty(),
                    crate::wire::L3::Ip { dst, .. } if dst >> 32 == 0xffff => !v4.is_empty(),
                    crate::wire::L3::Ip { .. } => !v6.is_empty(),
                    crate::wire::L3::Other(_) => !v4.is_empty() || !v6.is_empty(),
                };
                if !ok {
                    return Err("a broadcast reached a guest denied in its family");
                }
            }
        }
        Ok(())
    }
}

/// One decoded operation, the bytes after it, and its raw frame if any.
pub type Decoded<'a> = (Op, &'a [u8], Option<&'a [u8]>);

/// Decode one operation from the front of `data`: returns it, the rest,
/// and for raw-frame operations the frame bytes.
pub fn decode(data: &[u8]) -> Option<Decoded<'_>> {
    let (&code, rest) = data.split_first()?;
    let arg = |i: usize| rest.get(i).copied().unwrap_or(0);
    let used = |k: usize| rest.get(k.min(rest.len())..).unwrap_or(&[]);
    Some(match code % 13 {
        0 => (
            Op::GuestTx {
                guest: arg(0),
                kind: arg(1),
                other: arg(2),
                // Spoof only now and then, so most frames reach the checks.
                spoof: if code & 0x30 == 0x30 { arg(3) } else { 0 },
                cut: arg(4),
            },
            used(5),
            None,
        ),
        1 => (
            Op::UplinkRx {
                uplink: arg(0),
                kind: arg(1),
                guest: arg(2),
                identity: arg(3),
            },
            used(4),
            None,
        ),
        2 => (
            Op::OwnTx {
                to_guest: code & 0x10 != 0,
            },
            used(0),
            None,
        ),
        3 => (
            Op::Tick {
                ms: u16::from_le_bytes([arg(0), arg(1)]),
            },
            used(2),
            None,
        ),
        4 => (
            Op::Link {
                uplink: arg(0),
                up: code & 0x10 != 0,
            },
            used(1),
            None,
        ),
        5 => (
            Op::Bind {
                guest: arg(0),
                set: arg(1) as u16,
            },
            used(2),
            None,
        ),
        6 => (Op::BindAuto { guest: arg(0) }, used(1), None),
        7 => (
            Op::Pin {
                identity: arg(0),
                on: code & 0x10 != 0,
            },
            used(1),
            None,
        ),
        8 => (
            Op::Exclusive {
                uplink: arg(0),
                on: code & 0x10 != 0,
            },
            used(1),
            None,
        ),
        11 => (
            Op::Swap {
                a: arg(0),
                b: arg(1),
            },
            used(2),
            None,
        ),
        12 => (Op::RebalanceNow, used(0), None),
        c => {
            let body = used(2);
            let n = (arg(1) as usize).min(body.len());
            let len = n as u8;
            let op = if c == 9 {
                Op::RawTx { guest: arg(0), len }
            } else {
                Op::RawRx {
                    uplink: arg(0),
                    len,
                }
            };
            (op, &body[n..], Some(&body[..n]))
        }
    })
}
