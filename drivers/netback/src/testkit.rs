//! A netfront simulator over [`FakeHypervisor`], for tests of netback and of
//! the crates that use it, and the fuzz entry point. It plays the toolstack
//! (creating and removing vifs as xl does) and the guest's netfront: rings
//! initialised as `SHARED_RING_INIT` does, keys written as Linux netfront
//! writes them, frames sent in slots of a chosen size, receive buffers
//! posted. Raw methods let a test be a malicious frontend.
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use hypervisor::{
    DomId, EvtchnPort, FakeHypervisor, FakePage, GrantRef, SharedPage, XenbusState, PAGE_SIZE,
};

use crate::ring::RING_HEADER;
use crate::wire::{
    ExtraInfo, RxRequest, RxResponse, TxRequest, TxResponse, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, RX_SLOT, TX_SLOT, XEN_NETIF_EXTRA_FLAG_MORE,
};
use crate::{Config, Netback, VifId};

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
const RING: u32 = 256;

/// The toolstack's side of `xl create` with `vif=['backend=<backend>,mac=…,ip=…']`:
/// the backend and frontend directories (written by domain 0), and the
/// frontend domain. Returns that vif's frontend, still Initialising.
pub fn create_vif(
    hv: &mut FakeHypervisor,
    backend: DomId,
    fe: DomId,
    handle: u32,
    mac: &str,
    ip: &str,
) -> FakeFrontend {
    hv.add_domain(fe);
    let be_path = format!("/local/domain/{backend}/backend/vif/{fe}/{handle}");
    let fe_path = format!("/local/domain/{fe}/device/vif/{handle}");
    for (k, v) in [
        ("frontend", fe_path.as_str()),
        ("frontend-id", &format!("{fe}")),
        ("online", "1"),
        ("handle", &format!("{handle}")),
        ("mac", mac),
        ("ip", ip),
        ("type", "vif"),
        ("state", "1"),
    ] {
        hv.xs_write_as(0, &format!("{be_path}/{k}"), v)
            .expect("toolstack writes");
    }
    for (k, v) in [
        ("backend", be_path.as_str()),
        ("backend-id", &format!("{backend}")),
        ("handle", &format!("{handle}")),
        ("mac", mac),
        ("state", "1"),
    ] {
        hv.xs_write_as(0, &format!("{fe_path}/{k}"), v)
            .expect("toolstack writes");
    }
    FakeFrontend::new(fe, handle, backend, fe_path, be_path)
}

/// A TCP frame from 10.0.0.1:40000 to 10.0.0.2:5201 (IPv4, or fd00::1 to
/// fd00::2) with `payload` bytes of `fill` after a 20-byte TCP header,
/// lengths set, checksums not: a GSO super-frame as netfront sends one.
pub fn tcp_frame(v6: bool, payload: usize, fill: u8) -> Vec<u8> {
    let l3 = if v6 { 40 } else { 20 };
    let mut f = vec![fill; 14 + l3 + 20 + payload];
    f[..14].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
    f[14..14 + l3 + 20].fill(0);
    if v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        let plen = (20 + payload).min(0xffff) as u16;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        f[20] = 6;
        f[21] = 64;
        f[22] = 0xfd;
        f[37] = 1;
        f[38] = 0xfd;
        f[53] = 2;
    } else {
        f[14] = 0x45;
        let total = (40 + payload).min(0xffff) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    }
    let t = 14 + l3;
    f[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
    f[t + 2..t + 4].copy_from_slice(&5201u16.to_be_bytes());
    f[t + 4..t + 8].copy_from_slice(&1u32.to_be_bytes());
    f[t + 12] = 0x50;
    f[t + 13] = 0x18; // PSH ACK
    f
}

/// The toolstack removes a vif (after both ends reached Closed).
pub fn remove_vif(hv: &mut FakeHypervisor, f: &FakeFrontend) {
    let _ = hv.xs_rm_as(0, &f.backend_path);
    let _ = hv.xs_rm_as(0, &f.path);
}

