//! The domain's own IP stack (smoltcp) on its own IPs, IPv4 and / or IPv6:
//! ARP and NDP, ICMP and ICMPv6 echo, and an HTTP server for `GET /metrics`.
//! Its frames go through the datapath like everything else, so they take
//! the claim's own-traffic path (steps 3-6).
use aggdom_config::AllowList;
use aggdom_metrics::{
    get_target, http_response, render_prometheus, Action, Connections, Limits, Snapshot, Socket,
    MAX_REQUEST,
};
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;
use datapath::{Datapath, FrameQueue};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

/// The port `GET /metrics` is served on.
pub const HTTP_PORT: u16 = 80;
/// HTTP connections at once (sockets); which client holds one and for how
/// long is `aggdom_metrics::Connections`' call.
const HTTP_SOCKETS: usize = 4;

/// `Some(query)` for a complete `GET /capture` or `GET /capture?<query>`
/// request head; `None` for anything else (`http_response` answers it).
fn capture_request(request: &[u8]) -> Option<Option<&str>> {
    let target = get_target(request)?;
    match target.split_once('?') {
        None if target == "/capture" => Some(None),
        Some(("/capture", q)) => Some(Some(q)),
        _ => None,
    }
}

/// The datapath's two frame queues, seen by smoltcp as an Ethernet device.
struct QueueDevice<'a> {
    rx: &'a mut FrameQueue,
    tx: &'a mut FrameQueue,
}

struct QueueRx<'a>(&'a mut FrameQueue);
struct QueueTx<'a>(&'a mut FrameQueue);

impl RxToken for QueueRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        // `receive` only hands out a token for a non-empty queue.
        let mut f = Some(f);
        match self.0.pop(|frame| (f.take().expect("called once"))(frame)) {
            Some(r) => r,
            None => (f.take().expect("not called"))(&[]),
        }
    }
}

impl TxToken for QueueTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut result = None;
        self.0.push_with(len, |buf| {
            result = Some((f.take().expect("called once"))(buf))
        });
        match result {
            Some(r) => r,
            // Full or oversized (transmit() checked there was room): the
            // frame is built and dropped, as a full NIC ring would drop it.
            None => (f.take().expect("not called"))(&mut vec![0u8; len]),
        }
    }
}

