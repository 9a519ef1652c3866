//! The soak (issue 12, item 2): aggdom with 4 uplinks and 4 guest ports
//! under continuous traffic for a given time, while links flap, bindings
//! change, identities are swapped and pinned and the rebalancer runs; at the
//! end every frame offered is reconciled against aggdom's counters.
//!
//! Two threads. The traffic thread plays the guests and the outside (remote
//! hosts behind a learning switch) on a [`FrameIo`]: every guest offers UDP
//! and TCP-like flows to remote hosts, UDP broadcasts, ARP requests and
//! unicast to another guest; the remote hosts send UDP and broadcasts to
//! the guests, ask for the guests' IPs by ARP, and answer the guests' TCP
//! segments and ARP requests. Every frame offered carries a tag, unique per
//! entry port (`[magic, source, sequence]`: in the UDP or TCP payload, in
//! an ARP frame's padding), so the harness knows where each one came out.
//! The control thread drives the console and QMP meanwhile.
//!
//! Reconciliation, per source (a guest port, or an uplink for what the
//! outside sent in): a frame is *delivered* when a copy of it came out of
//! any NIC; the frames not delivered must be covered by counters with a
//! reason — aggdom's drop counters for that source (`stats`), its NIC's
//! receive drops and misses (`nic <n>`), the host's UDP socket drops for
//! QEMU's end of that NIC (`/proc/net/udp`), and for an uplink the frames
//! its receive filter refused (below) — and what is left by the datapath's
//! counters that name no source (`uplink full`, `guest full`). A frame
//! neither delivered nor counted fails the soak; so does a source with
//! more frames counted dropped than not delivered. Beside it, every frame
//! a port offered must have reached aggdom's NIC or be counted before it,
//! every frame the NIC took must have an engine decision, and what each
//! NIC sent must be what the harness received from it.
//!
//! One loss has no counter anywhere: a NIC's receive filter (QEMU's model
//! of it) discards unicast for a MAC the NIC does not hold, as hardware
//! does. The switch sends such frames when its table is stale (an
//! identity moved and its learning frame had not reached the switch yet)
//! or when it floods a MAC it knows no live port for. The harness counts
//! per uplink the frames QEMU never handed the NIC (offered minus taken,
//! dropped and lost in the host) as "filtered", and fails if there are
//! more of them than undelivered frames it had sent to such a port: a
//! flooded copy, or one whose MAC, the next time it was seen, left
//! another uplink.
//!
//! QEMU also discards, silently and uncounted, every frame sent through a
//! NIC whose link is down, both ways. So a link goes down the way a cable
//! pull a switch sees first would: the switch stops sending into that
//! port, the guests pause (the traffic thread acknowledges it), everything
//! in flight drains (every frame the engine counted sent on that uplink has
//! come out), QMP takes the link down, and traffic resumes once the engine
//! has seen the link go (`stats`' `link downs per uplink`; the NIC's link
//! bit changes up to a link-check interval earlier). Frames aggdom puts on
//! a link QEMU has already taken down are the failover loss
//! `bench-failover` measures; here they would be frames no one can count.
//! Links come back up under traffic.
//!
//! `SOAK_DEBUG=1` lists every frame not delivered, with when it was
//! offered.
//!
//! Heap: `mem` before traffic, after the warm-up and at the end (both with
//! traffic paused and the queues drained); the end may exceed the warm-up
//! by [`HEAP_SLACK`] at most. The console must show no panic or CPU
//! exception, and aggdom must still answer at the end. Nothing is asserted
//! on time; waits are generous.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::frame::{self, tcp_flags, Eth, Ipv4Ends, TcpFields, IPPROTO_TCP, IPPROTO_UDP};
use crate::nicstat::{nic_status, NicStatus};
use crate::rig::{
    guest_ip, guest_mac, port_mac, remote, udp_frame as udp, uplink_mac, Layout, Stats,
};
use crate::{FrameIo, MacAddr, Machine, NicKind, Received};

/// Uplinks (NICs 0-3: three virtio-net and an e1000).
pub const UPLINKS: usize = 4;
/// Guests (NICs 4-7, virtio-net).
pub const GUESTS: usize = 4;
/// Remote hosts behind the switch.
const REMOTES: usize = 4;
/// How much more heap the end may use than after the warm-up: room for a
/// console queue that grew to a longer reply, nothing per frame.
pub const HEAP_SLACK: u64 = 16 * 1024;
/// At most this many uplinks are down at once (two stay up).
const MAX_DOWN: usize = 2;
/// The kernel command line beside uplinks and guests: 1 Mbit/s uplinks, so
/// the guests' load overloads one when links are down and the rebalancer
/// moves identities; a short dwell so they may move again.
const EXTRA: &str = "capacity=1,1,1,1 overload_pct=25 hysteresis_pct=10 rebalance_ms=500 dwell_s=2";
/// Tag layout: magic in the top byte, the source in the next, the
/// sequence number below.
const MAGIC: u64 = 0xa6;
const SEQ_MASK: u64 = (1 << 48) - 1;
/// Sources: guest `j` is `j`, what the outside sent into uplink `u` is
/// `GUESTS + u`.
const SOURCES: usize = GUESTS + UPLINKS;
/// The broadcast address of the guests' subnet.
const SUBNET_BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 255);
/// TCP port of the remote hosts' "server".
const TCP_PORT: u16 = 80;

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// How long traffic runs (the warm-up included).
    pub duration: Duration,
    /// The PRNG seed for traffic and actions.
    pub seed: u64,
    /// The kernel ELF.
    pub elf: PathBuf,
    /// Frames per second each guest offers.
    pub guest_rate: f64,
    /// Unsolicited frames per second the outside offers (answers come on
    /// top).
    pub outside_rate: f64,
    /// Print each console action as it happens.
    pub verbose: bool,
    /// Uplink 3 is an e1000 (else virtio-net like the others).
    pub e1000_uplink: bool,
}