/// One granted ring page and the frontend's private indices for it.
struct FrontRing {
    gref: GrantRef,
    page: Arc<FakePage>,
    req_prod_pvt: u32,
    rsp_cons: u32,
}

impl FrontRing {
    fn new(hv: &mut FakeHypervisor, fe: DomId, backend: DomId) -> Self {
        let gref = hv
            .grant_page(fe, backend, false)
            .expect("frontend domain exists");
        let page = hv.granted_page(fe, gref).expect("just granted");
        // SHARED_RING_INIT: indices 0, event indices 1.
        page.store_u32(REQ_EVENT, 1);
        page.store_u32(RSP_EVENT, 1);
        Self {
            gref,
            page,
            req_prod_pvt: 0,
            rsp_cons: 0,
        }
    }

    fn put(&mut self, slot: usize, bytes: &[u8]) {
        let off = RING_HEADER + (self.req_prod_pvt % RING) as usize * slot;
        self.page.write(off, bytes);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
    }

    fn publish(&self) {
        self.page.store_u32(REQ_PROD, self.req_prod_pvt);
    }

    /// Responses published and not yet read, as raw slots; asks to be
    /// notified of the next one, as netfront does.
    fn take_responses(&mut self, slot: usize) -> Vec<[u8; TX_SLOT]> {
        let prod = self.page.load_u32(RSP_PROD);
        let mut out = Vec::new();
        while self.rsp_cons != prod && out.len() < RING as usize {
            let mut b = [0u8; TX_SLOT];
            self.page.read(
                RING_HEADER + (self.rsp_cons % RING) as usize * slot,
                &mut b[..slot],
            );
            out.push(b);
            self.rsp_cons = self.rsp_cons.wrapping_add(1);
        }
        self.page
            .store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        out
    }
}

/// One queue of a netfront: rings and event channel(s).
struct FrontQueue {
    tx: FrontRing,
    rx: FrontRing,
    tx_port: EvtchnPort,
    rx_port: EvtchnPort,
}

/// A frame the backend delivered, as netfront sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// The bytes, or the status of an error response.
    pub data: Result<Vec<u8>, i16>,
    /// The first response's flags (`NETRXF_*`).
    pub flags: u16,
    /// The extra-info slots that followed the first response.
    pub extras: Vec<ExtraInfo>,
}

/// A guest's netfront for one vif. See the module documentation.
pub struct FakeFrontend {
    pub domid: DomId,
    pub handle: u32,
    pub backend: DomId,
    /// `/local/domain/<domid>/device/vif/<handle>`.
    pub path: String,
    /// `/local/domain/<backend>/backend/vif/<domid>/<handle>`.
    pub backend_path: String,
    /// Every queue's rings and ports; the raw and frame methods act on
    /// queue `queue`.
    queues: Vec<FrontQueue>,
    queue: usize,
    /// Queue 0's (TX) event channel.
    pub port: Option<EvtchnPort>,
    /// Queues `setup` creates: 1 writes the keys in the frontend
    /// directory, more write `multi-queue-num-queues` and `queue-<n>/`.
    pub num_queues: usize,
    /// `setup` writes `event-channel-tx` and `-rx` instead of
    /// `event-channel`.
    pub split: bool,
    /// `setup` writes `feature-gso-tcpv4`/`-tcpv6` (takes GSO on RX).
    pub gso: bool,
    /// `setup` writes `feature-no-csum-offload` (wants complete
    /// checksums on RX).
    pub no_csum: bool,
    next_id: u16,
    /// Posted receive buffers by request id.
    rx_bufs: BTreeMap<u16, (GrantRef, Arc<FakePage>)>,
    /// Byte every transmit data page is filled with before the frame is
    /// written into it (to see what a backend copies beyond the frame).
    pub tx_fill: u8,
    /// Frames sent with this flag (e.g. `NETTXF_CSUM_BLANK`).
    pub tx_flags: u16,
}

