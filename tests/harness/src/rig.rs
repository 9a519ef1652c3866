//! An aggdom domain laid out for end-to-end tests and benchmarks: uplinks
//! first, then one guest port per guest, then spare NICs; a learning switch
//! joining the uplinks to remote hosts; guest traffic; and parsers for the
//! console's `stats`, `nic <n>` and the Prometheus text of `/metrics`.
//!
//! Addresses: uplink *i* has MAC `52:54:00:e2:00:<i+1>` (identity *i*),
//! guest *j* has MAC `02:00:00:00:01:<j+1>` and IP `10.0.0.<11+j>`, remote
//! host *k* has MAC `02:00:00:00:09:<k>` and IP `10.0.0.<100+k>`, the
//! domain's own IP is [`OWN_IP`]. With [`Layout::with_ipv6`] guest *j* also
//! has `fd00::<11+j>` (hex) and the prefix [`PREFIX6`]; remote host *k* is
//! `fd00::1:<k>` ([`remote_ip6`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::frame::{self, Eth, Ipv4Ends};
use crate::frame6::{self, Ipv6Ends, ICMPV6_ECHO_REPLY};
use crate::switch::{Forward, LearningSwitch};
use crate::tcp::{self, Ends, Link};
use crate::{MacAddr, Machine, MachineBuilder, NicKind, Result};

/// The domain's own IP (`ip=10.0.0.2/24`).
pub const OWN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// UDP port guest test traffic is sent from and to.
pub const UDP_PORT: u16 = 7000;
/// The IPv6 prefix every guest has with [`Layout::with_ipv6`].
pub const PREFIX6: &str = "fd00::/64";

/// Guest `j`'s IPv6 address with [`Layout::with_ipv6`].
pub const fn guest_ip6(j: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x11 + j as u16)
}

/// Remote host `k`'s IPv6 address.
pub const fn remote_ip6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, k as u16)
}

/// Uplink `i`'s factory MAC, which is identity `i`.
pub const fn uplink_mac(i: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0x00, 0xe2, 0x00, i as u8 + 1])
}

/// The MAC of the NIC standing for guest `j`'s port (not the guest's MAC).
pub const fn port_mac(j: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0x00, 0xe2, 0x01, j as u8 + 1])
}

/// Spare NIC `s`'s MAC.
pub const fn spare_mac(s: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0x00, 0xe2, 0x02, s as u8 + 1])
}

/// Guest `j`'s MAC.
pub const fn guest_mac(j: usize) -> MacAddr {
    MacAddr::local(0x100 + j as u16 + 1)
}

/// Guest `j`'s (first) IP.
pub const fn guest_ip(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 11 + j as u8)
}

/// A host on the far side of the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Its MAC.
    pub mac: MacAddr,
    /// Its IP.
    pub ip: Ipv4Addr,
}

/// Remote host `k`.
pub const fn remote(k: usize) -> Remote {
    Remote {
        mac: MacAddr::local(0x900 + k as u16),
        ip: Ipv4Addr::new(10, 0, 0, 100 + k as u8),
    }
}

/// What to boot: `uplinks` uplinks (NICs `0..uplinks`), `guests` guest
/// ports (the next NICs), `spares` NICs in no role, and extra command-line
/// items.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Number of uplinks.
    pub uplinks: usize,
    /// Number of guests (one port each).
    pub guests: usize,
    /// NICs after the guest ports that the command line names in no role.
    pub spares: usize,
    /// The NIC model of every NIC.
    pub kind: NicKind,
    /// Items appended to the generated command line.
    pub extra: String,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// Guests have an IPv6 address and [`PREFIX6`] too.
    pub ipv6: bool,
}

impl Layout {
    /// `uplinks` virtio-net uplinks and `guests` guest ports, 128 MiB.
    pub fn new(uplinks: usize, guests: usize) -> Layout {
        Layout {
            uplinks,
            guests,
            spares: 0,
            kind: NicKind::VirtioNet,
            extra: String::new(),
            memory_mib: 128,
            ipv6: false,
        }
    }

    /// Gives guest `j` the IPv6 address [`guest_ip6`]`(j)` and the prefix
    /// [`PREFIX6`] beside its IPv4 address (dual stack).
    pub fn with_ipv6(mut self) -> Layout {
        self.ipv6 = true;
        self
    }

