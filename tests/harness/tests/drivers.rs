//! QEMU integration tests of the NIC drivers (issue 4): the e1000, the
//! transitional virtio-net (1af4:1000) and the modern one (1af4:1041), on
//! machines that mix them.
//!
//! How reception is observed: the machines boot with `uplinks=0`, so NIC 0
//! is the datapath's one uplink and every other NIC is spare. The spare NICs
//! forward to each other in a ring (`forward 1 2`, `forward 2 3`, ...) with
//! promiscuous mode turned off again, so a frame the harness sends into
//! spare NIC n comes back out of the next one exactly when n's receive
//! filter took it. Whether a frame was refused is decided without timing:
//! a broadcast marker is sent after it through the same NIC; once the marker
//! is out, the frame would have been out before it.
//!
//! QEMU under TCG on two shared cores: every wait is generous and nothing is
//! asserted on time. Latencies are measured and printed only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aggdom_harness::nicstat::{nic_status, NicStatus};
use aggdom_harness::{frame, MacAddr, Machine, MachineBuilder, Nic, NicKind, Pattern};

/// How long one frame may take to come back (e1000 holds reception back
/// for ~1 s after every RCTL write; TCG on a busy host is slow).
const FRAME_WAIT: Duration = Duration::from_secs(10);
/// Gap between frames the harness sends back to back, so QEMU's UDP socket
/// buffer never overflows.
const PACE: Duration = Duration::from_millis(2);
/// Frames per NIC in the counter test: over two laps of either driver's
/// 128-entry rings, so wrapping is exercised too.
const RING_LAPS_FRAMES: usize = 300;
/// How long a link change may take to show in `nic <n>`.
const LINK_WAIT: Duration = Duration::from_secs(10);

/// The factory MAC of NIC `i`.
fn factory(i: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0x00, 0xd4, 0x00, i as u8 + 1])
}

/// The harness's own address, the source of every frame it sends.
fn host() -> MacAddr {
    MacAddr::local(0xd4)
}

/// A MAC no NIC holds unless a test gives it one.
fn stranger(n: usize, k: u8) -> MacAddr {
    MacAddr([0x02, 0xd4, 0x5e, 0x00, n as u8, k])
}

/// A test tag unique within this test binary.
fn next_tag() -> u64 {
    static TAG: AtomicU64 = AtomicU64::new(1);
    TAG.fetch_add(1, Ordering::Relaxed)
}

/// A machine whose NIC 0 is the uplink and whose spare NICs forward in a
/// ring with promiscuous mode off.
struct Rig {
    m: Machine,
    kinds: Vec<NicKind>,
    /// NIC 0 when the datapath was not started (every NIC spare), else 1.
    first_spare: usize,
    /// Spare NIC n forwards what it receives to `out[n]`.
    out: Vec<Option<usize>>,
}

impl Rig {
    fn boot(kinds: &[NicKind]) -> Rig {
        Rig::boot_with(Machine::builder(), kinds)
    }

    fn boot_with(builder: MachineBuilder, kinds: &[NicKind]) -> Rig {
        Rig::start(builder, kinds, "uplinks=0", 1)
    }

    /// Every NIC spare: a command line the configuration parser rejects (a
    /// word without `=`), so the datapath is not started and takes none.
    fn boot_all_spare(kinds: &[NicKind]) -> Rig {
        Rig::start(Machine::builder(), kinds, "no-datapath", 0)
    }

    fn start(builder: MachineBuilder, kinds: &[NicKind], cmdline: &str, first_spare: usize) -> Rig {
        let nics = kinds
            .iter()
            .enumerate()
            .map(|(i, &k)| Nic::new(k, factory(i)));
        let m = builder.nics(nics).cmdline(cmdline).boot().unwrap();
        let mut rig = Rig {
            m,
            kinds: kinds.to_vec(),
            first_spare,
            out: vec![None; kinds.len()],
        };
        let spares = rig.spares();
        for (k, &n) in spares.iter().enumerate() {
            let to = spares[(k + 1) % spares.len()];
            rig.expect(
                &format!("forward {n} {to}"),
                &format!("forwarding nic {n} -> nic {to}"),
            );
            rig.out[n] = Some(to);
        }
        for &n in &spares {
            rig.expect(
                &format!("nic {n} promisc off"),
                &format!("nic {n} promiscuous off"),
            );
            let s = rig.status(n);
            assert_eq!(s.role, "spare", "NIC {n}: {s:?}");
            assert!(!s.promiscuous, "NIC {n}: {s:?}");
        }
        // Every spare forwards (after the e1000's post-RCTL pause).
        for &n in &spares {
            rig.marker(n);
        }
        rig
    }

