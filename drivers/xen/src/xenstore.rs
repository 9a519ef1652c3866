//! A xenstore client over the shared ring that never waits for xenstored:
//! [`XenStore::submit`] queues a request and pushes what fits into the ring;
//! [`XsClient::pump`], called by the main loop each turn, pushes the rest,
//! files replies under their request ids and queues watch events.
//!
//! Events whose token starts with [`PRIVATE_TOKEN_PREFIX`] go to a second
//! queue ([`XsClient::poll_private_watch`]): the kernel's own watches (its
//! configuration) must not be eaten by netback, which drains the main queue.
//!
//! Everything that can grow is bounded: unanswered requests
//! ([`MAX_IN_FLIGHT`], then `Busy`), replies nobody takes
//! ([`MAX_STORED_REPLIES`], oldest evicted and counted), the messages one
//! pump handles ([`MAX_MESSAGES_PER_PUMP`]; the rest wait in the ring, and
//! [`XsClient::has_backlog`] says so) and the bytes read ahead of parsing.
//!
//! # Resynchronisation
//! Impossible ring indices or a header xenstored cannot have sent
//! ([`xs_wire::plausible_from_server`]) mean the byte streams are out of
//! step. The client then fails every outstanding request with `Io`, resets
//! the connection and re-sends `XS_WATCH` for every watch it holds, so
//! watchers keep working. How it resets depends on xenstored
//! (io/xs_wire.h, docs/misc/xenstore-ring.txt):
//!
//! - If it offers `XENSTORE_SERVER_FEATURE_RECONNECTION`, the client sets
//!   `connection = XENSTORE_RECONNECT`, kicks xenstored and leaves the ring
//!   alone (later pumps read only `connection`) until xenstored has emptied
//!   both queues, dropped our requests and watches, and set
//!   `XENSTORE_CONNECTED` again. The stream restarts on a message boundary;
//!   the re-sent watches fire once each, as new watches do.
//! - Otherwise it re-initialises locally: it discards its half-assembled
//!   message and whatever is in the response ring, finishes sending a
//!   request it had partly sent (so xenstored's framing holds), and repairs
//!   an impossible request producer index. It cannot know where xenstored
//!   is inside a reply, so this is best effort: if it cut one in two, the
//!   next header is implausible and the client resyncs again (counted).
//!   xenstored still holds our watches then and answers the re-sent ones
//!   `EEXIST`; the client queues one event per watch itself, so
//!   level-triggered watchers re-read what they may have missed.
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use hypervisor::{RequestId, SharedPage, WatchEvent, XenError, XenStore, XsOp, XsReply};

use crate::abi::xs_ring;
use crate::ring::{ByteRing, Corrupt};
use crate::xs_wire::{self, ty, Assembler, Header, HEADER_LEN, PAYLOAD_MAX};

/// Watch tokens starting with this are the kernel's, not netback's.
pub const PRIVATE_TOKEN_PREFIX: &str = "aggdom/";

/// How long a request may wait for xenstored (from its submission) before
/// it fails with `Io`.
pub const REQUEST_TIMEOUT_NS: u64 = 10_000_000_000;

/// Requests submitted and not yet answered (or timed out); `submit` says
/// `Busy` beyond this.
pub const MAX_IN_FLIGHT: usize = 256;

/// Replies kept for `take_reply`; beyond this the oldest is evicted.
pub const MAX_STORED_REPLIES: usize = 256;

/// Messages one [`XsClient::pump`] files, so a flood of watch events cannot
/// hold the main loop.
pub const MAX_MESSAGES_PER_PUMP: usize = 64;

/// Response bytes read ahead of parsing; beyond this they stay in the ring
/// (xenstored then waits for room, which is the ring's flow control).
const READ_AHEAD: usize = 2 * (HEADER_LEN + PAYLOAD_MAX);

/// The request ring of the xenstore page (xs_wire.h `xenstore_domain_interface`):
/// the client produces, xenstored consumes.
pub const REQ: ByteRing = ByteRing {
    buf: xs_ring::REQ,
    size: xs_ring::SIZE,
    cons: xs_ring::REQ_CONS,
    prod: xs_ring::REQ_PROD,
};
/// The response ring of the xenstore page: xenstored produces, the client
/// consumes.
pub const RSP: ByteRing = ByteRing {
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
    /// Waits a little for xenstored. Called only by
    /// [`XsClient::request_blocking`]'s loop (the kernel sleeps on the
    /// xenstore port there; a host test runs its fake xenstored).
    fn idle(&mut self) {}
}

