//! One vif: the xenbus backend state machine that connects and
//! disconnects it, and its connection (mapped rings, bound event channel,
//! frame buffer) while connected.
//!
//! The state machine is level-triggered: on any watch event for the vif,
//! [`Vif::reconcile`] reads the current frontend state and backend keys and
//! moves towards what they call for, so coalesced or late events are
//! harmless. It follows Linux xen-netback's `frontend_changed`, plus
//! reconnection to a frontend that is already Connected (aggdom restarted)
//! and going straight back to InitWait when a frontend restarts without
//! closing first.
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use hypervisor::{
    transact, DomId, EvtchnPort, Hypervisor, MapAccess, Transaction, XenError, XenbusState,
};
use nic::MacAddr;

use crate::config::Config;
use crate::counters::{Fatal, VifCounters};
use crate::error::ConnectError;
use crate::ring::BackRing;
use crate::wire::{RX_SLOT, TX_SLOT};

/// Which vif: the frontend domain and the device handle (the two path
/// components under `backend/vif/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VifId {
    pub frontend: DomId,
    pub handle: u32,
}

/// The rings and event channel of a connected vif, and its TX frame buffer.
pub(crate) struct Connection<P> {
    pub(crate) tx_page: P,
    pub(crate) rx_page: P,
    pub(crate) tx: BackRing<TX_SLOT>,
    pub(crate) rx: BackRing<RX_SLOT>,
    pub(crate) port: EvtchnPort,
    /// The frontend takes multi-slot frames on RX (its `feature-sg`).
    pub(crate) rx_sg: bool,
    /// Guest frames are copied here, `max_frame_len` bytes, allocated once
    /// per connection.
    pub(crate) buf: Vec<u8>,
    /// The frontend keys this connection was made from.
    keys: RingKeys,
}

/// `tx-ring-ref`, `rx-ring-ref`, `event-channel` as the frontend wrote them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RingKeys {
    tx_ref: u32,
    rx_ref: u32,
    evtchn: u32,
}

