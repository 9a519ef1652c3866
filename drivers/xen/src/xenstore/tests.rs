//! The client against a small fake xenstored on the other end of a real
//! ring layout: framing, partial reads, pipelining, timeouts, watches,
//! errors and resynchronisation after corruption.
use super::*;
use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use hypervisor::FakePage;

use crate::xs_wire::{Header, HEADER_LEN};

#[derive(Default)]
struct Server {
    store: BTreeMap<String, Vec<u8>>,
    watches: Vec<(String, String)>,
    inbox: Vec<u8>,
    outbox: VecDeque<u8>,
    /// Bytes of reply written per turn: small to split messages.
    chunk: usize,
    notifies: u64,
    /// Reads nothing and answers nothing.
    mute: bool,
    /// Replies are held back until `release_reversed`.
    hold: bool,
    held: Vec<Vec<u8>>,
    /// `notify` runs a turn at once, as a xenstored on another CPU would.
    eager: bool,
    /// `XS_WATCH` requests seen.
    watch_requests: u32,
    /// Ring resets done for a client's `XENSTORE_RECONNECT`.
    reconnects: u32,
}

impl Server {
    fn fire(&mut self, path: &str) {
        let evs: Vec<String> = self
            .watches
            .iter()
            .filter(|(w, _)| path == w || path.starts_with(&format!("{w}/")))
            .map(|(_, tok)| tok.clone())
            .collect();
        for tok in evs {
            self.event(path, &tok);
        }
    }

    fn event(&mut self, path: &str, tok: &str) {
        let msg = xs_wire::request(
            ty::WATCH_EVENT,
            0,
            0,
            &[path.as_bytes(), b"\0", tok.as_bytes(), b"\0"],
        )
        .unwrap();
        self.outbox.extend(msg);
    }

    fn reply(&mut self, t: u32, req_id: u32, parts: &[&[u8]]) {
        let msg = xs_wire::request(t, req_id, 0, parts).unwrap();
        if self.hold {
            self.held.push(msg);
        } else {
            self.outbox.extend(msg);
        }
    }

    fn release_reversed(&mut self) {
        self.hold = false;
        while let Some(msg) = self.held.pop() {
            self.outbox.extend(msg);
        }
    }

    fn handle(&mut self, h: Header, p: &[u8]) {
        let mut args = p.split(|b| *b == 0);
        let first = String::from_utf8(args.next().unwrap_or(&[]).to_vec()).unwrap();
        let ok = |s: &mut Self| s.reply(h.ty, h.req_id, &[b"OK\0"]);
        let err = |s: &mut Self, e: &str| s.reply(ty::ERROR, h.req_id, &[e.as_bytes(), b"\0"]);
        match h.ty {
            ty::READ => match self.store.get(&first).cloned() {
                Some(v) => self.reply(h.ty, h.req_id, &[&v]),
                None => err(self, "ENOENT"),
            },
            ty::WRITE => {
                let value = &p[first.len() + 1..];
                self.store.insert(first.clone(), value.to_vec());
                ok(self);
                self.fire(&first);
            }
            ty::MKDIR => {
                self.store.entry(first).or_default();
                ok(self);
            }
            ty::RM => {
                let pre = format!("{first}/");
                self.store
                    .retain(|k, _| *k != first && !k.starts_with(&pre));
                ok(self);
                self.fire(&first);
            }
            ty::DIRECTORY => {
                let pre = format!("{first}/");
                let mut out = Vec::new();
                for k in self.store.keys().filter(|k| k.starts_with(&pre)) {
                    let name = k[pre.len()..].split('/').next().unwrap();
                    let mut n = name.as_bytes().to_vec();
                    n.push(0);
                    if !out.windows(n.len()).any(|w| w == n.as_slice()) {
                        out.extend(n);
                    }
                }
                self.reply(h.ty, h.req_id, &[&out]);
            }
            ty::WATCH => {
                self.watch_requests += 1;
                let tok = String::from_utf8(args.next().unwrap().to_vec()).unwrap();
                let w = (first.clone(), tok.clone());
                if self.watches.contains(&w) {
                    // As xenstored: the same path and token twice.
                    err(self, "EEXIST");
                } else {
                    self.watches.push(w);
                    ok(self);
                    self.event(&first, &tok);
                }
            }
            ty::UNWATCH => {
                let tok = String::from_utf8(args.next().unwrap().to_vec()).unwrap();
                self.watches.retain(|w| *w != (first.clone(), tok.clone()));
                ok(self);
            }
            _ => err(self, "EINVAL"),
        }
    }