    /// Appends command-line items (`mode=literal`, `bind=...`, ...).
    pub fn with(mut self, items: &str) -> Layout {
        if !self.extra.is_empty() {
            self.extra.push(' ');
        }
        self.extra.push_str(items);
        self
    }

    /// NIC index of guest `j`'s port.
    pub fn port(&self, j: usize) -> usize {
        self.uplinks + j
    }

    /// NIC index of spare NIC `s`.
    pub fn spare(&self, s: usize) -> usize {
        self.uplinks + self.guests + s
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        let mut items = Vec::new();
        if self.uplinks > 0 {
            let ids: Vec<String> = (0..self.uplinks).map(|i| i.to_string()).collect();
            items.push(format!("uplinks={}", ids.join(",")));
        }
        for j in 0..self.guests {
            let v6 = if self.ipv6 {
                format!("+{}+{PREFIX6}", guest_ip6(j))
            } else {
                String::new()
            };
            items.push(format!(
                "guest={},{},{}{v6}",
                self.port(j),
                guest_mac(j),
                guest_ip(j)
            ));
        }
        if !self.extra.is_empty() {
            items.push(self.extra.clone());
        }
        items.join(" ")
    }

    /// A builder with the NICs and command line (not booted).
    pub fn builder(&self) -> MachineBuilder {
        let mut b = Machine::builder()
            .cmdline(self.cmdline())
            .memory_mib(self.memory_mib);
        for i in 0..self.uplinks {
            b = b.nic(self.kind, uplink_mac(i));
        }
        for j in 0..self.guests {
            b = b.nic(self.kind, port_mac(j));
        }
        for s in 0..self.spares {
            b = b.nic(self.kind, spare_mac(s));
        }
        b
    }

    /// Boots it and waits for the prompt.
    pub fn boot(&self) -> Result<Machine> {
        self.builder().boot()
    }
}

/// A UDP frame from guest `j` to `to`, `len` bytes long (at least 60),
/// carrying `tag` in its first payload bytes ([`udp_tag`] finds it).
pub fn guest_udp(j: usize, to: Remote, tag: u64, len: usize) -> Vec<u8> {
    udp_frame(
        Ipv4Ends {
            src_mac: guest_mac(j),
            dst_mac: to.mac,
            src_ip: guest_ip(j),
            dst_ip: to.ip,
        },
        tag,
        len,
    )
}

/// A UDP frame between `ends`, `len` bytes long, carrying `tag`.
pub fn udp_frame(ends: Ipv4Ends, tag: u64, len: usize) -> Vec<u8> {
    let mut payload = tag.to_be_bytes().to_vec();
    payload.resize(len.max(frame::MIN_FRAME) - 42, 0x5a);
    frame::udp(ends, UDP_PORT, UDP_PORT, &payload)
}

/// A UDP frame over IPv6 between `ends`, `len` bytes long, carrying `tag`.
pub fn udp6_frame(ends: Ipv6Ends, tag: u64, len: usize) -> Vec<u8> {
    let mut payload = tag.to_be_bytes().to_vec();
    payload.resize(len.max(frame::MIN_FRAME + 20) - 62, 0x5a);
    frame6::udp6(ends, UDP_PORT, UDP_PORT, &payload)
}

/// A UDP frame over IPv6 from guest `j` to remote host `k`, carrying `tag`.
pub fn guest_udp6(j: usize, k: usize, tag: u64, len: usize) -> Vec<u8> {
    udp6_frame(
        Ipv6Ends {
            src_mac: guest_mac(j),
            dst_mac: remote(k).mac,
            src_ip: guest_ip6(j),
            dst_ip: remote_ip6(k),
        },
        tag,
        len,
    )
}

/// The tag of a frame built by [`udp6_frame`] / [`guest_udp6`].
pub fn udp6_tag(f: &[u8]) -> Option<u64> {
    let udp = Eth::parse(f)?.ipv6()?.udp()?;
    if udp.dst_port != UDP_PORT {
        return None;
    }
    Some(u64::from_be_bytes(udp.payload.get(..8)?.try_into().ok()?))
}

/// The tag of a frame built by [`guest_udp`] / [`udp_frame`].
pub fn udp_tag(f: &[u8]) -> Option<u64> {
    let udp = Eth::parse(f)?.ipv4()?.udp()?;
    if udp.dst_port != UDP_PORT {
        return None;
    }
    Some(u64::from_be_bytes(udp.payload.get(..8)?.try_into().ok()?))
}

