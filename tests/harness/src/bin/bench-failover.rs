//! `bench-failover`: how long a link failure interrupts a guest (issue 12,
//! item 4), under QEMU (TCG), per NIC kind.
//!
//! Two uplinks and one guest bound to both identities
//! (`bind=10.0.0.11:0+1`); a learning switch (the harness's
//! [`LearningSwitch`]) joins the uplinks to a remote host. Two continuous
//! streams of tagged UDP frames run, one each way, [`RATE`] frames/s each:
//! guest → remote (spread over both identities by load, frame by frame) and
//! remote → guest, addressed to identity 0 (where the guest's peer would
//! send after learning identity 0 from it). Then QMP `set_link n0 off`
//! takes down uplink 0, which holds identity 0, and the bench notes, from
//! the moment it asked QEMU:
//!
//! - **out**: the first frame of the guest's stream leaving another uplink
//!   under identity 0, i.e. identity 0 failed over and the share of the
//!   stream it carried flows again (frames under identity 1 never stopped);
//! - **learning**: aggdom's learning frame for identity 0 on uplink 1;
//! - **back**: the remote host's first frame delivered to the guest through
//!   uplink 1, once the switch relearnt identity 0 there (from the learning
//!   frame, which leaves before any guest frame does), and that time minus
//!   the learning frame's;
//! - the frames lost each way, against the frames "in flight": out, those
//!   the guest offered from the link going down until the first frame
//!   under identity 0 on uplink 1 (aggdom may have put them on uplink 0
//!   before it noticed); back, those the switch sent to uplink 0 from the
//!   link going down until it relearnt identity 0. Loss within those counts
//!   is loss bounded to what was on its way when the link failed; a frame
//!   the switch sent to uplink 1 and the guest never got is loss beyond it.
//!
//! Then the link comes back, identity 0 returns to uplink 0, and the next
//! repetition starts. Min / median / max over the repetitions. Arrival
//! times are taken by the harness's receive threads as frames come out of
//! QEMU. It measures and prints; it does not fail on a number.
//!
//! Usage: `bench-failover [-n REPS] [--elf PATH]` (default 7 repetitions
//! per NIC kind, the ELF from `$AGGDOM_ELF` or the workspace's release
//! build); about a minute per NIC kind.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use aggdom_harness::frame::{self, Ipv4Ends};
use aggdom_harness::rig::{
    guest_ip, guest_udp, is_learning_frame, macs, remote, udp_frame, udp_tag, uplink_mac, Layout,
    Stats,
};
use aggdom_harness::switch::LearningSwitch;
use aggdom_harness::{default_elf, Machine, NicKind};

/// Frames per second in each direction.
const RATE: u64 = 1000;
/// Bytes per frame.
const LEN: usize = 128;
/// Link down → the guest's first frame on the other uplink (issue 12).
const GOAL_OUT: Duration = Duration::from_millis(100);
/// Streams run this long before the link goes down.
const WARM_UP: Duration = Duration::from_millis(400);
/// How long a repetition waits for both paths to come back.
const GIVE_UP: Duration = Duration::from_secs(5);
/// Streams keep running this long after both paths are back, so frames
/// sent late are not taken for lost.
const AFTER: Duration = Duration::from_millis(200);
/// After the streams stop, stragglers may take this long to come out.
const SETTLE: Duration = Duration::from_millis(300);
/// After identity 0 came home (the next repetition starts with a fresh
/// switch): QEMU's e1000 holds reception back for a second after each
/// receive-control write, and uplink 0 takes multicast again.
const REST: Duration = Duration::from_millis(1500);

/// The switch port of the remote host (ports 0 and 1 are the uplinks).
const REMOTE_PORT: usize = 2;
/// Tag prefixes of the two streams (`udp_tag`): kind, repetition, sequence.
const OUT_TAG: u64 = 0xa1 << 56;
const IN_TAG: u64 = 0xb2 << 56;
const SEQ_MASK: u64 = 0xffff_ffff;

struct Opts {
    reps: usize,
    elf: PathBuf,
}

fn parse_args() -> Option<Opts> {
    let mut o = Opts {
        reps: 7,
        elf: default_elf(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => o.reps = args.next()?.parse().ok().filter(|&n| n > 0)?,
            "--elf" => o.elf = args.next()?.into(),
            _ => return None,
        }
    }
    Some(o)
}

/// One direction's stream: when each frame was offered.
struct Stream {
    tag: u64,
    start: Instant,
    sent: Vec<Instant>,
}

impl Stream {
    fn new(tag: u64, start: Instant) -> Stream {
        Stream {
            tag,
            start,
            sent: Vec::new(),
        }
    }