impl Device for QueueDevice<'_> {
    type RxToken<'a>
        = QueueRx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = QueueTx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(QueueRx<'_>, QueueTx<'_>)> {
        if self.rx.is_empty() {
            return None;
        }
        Some((QueueRx(self.rx), QueueTx(self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<QueueTx<'_>> {
        (!self.tx.is_full()).then(|| QueueTx(self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = Some(8);
        caps
    }
}

/// One HTTP connection's progress.
#[derive(Default)]
struct HttpConn {
    request: Vec<u8>,
    response: Option<(Vec<u8>, usize)>,
    /// `GET /capture`: the capture whose frames follow the response.
    capture: Option<crate::capture::Stream>,
    /// The socket's unacknowledged bytes at the last look: a change means
    /// the client is reading.
    send_queue: usize,
}

pub struct OwnStack {
    iface: Interface,
    sockets: SocketSet<'static>,
    http: [(SocketHandle, HttpConn); HTTP_SOCKETS],
    /// Who may hold the HTTP slots, and for how long.
    conns: Connections,
    /// Its addresses with prefix lengths (the IPv6 link-local one too).
    pub ips: Vec<(IpAddr, u8)>,
    pub mac: EthernetAddress,
}

impl OwnStack {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dp: &mut Datapath,
        mac: [u8; 6],
        ips: Vec<(IpAddr, u8)>,
        gateways: &[IpAddr],
        metrics_allow: AllowList,
        now_ms: u64,
        seed: u64,
    ) -> Self {
        let mac = EthernetAddress(mac);
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        config.random_seed = seed;
        let (rx, tx) = dp.own_queues();
        let mut device = QueueDevice { rx, tx };
        let mut iface = Interface::new(config, &mut device, Instant::from_millis(now_ms as i64));
        iface.update_ip_addrs(|addrs| {
            for &(ip, prefix) in &ips {
                let _ = addrs.push(IpCidr::new(ip.into(), prefix));
            }
        });
        for gw in gateways {
            let _ = match *gw {
                IpAddr::V4(gw) => iface.routes_mut().add_default_ipv4_route(gw).map(|_| ()),
                IpAddr::V6(gw) => iface.routes_mut().add_default_ipv6_route(gw).map(|_| ()),
            };
        }
        let mut sockets = SocketSet::new(vec![]);
        let http = core::array::from_fn(|_| {
            let rx = tcp::SocketBuffer::new(vec![0; 4096]);
            let tx = tcp::SocketBuffer::new(vec![0; 16384]);
            (sockets.add(tcp::Socket::new(rx, tx)), HttpConn::default())
        });
        Self {
            iface,
            sockets,
            http,
            conns: Connections::new(HTTP_SOCKETS, Limits::DEFAULT, metrics_allow),
            ips,
            mac,
        }
    }

    /// The clients `GET /metrics` is served to (empty: all).
    pub fn metrics_allow(&self) -> &AllowList {
        self.conns.allow()
    }

    /// The HTTP server's counters, as `Snapshot::extra` rows.
    pub fn counter_rows(&self) -> [(&'static str, &'static str, u64); 4] {
        self.conns.counters.rows()
    }

    /// Runs the stack: frames from the datapath in, frames to it out, and
    /// the HTTP connections served.
    pub fn poll(&mut self, dp: &mut Datapath, now_ms: u64) {
        let ts = Instant::from_millis(now_ms as i64);
        {
            let (rx, tx) = dp.own_queues();
            let mut device = QueueDevice { rx, tx };
            self.iface.poll(ts, &mut device, &mut self.sockets);
        }
        for (i, (handle, conn)) in self.http.iter_mut().enumerate() {
            let socket = self.sockets.get_mut::<tcp::Socket>(*handle);
            let seen = match (socket.state(), socket.remote_endpoint()) {
                (tcp::State::Listen, _) => Socket::Listening,
                (tcp::State::Closed | tcp::State::TimeWait, _) | (_, None) => Socket::Closed,
                (_, Some(peer)) => Socket::Connected(peer.addr.into()),
            };
            match self.conns.check(i, seen, now_ms) {
                Action::None => continue,
                Action::Reset => {
                    // An RST goes out at the next interface poll; the socket
                    // listens again after it.
                    socket.abort();
                    continue;
                }
                Action::Serve => {}
            }
            if conn.response.is_none() && socket.can_recv() {
                let _ = socket.recv(|data| {
                    let room = MAX_REQUEST.saturating_sub(conn.request.len());
                    let take = data.len().min(room);
                    conn.request.extend_from_slice(&data[..take]);
                    (data.len(), ())
                });
                if let Some(query) = capture_request(&conn.request) {
                    // `GET /capture[?spec]`, the same clients as /metrics.
                    let (head, stream) = crate::capture::http_start(query, dp);
                    conn.response = Some((head, 0));
                    conn.capture = stream;
                    self.conns.answered(i, now_ms);
                } else {
                    let conns = &self.conns;
                    let metrics = || {
                        let mut snap = Snapshot::take(dp, now_ms);
                        let mut rows = conns.counters.rows();
                        // This answer counts itself.
                        rows[0].2 += 1;
                        snap.extra.extend(rows);
                        snap.extra.extend(crate::capture::counter_rows());
                        render_prometheus(&snap)
                    };
                    if let Some(resp) = http_response(&conn.request, metrics) {
                        conn.response = Some((resp.into_bytes(), 0));
                        self.conns.answered(i, now_ms);
                    }
                }
            }
            if let (Some((resp, sent)), Some(stream)) = (&mut conn.response, &mut conn.capture) {
                // A capture's frames follow as they come; a live capture
                // keeps the connection from counting as idle.
                if *sent >= resp.len() {
                    let (piece, done) = stream.next_piece(8192);
                    *resp = piece;
                    *sent = 0;
                    if done {
                        conn.capture = None;
                    } else if stream.live() {
                        self.conns.progress(i, now_ms);
                    }
                }
            }
            if let Some((resp, sent)) = &mut conn.response {
                if socket.can_send() && *sent < resp.len() {
                    let n = socket.send_slice(&resp[*sent..]).unwrap_or(0);
                    *sent += n;
                    if n > 0 {
                        self.conns.progress(i, now_ms);
                    }
                }
                if socket.send_queue() != conn.send_queue {
                    conn.send_queue = socket.send_queue();
                    self.conns.progress(i, now_ms);
                }
                if *sent >= resp.len() && conn.capture.is_none() {
                    socket.close();
                }
            }
        }
        if let Some(i) = self.conns.evict() {
            // Every slot is taken: the connection that has waited longest
            // for its request makes room for the next client.
            self.sockets.get_mut::<tcp::Socket>(self.http[i].0).abort();
        }
        {
            let (rx, tx) = dp.own_queues();
            let mut device = QueueDevice { rx, tx };
            self.iface.poll(ts, &mut device, &mut self.sockets);
        }
        // Only now, after any RST went out: listening resets the socket's
        // connection state, and an aborted one would leave silently.
        for (i, (handle, conn)) in self.http.iter_mut().enumerate() {
            let socket = self.sockets.get_mut::<tcp::Socket>(*handle);
            if !socket.is_open() {
                *conn = HttpConn::default();
                let _ = socket.listen(HTTP_PORT);
                self.conns.released(i);
            }
        }
    }
}
