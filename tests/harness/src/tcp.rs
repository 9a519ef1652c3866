//! A minimal TCP client over raw frames, for tests that talk to aggdom's own
//! IP stack through a NIC (e.g. `GET /metrics`), over IPv4 or IPv6: one
//! connection, one request, read until the server closes. It answers ARP
//! or neighbour solicitations for its own address, acks in-order data,
//! retransmits its SYN and request until acknowledged, and ignores
//! everything else (other frames stay queued for the test).

use std::time::{Duration, Instant};

use crate::frame::{self, tcp_flags::*, Eth, Ipv4Ends, Tcp, TcpFields, ARP_REQUEST};
use crate::frame6::{self, Ipv6Ends, ICMPV6_NS};
use crate::{Error, Machine, Result};

/// The addressing of one TCP conversation (client to server), by IP
/// family: how its segments are built and recognised, and how the client
/// answers the server's address resolution.
pub trait Ends: Copy {
    /// A segment from the client.
    fn segment(&self, f: TcpFields, payload: &[u8]) -> Vec<u8>;
    /// The server's segment to the client in `frame` (checksum verified).
    fn server_segment<'a>(&self, frame: &'a [u8]) -> Option<Tcp<'a>>;
    /// The client's answer, if `frame` asks for its link-layer address.
    fn resolution_reply(&self, frame: &[u8]) -> Option<Vec<u8>>;
    /// The server's address, for messages.
    fn server(&self) -> String;
}

impl Ends for Ipv4Ends {
    fn segment(&self, f: TcpFields, payload: &[u8]) -> Vec<u8> {
        frame::tcp(*self, f, payload)
    }

    fn server_segment<'a>(&self, f: &'a [u8]) -> Option<Tcp<'a>> {
        Eth::parse(f)?
            .ipv4()
            .filter(|ip| ip.src == self.dst_ip && ip.dst == self.src_ip)?
            .tcp()
    }

    fn resolution_reply(&self, f: &[u8]) -> Option<Vec<u8>> {
        let arp = Eth::parse(f)?.arp()?;
        (arp.op == ARP_REQUEST && arp.target_ip == self.src_ip)
            .then(|| frame::arp_reply(self.src_mac, self.src_ip, arp.sender_mac, arp.sender_ip))
    }

    fn server(&self) -> String {
        self.dst_ip.to_string()
    }
}

impl Ends for Ipv6Ends {
    fn segment(&self, f: TcpFields, payload: &[u8]) -> Vec<u8> {
        frame6::tcp6(*self, f, payload)
    }

    fn server_segment<'a>(&self, f: &'a [u8]) -> Option<Tcp<'a>> {
        Eth::parse(f)?
            .ipv6()
            .filter(|ip| ip.src == self.dst_ip && ip.dst == self.src_ip)?
            .tcp()
    }

    fn resolution_reply(&self, f: &[u8]) -> Option<Vec<u8>> {
        let eth = Eth::parse(f)?;
        let ip = eth.ipv6()?;
        let m = ip.icmp6()?;
        if m.ty != ICMPV6_NS || m.target() != Some(self.src_ip) || ip.src.is_unspecified() {
            return None;
        }
        let to = Ipv6Ends {
            src_mac: self.src_mac,
            dst_mac: eth.src,
            src_ip: self.src_ip,
            dst_ip: ip.src,
        };
        Some(frame6::neighbour_advertisement(
            to,
            self.src_ip,
            self.src_mac,
        ))
    }

    fn server(&self) -> String {
        format!("[{}]", self.dst_ip)
    }
}

/// Where frames go and come from: a NIC of a machine, or a fake in tests.
pub trait Link {
    /// Sends one frame.
    fn send(&self, frame: &[u8]) -> Result<()>;
    /// Takes the earliest frame for which `pred` holds, waiting up to
    /// `timeout`; others stay queued.
    fn recv_matching(
        &self,
        timeout: Duration,
        pred: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>>;
}

/// NIC `nic` of a machine as a [`Link`].
pub struct NicLink<'a> {
    /// The machine.
    pub machine: &'a Machine,
    /// The NIC index.
    pub nic: usize,
}