/// What the client has seen, for the console. All counts since start
/// except the ones marked "now".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsStats {
    /// Requests sent, including watches re-sent after a resync.
    pub requests: u64,
    /// `XS_ERROR` replies other than `ENOENT`: something failed.
    pub errors: u64,
    /// `ENOENT` replies: a node that is not there, the normal answer to
    /// reading an optional key (netback reads a dozen per vif).
    pub noent: u64,
    /// Requests failed with `Io` after [`REQUEST_TIMEOUT_NS`] unanswered.
    pub timeouts: u64,
    /// `XS_WATCH_EVENT`s received.
    pub watch_events: u64,
    /// Resynchronisations after a corrupt ring or message (module docs).
    pub resyncs: u64,
    /// Replies to no outstanding request (late ones to requests that timed
    /// out or were failed by a resync), dropped.
    pub unknown_replies: u64,
    /// Replies stored but never taken, dropped to make room.
    pub evicted: u64,
    /// Requests awaiting a reply, now.
    pub in_flight: u64,
    /// The most requests ever awaiting a reply at once.
    pub max_in_flight: u64,
    /// Request bytes waiting for room in the ring, now.
    pub queued_bytes: u64,
}

/// A request sent (or queued) and not yet answered.
struct Pending {
    submitted_ns: u64,
    /// The caller will not take the reply: drop it when it comes.
    forgotten: bool,
    /// The request's type and first path, for [`XsClient::last_error`].
    ty: u32,
    path: String,
}

/// The most recent `XS_ERROR` other than `ENOENT`, for the console: which
/// request failed and how (the `errors` count alone cannot say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XsFailure {
    pub error: XenError,
    /// The request's `XS_*` type.
    pub ty: u32,
    /// Its first path, cut at [`FAILURE_PATH_MAX`] bytes.
    pub path: String,
}

/// How much of a failed request's path [`XsFailure`] keeps.
pub const FAILURE_PATH_MAX: usize = 80;

/// One request's bytes on their way into the ring.
struct Outgoing {
    id: u32,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Up,
    /// We set `connection = XENSTORE_RECONNECT` and wait for xenstored to
    /// set it back; the ring is not touched meanwhile.
    Reconnecting,
}

pub struct XsClient<T: XsTransport> {
    t: T,
    last_id: u32,
    outstanding: BTreeMap<u32, Pending>,
    /// Replies not yet taken, oldest first.
    replies: VecDeque<(u32, XsReply)>,
    /// Request messages not (wholly) in the ring yet, oldest first; the
    /// first has `head_sent` bytes in the ring already.
    out: VecDeque<Outgoing>,
    head_sent: usize,
    asm: Assembler,
    events: VecDeque<WatchEvent>,
    private: VecDeque<WatchEvent>,
    /// The watches set and not unset, (path, token), to re-send after a
    /// resync. Added at submit (so a resync before the reply keeps it).
    watches: Vec<(String, String)>,
    link: Link,
    /// The last pump stopped at [`MAX_MESSAGES_PER_PUMP`].
    backlog: bool,
    stats: XsStats,
    last_error: Option<XsFailure>,
}

impl<T: XsTransport> XsClient<T> {
    pub fn new(t: T) -> Self {
        Self {
            t,
            last_id: 0,
            outstanding: BTreeMap::new(),
            replies: VecDeque::new(),
            out: VecDeque::new(),
            head_sent: 0,
            asm: Assembler::default(),
            events: VecDeque::new(),
            private: VecDeque::new(),
            watches: Vec::new(),
            link: Link::Up,
            backlog: false,
            stats: XsStats::default(),
            last_error: None,
        }
    }

    /// The last request xenstored failed with an error other than
    /// `ENOENT` (counted in [`XsStats::errors`]).
    pub fn last_error(&self) -> Option<&XsFailure> {
        self.last_error.as_ref()
    }