/// Frame addressing, for assertions.
pub fn macs(f: &[u8]) -> (MacAddr, MacAddr) {
    Eth::parse(f).map_or((MacAddr::default(), MacAddr::default()), |e| (e.src, e.dst))
}

/// Ethertype of the learning frame a new holder sends after a move.
pub const ETHERTYPE_LEARNING: u16 = 0x9000;

/// Is `f` the learning frame for identity MAC `mac` (broadcast, ethertype
/// 0x9000, source `mac`)?
pub fn is_learning_frame(f: &[u8], mac: MacAddr) -> bool {
    Eth::parse(f).is_some_and(|e| {
        e.ethertype == ETHERTYPE_LEARNING && e.src == mac && e.dst == MacAddr::BROADCAST
    })
}

struct NetState {
    switch: LearningSwitch,
    inbox: Vec<VecDeque<Vec<u8>>>,
    /// Every frame the uplinks sent, with the uplink, in order.
    log: Vec<(usize, Vec<u8>)>,
}

/// The outside network: a [`LearningSwitch`] whose ports `0..uplinks` are
/// the machine's uplink NICs and whose ports `uplinks..` are remote hosts
/// (`remote(k)` on port `uplinks + k`). It moves frames only when asked
/// ([`Net::pump`], [`Net::remote_recv`], [`Net::remote_send`]); frames of
/// guest ports stay queued in the machine for the test. Remote hosts
/// answer ARP requests for their own IP by themselves.
pub struct Net {
    uplinks: usize,
    state: Mutex<NetState>,
}

