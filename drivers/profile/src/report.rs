//! The `profile` console reply: wall time covered, busy against asleep,
//! each main-loop phase and each hypercall kind. One item a line, always
//! `profile <section> <name>` then `key value` pairs, so a script splits
//! it on blanks (tests/xen/xentest.py's `parse_profile`):
//!
//! ```text
//! profile total wall ms 10000.0 tsc_mhz 2993
//! profile total busy ms 2500.0 share_wall 25.0
//! profile total asleep ms 7500.0 share_wall 75.0
//! profile total hypercalls calls 70000 ms 1300.0 us_per_call 18.57 share_busy 52.0
//! profile total overhead tsc_reads 250000 cycles_per_read 30 ms 2.5 share_busy 0.1
//! profile phase domain calls 50000 ms 2000.0 us_per_call 40.00 share_wall 20.0 share_busy 80.0
//! profile hypercall grant_copy calls 69615 ms 1234.5 us_per_call 17.73 share_busy 49.4
//! profile runstate running ms 2300.0 share_wall 23.0
//! ```
//!
//! Busy time is wall time less the asleep phases (time handed to Xen:
//! waiting for events, yielding). A phase's share is of wall time, and of
//! busy time too if it is work; a hypercall's is of busy time, or of wall
//! time for the kinds that sleep (their time is the asleep phases'). The
//! `total hypercalls` line sums the kinds that do not sleep; `total
//! overhead` is the profile's own cost, its TSC reads (one per phase, two
//! per hypercall) at the cost of one measured at loop start. Under Xen,
//! `runstate` lines give Xen's own account of the same span (running,
//! runnable, blocked, offline; shares of their sum): busy time the TSC saw
//! may have been runnable, another vCPU on our CPU. Numbers are
//! fixed-point, rounded: no floating point in the kernel.
use core::fmt::{self, Display, Formatter};

use crate::Counts;

/// One scope of the report.
pub struct Item<'a> {
    pub name: &'a dyn Display,
    pub counts: Counts,
    /// Time handed to Xen rather than work: an asleep phase is left out of
    /// busy time, an asleep hypercall's share is of wall time.
    pub asleep: bool,
}

/// Everything the reply says; [`Display`] writes it, one line per item,
/// each ending in `\n`.
pub struct Report<'a> {
    /// TSC cycles since the profile started (loop start or `profile reset`).
    pub wall: u64,
    /// The TSC's rate, to turn cycles into time.
    pub tsc_hz: u64,
    /// Cycles one TSC read takes (the profile's own cost per read).
    pub tsc_read: u64,
    /// The main loop's phases, which together make up `wall`. Every one is
    /// printed, run or not.
    pub phases: &'a [Item<'a>],
    /// Hypercall kinds; those never called are left out.
    pub hypercalls: &'a [Item<'a>],
    /// Xen's runstate times over the same span, ns: running, runnable,
    /// blocked, offline (`VCPUOP_get_runstate_info`); `None` off Xen.
    pub runstate: Option<[u64; 4]>,
}

/// Xen's `RUNSTATE_*` names, in `vcpu_runstate_info.time`'s order.
const RUNSTATES: [&str; 4] = ["running", "runnable", "blocked", "offline"];

impl Report<'_> {
    fn asleep(&self) -> u64 {
        self.phases
            .iter()
            .filter(|p| p.asleep)
            .fold(0u64, |sum, p| sum.saturating_add(p.counts.cycles))
    }

    /// Wall time less the asleep phases'.
    pub fn busy(&self) -> u64 {
        self.wall.saturating_sub(self.asleep())
    }

    fn ms(&self, cycles: u64) -> Fixed {
        Fixed::ratio(u128::from(cycles) * 1000, u128::from(self.tsc_hz), 1)
    }

    /// calls, ms, us_per_call.
    fn times(&self, f: &mut Formatter<'_>, c: Counts) -> fmt::Result {
        let per_call = Fixed::ratio(
            u128::from(c.cycles) * 1_000_000,
            u128::from(self.tsc_hz) * u128::from(c.calls),
            2,
        );
        write!(
            f,
            "calls {} ms {} us_per_call {per_call}",
            c.calls,
            self.ms(c.cycles)
        )
    }
}

