//! One profiled scope's counters, and the lap timer of the main loop.
use core::sync::atomic::{AtomicU64, Ordering};

/// Cycles spent in one scope and how many times it ran, since the last
/// [`Slot::reset`].
///
/// Atomics for `Sync` statics without a lock or `unsafe`, but updated with
/// a relaxed load and a store, not `fetch_add`: aggdom runs on one vCPU and
/// nothing profiled runs in an interrupt handler (under Xen aggdom takes no
/// interrupts at all), so there is no second writer, and the update stays
/// two plain `mov`s (no `lock` prefix, which TCG emulates slowly). Were a
/// handler ever to add to a slot mid-update, a sample would be lost, never
/// torn.
pub struct Slot {
    cycles: AtomicU64,
    calls: AtomicU64,
}

/// A [`Slot`]'s values at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub cycles: u64,
}

impl Counts {
    /// The two summed (several scopes reported as one).
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            calls: self.calls.wrapping_add(other.calls),
            cycles: self.cycles.wrapping_add(other.cycles),
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    pub const fn new() -> Self {
        Self {
            cycles: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Counts one run of the scope that took `cycles`.
    #[inline]
    pub fn add(&self, cycles: u64) {
        let c = self.cycles.load(Ordering::Relaxed);
        self.cycles.store(c.wrapping_add(cycles), Ordering::Relaxed);
        let n = self.calls.load(Ordering::Relaxed);
        self.calls.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    pub fn get(&self) -> Counts {
        Counts {
            calls: self.calls.load(Ordering::Relaxed),
            cycles: self.cycles.load(Ordering::Relaxed),
        }
    }

    pub fn reset(&self) {
        self.cycles.store(0, Ordering::Relaxed);
        self.calls.store(0, Ordering::Relaxed);
    }
}

/// The main loop's stopwatch: [`Lap::mark`] charges the cycles since the
/// previous mark to one phase's slot. One TSC read per phase instead of
/// two, and the phases add up to the loop's whole time: what the loop does
/// between two marks is never left out.
pub struct Lap {
    last: u64,
}

impl Lap {
    /// Starts timing at TSC value `now`.
    pub const fn new(now: u64) -> Self {
        Self { last: now }
    }

    /// Charges the time since the last mark (TSC value `now`) to `phase`.
    #[inline]
    pub fn mark(&mut self, phase: &Slot, now: u64) {
        phase.add(now.wrapping_sub(self.last));
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_sums_cycles_and_counts_calls_until_reset() {
        let s = Slot::new();
        s.add(100);
        s.add(23);
        assert_eq!(
            s.get(),
            Counts {
                calls: 2,
                cycles: 123
            }
        );
        s.reset();
        assert_eq!(s.get(), Counts::default());
    }

    #[test]
    fn laps_charge_every_cycle_to_exactly_one_phase() {
        let (a, b) = (Slot::new(), Slot::new());
        let mut lap = Lap::new(1000);
        lap.mark(&a, 1010);
        lap.mark(&b, 1050);
        lap.mark(&a, 1051);
        assert_eq!(
            a.get(),
            Counts {
                calls: 2,
                cycles: 11
            }
        );
        assert_eq!(
            b.get(),
            Counts {
                calls: 1,
                cycles: 40
            }
        );
        assert_eq!(a.get().plus(b.get()).cycles, 1051 - 1000);
    }

    #[test]
    fn a_tsc_that_wraps_still_gives_the_difference() {
        let s = Slot::new();
        let mut lap = Lap::new(u64::MAX - 4);
        lap.mark(&s, 5);
        assert_eq!(s.get().cycles, 10);
    }
}
