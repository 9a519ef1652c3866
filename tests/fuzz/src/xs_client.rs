//! The xenstore client against a hostile xenstored: the input plays
//! xenstored (reading requests, answering them right or wrong, sending
//! watch events, junk and partial messages, setting any ring index and the
//! reconnection fields) and the callers (submitting, taking and
//! forgetting replies, polling watches) while the clock runs.
//!
//! Whatever xenstored does, the client must not panic, must keep at most
//! `MAX_IN_FLIGHT` requests, must hand a reply only to a request that was
//! submitted and only once, must keep the kernel's private watch events
//! apart from netback's, and must not leave any request waiting forever:
//! once the timeout has passed, only the re-sent watches may be in flight.
use std::collections::{BTreeSet, VecDeque};

use hypervisor::{RequestId, SharedPage, XenError, XenStore};
use xen::abi::xs_ring;
use xen::xenstore::{MAX_IN_FLIGHT, REQ, RSP};
use xen::xs_wire::{ty, Header, HEADER_LEN};
use xen::{XsClient, XsTransport, PRIVATE_TOKEN_PREFIX, REQUEST_TIMEOUT_NS};

use crate::bytes::Bytes;
use crate::page::RingPage;

struct Transport {
    page: RingPage,
    now: u64,
}

impl XsTransport for Transport {
    type Page = RingPage;
    fn page(&self) -> &RingPage {
        &self.page
    }
    fn notify(&mut self) {}
    fn now_ns(&mut self) -> u64 {
        self.now
    }
}

/// The paths and tokens callers use; the input picks one or brings its own.
const PATHS: &[&str] = &[
    "domid",
    "/local/domain/7/aggdom/config",
    "backend/vif",
    "backend/vif/3/0/state",
    "/local/domain/3/device/vif/0/tx-ring-ref",
];
const TOKENS: &[&str] = &["aggdom/config", "netback", "vif/3/0", "aggdom/x"];

fn pick(input: &mut Bytes, table: &[&str]) -> String {
    let i = usize::from(input.u8());
    match table.get(i) {
        Some(s) => (*s).into(),
        None => String::from_utf8_lossy(input.short()).into_owned(),
    }
}

/// xenstored as the input plays it.
#[derive(Default)]
struct Server {
    inbox: Vec<u8>,
    /// Requests read whole, (type, id), oldest first.
    requests: VecDeque<(u32, u32)>,
    outbox: VecDeque<u8>,
}

impl Server {
    fn message(&mut self, ty: u32, req_id: u32, payload: &[u8]) {
        let h = Header {
            ty,
            req_id,
            tx_id: 0,
            len: payload.len() as u32,
        };
        self.outbox.extend(h.to_bytes());
        self.outbox.extend(payload);
    }