    pub fn stats(&self) -> XsStats {
        let queued: usize = self.out.iter().map(|m| m.bytes.len()).sum();
        XsStats {
            in_flight: self.outstanding.len() as u64,
            queued_bytes: (queued - self.head_sent) as u64,
            ..self.stats
        }
    }

    pub fn transport(&self) -> &T {
        &self.t
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.t
    }

    /// True while a reconnection we asked xenstored for is under way.
    pub fn is_reconnecting(&self) -> bool {
        self.link == Link::Reconnecting
    }

    /// True if the last [`Self::pump`] left messages for the next one: the
    /// caller should pump again soon rather than sleep until an event
    /// (xenstored will not kick again for data it already announced).
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// The oldest queued event of a private watch.
    pub fn poll_private_watch(&mut self) -> Option<WatchEvent> {
        if self.private.is_empty() {
            self.pump_now();
        }
        self.private.pop_front()
    }

    /// One round of work that never waits: pushes queued request bytes,
    /// files up to [`MAX_MESSAGES_PER_PUMP`] replies and events, and fails
    /// with `Io` every request older than [`REQUEST_TIMEOUT_NS`] at
    /// `now_ns` (same clock as [`XsTransport::now_ns`]).
    pub fn pump(&mut self, now_ns: u64) {
        if self.link == Link::Reconnecting {
            if self.t.page().load_u32(xs_ring::CONNECTION) != xs_ring::CONNECTED {
                self.expire(now_ns);
                return;
            }
            // xenstored emptied both queues; our state was reset when we
            // asked, and only requests submitted since are queued.
            self.link = Link::Up;
            self.asm.clear();
        } else if self.reconnection_offered()
            && self.t.page().load_u32(xs_ring::CONNECTION) != xs_ring::CONNECTED
        {
            // Someone else (the toolstack, xenstore-ring.txt) started a
            // reset: the ring is not ours until it completes.
            self.resync(now_ns, false);
            self.expire(now_ns);
            return;
        }
        if self.flush().is_err() || self.receive().is_err() {
            self.resync_and_flush(now_ns);
        }
        self.expire(now_ns);
    }

    /// Submits `op` and waits for its reply, up to [`REQUEST_TIMEOUT_NS`],
    /// calling [`XsTransport::idle`] between pumps.
    ///
    /// For boot only (reading `domid` and the configuration before the
    /// main loop runs): it blocks, so it must never be called from the main
    /// loop, which has to keep running whatever xenstored does.
    pub fn request_blocking(&mut self, op: XsOp<'_>) -> XsReply {
        let id = self.submit(op)?;
        loop {
            self.pump_now();
            if let Some(reply) = self.take_stored(id.0) {
                return reply;
            }
            if !self.outstanding.contains_key(&id.0) {
                // Answered, then evicted by other replies nobody took.
                return Err(XenError::Io);
            }
            self.t.idle();
        }
    }

    fn pump_now(&mut self) {
        let now = self.t.now_ns();
        self.pump(now);
    }

    fn reconnection_offered(&self) -> bool {
        self.t.page().load_u32(xs_ring::SERVER_FEATURES) & xs_ring::FEATURE_RECONNECTION != 0
    }

    /// An id in use neither by an outstanding request nor a stored reply.
    fn fresh_id(&mut self) -> u32 {
        loop {
            self.last_id = self.last_id.wrapping_add(1);
            let id = self.last_id;
            if !self.outstanding.contains_key(&id) && !self.replies.iter().any(|(r, _)| *r == id) {
                return id;
            }
        }
    }

