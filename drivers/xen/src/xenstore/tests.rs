//! The client against a small fake xenstored on the other end of a real
//! ring layout: framing, partial reads, watches, errors, transactions.
use super::*;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use core::cell::RefCell;
use hypervisor::{transact, FakePage};

use crate::xs_wire::{Header, HEADER_LEN};

#[derive(Default)]
struct Server {
    store: BTreeMap<String, Vec<u8>>,
    watches: Vec<(String, String)>,
    inbox: Vec<u8>,
    outbox: VecDeque<u8>,
    /// Bytes of reply written per turn: small to split messages.
    chunk: usize,
    next_tx: u32,
    fail_commits: u32,
    notifies: u64,
}

impl Server {
    fn fire(&mut self, path: &str) {
        let evs: Vec<(String, String)> = self
            .watches
            .iter()
            .filter(|(w, _)| path == w || path.starts_with(&format!("{w}/")))
            .cloned()
            .collect();
        for (w, tok) in evs {
            let _ = w;
            self.reply(
                ty::WATCH_EVENT,
                0,
                0,
                &[path.as_bytes(), b"\0", tok.as_bytes(), b"\0"],
            );
        }
    }

    fn reply(&mut self, t: u32, req_id: u32, tx: u32, parts: &[&[u8]]) {
        let msg = xs_wire::request(t, req_id, tx, parts).unwrap();
        self.outbox.extend(msg);
    }

    fn handle(&mut self, h: Header, p: &[u8]) {
        let mut args = p.split(|b| *b == 0);
        let first = String::from_utf8(args.next().unwrap_or(&[]).to_vec()).unwrap();
        let ok = |s: &mut Self| s.reply(h.ty, h.req_id, h.tx_id, &[b"OK\0"]);
        let err =
            |s: &mut Self, e: &str| s.reply(ty::ERROR, h.req_id, h.tx_id, &[e.as_bytes(), b"\0"]);
        match h.ty {
            ty::READ => match self.store.get(&first).cloned() {
                Some(v) => self.reply(h.ty, h.req_id, h.tx_id, &[&v]),
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
                self.reply(h.ty, h.req_id, h.tx_id, &[&out]);
            }
            ty::WATCH => {
                let tok = String::from_utf8(args.next().unwrap().to_vec()).unwrap();
                self.watches.push((first.clone(), tok.clone()));
                ok(self);
                self.reply(
                    ty::WATCH_EVENT,
                    0,
                    0,
                    &[first.as_bytes(), b"\0", tok.as_bytes(), b"\0"],
                );
            }
            ty::UNWATCH => {
                let tok = String::from_utf8(args.next().unwrap().to_vec()).unwrap();
                self.watches.retain(|w| *w != (first.clone(), tok.clone()));
                ok(self);
            }
            ty::TRANSACTION_START => {
                self.next_tx += 1;
                let id = format!("{}\0", self.next_tx);
                self.reply(h.ty, h.req_id, 0, &[id.as_bytes()]);
            }
            ty::TRANSACTION_END => {
                if first == "T" && self.fail_commits > 0 {
                    self.fail_commits -= 1;
                    err(self, "EAGAIN");
                } else {
                    ok(self);
                }
            }
            _ => err(self, "EINVAL"),
        }
    }

    /// One turn of xenstored: take requests, write (part of) the replies.
    fn step(&mut self, page: &FakePage) {
        let mut buf = [0u8; 1024];
        let n = REQ.consume(page, &mut buf).unwrap();
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
        let sent = RSP.produce(page, &out).unwrap();
        self.outbox.drain(..sent);
    }
}

struct Fake {
    page: Rc<FakePage>,
    server: Rc<RefCell<Server>>,
    clock: u64,
}

impl XsTransport for Fake {
    type Page = FakePage;
    fn page(&self) -> &FakePage {
        &self.page
    }
    fn notify(&mut self) {
        self.server.borrow_mut().notifies += 1;
    }
    fn now_ns(&mut self) -> u64 {
        self.clock += 1000;
        self.clock
    }
    fn idle(&mut self) {
        self.server.borrow_mut().step(&self.page);
    }
}

fn client(chunk: usize) -> (XsClient<Fake>, Rc<RefCell<Server>>, Rc<FakePage>) {
    let page = Rc::new(FakePage::new());
    let server = Rc::new(RefCell::new(Server {
        chunk,
        ..Server::default()
    }));
    let c = XsClient::new(Fake {
        page: page.clone(),
        server: server.clone(),
        clock: 0,
    });
    (c, server, page)
}