    /// One turn of xenstored: honour a reconnection, take requests, write
    /// (part of) the replies. A corrupt ring is left alone.
    fn step(&mut self, page: &FakePage) {
        let offered = page.load_u32(xs_ring::SERVER_FEATURES) & xs_ring::FEATURE_RECONNECTION != 0;
        if offered && page.load_u32(xs_ring::CONNECTION) == xs_ring::RECONNECT {
            // xenstore-ring.txt: empty both queues, drop requests and
            // watches, then say connected.
            self.inbox.clear();
            self.outbox.clear();
            self.held.clear();
            self.watches.clear();
            for at in [
                xs_ring::REQ_CONS,
                xs_ring::REQ_PROD,
                xs_ring::RSP_CONS,
                xs_ring::RSP_PROD,
            ] {
                page.store_u32(at, 0);
            }
            page.store_u32(xs_ring::CONNECTION, xs_ring::CONNECTED);
            self.reconnects += 1;
            return;
        }
        if self.mute {
            return;
        }
        let mut buf = [0u8; 1024];
        let Ok(n) = REQ.consume(page, &mut buf) else {
            return;
        };
        self.inbox.extend_from_slice(&buf[..n]);
        while self.inbox.len() >= HEADER_LEN {
            let h = Header::parse(self.inbox.first_chunk().unwrap());
            let end = HEADER_LEN + h.len as usize;
            if self.inbox.len() < end {
                break;
            }
            let p: Vec<u8> = self.inbox[HEADER_LEN..end].to_vec();
            self.inbox.drain(..end);
            self.handle(h, &p);
        }
        let take = self.chunk.max(1).min(self.outbox.len());
        let out: Vec<u8> = self.outbox.iter().take(take).copied().collect();
        if let Ok(sent) = RSP.produce(page, &out) {
            self.outbox.drain(..sent);
        }
    }
}

struct Fake {
    page: Rc<FakePage>,
    server: Rc<RefCell<Server>>,
    clock: Rc<Cell<u64>>,
    idles: u64,
}

impl XsTransport for Fake {
    type Page = FakePage;
    fn page(&self) -> &FakePage {
        &self.page
    }
    fn notify(&mut self) {
        let mut s = self.server.borrow_mut();
        s.notifies += 1;
        if s.eager {
            s.step(&self.page);
        }
    }
    fn now_ns(&mut self) -> u64 {
        self.clock.get()
    }
    fn idle(&mut self) {
        self.idles += 1;
        self.clock.set(self.clock.get() + 1_000_000);
        self.server.borrow_mut().step(&self.page);
    }
}

/// A client, its xenstored and the clock they share.
struct Rig {
    c: XsClient<Fake>,
    server: Rc<RefCell<Server>>,
    page: Rc<FakePage>,
    clock: Rc<Cell<u64>>,
}

impl Rig {
    fn new(chunk: usize) -> Self {
        Self::with_features(chunk, 0)
    }

    fn with_features(chunk: usize, features: u32) -> Self {
        let page = Rc::new(FakePage::new());
        page.store_u32(xs_ring::SERVER_FEATURES, features);
        let server = Rc::new(RefCell::new(Server {
            chunk,
            ..Server::default()
        }));
        let clock = Rc::new(Cell::new(1_000));
        let c = XsClient::new(Fake {
            page: page.clone(),
            server: server.clone(),
            clock: clock.clone(),
            idles: 0,
        });
        Self {
            c,
            server,
            page,
            clock,
        }
    }

    /// One turn of xenstored, then one pump.
    fn turn(&mut self) {
        self.server.borrow_mut().step(&self.page);
        self.c.pump(self.clock.get());
    }

    fn turns(&mut self, n: usize) {
        for _ in 0..n {
            self.turn();
        }
    }

    /// Submits `op` and turns until its reply is there.
    fn call(&mut self, op: XsOp<'_>) -> XsReply {
        let id = self.c.submit(op).unwrap();
        for _ in 0..10_000 {
            if let Some(r) = self.c.take_reply(id) {
                return r;
            }
            self.turn();
        }
        panic!("no reply to {op:?}");
    }

    fn advance(&mut self, ns: u64) {
        self.clock.set(self.clock.get() + ns);
    }

    fn events(&mut self) -> Vec<(String, String)> {
        core::iter::from_fn(|| self.c.poll_watch())
            .map(|e| (e.path, e.token))
            .collect()
    }
}

