//! The `/metrics` server as the network drives it: clients connect from
//! any address, send request heads in pieces of any size, go quiet or
//! close, while the clock runs; each round is the kernel's (ownstack.rs):
//! the connection decision per slot, the request collected up to
//! `MAX_REQUEST`, the response made, the longest waiter evicted, closed
//! sockets released.
//!
//! Checked: every response is well formed (status line, `Content-Length`
//! equal to the body), the counters are rendered only for a complete `GET
//! /metrics`, a full buffer always gets an answer, clients outside the
//! allow-list are reset, no connection outlives its time limit, and only
//! a server with every slot taken evicts.
//!
//! Input: an allow-list (a length byte and that text), then operations.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aggdom_config::AllowList;
use aggdom_metrics::{http_response, Action, Connections, Limits, Socket, MAX_REQUEST};

use crate::bytes::Bytes;

/// The kernel's slot count (ownstack.rs HTTP_SOCKETS).
const SLOTS: usize = 4;
const LIMITS: Limits = Limits::DEFAULT;

#[derive(Clone, Copy, PartialEq)]
enum Sock {
    Listening,
    Connected(IpAddr),
    Closed,
}

struct Slot {
    sock: Sock,
    /// Bytes the client sent that the server has not read yet.
    incoming: Vec<u8>,
    request: Vec<u8>,
    answered: bool,
    /// When the server first served this connection, and when it last
    /// saw it make progress (the harness's own record).
    opened: Option<u64>,
    active: u64,
}

/// Checks one response against the request it answers.
fn check_response(request: &[u8], resp: &str, rendered: bool) {
    let (head, body) = resp.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .strip_prefix("HTTP/1.0 ")
        .and_then(|h| h.get(..3))
        .expect("a status line");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert_eq!(len, body.len(), "Content-Length is not the body's length");
    assert!(head.contains("Connection: close"));
    assert_eq!(
        status == "200",
        rendered,
        "metrics rendered for status {status}"
    );
    let complete =
        request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n");
    if status == "200" {
        assert!(complete, "answered 200 to an incomplete request");
        let rest = request.strip_prefix(b"GET /metrics").expect("GET /metrics");
        assert!(
            matches!(rest.first(), Some(b' ' | b'?' | b'\r' | b'\n')),
            "200 for another path"
        );
    }
    if !complete {
        assert_eq!(status, "431", "an incomplete request answered {status}");
    }
}

fn peer(input: &mut Bytes) -> IpAddr {
    match input.u8() % 4 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, input.u8())),
        1 => IpAddr::V4(Ipv4Addr::from(input.u32())),
        2 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, input.u16())),
        _ => IpAddr::V6(Ipv6Addr::from(
            (u128::from(input.u64()) << 64) | u128::from(input.u64()),
        )),
    }
}

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    let allow_text = String::from_utf8_lossy(input.short()).into_owned();
    let allow = AllowList::parse(&allow_text).unwrap_or_else(|_| AllowList::open());
    let mut conns = Connections::new(SLOTS, LIMITS, allow.clone());
    let mut slots: Vec<Slot> = (0..SLOTS)
        .map(|_| Slot {
            sock: Sock::Listening,
            incoming: Vec::new(),
            request: Vec::new(),
            answered: false,
            opened: None,
            active: 0,
        })
        .collect();
    let mut now: u64 = 0;
    let mut rounds = 0;
    while !input.is_empty() && rounds < 5_000 {
        let i = usize::from(input.u8()) % SLOTS;
        match input.u8() % 5 {
            0 => {
                if slots[i].sock == Sock::Listening {
                    slots[i].sock = Sock::Connected(peer(&mut input));
                }
            }
            1 => {
                let piece = input.short();
                if matches!(slots[i].sock, Sock::Connected(_)) {
                    slots[i].incoming.extend_from_slice(piece);
                }
            }
            2 => slots[i].sock = Sock::Closed,
            3 => now += u64::from(input.u16()) * 4,
            _ => {
                rounds += 1;
                round(&mut conns, &mut slots, &allow, now);
            }
        }
    }
    // However the clients behaved, after the limits no connection is left
    // unanswered or idle.
    for _ in 0..2 {
        now += LIMITS.request_ms.max(LIMITS.idle_ms);
        round(&mut conns, &mut slots, &allow, now);
    }
    assert!(
        slots.iter().all(|s| s.sock == Sock::Listening),
        "a connection outlived its limits"
    );
}

/// One turn of the kernel's server loop (ownstack.rs `poll`).
fn round(conns: &mut Connections, slots: &mut [Slot], allow: &AllowList, now: u64) {
    let before = conns.counters;
    for (i, s) in slots.iter_mut().enumerate() {
        let seen = match s.sock {
            Sock::Listening => Socket::Listening,
            Sock::Closed => Socket::Closed,
            Sock::Connected(p) => Socket::Connected(p),
        };
        let refused = conns.counters.refused;
        match conns.check(i, seen, now) {
            Action::None => {
                assert!(!matches!(s.sock, Sock::Connected(_)));
                s.opened = None;
                continue;
            }
            Action::Reset => {
                if let Sock::Connected(p) = s.sock {
                    if s.opened.is_none() {
                        assert!(!allow.allows(p), "an allowed client was refused");
                        assert_eq!(conns.counters.refused, refused + 1);
                    }
                }
                s.sock = Sock::Closed;
                s.opened = None;
                continue;
            }
            Action::Serve => {}
        }
        let Sock::Connected(p) = s.sock else {
            panic!("served a socket that is not connected");
        };
        assert!(allow.allows(p), "served a client outside the allow-list");
        let opened = *s.opened.get_or_insert(now);
        if s.answered {
            assert!(now - s.active < LIMITS.idle_ms, "idle connection kept");
        } else {
            assert!(now - opened < LIMITS.request_ms, "slow request head kept");
        }
        if !s.answered && !s.incoming.is_empty() {
            let room = MAX_REQUEST.saturating_sub(s.request.len());
            let take = s.incoming.len().min(room);
            s.request.extend_from_slice(&s.incoming[..take]);
            s.incoming.clear();
            let mut rendered = false;
            let resp = http_response(&s.request, || {
                rendered = true;
                String::from("aggdom_up 1\n")
            });
            match resp {
                Some(resp) => {
                    check_response(&s.request, &resp, rendered);
                    conns.answered(i, now);
                    // The answer goes out at once; the client reads it.
                    conns.progress(i, now);
                    s.answered = true;
                    s.active = now;
                }
                None => assert!(s.request.len() < MAX_REQUEST, "a full buffer got no answer"),
            }
        }
    }
    let all_taken = slots.iter().all(|s| s.opened.is_some());
    if let Some(i) = conns.evict() {
        assert!(all_taken, "evicted while a slot was free");
        assert!(!slots[i].answered, "evicted a connection being answered");
        slots[i].sock = Sock::Closed;
        slots[i].opened = None;
    }
    // Sockets no longer open listen again.
    for (i, s) in slots.iter_mut().enumerate() {
        if s.sock == Sock::Closed {
            conns.released(i);
            *s = Slot {
                sock: Sock::Listening,
                incoming: Vec::new(),
                request: Vec::new(),
                answered: false,
                opened: None,
                active: 0,
            };
        }
    }
    let after = conns.counters;
    assert!(
        after.served >= before.served
            && after.refused >= before.refused
            && after.timed_out >= before.timed_out
            && after.evicted >= before.evicted,
        "a counter went back"
    );
}
