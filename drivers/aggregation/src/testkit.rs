//! Frame builders and an operation-sequence harness that checks the engine's
//! invariants after every step. Shared by the unit tests, the property
//! tests, the cargo-fuzz target and the benchmark; not part of the API.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::{
    Config, Engine, GuestId, IdentityId, IpNet, MacAddr, Mode, Moves, OwnTxDecision, RxDecision,
    Steering, TxDecision, UplinkConfig, UplinkId, MAX_UPLINKS,
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

/// IPv6 next header "hop-by-hop options", with a router alert for MLD
/// (RFC 2711) and padding: one 8-byte extension header.
pub const EXT_HOP_BY_HOP: (u8, [u8; 8]) = (0, [0, 0, 5, 2, 0, 0, 1, 0]);
/// IPv6 "destination options" holding only padding (PadN, RFC 8200 4.2).
pub const EXT_DEST_OPTS: (u8, [u8; 8]) = (60, [0, 0, 1, 4, 0, 0, 0, 0]);
/// A first fragment header (offset 0, more fragments).
pub const EXT_FRAGMENT: (u8, [u8; 8]) = (44, [0, 0, 0, 1, 0, 0, 0, 7]);

/// The Internet checksum (RFC 1071) of `data`, added to `init`.
pub fn internet_checksum(data: &[u8], init: u32) -> u16 {
    let mut sum = init;
    for c in data.chunks(2) {
        let hi = c[0];
        let lo = c.get(1).copied().unwrap_or(0);
        sum += u16::from_be_bytes([hi, lo]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The RFC 8200 8.1 pseudo-header sum for an upper-layer message of `len`
/// bytes with next header `nh` in an IPv6 frame.
fn pseudo_sum(f: &[u8], len: usize, nh: u8) -> u32 {
    let mut s = 0u32;
    for c in f[22..54].chunks(2) {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    s + (len as u32 >> 16) + (len as u32 & 0xffff) + nh as u32
}

/// Write an IPv6 frame into `f`: the header, the extension headers `exts`
/// in order (each 8 bytes; the first byte, next header, is filled in),
/// then `payload` as upper layer `upper`. An ICMPv6 payload gets its
/// checksum (bytes 2–3) computed. Returns the frame's length (at least 60).
#[allow(clippy::too_many_arguments)]
pub fn ipv6_packet(
    f: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    sip: [u8; 16],
    dip: [u8; 16],
    exts: &[(u8, [u8; 8])],
    upper: u8,
    payload: &[u8],
) -> usize {
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f[14..54].fill(0);
    f[14] = 0x60;
    let plen = exts.len() * 8 + payload.len();
    f[18..20].copy_from_slice(&(plen as u16).to_be_bytes());
    f[20] = exts.first().map_or(upper, |e| e.0);
    f[21] = 255;
    f[22..38].copy_from_slice(&sip);
    f[38..54].copy_from_slice(&dip);
    let mut off = 54;
    for (i, (_, body)) in exts.iter().enumerate() {
        f[off..off + 8].copy_from_slice(body);
        f[off] = exts.get(i + 1).map_or(upper, |e| e.0);
        off += 8;
    }
    f[off..off + payload.len()].copy_from_slice(payload);
    if upper == crate::wire::NH_ICMPV6 && payload.len() >= 4 {
        f[off + 2..off + 4].fill(0);
        let ck = internet_checksum(
            &f[off..off + payload.len()],
            pseudo_sum(f, payload.len(), 58),
        );
        f[off + 2..off + 4].copy_from_slice(&ck.to_be_bytes());
    }
    let end = off + payload.len();
    if end < 60 {
        f[end..60].fill(0);
    }
    end.max(60)
}

/// Whether the ICMPv6 message in `frame` (behind any extension headers)
/// has a valid checksum; `None` if the frame carries none.
pub fn icmp6_checksum_ok(frame: &[u8]) -> Option<bool> {
    let p = crate::wire::parse(frame).ok()?;
    let m = p.icmp6()?;
    let plen = u16::from_be_bytes([frame[18], frame[19]]) as usize;
    let end = (54 + plen).min(frame.len());
    let body = frame.get(m.at..end)?;
    Some(internet_checksum(body, pseudo_sum(frame, body.len(), 58)) == 0)
}

/// An NDP message body into `b` (RFC 4861 4.1–4.5): type, code 0, a zero
/// checksum, the fixed part (flags zero; `target` for NS, NA and
/// redirect), then one link-layer option (type 1 source, 2 target) per
/// `opts` entry. Returns its length.
pub fn nd_body(b: &mut [u8], ty: u8, target: [u8; 16], opts: &[(u8, MacAddr)]) -> usize {
    let fixed = match ty {
        133 => 8,
        134 => 16,
        135 | 136 => 24,
        _ => 40,
    };
    b[..fixed].fill(0);
    b[0] = ty;
    if matches!(ty, 135..=137) {
        b[8..24].copy_from_slice(&target);
    }
    if ty == 136 {
        b[4] = 0x60; // solicited, override (RFC 4861 4.4)
    }
    let mut off = fixed;
    for (t, mac) in opts {
        b[off] = *t;
        b[off + 1] = 1;
        b[off + 2..off + 8].copy_from_slice(&mac.0);
        off += 8;
    }
    off
}

/// An MLDv2 report (RFC 3810 5.2) joining `group`, into `b`; returns 28.
pub fn mld2_report_body(b: &mut [u8], group: [u8; 16]) -> usize {
    b[..28].fill(0);
    b[0] = 143;
    b[7] = 1; // one record
    b[8] = 4; // CHANGE_TO_EXCLUDE_MODE: join
    b[12..28].copy_from_slice(&group);
    28
}

/// The solicited-node multicast group of `a` (RFC 4291 2.7.1), and its MAC
/// (RFC 2464 7).
pub fn solicited_node(a: [u8; 16]) -> ([u8; 16], MacAddr) {
    let mut g = [0u8; 16];
    g[0] = 0xff;
    g[1] = 0x02;
    g[11] = 1;
    g[12] = 0xff;
    g[13..16].copy_from_slice(&a[13..16]);
    (g, MacAddr([0x33, 0x33, 0xff, a[13], a[14], a[15]]))
}

/// A link-local address whose last byte is `k`.
pub const fn link_local(k: u8) -> [u8; 16] {
    [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, k]
}

/// The IPv6 prefix guests 0 and 1 share in the harness, and its address
/// with last byte `k`.
pub const PREFIX6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
pub const fn in_prefix(k: u8) -> [u8; 16] {
    let mut a = PREFIX6;
    a[15] = k;
    a
}
/// A host out on the wire, in IPv6.
pub const PEER_V6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xfe];

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

/// An engine with four uplinks (filter slots 1, 2, 16, 4), six guests
/// (guest 0 also has an IPv6 address, guests 0 and 1 share the IPv6 prefix
/// [`PREFIX6`]; three learned addresses per guest at most) and the own
/// stack on identity 0, plus the checks run after every [`Op`].
#[derive(Clone)]
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
        cfg.learn_max = 3;
        cfg.learn_idle_ns = 2_000_000_000;
        let mut engine = Engine::new(cfg);
        let slots = [1, 2, 16, 4];
        for k in 0..HARNESS_UPLINKS {
            let mut u = UplinkConfig::new(uplink_mac(k));
            u.capacity_mbps = 1;
            u.filter_slots = slots[k as usize];
            engine.add_uplink(u).expect("harness uplink");
        }
        let prefix = IpNet::new(IpAddr::V6(Ipv6Addr::from(PREFIX6)), 64).expect("prefix");
        for g in 0..HARNESS_GUESTS {
            let v4 = IpNet::host(IpAddr::V4(Ipv4Addr::from(guest_ip(g))));
            let v6 = IpNet::host(IpAddr::V6(Ipv6Addr::from(GUEST0_V6)));
            let ips: &[IpNet] = match g {
                0 => &[v4, v6, prefix],
                1 => &[v4, prefix],
                _ => &[v4],
            };
            engine
                .add_guest_nets(guest_mac(g), ips)
                .expect("harness guest");
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

    /// The first `n` bytes of the buffer as a frame from guest `g`, decided
    /// by the engine and, on a copy of it, by the general path alone: both
    /// must decide alike, edit the frame alike and leave the same state.
    /// (A frame the fast path cannot take goes to the general path alone.)
    fn transmit(&mut self, g: GuestId, n: usize) -> Result<TxDecision, &'static str> {
        if !Engine::fast_path_may_take(&self.buf[..n]) {
            // The engine hands this frame to the general path untouched:
            // both would be the same code on the same state. (Copying the
            // 290 KiB engine to compare them anyway was a quarter of the
            // fuzz target's time.)
            return Ok(self.engine.guest_transmit(self.now, g, &mut self.buf[..n]));
        }
        let mut general = self.engine.clone();
        let mut copy = self.buf;
        let want = general.guest_transmit_general(self.now, g, &mut copy[..n]);
        let d = self.engine.guest_transmit(self.now, g, &mut self.buf[..n]);
        if d != want || copy[..n] != self.buf[..n] || !general.same_frame_state(&self.engine) {
            return Err("the fast path decided a guest frame unlike the general path");
        }
        Ok(d)
    }

    /// As [`Harness::transmit`], for a frame received on `uplink`.
    fn receive(&mut self, uplink: UplinkId, n: usize) -> Result<RxDecision, &'static str> {
        if !Engine::fast_path_may_take(&self.buf[..n]) {
            // As in `transmit`.
            return Ok(self
                .engine
                .uplink_receive(self.now, uplink, &mut self.buf[..n]));
        }
        let mut general = self.engine.clone();
        let mut copy = self.buf;
        let want = general.uplink_receive_general(self.now, uplink, &mut copy[..n]);
        let d = self
            .engine
            .uplink_receive(self.now, uplink, &mut self.buf[..n]);
        if d != want || copy[..n] != self.buf[..n] || !general.same_frame_state(&self.engine) {
            return Err("the fast path decided a received frame unlike the general path");
        }
        Ok(d)
    }

    /// Decode `data` as a mode byte and a sequence of operations (raw frame
    /// bytes inline) and run them, checking after every step. The fuzz
    /// target's entry point. Returns the first violated property.
    pub fn run_bytes(data: &[u8]) -> Result<(), &'static str> {
        let Some((&first, ops)) = data.split_first() else {
            return Ok(());
        };
        Harness::new(Harness::mode_for(first)).run_ops(ops)
    }

    /// The mode the first byte of a [`Harness::run_bytes`] input picks.
    pub fn mode_for(first: u8) -> Mode {
        if first & 1 == 0 {
            Mode::Identity
        } else {
            Mode::Literal
        }
    }

    /// [`Harness::run_bytes`] after the mode byte, on this harness: the
    /// fuzz target runs each input on a copy of a harness it built once
    /// per mode (building one was a fifth of its time).
    pub fn run_ops(&mut self, mut ops: &[u8]) -> Result<(), &'static str> {
        while let Some((op, tail, raw)) = decode(ops) {
            if let Some(raw) = raw {
                let n = raw.len().min(self.buf.len());
                self.buf[..n].copy_from_slice(&raw[..n]);
            }
            self.apply(op)?;
            ops = tail;
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
                let ip = if guest & 0x80 != 0 {
                    IpNet::new(IpAddr::V6(Ipv6Addr::from(PREFIX6)), 64).ok_or("prefix")?
                } else {
                    IpNet::host(IpAddr::V4(Ipv4Addr::from(guest_ip(guest % HARNESS_GUESTS))))
                };
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
                let d = self.transmit(g, n)?;
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
                let valid = icmp6_checksum_ok(&self.buf[..n]);
                let d = self.receive(UplinkId(uplink % (HARNESS_UPLINKS + 1)), n)?;
                self.check_rx(d, n, valid)?;
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
        // IPv4 and ARP: a spoof is plain to see. IPv6 frames below pick
        // their addresses from `other` (link-local, in-prefix: several
        // guests contend for them) and are judged by `check_tx`.
        let kind = kind % GUEST_KINDS;
        let spoofed = src != guest_mac(gi) || (kind < 5 && sip != guest_ip(gi));
        let id = self
            .engine
            .identity_mac(IdentityId(other % HARNESS_UPLINKS))
            .unwrap_or_default();
        let ll = link_local(if spoof & 2 != 0 { oi } else { gi } + 1);
        let mut body = [0u8; 64];
        let b = &mut self.buf;
        let n = match kind {
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
                let k = nd_body(&mut body, 136, v6, &[(2, src)]);
                ipv6_packet(b, PEER_MAC, src, v6, PEER_V6, &[], 58, &body[..k])
            }
            6 => arp(
                b,
                1,
                MacAddr::BROADCAST,
                src,
                [0; 4],
                MacAddr::default(),
                sip,
            ),
            // UDP from an address in the shared prefix.
            7 => ipv6_packet(
                b,
                PEER_MAC,
                src,
                in_prefix(oi + 1),
                PEER_V6,
                &[],
                17,
                &[0; 8],
            ),
            // Neighbour solicitation from a link-local address.
            8 => {
                let (grp, gmac) = solicited_node(PEER_V6);
                let k = nd_body(&mut body, 135, PEER_V6, &[(1, src)]);
                ipv6_packet(b, gmac, src, ll, grp, &[], 58, &body[..k])
            }
            // Duplicate address detection for an in-prefix address.
            9 => {
                let t = in_prefix(oi + 1);
                let (grp, gmac) = solicited_node(t);
                let k = nd_body(&mut body, 135, t, &[]);
                ipv6_packet(b, gmac, src, [0; 16], grp, &[], 58, &body[..k])
            }
            // A router advertisement: never let out.
            10 => {
                let k = nd_body(&mut body, 134, [0; 16], &[(1, src)]);
                let all = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                ipv6_packet(
                    b,
                    MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                    src,
                    ll,
                    all,
                    &[],
                    58,
                    &body[..k],
                )
            }
            // An MLDv2 report behind a hop-by-hop header, from :: or link-local.
            11 => {
                let k = mld2_report_body(&mut body, solicited_node(ll).0);
                let s6 = if other & 1 != 0 { [0; 16] } else { ll };
                let mld = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16];
                let mac = MacAddr([0x33, 0x33, 0, 0, 0, 0x16]);
                ipv6_packet(b, mac, src, s6, mld, &[EXT_HOP_BY_HOP], 58, &body[..k])
            }
            // A neighbour advertisement for an in-prefix target, with a
            // second, foreign link-layer option when spoofing.
            12 => {
                let t = in_prefix(oi + 1);
                let opts = [(2, src), (1, guest_mac(oi))];
                let k = nd_body(&mut body, 136, t, &opts[..1 + (spoof as usize >> 1 & 1)]);
                ipv6_packet(b, PEER_MAC, src, ll, PEER_V6, &[], 58, &body[..k])
            }
            // A solicitation behind destination options (or a fragment
            // header, where it must be dropped).
            _ => {
                let (grp, gmac) = solicited_node(PEER_V6);
                let k = nd_body(&mut body, 135, PEER_V6, &[(1, src)]);
                let ext = if other & 1 != 0 {
                    EXT_FRAGMENT
                } else {
                    EXT_DEST_OPTS
                };
                ipv6_packet(b, gmac, src, ll, grp, &[ext], 58, &body[..k])
            }
        };
        let n = if spoof & 4 != 0 {
            (cut as usize).min(n)
        } else {
            n.max(60)
        };
        let valid = icmp6_checksum_ok(&self.buf[..n]) == Some(true);
        let d = self.transmit(g, n)?;
        if spoofed && !matches!(d, TxDecision::Drop(_)) {
            return Err("a spoofed frame was not dropped");
        }
        if valid
            && matches!(d, TxDecision::Send { .. })
            && icmp6_checksum_ok(&self.buf[..n]) != Some(true)
        {
            return Err("an ICMPv6 checksum went wrong");
        }
        if kind == 10 && !matches!(d, TxDecision::Drop(_)) {
            return Err("a guest's router advertisement was let through");
        }
        if kind == 13 && other & 1 != 0 && !matches!(d, TxDecision::Drop(_)) {
            return Err("NDP in a fragment was let through");
        }
        self.check_tx(g, d, n, Some(kind))
    }

    /// The transmit properties: a denied IP never gets an uplink, no frame
    /// leaves with another guest's source (IP, DAD or NA target), no frame
    /// leaves with a link-layer address (Ethernet source, ARP sender, NDP
    /// option) that is neither an identity the uplink holds (identity mode)
    /// nor the guest's own (literal mode), NDP checksums stay valid, and
    /// literal mode always restores.
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
        let key_ip = |k: u128| {
            if k >> 32 == 0xffff {
                IpAddr::V4(Ipv4Addr::from(k as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(k))
            }
        };
        let icmp6 = p.icmp6().copied();
        if icmp6.is_some_and(|m| m.ty == 134 || m.ty == 137) {
            return Err("a router advertisement or redirect left a guest");
        }
        // The IP the binding was taken from (`None`: `::`, bound as the
        // union of the guest's IPv6 entries).
        let ip = match p.l3 {
            crate::wire::L3::Arp { spa, tpa, .. } => {
                Some(if spa == 0xffff_0000_0000 { tpa } else { spa })
            }
            crate::wire::L3::Ip { src: 0, .. } => p.dad_target(),
            crate::wire::L3::Ip { src, .. } => Some(src),
            crate::wire::L3::Other(_) => return Err("sent a non-IP frame"),
        };
        let binding = match ip {
            Some(ip) => {
                if e.guest_of_ip(key_ip(ip)) != Some(g) {
                    return Err("a frame left with another guest's source IP");
                }
                e.binding(key_ip(ip)).ok_or("no binding")?
            }
            None => {
                let m = icmp6.ok_or("a non-ICMPv6 frame left from ::")?;
                if !(m.ty == 133 || m.is_mld()) {
                    return Err("a frame left from :: that may not");
                }
                self.v6_union(g)
            }
        };
        if binding.is_empty() {
            return Err("a denied IP got an uplink");
        }
        if let Some(m) = icmp6 {
            if m.ty == 136 {
                let t = m.target.ok_or("NA without target")?;
                if e.guest_of_ip(key_ip(t)) != Some(g) {
                    return Err("a neighbour advertisement for another's target left");
                }
            }
        }
        // MLD reports leave by the broadcast uplink, whatever the binding.
        let mld = icmp6.is_some_and(|m| matches!(m.ty, 131 | 132 | 143));
        let src = MacAddr::from_u64(p.src);
        let lladdrs = icmp6.map(|m| m.ll).unwrap_or_default();
        let lladdrs = &lladdrs[..icmp6.map_or(0, |m| m.ll_count as usize)];
        let opt = |off: usize| crate::wire::parse_mac_at(frame, off).map(MacAddr::from_u64);
        match (e.mode(), steering) {
            (Mode::Identity, Steering::Rewritten { identity, mac }) => {
                if src != mac || e.identity_mac(identity) != Some(mac) {
                    return Err("identity mode: source is not the chosen identity");
                }
                if e.holder(identity) != Some(uplink) || !(mld || binding.contains(identity)) {
                    return Err("identity mode: identity not bound or not held by the uplink");
                }
                if let crate::wire::L3::Arp { sha, .. } = p.l3 {
                    if sha != p.src {
                        return Err("identity mode: ARP sender not rewritten");
                    }
                }
                if lladdrs.iter().any(|&o| opt(o) != Some(mac)) {
                    return Err("identity mode: an NDP link-layer option is not the identity");
                }
            }
            (Mode::Literal, Steering::WriteMacThenRestore { mac, restore }) => {
                if mac != gmac || src != gmac {
                    return Err("literal mode: frame source is not the sending guest");
                }
                if e.uplink_mac(uplink) != Some(restore) {
                    return Err("literal mode: restore is not the uplink's MAC");
                }
                if !mld && !e.held(uplink).iter().any(|i| binding.contains(i)) {
                    return Err("literal mode: uplink holds no bound identity");
                }
                if lladdrs.iter().any(|&o| opt(o) != Some(gmac)) {
                    return Err("literal mode: an NDP link-layer option is not the guest's");
                }
            }
            _ => return Err("steering does not match the mode"),
        }
        if kind == Some(3) || kind == Some(4) {
            return Err("a frame to a local guest left through an uplink");
        }
        Ok(())
    }

    /// The union of guest `g`'s IPv6 bindings, as the harness set it up.
    fn v6_union(&self, g: GuestId) -> crate::IdentitySet {
        let e = &self.engine;
        let v6 = IpNet::host(IpAddr::V6(Ipv6Addr::from(GUEST0_V6)));
        let prefix = IpNet::new(IpAddr::V6(Ipv6Addr::from(PREFIX6)), 64);
        let mut set = e.guest_binding(g, v6).unwrap_or_default().0;
        if let Some(p) = prefix {
            set |= e.guest_binding(g, p).unwrap_or_default().0;
        }
        crate::IdentitySet(set)
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
        let mut body = [0u8; 64];
        let b = &mut self.buf;
        let n = match kind % 9 {
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
            5 => ipv4(b, id, PEER_MAC, PEER_IP, OWN_IP),
            // A peer resolving an in-prefix address (maybe learned).
            6 => {
                let t = in_prefix(gi + 1);
                let (grp, gmac) = solicited_node(t);
                let k = nd_body(&mut body, 135, t, &[(1, PEER_MAC)]);
                ipv6_packet(b, gmac, PEER_MAC, PEER_V6, grp, &[], 58, &body[..k])
            }
            // Unicast to an identity for an in-prefix or link-local address.
            7 => {
                let d = if identity & 0x10 != 0 {
                    link_local(gi + 1)
                } else {
                    in_prefix(gi + 1)
                };
                ipv6_packet(b, id, PEER_MAC, PEER_V6, d, &[], 17, &[0; 8])
            }
            // An advertisement naming the identity it is sent to.
            _ => {
                let k = nd_body(&mut body, 136, PEER_V6, &[(2, id)]);
                ipv6_packet(
                    b,
                    id,
                    PEER_MAC,
                    PEER_V6,
                    in_prefix(gi + 1),
                    &[],
                    58,
                    &body[..k],
                )
            }
        };
        let n = n.max(60);
        let valid = icmp6_checksum_ok(&self.buf[..n]);
        let d = self.receive(UplinkId(uplink % HARNESS_UPLINKS), n)?;
        self.check_rx(d, n, valid)
    }

    /// The receive properties; `valid`: whether the frame's ICMPv6
    /// checksum was valid before the engine saw it.
    fn check_rx(&self, d: RxDecision, n: usize, valid: Option<bool>) -> Result<(), &'static str> {
        let e = &self.engine;
        if let RxDecision::ToGuest { guest } = d {
            let gmac = e.guest_mac(guest).ok_or("delivered to no guest")?;
            let frame = &self.buf[..n];
            if valid == Some(true) && icmp6_checksum_ok(frame) != Some(true) {
                return Err("an ICMPv6 checksum went wrong on receive");
            }
            let p = crate::wire::parse(frame).map_err(|_| "delivered a bad frame")?;
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
            if let Some(m) = p.icmp6() {
                if e.mode() == Mode::Identity && p.dst & (1 << 40) == 0 {
                    for &o in m.lladdrs() {
                        let mac = crate::wire::parse_mac_at(frame, o).unwrap_or(0);
                        if (0..e.identity_count()).any(|i| {
                            e.identity_mac(IdentityId(i as u8)).map(|m| m.to_u64()) == Some(mac)
                        }) {
                            return Err("a guest was told an identity as a link-layer address");
                        }
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
                let v6 = self.v6_union(g);
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

/// Frame shapes [`Op::GuestTx`] picks from.
pub const GUEST_KINDS: u8 = 14;

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
