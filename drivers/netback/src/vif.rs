//! One vif: the xenbus backend state machine that connects and
//! disconnects it, and its connection (mapped rings, bound event channel,
//! frame buffer) while connected.
//!
//! The state machine is level-triggered and never waits for xenstored: on
//! any watch event for the vif, [`Vif::step`] requests every key it decides
//! on at once ([`crate::snapshot`]), and once all replies are in it moves
//! towards what they call for, queueing its writes. An event during a read
//! round asks for one more round, so coalesced or late events are
//! harmless. It follows Linux xen-netback's `frontend_changed`, plus
//! reconnection to a frontend that is already Connected (aggdom restarted)
//! and going straight back to InitWait when a frontend restarts without
//! closing first. A vif it cannot serve goes to Closing with an `error`
//! node, as Linux's `xenbus_dev_fatal` leaves one.
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use hypervisor::{
    DomId, EvtchnPort, Hypervisor, MapAccess, RequestId, XenError, XenbusState, XsOp,
};
use nic::MacAddr;

use crate::coalesce::Coalescer;
use crate::config::Config;
use crate::counters::{Fatal, VifCounters};
use crate::error::ConnectError;
use crate::rate::Credit;
use crate::ring::BackRing;
use crate::rx::RxStage;
use crate::snapshot::{Key, QKey, ReadRound, Snapshot};
use crate::wire::{RX_SLOT, TX_SLOT, XEN_NETIF_MAX_TX_SIZE};

/// Which vif: the frontend domain and the device handle (the two path
/// components under `backend/vif/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VifId {
    pub frontend: DomId,
    pub handle: u32,
}

/// One queue of a connected vif: a TX and an RX ring, and the event
/// channel(s) they signal on.
pub(crate) struct Queue<P> {
    pub(crate) tx_page: P,
    pub(crate) rx_page: P,
    pub(crate) tx: BackRing<TX_SLOT>,
    pub(crate) rx: BackRing<RX_SLOT>,
    /// The TX ring's event channel; the RX ring's too unless split.
    pub(crate) tx_port: EvtchnPort,
    /// The RX ring's event channel (`event-channel-rx`), or `tx_port`.
    pub(crate) rx_port: EvtchnPort,
}

impl<P> Queue<P> {
    fn split(&self) -> bool {
        self.tx_port != self.rx_port
    }
}

/// What the frontend takes on RX, from its `feature-*` keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxFeatures {
    /// Multi-slot RX frames (`feature-sg`).
    pub(crate) sg: bool,
    /// Large TCP frames with a GSO extra (`feature-gso-tcpv4/6`), when
    /// netback offers GSO.
    pub(crate) gso4: bool,
    pub(crate) gso6: bool,
    /// Partial checksums (`NETRXF_csum_blank`): IPv4 unless
    /// `feature-no-csum-offload`, IPv6 with `feature-ipv6-csum-offload`.
    pub(crate) csum4: bool,
    pub(crate) csum6: bool,
    /// The frontend notifies when it posts RX buffers after netback asked
    /// through `req_event` (`feature-rx-notify`). Without it, only polling
    /// finds new buffers.
    pub(crate) notify: bool,
}

/// The queues of a connected vif, and its frame buffers.
pub(crate) struct Connection<P> {
    pub(crate) queues: Vec<Queue<P>>,
    pub(crate) rx_features: RxFeatures,
    /// Guest frames are copied here: `max_frame_len` bytes, or 64 KiB
    /// when GSO is offered. Allocated once per connection.
    pub(crate) buf: Vec<u8>,
    /// Guest TX segments and completed frames are built here,
    /// `max_frame_len` bytes.
    pub(crate) seg: Vec<u8>,
    /// Frames for the guest wait here for their batch's copy.
    pub(crate) rx_stage: RxStage,
    /// A flow's segments for the guest become one super-frame here, for a
    /// frontend that takes GSO ([`crate::coalesce`]).
    pub(crate) rx_gro: Coalescer,
    /// The frontend keys this connection was made from.
    keys: Vec<RingKeys>,
}