impl SoakConfig {
    /// `duration` with the default rates, the ELF from `$AGGDOM_ELF` (or
    /// the workspace's release build), and a seed from `$SOAK_SEED` or the
    /// clock.
    pub fn new(duration: Duration) -> SoakConfig {
        let seed = std::env::var("SOAK_SEED")
            .ok()
            .and_then(|s| parse_seed(&s))
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        SoakConfig {
            duration,
            seed,
            elf: crate::default_elf(),
            guest_rate: 60.0,
            outside_rate: 80.0,
            verbose: false,
            e1000_uplink: std::env::var("SOAK_E1000").map_or(true, |v| v != "0"),
        }
    }

    /// How long the warm-up lasts: a tenth of the run, 10 to 30 s.
    pub fn warm_up(&self) -> Duration {
        (self.duration / 10).clamp(Duration::from_secs(10), Duration::from_secs(30))
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// What a soak found.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    /// The reconciliation and everything else, as printed.
    pub text: String,
    /// Each check that failed, one line each (empty: passed).
    pub failures: Vec<String>,
    /// Frames offered in all.
    pub offered: u64,
    /// Frames neither delivered nor counted.
    pub unaccounted: u64,
}

/// xorshift64*: reproducible from the seed printed at the start.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

fn tag(source: usize, seq: u64) -> u64 {
    MAGIC << 56 | (source as u64) << 48 | (seq & SEQ_MASK)
}

/// The soak tag of a frame: (source, sequence).
fn tag_of(f: &[u8]) -> Option<(usize, u64)> {
    let eth = Eth::parse(f)?;
    let bytes = if eth.arp().is_some() {
        f.get(42..50)?
    } else {
        let ip = eth.ipv4()?;
        match ip.protocol {
            IPPROTO_UDP => ip.udp()?.payload.get(..8)?,
            IPPROTO_TCP => ip.tcp()?.payload.get(..8)?,
            _ => return None,
        }
    };
    let t = u64::from_be_bytes(bytes.try_into().ok()?);
    let source = (t >> 48 & 0xff) as usize;
    (t >> 56 == MAGIC && source < SOURCES).then_some((source, t & SEQ_MASK))
}

fn payload(t: u64, len: usize) -> Vec<u8> {
    let mut p = t.to_be_bytes().to_vec();
    p.resize(len.max(8), 0x5a);
    p
}

fn tcp(ends: Ipv4Ends, src_port: u16, dst_port: u16, flags: u8, t: u64, len: usize) -> Vec<u8> {
    let f = TcpFields {
        src_port,
        dst_port,
        seq: t as u32,
        ack: 1,
        flags,
        window: 8192,
        mss: None,
    };
    frame::tcp(ends, f, &payload(t, len.saturating_sub(54)))
}

/// An ARP frame with the tag in its padding.
fn arp_tagged(mut f: Vec<u8>, t: u64) -> Vec<u8> {
    f.resize(frame::MIN_FRAME, 0);
    f[42..50].copy_from_slice(&t.to_be_bytes());
    f
}

/// `/proc/net/udp`: per local port, (receive queue bytes, drops).
fn udp_sockets() -> HashMap<u16, (u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(queues), Some(drops)) = (w.get(1), w.get(4), w.last()) else {
            continue;
        };
        let Some(port) = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        else {
            continue;
        };
        let rx = queues
            .split_once(':')
            .and_then(|(_, r)| u64::from_str_radix(r, 16).ok())
            .unwrap_or(0);
        let d = drops.parse().unwrap_or(0);
        let e = out.entry(port).or_insert((0, 0));
        e.0 += rx;
        e.1 += d;
    }
    out
}

// --- the traffic thread ------------------------------------------------------

/// What the control thread tells the traffic thread.
struct Control {
    /// Offer nothing new (frames that come out are still taken).
    paused: bool,
    /// The switch may send into uplink `u` (its link is up and not about
    /// to go down).
    feeding: [bool; UPLINKS],
    /// When the last frame came out of the machine.
    last_rx: Instant,
    /// Bumped by every change above; the traffic thread copies it when it
    /// reads them, so once `seen` equals `epoch` it sends nothing under
    /// the old state any more (a thread the host starved for a while
    /// would otherwise send what it owed after a link went down).
    epoch: u64,
    seen: u64,
    /// Per uplink: guests' frames that came out of it.
    out_on: [u64; UPLINKS],
}

/// What the traffic thread counted.
#[derive(Default)]
struct Tally {
    /// Per source: frames offered.
    offered: [u64; SOURCES],
    /// Per source and sequence: copies that came out of an uplink (bit 0)
    /// or a guest port (bit 1).
    seen: Vec<Vec<u8>>,
    /// Per source: copies that came out of a guest port.
    copies_to_guests: [u64; SOURCES],
    /// Per guest and uplink: the guest's frames that left there.
    out_by: [[u64; UPLINKS]; GUESTS],
    /// Per uplink: learning frames, and frames the harness did not tag.
    learning: [u64; UPLINKS],
    untagged_out: [u64; UPLINKS],
    /// Per guest port: frames received, and those not tagged.
    to_guest: [u64; GUESTS],
    untagged_to_guest: [u64; GUESTS],
    /// Frames of the kinds offered, by kind name.
    kinds: BTreeMap<&'static str, u64>,
    /// Unicast the outside sent: (source, sequence, destination MAC, when,
    /// flooded because the switch knew no port for it).
    unicast_in: Vec<(usize, u64, MacAddr, Instant, bool)>,
    /// Per identity: when a frame from it left which uplink.
    identity_seen: Vec<Vec<(Instant, usize)>>,
    /// When traffic started.
    start: Option<Instant>,
    /// Per source and sequence: when it was offered.
    sent_at: Vec<Vec<Instant>>,
    /// A tagged frame that came out where it never should (e.g. a guest's
    /// frame back at its own port, an outside frame on an uplink).
    misdelivered: u64,
    send_errors: u64,
}

struct Traffic {
    io: FrameIo,
    rng: Rng,
    t: Tally,
    guest_rate: f64,
    outside_rate: f64,
    /// Fractional frames due per source.
    guest_due: [f64; GUESTS],
    outside_due: f64,
    /// The switch: MAC -> uplink it was last seen on.
    fdb: HashMap<MacAddr, usize>,
    /// The remote hosts' ARP cache for each guest: the identity MAC its
    /// frames came from last.
    guest_seen_as: [Option<MacAddr>; GUESTS],
    /// The frame being offered is a flooded copy.
    flooding: bool,
}