    fn spares(&self) -> Vec<usize> {
        (self.first_spare..self.kinds.len()).collect()
    }

    fn out(&self, n: usize) -> usize {
        self.out[n].unwrap_or_else(|| panic!("NIC {n} is not a forwarding spare"))
    }

    /// Runs `cmd` and checks its reply is exactly `want`.
    fn expect(&mut self, cmd: &str, want: &str) {
        let reply = self.m.command(cmd).unwrap();
        assert_eq!(reply, want, "reply to {cmd:?}");
    }

    fn status(&mut self, n: usize) -> NicStatus {
        nic_status(&mut self.m, n).unwrap()
    }

    /// The frame tagged `tag` out of NIC `nic`, waiting up to `wait`.
    fn take_tag(&self, nic: usize, tag: u64, wait: Duration) -> Option<Vec<u8>> {
        self.m
            .recv_where(wait, |r| {
                r.nic == nic && frame::tag_of(&r.data) == Some(tag)
            })
            .map(|r| r.data)
    }

    /// Sends a broadcast marker into spare NIC `n` and waits until it comes
    /// out of the next NIC: everything sent into `n` before it is through.
    fn marker(&mut self, n: usize) {
        let tag = next_tag();
        let f = frame::tagged(MacAddr::BROADCAST, host(), tag, 60);
        self.m.send_frame(n, &f).unwrap();
        if self.take_tag(self.out(n), tag, FRAME_WAIT).is_none() {
            panic!(
                "broadcast marker into NIC {n} never came out of NIC {}\n{}",
                self.out(n),
                self.m.diagnostics()
            );
        }
    }

    /// Whether spare NIC `n`'s receive filter takes a frame to `dst`: sends
    /// one, then a marker; it was taken iff it came out before the marker
    /// (and then byte for byte).
    fn accepts(&mut self, n: usize, dst: MacAddr) -> bool {
        let tag = next_tag();
        let sent = frame::tagged(dst, host(), tag, 64);
        self.m.send_frame(n, &sent).unwrap();
        self.marker(n);
        match self.take_tag(self.out(n), tag, Duration::ZERO) {
            Some(got) => {
                assert_eq!(got, sent, "frame to {dst} through NIC {n} changed");
                true
            }
            None => false,
        }
    }

    /// Asserts NIC `n` takes every MAC in `yes` and refuses every MAC in
    /// `no`.
    fn assert_filter(&mut self, n: usize, yes: &[MacAddr], no: &[MacAddr], when: &str) {
        let kind = self.kinds[n];
        for (&mac, want) in yes
            .iter()
            .map(|m| (m, true))
            .chain(no.iter().map(|m| (m, false)))
        {
            if self.accepts(n, mac) != want {
                let s = self.status(n);
                let verb = if want { "refused" } else { "accepted" };
                panic!("NIC {n} ({kind:?}) {verb} {mac} {when}; {s:?}");
            }
        }
    }

    fn assert_healthy(&mut self) {
        assert_eq!(self.m.command("version").unwrap(), "aggdom 0.1.0");
        let t = self.m.transcript();
        assert!(!t.contains("PANIC") && !t.contains("EXCEPTION"), "{t}");
    }
}

use NicKind::{VirtioNet as Virtio, VirtioNetModern as Modern, E1000};

/// Uplink virtio, then one spare of each kind.
const MIX_A: [NicKind; 4] = [Virtio, E1000, Virtio, Modern];
/// Uplink e1000, then spares of each kind with two e1000s.
const MIX_B: [NicKind; 4] = [E1000, Modern, E1000, Virtio];

/// The test frame `nic <n> send <dst> <len>` builds for sequence `seq`.
fn console_frame(dst: MacAddr, src: MacAddr, len: usize, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    if len >= 18 {
        f[14..18].copy_from_slice(&seq.to_be_bytes());
    }
    f
}