    fn enqueue(&mut self, id: u32, bytes: Vec<u8>, now_ns: u64, forgotten: bool) {
        let ty = bytes
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let payload = bytes.get(xs_wire::HEADER_LEN..).unwrap_or(&[]);
        let first = payload.split(|b| *b == 0).next().unwrap_or(&[]);
        let first = &first[..first.len().min(FAILURE_PATH_MAX)];
        self.outstanding.insert(
            id,
            Pending {
                submitted_ns: now_ns,
                forgotten,
                ty,
                path: String::from_utf8_lossy(first).into_owned(),
            },
        );
        self.out.push_back(Outgoing { id, bytes });
        self.stats.requests += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.outstanding.len() as u64);
    }

    /// Pushes queued request bytes into the ring as far as they fit.
    fn flush(&mut self) -> Result<(), Corrupt> {
        if self.link != Link::Up {
            return Ok(());
        }
        let mut moved = false;
        while let Some(head) = self.out.front() {
            let n = REQ.produce(self.t.page(), &head.bytes[self.head_sent..])?;
            if n == 0 {
                break;
            }
            moved = true;
            self.head_sent += n;
            if self.head_sent == head.bytes.len() {
                self.out.pop_front();
                self.head_sent = 0;
            }
        }
        if moved {
            self.t.notify();
        }
        Ok(())
    }

    /// Reads the response ring and files what came, within the budget.
    fn receive(&mut self) -> Result<(), Corrupt> {
        let mut budget = MAX_MESSAGES_PER_PUMP;
        let mut buf = [0u8; xs_ring::SIZE as usize];
        let result = 'read: loop {
            let room = READ_AHEAD.saturating_sub(self.asm.buffered());
            let want = room.min(buf.len());
            match RSP.consume(self.t.page(), &mut buf[..want]) {
                Ok(0) => {}
                Ok(n) => {
                    self.asm.feed(&buf[..n]);
                    // Room freed: xenstored may be waiting to write more,
                    // and can do so while we parse.
                    self.t.notify();
                }
                Err(c) => break 'read Err(c),
            }
            let mut filed = 0;
            while filed < budget {
                match self.asm.next_message() {
                    Ok(Some((h, payload))) => {
                        self.file(h, payload);
                        filed += 1;
                    }
                    Ok(None) => break,
                    Err(xs_wire::BadMessage) => break 'read Err(Corrupt),
                }
            }
            budget -= filed;
            // Stop when the budget is spent or nothing more came: filing
            // freed assembler room, so a productive turn reads again.
            if budget == 0 || filed == 0 {
                break Ok(());
            }
        };
        self.backlog = result.is_ok() && budget == 0;
        result
    }

    fn file(&mut self, h: Header, payload: Vec<u8>) {
        if h.ty == ty::WATCH_EVENT {
            if let Some(ev) = xs_wire::parse_watch_event(&payload) {
                self.stats.watch_events += 1;
                self.queue_event(ev);
            }
            return;
        }
        let Some(pending) = self.outstanding.remove(&h.req_id) else {
            self.stats.unknown_replies += 1;
            return;
        };
        let reply = if h.ty == ty::ERROR {
            let e = xs_wire::parse_error(&payload);
            if e == XenError::NoEnt {
                self.stats.noent += 1;
            } else {
                self.stats.errors += 1;
                self.last_error = Some(XsFailure {
                    error: e,
                    ty: pending.ty,
                    path: pending.path.clone(),
                });
            }
            Err(e)
        } else {
            Ok(payload)
        };
        if !pending.forgotten {
            self.store_reply(h.req_id, reply);
        }
    }

    fn queue_event(&mut self, ev: WatchEvent) {
        if ev.token.starts_with(PRIVATE_TOKEN_PREFIX) {
            self.private.push_back(ev);
        } else {
            self.events.push_back(ev);
        }
    }

    fn store_reply(&mut self, id: u32, reply: XsReply) {
        if self.replies.len() >= MAX_STORED_REPLIES {
            self.replies.pop_front();
            self.stats.evicted += 1;
        }
        self.replies.push_back((id, reply));
    }

    fn take_stored(&mut self, id: u32) -> Option<XsReply> {
        let at = self.replies.iter().position(|(r, _)| *r == id)?;
        self.replies.remove(at).map(|(_, reply)| reply)
    }

    /// Fails every request submitted more than [`REQUEST_TIMEOUT_NS`]
    /// before `now_ns`, and drops its bytes if none went out yet.
    fn expire(&mut self, now_ns: u64) {
        let late: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, p)| now_ns.saturating_sub(p.submitted_ns) > REQUEST_TIMEOUT_NS)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.stats.timeouts += 1;
            self.fail(id);
            self.unqueue(id);
        }
    }

    /// Completes outstanding request `id` with `Io`.
    fn fail(&mut self, id: u32) {
        if let Some(p) = self.outstanding.remove(&id) {
            if !p.forgotten {
                self.store_reply(id, Err(XenError::Io));
            }
        }
    }

    /// Drops request `id`'s queued bytes, unless some are in the ring
    /// already (the rest must follow, or xenstored's framing breaks).
    fn unqueue(&mut self, id: u32) {
        let partly_sent = self.head_sent > 0;
        let mut first = true;
        self.out.retain(|m| {
            let keep = m.id != id || (first && partly_sent);
            first = false;
            keep
        });
    }

    /// Recovers from a corrupt ring or stream (module docs). `ask` says
    /// whether we start the reconnection ourselves (false: someone else
    /// set `XENSTORE_RECONNECT` already).
    fn resync(&mut self, now_ns: u64, ask: bool) {
        self.stats.resyncs += 1;
        let ids: Vec<u32> = self.outstanding.keys().copied().collect();
        for id in ids {
            self.fail(id);
        }
        self.asm.clear();
        self.backlog = false;
        let reconnect = !ask || self.reconnection_offered();
        if reconnect {
            // xenstored drops partial messages: nothing needs finishing.
            self.out.clear();
            self.head_sent = 0;
            if ask {
                self.t
                    .page()
                    .store_u32(xs_ring::CONNECTION, xs_ring::RECONNECT);
                self.t.notify();
            }
            self.link = Link::Reconnecting;
        } else {
            let page = self.t.page();
            page.store_u32(xs_ring::RSP_CONS, page.load_u32(xs_ring::RSP_PROD));
            if REQ.available(page).is_err() {
                // We own req_prod; where xenstored stands in the stream is
                // unknown anyway, so a partly sent request is dropped too.
                page.store_u32(xs_ring::REQ_PROD, page.load_u32(xs_ring::REQ_CONS));
                self.head_sent = 0;
            }
            if self.head_sent > 0 {
                self.out.truncate(1);
            } else {
                self.out.clear();
            }
            self.t.notify(); // room freed in the response ring
        }
        for (path, token) in self.watches.clone() {
            let id = self.fresh_id();
            let op = XsOp::Watch {
                path: &path,
                token: &token,
            };
            // Encoded once already, at submit: cannot fail now.
            if let Ok(bytes) = xs_wire::encode(&op, id) {
                self.enqueue(id, bytes, now_ns, true);
            }
            if !reconnect {
                self.queue_event(WatchEvent { path, token });
            }
        }
    }

    /// [`Self::resync`], then sends the re-watches at once if the link is
    /// up. A ring still corrupt resyncs again at the next pump.
    fn resync_and_flush(&mut self, now_ns: u64) {
        self.resync(now_ns, true);
        let _ = self.flush();
    }
}