impl FakeFrontend {
    pub fn new(
        domid: DomId,
        handle: u32,
        backend: DomId,
        path: String,
        backend_path: String,
    ) -> Self {
        Self {
            domid,
            handle,
            backend,
            path,
            backend_path,
            queues: Vec::new(),
            queue: 0,
            port: None,
            num_queues: 1,
            split: false,
            gso: false,
            no_csum: false,
            next_id: 0,
            rx_bufs: BTreeMap::new(),
            tx_fill: 0,
            tx_flags: 0,
        }
    }

    fn write(&self, hv: &mut FakeHypervisor, key: &str, value: &str) {
        let _ = hv.xs_write_as(self.domid, &format!("{}/{}", self.path, key), value);
    }

    /// Writes the frontend's `state` node.
    pub fn set_state(&self, hv: &mut FakeHypervisor, s: XenbusState) {
        self.write(hv, "state", s.as_str());
    }

    /// Writes any key of the frontend's directory (malicious values too).
    pub fn write_key(&self, hv: &mut FakeHypervisor, key: &str, value: &str) {
        self.write(hv, key, value);
    }

    /// The backend's `state` node.
    pub fn backend_state(&self, hv: &FakeHypervisor) -> XenbusState {
        hv.xs_get(&format!("{}/state", self.backend_path))
            .and_then(|s| s.parse().ok())
            .map_or(XenbusState::Unknown, XenbusState::from_raw)
    }

    /// Fresh rings and event channel(s), and their keys, as netfront's
    /// `talk_to_netback` writes them (the state is left alone): as many
    /// queues as `num_queues`, split channels if `split`.
    pub fn setup(&mut self, hv: &mut FakeHypervisor) {
        for q in self.queues.drain(..) {
            let _ = hv.close_as(self.domid, q.tx_port);
            if q.rx_port != q.tx_port {
                let _ = hv.close_as(self.domid, q.rx_port);
            }
        }
        let n = self.num_queues.max(1);
        for i in 0..n {
            let tx = FrontRing::new(hv, self.domid, self.backend);
            let rx = FrontRing::new(hv, self.domid, self.backend);
            let tx_port = hv.alloc_unbound_as(self.domid, self.backend).expect("port");
            let rx_port = if self.split {
                hv.alloc_unbound_as(self.domid, self.backend).expect("port")
            } else {
                tx_port
            };
            let dir = if n == 1 {
                String::new()
            } else {
                format!("queue-{i}/")
            };
            self.write(hv, &format!("{dir}tx-ring-ref"), &format!("{}", tx.gref));
            self.write(hv, &format!("{dir}rx-ring-ref"), &format!("{}", rx.gref));
            if self.split {
                self.write(hv, &format!("{dir}event-channel-tx"), &format!("{tx_port}"));
                self.write(hv, &format!("{dir}event-channel-rx"), &format!("{rx_port}"));
            } else {
                self.write(hv, &format!("{dir}event-channel"), &format!("{tx_port}"));
            }
            self.queues.push(FrontQueue {
                tx,
                rx,
                tx_port,
                rx_port,
            });
        }
        if n > 1 {
            self.write(hv, "multi-queue-num-queues", &format!("{n}"));
        } else {
            let _ = hv.xs_rm_as(self.domid, &format!("{}/multi-queue-num-queues", self.path));
        }
        self.write(hv, "request-rx-copy", "1");
        self.write(hv, "feature-rx-notify", "1");
        self.write(hv, "feature-sg", "1");
        if self.gso {
            self.write(hv, "feature-gso-tcpv4", "1");
            self.write(hv, "feature-gso-tcpv6", "1");
        }
        if self.no_csum {
            self.write(hv, "feature-no-csum-offload", "1");
        }
        self.write(hv, "feature-ipv6-csum-offload", "1");
        self.queue = 0;
        self.port = self.queues.first().map(|q| q.tx_port);
        self.rx_bufs.clear();
    }

    /// Makes the frame and raw methods act on queue `q` (after `setup`).
    pub fn use_queue(&mut self, q: usize) {
        self.queue = q;
    }