impl Net {
    /// A switch for `uplinks` uplinks and `remotes` remote hosts.
    pub fn new(uplinks: usize, remotes: usize) -> Net {
        Net {
            uplinks,
            state: Mutex::new(NetState {
                switch: LearningSwitch::new(uplinks + remotes),
                inbox: vec![VecDeque::new(); remotes],
                log: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, m: &Machine, st: &mut NetState, fwd: Forward, f: &[u8]) -> Result<()> {
        for p in fwd.ports() {
            if p < self.uplinks {
                m.send_frame(p, f)?;
                continue;
            }
            let k = p - self.uplinks;
            st.inbox[k].push_back(f.to_vec());
            // Remote hosts answer ARP for their own address, as hosts do
            // (the request stays in the inbox for the test to see).
            let me = remote(k);
            let asked = Eth::parse(f).and_then(|e| e.arp()).filter(|a| {
                a.op == frame::ARP_REQUEST && a.target_ip == me.ip && a.sender_ip != me.ip
            });
            if let Some(a) = asked {
                let reply = frame::arp_reply(me.mac, me.ip, a.sender_mac, a.sender_ip);
                let fwd = st.switch.handle(p, &reply);
                self.deliver(m, st, fwd, &reply)?;
            }
        }
        Ok(())
    }

    /// Passes one frame an uplink sent through the switch, if one comes
    /// within `timeout`; `false` if none came.
    pub fn pump_one(&self, m: &Machine, timeout: Duration) -> Result<bool> {
        let Some(r) = m.recv_where(timeout, |r| r.nic < self.uplinks) else {
            return Ok(false);
        };
        let mut st = self.lock();
        let fwd = st.switch.handle(r.nic, &r.data);
        st.log.push((r.nic, r.data.clone()));
        self.deliver(m, &mut st, fwd, &r.data)?;
        Ok(true)
    }

    /// Moves frames until none arrived for `quiet`.
    pub fn pump(&self, m: &Machine, quiet: Duration) -> Result<()> {
        while self.pump_one(m, quiet)? {}
        Ok(())
    }

    /// Remote host `k` sends `f` into the switch. What the uplinks sent
    /// before (a learning frame, say) passes the switch first, as it would
    /// in a switch that never waits to be asked.
    pub fn remote_send(&self, m: &Machine, k: usize, f: &[u8]) -> Result<()> {
        while self.pump_one(m, Duration::ZERO)? {}
        let mut st = self.lock();
        let fwd = st.switch.handle(self.uplinks + k, f);
        self.deliver(m, &mut st, fwd, f)
    }

    /// Remote host `k` announces itself (gratuitous ARP), so the switch
    /// knows its port before anyone sends to it.
    pub fn announce(&self, m: &Machine, k: usize) -> Result<()> {
        let r = remote(k);
        self.remote_send(m, k, &frame::arp_request(r.mac, r.ip, r.ip))
    }

    /// The first frame for remote host `k` that `pred` accepts, pumping the
    /// switch for up to `timeout`. Frames it does not accept stay queued.
    pub fn remote_recv(
        &self,
        m: &Machine,
        k: usize,
        timeout: Duration,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut st = self.lock();
                let inbox = &mut st.inbox[k];
                if let Some(i) = inbox.iter().position(|f| pred(f)) {
                    return Ok(inbox.remove(i));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.pump_one(m, (deadline - now).min(Duration::from_millis(50)))?;
        }
    }

    /// Removes every frame waiting for remote host `k`.
    pub fn remote_drain(&self, k: usize) -> Vec<Vec<u8>> {
        self.lock().inbox[k].drain(..).collect()
    }

    /// The switch port `mac` was last learnt on.
    pub fn port_of(&self, mac: MacAddr) -> Option<usize> {
        self.lock().switch.port_of(mac)
    }

    /// Every (from, to) port move of `mac` the switch recorded.
    pub fn moves_of(&self, mac: MacAddr) -> Vec<(usize, usize)> {
        self.lock()
            .switch
            .moves()
            .iter()
            .filter(|mv| mv.mac == mac)
            .map(|mv| (mv.from, mv.to))
            .collect()
    }

    /// Takes the log of frames the uplinks sent (uplink, frame).
    pub fn take_log(&self) -> Vec<(usize, Vec<u8>)> {
        std::mem::take(&mut self.lock().log)
    }

    /// Remote host `k` as a [`Link`] through this switch.
    pub fn link<'a>(&'a self, m: &'a Machine, k: usize) -> RemoteLink<'a> {
        RemoteLink { net: self, m, k }
    }
}

/// A remote host behind the switch, as a [`Link`].
pub struct RemoteLink<'a> {
    net: &'a Net,
    m: &'a Machine,
    k: usize,
}

impl Link for RemoteLink<'_> {
    fn send(&self, frame: &[u8]) -> Result<()> {
        self.net.remote_send(self.m, self.k, frame)
    }

    fn recv_matching(
        &self,
        timeout: Duration,
        pred: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        self.net
            .remote_recv(self.m, self.k, timeout, |f| pred(f))
            .ok()
            .flatten()
    }
}

/// Echo ("ping") by IP family, so one helper pings over either.
pub trait Echo: Copy {
    /// An echo request from the client to the server.
    fn echo_request(&self, ident: u16, seq: u16, data: &[u8]) -> Vec<u8>;
    /// The server's echo reply to the client in `frame` (checksum
    /// verified): identifier, sequence number, data.
    fn echo_reply<'a>(&self, frame: &'a [u8]) -> Option<(u16, u16, &'a [u8])>;
}

impl Echo for Ipv4Ends {
    fn echo_request(&self, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
        frame::icmp_echo_request(*self, ident, seq, data)
    }

    fn echo_reply<'a>(&self, f: &'a [u8]) -> Option<(u16, u16, &'a [u8])> {
        let i = Eth::parse(f)?
            .ipv4()
            .filter(|ip| ip.src == self.dst_ip && ip.dst == self.src_ip)?
            .icmp()?;
        (i.ty == 0).then_some((i.ident, i.seq, i.payload))
    }
}

impl Echo for Ipv6Ends {
    fn echo_request(&self, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
        frame6::echo6_request(*self, ident, seq, data)
    }

    fn echo_reply<'a>(&self, f: &'a [u8]) -> Option<(u16, u16, &'a [u8])> {
        let i = Eth::parse(f)?
            .ipv6()
            .filter(|ip| ip.src == self.dst_ip && ip.dst == self.src_ip)?
            .icmp6()?;
        (i.ty == ICMPV6_ECHO_REPLY).then(|| i.echo()).flatten()
    }
}

/// Sends an echo request (`ident`, `seq`, `data`) from the client of
/// `ends` over `link` and waits up to `timeout` for the server's reply
/// with that sequence number: the reply's frame, `None` if none came.
pub fn ping<E: Echo>(
    link: &dyn Link,
    ends: E,
    ident: u16,
    seq: u16,
    data: &[u8],
    timeout: Duration,
) -> Result<Option<Vec<u8>>> {
    link.send(&ends.echo_request(ident, seq, data))?;
    Ok(link.recv_matching(timeout, &mut |f| {
        ends.echo_reply(f).is_some_and(|(_, s, _)| s == seq)
    }))
}