impl Traffic {
    fn offer(
        &mut self,
        nic: usize,
        source: usize,
        kind: &'static str,
        build: impl FnOnce(u64) -> Vec<u8>,
    ) {
        let seq = self.t.offered[source];
        let f = build(tag(source, seq));
        match self.io.send_frame(nic, &f) {
            Ok(()) => {
                let dst = crate::rig::macs(&f).1;
                if source >= GUESTS && !dst.is_multicast() {
                    let flooded = self.flooding;
                    self.t
                        .unicast_in
                        .push((source, seq, dst, Instant::now(), flooded));
                }
                self.t.offered[source] += 1;
                self.t.seen[source].push(0);
                self.t.sent_at[source].push(Instant::now());
                *self.t.kinds.entry(kind).or_insert(0) += 1;
            }
            Err(_) => self.t.send_errors += 1,
        }
    }

    /// The outside sends `build`'s frame to `dst`: through the port the
    /// switch learnt it on, or flooded to every port it may feed (a copy
    /// per uplink, each with its own tag).
    fn outside(
        &mut self,
        ctl: &[bool; UPLINKS],
        dst: MacAddr,
        kind: &'static str,
        build: impl Fn(u64) -> Vec<u8>,
    ) {
        let port = (!dst.is_multicast())
            .then(|| self.fdb.get(&dst).copied())
            .flatten()
            .filter(|&u| ctl[u]);
        match port {
            Some(u) => self.offer(u, GUESTS + u, kind, &build),
            None => {
                self.flooding = true;
                for u in 0..UPLINKS {
                    if ctl[u] {
                        self.offer(u, GUESTS + u, kind, &build);
                    }
                }
                self.flooding = false;
            }
        }
    }

    fn guest_frame(&mut self, j: usize) {
        let me = Ipv4Ends {
            src_mac: guest_mac(j),
            dst_mac: MacAddr::default(),
            src_ip: guest_ip(j),
            dst_ip: Ipv4Addr::UNSPECIFIED,
        };
        let k = self.rng.below(REMOTES);
        let r = remote(k);
        let to_remote = Ipv4Ends {
            dst_mac: r.mac,
            dst_ip: r.ip,
            ..me
        };
        let len = self.rng.range(60, 1000);
        match self.rng.below(20) {
            0..=9 => self.offer(UPLINKS + j, j, "guest udp", |t| udp(to_remote, t, len)),
            10..=13 => {
                let sport = 40000 + self.rng.below(8) as u16;
                self.offer(UPLINKS + j, j, "guest tcp", |t| {
                    tcp(
                        to_remote,
                        sport,
                        TCP_PORT,
                        tcp_flags::ACK | tcp_flags::PSH,
                        t,
                        len,
                    )
                })
            }
            14 => {
                let ends = Ipv4Ends {
                    dst_mac: MacAddr::BROADCAST,
                    dst_ip: SUBNET_BROADCAST,
                    ..me
                };
                self.offer(UPLINKS + j, j, "guest broadcast", |t| {
                    udp(ends, t, len.min(300))
                })
            }
            15 | 16 => self.offer(UPLINKS + j, j, "guest arp", |t| {
                arp_tagged(frame::arp_request(guest_mac(j), guest_ip(j), r.ip), t)
            }),
            _ => {
                let other = (j + 1 + self.rng.below(GUESTS - 1)) % GUESTS;
                let ends = Ipv4Ends {
                    dst_mac: guest_mac(other),
                    dst_ip: guest_ip(other),
                    ..me
                };
                self.offer(UPLINKS + j, j, "guest to guest", |t| udp(ends, t, len))
            }
        }
    }

    fn outside_frame(&mut self, feeding: &[bool; UPLINKS]) {
        let k = self.rng.below(REMOTES);
        let r = remote(k);
        let j = self.rng.below(GUESTS);
        let len = self.rng.range(60, 1000);
        match self.rng.below(10) {
            0..=6 => {
                // To the guest at the identity it last came from.
                let Some(id) = self.guest_seen_as[j] else {
                    return;
                };
                let ends = Ipv4Ends {
                    src_mac: r.mac,
                    dst_mac: id,
                    src_ip: r.ip,
                    dst_ip: guest_ip(j),
                };
                self.outside(feeding, id, "outside udp", |t| udp(ends, t, len));
            }
            7 | 8 => {
                let ends = Ipv4Ends {
                    src_mac: r.mac,
                    dst_mac: MacAddr::BROADCAST,
                    src_ip: r.ip,
                    dst_ip: SUBNET_BROADCAST,
                };
                self.outside(feeding, MacAddr::BROADCAST, "outside broadcast", |t| {
                    udp(ends, t, len.min(300))
                });
            }
            _ => {
                self.outside(feeding, MacAddr::BROADCAST, "outside arp request", |t| {
                    arp_tagged(frame::arp_request(r.mac, r.ip, guest_ip(j)), t)
                });
            }
        }
    }