    /// The queues `setup` made.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Whether the backend notified queue `q`'s TX (`rx` false) or RX
    /// event channel since the last call.
    pub fn take_queue_notification(&self, hv: &mut FakeHypervisor, q: usize, rx: bool) -> bool {
        self.queues.get(q).is_some_and(|fq| {
            let p = if rx { fq.rx_port } else { fq.tx_port };
            hv.take_pending_as(self.domid, p)
        })
    }

    /// Notifies the backend on queue `q`'s TX (`rx` false) or RX channel,
    /// as netfront does after posting requests.
    pub fn notify_queue(&self, hv: &mut FakeHypervisor, q: usize, rx: bool) {
        if let Some(fq) = self.queues.get(q) {
            let p = if rx { fq.rx_port } else { fq.tx_port };
            let _ = hv.send_as(self.domid, p);
        }
    }

    fn tx(&self) -> Option<&FrontRing> {
        self.queues.get(self.queue).map(|q| &q.tx)
    }

    fn tx_mut(&mut self) -> Option<&mut FrontRing> {
        self.queues.get_mut(self.queue).map(|q| &mut q.tx)
    }

    fn rx(&self) -> Option<&FrontRing> {
        self.queues.get(self.queue).map(|q| &q.rx)
    }

    fn rx_mut(&mut self) -> Option<&mut FrontRing> {
        self.queues.get_mut(self.queue).map(|q| &mut q.rx)
    }

    /// `setup` then Connected, as Linux netfront does on the backend's InitWait.
    pub fn connect(&mut self, hv: &mut FakeHypervisor) {
        self.setup(hv);
        self.set_state(hv, XenbusState::Connected);
    }

    /// Grant refs of the current queue's TX and RX ring pages.
    pub fn ring_refs(&self) -> Option<(GrantRef, GrantRef)> {
        Some((self.tx()?.gref, self.rx()?.gref))
    }

    /// Whether the backend notified us since the last call.
    pub fn take_notification(&self, hv: &mut FakeHypervisor) -> bool {
        self.port.is_some_and(|p| hv.take_pending_as(self.domid, p))
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Queues a frame in slots of at most `slot_len` bytes, each in its own
    /// granted page at `offset`, and publishes it. Returns the request ids.
    pub fn send(
        &mut self,
        hv: &mut FakeHypervisor,
        frame: &[u8],
        slot_len: usize,
        offset: u16,
    ) -> Vec<u16> {
        self.send_with_extras(hv, frame, slot_len, offset, &[])
    }

    /// A GSO frame as Linux netfront sends one: `NETTXF_csum_blank` and a
    /// GSO extra of `size` and `gso_type`, in page-sized slots.
    pub fn send_gso(
        &mut self,
        hv: &mut FakeHypervisor,
        frame: &[u8],
        size: u16,
        gso_type: u8,
    ) -> Vec<u16> {
        let flags = self.tx_flags;
        self.tx_flags |= crate::wire::NETTXF_CSUM_BLANK;
        let ids = self.send_with_extras(
            hv,
            frame,
            PAGE_SIZE,
            0,
            &[ExtraInfo::new_gso(size, gso_type)],
        );
        self.tx_flags = flags;
        ids
    }

    /// `send` with extra-info slots after the first (their `more` flags
    /// as given: a test may chain or break them).
    pub fn send_with_extras(
        &mut self,
        hv: &mut FakeHypervisor,
        frame: &[u8],
        slot_len: usize,
        offset: u16,
        extras: &[ExtraInfo],
    ) -> Vec<u16> {
        let slot_len = slot_len.clamp(1, PAGE_SIZE - usize::from(offset).min(PAGE_SIZE - 1));
        let chunks: Vec<&[u8]> = if frame.is_empty() {
            vec![&[][..]]
        } else {
            frame.chunks(slot_len).collect()
        };
        let mut ids = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let gref = hv
                .grant_page(self.domid, self.backend, true)
                .expect("grant");
            let page = hv.granted_page(self.domid, gref).expect("granted");
            page.fill(self.tx_fill);
            page.write(offset.into(), chunk);
            let more = if i + 1 < chunks.len() {
                NETTXF_MORE_DATA
            } else {
                0
            };
            let mut flags = more | if i == 0 { self.tx_flags } else { 0 };
            if i == 0 && !extras.is_empty() {
                flags |= NETTXF_EXTRA_INFO;
            }
            let size = if i == 0 {
                frame.len() as u16
            } else {
                chunk.len() as u16
            };
            let id = self.id();
            ids.push(id);
            self.push_tx_slot(
                &TxRequest {
                    gref,
                    offset,
                    flags,
                    id,
                    size,
                }
                .encode(),
            );
            if i == 0 {
                for e in extras {
                    self.push_tx_slot(&e.encode());
                }
            }
        }
        self.publish_tx();
        ids
    }

