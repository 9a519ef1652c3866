//! `Netback`: finds the vifs the toolstack creates under
//! `/local/domain/<self>/backend/vif/<domid>/<handle>`, drives each one's
//! state machine from xenstore watch events, and lends the vifs to the
//! datapath. Nothing here waits for xenstored: requests are queued and
//! their replies picked up by later polls.
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypervisor::{parse_directory, DomId, Hypervisor, RequestId, XenError, XsOp, XsReply};

use crate::config::Config;
use crate::vif::{Presence, Vif, VifId};

const BACKEND_TOKEN: &str = "netback";

/// Watch events handled per [`Netback::poll_control`]: a burst of events
/// (a guest rewriting its nodes in a loop) waits for the next poll instead
/// of holding the datapath.
pub const EVENTS_PER_POLL: usize = 64;

/// Listing the backend directory, without waiting.
enum Scan {
    Idle,
    /// `XS_DIRECTORY` of `backend/vif`.
    Frontends(RequestId),
    /// `XS_DIRECTORY` of each `backend/vif/<domid>`.
    Handles(Vec<(RequestId, DomId)>),
}

/// All vifs this domain serves. Control plane: [`Netback::poll_control`]
/// (allocates, queues xenstore requests); datapath: each connected
/// [`Vif`]'s `poll_tx` / `deliver_rx` (never allocate).
pub struct Netback<H: Hypervisor> {
    config: Config,
    base: String,
    vifs: BTreeMap<VifId, Vif<H>>,
    scan: Scan,
    rescan: bool,
    watch: Option<RequestId>,
    watch_error: Option<XenError>,
}