fn ev(path: &str, token: &str) -> (String, String) {
    (path.into(), token.into())
}

#[test]
fn read_write_directory_rm() {
    for chunk in [1, 7, 4096] {
        let mut r = Rig::new(chunk);
        assert_eq!(r.call(XsOp::Read("/a/b")), Err(XenError::NoEnt));
        r.call(XsOp::Write("/a/b", b"hello")).unwrap();
        r.call(XsOp::Write("/a/c/d", b"x")).unwrap();
        assert_eq!(r.call(XsOp::Read("/a/b")).unwrap(), b"hello");
        let dir = r.call(XsOp::Directory("/a")).unwrap();
        assert_eq!(hypervisor::parse_directory(&dir), ["b", "c"]);
        r.call(XsOp::Rm("/a/c")).unwrap();
        let dir = r.call(XsOp::Directory("/a")).unwrap();
        assert_eq!(hypervisor::parse_directory(&dir), ["b"]);
        r.call(XsOp::Mkdir("/m")).unwrap();
        assert_eq!(r.call(XsOp::Read("/m")).unwrap(), b"");
        assert!(r.server.borrow().notifies > 0);
        let watch = XsOp::Watch {
            path: "/w",
            token: "t",
        };
        r.call(watch).unwrap();
        assert_eq!(r.call(watch), Err(XenError::Exist));
        let s = r.c.stats();
        // The missing /a/b is counted apart from the failed watch: an
        // absent optional key is no error.
        assert_eq!((s.requests, s.errors, s.noent, s.in_flight), (11, 1, 1, 0));
        // ... and the console can say which request that error was.
        let last = r.c.last_error().expect("the failed watch is remembered");
        assert_eq!(
            (last.error, last.ty, last.path.as_str()),
            (XenError::Exist, ty::WATCH, "/w")
        );
        assert_eq!(r.c.transport().idles, 0, "something waited");
    }
}

#[test]
fn unencodable_requests_are_refused_at_once() {
    let mut r = Rig::new(64);
    let big = [b'v'; PAYLOAD_MAX];
    assert_eq!(r.c.submit(XsOp::Write("/k", &big)), Err(XenError::TooBig));
    assert_eq!(r.c.submit(XsOp::Read("")), Err(XenError::Inval));
    assert_eq!(r.c.stats().requests, 0);
}

#[test]
fn requests_are_pipelined_and_matched_by_id_out_of_order() {
    let mut r = Rig::new(4096);
    r.server.borrow_mut().hold = true;
    let w1 = r.c.submit(XsOp::Write("/a", b"1")).unwrap();
    let w2 = r.c.submit(XsOp::Write("/b", b"2")).unwrap();
    let ra = r.c.submit(XsOp::Read("/a")).unwrap();
    let rb = r.c.submit(XsOp::Read("/b")).unwrap();
    let rn = r.c.submit(XsOp::Read("/none")).unwrap();
    assert_eq!(r.c.stats().in_flight, 5);
    assert_eq!(r.c.take_reply(ra), None);
    r.turn(); // xenstored reads all five; the replies are held
    assert_eq!(r.server.borrow().held.len(), 5);
    r.server.borrow_mut().release_reversed();
    r.turns(3);
    assert_eq!(r.c.take_reply(rn), Some(Err(XenError::NoEnt)));
    assert_eq!(r.c.take_reply(rb), Some(Ok(b"2".to_vec())));
    assert_eq!(r.c.take_reply(ra), Some(Ok(b"1".to_vec())));
    assert_eq!(r.c.take_reply(w2), Some(Ok(b"OK\0".to_vec())));
    assert_eq!(r.c.take_reply(w1), Some(Ok(b"OK\0".to_vec())));
    assert_eq!(r.c.take_reply(w1), None, "a reply is handed out once");
    let s = r.c.stats();
    assert_eq!((s.in_flight, s.max_in_flight, s.unknown_replies), (0, 5, 0));
}

