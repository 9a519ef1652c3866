//! Xen system time (ns since boot of the host), from vCPU 0's
//! `vcpu_time_info` in shared_info: the timeout of `SCHEDOP_poll` is in
//! this clock, not ours.

/// One consistent copy of `vcpu_time_info` (xen.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeInfo {
    pub version: u32,
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
}

impl TimeInfo {
    /// System time at TSC value `tsc`, as xen.h prescribes:
    /// `system_time + ((tsc - tsc_timestamp) << tsc_shift) * mul >> 32`
    /// (a negative shift shifts right). `None` while Xen is updating the
    /// record (odd version) or before it ever filled it (mul 0).
    pub fn at(&self, tsc: u64) -> Option<u64> {
        if self.version & 1 == 1 || self.tsc_to_system_mul == 0 {
            return None;
        }
        let mut delta = tsc.wrapping_sub(self.tsc_timestamp);
        if delta > (1 << 62) {
            delta = 0; // tsc read before the timestamp: treat as now
        }
        let shift = i32::from(self.tsc_shift);
        delta = if shift >= 0 {
            delta.checked_shl(shift as u32).unwrap_or(u64::MAX)
        } else {
            delta >> (-shift).min(63)
        };
        let scaled = (u128::from(delta) * u128::from(self.tsc_to_system_mul)) >> 32;
        Some(self.system_time.wrapping_add(scaled as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::TimeInfo;

    const T: TimeInfo = TimeInfo {
        version: 2,
        tsc_timestamp: 1_000,
        system_time: 5_000_000,
        // 0.5 ns per tick after a left shift of 1: 1 ns per tick.
        tsc_to_system_mul: 1 << 31,
        tsc_shift: 1,
    };

    #[test]
    fn scales_the_tsc_delta() {
        assert_eq!(T.at(1_000), Some(5_000_000));
        assert_eq!(T.at(3_000), Some(5_002_000));
        let right = TimeInfo {
            tsc_shift: -1,
            tsc_to_system_mul: u32::MAX,
            ..T
        };
        // (2000 >> 1) * (2^32 - 1) >> 32 = 999
        assert_eq!(right.at(3_000), Some(5_000_999));
    }

    #[test]
    fn no_time_while_updating_or_unset() {
        assert_eq!(TimeInfo { version: 3, ..T }.at(2_000), None);
        assert_eq!(
            TimeInfo {
                tsc_to_system_mul: 0,
                ..T
            }
            .at(2_000),
            None
        );
        // A TSC just before the timestamp reads as the timestamp.
        assert_eq!(T.at(999), Some(5_000_000));
    }
}