    /// Sequence numbers due by `now` and not yet sent.
    fn due(&self, now: Instant) -> std::ops::Range<u64> {
        let due = (now.duration_since(self.start).as_secs_f64() * RATE as f64) as u64 + 1;
        self.sent.len() as u64..due.max(self.sent.len() as u64)
    }

    /// Frames offered from `from` up to and including `to`.
    fn offered_between(&self, from: Instant, to: Instant) -> u64 {
        self.sent.iter().filter(|&&t| t >= from && t <= to).count() as u64
    }
}

/// One repetition: both streams, the switch, and what came out where.
struct Rep {
    out: Stream,
    inn: Stream,
    switch: LearningSwitch,
    /// Guest stream: sequence → (uplink, arrival, left under identity 0).
    out_seen: HashMap<u64, (usize, Instant, bool)>,
    /// Remote stream: sequence → the uplink the switch sent it to.
    in_port: HashMap<u64, usize>,
    /// Remote stream: sequence → arrival at the guest.
    in_seen: HashMap<u64, Instant>,
    /// Learning frames for identity 0: (uplink, arrival).
    learning: Vec<(usize, Instant)>,
    guest_port: usize,
}

impl Rep {
    fn new(rep: u64, guest_port: usize) -> Rep {
        let now = Instant::now();
        Rep {
            out: Stream::new(OUT_TAG | rep << 32, now),
            inn: Stream::new(IN_TAG | rep << 32, now),
            switch: LearningSwitch::new(3),
            out_seen: HashMap::new(),
            in_port: HashMap::new(),
            in_seen: HashMap::new(),
            learning: Vec::new(),
            guest_port,
        }
    }

    /// Offers what is due, moves what came out; `streams` false only
    /// collects.
    fn step(&mut self, m: &Machine, streams: bool) {
        if streams {
            let now = Instant::now();
            for seq in self.out.due(now) {
                let f = guest_udp(0, remote(0), self.out.tag | seq, LEN);
                let _ = m.send_frame(self.guest_port, &f);
                self.out.sent.push(Instant::now());
            }
            for seq in self.inn.due(now) {
                let r = remote(0);
                let f = udp_frame(
                    Ipv4Ends {
                        src_mac: r.mac,
                        dst_mac: uplink_mac(0),
                        src_ip: r.ip,
                        dst_ip: guest_ip(0),
                    },
                    self.inn.tag | seq,
                    LEN,
                );
                self.inn.sent.push(Instant::now());
                for p in self.switch.handle(REMOTE_PORT, &f).ports() {
                    if p < REMOTE_PORT {
                        self.in_port.insert(seq, p);
                        let _ = m.send_frame(p, &f);
                    }
                }
            }
        }
        for r in m.drain_all() {
            if r.nic == self.guest_port {
                if let Some(t) = udp_tag(&r.data).filter(|t| t & !SEQ_MASK == self.inn.tag) {
                    self.in_seen.entry(t & SEQ_MASK).or_insert(r.at);
                }
                continue;
            }
            if r.nic >= REMOTE_PORT {
                continue;
            }
            // An uplink's frame passes the switch: it learns from it, and
            // what it floods to the other uplink goes there (as a learning
            // frame does).
            if is_learning_frame(&r.data, uplink_mac(0)) {
                self.learning.push((r.nic, r.at));
            }
            if let Some(t) = udp_tag(&r.data).filter(|t| t & !SEQ_MASK == self.out.tag) {
                let id0 = macs(&r.data).0 == uplink_mac(0);
                self.out_seen
                    .entry(t & SEQ_MASK)
                    .or_insert((r.nic, r.at, id0));
            }
            for p in self.switch.handle(r.nic, &r.data).ports() {
                if p < REMOTE_PORT {
                    let _ = m.send_frame(p, &r.data);
                }
            }
        }
    }

    /// Runs for `d`, or until `done` holds.
    fn run(&mut self, m: &Machine, d: Duration, streams: bool, done: impl Fn(&Rep) -> bool) {
        let end = Instant::now() + d;
        while Instant::now() < end && !done(self) {
            self.step(m, streams);
            sleep(Duration::from_micros(200));
        }
    }

    /// The first frame under identity 0 out of uplink 1 after `t0`.
    fn out_back(&self, t0: Instant) -> Option<Instant> {
        self.out_seen
            .values()
            .filter(|&&(nic, at, id0)| nic != 0 && id0 && at > t0)
            .map(|&(_, at, _)| at)
            .min()
    }