/// `GET /metrics` from the client of `ends` over `link` (the own stack
/// serves it on port 80): the whole response as text, or why there is none.
pub fn get_metrics<E: Ends>(link: &dyn Link, ends: E, src_port: u16) -> Result<String> {
    let raw = tcp::request(
        link,
        ends,
        src_port,
        80,
        b"GET /metrics HTTP/1.0\r\n\r\n",
        Duration::from_secs(30),
    )?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

// --- the console's tables ----------------------------------------------

/// One uplink row of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkStats {
    /// The MAC register.
    pub mac: String,
    /// Link up.
    pub link_up: bool,
    /// Identities held.
    pub ids: Vec<usize>,
    /// Marked exclusive.
    pub exclusive: bool,
    /// Engine counters.
    pub tx_frames: u64,
    /// Engine counters.
    pub tx_bytes: u64,
    /// Engine counters.
    pub rx_frames: u64,
    /// Engine counters.
    pub rx_bytes: u64,
    /// Smoothed transmit rate, bytes/s.
    pub tx_rate: u64,
    /// Smoothed receive rate, bytes/s.
    pub rx_rate: u64,
    /// The driver's MAC register writes.
    pub mac_writes: u64,
    /// Identities moved in.
    pub moves_in: u64,
    /// Identities moved out.
    pub moves_out: u64,
    /// Frames received here and dropped, by reason (non-zero ones).
    pub rx_drops: BTreeMap<String, u64>,
}

/// One guest row of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestStats {
    /// Frames that left through an uplink.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames delivered to the guest.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames switched locally.
    pub local: u64,
    /// Frames per uplink.
    pub per_uplink: Vec<u64>,
    /// Drops by reason name (only non-zero ones are printed).
    pub drops: BTreeMap<String, u64>,
}

impl GuestStats {
    /// Drops counted under `reason` (0 when not printed).
    pub fn drops(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }
}

/// One identity row of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityStats {
    /// Its MAC.
    pub mac: String,
    /// The uplink holding it.
    pub holder: Option<usize>,
    /// Pinned.
    pub pinned: bool,
    /// Times moved.
    pub moves: u64,
    /// Bytes sent under it.
    pub tx_bytes: u64,
    /// Bytes received for it.
    pub rx_bytes: u64,
}

/// The console's `stats`, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per uplink.
    pub uplinks: Vec<UplinkStats>,
    /// Per guest.
    pub guests: Vec<GuestStats>,
    /// Per identity.
    pub identities: Vec<IdentityStats>,
    /// The summary line's numbers by name: `own_tx`, `own_rx`, `swaps`,
    /// `rebalance_runs`, `rebalance_moves`, `failover_moves`,
    /// `learning_frames`, `uplink_full`, `guest_full`, `own_queue_full`,
    /// `flooded`, `nd_directed`, `mld_out`, `stranded`, `program_errors`,
    /// `literal_mac_writes`, `literal_unsupported`.
    pub totals: BTreeMap<String, u64>,
    /// Per uplink, how often the engine saw its link go down (the `link
    /// downs per uplink a/b/...` line; empty if `stats` has none).
    pub link_downs: Vec<u64>,
}

fn num(s: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| panic!("stats: {s:?} is not a number"))
}

impl Stats {
    /// Parses the reply to `stats`; panics on a table it cannot read (the
    /// format is what the tests check).
    pub fn parse(text: &str) -> Stats {
        #[derive(PartialEq)]
        enum Sec {
            None,
            Uplinks,
            Guests,
            Identities,
        }
        let mut s = Stats::default();
        let mut sec = Sec::None;
        for line in text.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            match t.first().copied() {
                Some("uplink") => sec = Sec::Uplinks,
                Some("guest") => sec = Sec::Guests,
                Some("identity") => sec = Sec::Identities,
                Some("own") => {
                    sec = Sec::None;
                    s.totals.extend(parse_totals(line));
                }
                Some("flooded") => {
                    sec = Sec::None;
                    s.totals.extend(parse_totals(line));
                }
                Some("link") => {
                    sec = Sec::None;
                    if let Some(l) = line.strip_prefix("link downs per uplink ") {
                        // Blank with no uplinks.
                        s.link_downs = l
                            .split('/')
                            .map(str::trim)
                            .filter(|n| !n.is_empty())
                            .map(num)
                            .collect();
                    }
                }
                Some(first) if first.parse::<usize>().is_ok() => match sec {
                    Sec::Uplinks => s.uplinks.push(parse_uplink(&t, line)),
                    Sec::Guests => s.guests.push(parse_guest(&t, line)),
                    Sec::Identities => s.identities.push(IdentityStats {
                        mac: t[1].to_string(),
                        holder: t[2].parse().ok(),
                        pinned: t[3] == "yes",
                        moves: num(t[4]),
                        tx_bytes: num(t[5]),
                        rx_bytes: num(t[6]),
                    }),
                    Sec::None => {}
                },
                _ => {}
            }
        }
        s
    }

    /// Holder of identity `i`.
    pub fn holder(&self, i: usize) -> Option<usize> {
        self.identities.get(i).and_then(|x| x.holder)
    }

    /// A summary-line number (0 if absent).
    pub fn total(&self, name: &str) -> u64 {
        self.totals.get(name).copied().unwrap_or(0)
    }
}