#[test]
fn nothing_blocks_when_the_server_is_mute() {
    let mut r = Rig::new(64);
    r.server.borrow_mut().mute = true;
    let big = [b'x'; 3000];
    let ids: Vec<RequestId> = (0..3)
        .map(|_| r.c.submit(XsOp::Write("/big", &big)).unwrap())
        .collect();
    let quiet = r.c.submit(XsOp::Read("/q")).unwrap();
    r.c.forget(quiet);
    // The ring took 1024 bytes; the rest waits in the queue.
    let queued = r.c.stats().queued_bytes;
    assert!(queued > 6000, "{queued}");
    r.turns(5);
    r.advance(REQUEST_TIMEOUT_NS - 2_000);
    r.turns(5);
    assert!(ids.iter().all(|id| r.c.take_reply(*id).is_none()));
    assert_eq!(r.c.stats().timeouts, 0);
    r.advance(10_000);
    r.turn();
    for id in &ids {
        assert_eq!(r.c.take_reply(*id), Some(Err(XenError::Io)));
    }
    assert_eq!(r.c.take_reply(quiet), None, "forgotten");
    let s = r.c.stats();
    assert_eq!((s.timeouts, s.in_flight), (4, 0));
    // The unsent requests' bytes are dropped; only the rest of the one
    // partly in the ring must still go (xenstored's framing needs it).
    assert!(s.queued_bytes < 3016, "{}", s.queued_bytes);
    // The bound on unanswered requests.
    for _ in 0..MAX_IN_FLIGHT {
        r.c.send_forget(XsOp::Read("/q")).unwrap();
    }
    assert_eq!(r.c.submit(XsOp::Read("/q")), Err(XenError::Busy));
    assert_eq!(r.c.transport().idles, 0, "something waited");
}

#[test]
fn the_boot_helper_waits_but_not_forever() {
    let mut r = Rig::new(64);
    r.server
        .borrow_mut()
        .store
        .insert("domid".into(), b"7".to_vec());
    assert_eq!(r.c.request_blocking(XsOp::Read("domid")), Ok(b"7".to_vec()));
    r.server.borrow_mut().mute = true;
    let start = r.clock.get();
    assert_eq!(r.c.request_blocking(XsOp::Read("domid")), Err(XenError::Io));
    assert!(r.clock.get() - start > REQUEST_TIMEOUT_NS);
    assert_eq!(r.c.stats().timeouts, 1);
}

#[test]
fn forgotten_replies_are_dropped() {
    let mut r = Rig::new(64);
    let before = r.c.submit(XsOp::Write("/k", b"v")).unwrap();
    r.c.forget(before);
    let after = r.c.submit(XsOp::Read("/k")).unwrap();
    r.turns(10);
    r.c.forget(after); // already stored: dropped now
    r.c.send_forget(XsOp::Read("/k")).unwrap();
    r.turns(10);
    assert_eq!(r.c.take_reply(before), None);
    assert_eq!(r.c.take_reply(after), None);
    assert!(r.c.replies.is_empty());
    let s = r.c.stats();
    assert_eq!((s.in_flight, s.unknown_replies, s.evicted), (0, 0, 0));
}

#[test]
fn replies_nobody_takes_are_evicted_oldest_first() {
    let mut r = Rig::new(4096);
    let mut ids = Vec::new();
    for _ in 0..3 {
        for _ in 0..100 {
            ids.push(r.c.submit(XsOp::Read("/none")).unwrap());
        }
        r.turns(50);
    }
    let s = r.c.stats();
    assert_eq!(
        (s.in_flight, s.evicted),
        (0, 300 - MAX_STORED_REPLIES as u64)
    );
    assert_eq!(r.c.take_reply(ids[0]), None);
    assert_eq!(r.c.take_reply(ids[299]), Some(Err(XenError::NoEnt)));
}

#[test]
fn replies_to_unknown_ids_are_counted_and_dropped() {
    let mut r = Rig::new(64);
    r.server.borrow_mut().reply(ty::READ, 999, &[b"stray"]);
    r.turns(3);
    assert_eq!(r.c.stats().unknown_replies, 1);
    // A late reply to a request that timed out is unknown too.
    r.server.borrow_mut().mute = true;
    let late = r.c.submit(XsOp::Read("/k")).unwrap();
    r.advance(REQUEST_TIMEOUT_NS + 1);
    r.turn();
    assert_eq!(r.c.take_reply(late), Some(Err(XenError::Io)));
    r.server.borrow_mut().mute = false;
    r.turns(5);
    assert_eq!(r.c.stats().unknown_replies, 2);
    assert_eq!(r.c.take_reply(late), None);
    r.server
        .borrow_mut()
        .store
        .insert("/k".into(), b"v".to_vec());
    assert_eq!(r.call(XsOp::Read("/k")), Ok(b"v".to_vec()));
}