    /// Frames what was read: a header it cannot use ends the framing
    /// until the next reset (a real xenstored would drop the connection).
    fn frame(&mut self) {
        while let Some(head) = self.inbox.first_chunk::<HEADER_LEN>() {
            let h = Header::parse(head);
            let end = HEADER_LEN + h.len as usize;
            if self.inbox.len() < end {
                break;
            }
            self.requests.push_back((h.ty, h.req_id));
            self.inbox.drain(..end);
        }
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    let page = RingPage::new();
    let features = if input.bool() {
        xs_ring::FEATURE_RECONNECTION
    } else {
        0
    };
    page.store_u32(xs_ring::SERVER_FEATURES, features);
    let mut c = XsClient::new(Transport { page, now: 1_000 });
    let mut server = Server::default();
    // Every id submit returned, and the ids whose reply was taken.
    let mut submitted: Vec<u32> = Vec::new();
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    // The watches the client holds (what it re-sends after a resync).
    let mut watches: BTreeSet<(String, String)> = BTreeSet::new();
    let mut steps = 0;
    while !input.is_empty() && steps < 2_000 {
        steps += 1;
        let page = c.transport().page();
        let op = input.u8() % 13;
        match op {
            0 => {
                let kind = input.u8() % 7;
                let path = pick(&mut input, PATHS);
                let other = pick(&mut input, TOKENS);
                let op = crate::xs_wire::op(kind, &path, &other);
                let in_flight = c.stats().in_flight as usize;
                match c.submit(op) {
                    Ok(RequestId(id)) => {
                        assert!(!submitted.contains(&id), "id {id} handed out twice");
                        submitted.push(id);
                        match kind {
                            5 => {
                                watches.insert((path.clone(), other.clone()));
                            }
                            6 => {
                                watches.remove(&(path.clone(), other.clone()));
                            }
                            _ => {}
                        }
                    }
                    Err(XenError::Busy) => assert!(in_flight >= MAX_IN_FLIGHT),
                    Err(XenError::Inval | XenError::TooBig) => {}
                    Err(e) => panic!("submit failed with {e:?}"),
                }
            }
            // xenstored reads up to n request bytes.
            1 => {
                let mut buf = vec![0u8; usize::from(input.u16() % 1100)];
                if let Ok(n) = REQ.consume(page, &mut buf) {
                    server.inbox.extend_from_slice(&buf[..n]);
                    server.frame();
                }
            }
            // It answers the oldest request: as asked, with an error, or
            // with a type or id of the input's choosing.
            2 => {
                let Some((t, id)) = server.requests.pop_front() else {
                    continue;
                };
                match input.u8() % 4 {
                    0 => server.message(t, id, input.short()),
                    1 => {
                        let name = pick(&mut input, &["ENOENT", "EAGAIN", "EEXIST", "EACCES"]);
                        let mut p = name.into_bytes();
                        p.push(0);
                        server.message(ty::ERROR, id, &p);
                    }
                    2 => {
                        let (t, id) = (input.u32(), input.u32());
                        server.message(t, id, input.short());
                    }
                    _ => server.message(t, input.u32(), input.short()),
                }
            }
            // A watch event, well formed or not.
            3 => {
                let path = pick(&mut input, PATHS);
                let token = pick(&mut input, TOKENS);
                let mut p = path.into_bytes();
                p.push(0);
                p.extend_from_slice(token.as_bytes());
                if input.bool() {
                    p.push(0);
                }
                server.message(ty::WATCH_EVENT, 0, &p);
            }
            // Junk, or a header that lies about its length.
            4 => {
                let junk = input.short();
                server.outbox.extend(junk);
            }
            5 => {
                let h = Header {
                    ty: u32::from(input.u8() % 17),
                    req_id: input.u32(),
                    tx_id: u32::from(input.u8() % 2),
                    len: u32::from(input.u16()),
                };
                server.outbox.extend(h.to_bytes());
            }
            // It writes up to n bytes of what it has into the response ring.
            6 => {
                let n = usize::from(input.u16() % 1100).min(server.outbox.len());
                let out: Vec<u8> = server.outbox.iter().take(n).copied().collect();
                if let Ok(sent) = RSP.produce(page, &out) {
                    server.outbox.drain(..sent);
                }
            }
            // Any value in any shared field.
            7 => {
                let at = [
                    xs_ring::REQ_CONS,
                    xs_ring::REQ_PROD,
                    xs_ring::RSP_CONS,
                    xs_ring::RSP_PROD,
                    xs_ring::SERVER_FEATURES,
                    xs_ring::CONNECTION,
                ][usize::from(input.u8() % 6)];
                let v = match input.u8() % 4 {
                    0 => 0,
                    1 => 1,
                    2 => page.load_u32(at).wrapping_add(u32::from(input.u16())),
                    _ => input.u32(),
                };
                page.store_u32(at, v);
            }
            // An honest reconnection (xenstore-ring.txt), if one is asked.
            8 => {
                let offered =
                    page.load_u32(xs_ring::SERVER_FEATURES) & xs_ring::FEATURE_RECONNECTION != 0;
                if offered && page.load_u32(xs_ring::CONNECTION) == xs_ring::RECONNECT {
                    server.reset();
                    for at in [
                        xs_ring::REQ_CONS,
                        xs_ring::REQ_PROD,
                        xs_ring::RSP_CONS,
                        xs_ring::RSP_PROD,
                    ] {
                        page.store_u32(at, 0);
                    }
                    page.store_u32(xs_ring::CONNECTION, xs_ring::CONNECTED);
                }
            }
            9 => {
                let ns = u64::from(input.u32()) * 8;
                let now = c.transport().now + ns;
                c.transport_mut().now = now;
                c.pump(now);
            }
            // A caller takes a reply: to a request it submitted, or (past
            // the list) to an id it never got, which must have none.
            10 => {
                let i = usize::from(input.u16());
                let id = submitted.get(i).copied().unwrap_or_else(|| input.u32());
                let reply = c.take_reply(RequestId(id));
                if !submitted.contains(&id) {
                    assert_eq!(reply, None, "a reply to {id}, never submitted");
                } else if reply.is_some() {
                    assert!(taken.insert(id), "reply to {id} handed out twice");
                }
            }
            11 => {
                if let Some(&id) = submitted.get(usize::from(input.u16())) {
                    c.forget(RequestId(id));
                }
            }
            _ => {
                if input.bool() {
                    if let Some(ev) = c.poll_watch() {
                        assert!(!ev.token.starts_with(PRIVATE_TOKEN_PREFIX), "{ev:?}");
                    }
                } else if let Some(ev) = c.poll_private_watch() {
                    assert!(ev.token.starts_with(PRIVATE_TOKEN_PREFIX), "{ev:?}");
                }
            }
        }
        // xenstored's moves (1 to 8) touch the page and the server, not
        // the client, whose stats are then what they were.
        if !(1..=8).contains(&op) {
            let s = c.stats();
            assert!(s.in_flight as usize <= MAX_IN_FLIGHT, "{s:?}");
            assert!(s.in_flight <= s.max_in_flight, "{s:?}");
        }
    }
    // Nothing waits forever: once the timeout has passed, only watches
    // re-sent by that very pump (a resync) can be outstanding.
    let now = c.transport().now + REQUEST_TIMEOUT_NS + 1;
    c.transport_mut().now = now;
    c.pump(now);
    let s = c.stats();
    assert!(
        s.in_flight as usize <= watches.len(),
        "{} requests outlived the timeout ({} watches held): {s:?}",
        s.in_flight,
        watches.len()
    );
}