    /// A chain of extras: all but the last flagged `XEN_NETIF_EXTRA_FLAG_MORE`.
    pub fn chain(extras: &[ExtraInfo]) -> Vec<ExtraInfo> {
        let n = extras.len();
        extras
            .iter()
            .enumerate()
            .map(|(i, e)| ExtraInfo {
                flags: if i + 1 < n {
                    e.flags | XEN_NETIF_EXTRA_FLAG_MORE
                } else {
                    e.flags & !XEN_NETIF_EXTRA_FLAG_MORE
                },
                ..*e
            })
            .collect()
    }

    /// Writes a raw TX slot at the private producer (not yet published).
    pub fn push_tx_slot(&mut self, slot: &[u8; TX_SLOT]) {
        if let Some(tx) = self.tx_mut() {
            tx.put(TX_SLOT, slot);
        }
    }

    /// Publishes the TX slots written so far.
    pub fn publish_tx(&self) {
        if let Some(tx) = self.tx() {
            tx.publish();
        }
    }

    /// Writes any value into the TX ring's `req_prod`.
    pub fn set_tx_req_prod(&self, v: u32) {
        if let Some(tx) = self.tx() {
            tx.page.store_u32(REQ_PROD, v);
        }
    }

    /// Writes any value into the RX ring's `req_prod`.
    pub fn set_rx_req_prod(&self, v: u32) {
        if let Some(rx) = self.rx() {
            rx.page.store_u32(REQ_PROD, v);
        }
    }

    /// Writes any value into the RX ring's `rsp_event`: the response
    /// after which the frontend wants to be notified (netfront sets it
    /// to the next one after reading; one far ahead asks for none).
    pub fn set_rx_rsp_event(&self, v: u32) {
        if let Some(rx) = self.rx() {
            rx.page.store_u32(RSP_EVENT, v);
        }
    }

    /// The TX ring's published `req_prod` as this frontend tracks it.
    pub fn tx_req_prod(&self) -> u32 {
        self.tx().map_or(0, |t| t.req_prod_pvt)
    }