/// One queue's `tx-ring-ref`, `rx-ring-ref` and event channel(s) as the
/// frontend wrote them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingKeys {
    tx_ref: u32,
    rx_ref: u32,
    /// `event-channel`, or `event-channel-tx` with `event-channel-rx`.
    evtchn: u32,
    evtchn_rx: Option<u32>,
}

/// Queues the frontend asked for: `multi-queue-num-queues`, 1 if absent.
fn num_queues(s: &Snapshot) -> Option<u32> {
    match s.get(Key::NumQueues) {
        Some(Ok(_)) => s.u32(Key::NumQueues),
        _ => Some(1),
    }
}

fn ring_keys(s: &Snapshot) -> Option<Vec<RingKeys>> {
    let n = num_queues(s)? as usize;
    if n > 1 && s.queues_read() != n {
        return None;
    }
    (0..n)
        .map(|q| {
            let tx_ref = s.queue_u32(q, QKey::TxRingRef)?;
            let rx_ref = s.queue_u32(q, QKey::RxRingRef)?;
            let (evtchn, evtchn_rx) = match s.queue_u32(q, QKey::EventChannel) {
                Some(p) => (p, None),
                None => (
                    s.queue_u32(q, QKey::EventChannelTx)?,
                    Some(s.queue_u32(q, QKey::EventChannelRx)?),
                ),
            };
            Some(RingKeys {
                tx_ref,
                rx_ref,
                evtchn,
                evtchn_rx,
            })
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    Present,
    Gone,
}

/// The keys written into the backend directory when a vif is first seen:
/// what this netback implements, as `config` turns it on.
fn features(config: &Config) -> [(&'static str, String); 9] {
    let on = |b: bool| String::from(if b { "1" } else { "0" });
    [
        ("feature-sg", on(true)),
        ("feature-rx-copy", on(true)),
        ("feature-rx-flip", on(false)),
        ("feature-gso-tcpv4", on(config.gso)),
        ("feature-gso-tcpv6", on(config.gso)),
        ("feature-ipv6-csum-offload", on(true)),
        ("feature-multicast-control", on(false)),
        (
            "feature-split-event-channels",
            on(config.split_event_channels),
        ),
        ("multi-queue-max-queues", format!("{}", config.max_queues)),
    ]
}

/// How long an unplugged vif stays Closed before netback removes its
/// backend directory. libxl writes `online` 0 and Closing, commits, then
/// starts watching `state` for Closed; a directory already gone by the
/// time it reads fails the detach ("unable to remove device"), as seen
/// on the rig when netback removed it at once. xl devd in a Linux driver
/// domain removes it after running the hotplug script, later still. Two
/// seconds leave libxl ample time on an emulated CPU and stay far below
/// its 10 s wait for the removal.
pub const UNPLUG_GRACE_NS: u64 = 2_000_000_000;

/// Read rounds one [`Vif::step`] may finish: with a xenstored that
/// answers at once (the fake), a vif settles in one poll; a real one takes
/// a round trip per round, across polls.
const ROUNDS_PER_STEP: usize = 4;

/// A vif served by netback: see the module documentation.
pub struct Vif<H: Hypervisor> {
    pub(crate) id: VifId,
    pub(crate) config: Config,
    backend: String,
    frontend: Option<String>,
    fe_watch: Option<String>,
    /// The state this instance last wrote; `Unknown` before the first write
    /// (whatever a previous aggdom left in xenstore is not trusted).
    state: XenbusState,
    probed: bool,
    pub(crate) conn: Option<Connection<H::Page>>,
    mac: Option<MacAddr>,
    ips: Vec<(IpAddr, u8)>,
    last_error: Option<ConnectError>,
    /// Why the datapath refused the vif, until the frontend restarts.
    refused: Option<String>,
    pub(crate) counters: VifCounters,
    /// The `rate` limit on guest TX and its credit.
    pub(crate) credit: Credit,
    /// The `rate` key holds a value that does not parse (counted once).
    pub(crate) rate_bad: bool,
    /// A watch event came: read xenstore again.
    dirty: bool,
    round: Option<ReadRound>,
    /// Writes in flight whose failure is counted.
    writes: Vec<RequestId>,
    /// When to remove the backend directory of an unplugged, Closed vif
    /// (see [`UNPLUG_GRACE_NS`]).
    remove_at: Option<u64>,
    /// The backend directory's removal was asked for.
    unplugged: bool,
    /// The toolstack removed the backend directory and a write of ours
    /// that was already decided re-created it: [`Vif::remove`] removes it
    /// again.
    resurrected: bool,
}

impl<H: Hypervisor> Vif<H> {
    pub(crate) fn new(id: VifId, backend: String, config: Config) -> Self {
        Self {
            id,
            config,
            backend,
            frontend: None,
            fe_watch: None,
            state: XenbusState::Unknown,
            probed: false,
            conn: None,
            mac: None,
            ips: Vec::new(),
            last_error: None,
            refused: None,
            counters: VifCounters::default(),
            credit: Credit::UNLIMITED,
            rate_bad: false,
            dirty: true,
            round: None,
            writes: Vec::new(),
            remove_at: None,
            unplugged: false,
            resurrected: false,
        }
    }

    pub fn id(&self) -> VifId {
        self.id
    }

    /// The backend state this instance last wrote.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// Rings mapped and event channel bound: frames move.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The guest's MAC, from the backend's `mac` key (xl's `vif=['mac=…']`).
    pub fn mac(&self) -> Option<MacAddr> {
        self.mac
    }

    /// The guest's addresses with prefix lengths, from the backend's `ip`
    /// key (libxl writes it space-separated): IPv4 or IPv6, an address
    /// (`/32`, `/128` when no length is given) or a prefix (`fd00::/64`).
    /// Entries that do not parse are left out.
    pub fn ips(&self) -> &[(IpAddr, u8)] {
        &self.ips
    }

    pub fn counters(&self) -> &VifCounters {
        &self.counters
    }

    /// Queues connected (0 when not connected).
    pub fn queues(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.queues.len())
    }

    /// The local event channel ports of every queue (TX and RX, the same
    /// port twice unless split): what an event-driven loop waits on for
    /// this vif.
    pub fn event_ports(&self) -> impl Iterator<Item = EvtchnPort> + '_ {
        self.conn
            .iter()
            .flat_map(|c| c.queues.iter())
            .flat_map(|q| [q.tx_port, q.rx_port])
    }

    /// Whether the frontend notifies when it posts receive buffers
    /// (`feature-rx-notify`); if not, only polling finds them. Linux
    /// netback refuses such frontends; aggdom serves them, as it polls.
    pub fn rx_notify(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.rx_features.notify)
    }

    /// Whether the frontend takes GSO frames on RX (its
    /// `feature-gso-tcpv4`, `-tcpv6`, with `feature-sg`), when netback
    /// offers GSO.
    pub fn rx_gso(&self) -> (bool, bool) {
        self.conn.as_ref().map_or((false, false), |c| {
            let f = c.rx_features;
            (f.sg && f.gso4, f.sg && f.gso6)
        })
    }

    /// Why the last connection attempt failed, if it did.
    pub fn last_error(&self) -> Option<ConnectError> {
        self.last_error
    }

    /// Why the datapath refused this vif, if it did (see
    /// [`crate::Netback::refuse`]).
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// `/local/domain/<self>/backend/vif/<domid>/<handle>`.
    pub fn backend_path(&self) -> &str {
        &self.backend
    }

    /// Where a refusal is explained, as Linux's `xenbus_dev_fatal` writes
    /// it: `/local/domain/<self>/error/backend/vif/<domid>/<handle>/error`.
    pub fn error_path(&self) -> String {
        format!("{}/error", self.error_dir())
    }

    fn error_dir(&self) -> String {
        self.backend.replacen("/backend/", "/error/backend/", 1)
    }

    /// Xenstore requests still unanswered (a read round or writes).
    pub fn requests_in_flight(&self) -> usize {
        self.writes.len() + usize::from(self.round.is_some())
    }

    pub(crate) fn fe_token(id: VifId) -> String {
        format!("netback-fe/{}/{}", id.frontend, id.handle)
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{}", self.backend, name)
    }

    /// Something changed: read again at the next step.
    pub(crate) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Queues a request whose failure is counted when its reply comes.
    fn send(&mut self, hv: &mut H, op: XsOp<'_>) {
        match hv.submit(op) {
            Ok(id) => self.writes.push(id),
            Err(_) => self.counters.xenstore_errors += 1,
        }
    }

    fn set_state(&mut self, hv: &mut H, s: XenbusState) {
        let path = self.key("state");
        self.send(hv, XsOp::Write(&path, s.as_str().as_bytes()));
        self.state = s;
    }

    /// Tells the toolstack and the frontend why the vif is not served: an
    /// `error` node, then Closing.
    fn close_with_error(&mut self, hv: &mut H, errno: u32, why: &str) {
        let path = self.error_path();
        let text = format!("{errno} {why}");
        self.send(hv, XsOp::Write(&path, text.as_bytes()));
        self.set_state(hv, XenbusState::Closing);
    }

    /// Advances the vif as far as the replies that have come allow: files
    /// replies, decides on complete snapshots, starts a read round when an
    /// event asked for one. Never waits. Returns the replies and decisions
    /// handled, and whether the vif still exists.
    pub(crate) fn step(&mut self, hv: &mut H) -> (usize, Presence) {
        let mut work = self.collect_writes(hv);
        if self.remove_at.is_some_and(|at| hv.now_ns() >= at) {
            self.remove_at = None;
            self.unplugged = true;
            let dir = self.backend.clone();
            self.send(hv, XsOp::Rm(&dir));
            work += 1;
        }
        for _ in 0..ROUNDS_PER_STEP {
            if self.round.is_none() {
                if !self.dirty {
                    break;
                }
                self.dirty = false;
                self.round = Some(ReadRound::start(
                    hv,
                    &self.backend,
                    self.frontend.as_deref(),
                ));
            }
            let Some(round) = self.round.as_mut() else {
                break;
            };
            work += round.collect(hv);
            if !round.is_complete() {
                break;
            }
            if !round.short {
                // The frontend's keys must come from the directory the
                // backend names now, which the first round may not know.
                let wanted = round
                    .snapshot()
                    .text(Key::Frontend)
                    .filter(|p| p.starts_with('/'))
                    .map(ToString::to_string);
                if let Some(fe) = wanted {
                    if round.snapshot().frontend_read.as_deref() != Some(fe.as_str()) {
                        round.read_frontend(hv, &fe);
                        continue;
                    }
                    // Several queues: their keys are in `queue-<n>/`.
                    let n = num_queues(round.snapshot()).unwrap_or(0) as usize;
                    if n > 1 && n <= self.config.max_queues && round.snapshot().queues_read() != n {
                        round.read_queues(hv, &fe, n);
                        continue;
                    }
                }
            }
            let Some(round) = self.round.take() else {
                break;
            };
            if round.short || has_transient_error(round.snapshot()) {
                // Some reads could not be queued, or xenstored failed us:
                // deciding on holes could disconnect a working vif. Read
                // again on the next step.
                self.counters.xenstore_errors += 1;
                self.dirty = true;
                break;
            }
            work += 1;
            if self.decide(hv, &round.into_snapshot()) == Presence::Gone {
                return (work, Presence::Gone);
            }
        }
        (work, Presence::Present)
    }

    fn collect_writes(&mut self, hv: &mut H) -> usize {
        let before = self.writes.len();
        let mut failed = 0;
        self.writes.retain(|id| match hv.take_reply(*id) {
            Some(Ok(_)) => false,
            Some(Err(_)) => {
                failed += 1;
                false
            }
            None => true,
        });
        self.counters.xenstore_errors += failed;
        before - self.writes.len()
    }

    /// Reads the vif's configuration from the toolstack's keys.
    fn read_identity(&mut self, s: &Snapshot) {
        self.mac = s.text(Key::Mac).and_then(|m| m.trim().parse().ok());
        self.ips = s
            .text(Key::Ip)
            .map(|ips| ips.split_whitespace().filter_map(parse_ip).collect())
            .unwrap_or_default();
    }

    /// First sight of the vif: advertise features, report the hotplug step
    /// done (there is no hotplug script in aggdom). The ring keeps the
    /// order, so these land before any `state` written after them. An
    /// `mtu` the toolstack wrote stays (it is checked at connect); without
    /// one, the largest this backend carries is written.
    fn probe(&mut self, hv: &mut H, s: &Snapshot) {
        for (k, v) in features(&self.config) {
            let path = self.key(k);
            self.send(hv, XsOp::Write(&path, v.as_bytes()));
        }
        if s.bytes(Key::Mtu).is_none() {
            let (path, mtu) = (self.key("mtu"), format!("{}", self.config.mtu()));
            self.send(hv, XsOp::Write(&path, mtu.as_bytes()));
        }
        let path = self.key("hotplug-status");
        self.send(hv, XsOp::Write(&path, b"connected"));
        self.probed = true;
    }

    fn follow_frontend(&mut self, hv: &mut H, path: &str) {
        if self.frontend.as_deref() == Some(path) {
            return;
        }
        let token = Self::fe_token(self.id);
        if let Some(old) = self.fe_watch.take() {
            let _ = hv.send_forget(XsOp::Unwatch {
                path: &old,
                token: &token,
            });
        }
        let state_path = format!("{path}/state");
        self.send(
            hv,
            XsOp::Watch {
                path: &state_path,
                token: &token,
            },
        );
        self.fe_watch = Some(state_path);
        self.frontend = Some(path.to_string());
    }

    /// Moves the vif towards what the snapshot says. `Gone` once the
    /// toolstack has removed the backend directory.
    fn decide(&mut self, hv: &mut H, s: &Snapshot) -> Presence {
        if s.is_gone() {
            return Presence::Gone;
        }
        if self.probed && matches!(s.get(Key::Frontend), Some(Err(XenError::NoEnt))) {
            // The toolstack writes `frontend` with the directory and never
            // removes it alone: the directory was removed, and what is
            // there now is a write of ours (say `state`, decided on keys
            // read just before the removal) that re-created it, as
            // xenstore creates missing parents. Linux's xenbus avoids this
            // with a transaction that writes `state` only if it exists;
            // this client has none, so the vif removes what it re-created.
            self.resurrected = true;
            return Presence::Gone;
        }
        let Some(backend_state) = s.u32(Key::State).map(XenbusState::from_raw) else {
            return Presence::Present; // the toolstack is still writing
        };
        let (Some(fe_path), Some(fe_id)) = (s.text(Key::Frontend), s.u32(Key::FrontendId)) else {
            return Presence::Present;
        };
        if fe_id != u32::from(self.id.frontend) || !fe_path.starts_with('/') {
            // Not a vif this directory's name describes; do not serve it.
            return Presence::Present;
        }
        let fe_path = fe_path.to_string();
        self.follow_frontend(hv, &fe_path);
        if !self.probed {
            self.probe(hv, s);
        }
        self.read_identity(s);
        self.apply_rate(hv, s.text(Key::Rate));

        // The toolstack closes a vif (xl network-detach) by writing the
        // backend state itself.
        if backend_state == XenbusState::Closing
            && !matches!(
                self.state,
                XenbusState::Unknown | XenbusState::Closing | XenbusState::Closed
            )
        {
            self.disconnect(hv);
            self.state = XenbusState::Closing;
        }

        let online = s.u32(Key::Online) != Some(0);
        let fe_state = s
            .u32(Key::FrontendState)
            .map_or(XenbusState::Unknown, XenbusState::from_raw);
        match fe_state {
            XenbusState::Initialising | XenbusState::InitWait => {
                // A fresh frontend, or one that restarted: offer a new connection.
                self.disconnect(hv);
                self.refused = None;
                if self.state != XenbusState::InitWait && online {
                    self.set_state(hv, XenbusState::InitWait);
                }
            }
            XenbusState::Initialised | XenbusState::Connected => {
                let stale = self
                    .conn
                    .as_ref()
                    .is_some_and(|c| ring_keys(s).as_ref() != Some(&c.keys));
                if stale {
                    // New rings without us seeing the frontend restart (its
                    // Initialising and our InitWait coalesced away).
                    self.disconnect(hv);
                    self.refused = None;
                    self.state = XenbusState::InitWait;
                }
                let may_connect = matches!(
                    self.state,
                    XenbusState::Unknown | XenbusState::Initialising | XenbusState::InitWait
                );
                if self.conn.is_none() && may_connect && online {
                    match self.connect(hv, s) {
                        Ok(c) => {
                            self.conn = Some(c);
                            self.last_error = None;
                            self.counters.connects += 1;
                            let dir = self.error_dir();
                            let _ = hv.send_forget(XsOp::Rm(&dir));
                            self.set_state(hv, XenbusState::Connected);
                        }
                        Err(e) => {
                            self.last_error = Some(e);
                            self.counters.connect_failures += 1;
                            self.close_with_error(hv, e.errno(), &e.to_string());
                        }
                    }
                }
            }
            XenbusState::Closing => {
                self.disconnect(hv);
                if !matches!(self.state, XenbusState::Closing | XenbusState::Closed) {
                    self.set_state(hv, XenbusState::Closing);
                }
            }
            XenbusState::Closed => {
                self.disconnect(hv);
                if self.state != XenbusState::Closed {
                    self.set_state(hv, XenbusState::Closed);
                }
            }
            XenbusState::Unknown => {
                // No frontend (yet, or any more).
                self.disconnect(hv);
                match self.state {
                    XenbusState::Unknown => self.set_state(hv, XenbusState::InitWait),
                    XenbusState::InitWait | XenbusState::Closed => {}
                    _ => self.set_state(hv, XenbusState::Closed),
                }
            }
            XenbusState::Reconfiguring | XenbusState::Reconfigured | XenbusState::Other(_) => {}
        }
        if self.state == XenbusState::Unknown {
            // First sight, frontend in no state we act on: whatever a
            // previous aggdom left in `state` must not stand.
            self.set_state(hv, XenbusState::InitWait);
        }
        // Unplugged: xl network-detach and xl destroy write `online` 0 and
        // state Closing, wait for Closed, then wait for the backend domain
        // to remove the backend directory (in a Linux driver domain xl devd
        // does it once netback has unregistered the device); 10 s and an
        // error each otherwise. Linux netback waits for the frontend to
        // close first; here the rings are already unmapped, so there is
        // nothing to wait for, and a frontend that never closes (a dying
        // or hostile guest) cannot hold the toolstack up. The removal comes
        // UNPLUG_GRACE_NS later (`step`); the directory's watch brings it
        // back here as `Gone`.
        if !online && self.state == XenbusState::Closing {
            self.disconnect(hv);
            self.set_state(hv, XenbusState::Closed);
        }
        if online {
            self.remove_at = None;
        } else if !self.unplugged && self.remove_at.is_none() && self.state == XenbusState::Closed {
            self.remove_at = Some(hv.now_ns().saturating_add(UNPLUG_GRACE_NS));
        }
        Presence::Present
    }

    /// Checks the frontend's keys, maps every queue's rings and binds its
    /// event channel(s); undoes everything on failure.
    fn connect(&mut self, hv: &mut H, s: &Snapshot) -> Result<Connection<H::Page>, ConnectError> {
        if self.mac.is_none() {
            return Err(ConnectError::BadKey("mac"));
        }
        // xl's `mtu=`: honoured up to what this backend carries, refused
        // (not ignored) above it.
        if s.bytes(Key::Mtu).is_some() {
            let mtu = s.u32(Key::Mtu).ok_or(ConnectError::BadKey("mtu"))?;
            let max = self.config.mtu() as u32;
            if mtu > max || mtu < 68 {
                return Err(ConnectError::Mtu { asked: mtu, max });
            }
        }
        let n = num_queues(s).ok_or(ConnectError::BadKey("multi-queue-num-queues"))?;
        if n == 0 {
            return Err(ConnectError::BadKey("multi-queue-num-queues"));
        }
        if n as usize > self.config.max_queues {
            return Err(ConnectError::Unsupported("multi-queue-num-queues"));
        }
        if s.u32(Key::TxRingOrder).is_some_and(|n| n > 0)
            || s.u32(Key::RingPageOrder).is_some_and(|n| n > 0)
        {
            return Err(ConnectError::Unsupported("ring-page-order"));
        }
        let split = (0..n as usize).any(|q| {
            s.queue_u32(q, QKey::EventChannel).is_none()
                && s.queue_u32(q, QKey::EventChannelTx).is_some()
        });
        if split && !self.config.split_event_channels {
            return Err(ConnectError::Unsupported("feature-split-event-channels"));
        }
        let keys = ring_keys(s).ok_or_else(|| missing_key(s, n as usize))?;
        if s.u32(Key::RequestRxCopy) != Some(1) {
            return Err(ConnectError::Unsupported("rx page flipping"));
        }
        let flag = |k: Key| s.u32(k).is_some_and(|v| v != 0);
        let rx_features = RxFeatures {
            sg: flag(Key::FeatureSg),
            gso4: self.config.gso && flag(Key::FeGsoTcpv4),
            gso6: self.config.gso && flag(Key::FeGsoTcpv6),
            csum4: !flag(Key::FeNoCsumOffload),
            csum6: flag(Key::FeIpv6CsumOffload),
            notify: flag(Key::FeRxNotify),
        };

        let mut queues = Vec::with_capacity(keys.len());
        for k in &keys {
            match self.connect_queue(hv, k) {
                Ok(q) => queues.push(q),
                Err(e) => {
                    for q in queues {
                        release_queue(hv, q);
                    }
                    return Err(e);
                }
            }
        }
        let buf_len = if self.config.gso {
            XEN_NETIF_MAX_TX_SIZE
        } else {
            self.config.max_frame_len
        };
        self.credit_reset(hv.now_ns());
        Ok(Connection {
            queues,
            rx_features,
            buf: vec![0; buf_len],
            seg: vec![0; self.config.max_frame_len],
            rx_stage: RxStage::new(),
            rx_gro: if rx_features.sg && (rx_features.gso4 || rx_features.gso6) {
                Coalescer::new()
            } else {
                Coalescer::default()
            },
            keys,
        })
    }

    fn connect_queue(&mut self, hv: &mut H, k: &RingKeys) -> Result<Queue<H::Page>, ConnectError> {
        let domid = self.id.frontend;
        let tx_page = hv
            .map_grant(domid, k.tx_ref, MapAccess::ReadWrite)
            .map_err(|_| ConnectError::MapFailed)?;
        let rx_page = match hv.map_grant(domid, k.rx_ref, MapAccess::ReadWrite) {
            Ok(p) => p,
            Err(_) => {
                let _ = hv.unmap_grant(tx_page);
                return Err(ConnectError::MapFailed);
            }
        };
        let rings = BackRing::attach(&tx_page).and_then(|tx| Ok((tx, BackRing::attach(&rx_page)?)));
        let bound = match rings {
            Ok(rings) => bind(hv, domid, k).map(|ports| (rings, ports)),
            Err(_) => Err(ConnectError::BadRing),
        };
        let ((mut tx, mut rx), (tx_port, rx_port)) = match bound {
            Ok(b) => b,
            Err(e) => {
                let _ = hv.unmap_grant(tx_page);
                let _ = hv.unmap_grant(rx_page);
                return Err(e);
            }
        };
        // Ask for notifications of new requests; aggdom polls anyway.
        let _ = tx.final_check(&tx_page);
        let _ = rx.final_check(&rx_page);
        Ok(Queue {
            tx_page,
            rx_page,
            tx,
            rx,
            tx_port,
            rx_port,
        })
    }

    /// Closes the event channels and unmaps the rings, if connected.
    pub(crate) fn disconnect(&mut self, hv: &mut H) {
        if let Some(c) = self.conn.take() {
            for q in c.queues {
                release_queue(hv, q);
            }
            self.counters.disconnects += 1;
        }
    }

    /// A protocol violation: count it, drop the connection and tell the
    /// frontend (Closing, with the reason in the `error` node). It
    /// reconnects only after it restarts.
    pub(crate) fn fail(&mut self, hv: &mut H, why: Fatal) {
        self.counters.count_fatal(why);
        self.disconnect(hv);
        let text = format!("protocol violation: {}", why.name());
        self.close_with_error(hv, EPROTO, &text);
    }

    /// The datapath will not serve this vif: disconnect it and say why
    /// (Closing, `error` node), until the frontend restarts.
    pub(crate) fn refuse(&mut self, hv: &mut H, why: &str) {
        self.counters.refusals += 1;
        self.refused = Some(why.to_string());
        self.disconnect(hv);
        self.close_with_error(hv, EINVAL, why);
    }

    /// When this vif next needs the loop with nothing arriving: a frame's
    /// TX credit window opening, or an unplugged vif's directory removal.
    pub fn next_timer_ns(&self) -> Option<u64> {
        // A wait left by a connection that is gone times nothing: the
        // credit is reset at the next connect.
        let credit = self.conn.as_ref().and(self.credit.wait_until());
        [credit, self.remove_at].into_iter().flatten().min()
    }

    /// The backend directory is gone: release everything, answer nothing
    /// more.
    pub(crate) fn remove(&mut self, hv: &mut H) {
        self.disconnect(hv);
        if let Some(path) = self.fe_watch.take() {
            let _ = hv.send_forget(XsOp::Unwatch {
                path: &path,
                token: &Self::fe_token(self.id),
            });
        }
        if self.probed {
            let dir = self.error_dir();
            let _ = hv.send_forget(XsOp::Rm(&dir));
        }
        if self.resurrected {
            // Its parent (`backend/vif/<frontend>`) may be back too, and
            // stays: another vif of that domain may be being created there.
            let _ = hv.send_forget(XsOp::Rm(&self.backend));
        }
        if let Some(round) = self.round.take() {
            round.abandon(hv);
        }
        for id in self.writes.drain(..) {
            hv.forget(id);
        }
    }
}

