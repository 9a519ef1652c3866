//! The always-on cycle profile (issue 10): where the main loop's time goes,
//! phase by phase, and what each kind of hypercall costs
//! ([`xen::profile`]), and under Xen its runstate times over the same span;
//! the console's `profile` prints it, `profile reset` zeroes it.
//!
//! Cycles are the kernel clock's TSC ([`time::rdtsc`]). The counters are
//! [`Slot`]s in statics: atomics updated without a lock or `lock` prefix,
//! since aggdom runs on one vCPU and no interrupt handler touches them.
//! Cost in the loop: one TSC read and two adds per phase; per hypercall,
//! two TSC reads and two adds. No allocation but when printing.
use crate::domain::Domain;
use crate::{print, println, time};
use aggdom_profile::{Counts, Item, Lap, Report, Slot};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// The main loop's phases, in loop order. Their cycles add up to the
/// loop's whole time: every cycle between two marks goes to one phase.
#[derive(Clone, Copy)]
pub enum Phase {
    /// `xen_net::poll`: xenstore, vif connects, the config node, aggctl's
    /// transport (the datapath's vif rings are `Domain`'s).
    XenNet,
    /// `Domain::poll`: every NIC and vif through the datapath, and the
    /// re-arm and last look before sleeping.
    Domain,
    /// Console input and the commands it runs.
    Shell,
    /// aggctl requests.
    Ctl,
    /// Console output (flush), `watch`, the capture's time limit.
    Console,
    /// A busy loop giving the CPU to dom0 (`xen_net::yield_if_due`).
    Yield,
    /// Asleep until an event, interrupt or timer (`SCHEDOP_poll`, `hlt`).
    Block,
}

const PHASES: [(Phase, &str); 7] = [
    (Phase::XenNet, "xen_net"),
    (Phase::Domain, "domain"),
    (Phase::Shell, "shell"),
    (Phase::Ctl, "ctl"),
    (Phase::Console, "console"),
    (Phase::Yield, "yield"),
    (Phase::Block, "block"),
];

impl Phase {
    /// Time handed to Xen (or `hlt`), not work: busy time is wall time
    /// less these. A yield lets dom0 run on our CPU; the time until Xen
    /// gives it back is not aggdom's.
    fn asleep(self) -> bool {
        matches!(self, Phase::Yield | Phase::Block)
    }
}

static SLOTS: [Slot; PHASES.len()] = [const { Slot::new() }; PHASES.len()];
/// TSC at the loop's start or the last reset: where wall time counts from.
static SINCE: AtomicU64 = AtomicU64::new(0);
/// Cycles one TSC read takes, measured at loop start: the profile's own
/// cost per read, for its `total overhead` line.
static TSC_READ: AtomicU64 = AtomicU64::new(0);
/// Xen's runstate times then (under Xen), to report the span's share.
static RUNSTATE_AT: Mutex<Option<[u64; 4]>> = Mutex::new(None);

/// The main loop's stopwatch.
pub struct Loop(Lap);

impl Loop {
    /// Starts the profile with the loop: what boot spent (the blocking
    /// xenstore reads) is not the loop's, so the counters start at zero.
    pub fn start() -> Self {
        TSC_READ.store(tsc_read_cycles(), Ordering::Relaxed);
        reset();
        Self(Lap::new(SINCE.load(Ordering::Relaxed)))
    }

    /// Charges the time since the last mark to `phase`.
    #[inline]
    pub fn mark(&mut self, phase: Phase) {
        self.0.mark(&SLOTS[phase as usize], time::rdtsc());
    }
}

/// Cycles of one TSC read: the best of a few runs of 64 back to back
/// (the first run under TCG also pays for translating the code).
fn tsc_read_cycles() -> u64 {
    const READS: u64 = 64;
    (0..4)
        .map(|_| {
            let start = time::rdtsc();
            for _ in 0..READS {
                core::hint::black_box(time::rdtsc());
            }
            time::rdtsc().wrapping_sub(start) / READS
        })
        .min()
        .unwrap_or(0)
}

/// Zeroes every phase and hypercall counter; wall time counts from now.
/// The phase that runs this (the shell's) keeps the few cycles of its
/// pass from before.
fn reset() {
    // First: its hypercall is then not counted in the span.
    *RUNSTATE_AT.lock() = xen::profile::runstate();
    SLOTS.iter().for_each(Slot::reset);
    xen::profile::reset();
    SINCE.store(time::rdtsc(), Ordering::Relaxed);
}

/// The console's `profile [reset]`.
pub fn command(_: &mut Domain, args: &[&str]) -> Result<(), String> {
    match args {
        [] => {
            let phases: Vec<Item> = PHASES
                .iter()
                .map(|(phase, name)| Item {
                    name,
                    counts: SLOTS[*phase as usize].get(),
                    asleep: phase.asleep(),
                })
                .collect();
            let called: Vec<(xen::profile::Kind, Counts)> = xen::profile::counts()
                .filter(|(_, c)| c.calls > 0)
                .collect();
            let hypercalls: Vec<Item> = called
                .iter()
                .map(|(kind, counts)| Item {
                    name: kind,
                    counts: *counts,
                    asleep: kind.asleep(),
                })
                .collect();
            let wall = time::rdtsc().wrapping_sub(SINCE.load(Ordering::Relaxed));
            // Last, after the counts were read: its hypercall stays out.
            let runstate = match (*RUNSTATE_AT.lock(), xen::profile::runstate()) {
                (Some(at), Some(now)) => {
                    Some(core::array::from_fn(|i| now[i].saturating_sub(at[i])))
                }
                _ => None,
            };
            let report = Report {
                wall,
                tsc_hz: time::tsc_hz(),
                tsc_read: TSC_READ.load(Ordering::Relaxed),
                phases: &phases,
                hypercalls: &hypercalls,
                runstate,
            };
            print!("{report}");
        }
        ["reset"] => {
            reset();
            let ms = time::now_ns() / 1_000_000;
            println!("profile zeroed at uptime {}.{:03} s", ms / 1000, ms % 1000);
        }
        _ => return Err("takes no arguments but reset".into()),
    }
    Ok(())
}