/// Sends `count` frames of assorted sizes into spare NIC `n` (half to its
/// MAC, half broadcast), paced, and checks each comes out of the next NIC
/// byte for byte, and that both NICs' counters and the harness's moved by
/// exactly those frames and bytes.
fn check_counted_delivery(rig: &mut Rig, n: usize, count: usize) {
    let sizes = [60usize, 64, 65, 128, 511, 1000, 1514, 1518];
    let out = rig.out(n);
    let (rx0, tx0) = (rig.status(n), rig.status(out));
    let (h_in0, h_out0) = (rig.m.nic_counters(n), rig.m.nic_counters(out));
    let mut sent = Vec::new();
    for (k, &len) in sizes.iter().cycle().take(count).enumerate() {
        let tag = next_tag();
        let dst = if k % 2 == 0 {
            rx0.mac
        } else {
            MacAddr::BROADCAST
        };
        let f = frame::tagged(dst, host(), tag, len);
        rig.m.send_frame(n, &f).unwrap();
        sent.push((tag, f));
        std::thread::sleep(PACE);
    }
    for (tag, f) in &sent {
        let got = rig.take_tag(out, *tag, FRAME_WAIT);
        assert_eq!(
            got.as_ref(),
            Some(f),
            "frame {tag} ({} bytes) into NIC {n} ({:?}) did not come out of NIC {out} as sent",
            f.len(),
            rig.kinds[n]
        );
    }
    let bytes: u64 = sent.iter().map(|(_, f)| f.len() as u64).sum();
    let frames = sent.len() as u64;
    let (rx1, tx1) = (rig.status(n), rig.status(out));
    let (h_in1, h_out1) = (rig.m.nic_counters(n), rig.m.nic_counters(out));
    let what = format!(
        "NIC {n} ({:?}) -> NIC {out} ({:?})",
        rig.kinds[n], rig.kinds[out]
    );
    assert_eq!(h_in1.tx_frames - h_in0.tx_frames, frames, "{what}");
    assert_eq!(h_out1.rx_frames - h_out0.rx_frames, frames, "{what}");
    assert_eq!(h_out1.rx_bytes - h_out0.rx_bytes, bytes, "{what}");
    assert_eq!(rx1.rx_frames - rx0.rx_frames, frames, "{what}: rx {rx1:?}");
    assert_eq!(rx1.rx_bytes - rx0.rx_bytes, bytes, "{what}: rx {rx1:?}");
    assert_eq!(rx1.rx_drops, rx0.rx_drops, "{what}: rx {rx1:?}");
    assert_eq!(tx1.tx_frames - tx0.tx_frames, frames, "{what}: tx {tx1:?}");
    assert_eq!(tx1.tx_bytes - tx0.tx_bytes, bytes, "{what}: tx {tx1:?}");
    assert_eq!(tx1.tx_drops, tx0.tx_drops, "{what}: tx {tx1:?}");
}

#[test]
fn frames_from_the_wire_are_delivered_and_counted_exactly_on_every_nic() {
    let mut rig = Rig::boot(&MIX_A);
    for n in rig.spares() {
        check_counted_delivery(&mut rig, n, RING_LAPS_FRAMES);
    }

    // The uplink: the datapath polls it, so its receive counters move too.
    let sizes = [60usize, 64, 65, 128, 511, 1000, 1514, 1518];
    let before = rig.status(0);
    let mut bytes = 0;
    for len in sizes {
        let f = frame::tagged(factory(0), host(), next_tag(), len);
        bytes += f.len() as u64;
        rig.m.send_frame(0, &f).unwrap();
        std::thread::sleep(PACE);
    }
    let frames = sizes.len() as u64;
    let deadline = Instant::now() + FRAME_WAIT;
    let mut now = rig.status(0);
    while now.rx_frames - before.rx_frames < frames && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = rig.status(0);
    }
    assert_eq!(now.rx_frames - before.rx_frames, frames, "uplink: {now:?}");
    assert_eq!(now.rx_bytes - before.rx_bytes, bytes, "uplink: {now:?}");
    rig.assert_healthy();
}