/// Binds a queue's event channel, or its TX and RX channels when split.
fn bind<H: Hypervisor>(
    hv: &mut H,
    domid: DomId,
    k: &RingKeys,
) -> Result<(EvtchnPort, EvtchnPort), ConnectError> {
    let tx = hv
        .bind_interdomain(domid, k.evtchn)
        .map_err(|_| ConnectError::BindFailed)?;
    let Some(rx_remote) = k.evtchn_rx else {
        return Ok((tx, tx));
    };
    match hv.bind_interdomain(domid, rx_remote) {
        Ok(rx) => Ok((tx, rx)),
        Err(_) => {
            let _ = hv.close(tx);
            Err(ConnectError::BindFailed)
        }
    }
}

fn release_queue<H: Hypervisor>(hv: &mut H, q: Queue<H::Page>) {
    if q.split() {
        let _ = hv.close(q.rx_port);
    }
    let _ = hv.close(q.tx_port);
    let _ = hv.unmap_grant(q.tx_page);
    let _ = hv.unmap_grant(q.rx_page);
}

/// Names the first queue key missing, for the `error` node.
fn missing_key(s: &Snapshot, n: usize) -> ConnectError {
    if n > 1 && s.queues_read() != n {
        return ConnectError::BadKey("queue-N");
    }
    for q in 0..n {
        if s.queue_u32(q, QKey::TxRingRef).is_none() {
            return ConnectError::BadKey("tx-ring-ref");
        }
        if s.queue_u32(q, QKey::RxRingRef).is_none() {
            return ConnectError::BadKey("rx-ring-ref");
        }
        if s.queue_u32(q, QKey::EventChannelTx).is_some() {
            return ConnectError::BadKey("event-channel-rx");
        }
    }
    ConnectError::BadKey("event-channel")
}

/// errno values written into `error` nodes, as Linux writes them.
const EINVAL: u32 = 22;
const EPROTO: u32 = 71;

/// A read failed for a reason on our side or xenstored's (not the key's
/// absence or its permissions): the snapshot has holes, so no decision.
fn has_transient_error(s: &Snapshot) -> bool {
    s.replies().any(|r| {
        matches!(
            r,
            Err(XenError::Io | XenError::Busy | XenError::Again | XenError::NoMem)
        )
    })
}

/// One word of the `ip` key: `addr` or `addr/len`, `len` within the family.
fn parse_ip(word: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match word.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (word, None),
    };
    let a: IpAddr = a.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((a, len))
}