    /// One frame out of the machine: tally it, let the switch learn, and
    /// answer it as a remote host would.
    fn take(&mut self, r: &Received, feeding: &[bool; UPLINKS]) {
        let tagged = tag_of(&r.data);
        if r.nic >= UPLINKS {
            let g = r.nic - UPLINKS;
            self.t.to_guest[g] += 1;
            match tagged {
                Some((s, seq)) => {
                    if s == g {
                        self.t.misdelivered += 1;
                    }
                    self.mark(s, seq, 2);
                    self.t.copies_to_guests[s] += 1;
                }
                None => self.t.untagged_to_guest[g] += 1,
            }
            return;
        }
        let u = r.nic;
        let Some(eth) = Eth::parse(&r.data) else {
            self.t.untagged_out[u] += 1;
            return;
        };
        self.fdb.insert(eth.src, u);
        if let Some(i) = (0..UPLINKS).find(|&i| uplink_mac(i) == eth.src) {
            self.t.identity_seen[i].push((r.at, u));
        }
        if eth.ethertype == crate::rig::ETHERTYPE_LEARNING {
            self.t.learning[u] += 1;
            return;
        }
        let Some((s, seq)) = tagged else {
            self.t.untagged_out[u] += 1;
            return;
        };
        if s >= GUESTS {
            self.t.misdelivered += 1;
            return;
        }
        self.mark(s, seq, 1);
        self.t.out_by[s][u] += 1;
        self.guest_seen_as[s] = Some(eth.src);
        // Remote hosts answer TCP segments and ARP requests for them.
        if let Some(a) = eth.arp() {
            if a.op == frame::ARP_REQUEST {
                if let Some(k) = (0..REMOTES).find(|&k| remote(k).ip == a.target_ip) {
                    let me = remote(k);
                    let (to_mac, to_ip) = (a.sender_mac, a.sender_ip);
                    self.outside(feeding, to_mac, "outside arp reply", |t| {
                        arp_tagged(frame::arp_reply(me.mac, me.ip, to_mac, to_ip), t)
                    });
                }
            }
            return;
        }
        let Some(ip) = eth.ipv4() else {
            return;
        };
        if let (Some(seg), Some(k)) = (ip.tcp(), (0..REMOTES).find(|&k| remote(k).ip == ip.dst)) {
            let me = remote(k);
            let ends = Ipv4Ends {
                src_mac: me.mac,
                dst_mac: eth.src,
                src_ip: me.ip,
                dst_ip: ip.src,
            };
            let (sport, dport) = (seg.dst_port, seg.src_port);
            self.outside(feeding, eth.src, "outside tcp ack", |t| {
                tcp(ends, sport, dport, tcp_flags::ACK, t, 60)
            });
        }
    }

    fn mark(&mut self, source: usize, seq: u64, bit: u8) {
        match self.t.seen[source].get_mut(seq as usize) {
            Some(s) => *s |= bit,
            None => self.t.misdelivered += 1,
        }
    }

    fn run(mut self, ctl: Arc<Mutex<Control>>, stop: Arc<AtomicBool>) -> Tally {
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let (paused, feeding) = {
                let mut c = ctl.lock().unwrap_or_else(|p| p.into_inner());
                c.seen = c.epoch;
                (c.paused, c.feeding)
            };
            let now = Instant::now();
            let dt = now.duration_since(last).as_secs_f64().min(0.1);
            last = now;
            if !paused {
                for j in 0..GUESTS {
                    self.guest_due[j] += dt * self.guest_rate;
                    while self.guest_due[j] >= 1.0 {
                        self.guest_due[j] -= 1.0;
                        self.guest_frame(j);
                    }
                }
                self.outside_due += dt * self.outside_rate;
                while self.outside_due >= 1.0 {
                    self.outside_due -= 1.0;
                    self.outside_frame(&feeding);
                }
            }
            let got = self.io.drain_all();
            for r in &got {
                // Answers are offered even while paused: they are frames in
                // flight, and the pause waits for them too.
                self.take(r, &feeding);
            }
            if !got.is_empty() {
                let mut c = ctl.lock().unwrap_or_else(|p| p.into_inner());
                c.last_rx = Instant::now();
                for u in 0..UPLINKS {
                    c.out_on[u] = (0..GUESTS).map(|j| self.t.out_by[j][u]).sum();
                }
            }
            self.io.wait_any(Duration::from_millis(3));
        }
        self.t
    }
}

// --- the control thread ------------------------------------------------------

/// aggdom's counters at one moment.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    stats: Stats,
    nics: Vec<NicStatus>,
    /// Per NIC: host UDP drops of QEMU's socket and of the harness's.
    host_drops: Vec<(u64, u64)>,
}