#[test]
fn frames_a_nic_sends_reach_the_wire_byte_for_byte_and_are_counted() {
    let mut rig = Rig::boot(&MIX_B);
    for n in 0..rig.kinds.len() {
        for (len, count) in [
            (14usize, 2u32),
            (59, 1),
            (60, 5),
            (61, 3),
            (1000, 3),
            (1518, 4),
            // More than a ring holds: the console flushes when full.
            (64, 300),
        ] {
            let before = rig.status(n);
            let h0 = rig.m.nic_counters(n);
            rig.expect(
                &format!("nic {n} send {} {len} {count}", host()),
                &format!("nic {n} sent {count} frames"),
            );
            let mut wire_bytes = 0;
            for seq in 0..count {
                let want = console_frame(host(), before.mac, len, seq);
                let got = rig.m.recv_where(FRAME_WAIT, |r| {
                    r.nic == n
                        && r.data.get(12..14) == Some(&[0x88, 0xb5][..])
                        && r.data.get(6..12) == Some(&before.mac.0[..])
                });
                let got = got.map(|r| r.data).unwrap_or_else(|| {
                    panic!(
                        "NIC {n} ({:?}) frame {seq} of {count}, {len} bytes, never came",
                        rig.kinds[n]
                    )
                });
                // A short frame may leave padded with zeros to the Ethernet
                // minimum of 60 bytes (a real e1000 pads, TCTL.PSP; QEMU's
                // models send it as it is); nothing else may differ.
                let mut padded = want.clone();
                padded.resize(len.max(60), 0);
                assert!(
                    got == want || got == padded,
                    "NIC {n} ({:?}) frame {seq} of {count}, {len} bytes: got {} bytes {got:02x?}",
                    rig.kinds[n],
                    got.len()
                );
                if len < 60 && seq == 0 {
                    println!(
                        "NIC {n} {:?}: a {len}-byte frame left as {} bytes",
                        rig.kinds[n],
                        got.len()
                    );
                }
                wire_bytes += got.len() as u64;
            }
            let after = rig.status(n);
            let h1 = rig.m.nic_counters(n);
            let what = format!("NIC {n} ({:?}) sending {count} x {len}", rig.kinds[n]);
            assert_eq!(
                after.tx_frames - before.tx_frames,
                u64::from(count),
                "{what}: {after:?}"
            );
            assert_eq!(
                after.tx_bytes - before.tx_bytes,
                u64::from(count) * len as u64,
                "{what}: {after:?}"
            );
            if n != 0 {
                // A spare NIC sends nothing else; the uplink might.
                assert_eq!(h1.rx_frames - h0.rx_frames, u64::from(count), "{what}");
                assert_eq!(h1.rx_bytes - h0.rx_bytes, wire_bytes, "{what}");
            }
        }
    }
    // A length outside 14..=1518 is refused before anything is sent.
    for bad in ["13", "1519"] {
        let reply = rig
            .m
            .command(&format!("nic 1 send {} {bad}", host()))
            .unwrap();
        assert!(reply.starts_with("error: "), "{reply}");
    }
    rig.assert_healthy();
}

#[test]
fn after_a_mac_register_write_the_new_mac_is_received_and_the_old_one_is_not() {
    let mut rig = Rig::boot(&MIX_B);
    for n in rig.spares() {
        let old = factory(n);
        let new = stranger(n, 0x77);
        rig.assert_filter(n, &[old], &[new], "at boot");
        let before = rig.status(n);
        assert_eq!((before.mac, before.factory), (old, old));
        rig.expect(&format!("nic {n} mac {new}"), &format!("nic {n} mac {new}"));
        let after = rig.status(n);
        assert_eq!(after.mac, new, "{after:?}");
        assert_eq!(after.factory, old, "{after:?}");
        assert!(!after.promiscuous, "{after:?}");
        assert_eq!(after.mac_writes - before.mac_writes, 1, "{after:?}");
        rig.assert_filter(n, &[new], &[old], &format!("after `nic {n} mac {new}`"));
        // Frames the NIC sends carry whatever MAC it now has.
        rig.expect(
            &format!("nic {n} send {} 60", host()),
            &format!("nic {n} sent 1 frames"),
        );
        let got = rig.m.recv_where(FRAME_WAIT, |r| {
            r.nic == n && r.data.get(12..14) == Some(&[0x88, 0xb5][..])
        });
        assert_eq!(got.map(|r| r.data), Some(console_frame(host(), new, 60, 0)));
        // And back.
        rig.expect(&format!("nic {n} mac {old}"), &format!("nic {n} mac {old}"));
        rig.assert_filter(n, &[old], &[new], "after the MAC was written back");
    }
    // Not a unicast MAC: refused, nothing written.
    let before = rig.status(1);
    let reply = rig.m.command("nic 1 mac 01:00:5e:00:00:01").unwrap();
    assert!(reply.starts_with("error: "), "{reply}");
    assert_eq!(rig.status(1).mac_writes, before.mac_writes);
    rig.assert_healthy();
}