#[test]
fn watch_events_are_queued_and_private_tokens_kept_apart() {
    let mut r = Rig::new(13);
    r.call(XsOp::Watch {
        path: "/be",
        token: "netback",
    })
    .unwrap();
    r.call(XsOp::Watch {
        path: "/cfg",
        token: "aggdom/config",
    })
    .unwrap();
    r.call(XsOp::Write("/be/1/0/state", b"1")).unwrap();
    r.call(XsOp::Write("/cfg", b"bind=1.2.3.4:0")).unwrap();
    r.call(XsOp::Write("/other", b"1")).unwrap();
    r.turns(20);
    assert_eq!(
        r.events(),
        [ev("/be", "netback"), ev("/be/1/0/state", "netback")]
    );
    let private: Vec<String> = core::iter::from_fn(|| r.c.poll_private_watch())
        .map(|e| e.path)
        .collect();
    assert_eq!(private, ["/cfg", "/cfg"]);
    assert_eq!(r.c.stats().watch_events, 4);
    r.call(XsOp::Unwatch {
        path: "/be",
        token: "netback",
    })
    .unwrap();
    r.call(XsOp::Write("/be/x", b"1")).unwrap();
    r.turns(20);
    assert_eq!(r.c.poll_watch(), None);
    assert_eq!(
        r.c.watches,
        [(String::from("/cfg"), String::from("aggdom/config"))]
    );
}

#[test]
fn a_flood_of_events_is_taken_a_bounded_batch_per_pump() {
    let mut r = Rig::new(4096);
    r.server.borrow_mut().eager = true;
    for i in 0..500 {
        r.server.borrow_mut().event(&format!("/f/{i}"), "t");
    }
    r.server.borrow_mut().step(&r.page); // then `notify` refills the ring
    r.c.pump(r.clock.get());
    let first = r.c.events.len();
    assert_eq!(first, MAX_MESSAGES_PER_PUMP);
    assert!(r.c.has_backlog());
    for _ in 0..20 {
        r.c.pump(r.clock.get());
    }
    assert!(!r.c.has_backlog());
    let got = r.events();
    assert_eq!(got.len(), 500);
    assert_eq!(got[499], ev("/f/499", "t"));
}

#[test]
fn values_larger_than_the_ring_cross_it_in_pieces() {
    let mut r = Rig::new(300);
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let id = r.c.submit(XsOp::Write("/big", &big)).unwrap();
    let left = r.c.stats().queued_bytes;
    assert_eq!(
        left as usize,
        HEADER_LEN + 5 + 3000 - xs_ring::SIZE as usize
    );
    let mut pumps = 0;
    while r.c.stats().queued_bytes > 0 {
        r.turn();
        pumps += 1;
    }
    assert!(pumps >= 2, "{pumps}");
    r.turns(10);
    assert_eq!(r.c.take_reply(id), Some(Ok(b"OK\0".to_vec())));
    assert_eq!(r.call(XsOp::Read("/big")).unwrap(), big);
}

/// Sets a watch, leaves a read unanswered, corrupts the connection with
/// `corrupt`, and checks the resync: the read fails with `Io`, the watch
/// is sent again and works, and a new read succeeds.
fn check_resync(features: u32, corrupt: impl FnOnce(&mut Rig)) {
    let mut r = Rig::with_features(64, features);
    r.call(XsOp::Watch {
        path: "/be",
        token: "netback",
    })
    .unwrap();
    r.turns(5);
    assert_eq!(r.events(), [ev("/be", "netback")]);
    r.server.borrow_mut().mute = true;
    let stuck = r.c.submit(XsOp::Read("/k")).unwrap();
    corrupt(&mut r);
    r.turn();
    assert_eq!(r.c.stats().resyncs, 1);
    assert_eq!(r.c.take_reply(stuck), Some(Err(XenError::Io)));
    r.server.borrow_mut().mute = false;
    r.turns(20);
    assert!(!r.c.is_reconnecting());
    assert_eq!(r.server.borrow().watch_requests, 2, "watch not re-sent");
    // Either xenstored's event for the new watch or the client's own.
    assert_eq!(r.events(), [ev("/be", "netback")]);
    r.call(XsOp::Write("/k", b"v")).unwrap();
    assert_eq!(r.call(XsOp::Read("/k")), Ok(b"v".to_vec()));
    r.call(XsOp::Write("/be/1", b"x")).unwrap();
    r.turns(5);
    assert_eq!(r.events(), [ev("/be/1", "netback")]);
    let s = r.c.stats();
    assert_eq!((s.resyncs, s.in_flight), (1, 0));
    let reconnects = r.server.borrow().reconnects;
    let want = u32::from(features & xs_ring::FEATURE_RECONNECTION != 0);
    assert_eq!(reconnects, want);
}