fn ring_keys<H: Hypervisor>(hv: &mut H, fe: &str) -> Option<RingKeys> {
    let mut num = |k: &str| hv.read_u32(Transaction::NONE, &format!("{fe}/{k}")).ok();
    Some(RingKeys {
        tx_ref: num("tx-ring-ref")?,
        rx_ref: num("rx-ring-ref")?,
        evtchn: num("event-channel")?,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    Present,
    Gone,
}

/// The keys written into the backend directory when a vif is first seen:
/// what this netback implements.
const FEATURES: &[(&str, &str)] = &[
    ("feature-sg", "1"),
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-gso-tcpv4", "0"),
    ("feature-gso-tcpv6", "0"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-multicast-control", "0"),
    ("feature-split-event-channels", "0"),
];

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
    ips: Vec<Ipv4Addr>,
    last_error: Option<ConnectError>,
    pub(crate) counters: VifCounters,
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
            counters: VifCounters::default(),
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

    /// The guest's IPv4 addresses, from the backend's `ip` key
    /// (space-separated; entries that do not parse are left out).
    pub fn ips(&self) -> &[Ipv4Addr] {
        &self.ips
    }

    pub fn counters(&self) -> &VifCounters {
        &self.counters
    }

    /// Why the last connection attempt failed, if it did.
    pub fn last_error(&self) -> Option<ConnectError> {
        self.last_error
    }

    /// `/local/domain/<self>/backend/vif/<domid>/<handle>`.
    pub fn backend_path(&self) -> &str {
        &self.backend
    }

    pub(crate) fn fe_token(id: VifId) -> String {
        format!("netback-fe/{}/{}", id.frontend, id.handle)
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{}", self.backend, name)
    }

    fn set_state(&mut self, hv: &mut H, s: XenbusState) {
        if hv
            .write_str(Transaction::NONE, &self.key("state"), s.as_str())
            .is_ok()
        {
            self.state = s;
        }
    }

    /// Reads the vif's configuration from the toolstack's keys.
    fn read_identity(&mut self, hv: &mut H) {
        let t = Transaction::NONE;
        self.mac = hv
            .read_string(t, &self.key("mac"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        self.ips = hv
            .read_string(t, &self.key("ip"))
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
    }

    /// First sight of the vif: advertise features, report the hotplug step
    /// done (there is no hotplug script in aggdom), read MAC and IPs.
    fn probe(&mut self, hv: &mut H) -> Result<(), XenError> {
        let backend = self.backend.clone();
        let mtu = format!("{}", self.config.mtu());
        transact(hv, 8, |xs, t| {
            for (k, v) in FEATURES {
                xs.write_str(t, &format!("{backend}/{k}"), v)?;
            }
            xs.write_str(t, &format!("{backend}/mtu"), &mtu)?;
            xs.write_str(t, &format!("{backend}/hotplug-status"), "connected")
        })?;
        self.read_identity(hv);
        self.probed = true;
        Ok(())
    }

    fn follow_frontend(&mut self, hv: &mut H, path: String) {
        if self.frontend.as_deref() == Some(path.as_str()) {
            return;
        }
        let token = Self::fe_token(self.id);
        if let Some(old) = self.fe_watch.take() {
            let _ = hv.unwatch(&old, &token);
        }
        let state_path = format!("{path}/state");
        if hv.watch(&state_path, &token).is_ok() {
            self.fe_watch = Some(state_path);
        }
        self.frontend = Some(path);
    }

    /// Moves the vif towards what xenstore now says. `Gone` once the
    /// toolstack has removed the backend directory.
    pub(crate) fn reconcile(&mut self, hv: &mut H) -> Presence {
        let t = Transaction::NONE;
        if let Err(XenError::NoEnt) = hv.read(t, &self.backend) {
            return Presence::Gone;
        }
        let backend_state = match hv.read_u32(t, &self.key("state")) {
            Ok(n) => XenbusState::from_raw(n),
            Err(_) => return Presence::Present, // the toolstack is still writing
        };
        let (Ok(fe_path), Ok(fe_id)) = (
            hv.read_string(t, &self.key("frontend")),
            hv.read_u32(t, &self.key("frontend-id")),
        ) else {
            return Presence::Present;
        };
        if fe_id != u32::from(self.id.frontend) || !fe_path.starts_with('/') {
            // Not a vif this directory's name describes; do not serve it.
            return Presence::Present;
        }
        self.follow_frontend(hv, fe_path.clone());
        if !self.probed && self.probe(hv).is_err() {
            return Presence::Present; // retried on the next event
        }

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

        let online = hv.read_u32(t, &self.key("online")) != Ok(0);
        let fe_state = hv
            .read_u32(t, &format!("{fe_path}/state"))
            .map_or(XenbusState::Unknown, XenbusState::from_raw);
        match fe_state {
            XenbusState::Initialising | XenbusState::InitWait => {
                // A fresh frontend, or one that restarted: offer a new connection.
                self.disconnect(hv);
                if self.state != XenbusState::InitWait && online {
                    self.set_state(hv, XenbusState::InitWait);
                }
            }
            XenbusState::Initialised | XenbusState::Connected => {
                let stale = self
                    .conn
                    .as_ref()
                    .is_some_and(|c| ring_keys(hv, &fe_path) != Some(c.keys));
                if stale {
                    // New rings without us seeing the frontend restart (its
                    // Initialising and our InitWait coalesced away).
                    self.disconnect(hv);
                    self.state = XenbusState::InitWait;
                }
                let may_connect = matches!(
                    self.state,
                    XenbusState::Unknown | XenbusState::Initialising | XenbusState::InitWait
                );
                if self.conn.is_none() && may_connect && online {
                    self.read_identity(hv);
                    match self.connect(hv, &fe_path) {
                        Ok(c) => {
                            self.conn = Some(c);
                            self.last_error = None;
                            self.counters.connects += 1;
                            self.set_state(hv, XenbusState::Connected);
                        }
                        Err(e) => {
                            self.last_error = Some(e);
                            self.counters.connect_failures += 1;
                            self.set_state(hv, XenbusState::Closing);
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
        Presence::Present
    }

    /// Reads the frontend's keys, maps both rings and binds the event
    /// channel; undoes everything on failure.
    fn connect(&mut self, hv: &mut H, fe: &str) -> Result<Connection<H::Page>, ConnectError> {
        let t = Transaction::NONE;
        let domid = self.id.frontend;
        let num = |hv: &mut H, key: &str| hv.read_u32(t, &format!("{fe}/{key}"));
        if num(hv, "multi-queue-num-queues").is_ok_and(|n| n > 1) {
            return Err(ConnectError::Unsupported("multi-queue-num-queues"));
        }
        if num(hv, "tx-ring-order").is_ok_and(|n| n > 0)
            || num(hv, "ring-page-order").is_ok_and(|n| n > 0)
        {
            return Err(ConnectError::Unsupported("ring-page-order"));
        }
        let tx_ref = num(hv, "tx-ring-ref").map_err(|_| ConnectError::BadKey("tx-ring-ref"))?;
        let rx_ref = num(hv, "rx-ring-ref").map_err(|_| ConnectError::BadKey("rx-ring-ref"))?;
        let evtchn = match num(hv, "event-channel") {
            Ok(p) => p,
            Err(_) if num(hv, "event-channel-tx").is_ok() => {
                return Err(ConnectError::Unsupported("feature-split-event-channels"))
            }
            Err(_) => return Err(ConnectError::BadKey("event-channel")),
        };
        if num(hv, "request-rx-copy") != Ok(1) {
            return Err(ConnectError::Unsupported("rx page flipping"));
        }
        let rx_sg = num(hv, "feature-sg") == Ok(1);

        let tx_page = hv
            .map_grant(domid, tx_ref, MapAccess::ReadWrite)
            .map_err(|_| ConnectError::MapFailed)?;
        let rx_page = match hv.map_grant(domid, rx_ref, MapAccess::ReadWrite) {
            Ok(p) => p,
            Err(_) => {
                let _ = hv.unmap_grant(tx_page);
                return Err(ConnectError::MapFailed);
            }
        };
        let rings = BackRing::attach(&tx_page).and_then(|tx| Ok((tx, BackRing::attach(&rx_page)?)));
        let bound = match rings {
            Ok(rings) => hv
                .bind_interdomain(domid, evtchn)
                .map(|port| (rings, port))
                .map_err(|_| ConnectError::BindFailed),
            Err(_) => Err(ConnectError::BadRing),
        };
        let ((mut tx, mut rx), port) = match bound {
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
        Ok(Connection {
            tx_page,
            rx_page,
            tx,
            rx,
            port,
            rx_sg,
            buf: vec![0; self.config.max_frame_len],
            keys: RingKeys {
                tx_ref,
                rx_ref,
                evtchn,
            },
        })
    }

    /// Closes the event channel and unmaps the rings, if connected.
    pub(crate) fn disconnect(&mut self, hv: &mut H) {
        if let Some(c) = self.conn.take() {
            let _ = hv.close(c.port);
            let _ = hv.unmap_grant(c.tx_page);
            let _ = hv.unmap_grant(c.rx_page);
            self.counters.disconnects += 1;
        }
    }

    /// A protocol violation: count it, drop the connection and tell the
    /// frontend (Closing). It reconnects only after it restarts.
    pub(crate) fn fail(&mut self, hv: &mut H, why: Fatal) {
        self.counters.count_fatal(why);
        self.disconnect(hv);
        self.set_state(hv, XenbusState::Closing);
    }

    /// The backend directory is gone: release everything.
    pub(crate) fn remove(&mut self, hv: &mut H) {
        self.disconnect(hv);
        if let Some(path) = self.fe_watch.take() {
            let _ = hv.unwatch(&path, &Self::fe_token(self.id));
        }
    }
}
