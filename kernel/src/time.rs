//! The monotonic clock: the TSC, calibrated once against PIT channel 2.
use crate::irq::PIT_HZ;
use core::arch::x86_64::_rdtsc;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// PIT ticks of the calibration window: ~10 ms.
const CALIBRATION_TICKS: u64 = 11_932;
/// Used when no PIT answers (PVH under Xen has none).
const FALLBACK_TSC_HZ: u64 = 1_000_000_000;

static TSC_HZ: AtomicU64 = AtomicU64::new(FALLBACK_TSC_HZ);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// The TSC now: the clock's raw count, also what the profile (profile.rs)
/// measures in.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear (we never set it).
    unsafe { _rdtsc() }
}

/// Marks time zero. Call first thing in `kernel_main`.
pub fn start() {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

/// Measures the TSC rate; returns it in Hz (`None`: no PIT, fallback kept).
pub fn calibrate() -> Option<u64> {
    // SAFETY: port 0x61 (speaker/gate control) and PIT channel 2 are not
    // used by anything else; channel 2 drives only the (gated-off) speaker.
    let (t0, t1, done) = unsafe {
        let mut gate = Port::<u8>::new(0x61);
        let g = gate.read();
        gate.write((g & !0x02) | 0x01); // speaker off, gate on
        Port::<u8>::new(0x43).write(0xb0); // channel 2, lo/hi, mode 0
        Port::<u8>::new(0x42).write(CALIBRATION_TICKS as u8);
        Port::<u8>::new(0x42).write((CALIBRATION_TICKS >> 8) as u8);
        let g = gate.read() & !0x01;
        gate.write(g); // restart the count on the gate's rising edge
        gate.write(g | 0x01);
        let t0 = rdtsc();
        let mut done = false;
        // Bounded: 2^31 TSC cycles is > 0.5 s on any CPU we care about.
        while rdtsc().wrapping_sub(t0) < (1 << 31) {
            if gate.read() & 0x20 != 0 {
                done = true;
                break;
            }
        }
        (t0, rdtsc(), done)
    };
    if !done || t1 <= t0 {
        return None;
    }
    let hz = (t1 - t0) * PIT_HZ / CALIBRATION_TICKS;
    TSC_HZ.store(hz, Ordering::Relaxed);
    Some(hz)
}

/// Nanoseconds since `start`.
pub fn now_ns() -> u64 {
    let ticks = rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000_000 / u128::from(TSC_HZ.load(Ordering::Relaxed))) as u64
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}