    /// The learning frame for identity 0 from uplink 1 after `t0`.
    fn learnt(&self, t0: Instant) -> Option<Instant> {
        self.learning
            .iter()
            .filter(|&&(nic, at)| nic != 0 && at > t0)
            .map(|&(_, at)| at)
            .min()
    }

    /// The first remote frame delivered to the guest through uplink 1.
    fn in_back(&self, t0: Instant) -> Option<Instant> {
        self.in_seen
            .iter()
            .filter(|&(seq, &at)| at > t0 && self.in_port.get(seq) == Some(&1))
            .map(|(_, &at)| at)
            .min()
    }

    fn out_lost(&self) -> u64 {
        (0..self.out.sent.len() as u64)
            .filter(|s| !self.out_seen.contains_key(s))
            .count() as u64
    }

    /// Remote frames lost: (sent to uplink 0, sent to uplink 1).
    fn in_lost(&self) -> (u64, u64) {
        let mut lost = (0, 0);
        for seq in (0..self.inn.sent.len() as u64).filter(|s| !self.in_seen.contains_key(s)) {
            match self.in_port.get(&seq) {
                Some(0) => lost.0 += 1,
                _ => lost.1 += 1,
            }
        }
        lost
    }

    /// Remote frames the switch sent to uplink 0 from `t0` on.
    fn in_flight(&self, t0: Instant) -> u64 {
        self.in_port
            .iter()
            .filter(|&(&seq, &p)| p == 0 && self.inn.sent[seq as usize] >= t0)
            .count() as u64
    }
}

/// One repetition's numbers.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    /// How long QMP `set_link` took to answer.
    qmp: Duration,
    out: Option<Duration>,
    learning: Option<Duration>,
    back: Option<Duration>,
    back_after_learning: Option<Duration>,
    out_lost: u64,
    out_in_flight: u64,
    /// Remote frames lost that the switch sent to uplink 0.
    in_lost: u64,
    in_in_flight: u64,
    /// Remote frames lost that the switch sent to uplink 1: beyond in flight.
    in_lost_live: u64,
}

fn holder0(m: &mut Machine) -> Option<usize> {
    Stats::parse(&m.command("stats").ok()?).holder(0)
}

/// Waits until identity 0 is on `uplink`.
fn wait_holder(m: &mut Machine, uplink: usize, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if holder0(m) == Some(uplink) {
            return true;
        }
        sleep(Duration::from_millis(100));
    }
    false
}