impl<H: Hypervisor> Netback<H> {
    /// Starts serving: asks to watch this domain's `backend/vif` directory.
    /// The watch's first event makes a later [`Netback::poll_control`] pick
    /// up every vif already there, including ones a previous aggdom served
    /// whose frontends are still Connected. Fails only if the request
    /// cannot be queued; a refusal by xenstored shows in
    /// [`Netback::watch_error`].
    pub fn new(hv: &mut H, config: Config) -> Result<Self, XenError> {
        let base = format!("/local/domain/{}/backend/vif", hv.domid());
        let watch = hv.submit(XsOp::Watch {
            path: &base,
            token: BACKEND_TOKEN,
        })?;
        Ok(Self {
            config: config.clamped(),
            base,
            vifs: BTreeMap::new(),
            scan: Scan::Idle,
            rescan: false,
            watch: Some(watch),
            watch_error: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Why xenstored refused the backend directory watch, if it did:
    /// netback then never sees a vif.
    pub fn watch_error(&self) -> Option<XenError> {
        self.watch_error
    }

    /// Handles queued watch events (at most [`EVENTS_PER_POLL`]) and the
    /// replies that have come: new vifs are probed (features advertised,
    /// InitWait), frontends connected or disconnected, removed vifs
    /// released. Returns the events, replies and decisions handled; 0 when
    /// there was nothing to do. Call it from the poll loop; it never waits.
    pub fn poll_control(&mut self, hv: &mut H) -> usize {
        let mut work = 0;
        if let Some(id) = self.watch {
            if let Some(reply) = hv.take_reply(id) {
                self.watch = None;
                self.watch_error = reply.err();
                work += 1;
            }
        }
        for _ in 0..EVENTS_PER_POLL {
            let Some(ev) = hv.poll_watch() else { break };
            work += 1;
            if ev.token == BACKEND_TOKEN {
                match self.vif_of_path(&ev.path) {
                    Some(id) => self.vif_entry(id).mark_dirty(),
                    None => self.rescan = true,
                }
            } else if let Some(id) = vif_of_token(&ev.token) {
                if let Some(v) = self.vifs.get_mut(&id) {
                    v.mark_dirty();
                }
            }
        }
        work += self.step_scan(hv);
        let mut gone = Vec::new();
        for (id, vif) in self.vifs.iter_mut() {
            let (w, presence) = vif.step(hv);
            work += w;
            if presence == Presence::Gone {
                gone.push(*id);
            }
        }
        for id in gone {
            if let Some(mut vif) = self.vifs.remove(&id) {
                vif.remove(hv);
            }
        }
        work
    }

    /// The vif `id`, created (to be read) on first sight.
    fn vif_entry(&mut self, id: VifId) -> &mut Vif<H> {
        let (base, config) = (&self.base, self.config);
        self.vifs.entry(id).or_insert_with(|| {
            Vif::new(id, format!("{base}/{}/{}", id.frontend, id.handle), config)
        })
    }

    /// Advances the listing of every vif directory there is now: two
    /// levels of `XS_DIRECTORY`, one reply at a time.
    fn step_scan(&mut self, hv: &mut H) -> usize {
        match core::mem::replace(&mut self.scan, Scan::Idle) {
            Scan::Idle if self.rescan => {
                self.rescan = false;
                // Every vif known is read again too: one may be gone.
                for v in self.vifs.values_mut() {
                    v.mark_dirty();
                }
                match hv.submit(XsOp::Directory(&self.base)) {
                    Ok(id) => self.scan = Scan::Frontends(id),
                    Err(_) => self.rescan = true, // queue full: next poll
                }
                0
            }
            Scan::Idle => 0,
            Scan::Frontends(id) => match hv.take_reply(id) {
                None => {
                    self.scan = Scan::Frontends(id);
                    0
                }
                Some(reply) => {
                    let mut pending = Vec::new();
                    for fe in names(reply) {
                        let Ok(frontend) = fe.parse::<DomId>() else {
                            continue;
                        };
                        let path = format!("{}/{fe}", self.base);
                        match hv.submit(XsOp::Directory(&path)) {
                            Ok(id) => pending.push((id, frontend)),
                            Err(_) => self.rescan = true,
                        }
                    }
                    if !pending.is_empty() {
                        self.scan = Scan::Handles(pending);
                    }
                    1
                }
            },
            Scan::Handles(mut pending) => {
                let mut work = 0;
                let mut found = Vec::new();
                pending.retain(|(id, frontend)| match hv.take_reply(*id) {
                    None => true,
                    Some(reply) => {
                        work += 1;
                        for h in names(reply) {
                            if let Ok(handle) = h.parse() {
                                found.push(VifId {
                                    frontend: *frontend,
                                    handle,
                                });
                            }
                        }
                        false
                    }
                });
                for id in found {
                    self.vif_entry(id).mark_dirty();
                }
                if !pending.is_empty() {
                    self.scan = Scan::Handles(pending);
                }
                work
            }
        }
    }

    fn vif_of_path(&self, path: &str) -> Option<VifId> {
        let rest = path.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let frontend = parts.next()?.parse().ok()?;
        let handle = parts.next()?.parse().ok()?;
        Some(VifId { frontend, handle })
    }

    /// The datapath will not serve vif `id` (say, its MAC is another
    /// guest's): it is disconnected and goes to Closing with `why` in its
    /// `error` node, instead of staying Connected and unserved. It is
    /// offered again when its frontend restarts.
    pub fn refuse(&mut self, hv: &mut H, id: VifId, why: &str) {
        if let Some(v) = self.vifs.get_mut(&id) {
            v.refuse(hv, why);
        }
    }

    pub fn vif(&self, id: VifId) -> Option<&Vif<H>> {
        self.vifs.get(&id)
    }

    pub fn vif_mut(&mut self, id: VifId) -> Option<&mut Vif<H>> {
        self.vifs.get_mut(&id)
    }

    /// The earliest time any vif needs the loop with nothing arriving
    /// ([`Vif::next_timer_ns`]): the loop's sleep must end by then.
    pub fn next_timer_ns(&self) -> Option<u64> {
        self.vifs.values().filter_map(Vif::next_timer_ns).min()
    }

    /// Every vif known, connected or not, in `VifId` order.
    pub fn vifs(&self) -> impl Iterator<Item = &Vif<H>> {
        self.vifs.values()
    }

    pub fn vifs_mut(&mut self) -> impl Iterator<Item = &mut Vif<H>> {
        self.vifs.values_mut()
    }
}

/// The names a directory reply lists; none if it failed.
fn names(reply: XsReply) -> Vec<String> {
    reply.map(|p| parse_directory(&p)).unwrap_or_default()
}

fn vif_of_token(token: &str) -> Option<VifId> {
    let rest = token.strip_prefix("netback-fe/")?;
    let (fe, handle) = rest.split_once('/')?;
    Some(VifId {
        frontend: fe.parse().ok()?,
        handle: handle.parse().ok()?,
    })
}