fn snapshot(m: &mut Machine) -> Result<Snapshot, String> {
    let text = command(m, "stats")?;
    let stats = Stats::parse(&text);
    let nics = (0..UPLINKS + GUESTS)
        .map(|n| nic_status(m, n).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let socks = udp_sockets();
    let host_drops = (0..UPLINKS + GUESTS)
        .map(|n| {
            let (q, h) = m.nic_udp_ports(n).unwrap_or_default();
            (
                socks.get(&q).map_or(0, |s| s.1),
                socks.get(&h).map_or(0, |s| s.1),
            )
        })
        .collect();
    Ok(Snapshot {
        stats,
        nics,
        host_drops,
    })
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Nothing out of the machine for this long (and nothing queued for QEMU)
/// means nothing is in flight.
const QUIET: Duration = Duration::from_millis(600);

fn command(m: &mut Machine, cmd: &str) -> Result<String, String> {
    m.command_timeout(cmd, COMMAND_TIMEOUT)
        .map_err(|e| format!("console command {cmd:?}: {e}"))
}

/// `mem`'s heap used, in bytes, and the line.
fn heap_used(m: &mut Machine) -> Result<(u64, String), String> {
    let reply = command(m, "mem")?;
    let line = reply.lines().next().unwrap_or("").to_string();
    let used = line
        .strip_prefix("heap used ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("mem: {reply:?}"))?;
    Ok((used, reply.replace('\n', "; ")))
}

struct Driver<'a> {
    m: &'a mut Machine,
    ctl: Arc<Mutex<Control>>,
    rng: Rng,
    verbose: bool,
    down: [bool; UPLINKS],
    denied: Option<usize>,
    pinned: [bool; UPLINKS],
    actions: BTreeMap<&'static str, (u64, u64)>,
    t0: Instant,
    /// Per uplink: the engine's frames sent when traffic started.
    base_tx: [u64; UPLINKS],
    /// Per uplink: the link downs the engine should have seen by now.
    downs: [u64; UPLINKS],
}

impl Driver<'_> {
    fn set_paused(&self, paused: bool) {
        let mut c = self.ctl.lock().unwrap_or_else(|p| p.into_inner());
        c.paused = paused;
        c.epoch += 1;
    }

    fn set_feeding(&self, u: usize, on: bool) {
        let mut c = self.ctl.lock().unwrap_or_else(|p| p.into_inner());
        c.feeding[u] = on;
        c.epoch += 1;
    }

    /// Pauses the guests and the outside and waits until nothing is in
    /// flight: no frame out of the machine for a while, QEMU's sockets
    /// empty.
    fn quiesce(&mut self) {
        self.set_paused(true);
        let qemu_ports: Vec<u16> = (0..UPLINKS + GUESTS)
            .filter_map(|n| self.m.nic_udp_ports(n).map(|p| p.0))
            .collect();
        let start = Instant::now();
        let give_up = start + Duration::from_secs(60);
        let mut acked: Option<Instant> = None;
        loop {
            thread::sleep(Duration::from_millis(100));
            let quiet_for = {
                let c = self.ctl.lock().unwrap_or_else(|p| p.into_inner());
                if acked.is_none() && c.seen == c.epoch {
                    acked = Some(Instant::now());
                }
                c.last_rx.elapsed()
            };
            let Some(acked) = acked else {
                continue;
            };
            let quiet_for = quiet_for.min(acked.elapsed());
            let socks = udp_sockets();
            let queued: u64 = qemu_ports
                .iter()
                .map(|p| socks.get(p).map_or(0, |s| s.0))
                .sum();
            if (quiet_for >= QUIET && queued == 0) || Instant::now() > give_up {
                return;
            }
        }
    }

    fn act(&mut self, name: &'static str, cmd: &str) -> Result<(), String> {
        let reply = command(self.m, cmd)?;
        let refused = reply.starts_with("error:");
        if self.verbose {
            eprintln!(
                "soak: {:?} {cmd} -> {}",
                self.t0.elapsed(),
                reply.lines().next().unwrap_or("")
            );
        }
        let e = self.actions.entry(name).or_insert((0, 0));
        e.0 += 1;
        if refused {
            e.1 += 1;
        }
        Ok(())
    }

    fn link_down(&mut self, u: usize) -> Result<(), String> {
        if self.verbose {
            eprintln!("soak: uplink {u} going down at {:?}", self.t0.elapsed());
        }
        self.set_feeding(u, false);
        self.quiesce();
        // Every guest frame aggdom decided to send there has come out (a
        // frame still in the NIC's ring when QEMU takes the link down is
        // discarded, uncounted).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = Stats::parse(&command(self.m, "stats")?);
            let sent = s.uplinks.get(u).map_or(0, |x| x.tx_frames) - self.base_tx[u];
            let got = self.ctl.lock().unwrap_or_else(|p| p.into_inner()).out_on[u];
            if got >= sent {
                break;
            }
            if Instant::now() > deadline {
                self.actions
                    .entry("link down before all out")
                    .or_insert((0, 0))
                    .0 += 1;
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.m
            .set_link(u, false)
            .map_err(|e| format!("set_link {u} off: {e}"))?;
        self.down[u] = true;
        // Traffic resumes once aggdom's engine has seen it (the NIC's link
        // bit, which `stats`' link column shows, changes first: a frame
        // sent on the uplink in between is lost, uncounted).
        self.downs[u] += 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = Stats::parse(&command(self.m, "stats")?);
            let seen = if stats.link_downs.is_empty() {
                stats.uplinks.get(u).is_some_and(|x| !x.link_up)
            } else {
                stats.link_downs.get(u).copied().unwrap_or(0) >= self.downs[u]
            };
            if seen {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("aggdom did not see uplink {u} go down in 60 s"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.set_paused(false);
        self.actions.entry("link down").or_insert((0, 0)).0 += 1;
        if self.verbose {
            eprintln!("soak: uplink {u} down at {:?}", self.t0.elapsed());
        }
        Ok(())
    }

    fn link_up(&mut self, u: usize) -> Result<(), String> {
        self.m
            .set_link(u, true)
            .map_err(|e| format!("set_link {u} on: {e}"))?;
        self.down[u] = false;
        self.set_feeding(u, true);
        self.actions.entry("link up").or_insert((0, 0)).0 += 1;
        if self.verbose {
            eprintln!("soak: uplink {u} up at {:?}", self.t0.elapsed());
        }
        Ok(())
    }

    /// One random action.
    fn step(&mut self) -> Result<(), String> {
        match self.rng.below(12) {
            0..=2 => {
                let u = self.rng.below(UPLINKS);
                if self.down[u] {
                    self.link_up(u)
                } else if self.down.iter().filter(|d| **d).count() < MAX_DOWN {
                    self.link_down(u)
                } else {
                    let u = (0..UPLINKS).find(|&u| self.down[u]).unwrap_or(0);
                    self.link_up(u)
                }
            }
            3..=5 => {
                let j = self.rng.below(GUESTS);
                let ip = guest_ip(j);
                let what = match self.rng.below(6) {
                    0 if self.denied.is_none() || self.denied == Some(j) => {
                        self.denied = Some(j);
                        "none".to_string()
                    }
                    1 => "auto".to_string(),
                    _ => {
                        let mut ids: Vec<String> = (0..UPLINKS)
                            .filter(|_| self.rng.below(2) == 0)
                            .map(|i| i.to_string())
                            .collect();
                        if ids.is_empty() {
                            ids.push(self.rng.below(UPLINKS).to_string());
                        }
                        ids.join(",")
                    }
                };
                if what != "none" && self.denied == Some(j) {
                    self.denied = None;
                }
                self.act("bind", &format!("bind {ip} {what}"))
            }
            6 | 7 => {
                let a = self.rng.below(UPLINKS);
                let b = (a + 1 + self.rng.below(UPLINKS - 1)) % UPLINKS;
                self.act("swap", &format!("swap {a} {b}"))
            }
            8 => {
                let i = self.rng.below(UPLINKS);
                if self.pinned[i] {
                    self.pinned[i] = false;
                    self.act("unpin", &format!("unpin {i}"))
                } else if self.pinned.iter().filter(|p| **p).count() < 2 {
                    self.pinned[i] = true;
                    self.act("pin", &format!("pin {i}"))
                } else {
                    self.act("rebalance", "rebalance")
                }
            }
            9 | 10 => self.act("rebalance", "rebalance"),
            _ => self.act("stats", "stats"),
        }
    }
}

/// The machine: uplinks 0-2 virtio-net, 3 e1000; guest ports virtio-net.
fn boot(cfg: &SoakConfig) -> Result<Machine, String> {
    let layout = Layout::new(UPLINKS, GUESTS).with(EXTRA);
    let mut b = Machine::builder()
        .elf(&cfg.elf)
        .cmdline(layout.cmdline())
        .memory_mib(128)
        .boot_timeout(Duration::from_secs(60))
        .command_timeout(COMMAND_TIMEOUT);
    for u in 0..UPLINKS {
        let kind = if u == UPLINKS - 1 && cfg.e1000_uplink {
            NicKind::E1000
        } else {
            NicKind::VirtioNet
        };
        b = b.nic(kind, uplink_mac(u));
    }
    for j in 0..GUESTS {
        b = b.nic(NicKind::VirtioNet, port_mac(j));
    }
    b.boot().map_err(|e| format!("boot: {e}"))
}

/// Runs the soak for `cfg.duration` and reconciles. `Err` only when the
/// soak could not run to the end (boot, a console command timing out,
/// QEMU gone); a run that ends reports its failures in the report.
pub fn run(cfg: &SoakConfig) -> Result<SoakReport, String> {
    let mut m = boot(cfg)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "soak: {} s, seed {:#x}, uplinks 0-2 virtio-net + 3 {}, guests on NICs 4-7, {} frames/s per guest, {} frames/s from the outside plus answers, warm-up {} s",
        cfg.duration.as_secs(),
        cfg.seed,
        if cfg.e1000_uplink { "e1000" } else { "virtio-net" },
        cfg.guest_rate,
        cfg.outside_rate,
        cfg.warm_up().as_secs()
    );
    let mut failures = Vec::new();

    let (mem_start, mem_start_line) = heap_used(&mut m)?;
    let before = snapshot(&mut m)?;

    let ctl = Arc::new(Mutex::new(Control {
        paused: false,
        feeding: [true; UPLINKS],
        last_rx: Instant::now(),
        epoch: 0,
        seen: 0,
        out_on: [0; UPLINKS],
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = Traffic {
        io: m.frame_io(),
        rng: Rng::new(cfg.seed ^ 0x7261_6666_6963),
        t: Tally {
            seen: vec![Vec::new(); SOURCES],
            identity_seen: vec![Vec::new(); UPLINKS],
            start: Some(Instant::now()),
            sent_at: vec![Vec::new(); SOURCES],
            ..Tally::default()
        },
        guest_rate: cfg.guest_rate,
        outside_rate: cfg.outside_rate,
        guest_due: [0.0; GUESTS],
        outside_due: 0.0,
        fdb: HashMap::new(),
        guest_seen_as: [None; GUESTS],
        flooding: false,
    };
    let handle = {
        let (ctl, stop) = (ctl.clone(), stop.clone());
        thread::Builder::new()
            .name("soak-traffic".into())
            .spawn(move || traffic.run(ctl, stop))
            .map_err(|e| format!("traffic thread: {e}"))?
    };

    let mut d = Driver {
        m: &mut m,
        ctl: ctl.clone(),
        rng: Rng::new(cfg.seed),
        verbose: cfg.verbose,
        down: [false; UPLINKS],
        denied: None,
        pinned: [false; UPLINKS],
        actions: BTreeMap::new(),
        t0: Instant::now(),
        base_tx: std::array::from_fn(|u| before.stats.uplinks.get(u).map_or(0, |x| x.tx_frames)),
        downs: std::array::from_fn(|u| before.stats.link_downs.get(u).copied().unwrap_or(0)),
    };
    let start = Instant::now();
    let mut warm: Option<(u64, String)> = None;
    let result = (|| -> Result<(), String> {
        while start.elapsed() < cfg.duration {
            if warm.is_none() && start.elapsed() >= cfg.warm_up() {
                d.act("stats", "stats")?;
                d.quiesce();
                warm = Some(heap_used(d.m)?);
                d.set_paused(false);
            }
            d.step()?;
            thread::sleep(Duration::from_millis(300 + d.rng.below(1200) as u64));
        }
        // Links back up, then drain.
        for u in 0..UPLINKS {
            if d.down[u] {
                d.link_up(u)?;
            }
        }
        d.quiesce();
        thread::sleep(Duration::from_secs(1));
        d.quiesce();
        Ok(())
    })();
    let actions = std::mem::take(&mut d.actions);
    stop.store(true, Ordering::Relaxed);
    let tally = handle
        .join()
        .map_err(|_| "the traffic thread panicked".to_string())?;
    result.map_err(|e| format!("{e}\n{}", m.diagnostics()))?;

    let after = snapshot(&mut m)?;
    let (mem_end, mem_end_line) = heap_used(&mut m)?;
    let (mem_warm, mem_warm_line) = warm.unwrap_or((mem_start, mem_start_line.clone()));

    // Actions.
    let mut line = String::from("actions:");
    for (name, (n, refused)) in &actions {
        let _ = write!(line, " {name} {n}");
        if *refused > 0 {
            let _ = write!(line, " ({refused} refused)");
        }
        line.push(',');
    }
    line.pop();
    let _ = writeln!(out, "{line}");
    let st = &after.stats;
    let sb = &before.stats;
    let dt = |k: &str| st.total(k).saturating_sub(sb.total(k));
    let _ = writeln!(
        out,
        "aggdom: rebalance runs {} moves {}, failover moves {}, learning frames {}, stranded {}, program errors {}",
        dt("rebalance_runs"),
        dt("rebalance_moves"),
        dt("failover_moves"),
        dt("learning_frames"),
        dt("stranded"),
        dt("program_errors"),
    );
    let mut kinds = String::from("offered by kind:");
    for (k, n) in &tally.kinds {
        let _ = write!(kinds, " {k} {n},");
    }
    kinds.pop();
    let _ = writeln!(out, "{kinds}");

    let _ = writeln!(out, "mem at start:        {mem_start_line}");
    let _ = writeln!(out, "mem after warm-up:   {mem_warm_line}");
    let _ = writeln!(out, "mem at end:          {mem_end_line}");
    if mem_end > mem_warm + HEAP_SLACK {
        failures.push(format!(
            "heap used {mem_end} bytes at the end, {mem_warm} after the warm-up (slack {HEAP_SLACK})"
        ));
    }

    let rec = reconcile(&before, &after, &tally, &mut out);
    failures.extend(rec.failures);

    // Still alive, no panic, no exception.
    let transcript = m.transcript();
    for bad in ["PANIC", "EXCEPTION"] {
        if transcript.contains(bad) {
            failures.push(format!("the console shows {bad}"));
        }
    }
    if let Err(e) = command(&mut m, "uptime") {
        failures.push(format!("aggdom no longer answers: {e}"));
    }
    if tally.send_errors > 0 {
        failures.push(format!("{} frames could not be sent", tally.send_errors));
    }

    let _ = writeln!(
        out,
        "result: {} frames offered, {} unaccounted; {}",
        rec.offered,
        rec.unaccounted,
        if failures.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL ({} checks)", failures.len())
        }
    );
    for f in &failures {
        let _ = writeln!(out, "  fail: {f}");
    }
    Ok(SoakReport {
        text: out,
        failures,
        offered: rec.offered,
        unaccounted: rec.unaccounted,
    })
}

struct Reconciled {
    failures: Vec<String>,
    offered: u64,
    unaccounted: u64,
}

fn drops_delta(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
    rx: bool,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(k, _)| k.starts_with("rx_") == rx)
        .map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            let name = if rx { k.trim_start_matches("rx_") } else { k };
            (name.to_string(), d)
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn words(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The reconciliation tables, per guest and per uplink.
fn reconcile(before: &Snapshot, after: &Snapshot, t: &Tally, out: &mut String) -> Reconciled {
    let mut failures = Vec::new();
    let (sa, sb) = (&after.stats, &before.stats);
    let nic = |n: usize| -> (u64, u64, u64) {
        let (a, b) = (&after.nics[n], &before.nics[n]);
        (
            a.rx_frames - b.rx_frames,
            (a.rx_drops + a.rx_missed + a.rx_errors) - (b.rx_drops + b.rx_missed + b.rx_errors),
            a.tx_frames - b.tx_frames,
        )
    };
    let host = |n: usize| -> (u64, u64) {
        let (a, b) = (after.host_drops[n], before.host_drops[n]);
        (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1))
    };
    let delivered = |s: usize| t.seen[s].iter().filter(|x| **x != 0).count() as u64;
    // Unicast into uplink `u` that was not delivered and went where its
    // destination had just left: the first frame from that MAC after it
    // was sent left another uplink.
    let mut stale = [0u64; UPLINKS];
    for &(s, seq, dst, at, flooded) in &t.unicast_in {
        let u = s - GUESTS;
        if t.seen[s].get(seq as usize) != Some(&0) {
            continue;
        }
        if flooded {
            // Unknown unicast: every uplink but the holder refuses it.
            stale[u] += 1;
            continue;
        }
        let Some(i) = (0..UPLINKS).find(|&i| uplink_mac(i) == dst) else {
            continue;
        };
        let obs = &t.identity_seen[i];
        let first_after = obs.partition_point(|&(when, _)| when <= at);
        if obs.get(first_after).is_some_and(|&(_, port)| port != u) {
            stale[u] += 1;
        } else if std::env::var_os("SOAK_DEBUG").is_some() {
            let t0 = t.start.unwrap_or(at);
            let prev = first_after.checked_sub(1).and_then(|k| obs.get(k));
            eprintln!(
                "soak debug: undelivered {s}/{seq} into uplink {u} for identity {i} at {:?}; seen before {:?}, after {:?}",
                at - t0,
                prev.map(|&(w, p)| (w - t0, p)),
                obs.get(first_after).map(|&(w, p)| (w - t0, p)),
            );
        }
    }

    if std::env::var_os("SOAK_DEBUG").is_some() {
        let t0 = t.start.unwrap_or_else(Instant::now);
        for j in 0..GUESTS {
            for (seq, seen) in t.seen[j].iter().enumerate() {
                if *seen == 0 {
                    eprintln!(
                        "soak debug: guest {j} frame {seq} offered at {:?} not delivered",
                        t.sent_at[j][seq] - t0
                    );
                }
            }
        }
    }

    // Per source: not delivered minus counted; what is left must be
    // covered by the counters that name no source.
    let mut uncovered = 0u64;
    let mut offered_all = 0u64;

    let _ = writeln!(out, "\nper guest: frames the guest offered");
    let _ = writeln!(
        out,
        "guest offered  delivered  out     local   copies-to-guests  aggdom: out     local   drops                                nic-lost host-lost  not-delivered counted uncovered"
    );
    for j in 0..GUESTS {
        let (ga, gb) = (&sa.guests[j], &sb.guests[j]);
        let offered = t.offered[j];
        offered_all += offered;
        let dlv = delivered(j);
        let out_seen = t.out_by[j].iter().sum::<u64>();
        let local_seen = t.seen[j].iter().filter(|x| **x == 2).count() as u64;
        let a_out = ga.tx_frames - gb.tx_frames;
        let a_local = ga.local - gb.local;
        let drops = drops_delta(&ga.drops, &gb.drops, false);
        let dsum: u64 = drops.values().sum();
        let n = UPLINKS + j;
        let (nic_rx, nic_lost, _) = nic(n);
        let (host_lost, _) = host(n);
        let not_dlv = offered - dlv;
        let counted = dsum + nic_lost + host_lost;
        let unc = not_dlv.saturating_sub(counted);
        uncovered += unc;
        let _ = writeln!(
            out,
            "{j:<5} {offered:<8} {dlv:<10} {out_seen:<7} {local_seen:<7} {:<17} {a_out:<15} {a_local:<7} {:<36} {nic_lost:<8} {host_lost:<10} {not_dlv:<13} {counted:<7} {unc}",
            t.copies_to_guests[j],
            words(&drops),
        );
        if offered != nic_rx + nic_lost + host_lost {
            failures.push(format!(
                "guest {j}: offered {offered}, but its port NIC took {nic_rx}, lost {nic_lost} and the host {host_lost}"
            ));
        }
        if nic_rx != a_out + a_local + dsum {
            failures.push(format!(
                "guest {j}: its port NIC took {nic_rx} frames, aggdom decided {a_out} out + {a_local} local + {dsum} dropped"
            ));
        }
        if counted > not_dlv {
            failures.push(format!(
                "guest {j}: {counted} frames counted dropped, but only {not_dlv} were not delivered"
            ));
        }
        for u in 0..UPLINKS {
            let a = ga.per_uplink.get(u).copied().unwrap_or(0)
                - gb.per_uplink.get(u).copied().unwrap_or(0);
            if a != t.out_by[j][u] {
                let _ = writeln!(
                    out,
                    "      guest {j} via uplink {u}: aggdom sent {a}, the harness got {}",
                    t.out_by[j][u]
                );
            }
        }
    }

    let _ = writeln!(
        out,
        "\nper uplink: frames the outside offered through it, and what left it"
    );
    let _ = writeln!(
        out,
        "uplink offered  delivered  aggdom: rx      drops                                nic-lost host-lost filtered (stale) not-delivered counted uncovered | out: aggdom sent nic sent harness got (learning) host-lost"
    );
    for u in 0..UPLINKS {
        let (ua, ub) = (&sa.uplinks[u], &sb.uplinks[u]);
        let s = GUESTS + u;
        let offered = t.offered[s];
        offered_all += offered;
        let dlv = delivered(s);
        let a_rx = ua.rx_frames - ub.rx_frames;
        let drops: BTreeMap<String, u64> = ua
            .rx_drops
            .iter()
            .map(|(k, v)| (k.clone(), v - ub.rx_drops.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        let dsum: u64 = drops.values().sum();
        let (nic_rx, nic_lost, nic_tx) = nic(u);
        let (host_lost, harness_lost) = host(u);
        let not_dlv = offered - dlv;
        // What QEMU did not hand the NIC: its receive filter refused it.
        let filtered = offered.saturating_sub(nic_rx + nic_lost + host_lost);
        let counted = dsum + nic_lost + host_lost + filtered;
        let unc = not_dlv.saturating_sub(counted);
        uncovered += unc;
        let a_tx = ua.tx_frames - ub.tx_frames;
        let got_guest_frames: u64 = (0..GUESTS).map(|j| t.out_by[j][u]).sum();
        let got = got_guest_frames + t.learning[u] + t.untagged_out[u];
        let _ = writeln!(
            out,
            "{u:<6} {offered:<8} {dlv:<10} {a_rx:<15} {:<36} {nic_lost:<8} {host_lost:<9} {:<16} {not_dlv:<13} {counted:<7} {unc:<9} | {a_tx:<16} {nic_tx:<8} {got:<11} ({}) {harness_lost}",
            words(&drops),
            format!("{filtered} ({})", stale[u]),
            t.learning[u],
        );
        if offered < nic_rx + nic_lost + host_lost || filtered > stale[u] {
            failures.push(format!(
                "uplink {u}: the outside offered {offered}, its NIC took {nic_rx}, lost {nic_lost} and the host {host_lost}; of the {filtered} left, only {} went where their MAC had just left",
                stale[u]
            ));
        }
        if nic_rx != a_rx {
            failures.push(format!(
                "uplink {u}: its NIC took {nic_rx} frames, the engine saw {a_rx}"
            ));
        }
        if counted > not_dlv {
            failures.push(format!(
                "uplink {u}: {counted} frames counted dropped, but only {not_dlv} were not delivered"
            ));
        }
        if nic_tx != got + harness_lost {
            failures.push(format!(
                "uplink {u}: its NIC sent {nic_tx} frames, the harness got {got} (and its socket dropped {harness_lost})"
            ));
        }
        if t.untagged_out[u] > 0 {
            failures.push(format!(
                "uplink {u}: {} frames out that nobody offered",
                t.untagged_out[u]
            ));
        }
    }

    // Guest ports: what their NICs sent is what the harness got.
    for j in 0..GUESTS {
        let n = UPLINKS + j;
        let (_, _, nic_tx) = nic(n);
        let (_, harness_lost) = host(n);
        if nic_tx != t.to_guest[j] + harness_lost {
            failures.push(format!(
                "guest {j}: its port NIC sent {nic_tx} frames, the harness got {} (and its socket dropped {harness_lost})",
                t.to_guest[j]
            ));
        }
        if t.untagged_to_guest[j] > 0 {
            failures.push(format!(
                "guest {j}: {} frames delivered that nobody offered",
                t.untagged_to_guest[j]
            ));
        }
    }
    if t.misdelivered > 0 {
        failures.push(format!(
            "{} tagged frames came out where they never should (back at their own port, or an outside frame on an uplink)",
            t.misdelivered
        ));
    }

    let dt = |k: &str| sa.total(k).saturating_sub(sb.total(k));
    let pool = dt("uplink_full") + dt("guest_full") + dt("own_queue_full");
    let _ = writeln!(
        out,
        "\nno source named: lost to full queues: uplink full {}, guest full {}, own queue full {}",
        dt("uplink_full"),
        dt("guest_full"),
        dt("own_queue_full")
    );
    let unaccounted = uncovered.saturating_sub(pool);
    if unaccounted > 0 {
        failures.push(format!(
            "{unaccounted} frames neither delivered nor counted ({uncovered} not covered by their source's counters, {pool} in the full-queue counters)"
        ));
    }
    Reconciled {
        failures,
        offered: offered_all,
        unaccounted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_found_in_udp_tcp_and_arp_frames() {
        let ends = Ipv4Ends {
            src_mac: guest_mac(1),
            dst_mac: remote(2).mac,
            src_ip: guest_ip(1),
            dst_ip: remote(2).ip,
        };
        assert_eq!(tag_of(&udp(ends, tag(1, 7), 60)), Some((1, 7)));
        assert_eq!(
            tag_of(&udp(ends, tag(3, 1 << 40), 1000)),
            Some((3, 1 << 40))
        );
        let t = tcp(
            ends,
            40000,
            TCP_PORT,
            tcp_flags::ACK,
            tag(GUESTS + 2, 9),
            60,
        );
        assert_eq!(tag_of(&t), Some((GUESTS + 2, 9)));
        let a = arp_tagged(
            frame::arp_request(guest_mac(0), guest_ip(0), remote(0).ip),
            tag(0, 5),
        );
        assert_eq!(a.len(), frame::MIN_FRAME);
        assert_eq!(tag_of(&a), Some((0, 5)));
        // Frames the harness did not build carry no tag.
        assert_eq!(
            tag_of(&frame::arp_request(guest_mac(0), guest_ip(0), remote(0).ip)),
            None
        );
        assert_eq!(tag_of(&crate::rig::udp_frame(ends, 5, 100)), None);
    }

    #[test]
    fn the_rng_repeats_from_its_seed() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..100 {
            assert_eq!(a.next(), b.next());
        }
        assert!((0..1000).all(|_| a.range(60, 1000) >= 60 && b.below(4) < 4));
    }
}
