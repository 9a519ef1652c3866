//! A xenstore client over the shared ring: one request at a time, its reply
//! awaited by polling (no interrupts), watch events that arrive in between
//! queued for [`XenStore::poll_watch`].
//!
//! Events whose token starts with [`PRIVATE_TOKEN_PREFIX`] go to a second
//! queue ([`XsClient::poll_private_watch`]): the kernel's own watches (its
//! configuration) must not be eaten by netback, which drains the main queue.
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use hypervisor::{SharedPage, Transaction, WatchEvent, XenError, XenStore};

use crate::abi::xs_ring;
use crate::ring::ByteRing;
use crate::xs_wire::{self, ty, Assembler};

/// Watch tokens starting with this are the kernel's, not netback's.
pub const PRIVATE_TOKEN_PREFIX: &str = "aggdom/";

/// How long a request may wait for xenstored before it fails with `Io`.
pub const REQUEST_TIMEOUT_NS: u64 = 10_000_000_000;

const REQ: ByteRing = ByteRing {
    buf: xs_ring::REQ,
    size: xs_ring::SIZE,
    cons: xs_ring::REQ_CONS,
    prod: xs_ring::REQ_PROD,
};
const RSP: ByteRing = ByteRing {
    buf: xs_ring::RSP,
    size: xs_ring::SIZE,
    cons: xs_ring::RSP_CONS,
    prod: xs_ring::RSP_PROD,
};

/// What the client needs from its surroundings: the ring page, a way to
/// kick xenstored, and a clock.
pub trait XsTransport {
    type Page: SharedPage;
    fn page(&self) -> &Self::Page;
    /// Tells xenstored to look at the ring (`EVTCHNOP_send`).
    fn notify(&mut self);
    /// A monotonic clock in nanoseconds, for timeouts.
    fn now_ns(&mut self) -> u64;
    /// Called in every wait loop turn (a host test runs its fake xenstored
    /// here; the kernel just spins).
    fn idle(&mut self) {}
}

/// Requests and replies seen, for the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsStats {
    pub requests: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub watch_events: u64,
}

pub struct XsClient<T: XsTransport> {
    t: T,
    req_id: u32,
    asm: Assembler,
    events: VecDeque<WatchEvent>,
    private: VecDeque<WatchEvent>,
    /// The ring's indices were impossible or a message unparseable: every
    /// request fails with `Io` from then on.
    broken: bool,
    stats: XsStats,
}

impl<T: XsTransport> XsClient<T> {
    pub fn new(t: T) -> Self {
        Self {
            t,
            req_id: 0,
            asm: Assembler::default(),
            events: VecDeque::new(),
            private: VecDeque::new(),
            broken: false,
            stats: XsStats::default(),
        }
    }

    pub fn stats(&self) -> XsStats {
        self.stats
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.t
    }

    /// The oldest queued event of a private watch.
    pub fn poll_private_watch(&mut self) -> Option<WatchEvent> {
        self.pump();
        self.private.pop_front()
    }

    /// Reads whatever xenstored has written, files watch events, and
    /// returns the reply to `want` if it came.
    fn pump_for(&mut self, want: Option<u32>) -> Option<(u32, Vec<u8>)> {
        if self.broken {
            return None;
        }
        let mut buf = [0u8; xs_ring::SIZE as usize];
        loop {
            match RSP.consume(self.t.page(), &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.asm.feed(&buf[..n]);
                    self.t.notify(); // space freed
                }
                Err(_) => {
                    self.broken = true;
                    return None;
                }
            }
        }
        let mut reply = None;
        loop {
            match self.asm.next_message() {
                Ok(Some((h, payload))) if h.ty == ty::WATCH_EVENT => {
                    if let Some(ev) = xs_wire::parse_watch_event(&payload) {
                        self.stats.watch_events += 1;
                        if ev.token.starts_with(PRIVATE_TOKEN_PREFIX) {
                            self.private.push_back(ev);
                        } else {
                            self.events.push_back(ev);
                        }
                    }
                }
                Ok(Some((h, payload))) => {
                    // A reply; one to an earlier request that timed out is dropped.
                    if Some(h.req_id) == want && reply.is_none() {
                        reply = Some((h.ty, payload));
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.broken = true;
                    self.asm.clear();
                    break;
                }
            }
        }
        reply
    }