    /// TX responses published since the last call.
    pub fn tx_responses(&mut self) -> Vec<TxResponse> {
        let Some(tx) = self.tx_mut() else {
            return Vec::new();
        };
        tx.take_responses(TX_SLOT)
            .iter()
            .map(|b| TxResponse::parse(&[b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// Posts `n` receive buffers (fresh pages granted writable) and
    /// publishes them. Returns their grant refs.
    pub fn post_rx(&mut self, hv: &mut FakeHypervisor, n: usize) -> Vec<GrantRef> {
        let mut grefs = Vec::new();
        for _ in 0..n {
            let gref = hv
                .grant_page(self.domid, self.backend, false)
                .expect("grant");
            let page = hv.granted_page(self.domid, gref).expect("granted");
            let id = self.id();
            self.rx_bufs.insert(id, (gref, page));
            self.push_rx_slot(&RxRequest { id, gref }.encode());
            grefs.push(gref);
        }
        self.publish_rx();
        grefs
    }

    /// Writes a raw RX slot at the private producer (not yet published).
    pub fn push_rx_slot(&mut self, slot: &[u8; RX_SLOT]) {
        if let Some(rx) = self.rx_mut() {
            rx.put(RX_SLOT, slot);
        }
    }

    pub fn publish_rx(&self) {
        if let Some(rx) = self.rx() {
            rx.publish();
        }
    }

    /// Pages of every receive buffer posted since the last `setup`.
    pub fn rx_pages(&self) -> Vec<Arc<FakePage>> {
        self.rx_bufs.values().map(|(_, p)| p.clone()).collect()
    }

    /// Frames the backend delivered since the last call, reassembled from
    /// their slots: `Ok(bytes)` or `Err(status)` for an error response.
    pub fn rx_frames(&mut self) -> Vec<Result<Vec<u8>, i16>> {
        self.rx_frames_meta().into_iter().map(|f| f.data).collect()
    }

    /// `rx_frames` with each frame's flags and extra-info slots.
    pub fn rx_frames_meta(&mut self) -> Vec<RxFrame> {
        let queue = self.queue;
        let Some(rx) = self.queues.get_mut(queue).map(|q| &mut q.rx) else {
            return Vec::new();
        };
        let mut frames = Vec::new();
        let mut cur: Option<RxFrame> = None;
        // After a first response with NETRXF_extra_info: extras follow.
        let mut extra_next = false;
        // The frame ended in its first slot, extras still to come.
        let mut done_after_extras = false;
        for b in rx.take_responses(RX_SLOT) {
            if extra_next {
                let mut slot = [0u8; TX_SLOT];
                slot[..RX_SLOT].copy_from_slice(&b[..RX_SLOT]);
                let e = ExtraInfo::parse(&slot);
                extra_next = e.more();
                if let Some(f) = cur.as_mut() {
                    f.extras.push(e);
                }
                if !extra_next && done_after_extras {
                    done_after_extras = false;
                    frames.extend(cur.take());
                }
                continue;
            }
            let r = RxResponse::parse(&[b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let first = cur.is_none();
            let acc = cur.get_or_insert(RxFrame {
                data: Ok(Vec::new()),
                flags: r.flags,
                extras: Vec::new(),
            });
            if first && r.flags & NETRXF_EXTRA_INFO != 0 {
                extra_next = true;
                done_after_extras = r.flags & NETRXF_MORE_DATA == 0;
            }
            if r.status < 0 {
                acc.data = Err(r.status);
            } else if let (Ok(bytes), Some((_, page))) =
                (acc.data.as_mut(), self.rx_bufs.get(&r.id))
            {
                let start = usize::from(r.offset).min(PAGE_SIZE);
                let len = (r.status as usize).min(PAGE_SIZE - start);
                let mut chunk = vec![0u8; len];
                page.read(start, &mut chunk);
                bytes.extend_from_slice(&chunk);
            }
            if r.flags & NETRXF_MORE_DATA == 0 && !extra_next {
                frames.extend(cur.take());
            }
        }
        frames.extend(cur);
        frames
    }
}

pub mod coalesce;
pub mod fuzz;

/// A fuzz input read front to back; past its end every read is 0, so any
/// bytes are a whole run.
pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

impl Input<'_> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }
}

/// A vif's id: the frontend's domain, handle 0.
pub fn vif_id(fe: DomId) -> VifId {
    VifId {
        frontend: fe,
        handle: 0,
    }
}

/// Netback started as domain `be` with `config`, on a fresh fake.
pub fn start_netback(be: DomId, config: Config) -> (FakeHypervisor, Netback<FakeHypervisor>) {
    let mut hv = FakeHypervisor::new(be);
    let nb = Netback::new(&mut hv, config).unwrap();
    (hv, nb)
}

/// Polls netback's control plane until the watch events stop (a test
/// bug if they never do).
pub fn settle(hv: &mut FakeHypervisor, nb: &mut Netback<FakeHypervisor>) {
    for _ in 0..10 {
        if nb.poll_control(hv) == 0 {
            return;
        }
    }
    panic!("watch events keep coming");
}