impl Link for NicLink<'_> {
    fn send(&self, frame: &[u8]) -> Result<()> {
        self.machine.send_frame(self.nic, frame)
    }

    fn recv_matching(
        &self,
        timeout: Duration,
        pred: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        self.machine
            .recv_where(timeout, |r| r.nic == self.nic && pred(&r.data))
            .map(|r| r.data)
    }
}

/// Retransmission interval for the SYN and the request.
const RTO: Duration = Duration::from_millis(500);
/// Our receive window and MSS.
const WINDOW: u16 = 65535;
const MSS: u16 = 1460;

/// One connection as the client sees it: its addressing and ports.
struct Conn<E> {
    ends: E,
    src_port: u16,
    dst_port: u16,
}

impl<E: Ends> Conn<E> {
    /// A segment from the client (a SYN carries our MSS).
    fn segment(&self, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mss = (flags & SYN != 0).then_some(MSS);
        self.ends.segment(
            TcpFields {
                src_port: self.src_port,
                dst_port: self.dst_port,
                seq,
                ack,
                flags,
                window: WINDOW,
                mss,
            },
            payload,
        )
    }

    /// Frames of this connection, and requests for our link-layer address.
    fn ours(&self, f: &[u8]) -> bool {
        self.ends.resolution_reply(f).is_some()
            || self
                .ends
                .server_segment(f)
                .is_some_and(|t| t.src_port == self.dst_port && t.dst_port == self.src_port)
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::Timeout {
            what: format!("TCP {what} from {}:{}", self.ends.server(), self.dst_port),
            context: String::new(),
        }
    }

    /// Waits until `next_send` (or `deadline`) for a frame of this
    /// connection; answers address resolution itself. `Ok(None)` when
    /// nothing (else) came.
    fn recv(
        &self,
        link: &dyn Link,
        next_send: Instant,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>> {
        let wait = next_send
            .min(deadline)
            .saturating_duration_since(Instant::now());
        let Some(f) = link.recv_matching(wait, &mut |f| self.ours(f)) else {
            return Ok(None);
        };
        if let Some(reply) = self.ends.resolution_reply(&f) {
            link.send(&reply)?;
            return Ok(None);
        }
        Ok(Some(f))
    }
}

/// Opens a TCP connection from `ends.src_ip:src_port` (the test host, MAC
/// `ends.src_mac`) to `ends.dst_ip:dst_port` (reached at `ends.dst_mac`),
/// sends `request`, and returns every byte the server sent until it closed
/// the connection. Fails on RST or after `timeout` overall.
pub fn request<E: Ends>(
    link: &dyn Link,
    ends: E,
    src_port: u16,
    dst_port: u16,
    request: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let iss: u32 = 0x1000_0000 ^ u32::from(src_port) << 8;
    let conn = Conn {
        ends,
        src_port,
        dst_port,
    };

    // Handshake. The request rides on the ACK (seq iss+1) and is resent
    // until the server acknowledges it.
    let (mut state, mut next_send) = (State::SynSent, Instant::now());
    let mut rcv_nxt = 0u32;
    let snd_fin = iss.wrapping_add(1).wrapping_add(request.len() as u32);
    let mut response = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(conn.timed_out(state.waiting_for()));
        }
        if now >= next_send {
            match state {
                State::SynSent => link.send(&conn.segment(iss, 0, SYN, b""))?,
                State::RequestSent => {
                    link.send(&conn.segment(iss.wrapping_add(1), rcv_nxt, PSH | ACK, request))?
                }
                State::Receiving | State::Closing => {}
            }
            next_send = now + RTO;
        }
        let Some(f) = conn.recv(link, next_send, deadline)? else {
            continue;
        };
        let t = ends.server_segment(&f).expect("matched frames parse");
        if t.has(RST) {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "TCP reset by the server",
            )));
        }
        if state == State::SynSent {
            if t.has(SYN | ACK) && t.ack == iss.wrapping_add(1) {
                rcv_nxt = t.seq.wrapping_add(1);
                state = State::RequestSent;
                next_send = Instant::now(); // send the request now
            }
            continue;
        }
        if state == State::RequestSent && t.has(ACK) && seq_ge(t.ack, snd_fin) {
            state = State::Receiving;
        }
        // In-order data (and FIN) only; anything else gets a duplicate ack.
        if t.seq == rcv_nxt {
            response.extend_from_slice(t.payload);
            rcv_nxt = rcv_nxt.wrapping_add(t.payload.len() as u32);
            if t.has(FIN) {
                rcv_nxt = rcv_nxt.wrapping_add(1);
                link.send(&conn.segment(snd_fin, rcv_nxt, FIN | ACK, b""))?;
                state = State::Closing;
            }
        }
        if state != State::Closing {
            if !t.payload.is_empty() || t.has(FIN) {
                link.send(&conn.segment(snd_fin, rcv_nxt, ACK, b""))?;
            }
            continue;
        }
        // The server closed and we sent our FIN; its final ACK is not
        // waited for (nothing the test needs depends on it).
        return Ok(response);
    }
}

