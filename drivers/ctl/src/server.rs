//! aggdom's side of the protocol, over the asynchronous xenstore client:
//! watch events name request nodes, their reads are submitted and picked
//! up in later polls, the commands run outside (the caller takes them
//! with [`Server::next_request`] and hands back [`Server::answer`]), and
//! the replies are written in a later poll. Nothing waits for xenstored.
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypervisor::{parse_directory, RequestId, XenError, XenStore, XsOp};

use crate::protocol::{chunks, ctl_dir, status_value, valid_line, Outcome, KEEP_REPLIES};

/// The watch token on the request directory. Kernel watch tokens start
/// with `aggdom/` (the xenstore client keeps their events apart from
/// netback's).
pub const WATCH_TOKEN: &str = "aggdom/ctl";
/// Requests read or waiting to run at once; more are answered `busy`
/// without being read.
pub const MAX_PENDING: usize = 8;
/// Answers waiting to be written (one goes out per round). A request
/// beyond them is counted `busy` and left unanswered: its client times
/// out, and a dom0 flooding request nodes cannot grow aggdom's memory.
pub const MAX_ANSWERS: usize = 4 * MAX_PENDING;

/// What the server did, for the `xen` command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// Requests read and handed to the command table.
    pub requests: u64,
    /// Replies written (ok or error).
    pub replies: u64,
    /// Requests answered `busy` unread.
    pub busy: u64,
    /// Request nodes that held no command line.
    pub bad: u64,
    /// Reads or writes xenstore refused (the client then times out).
    pub xenstore_errors: u64,
}

pub struct Server {
    dir: String,
    watch: Option<RequestId>,
    /// The request directory is to be listed: its watch fired for the
    /// directory itself (once when set, and when it is created), which
    /// names no request, and requests written before the watch was set
    /// fire nothing else.
    list_wanted: bool,
    /// The listing submitted, its reply not yet taken.
    listing: Option<RequestId>,
    /// Request ids a watch event or the listing named, to read.
    seen: VecDeque<u32>,
    reads: Vec<(u32, RequestId)>,
    ready: VecDeque<(u32, String)>,
    answers: VecDeque<(u32, Outcome, String)>,
    /// Ids answered, oldest first; their replies are kept until
    /// [`KEEP_REPLIES`] newer ones exist.
    recent: VecDeque<u32>,
    pub counters: ServerCounters,
}