    fn pump(&mut self) {
        let _ = self.pump_for(None);
    }

    /// Sends one request and waits for its reply's payload.
    pub fn request(
        &mut self,
        ty: u32,
        t: Transaction,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, XenError> {
        if self.broken {
            return Err(XenError::Io);
        }
        self.req_id = self.req_id.wrapping_add(1);
        let id = self.req_id;
        let msg = xs_wire::request(ty, id, t.0, parts)?;
        self.stats.requests += 1;
        let start = self.t.now_ns();
        let mut sent = 0;
        while sent < msg.len() {
            match REQ.produce(self.t.page(), &msg[sent..]) {
                Ok(0) => {}
                Ok(n) => {
                    sent += n;
                    self.t.notify();
                    continue;
                }
                Err(_) => {
                    self.broken = true;
                    return Err(XenError::Io);
                }
            }
            // Ring full: let xenstored drain it (and keep reading replies so
            // it never blocks on a full response ring).
            self.pump();
            if self.timed_out(start) {
                return Err(XenError::Io);
            }
            self.t.idle();
        }
        loop {
            if let Some((rty, payload)) = self.pump_for(Some(id)) {
                if rty == ty::ERROR {
                    self.stats.errors += 1;
                    return Err(xs_wire::parse_error(&payload));
                }
                return Ok(payload);
            }
            if self.broken || self.timed_out(start) {
                return Err(XenError::Io);
            }
            self.t.idle();
        }
    }

    fn timed_out(&mut self, start: u64) -> bool {
        let late = self.t.now_ns().saturating_sub(start) > REQUEST_TIMEOUT_NS;
        if late {
            self.stats.timeouts += 1;
        }
        late
    }

    fn path_request(&mut self, ty: u32, t: Transaction, path: &str) -> Result<Vec<u8>, XenError> {
        let p = xs_wire::path_part(path)?;
        self.request(ty, t, &[&p])
    }
}

impl<T: XsTransport> XenStore for XsClient<T> {
    fn read(&mut self, t: Transaction, path: &str) -> Result<Vec<u8>, XenError> {
        self.path_request(ty::READ, t, path)
    }

    fn write(&mut self, t: Transaction, path: &str, value: &[u8]) -> Result<(), XenError> {
        let p = xs_wire::path_part(path)?;
        self.request(ty::WRITE, t, &[&p, value]).map(drop)
    }

    fn mkdir(&mut self, t: Transaction, path: &str) -> Result<(), XenError> {
        self.path_request(ty::MKDIR, t, path).map(drop)
    }

    fn rm(&mut self, t: Transaction, path: &str) -> Result<(), XenError> {
        self.path_request(ty::RM, t, path).map(drop)
    }

    fn directory(&mut self, t: Transaction, path: &str) -> Result<Vec<String>, XenError> {
        self.path_request(ty::DIRECTORY, t, path)
            .map(|p| xs_wire::parse_directory(&p))
    }

    fn watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        let p = xs_wire::path_part(path)?;
        let tok = xs_wire::path_part(token)?;
        self.request(ty::WATCH, Transaction::NONE, &[&p, &tok])
            .map(drop)
    }

    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        let p = xs_wire::path_part(path)?;
        let tok = xs_wire::path_part(token)?;
        self.request(ty::UNWATCH, Transaction::NONE, &[&p, &tok])
            .map(drop)
    }

    fn poll_watch(&mut self) -> Option<WatchEvent> {
        if self.events.is_empty() {
            self.pump();
        }
        self.events.pop_front()
    }

    fn transaction_start(&mut self) -> Result<Transaction, XenError> {
        let reply = self.request(ty::TRANSACTION_START, Transaction::NONE, &[b"\0"])?;
        xs_wire::parse_tx_id(&reply)
            .map(Transaction)
            .ok_or(XenError::Io)
    }

    fn transaction_end(&mut self, t: Transaction, commit: bool) -> Result<(), XenError> {
        let arg: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(ty::TRANSACTION_END, t, &[arg]).map(drop)
    }
}

#[cfg(test)]
mod tests;