impl Display for Report<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (wall, asleep, busy) = (self.wall, self.asleep(), self.busy());
        let share =
            |part: u64, whole: u64| Fixed::ratio(u128::from(part) * 100, u128::from(whole), 1);
        writeln!(
            f,
            "profile total wall ms {} tsc_mhz {}",
            self.ms(wall),
            self.tsc_hz / 1_000_000
        )?;
        writeln!(
            f,
            "profile total busy ms {} share_wall {}",
            self.ms(busy),
            share(busy, wall)
        )?;
        writeln!(
            f,
            "profile total asleep ms {} share_wall {}",
            self.ms(asleep),
            share(asleep, wall)
        )?;
        let awake = self
            .hypercalls
            .iter()
            .filter(|h| !h.asleep)
            .fold(Counts::default(), |sum, h| sum.plus(h.counts));
        write!(f, "profile total hypercalls ")?;
        self.times(f, awake)?;
        writeln!(f, " share_busy {}", share(awake.cycles, busy))?;
        // One read per phase run, two per hypercall (hypercall.rs).
        let reads = self
            .phases
            .iter()
            .fold(0u64, |n, p| n.saturating_add(p.counts.calls));
        let reads = self.hypercalls.iter().fold(reads, |n, h| {
            n.saturating_add(h.counts.calls.saturating_mul(2))
        });
        let cost = reads.saturating_mul(self.tsc_read);
        writeln!(
            f,
            "profile total overhead tsc_reads {reads} cycles_per_read {} ms {} share_busy {}",
            self.tsc_read,
            self.ms(cost),
            share(cost, busy)
        )?;
        for p in self.phases {
            write!(f, "profile phase {} ", p.name)?;
            self.times(f, p.counts)?;
            write!(f, " share_wall {}", share(p.counts.cycles, wall))?;
            if !p.asleep {
                write!(f, " share_busy {}", share(p.counts.cycles, busy))?;
            }
            writeln!(f)?;
        }
        for h in self.hypercalls.iter().filter(|h| h.counts.calls > 0) {
            write!(f, "profile hypercall {} ", h.name)?;
            self.times(f, h.counts)?;
            if h.asleep {
                writeln!(f, " share_wall {}", share(h.counts.cycles, wall))?;
            } else {
                writeln!(f, " share_busy {}", share(h.counts.cycles, busy))?;
            }
        }
        if let Some(ns) = self.runstate {
            let sum = ns.iter().fold(0u64, |s, t| s.saturating_add(*t));
            for (name, t) in RUNSTATES.iter().zip(ns) {
                writeln!(
                    f,
                    "profile runstate {name} ms {} share_wall {}",
                    Fixed::ratio(u128::from(t), 1_000_000, 1),
                    share(t, sum)
                )?;
            }
        }
        Ok(())
    }
}

/// A non-negative number with `places` decimals, held as an integer.
struct Fixed {
    scaled: u128,
    places: u32,
}

impl Fixed {
    /// `num / den` rounded to `places` decimals; 0 when `den` is 0 (no
    /// calls, no time covered yet).
    fn ratio(num: u128, den: u128, places: u32) -> Self {
        let scale = 10u128.pow(places);
        let scaled = match den {
            0 => 0,
            _ => num.saturating_mul(scale).saturating_add(den / 2) / den,
        };
        Self { scaled, places }
    }
}

impl Display for Fixed {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let scale = 10u128.pow(self.places);
        write!(
            f,
            "{}.{:0width$}",
            self.scaled / scale,
            self.scaled % scale,
            width = self.places as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &'static str, calls: u64, cycles: u64, asleep: bool) -> Item<'static> {
        Item {
            name: Box::leak(Box::new(name)),
            counts: Counts { calls, cycles },
            asleep,
        }
    }

    /// 1 GHz: a cycle is a nanosecond.
    const HZ: u64 = 1_000_000_000;

    fn text(r: &Report) -> String {
        r.to_string()
    }

    #[test]
    fn the_reply_reads_as_documented() {
        let phases = [
            item("domain", 4, 2_000_000_000, false),
            item("xen_net", 4, 500_000_000, false),
            item("block", 3, 7_500_000_000, true),
        ];
        let hypercalls = [
            item("grant_copy", 100, 1_234_500_000, false),
            item("evtchn_send", 0, 0, false),
            item("sched_poll", 3, 7_400_000_000, true),
            item("op_7", 1, 3_333, false),
        ];
        let r = Report {
            wall: 10_000_000_000,
            tsc_hz: HZ,
            tsc_read: 1_000_000,
            phases: &phases,
            hypercalls: &hypercalls,
            runstate: None,
        };
        assert_eq!(
            text(&r),
            "profile total wall ms 10000.0 tsc_mhz 1000\n\
             profile total busy ms 2500.0 share_wall 25.0\n\
             profile total asleep ms 7500.0 share_wall 75.0\n\
             profile total hypercalls calls 101 ms 1234.5 us_per_call 12222.81 share_busy 49.4\n\
             profile total overhead tsc_reads 219 cycles_per_read 1000000 ms 219.0 share_busy 8.8\n\
             profile phase domain calls 4 ms 2000.0 us_per_call 500000.00 share_wall 20.0 share_busy 80.0\n\
             profile phase xen_net calls 4 ms 500.0 us_per_call 125000.00 share_wall 5.0 share_busy 20.0\n\
             profile phase block calls 3 ms 7500.0 us_per_call 2500000.00 share_wall 75.0\n\
             profile hypercall grant_copy calls 100 ms 1234.5 us_per_call 12345.00 share_busy 49.4\n\
             profile hypercall sched_poll calls 3 ms 7400.0 us_per_call 2466666.67 share_wall 74.0\n\
             profile hypercall op_7 calls 1 ms 0.0 us_per_call 3.33 share_busy 0.0\n"
        );
    }

    #[test]
    fn every_line_is_section_name_then_key_value_pairs() {
        let phases = [item("shell", 1, 5, false), item("block", 1, 5, true)];
        let hypercalls = [item("grant_copy", 7, 70, false)];
        let r = Report {
            wall: 12,
            tsc_hz: 3_000_000,
            tsc_read: 1,
            phases: &phases,
            hypercalls: &hypercalls,
            runstate: Some([1, 2, 3, 4]),
        };
        for line in text(&r).lines() {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words[0], "profile", "{line}");
            assert!(
                ["total", "phase", "hypercall", "runstate"].contains(&words[1]),
                "{line}"
            );
            assert_eq!(words.len() % 2, 1, "{line}");
            for pair in words[3..].chunks(2) {
                assert!(pair[0].chars().all(|c| c.is_ascii_lowercase() || c == '_'));
                assert!(pair[1].parse::<f64>().is_ok(), "{line}");
            }
        }
    }

