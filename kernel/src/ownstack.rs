//! The domain's own IP stack (smoltcp) on its own IP: ARP, ICMP echo, and an
//! HTTP server for `GET /metrics`. Its frames go through the datapath like
//! everything else, so they take the claim's own-traffic path (steps 3-6).
use aggdom_metrics::{http_response, render_prometheus, Snapshot, MAX_REQUEST};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use datapath::{Datapath, FrameQueue};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

/// The port `GET /metrics` is served on.
pub const HTTP_PORT: u16 = 80;
/// Connections served at once.
const HTTP_SOCKETS: usize = 2;

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
    response: Option<(String, usize)>,
}

pub struct OwnStack {
    iface: Interface,
    sockets: SocketSet<'static>,
    http: [(SocketHandle, HttpConn); HTTP_SOCKETS],
    pub ip: Ipv4Address,
    pub mac: EthernetAddress,
    /// Scrapes served.
    pub http_requests: u64,
}

impl OwnStack {
    pub fn new(
        dp: &mut Datapath,
        mac: [u8; 6],
        ip: core::net::Ipv4Addr,
        prefix: u8,
        gateway: Option<core::net::Ipv4Addr>,
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
            let _ = addrs.push(IpCidr::new(ip.into(), prefix));
        });
        if let Some(gw) = gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
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
            ip,
            mac,
            http_requests: 0,
        }
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
        for (handle, conn) in &mut self.http {
            let socket = self.sockets.get_mut::<tcp::Socket>(*handle);
            if !socket.is_open() {
                *conn = HttpConn::default();
                let _ = socket.listen(HTTP_PORT);
                continue;
            }
            if conn.response.is_none() && socket.can_recv() {
                let _ = socket.recv(|data| {
                    let room = MAX_REQUEST.saturating_sub(conn.request.len());
                    let take = data.len().min(room);
                    conn.request.extend_from_slice(&data[..take]);
                    (data.len(), ())
                });
                let served = self.http_requests;
                let metrics = || {
                    let mut snap = Snapshot::take(dp, now_ms);
                    snap.extra.push((
                        "aggdom_http_requests_total",
                        "Metrics scrapes served.",
                        served + 1,
                    ));
                    render_prometheus(&snap)
                };
                if let Some(resp) = http_response(&conn.request, metrics) {
                    self.http_requests += 1;
                    conn.response = Some((resp, 0));
                }
            }
            if let Some((resp, sent)) = &mut conn.response {
                if socket.can_send() && *sent < resp.len() {
                    *sent += socket.send_slice(&resp.as_bytes()[*sent..]).unwrap_or(0);
                }
                if *sent >= resp.len() {
                    socket.close();
                }
            }
        }
        {
            let (rx, tx) = dp.own_queues();
            let mut device = QueueDevice { rx, tx };
            self.iface.poll(ts, &mut device, &mut self.sockets);
        }
    }
}