impl Server {
    /// Starts serving `/local/domain/<domid>/data/aggctl`: watches its
    /// `request` directory. Fails only if the watch cannot be queued.
    pub fn start<X: XenStore>(xs: &mut X, domid: u32) -> Result<Self, XenError> {
        let dir = ctl_dir(domid);
        let path = format!("{dir}/request");
        let watch = xs.submit(XsOp::Watch {
            path: &path,
            token: WATCH_TOKEN,
        })?;
        Ok(Self {
            dir,
            watch: Some(watch),
            list_wanted: false,
            listing: None,
            seen: VecDeque::new(),
            reads: Vec::new(),
            ready: VecDeque::new(),
            answers: VecDeque::new(),
            recent: VecDeque::new(),
            counters: ServerCounters::default(),
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// A private watch event: `true` if it is this server's (then it is
    /// handled), `false` if it belongs to someone else.
    pub fn on_watch(&mut self, path: &str, token: &str) -> bool {
        if token != WATCH_TOKEN {
            return false;
        }
        let Some(rest) = path
            .strip_prefix(self.dir.as_str())
            .and_then(|p| p.strip_prefix("/request"))
        else {
            return true; // not under the request directory
        };
        if rest.is_empty() {
            self.list_wanted = true;
            return true;
        }
        if let Some(id) = rest.strip_prefix('/').and_then(|p| p.parse::<u32>().ok()) {
            self.note_request(id);
        }
        true // a name that is no id, or a node below one: nothing to read
    }

    /// A request node exists (a watch event or the listing named it):
    /// read it unless it is already known; `busy` when too many wait.
    fn note_request(&mut self, id: u32) {
        let known = self.seen.contains(&id)
            || self.recent.contains(&id)
            || self.reads.iter().any(|(i, _)| *i == id)
            || self.ready.iter().any(|(i, _)| *i == id)
            || self.answers.iter().any(|(i, ..)| *i == id);
        if known {
            return;
        }
        if self.seen.len() + self.reads.len() + self.ready.len() >= MAX_PENDING {
            self.counters.busy += 1;
            if self.answers.len() < MAX_ANSWERS {
                self.answer(id, Err("busy: too many requests at once; try again".into()));
            }
        } else {
            self.seen.push_back(id);
        }
    }

    /// Lists the request directory when its watch asked for it, and takes
    /// the listing's reply: every id in it is read like a watch event's.
    fn pump_listing<X: XenStore>(&mut self, xs: &mut X) -> usize {
        let mut work = 0;
        if let Some(l) = self.listing {
            let Some(reply) = xs.take_reply(l) else {
                return 0;
            };
            self.listing = None;
            work += 1;
            match reply {
                Ok(names) => {
                    for id in parse_directory(&names)
                        .iter()
                        .filter_map(|n| n.parse::<u32>().ok())
                    {
                        self.note_request(id);
                    }
                }
                // No request directory yet: nothing was written before us.
                Err(XenError::NoEnt) => {}
                Err(_) => self.counters.xenstore_errors += 1,
            }
        }
        if self.list_wanted && self.listing.is_none() {
            let path = format!("{}/request", self.dir);
            // Queue full: the wish stays, and the next round tries again.
            if let Ok(l) = xs.submit(XsOp::Directory(&path)) {
                self.listing = Some(l);
                self.list_wanted = false;
                work += 1;
            }
        }
        work
    }

    /// One round: answers written (one per round), read replies taken,
    /// new reads submitted. Returns the work done.
    pub fn pump<X: XenStore>(&mut self, xs: &mut X) -> usize {
        let mut work = 0;
        if let Some(w) = self.watch {
            if let Some(r) = xs.take_reply(w) {
                self.watch = None;
                if r.is_err() {
                    self.counters.xenstore_errors += 1;
                }
            }
        }
        work += self.pump_listing(xs);
        if let Some((id, outcome, text)) = self.answers.pop_front() {
            self.write_reply(xs, id, outcome, &text);
            work += 1;
        }
        let mut i = 0;
        while i < self.reads.len() {
            let (id, req) = self.reads[i];
            let Some(reply) = xs.take_reply(req) else {
                i += 1;
                continue;
            };
            self.reads.swap_remove(i);
            work += 1;
            match reply {
                Ok(bytes) => {
                    let line = core::str::from_utf8(&bytes)
                        .ok()
                        .map(|l| l.trim_end_matches('\0').trim())
                        .filter(|l| valid_line(l));
                    match line {
                        Some(l) => {
                            self.counters.requests += 1;
                            self.ready.push_back((id, String::from(l)));
                        }
                        None => {
                            self.counters.bad += 1;
                            self.answer(id, Err("the request is not a command line".into()));
                        }
                    }
                }
                // Removed (answered, or withdrawn by its client).
                Err(XenError::NoEnt) => {}
                Err(_) => self.counters.xenstore_errors += 1,
            }
        }
        while let Some(id) = self.seen.pop_front() {
            let path = format!("{}/request/{id}", self.dir);
            match xs.submit(XsOp::Read(&path)) {
                Ok(r) => self.reads.push((id, r)),
                Err(_) => {
                    // Queue full: try again next round.
                    self.seen.push_front(id);
                    break;
                }
            }
            work += 1;
        }
        work
    }

    /// The next request to run: its id and command line.
    pub fn next_request(&mut self) -> Option<(u32, String)> {
        self.ready.pop_front()
    }

    /// A request's result (output, or the one error line), written by a
    /// later [`Server::pump`].
    pub fn answer(&mut self, id: u32, result: Result<String, String>) {
        let (outcome, text) = match result {
            Ok(t) => (Outcome::Ok, t),
            Err(e) => (Outcome::Error, e),
        };
        self.answers.push_back((id, outcome, text));
    }

    fn write_reply<X: XenStore>(&mut self, xs: &mut X, id: u32, outcome: Outcome, text: &str) {
        let reply = format!("{}/reply/{id}", self.dir);
        let pieces = chunks(text);
        let mut ok = true;
        for (k, piece) in pieces.iter().enumerate() {
            let path = format!("{reply}/{k}");
            ok &= xs.send_forget(XsOp::Write(&path, piece.as_bytes())).is_ok();
        }
        // The status last: the ring keeps the order, so a client that sees
        // it finds every piece there.
        let status = status_value(outcome, pieces.len());
        ok &= xs
            .send_forget(XsOp::Write(&format!("{reply}/status"), status.as_bytes()))
            .is_ok();
        let request = format!("{}/request/{id}", self.dir);
        ok &= xs.send_forget(XsOp::Rm(&request)).is_ok();
        if !ok {
            self.counters.xenstore_errors += 1;
        }
        self.counters.replies += 1;
        self.recent.push_back(id);
        while self.recent.len() > KEEP_REPLIES {
            if let Some(old) = self.recent.pop_front() {
                let _ = xs.send_forget(XsOp::Rm(&format!("{}/reply/{old}", self.dir)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{join, parse_status, CHUNK};
    use hypervisor::{FakeHypervisor, XenStore};

    const AGGDOM: u16 = 7;

    /// dom0's side, straight on the fake store.
    fn request(hv: &mut FakeHypervisor, id: u32, line: &str) {
        let path = format!("{}/request/{id}", ctl_dir(AGGDOM.into()));
        hv.xs_write_as(0, &path, line).unwrap();
    }

    fn reply(hv: &mut FakeHypervisor, id: u32) -> Option<(Outcome, String)> {
        let dir = format!("{}/reply/{id}", ctl_dir(AGGDOM.into()));
        let (outcome, n) = parse_status(hv.xs_get(&format!("{dir}/status"))?.as_bytes())?;
        let pieces: Vec<Vec<u8>> = (0..n)
            .map(|k| hv.xs_get(&format!("{dir}/{k}")).unwrap().into_bytes())
            .collect();
        Some((outcome, join(&pieces)))
    }

    /// The server's loop as the kernel runs it: watch events in, commands
    /// run by `run`, replies out.
    fn turn(
        hv: &mut FakeHypervisor,
        s: &mut Server,
        run: &mut dyn FnMut(&str) -> Result<String, String>,
    ) {
        for _ in 0..4 {
            while let Some(ev) = hv.poll_watch() {
                assert!(s.on_watch(&ev.path, &ev.token));
            }
            s.pump(hv);
            while let Some((id, line)) = s.next_request() {
                let r = run(&line);
                s.answer(id, r);
            }
        }
    }

    fn echo(line: &str) -> Result<String, String> {
        match line.strip_prefix("fail ") {
            Some(why) => Err(String::from(why)),
            None => Ok(format!("ran {line}\n")),
        }
    }

    #[test]
    fn a_request_is_run_answered_and_removed() {
        let mut hv = FakeHypervisor::new(AGGDOM);
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        turn(&mut hv, &mut s, &mut echo);
        request(&mut hv, 41, "stats");
        request(&mut hv, 42, "fail no such thing");
        turn(&mut hv, &mut s, &mut echo);
        assert_eq!(
            reply(&mut hv, 41),
            Some((Outcome::Ok, "ran stats\n".into()))
        );
        assert_eq!(
            reply(&mut hv, 42),
            Some((Outcome::Error, "no such thing".into()))
        );
        let dir = ctl_dir(AGGDOM.into());
        assert_eq!(hv.xs_get(&format!("{dir}/request/41")), None);
        assert_eq!(s.counters.requests, 2);
        assert_eq!(s.counters.replies, 2);
    }

    #[test]
    fn long_output_comes_in_pieces() {
        let mut hv = FakeHypervisor::new(AGGDOM);
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        let long: String = (0..CHUNK * 3)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        request(&mut hv, 1, "long");
        turn(&mut hv, &mut s, &mut |_| Ok(long.clone()));
        let (outcome, text) = reply(&mut hv, 1).unwrap();
        assert_eq!((outcome, text), (Outcome::Ok, long.clone()));
        let dir = ctl_dir(AGGDOM.into());
        assert!(hv.xs_get(&format!("{dir}/reply/1/2")).is_some());
        assert_eq!(hv.xs_get(&format!("{dir}/reply/1/status")).unwrap(), "ok 3");
    }

    #[test]
    fn junk_requests_get_an_error_and_repeats_run_once() {
        let mut hv = FakeHypervisor::new(AGGDOM);
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        request(&mut hv, 5, "line\nbreak");
        request(&mut hv, 6, &"x".repeat(300));
        turn(&mut hv, &mut s, &mut echo);
        assert_eq!(reply(&mut hv, 5).unwrap().0, Outcome::Error);
        assert_eq!(reply(&mut hv, 6).unwrap().0, Outcome::Error);
        assert_eq!(s.counters.bad, 2);
        let mut runs = 0;
        request(&mut hv, 9, "once");
        turn(&mut hv, &mut s, &mut |l| {
            runs += 1;
            echo(l)
        });
        // The same id written again (a confused client) is not run again.
        request(&mut hv, 9, "once");
        turn(&mut hv, &mut s, &mut |l| {
            runs += 1;
            echo(l)
        });
        assert_eq!(runs, 1);
    }

    #[test]
    fn a_flood_of_requests_queues_a_bounded_number_of_answers() {
        let mut hv = FakeHypervisor::new(AGGDOM);
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        let dir = ctl_dir(AGGDOM.into());
        for id in 1..=1000u32 {
            s.on_watch(&format!("{dir}/request/{id}"), WATCH_TOKEN);
        }
        assert_eq!(s.counters.busy, 1000 - MAX_PENDING as u64);
        assert_eq!(s.answers.len(), MAX_ANSWERS);
    }

    #[test]
    fn a_burst_beyond_the_limit_is_answered_busy_and_old_replies_go() {
        let mut hv = FakeHypervisor::new(AGGDOM);
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        turn(&mut hv, &mut s, &mut echo);
        for id in 100..100 + MAX_PENDING as u32 + 3 {
            request(&mut hv, id, "x");
        }
        // Every event is seen before anything is read.
        while let Some(ev) = hv.poll_watch() {
            s.on_watch(&ev.path, &ev.token);
        }
        turn(&mut hv, &mut s, &mut echo);
        for _ in 0..20 {
            turn(&mut hv, &mut s, &mut echo);
        }
        let busy = (100..100 + MAX_PENDING as u32 + 3)
            .filter(|id| reply(&mut hv, *id).is_some_and(|r| r.1.starts_with("busy")))
            .count();
        assert_eq!(busy, 3);
        assert_eq!(s.counters.busy, 3);
        for id in 200..200 + KEEP_REPLIES as u32 {
            request(&mut hv, id, "x");
            turn(&mut hv, &mut s, &mut echo);
        }
        assert!(
            reply(&mut hv, 100).is_none(),
            "the oldest replies were removed"
        );
        assert!(reply(&mut hv, 200).is_some());
    }

    #[test]
    fn requests_written_before_the_server_started_are_served() {
        // aggctl wrote them while aggdom was restarting: the watch, set
        // later, fires only for the directory itself.
        let mut hv = FakeHypervisor::new(AGGDOM);
        request(&mut hv, 3, "status");
        request(&mut hv, 4, "fail early");
        let dir = ctl_dir(AGGDOM.into());
        hv.xs_write_as(0, &format!("{dir}/request/not-an-id"), "x")
            .unwrap();
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        // Listing, reads and one answer a round: more rounds than a
        // watched request needs.
        turn(&mut hv, &mut s, &mut echo);
        turn(&mut hv, &mut s, &mut echo);
        assert_eq!(
            reply(&mut hv, 3),
            Some((Outcome::Ok, "ran status\n".into()))
        );
        assert_eq!(reply(&mut hv, 4), Some((Outcome::Error, "early".into())));
        assert_eq!(s.counters.requests, 2);
        assert_eq!(s.counters.xenstore_errors, 0);
        // Listing again (the directory re-created) runs nothing twice.
        let mut runs = 0;
        s.on_watch(&format!("{dir}/request"), WATCH_TOKEN);
        request(&mut hv, 5, "later");
        turn(&mut hv, &mut s, &mut |l| {
            runs += 1;
            echo(l)
        });
        assert_eq!(runs, 1);
        assert_eq!(s.counters.requests, 3);
    }

    #[test]
    fn no_request_directory_is_no_error() {
        let mut hv = FakeHypervisor::new(AGGDOM);
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        turn(&mut hv, &mut s, &mut echo);
        assert_eq!(s.counters, ServerCounters::default());
    }

    #[test]
    fn other_watches_are_left_alone() {
        let mut hv = FakeHypervisor::new(AGGDOM);
        let mut s = Server::start(&mut hv, AGGDOM.into()).unwrap();
        assert!(!s.on_watch("/local/domain/7/aggdom/config", "aggdom/config"));
        assert!(s.on_watch(&format!("{}/request", s.dir().to_owned()), WATCH_TOKEN));
    }
}