/// Opens a TCP connection as [`request`] does, then says nothing: the
/// handshake only, the way a client that holds a server's socket idle
/// behaves. `Ok(true)` once the server's SYN-ACK was acknowledged,
/// `Ok(false)` if the server reset the attempt; fails after `timeout`.
pub fn open_silent<E: Ends>(
    link: &dyn Link,
    ends: E,
    src_port: u16,
    dst_port: u16,
    timeout: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let iss: u32 = 0x2000_0000 ^ u32::from(src_port) << 8;
    let conn = Conn {
        ends,
        src_port,
        dst_port,
    };
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(conn.timed_out("SYN-ACK"));
        }
        if now >= next_send {
            link.send(&conn.segment(iss, 0, SYN, b""))?;
            next_send = now + RTO;
        }
        let Some(f) = conn.recv(link, next_send, deadline)? else {
            continue;
        };
        let t = ends.server_segment(&f).expect("matched frames parse");
        if t.has(RST) {
            return Ok(false);
        }
        if t.has(SYN | ACK) && t.ack == iss.wrapping_add(1) {
            link.send(&conn.segment(iss.wrapping_add(1), t.seq.wrapping_add(1), ACK, b""))?;
            return Ok(true);
        }
    }
}

/// `a >= b` in sequence space.
fn seq_ge(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 1 << 31
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    SynSent,
    RequestSent,
    Receiving,
    Closing,
}

impl State {
    fn waiting_for(self) -> &'static str {
        match self {
            State::SynSent => "SYN-ACK",
            State::RequestSent => "ack of the request",
            State::Receiving | State::Closing => "end of the response",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Ipv4, Tcp};
    use crate::MacAddr;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::net::Ipv4Addr;

    /// A scripted server behind a fake link: ARPs for the client first,
    /// drops the first SYN (to exercise retransmission), answers the request
    /// in two segments plus FIN, the second segment first (out of order).
    struct FakeServer {
        inbox: RefCell<VecDeque<Vec<u8>>>,
        ends: Ipv4Ends, // server -> client
        syns: RefCell<u32>,
        got_request: RefCell<Vec<u8>>,
        arp_answered: RefCell<bool>,
        closed: RefCell<bool>,
    }

    const ISS: u32 = 0xfffffff0; // wraps during the exchange

    impl FakeServer {
        fn reply(&self, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
            let f = TcpFields {
                src_port: 80,
                dst_port: 40000,
                seq,
                ack,
                flags,
                window: 1000,
                mss: None,
            };
            self.inbox
                .borrow_mut()
                .push_back(frame::tcp(self.ends, f, payload));
        }
    }