#[test]
fn several_filter_macs_are_received_at_once_and_others_are_not() {
    let mut rig = Rig::boot(&MIX_A);
    for n in rig.spares() {
        // 13 entries: as many as fit the console's 256-character line.
        let entries: Vec<MacAddr> = (0..13).map(|k| stranger(n, 0x10 + k)).collect();
        let outsider = stranger(n, 0x40);
        let multicast = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x42]);
        rig.assert_filter(n, &[factory(n)], &[entries[0], outsider], "at boot");
        let list: Vec<String> = entries.iter().map(|m| m.to_string()).collect();
        rig.expect(
            &format!("nic {n} filter {}", list.join(",")),
            &format!("nic {n} filter {} entries", entries.len()),
        );
        let s = rig.status(n);
        assert_eq!(s.filter, entries, "{s:?}");
        assert!(s.filter_slots >= entries.len(), "{s:?}");
        assert!(!s.promiscuous, "{s:?}");
        let mut yes = entries.clone();
        yes.push(factory(n));
        rig.assert_filter(n, &yes, &[outsider, multicast], "with 13 filter entries");

        // A smaller table replaces the whole of the old one.
        rig.expect(
            &format!("nic {n} filter {},{}", entries[6], outsider),
            &format!("nic {n} filter 2 entries"),
        );
        rig.assert_filter(
            n,
            &[entries[6], outsider, factory(n)],
            &[entries[0], entries[12]],
            "after replacing the table",
        );
        rig.expect(
            &format!("nic {n} filter none"),
            &format!("nic {n} filter cleared"),
        );
        assert!(rig.status(n).filter.is_empty());
        rig.assert_filter(
            n,
            &[factory(n)],
            &[entries[6], outsider],
            "after `filter none`",
        );
    }
    rig.assert_healthy();
}

#[test]
fn promiscuous_on_accepts_anything_and_off_refuses_again() {
    let mut rig = Rig::boot(&MIX_B);
    for n in rig.spares() {
        let others = [
            stranger(n, 0x50),
            stranger(n, 0x51),
            MacAddr([0x01, 0x00, 0x5e, 0x7f, 0x00, 0x01]),
        ];
        rig.assert_filter(n, &[factory(n)], &others, "before promiscuous on");
        rig.expect(
            &format!("nic {n} promisc on"),
            &format!("nic {n} promiscuous on"),
        );
        assert!(rig.status(n).promiscuous);
        rig.assert_filter(n, &others, &[], "with promiscuous on");
        rig.expect(
            &format!("nic {n} promisc off"),
            &format!("nic {n} promiscuous off"),
        );
        assert!(!rig.status(n).promiscuous);
        rig.assert_filter(n, &[factory(n)], &others, "after promiscuous off");
    }
    rig.assert_healthy();
}

/// Polls `nic <n>` until its link reads `up`; returns how long that took
/// from `since`, and how many polls.
fn wait_link(rig: &mut Rig, n: usize, up: bool, since: Instant) -> Option<(Duration, u32)> {
    let mut polls = 0;
    while since.elapsed() < LINK_WAIT {
        polls += 1;
        if rig.status(n).link_up == up {
            return Some((since.elapsed(), polls));
        }
    }
    None
}

#[test]
fn link_down_and_up_through_qmp_are_seen_by_the_driver() {
    let mut rig = Rig::boot(&[E1000, Virtio, Modern, E1000]);
    let mut seen = Vec::new();
    for n in 0..rig.kinds.len() {
        let before = rig.status(n);
        assert!(before.link_up, "{before:?}");
        for up in [false, true] {
            let t = Instant::now();
            rig.m.set_link(n, up).unwrap();
            let qmp = t.elapsed();
            let got = wait_link(&mut rig, n, up, t);
            let Some((latency, polls)) = got else {
                panic!(
                    "NIC {n} ({:?}): link {} never seen within {LINK_WAIT:?}",
                    rig.kinds[n],
                    if up { "up" } else { "down" }
                );
            };
            seen.push(format!(
                "NIC {n} {:?} link {}: QMP set_link returned after {:.1} ms, `nic {n}` showed it after {:.1} ms ({polls} polls)",
                rig.kinds[n],
                if up { "up" } else { "down" },
                qmp.as_secs_f64() * 1e3,
                latency.as_secs_f64() * 1e3
            ));
            if !up {
                let table = rig.m.command("nics").unwrap();
                let row = table
                    .lines()
                    .find(|l| l.split_whitespace().next() == Some(&n.to_string()))
                    .unwrap_or_default();
                assert_eq!(row.split_whitespace().nth(5), Some("down"), "{table}");
            }
        }
        let after = rig.status(n);
        assert_eq!(after.link_changes - before.link_changes, 2, "{after:?}");
        if n != 0 {
            // Reception works again once the link is back.
            rig.marker(n);
        }
    }
    // Measured, never asserted: the issue's goal is 100 ms.
    for line in seen {
        println!("link latency: {line}");
    }
    rig.assert_healthy();
}