fn one_rep(m: &mut Machine, layout: &Layout, rep: u64) -> Result<Sample, String> {
    let mut r = Rep::new(rep, layout.port(0));
    // The remote host announces itself, so the guest's frames go to its
    // port alone.
    let r0 = remote(0);
    let hello = frame::arp_request(r0.mac, r0.ip, r0.ip);
    for p in r.switch.handle(REMOTE_PORT, &hello).ports() {
        if p < REMOTE_PORT {
            let _ = m.send_frame(p, &hello);
        }
    }
    r.run(m, WARM_UP, true, |_| false);
    if r.in_seen.is_empty() {
        return Err("the remote stream never reached the guest before the link went down".into());
    }
    let t0 = Instant::now();
    m.set_link(0, false).map_err(|e| e.to_string())?;
    let qmp = t0.elapsed();
    r.run(m, GIVE_UP, true, |r| {
        r.out_back(t0).is_some() && r.in_back(t0).is_some()
    });
    r.run(m, AFTER, true, |_| false);
    r.run(m, SETTLE, false, |_| false);
    let out = r.out_back(t0);
    let learnt = r.learnt(t0);
    let back = r.in_back(t0);
    let sample = Sample {
        qmp,
        out: out.map(|t| t - t0),
        learning: learnt.map(|t| t - t0),
        back: back.map(|t| t - t0),
        back_after_learning: back
            .zip(learnt)
            .map(|(b, l)| b.saturating_duration_since(l)),
        out_lost: r.out_lost(),
        out_in_flight: out.map_or(0, |t| r.out.offered_between(t0, t)),
        in_lost: r.in_lost().0,
        in_in_flight: r.in_flight(t0),
        in_lost_live: r.in_lost().1,
    };

    // The link comes back and identity 0 with it; the learning frame from
    // uplink 0 sets the switch right for the next repetition.
    m.set_link(0, true).map_err(|e| e.to_string())?;
    if !wait_holder(m, 0, Duration::from_secs(15)) {
        return Err("identity 0 did not return to uplink 0".into());
    }
    sleep(REST);
    m.drain_all();
    Ok(sample)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "min / median / max" in ms, and how many repetitions had no value.
fn spread(values: impl Iterator<Item = Option<Duration>>) -> (String, Option<f64>) {
    let mut missing = 0;
    let mut v: Vec<f64> = values
        .filter_map(|d| {
            if d.is_none() {
                missing += 1;
            }
            d.map(ms)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return ("none".into(), None);
    }
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let mut s = format!("{:.1} / {:.1} / {:.1} ms", v[0], median, v[n - 1]);
    if missing > 0 {
        s.push_str(&format!(" ({missing} never)"));
    }
    (s, Some(median))
}

fn main() -> ExitCode {
    let Some(opts) = parse_args() else {
        eprintln!("usage: bench-failover [-n REPS] [--elf PATH]");
        return ExitCode::from(2);
    };
    println!(
        "bench-failover: {}; {RATE} frames/s each way, {LEN} bytes, {} repetitions per NIC kind",
        opts.elf.display(),
        opts.reps
    );
    let mut verdicts = Vec::new();
    for kind in [NicKind::VirtioNet, NicKind::E1000] {
        let mut layout = Layout::new(2, 1).with("bind=10.0.0.11:0+1");
        layout.kind = kind;
        let name = kind.console_name();
        let mut m = match layout.builder().elf(&opts.elf).boot() {
            Ok(m) => m,
            Err(e) => {
                println!("{name}: boot failed: {e}");
                continue;
            }
        };
        // QEMU's e1000 holds frames back for about a second after the
        // receive-control writes of bring-up.
        sleep(REST);
        let mut samples = Vec::new();
        for rep in 0..opts.reps as u64 {
            match one_rep(&mut m, &layout, rep) {
                Ok(s) => {
                    println!(
                        "  {name} #{rep}: out {} learning {} back {} (after learning {}); \
                         lost out {}/{} in flight, back {}/{} + {} beyond; set_link {:.1} ms",
                        fmt(s.out),
                        fmt(s.learning),
                        fmt(s.back),
                        fmt(s.back_after_learning),
                        s.out_lost,
                        s.out_in_flight,
                        s.in_lost,
                        s.in_in_flight,
                        s.in_lost_live,
                        ms(s.qmp)
                    );
                    samples.push(s);
                }
                Err(e) => {
                    println!("  {name} #{rep}: {e}");
                    break;
                }
            }
        }
        if samples.is_empty() {
            continue;
        }
        let moves = Stats::parse(&m.command("stats").unwrap_or_default()).total("failover_moves");
        let (out, out_median) = spread(samples.iter().map(|s| s.out));
        let (learning, _) = spread(samples.iter().map(|s| s.learning));
        let (back, _) = spread(samples.iter().map(|s| s.back));
        let (after, _) = spread(samples.iter().map(|s| s.back_after_learning));
        let sum = |f: fn(&Sample) -> u64| samples.iter().map(f).sum::<u64>();
        let bounded = samples.iter().all(|s| {
            s.out_lost <= s.out_in_flight && s.in_lost <= s.in_in_flight && s.in_lost_live == 0
        });
        println!(
            "{name}, {} repetitions (min / median / max), failover moves {moves}:",
            samples.len()
        );
        println!("  link down -> guest's stream out under identity 0 on uplink 1: {out}");
        println!("  link down -> learning frame for identity 0 on uplink 1:      {learning}");
        println!("  link down -> remote's first frame to the guest via uplink 1: {back}");
        println!("  learning frame -> remote's first frame to the guest:         {after}");
        println!(
            "  frames lost (all repetitions): out {} of {} in flight; back {} of {} in flight \
             and {} the switch sent to uplink 1{}",
            sum(|s| s.out_lost),
            sum(|s| s.out_in_flight),
            sum(|s| s.in_lost),
            sum(|s| s.in_in_flight),
            sum(|s| s.in_lost_live),
            if bounded {
                ""
            } else {
                "; MORE than in flight in some repetition"
            }
        );
        verdicts.push((name, out_median, bounded));
    }
    println!();
    println!("goals (issue 12)");
    for (name, median, bounded) in verdicts {
        let met = median.is_some_and(|m| m <= ms(GOAL_OUT));
        println!(
            "  {name}: link down -> stream on the other uplink, median {} (goal <= {} ms): {}; \
             loss bounded to frames in flight: {}",
            median.map_or("none".into(), |m| format!("{m:.1} ms")),
            GOAL_OUT.as_millis(),
            if met { "met" } else { "NOT met" },
            if bounded { "yes" } else { "NO" }
        );
    }
    ExitCode::SUCCESS
}

fn fmt(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| format!("{:.1} ms", ms(d)))
}