#[test]
fn read_write_directory_rm() {
    for chunk in [1, 7, 4096] {
        let (mut c, server, _) = client(chunk);
        let t = Transaction::NONE;
        assert_eq!(c.read(t, "/a/b"), Err(XenError::NoEnt));
        c.write_str(t, "/a/b", "hello").unwrap();
        c.write_str(t, "/a/c/d", "x").unwrap();
        assert_eq!(c.read(t, "/a/b").unwrap(), b"hello");
        assert_eq!(c.directory(t, "/a").unwrap(), ["b", "c"]);
        c.rm(t, "/a/c").unwrap();
        assert_eq!(c.directory(t, "/a").unwrap(), ["b"]);
        c.mkdir(t, "/m").unwrap();
        assert_eq!(c.read(t, "/m").unwrap(), b"");
        assert!(server.borrow().notifies > 0);
        assert_eq!(c.stats().errors, 1);
    }
}

#[test]
fn values_larger_than_the_ring_cross_it_in_pieces() {
    let (mut c, _, _) = client(300);
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    c.write(Transaction::NONE, "/big", &big).unwrap();
    assert_eq!(c.read(Transaction::NONE, "/big").unwrap(), big);
}

#[test]
fn watch_events_are_queued_and_private_tokens_kept_apart() {
    let (mut c, _, _) = client(13);
    let t = Transaction::NONE;
    c.watch("/be", "netback").unwrap();
    c.watch("/cfg", "aggdom/config").unwrap();
    c.write_str(t, "/be/1/0/state", "1").unwrap();
    c.write_str(t, "/cfg", "bind=1.2.3.4:0").unwrap();
    c.write_str(t, "/other", "1").unwrap();
    let mut got = Vec::new();
    while let Some(ev) = c.poll_watch() {
        got.push((ev.path, ev.token));
    }
    assert_eq!(
        got,
        [
            ("/be".to_string(), "netback".to_string()),
            ("/be/1/0/state".to_string(), "netback".to_string())
        ]
    );
    let mut private = Vec::new();
    while let Some(ev) = c.poll_private_watch() {
        private.push(ev.path);
    }
    assert_eq!(private, ["/cfg", "/cfg"]);
    c.unwatch("/be", "netback").unwrap();
    c.write_str(t, "/be/x", "1").unwrap();
    assert_eq!(c.poll_watch(), None);
}

#[test]
fn transactions_retry_on_eagain() {
    let (mut c, server, _) = client(64);
    server.borrow_mut().fail_commits = 2;
    let mut runs = 0;
    let v = transact(&mut c, 5, |xs, t| {
        runs += 1;
        xs.write_str(t, "/k", "v")?;
        Ok(7)
    })
    .unwrap();
    assert_eq!((v, runs), (7, 3));
    server.borrow_mut().fail_commits = 9;
    assert_eq!(transact(&mut c, 2, |_, _| Ok(())), Err(XenError::Again));
}

#[test]
fn a_silent_server_times_out_and_a_lying_ring_breaks_the_client() {
    struct Mute(FakePage, u64);
    impl XsTransport for Mute {
        type Page = FakePage;
        fn page(&self) -> &FakePage {
            &self.0
        }
        fn notify(&mut self) {}
        fn now_ns(&mut self) -> u64 {
            self.1 += 1_000_000;
            self.1
        }
    }
    let mut c = XsClient::new(Mute(FakePage::new(), 0));
    assert_eq!(c.read(Transaction::NONE, "/x"), Err(XenError::Io));
    assert_eq!(c.stats().timeouts, 1);
    // rsp_prod far beyond rsp_cons: corrupt.
    c.transport_mut().0.store_u32(xs_ring::RSP_PROD, 5000);
    let requests = c.stats().requests;
    assert_eq!(c.poll_watch(), None);
    assert_eq!(c.read(Transaction::NONE, "/x"), Err(XenError::Io));
    // Refused at once as broken: no request sent, no second timeout (a
    // client that missed the corruption would time out the same way).
    assert_eq!(c.stats().requests, requests, "a request went out");
    assert_eq!(c.stats().timeouts, 1, "it waited instead");
}