    impl Link for FakeServer {
        fn send(&self, f: &[u8]) -> Result<()> {
            let eth = Eth::parse(f).unwrap();
            if let Some(arp) = eth.arp() {
                assert_eq!(arp.sender_ip, self.ends.dst_ip);
                *self.arp_answered.borrow_mut() = true;
                return Ok(());
            }
            let ip: Ipv4 = eth.ipv4().unwrap();
            let t: Tcp = ip.tcp().expect("client sent a bad TCP checksum");
            if t.has(SYN) {
                *self.syns.borrow_mut() += 1;
                // ARP for the client before answering, and lose the first SYN.
                if *self.syns.borrow() == 1 {
                    let arp =
                        frame::arp_request(self.ends.src_mac, self.ends.src_ip, self.ends.dst_ip);
                    self.inbox.borrow_mut().push_back(arp);
                    return Ok(());
                }
                self.reply(ISS, t.seq.wrapping_add(1), SYN | ACK, b"");
            } else if !t.payload.is_empty() && self.got_request.borrow().is_empty() {
                self.got_request.borrow_mut().extend_from_slice(t.payload);
                let ack = t.seq.wrapping_add(t.payload.len() as u32);
                let (a, b) = (
                    b"HTTP/1.0 200 OK\r\n\r\n".as_slice(),
                    b"aggdom_up 1\n".as_slice(),
                );
                let s1 = ISS.wrapping_add(1);
                let s2 = s1.wrapping_add(a.len() as u32);
                self.reply(s2, ack, PSH | ACK, b); // out of order: dropped by the client
                self.reply(s1, ack, ACK, a);
                self.reply(s2, ack, PSH | ACK, b); // the retransmission
                self.reply(s2.wrapping_add(b.len() as u32), ack, FIN | ACK, b"");
            } else if t.has(FIN) {
                *self.closed.borrow_mut() = true;
            }
            Ok(())
        }

        fn recv_matching(
            &self,
            _: Duration,
            pred: &mut dyn FnMut(&[u8]) -> bool,
        ) -> Option<Vec<u8>> {
            let mut q = self.inbox.borrow_mut();
            let i = q.iter().position(|f| pred(f))?;
            q.remove(i)
        }
    }

    #[test]
    fn get_against_a_scripted_server() {
        let client = Ipv4Ends {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::qemu(1),
            src_ip: Ipv4Addr::new(10, 0, 0, 100),
            dst_ip: Ipv4Addr::new(10, 0, 0, 1),
        };
        let server = FakeServer {
            inbox: RefCell::new(VecDeque::new()),
            ends: client.reversed(),
            syns: RefCell::new(0),
            got_request: RefCell::new(Vec::new()),
            arp_answered: RefCell::new(false),
            closed: RefCell::new(false),
        };
        let got = request(
            &server,
            client,
            40000,
            80,
            b"GET /metrics HTTP/1.0\r\n\r\n",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(got, b"HTTP/1.0 200 OK\r\n\r\naggdom_up 1\n");
        assert_eq!(
            *server.got_request.borrow(),
            b"GET /metrics HTTP/1.0\r\n\r\n"
        );
        assert_eq!(*server.syns.borrow(), 2, "SYN not retransmitted");
        assert!(*server.arp_answered.borrow() && *server.closed.borrow());
    }

    /// Over IPv6 the client answers a solicitation for its address (and
    /// only that) and takes only its server's segments.
    #[test]
    fn ipv6_ends_answer_solicitations_and_recognise_the_server() {
        let client = Ipv6Ends {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::qemu(1),
            src_ip: "fd00::100".parse().unwrap(),
            dst_ip: "fd00::2".parse().unwrap(),
        };
        let ns = frame6::neighbour_solicitation(MacAddr::qemu(1), client.dst_ip, client.src_ip);
        let na = client
            .resolution_reply(&ns)
            .expect("answers for its address");
        let eth = Eth::parse(&na).unwrap();
        let m = eth.ipv6().unwrap().icmp6().unwrap();
        assert_eq!(eth.dst, MacAddr::qemu(1));
        assert_eq!(m.target(), Some(client.src_ip));
        assert_eq!(m.lladdrs(), vec![(2, MacAddr::local(1))]);
        let other = frame6::neighbour_solicitation(MacAddr::qemu(1), client.dst_ip, client.dst_ip);
        assert!(client.resolution_reply(&other).is_none());
        let f = TcpFields {
            src_port: 80,
            dst_port: 40000,
            seq: 1,
            ack: 1,
            flags: ACK,
            window: 10,
            mss: None,
        };
        let server_segment = frame6::tcp6(client.reversed(), f, b"x");
        assert_eq!(
            client.server_segment(&server_segment).unwrap().payload,
            b"x"
        );
        let from_client = frame6::tcp6(client, f, b"x");
        assert!(client.server_segment(&from_client).is_none());
    }

    #[test]
    fn sequence_comparison_wraps() {
        assert!(seq_ge(5, 5) && seq_ge(6, 5) && seq_ge(1, 0xffff_fff0) && !seq_ge(0xffff_fff0, 1));
    }
}
