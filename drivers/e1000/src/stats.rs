//! Folding the device's statistics registers into cumulative counters.
//!
//! The manual says every statistics register clears when read (13.7).
//! QEMU's model clears most of them but not all: CRCERRS..MPC and RNBC keep
//! counting, and MPC is the one that matters (frames missed for lack of
//! buffers). So each register's behaviour is learnt rather than assumed: the
//! first time it reads non-zero it is read again at once; a cleared second
//! read means clear-on-read, a second read at least as large means it keeps
//! counting. After that one extra read, a register costs one read per fold.
use crate::regs;
use nic::Counters;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Has read zero so far.
    Unknown,
    /// Clears when read: each read is the count since the last.
    ClearOnRead,
    /// Keeps counting: each read minus the last is the count since.
    Cumulative,
}

/// How one register has behaved, and its last value if cumulative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFold {
    mode: Mode,
    last: u32,
}

impl StatFold {
    pub const fn new() -> Self {
        Self {
            mode: Mode::Unknown,
            last: 0,
        }
    }

    /// Called once at start-up: learns what it can and discards whatever
    /// the register counted before the driver took over.
    pub fn calibrate(&mut self, mut read: impl FnMut() -> u32) {
        let first = read();
        if first == 0 {
            return;
        }
        let second = read();
        if second < first {
            self.mode = Mode::ClearOnRead;
        } else {
            self.mode = Mode::Cumulative;
            self.last = second;
        }
    }

    /// Reads the register and returns what it counted since the last fold.
    pub fn fold(&mut self, mut read: impl FnMut() -> u32) -> u64 {
        match self.mode {
            Mode::ClearOnRead => u64::from(read()),
            Mode::Cumulative => {
                let now = read();
                // A smaller value means the device was reset and cleared it.
                let delta = if now >= self.last {
                    now - self.last
                } else {
                    now
                };
                self.last = now;
                u64::from(delta)
            }
            Mode::Unknown => {
                let first = read();
                if first == 0 {
                    return 0;
                }
                let second = read();
                if second < first {
                    // Cleared by the first read; `second` came in between.
                    self.mode = Mode::ClearOnRead;
                    u64::from(first) + u64::from(second)
                } else {
                    self.mode = Mode::Cumulative;
                    self.last = second;
                    u64::from(second)
                }
            }
        }
    }
}

/// Which counter a statistics register adds to.
#[derive(Clone, Copy, Debug)]
enum Target {
    RxMissed,
    RxErrors,
    TxErrors,
    DevRxFrames,
    DevTxFrames,
}

/// The statistics registers the driver folds, and where.
const FOLDED: [(u32, Target); 11] = [
    (regs::MPC, Target::RxMissed),
    (regs::CRCERRS, Target::RxErrors),
    (regs::ALGNERRC, Target::RxErrors),
    (regs::SYMERRS, Target::RxErrors),
    (regs::RXERRC, Target::RxErrors),
    (regs::RUC, Target::RxErrors),
    (regs::ROC, Target::RxErrors),
    (regs::ECOL, Target::TxErrors),
    (regs::LATECOL, Target::TxErrors),
    (regs::GPRC, Target::DevRxFrames),
    (regs::GPTC, Target::DevTxFrames),
];

/// The fold state of every folded register.
#[derive(Clone, Debug)]
pub struct HwStats {
    folds: [StatFold; FOLDED.len()],
}

impl HwStats {
    pub const fn new() -> Self {
        Self {
            folds: [StatFold::new(); FOLDED.len()],
        }
    }

    pub fn calibrate(&mut self, mut read: impl FnMut(u32) -> u32) {
        for (fold, (reg, _)) in self.folds.iter_mut().zip(FOLDED) {
            fold.calibrate(|| read(reg));
        }
    }

    /// Adds what every register counted since the last call to `counters`.
    pub fn fold_into(&mut self, counters: &mut Counters, mut read: impl FnMut(u32) -> u32) {
        for (fold, (reg, into)) in self.folds.iter_mut().zip(FOLDED) {
            let n = fold.fold(|| read(reg));
            let field = match into {
                Target::RxMissed => &mut counters.rx_missed,
                Target::RxErrors => &mut counters.rx_errors,
                Target::TxErrors => &mut counters.tx_errors,
                Target::DevRxFrames => &mut counters.dev_rx_frames,
                Target::DevTxFrames => &mut counters.dev_tx_frames,
            };
            *field += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A register that counts `pending` events and clears on read or not.
    struct Reg {
        value: Cell<u32>,
        clears: bool,
    }

    impl Reg {
        fn new(clears: bool) -> Self {
            Self {
                value: Cell::new(0),
                clears,
            }
        }
        fn count(&self, n: u32) {
            self.value.set(self.value.get().saturating_add(n));
        }
        fn read(&self) -> u32 {
            let v = self.value.get();
            if self.clears {
                self.value.set(0);
            }
            v
        }
    }

    fn run(clears: bool, before: u32, events: &[u32]) -> u64 {
        let reg = Reg::new(clears);
        reg.count(before);
        let mut fold = StatFold::new();
        fold.calibrate(|| reg.read());
        let mut total = 0;
        for &n in events {
            reg.count(n);
            total += fold.fold(|| reg.read());
        }
        total
    }

    #[test]
    fn counts_exactly_whichever_way_the_register_behaves() {
        let events = [0, 0, 3, 0, 1, 7, 0, 2];
        for clears in [true, false] {
            for before in [0, 5] {
                assert_eq!(
                    run(clears, before, &events),
                    13,
                    "clears {clears} before {before}"
                );
            }
        }
    }

    #[test]
    fn an_event_between_the_two_learning_reads_is_not_lost() {
        let reg = Reg::new(true);
        let mut fold = StatFold::new();
        reg.count(4);
        let mut reads = 0;
        let n = fold.fold(|| {
            reads += 1;
            let v = reg.read();
            if reads == 1 {
                reg.count(1); // arrives between the two reads
            }
            v
        });
        assert_eq!(n, 5);
        reg.count(2);
        assert_eq!(fold.fold(|| reg.read()), 2);
    }

    #[test]
    fn a_cumulative_register_cleared_by_a_device_reset_restarts() {
        let mut fold = StatFold::new();
        let mut value = 10;
        assert_eq!(fold.fold(|| value), 10);
        value = 12;
        assert_eq!(fold.fold(|| value), 2);
        value = 3; // the device was reset, then counted 3
        assert_eq!(fold.fold(|| value), 3);
    }

    #[test]
    fn registers_land_in_their_counters() {
        let mut stats = HwStats::new();
        stats.calibrate(|_| 0);
        let mut c = Counters::default();
        stats.fold_into(&mut c, |reg| match reg {
            regs::MPC => 4,
            regs::CRCERRS | regs::ROC => 1,
            regs::LATECOL => 2,
            regs::GPRC => 9,
            regs::GPTC => 8,
            _ => 0,
        });
        assert_eq!(
            (
                c.rx_missed,
                c.rx_errors,
                c.tx_errors,
                c.dev_rx_frames,
                c.dev_tx_frames
            ),
            (4, 2, 2, 9, 8)
        );
    }
}
