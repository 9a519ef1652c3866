//! aggctl under Xen: the protocol server (`aggdom_ctl::Server`) over
//! aggdom's xenstore connection, and the commands it receives run through
//! the console's command table (`shell::run_remote`).
//!
//! Two halves, so that no command runs while `xen_net` holds its lock
//! (the `xen` command takes it): [`pump`] is called from `xen_net::poll`
//! with the xenstore client, and [`run_pending`] from the main loop.
use crate::domain::Domain;
use crate::{println, shell};
use aggdom_ctl::Server;
use hypervisor::{WatchEvent, XenStore};
use spin::Mutex;

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Starts serving `/local/domain/<domid>/data/aggctl` (under Xen, once
/// xenstore is up).
pub fn start<X: XenStore>(xs: &mut X, domid: u32) {
    match Server::start(xs, domid) {
        Ok(s) => {
            println!("xen: aggctl requests at {}/request", s.dir());
            *SERVER.lock() = Some(s);
        }
        Err(e) => println!("xen: aggctl not served: cannot watch its directory: {e}"),
    }
}

/// A private watch event: `true` if it was aggctl's.
pub fn on_watch(ev: &WatchEvent) -> bool {
    match SERVER.lock().as_mut() {
        Some(s) => s.on_watch(&ev.path, &ev.token),
        None => false,
    }
}

/// Reads requests and writes replies; never waits.
pub fn pump<X: XenStore>(xs: &mut X) -> usize {
    match SERVER.try_lock().as_mut().and_then(|g| g.as_mut()) {
        Some(s) => s.pump(xs),
        None => 0,
    }
}

/// Runs the requests read so far; their replies go out at the next pump.
pub fn run_pending(domain: &mut Domain) -> usize {
    let mut work = 0;
    loop {
        let Some((id, line)) = SERVER.lock().as_mut().and_then(|s| s.next_request()) else {
            return work;
        };
        let result = shell::run_remote(domain, &line);
        if let Some(s) = SERVER.lock().as_mut() {
            s.answer(id, result);
        }
        work += 1;
    }
}

/// The server's counters, for the `xen` command.
pub fn counters_line() -> Option<alloc::string::String> {
    let guard = SERVER.lock();
    let s = guard.as_ref()?;
    let c = s.counters;
    Some(alloc::format!(
        "aggctl {} requests {} replies {} busy {} bad {} xenstore_errors {}",
        s.dir(),
        c.requests,
        c.replies,
        c.busy,
        c.bad,
        c.xenstore_errors
    ))
}
