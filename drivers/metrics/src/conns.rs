//! Who may hold one of the `/metrics` server's few TCP connections, and for
//! how long: the decisions, kept apart from the sockets (the kernel's
//! `ownstack.rs` carries them out on smoltcp sockets).
//!
//! The server has a fixed number of slots, one socket each. A client that
//! connects and says nothing must not lock scrapes out, so:
//! - a client outside the allow-list (`metrics_allow=`) is reset at once;
//! - the request head must be complete [`Limits::request_ms`] after the
//!   connection opened (a slow drip of bytes does not extend it);
//! - once answered, a connection that makes no progress for
//!   [`Limits::idle_ms`] (a client that stops reading, or never closes) is
//!   reset;
//! - a slot is always kept listening: when every slot holds a connection,
//!   the one that has waited longest for its request head is reset
//!   ([`Connections::evict`]), so a scraper always finds a listener.
use aggdom_config::AllowList;
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

/// Time limits of a connection, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From the connection opening to a complete request head.
    pub request_ms: u64,
    /// After the request: the longest the connection may move no bytes.
    pub idle_ms: u64,
}

impl Limits {
    /// A scrape sends its request at once and reads the answer at once;
    /// these leave room for a slow client under emulation.
    pub const DEFAULT: Limits = Limits {
        request_ms: 5_000,
        idle_ms: 10_000,
    };
}

/// What happened to connections, for `stats` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// Requests answered (any status).
    pub served: u64,
    /// Connections reset because the client is not in the allow-list.
    pub refused: u64,
    /// Connections reset for taking too long (request head or idle).
    pub timed_out: u64,
    /// Connections still waiting for a request, reset to free a slot for a
    /// new client.
    pub evicted: u64,
}

impl ServerCounters {
    /// As [`crate::Snapshot::extra`] rows.
    pub fn rows(&self) -> [(&'static str, &'static str, u64); 4] {
        [
            (
                "aggdom_http_requests_total",
                "Metrics requests answered.",
                self.served,
            ),
            (
                "aggdom_http_refused_total",
                "Connections reset because the client is not in metrics_allow.",
                self.refused,
            ),
            (
                "aggdom_http_timeouts_total",
                "Connections reset for a late request or an idle connection.",
                self.timed_out,
            ),
            (
                "aggdom_http_evicted_total",
                "Connections without a request yet, reset to free a slot.",
                self.evicted,
            ),
        ]
    }
}

/// A slot's socket, as the server sees it at a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    /// Closed (or closing for good): it will be made to listen again.
    Closed,
    Listening,
    /// A connection (from SYN received on) with this client.
    Connected(IpAddr),
}

/// What to do with a slot's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the socket listens or is closed.
    None,
    /// Serve the connection: read its request, send its answer.
    Serve,
    /// Reset the connection (refused or timed out); the slot is free.
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    Open {
        opened_ms: u64,
        /// When bytes last moved.
        active_ms: u64,
        answered: bool,
    },
}

/// The slots of the server and their counters.
pub struct Connections {
    slots: Vec<Slot>,
    limits: Limits,
    allow: AllowList,
    pub counters: ServerCounters,
}