#[test]
fn runt_and_oversized_frames_are_counted_and_dropped() {
    let mut rig = Rig::boot(&MIX_A);
    for n in rig.spares() {
        let out = rig.out(n);
        let before = rig.status(n);
        let good = frame::tagged(factory(n), host(), next_tag(), 200);
        // Runts: prefixes of a frame to this NIC (0 bytes is not sent:
        // QEMU's dgram netdev takes an empty datagram for end of stream).
        let runts: Vec<Vec<u8>> = (1..14).map(|len| good[..len].to_vec()).collect();
        let oversized: Vec<Vec<u8>> = [1519usize, 1522, 1523, 1530, 2000, 2036, 2037, 4000, 9000]
            .iter()
            .map(|&len| frame::tagged(factory(n), host(), next_tag(), len))
            .collect();
        for f in runts.iter().chain(&oversized) {
            rig.m.send_frame(n, f).unwrap();
            std::thread::sleep(PACE);
        }
        rig.marker(n);
        // Nothing outside 14..=1518 came through.
        let through = rig.m.drain(out);
        for f in &through {
            assert!(
                (14..=1518).contains(&f.len()),
                "NIC {n} ({:?}) passed a {}-byte frame",
                rig.kinds[n],
                f.len()
            );
        }
        // The NIC still works.
        rig.m.send_frame(n, &good).unwrap();
        let tag = frame::tag_of(&good).unwrap();
        assert_eq!(rig.take_tag(out, tag, FRAME_WAIT).as_ref(), Some(&good));
        let after = rig.status(n);
        let drops = after.rx_drops - before.rx_drops;
        let errors = after.rx_errors - before.rx_errors;
        println!(
            "NIC {n} {:?}: 13 runts and {} oversized sent; driver rx_drops +{drops}, rx_errors +{errors}, {} frames passed",
            rig.kinds[n],
            oversized.len(),
            through.len()
        );
        match rig.kinds[n] {
            // QEMU's e1000 pads runts to 60 bytes before its filter (so
            // the 8 that still start with the NIC's MAC reach the driver as
            // 60-byte frames, and pass) and drops frames over 1522 bytes
            // itself, counting them in ROC (rx_errors); 1519..=1522 reach
            // the driver, which drops them.
            E1000 => {
                assert_eq!(drops, 2, "{after:?}");
                assert_eq!(errors, 7, "{after:?}");
                let lens: Vec<usize> = through.iter().map(Vec::len).collect();
                assert_eq!(lens, [60; 8], "padded runts");
            }
            // QEMU's virtio-net filters first: the 5 runts shorter than a
            // MAC do not match it. The 8 runts of 6..=13 bytes and
            // everything that fits the 2048-byte buffer after the 12-byte
            // header (1519..=2036) reach the driver, which drops them;
            // QEMU drops the longer ones.
            Virtio | Modern => {
                assert_eq!(drops, 8 + 6, "{after:?}");
                assert!(through.is_empty(), "{through:?}");
            }
        }
    }
    rig.assert_healthy();
}