    #[test]
    fn busy_and_asleep_make_up_the_wall_time() {
        let phases = [item("a", 1, 333, false), item("b", 1, 667, true)];
        let r = Report {
            wall: 1000,
            tsc_hz: HZ,
            tsc_read: 0,
            phases: &phases,
            hypercalls: &[],
            runstate: None,
        };
        assert_eq!(r.busy(), 333);
        let t = text(&r);
        assert!(t.contains("busy ms 0.0 share_wall 33.3\n"), "{t}");
        assert!(t.contains("asleep ms 0.0 share_wall 66.7\n"), "{t}");
    }

    #[test]
    fn nothing_yet_covered_prints_zeros_not_a_panic() {
        let phases = [item("block", 0, 0, true)];
        let hypercalls = [item("grant_copy", 1, 10, false)];
        for hz in [0, HZ] {
            let r = Report {
                wall: 0,
                tsc_hz: hz,
                tsc_read: 0,
                phases: &phases,
                hypercalls: &hypercalls,
                runstate: None,
            };
            let t = text(&r);
            assert!(t.starts_with("profile total wall ms 0.0 "), "{t}");
            assert!(
                t.contains("profile phase block calls 0 ms 0.0 us_per_call 0.00 share_wall 0.0\n")
            );
        }
    }

    #[test]
    fn asleep_phases_longer_than_the_wall_time_leave_busy_at_zero() {
        // The first lap after a reset may carry cycles from before it.
        let phases = [item("block", 1, 2000, true)];
        let r = Report {
            wall: 1000,
            tsc_hz: HZ,
            tsc_read: 0,
            phases: &phases,
            hypercalls: &[],
            runstate: None,
        };
        assert_eq!(r.busy(), 0);
        assert!(text(&r).contains("profile total busy ms 0.0 share_wall 0.0\n"));
    }

    #[test]
    fn xens_runstate_follows_in_its_own_lines() {
        let phases = [item("block", 1, 500, true)];
        let r = Report {
            wall: 1000,
            tsc_hz: HZ,
            tsc_read: 0,
            phases: &phases,
            hypercalls: &[],
            runstate: Some([2_300_000_000, 100_000_000, 7_600_000_000, 0]),
        };
        assert!(text(&r).ends_with(
            "profile runstate running ms 2300.0 share_wall 23.0\n\
             profile runstate runnable ms 100.0 share_wall 1.0\n\
             profile runstate blocked ms 7600.0 share_wall 76.0\n\
             profile runstate offline ms 0.0 share_wall 0.0\n"
        ));
    }

    #[test]
    fn fixed_point_rounds_half_up() {
        assert_eq!(Fixed::ratio(1, 8, 2).to_string(), "0.13");
        assert_eq!(Fixed::ratio(1, 3, 1).to_string(), "0.3");
        assert_eq!(Fixed::ratio(2, 3, 1).to_string(), "0.7");
        assert_eq!(Fixed::ratio(u128::MAX, 1, 2).scaled, u128::MAX);
    }
}