impl Connections {
    pub fn new(slots: usize, limits: Limits, allow: AllowList) -> Self {
        Self {
            slots: vec![Slot::Free; slots],
            limits,
            allow,
            counters: ServerCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The clients admitted (empty: all).
    pub fn allow(&self) -> &AllowList {
        &self.allow
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Looks at slot `i` at `now_ms`: a new connection is admitted or
    /// refused, an open one whose time is up is reset.
    pub fn check(&mut self, i: usize, socket: Socket, now_ms: u64) -> Action {
        let Some(slot) = self.slots.get_mut(i) else {
            return Action::None;
        };
        let peer = match socket {
            Socket::Closed | Socket::Listening => {
                *slot = Slot::Free;
                return Action::None;
            }
            Socket::Connected(peer) => peer,
        };
        match *slot {
            Slot::Free if !self.allow.allows(peer) => {
                self.counters.refused += 1;
                Action::Reset
            }
            Slot::Free => {
                *slot = Slot::Open {
                    opened_ms: now_ms,
                    active_ms: now_ms,
                    answered: false,
                };
                Action::Serve
            }
            Slot::Open {
                opened_ms,
                active_ms,
                answered,
            } => {
                let late = if answered {
                    now_ms.saturating_sub(active_ms) >= self.limits.idle_ms
                } else {
                    now_ms.saturating_sub(opened_ms) >= self.limits.request_ms
                };
                if late {
                    *slot = Slot::Free;
                    self.counters.timed_out += 1;
                    Action::Reset
                } else {
                    Action::Serve
                }
            }
        }
    }

    /// Slot `i`'s answer moved (bytes queued to the client, or acknowledged
    /// by it): its idle time starts again.
    pub fn progress(&mut self, i: usize, now_ms: u64) {
        if let Some(Slot::Open { active_ms, .. }) = self.slots.get_mut(i) {
            *active_ms = now_ms;
        }
    }

    /// Slot `i`'s request is complete and answered; from now on only
    /// idleness ends the connection.
    pub fn answered(&mut self, i: usize, now_ms: u64) {
        if let Some(Slot::Open {
            active_ms,
            answered,
            ..
        }) = self.slots.get_mut(i)
        {
            if !*answered {
                self.counters.served += 1;
            }
            *answered = true;
            *active_ms = now_ms;
        }
    }

    /// Slot `i`'s socket was made to listen again (whatever it held has
    /// ended).
    pub fn released(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Slot::Free;
        }
    }

    /// After every slot was checked: when none is free, the slot whose
    /// connection has waited longest for its request, to reset so that a
    /// new client finds a listener. `None` while a slot is free, or when
    /// every connection is being answered (those end by themselves or by
    /// idleness).
    pub fn evict(&mut self) -> Option<usize> {
        if self.slots.contains(&Slot::Free) {
            return None;
        }
        let (i, _) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match *s {
                Slot::Open {
                    opened_ms,
                    answered: false,
                    ..
                } => Some((i, opened_ms)),
                _ => None,
            })
            .min_by_key(|&(_, opened)| opened)?;
        self.slots[i] = Slot::Free;
        self.counters.evicted += 1;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        request_ms: 5_000,
        idle_ms: 10_000,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, last))
    }

    fn open(n: usize) -> Connections {
        Connections::new(n, LIMITS, AllowList::open())
    }

    #[test]
    fn clients_outside_the_allow_list_are_reset_and_counted() {
        let allow = AllowList::parse("10.0.0.0/28,10.0.0.100/32").unwrap();
        let mut c = Connections::new(2, LIMITS, allow);
        let table = [
            (1, Action::Serve),
            (100, Action::Serve),
            (16, Action::Reset),
        ];
        for (i, (last, want)) in table.into_iter().enumerate() {
            c.released(0);
            assert_eq!(
                c.check(0, Socket::Connected(ip(last)), i as u64),
                want,
                "{last}"
            );
        }
        assert_eq!(c.counters.refused, 1);
        // Without a list every client is served, as before metrics_allow.
        let mut o = open(1);
        assert_eq!(o.check(0, Socket::Connected(ip(16)), 0), Action::Serve);
    }

    #[test]
    fn a_request_head_must_be_complete_in_time_however_slowly_it_drips() {
        let mut c = open(1);
        assert_eq!(c.check(0, Socket::Connected(ip(1)), 1_000), Action::Serve);
        for t in (1_000..6_000).step_by(1_000) {
            c.progress(0, t);
            assert_eq!(
                c.check(0, Socket::Connected(ip(1)), t),
                Action::Serve,
                "{t}"
            );
        }
        assert_eq!(c.check(0, Socket::Connected(ip(1)), 6_000), Action::Reset);
        assert_eq!(c.counters.timed_out, 1);
        // The slot is free again: the next connection is a new one.
        assert_eq!(c.check(0, Socket::Connected(ip(2)), 6_001), Action::Serve);
    }

    #[test]
    fn an_answered_connection_lives_while_it_moves_bytes() {
        let mut c = open(1);
        c.check(0, Socket::Connected(ip(1)), 0);
        c.answered(0, 100);
        assert_eq!(c.counters.served, 1);
        c.progress(0, 9_000);
        assert_eq!(c.check(0, Socket::Connected(ip(1)), 18_999), Action::Serve);
        assert_eq!(c.check(0, Socket::Connected(ip(1)), 19_000), Action::Reset);
        assert_eq!(c.counters.timed_out, 1);
        assert_eq!(c.counters.served, 1, "answering twice counts once");
    }

    #[test]
    fn a_closed_or_listening_socket_frees_its_slot() {
        let mut c = open(1);
        c.check(0, Socket::Connected(ip(1)), 0);
        assert_eq!(c.evict(), Some(0), "the only slot is taken");
        c.check(0, Socket::Connected(ip(1)), 0);
        assert_eq!(c.check(0, Socket::Closed, 1), Action::None);
        assert_eq!(c.evict(), None);
        c.check(0, Socket::Connected(ip(1)), 2);
        assert_eq!(c.check(0, Socket::Listening, 3), Action::None);
        assert_eq!(c.evict(), None);
    }

    #[test]
    fn when_every_slot_is_taken_the_longest_waiting_silent_client_makes_room() {
        let mut c = open(3);
        c.check(0, Socket::Connected(ip(1)), 30);
        assert_eq!(c.evict(), None, "slots are free");
        c.check(1, Socket::Connected(ip(2)), 10);
        c.check(2, Socket::Connected(ip(3)), 20);
        c.answered(1, 40);
        // Slot 1 is answering (it ends by itself); slot 2 waited longest.
        assert_eq!(c.evict(), Some(2));
        assert_eq!(c.counters.evicted, 1);
        assert_eq!(c.evict(), None, "slot 2 is free now");
        c.check(2, Socket::Connected(ip(4)), 50);
        c.answered(0, 60);
        c.answered(2, 60);
        assert_eq!(c.evict(), None, "every connection is being answered");
    }

    #[test]
    fn silent_clients_never_lock_a_scraper_out() {
        // Every poll: silent clients take whatever listens; a scraper comes
        // at poll 10 and must be admitted and answered.
        let mut c = open(4);
        let mut sockets = [Socket::Listening; 4];
        let mut scraped = false;
        for t in 0..20u64 {
            // The stack gives each new SYN to a listening socket.
            let client = if t == 10 { ip(200) } else { ip(t as u8) };
            if let Some(s) = sockets.iter_mut().find(|s| **s == Socket::Listening) {
                *s = Socket::Connected(client);
            }
            for (i, s) in sockets.iter_mut().enumerate() {
                match c.check(i, *s, t) {
                    Action::Reset => *s = Socket::Closed,
                    Action::Serve if *s == Socket::Connected(ip(200)) => {
                        c.answered(i, t);
                        scraped = true;
                    }
                    _ => {}
                }
            }
            if let Some(i) = c.evict() {
                sockets[i] = Socket::Closed;
            }
            for (i, s) in sockets.iter_mut().enumerate() {
                if *s == Socket::Closed {
                    *s = Socket::Listening;
                    c.released(i);
                }
            }
            assert!(
                sockets.contains(&Socket::Listening),
                "poll {t}: no listener"
            );
        }
        assert!(scraped);
        assert_eq!(c.counters.served, 1);
    }

    proptest! {
        /// Whatever the sockets do, after a poll's checks and eviction a
        /// slot is free or every connection is being answered.
        #[test]
        fn a_slot_is_always_free_unless_all_are_answering(
            events in proptest::collection::vec((0usize..3, 0u8..4, 0u64..3_000), 1..200)
        ) {
            let mut c = open(3);
            let mut now = 0;
            for (slot, what, dt) in events {
                now += dt;
                match what {
                    0 => { c.check(slot, Socket::Connected(ip(slot as u8)), now); }
                    1 => { c.answered(slot, now); }
                    2 => { c.check(slot, Socket::Closed, now); }
                    _ => { c.progress(slot, now); }
                }
                c.evict();
                let free = c.slots.contains(&Slot::Free);
                let all_answering = c.slots.iter().all(|s| matches!(s, Slot::Open { answered: true, .. }));
                prop_assert!(free || all_answering);
            }
        }
    }
}