#[test]
fn a_nic_that_cannot_start_is_left_out_and_the_others_keep_working() {
    // Extra NICs after the harness's (slots 3-5), without a backend:
    // - 00:0a.0 a legacy-only virtio-net (no VERSION_1, so no modern
    //   transport): the driver cannot use it;
    // - 00:0b.0 a virtio-net without a control queue: usable, but stuck in
    //   promiscuous mode with a fixed MAC;
    // - 00:0c.0 an e1000 and 00:0d.0 a virtio-net whose factory MAC is
    //   multicast (QEMU takes any `mac=`): no usable identity.
    let mut builder = Machine::builder();
    for device in [
        "virtio-net-pci,disable-modern=on,addr=0x0a,mac=52:54:00:d4:00:0a",
        "virtio-net-pci,ctrl_vq=off,addr=0x0b,mac=52:54:00:d4:00:0b",
        "e1000,addr=0x0c,mac=03:00:00:d4:00:0c",
        "virtio-net-pci,addr=0x0d,mac=03:00:00:d4:00:0d",
    ] {
        builder = builder.arg("-device").arg(device);
    }
    let mut rig = Rig::boot_with(builder, &[Virtio, E1000, Modern]);
    let t = rig.m.transcript();
    for (at, id, kind) in [
        ("0a", "1af4:1000", "virtio-net"),
        ("0c", "8086:100e", "e1000"),
        ("0d", "1af4:1000", "virtio-net"),
    ] {
        let left_out = Pattern::regex(&format!(r"(?m)^pci 00:{at}\.0 {id} {kind} left out: \S.*$"));
        assert!(
            left_out.find(&t).is_some(),
            "no left-out line for 00:{at}.0 in:\n{t}"
        );
    }
    let ready = Pattern::regex(r"(?m)^aggdom ready: 4 NICs");
    assert!(ready.find(&t).is_some(), "not 4 usable NICs in:\n{t}");
    let table = rig.m.command("nics").unwrap();
    for at in ["00:0a.0", "00:0c.0", "00:0d.0"] {
        assert!(!table.contains(at), "{at} listed:\n{table}");
    }
    assert!(table.contains("00:0b.0"), "{table}");

    // The one without a control queue: listed, promiscuous, no filter slots;
    // MAC and filter changes are refused with an error, not a hang.
    let s = rig.status(3);
    assert_eq!(
        (s.mac, s.filter_slots),
        (MacAddr([0x52, 0x54, 0, 0xd4, 0, 0x0b]), 0),
        "{s:?}"
    );
    assert!(s.promiscuous, "{s:?}");
    for cmd in [
        "nic 3 mac 02:d4:00:00:00:01",
        "nic 3 promisc off",
        "nic 3 filter 02:d4:00:00:00:02",
    ] {
        let reply = rig.m.command(cmd).unwrap();
        assert!(reply.starts_with("error: "), "{cmd}: {reply}");
    }

    // The others work as ever.
    for n in rig.spares() {
        rig.assert_filter(n, &[factory(n)], &[stranger(n, 1)], "beside a failed NIC");
    }
    rig.assert_healthy();
}

#[test]
fn reset_restores_the_factory_state_and_reception() {
    let mut rig = Rig::boot(&MIX_B);
    for n in rig.spares() {
        let new = stranger(n, 0x60);
        let entry = stranger(n, 0x61);
        rig.expect(&format!("nic {n} mac {new}"), &format!("nic {n} mac {new}"));
        rig.expect(
            &format!("nic {n} filter {entry}"),
            &format!("nic {n} filter 1 entries"),
        );
        rig.expect(
            &format!("nic {n} promisc on"),
            &format!("nic {n} promiscuous on"),
        );
        let before = rig.status(n);
        rig.expect(&format!("nic {n} reset"), &format!("nic {n} reset"));
        let s = rig.status(n);
        assert_eq!(s.mac, factory(n), "{s:?}");
        assert!(s.filter.is_empty() && !s.promiscuous && s.link_up, "{s:?}");
        // Counters survive a reset (the boot markers went through every
        // spare both ways, so a reset that zeroed them would show).
        assert!(before.rx_frames > 0 && before.tx_frames > 0, "{before:?}");
        assert!(
            s.rx_frames >= before.rx_frames && s.tx_frames >= before.tx_frames,
            "counters went back: {before:?} -> {s:?}"
        );
        rig.assert_filter(n, &[factory(n)], &[new, entry], "after reset");
    }
    rig.assert_healthy();
}

#[test]
fn two_nics_of_different_kinds_without_a_datapath_work_both_ways() {
    // The smallest mix: one e1000 and one modern virtio-net, both spare
    // (the configuration is rejected, so the datapath takes no NIC),
    // forwarding to each other.
    let mut rig = Rig::boot_all_spare(&[E1000, Modern]);
    let t = rig.m.transcript();
    assert!(t.contains("datapath not started"), "{t}");
    for n in rig.spares() {
        assert_eq!(rig.status(n).role, "spare");
        check_counted_delivery(&mut rig, n, 40);
        let new = stranger(n, 0x70);
        rig.expect(&format!("nic {n} mac {new}"), &format!("nic {n} mac {new}"));
        rig.assert_filter(n, &[new], &[factory(n)], "after a MAC write");
        check_counted_delivery(&mut rig, n, 20);
    }
    rig.assert_healthy();
}