fn impossible_indices(r: &mut Rig) {
    let cons = r.page.load_u32(xs_ring::RSP_CONS);
    r.page.store_u32(xs_ring::RSP_PROD, cons.wrapping_add(5000));
}

fn oversized_message(r: &mut Rig) {
    let h = Header {
        ty: ty::READ,
        req_id: 1,
        tx_id: 0,
        len: 5000,
    };
    let page = r.page.clone();
    RSP.produce(&*page, &h.to_bytes()).unwrap();
}

#[test]
fn impossible_ring_indices_resync_the_client() {
    check_resync(0, impossible_indices);
    check_resync(xs_ring::FEATURE_RECONNECTION, impossible_indices);
}

#[test]
fn an_oversized_message_resyncs_the_client() {
    check_resync(0, oversized_message);
    check_resync(xs_ring::FEATURE_RECONNECTION, oversized_message);
}

#[test]
fn a_reconnection_leaves_the_ring_alone_until_xenstored_is_done() {
    let mut r = Rig::with_features(64, xs_ring::FEATURE_RECONNECTION);
    r.server.borrow_mut().mute = true;
    oversized_message(&mut r);
    r.c.pump(r.clock.get());
    assert!(r.c.is_reconnecting());
    assert_eq!(r.page.load_u32(xs_ring::CONNECTION), xs_ring::RECONNECT);
    // Submitted meanwhile: queued, not written into the ring.
    let prod = r.page.load_u32(xs_ring::REQ_PROD);
    let id = r.c.submit(XsOp::Read("/k")).unwrap();
    r.c.pump(r.clock.get());
    assert_eq!(r.page.load_u32(xs_ring::REQ_PROD), prod);
    r.server.borrow_mut().mute = false;
    r.server
        .borrow_mut()
        .store
        .insert("/k".into(), b"v".to_vec());
    r.turns(10);
    assert_eq!(r.c.take_reply(id), Some(Ok(b"v".to_vec())));
    // A reset started by someone else is waited out the same way.
    r.page.store_u32(xs_ring::CONNECTION, xs_ring::RECONNECT);
    r.c.pump(r.clock.get());
    assert!(r.c.is_reconnecting());
    r.turns(3);
    assert!(!r.c.is_reconnecting());
    assert_eq!(r.c.stats().resyncs, 2);
    assert_eq!(r.call(XsOp::Read("/k")), Ok(b"v".to_vec()));
}

#[test]
fn a_lying_xenstore_ring_must_resync_the_client_counted_never_panic() {
    let mut r = Rig::new(64);
    r.server.borrow_mut().mute = true;
    let mut seed: u32 = 0x1234_5678;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        seed
    };
    for round in 0..2_000 {
        let v = next();
        match v % 4 {
            0 => {
                let at = [
                    xs_ring::REQ_CONS,
                    xs_ring::REQ_PROD,
                    xs_ring::RSP_CONS,
                    xs_ring::RSP_PROD,
                ][(v >> 8) as usize % 4];
                r.page.store_u32(at, next());
            }
            1 => {
                let at = xs_ring::RSP + (v >> 8) as usize % xs_ring::SIZE as usize;
                r.page.write(at, &next().to_le_bytes()[..1]);
            }
            2 => {
                let prod = r.page.load_u32(xs_ring::RSP_PROD);
                r.page
                    .store_u32(xs_ring::RSP_PROD, prod.wrapping_add(v >> 24));
            }
            _ => {
                let _ = r.c.submit(XsOp::Read("/x"));
            }
        }
        if round % 3 == 0 {
            r.advance(REQUEST_TIMEOUT_NS / 7);
        }
        r.c.pump(r.clock.get());
        let s = r.c.stats();
        assert!(s.in_flight <= MAX_IN_FLIGHT as u64);
        assert!(r.c.replies.len() <= MAX_STORED_REPLIES);
        assert!(r.c.asm.buffered() <= READ_AHEAD + xs_ring::SIZE as usize);
    }
    let s = r.c.stats();
    assert!(s.resyncs > 100, "{s:?}");
    assert_eq!(r.c.transport().idles, 0, "something waited");
}
