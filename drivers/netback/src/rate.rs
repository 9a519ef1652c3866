//! The vif's `rate` key: a credit-based limit on what the guest sends,
//! with Linux xen-netback's semantics (`xen_net_read_rate` in xenbus.c,
//! `tx_credit_exceeded` / `tx_add_credit` in netback.c).
//!
//! `rate` is `<bytes>,<usec>` (xl writes it from `rate=10Mb/s@20ms` as
//! `25000,20000`): `bytes` of credit per `usec` window. Credit accumulates
//! up to a burst of max(131072, bytes), so a 64 KiB GSO frame always fits.
//! A frame larger than the credit left stays on the TX ring (unanswered,
//! so the guest's queue backs up) until the window ends. A missing or
//! malformed key means no limit, as in Linux. Changes apply live: the
//! backend directory is watched, and a lowered rate caps the credit left.
//!
//! One difference: Linux gives every queue of a multi-queue vif its own
//! credit, so a 4-queue guest gets 4 times its rate; here the credit is
//! the vif's.
use hypervisor::Hypervisor;

use crate::vif::Vif;

/// Linux's minimum burst: a 128 KiB frame must always be sendable.
const MIN_BURST: u64 = 131_072;

/// The limit and its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Credit {
    /// `None`: unlimited.
    pub(crate) limit: Option<Rate>,
    pub(crate) remaining: u64,
    window_start_ns: u64,
    /// Set when a frame waits for credit: no frame goes before this time
    /// (Linux's pending `credit_timeout`).
    wait_until_ns: Option<u64>,
}

/// A parsed `rate` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub bytes: u64,
    pub usec: u64,
}

impl Rate {
    /// `<bytes>,<usec>`, both decimal; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (b, u) = text.split_once(',')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if !digits(b) || !digits(u) {
            return None;
        }
        Some(Self {
            bytes: b.parse().ok()?,
            usec: u.parse().ok()?,
        })
    }

    fn window_ns(&self) -> u64 {
        self.usec.saturating_mul(1000)
    }
}

impl Credit {
    pub(crate) const UNLIMITED: Self = Self {
        limit: None,
        remaining: u64::MAX,
        window_start_ns: 0,
        wait_until_ns: None,
    };

    /// A frame is waiting for the credit timer.
    pub(crate) fn waiting(&self) -> bool {
        self.wait_until_ns.is_some()
    }

    /// When the waiting frame's window opens: the loop must look at the vif
    /// again then, as the guest, blocked on its full ring, sends nothing
    /// that would wake it (Linux arms `credit_timeout` for this).
    pub(crate) fn wait_until(&self) -> Option<u64> {
        self.wait_until_ns
    }

    /// `tx_add_credit`: one window's bytes more, up to the burst.
    fn add(&mut self) {
        let Some(r) = self.limit else { return };
        let burst = r.bytes.max(MIN_BURST);
        self.remaining = self.remaining.saturating_add(r.bytes).min(burst);
    }

    /// May a frame of `size` bytes go now? Charges it if so. Otherwise the
    /// frame waits for the next window (`tx_credit_exceeded`).
    pub(crate) fn take(&mut self, now: u64, size: u64) -> bool {
        let Some(r) = self.limit else { return true };
        if size > self.remaining {
            if let Some(at) = self.wait_until_ns {
                if now < at {
                    return false;
                }
                // The credit timer fired.
                self.wait_until_ns = None;
                self.add();
            }
            let next = self.window_start_ns.saturating_add(r.window_ns());
            if now >= next {
                self.window_start_ns = now;
                self.add();
            }
            if size > self.remaining {
                self.wait_until_ns = Some(next);
                self.window_start_ns = next;
                return false;
            }
        }
        self.remaining -= size;
        true
    }
}

impl<H: Hypervisor> Vif<H> {
    /// Applies the `rate` key's current value (`None`: absent).
    pub(crate) fn apply_rate(&mut self, hv: &mut H, text: Option<&str>) {
        let limit = text.and_then(Rate::parse);
        // Counted once per bad value written, not per re-read.
        let bad = text.is_some() && limit.is_none();
        if bad && !self.rate_bad {
            self.counters.rate_errors += 1;
        }
        self.rate_bad = bad;
        if limit == self.credit.limit {
            return;
        }
        let c = &mut self.credit;
        match (c.limit, limit) {
            (_, None) => *c = Credit::UNLIMITED,
            (None, Some(r)) => {
                *c = Credit {
                    limit: Some(r),
                    remaining: r.bytes,
                    window_start_ns: hv.now_ns(),
                    wait_until_ns: None,
                }
            }
            (Some(_), Some(r)) => {
                // `xen_net_rate_changed`: new window size; credit left is
                // capped unless a frame is already waiting.
                c.limit = Some(r);
                if c.wait_until_ns.is_none() && c.remaining > r.bytes {
                    c.remaining = r.bytes;
                }
            }
        }
    }

    /// A new connection starts with one window's credit, as Linux's
    /// `connect` sets `remaining_credit = credit_bytes`.
    pub(crate) fn credit_reset(&mut self, now: u64) {
        if let Some(r) = self.credit.limit {
            self.credit = Credit {
                limit: Some(r),
                remaining: r.bytes,
                window_start_ns: now,
                wait_until_ns: None,
            };
        }
    }

    /// The `rate` limit in force, if any.
    pub fn rate(&self) -> Option<Rate> {
        self.credit.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_linux() {
        assert_eq!(
            Rate::parse("25000,20000"),
            Some(Rate {
                bytes: 25000,
                usec: 20000
            })
        );
        for bad in [
            "", ",", "1,", ",1", "1,2,3", "a,1", "1, 2", " 1,2", "1,2\n", "-1,2",
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn credit_follows_windows_and_burst() {
        let r = Rate {
            bytes: 10_000,
            usec: 1000,
        };
        let mut c = Credit {
            limit: Some(r),
            remaining: 10_000,
            window_start_ns: 0,
            wait_until_ns: None,
        };
        assert!(c.take(0, 6000));
        assert!(!c.take(0, 6000), "4000 left");
        assert!(!c.take(999_999, 6000), "waits for the window's end");
        assert!(c.take(1_000_000, 6000), "credit added at 1 ms");
        // Credit grows by one window per replenish, however long the idle
        // time, up to the burst: a 100000-byte frame waits for windows to
        // add up. (As in Linux, the first wait after an idle spell ends at
        // a window boundary already past, so it is shorter.)
        assert!(!c.take(1_000_000_000, 100_000));
        let mut t = 1_000_000_000;
        let mut windows = 0;
        while !c.take(t, 100_000) {
            t += 1_000_000;
            windows += 1;
        }
        assert!((4..=9).contains(&windows), "{windows} windows");
        // Nothing more than the burst ever accumulates.
        c.remaining = 125_000;
        c.wait_until_ns = None;
        c.window_start_ns = t;
        assert!(!c.take(t + 1_000_000, 140_000));
        assert!(!c.take(t + 2_000_000, 140_000), "131072 is the cap");
        assert!(c.take(t + 3_000_000, 131_072));
        assert_eq!(c.remaining, 0);
    }
}
