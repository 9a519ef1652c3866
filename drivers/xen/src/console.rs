//! The Xen PV console (io/console.h): a ring page xenconsoled (dom0) reads
//! and writes, found through `HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`. Under Xen it
//! is a second console beside COM1: `xl console -t pv <domain>` reaches it,
//! and xenconsoled logs it (`/var/log/xen/console/guest-<name>.log`).
use spin::Mutex;

use crate::abi::cons_ring;
use crate::evtchn;
use crate::page::RawPage;
use crate::ring::ByteRing;

const OUT: ByteRing = ByteRing {
    buf: cons_ring::OUT,
    size: cons_ring::OUT_SIZE,
    cons: cons_ring::OUT_CONS,
    prod: cons_ring::OUT_PROD,
};
const IN: ByteRing = ByteRing {
    buf: cons_ring::IN,
    size: cons_ring::IN_SIZE,
    cons: cons_ring::IN_CONS,
    prod: cons_ring::IN_PROD,
};

struct PvConsole {
    page: RawPage,
    port: u32,
}

static CONSOLE: Mutex<Option<PvConsole>> = Mutex::new(None);

/// Starts using the console ring at `addr` with event channel `port`.
///
/// # Safety
/// `addr` is the identity-mapped console ring page Xen named in
/// `HVM_PARAM_CONSOLE_PFN`, used by nothing else in this domain.
pub unsafe fn attach(addr: usize, port: u32) {
    *CONSOLE.lock() = Some(PvConsole {
        // SAFETY: forwarded from the caller.
        page: unsafe { RawPage::new(addr) },
        port,
    });
}

/// The console's event channel, if attached.
pub fn port() -> Option<u32> {
    CONSOLE.lock().as_ref().map(|c| c.port)
}

pub fn is_attached() -> bool {
    CONSOLE.lock().is_some()
}

/// Writes as many of `bytes` as the output ring has room for now and
/// returns how many: it never waits for xenconsoled (the caller keeps the
/// rest for later). 0 when there is no PV console or the ring is corrupt.
pub fn write(bytes: &[u8]) -> usize {
    let mut guard = CONSOLE.lock();
    let Some(c) = guard.as_mut() else { return 0 };
    match OUT.produce(&c.page, bytes) {
        Ok(0) | Err(_) => 0,
        Ok(n) => {
            let _ = evtchn::send(c.port);
            n
        }
    }
}

/// One byte typed on the console, if any.
pub fn read_byte() -> Option<u8> {
    let mut guard = CONSOLE.lock();
    let c = guard.as_mut()?;
    let mut b = [0u8];
    match IN.consume(&c.page, &mut b) {
        Ok(1) => {
            let _ = evtchn::send(c.port);
            Some(b[0])
        }
        _ => None,
    }
}

/// For the fatal path: the lock may be held by the code that faulted.
///
/// # Safety
/// Only on the way out of the machine: whoever held the lock never runs
/// again.
pub unsafe fn force_unlock() {
    // SAFETY: forwarded from the caller.
    unsafe { CONSOLE.force_unlock() };
}