fn parse_uplink(t: &[&str], line: &str) -> UplinkStats {
    // index kind mac link [ids] tx_frames tx_bytes rx_frames rx_bytes tx_B/s
    // rx_B/s mac_writes moves_in moves_out rx_drops...; ids is blank when
    // none are held, rx_drops `-` or `reason=n` words.
    let end = t
        .iter()
        .position(|w| *w == "-" || w.contains('='))
        .unwrap_or(t.len());
    let (ids, rest) = match end {
        14 => (t[4], &t[5..end]),
        13 => ("", &t[4..end]),
        _ => panic!("stats: uplink row {line:?}"),
    };
    let exclusive = ids.ends_with('x');
    UplinkStats {
        mac: t[2].to_string(),
        link_up: t[3] == "up",
        ids: ids
            .trim_end_matches('x')
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| num(s) as usize)
            .collect(),
        exclusive,
        tx_frames: num(rest[0]),
        tx_bytes: num(rest[1]),
        rx_frames: num(rest[2]),
        rx_bytes: num(rest[3]),
        tx_rate: num(rest[4]),
        rx_rate: num(rest[5]),
        mac_writes: num(rest[6]),
        moves_in: num(rest[7]),
        moves_out: num(rest[8]),
        rx_drops: drop_words(&t[end..]),
    }
}

/// `reason=n` words into a map (`-` is none).
fn drop_words(words: &[&str]) -> BTreeMap<String, u64> {
    words
        .iter()
        .filter_map(|d| d.split_once('='))
        .map(|(k, v)| (k.to_string(), num(v)))
        .collect()
}

fn parse_guest(t: &[&str], line: &str) -> GuestStats {
    // index name mac tx_frames tx_bytes rx_frames rx_bytes local per-uplink drops...
    assert!(t.len() >= 10, "stats: guest row {line:?}");
    let drops = drop_words(&t[9..]);
    GuestStats {
        tx_frames: num(t[3]),
        tx_bytes: num(t[4]),
        rx_frames: num(t[5]),
        rx_bytes: num(t[6]),
        local: num(t[7]),
        per_uplink: t[8].split('/').map(num).collect(),
        drops,
    }
}