/// Checks one TCP segment off the wire on its own terms (the harness's
/// RFC 1071 code, not aggdom's): IPv4 header checksum, total length or
/// IPv6 payload length, and the TCP checksum with its pseudo-header.
/// Returns the IP header length's end (the TCP header's start).
fn check_tcp_segment(f: &[u8], ipv6: bool, what: &str) -> usize {
    use aggdom_harness::frame::checksum;
    let l4 = if ipv6 { 54 } else { 34 };
    assert!(f.len() >= l4 + 20, "{what}: {} bytes", f.len());
    let tcp = &f[l4..];
    let mut pseudo = Vec::new();
    if ipv6 {
        assert_eq!(&f[12..14], &[0x86, 0xdd], "{what}: ethertype");
        let plen = u16::from_be_bytes([f[18], f[19]]);
        assert_eq!(usize::from(plen), tcp.len(), "{what}: IPv6 payload length");
        pseudo.extend_from_slice(&f[22..54]);
        pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
    } else {
        assert_eq!(&f[12..14], &[0x08, 0x00], "{what}: ethertype");
        assert_eq!(checksum(&f[14..34]), 0, "{what}: IPv4 header checksum");
        let total = u16::from_be_bytes([f[16], f[17]]);
        assert_eq!(
            usize::from(total),
            f.len() - 14,
            "{what}: IPv4 total length"
        );
        pseudo.extend_from_slice(&f[26..34]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    }
    pseudo.extend_from_slice(tcp);
    assert_eq!(checksum(&pseudo), 0, "{what}: TCP checksum");
    l4
}

#[test]
fn a_tso_frame_leaves_every_nic_kind_as_mss_sized_segments_with_valid_checksums() {
    // Every NIC spare: nothing but the console sends on them.
    let mut rig = Rig::boot_all_spare(&[E1000, Virtio, Modern]);
    for n in 0..rig.kinds.len() {
        let kind = rig.kinds[n];
        for (ipv6, len, mss) in [(false, 20_000usize, 1460usize), (true, 9_000, 1440)] {
            let hdr = if ipv6 { 74 } else { 54 };
            let count = (len - hdr).div_ceil(mss);
            let before = rig.status(n);
            let v6 = if ipv6 { " v6" } else { "" };
            let reply = rig
                .m
                .command(&format!("nic {n} tso {} {len} {mss}{v6}", host()))
                .unwrap();
            let want = format!("nic {n} sent {len} bytes as {count} segments, segmented by the ");
            assert!(reply.starts_with(&want), "NIC {n} ({kind:?}): {reply}");
            println!("NIC {n} {kind:?} ipv6 {ipv6}: {reply}");
            let mut payload = Vec::new();
            for k in 0..count {
                let what = format!("NIC {n} ({kind:?}) ipv6 {ipv6} segment {k} of {count}");
                let got = rig.m.recv_where(FRAME_WAIT, |r| {
                    r.nic == n
                        && r.data.get(6..12) == Some(&before.mac.0[..])
                        && r.data.get(12..14) != Some(&[0x88, 0xb5][..])
                });
                let f = got
                    .map(|r| r.data)
                    .unwrap_or_else(|| panic!("{what} never came\n{}", rig.m.diagnostics()));
                assert_eq!(&f[..6], &host().0, "{what}: destination");
                let l4 = check_tcp_segment(&f, ipv6, &what);
                let last = k + 1 == count;
                let seg_payload = f.len() - l4 - 20;
                let want_len = if last { len - hdr - k * mss } else { mss };
                assert_eq!(seg_payload, want_len, "{what}: payload bytes");
                let seq = u32::from_be_bytes(f[l4 + 4..l4 + 8].try_into().unwrap());
                assert_eq!(seq, 1000 + (k * mss) as u32, "{what}: sequence number");
                assert_eq!(f[l4 + 13] & 0x08 != 0, last, "{what}: PSH on the last only");
                if !ipv6 {
                    let id = u16::from_be_bytes([f[18], f[19]]);
                    assert_eq!(id, 0x1234u16.wrapping_add(k as u16), "{what}: IPv4 ID");
                }
                payload.extend_from_slice(&f[l4 + 20..]);
            }
            let want: Vec<u8> = (0..len - hdr).map(|p| p as u8).collect();
            assert!(
                payload == want,
                "NIC {n} ({kind:?}) ipv6 {ipv6}: payload differs"
            );
            let after = rig.status(n);
            assert_eq!(
                after.tx_frames - before.tx_frames,
                count as u64,
                "NIC {n} ({kind:?}): {after:?}"
            );
        }
    }
    rig.assert_healthy();
}