impl<T: XsTransport> XenStore for XsClient<T> {
    fn submit(&mut self, op: XsOp<'_>) -> Result<RequestId, XenError> {
        if self.outstanding.len() >= MAX_IN_FLIGHT {
            return Err(XenError::Busy);
        }
        let id = self.fresh_id();
        let bytes = xs_wire::encode(&op, id)?;
        match op {
            XsOp::Watch { path, token }
                if !self.watches.iter().any(|(p, t)| p == path && t == token) =>
            {
                self.watches.push((path.into(), token.into()));
            }
            XsOp::Unwatch { path, token } => {
                self.watches.retain(|(p, t)| p != path || t != token);
            }
            _ => {}
        }
        let now = self.t.now_ns();
        self.enqueue(id, bytes, now, false);
        if self.flush().is_err() {
            self.resync_and_flush(now);
        }
        Ok(RequestId(id))
    }

    fn take_reply(&mut self, id: RequestId) -> Option<XsReply> {
        if let Some(reply) = self.take_stored(id.0) {
            return Some(reply);
        }
        if !self.outstanding.contains_key(&id.0) {
            return None;
        }
        self.pump_now();
        self.take_stored(id.0)
    }

    fn forget(&mut self, id: RequestId) {
        if let Some(p) = self.outstanding.get_mut(&id.0) {
            p.forgotten = true;
        } else if let Some(at) = self.replies.iter().position(|(r, _)| *r == id.0) {
            self.replies.remove(at);
        }
    }

    fn poll_watch(&mut self) -> Option<WatchEvent> {
        if self.events.is_empty() {
            self.pump_now();
        }
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