fn parse_totals(line: &str) -> BTreeMap<String, u64> {
    // own tx A rx B swaps C; rebalance runs D moves E; failover moves F;
    // learning frames G; lost: uplink full H, guest full I, own queue full J
    let names = [
        ("own tx ", "own_tx"),
        (" rx ", "own_rx"),
        (" swaps ", "swaps"),
        ("rebalance runs ", "rebalance_runs"),
        ("runs ", "rebalance_runs"),
        ("failover moves ", "failover_moves"),
        ("learning frames ", "learning_frames"),
        ("uplink full ", "uplink_full"),
        ("guest full ", "guest_full"),
        ("own queue full ", "own_queue_full"),
        ("flooded ", "flooded"),
        ("solicitations directed ", "nd_directed"),
        ("mld out ", "mld_out"),
        ("stranded identities ", "stranded"),
        ("program errors ", "program_errors"),
        ("literal mac writes ", "literal_mac_writes"),
        ("literal unsupported ", "literal_unsupported"),
    ];
    let mut out = BTreeMap::new();
    for (key, name) in names {
        if let Some(at) = line.find(key) {
            let rest = &line[at + key.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(v) = digits.parse() {
                out.entry(name.to_string()).or_insert(v);
            }
        }
    }
    if let Some(at) = line.find("rebalance runs ") {
        let rest = &line[at..];
        if let Some(m) = rest.find(" moves ") {
            let digits: String = rest[m + 7..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(v) = digits.parse() {
                out.insert("rebalance_moves".into(), v);
            }
        }
    }
    out
}

/// `nic <n>`, parsed: the MAC register and the counters by name
/// (`rx_frames`, `tx_frames`, `mac_writes`, `filter_writes`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicInfo {
    /// The MAC register.
    pub mac: String,
    /// The factory MAC.
    pub factory: String,
    /// Receive filter entries.
    pub filter: Vec<String>,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// Counters by name.
    pub counters: BTreeMap<String, u64>,
}

impl NicInfo {
    /// Parses the reply to `nic <n>`.
    pub fn parse(text: &str) -> NicInfo {
        let mut n = NicInfo::default();
        for line in text.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            match t.as_slice() {
                ["mac", mac, "(factory", f] => {
                    n.mac = mac.to_string();
                    n.factory = f.trim_end_matches(')').to_string();
                }
                ["filter", _, "slots:", rest @ ..] => {
                    n.filter = rest
                        .iter()
                        .filter(|s| **s != "-")
                        .map(|s| s.to_string())
                        .collect();
                }
                ["promiscuous", p, ..] => n.promiscuous = p.trim_end_matches(',') == "on",
                [dir @ ("rx" | "tx"), rest @ ..] => {
                    // "rx frames 3 bytes 180 drops 0 ...": rx_frames, rx_bytes, ...
                    for pair in rest.chunks(2) {
                        if let [name, v] = pair {
                            if let Ok(v) = v.parse() {
                                n.counters.insert(format!("{dir}_{name}"), v);
                            }
                        }
                    }
                }
                ["mac", "writes", ..] => {
                    // "mac writes 2 filter writes 0 link changes 0"
                    for triple in t.chunks(3) {
                        if let [a, b, v] = triple {
                            if let Ok(v) = v.parse() {
                                n.counters.insert(format!("{a}_{b}"), v);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        n
    }

    /// A counter (0 if absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// Prometheus text: every sample, keyed by `name{labels}` as printed.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Polls `f` every 100 ms until it returns `Some`, for up to `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "mode identity, uptime 0.082 s
uplink kind        mac               link ids      tx_frames   tx_bytes    rx_frames   rx_bytes    tx_B/s     rx_B/s     mac_writes moves_in moves_out rx_drops
0      virtio-net  52:54:00:e2:00:01 up   0,1      1           60          0           0           0          0          0          0        0         -
1      virtio-net  52:54:00:e2:00:02 down          0           0           0           0           0          0          2          0        1         not_holder=4 denied=1
2      e1000       52:54:00:e2:00:03 up   2x       0           0           0           0           0          0          0          0        0         -
guest  name        mac               tx_frames   tx_bytes    rx_frames   rx_bytes    local    per-uplink tx     drops
0      guest0      02:00:00:00:01:01 1           60          0           0           0        1/0/0             -
1      guest1      02:00:00:00:01:02 0           0           0           0           0        0/0/0             denied=3 spoofed_ip=1 rx_denied=2
identity mac               holder pinned moves tx_bytes    rx_bytes
0        52:54:00:e2:00:01 0      no     0     60          0
1        52:54:00:e2:00:02 0      yes    1     0           0
own tx 4 rx 5 swaps 1; rebalance runs 7 moves 2; failover moves 1; learning frames 3; lost: uplink full 0, guest full 9, own queue full 0
flooded 6; stranded identities 0; program errors 0; literal mac writes 8; own tx drops -
";

    #[test]
    fn stats_tables_parse() {
        let s = Stats::parse(STATS);
        assert_eq!(s.uplinks.len(), 3);
        assert_eq!(s.uplinks[0].ids, vec![0, 1]);
        assert_eq!(s.uplinks[0].tx_frames, 1);
        assert!(s.uplinks[1].ids.is_empty() && !s.uplinks[1].link_up);
        assert_eq!((s.uplinks[1].mac_writes, s.uplinks[1].moves_out), (2, 1));
        assert!(s.uplinks[2].exclusive && s.uplinks[2].ids == vec![2]);
        assert_eq!(s.guests[0].per_uplink, vec![1, 0, 0]);
        assert_eq!(s.guests[1].drops("denied"), 3);
        assert_eq!(s.guests[1].drops("spoofed_ip"), 1);
        assert_eq!(s.guests[1].drops("rx_denied"), 2);
        assert!(s.uplinks[0].rx_drops.is_empty());
        assert_eq!(s.uplinks[1].rx_drops["not_holder"], 4);
        assert_eq!(s.guests[0].drops("denied"), 0);
        assert_eq!(s.holder(1), Some(0));
        assert!(s.identities[1].pinned);
        let want = [
            ("own_tx", 4),
            ("own_rx", 5),
            ("swaps", 1),
            ("rebalance_runs", 7),
            ("rebalance_moves", 2),
            ("failover_moves", 1),
            ("learning_frames", 3),
            ("guest_full", 9),
            ("flooded", 6),
            ("literal_mac_writes", 8),
        ];
        for (k, v) in want {
            assert_eq!(s.total(k), v, "{k}");
        }
    }

    #[test]
    fn link_downs_and_literal_unsupported_parse() {
        let s = Stats::parse(
            "flooded 6; stranded identities 0; literal mac writes 8; literal unsupported 2; own tx drops -\nlink downs per uplink 0/3/1/0\ndomain: http_requests 0",
        );
        assert_eq!(s.link_downs, vec![0, 3, 1, 0]);
        assert_eq!(s.total("literal_mac_writes"), 8);
        assert_eq!(s.total("literal_unsupported"), 2);
        assert!(Stats::parse("flooded 6").link_downs.is_empty());
        assert!(Stats::parse("link downs per uplink \n")
            .link_downs
            .is_empty());
    }

    #[test]
    fn nic_info_parses() {
        let n = NicInfo::parse(
            "nic 0: 00:03.0 virtio-net (uplink 0)
  mac 52:54:00:e2:00:01 (factory 52:54:00:e2:00:01)
  filter 1/64 slots: 02:00:00:00:01:01
  promiscuous off, all-multicast off
  link up
  rx frames 3 bytes 180 drops 0 missed 0 errors 0
  tx frames 5 bytes 300 drops 0 errors 0
  mac writes 10 filter writes 1 link changes 0",
        );
        assert_eq!(n.mac, "52:54:00:e2:00:01");
        assert_eq!(n.filter, vec!["02:00:00:00:01:01"]);
        assert!(!n.promiscuous);
        assert_eq!(n.counter("rx_frames"), 3);
        assert_eq!(n.counter("tx_bytes"), 300);
        assert_eq!(n.counter("mac_writes"), 10);
        assert_eq!(n.counter("filter_writes"), 1);
    }

    /// A reply is recognised in either family only from the server to the
    /// client; the request is not taken for one.
    #[test]
    fn echo_replies_are_recognised_in_either_family() {
        let v4 = Ipv4Ends {
            src_mac: remote(0).mac,
            dst_mac: uplink_mac(0),
            src_ip: remote(0).ip,
            dst_ip: OWN_IP,
        };
        let reply = frame::icmp_echo(v4.reversed(), 0, 7, 9, b"x");
        assert_eq!(v4.echo_reply(&reply), Some((7, 9, &b"x"[..])));
        assert_eq!(v4.reversed().echo_reply(&reply), None);
        assert_eq!(v4.echo_reply(&v4.echo_request(7, 9, b"x")), None);
        let v6 = Ipv6Ends {
            src_mac: remote(0).mac,
            dst_mac: uplink_mac(0),
            src_ip: remote_ip6(0),
            dst_ip: "fd00::2".parse().unwrap(),
        };
        let reply = frame6::icmp6(v6.reversed(), 64, ICMPV6_ECHO_REPLY, &[0, 7, 0, 9, b'x']);
        assert_eq!(v6.echo_reply(&reply), Some((7, 9, &b"x"[..])));
        assert_eq!(v6.reversed().echo_reply(&reply), None);
        assert_eq!(v6.echo_reply(&v6.echo_request(7, 9, b"x")), None);
    }

    #[test]
    fn prometheus_samples_parse() {
        let p = parse_prometheus(
            "# HELP a_total x\n# TYPE a_total counter\na_total{uplink=\"0\"} 5\nb 7\n",
        );
        assert_eq!(p["a_total{uplink=\"0\"}"], 5);
        assert_eq!(p["b"], 7);
    }
}
