//! `Netback`: finds the vifs the toolstack creates under
//! `/local/domain/<self>/backend/vif/<domid>/<handle>`, drives each one's
//! state machine from xenstore watch events, and lends the vifs to the
//! datapath.
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;

use hypervisor::{Hypervisor, Transaction, XenError};

use crate::config::Config;
use crate::vif::{Presence, Vif, VifId};

const BACKEND_TOKEN: &str = "netback";

/// All vifs this domain serves. Control plane: [`Netback::poll_control`]
/// (allocates, reads xenstore); datapath: each connected [`Vif`]'s
/// `poll_tx` / `deliver_rx` (never allocate).
pub struct Netback<H: Hypervisor> {
    config: Config,
    base: String,
    vifs: BTreeMap<VifId, Vif<H>>,
}

impl<H: Hypervisor> Netback<H> {
    /// Starts serving: watches this domain's `backend/vif` directory. The
    /// watch's first event makes the next [`Netback::poll_control`] pick up
    /// every vif already there, including ones a previous aggdom served
    /// whose frontends are still Connected.
    pub fn new(hv: &mut H, config: Config) -> Result<Self, XenError> {
        let base = format!("/local/domain/{}/backend/vif", hv.domid());
        hv.watch(&base, BACKEND_TOKEN)?;
        Ok(Self {
            config: config.clamped(),
            base,
            vifs: BTreeMap::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles every queued xenstore watch event: new vifs are probed
    /// (features advertised, InitWait), frontends connected or disconnected,
    /// removed vifs released. Returns the number of events handled. Call it
    /// from the poll loop; it does nothing when no event is queued.
    pub fn poll_control(&mut self, hv: &mut H) -> usize {
        let mut dirty = BTreeSet::new();
        let mut rescan = false;
        let mut events = 0;
        while let Some(ev) = hv.poll_watch() {
            events += 1;
            if ev.token == BACKEND_TOKEN {
                match self.vif_of_path(&ev.path) {
                    Some(id) => {
                        dirty.insert(id);
                    }
                    None => rescan = true,
                }
            } else if let Some(id) = vif_of_token(&ev.token) {
                dirty.insert(id);
            }
        }
        if rescan {
            self.scan(hv, &mut dirty);
        }
        for id in dirty {
            self.reconcile(hv, id);
        }
        events
    }

    /// Every vif directory there is now, and every vif known.
    fn scan(&mut self, hv: &mut H, dirty: &mut BTreeSet<VifId>) {
        let t = Transaction::NONE;
        for fe in hv.directory(t, &self.base).unwrap_or_default() {
            let Ok(frontend) = fe.parse() else { continue };
            for h in hv
                .directory(t, &format!("{}/{}", self.base, fe))
                .unwrap_or_default()
            {
                if let Ok(handle) = h.parse() {
                    dirty.insert(VifId { frontend, handle });
                }
            }
        }
        dirty.extend(self.vifs.keys().copied());
    }

    fn vif_of_path(&self, path: &str) -> Option<VifId> {
        let rest = path.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let frontend = parts.next()?.parse().ok()?;
        let handle = parts.next()?.parse().ok()?;
        Some(VifId { frontend, handle })
    }

    fn reconcile(&mut self, hv: &mut H, id: VifId) {
        if !self.vifs.contains_key(&id) {
            let path = format!("{}/{}/{}", self.base, id.frontend, id.handle);
            if hv.read(Transaction::NONE, &path).is_err() {
                return;
            }
            self.vifs.insert(id, Vif::new(id, path, self.config));
        }
        if let Some(vif) = self.vifs.get_mut(&id) {
            if vif.reconcile(hv) == Presence::Gone {
                vif.remove(hv);
                self.vifs.remove(&id);
            }
        }
    }

    pub fn vif(&self, id: VifId) -> Option<&Vif<H>> {
        self.vifs.get(&id)
    }

    pub fn vif_mut(&mut self, id: VifId) -> Option<&mut Vif<H>> {
        self.vifs.get_mut(&id)
    }

    /// Every vif known, connected or not, in `VifId` order.
    pub fn vifs(&self) -> impl Iterator<Item = &Vif<H>> {
        self.vifs.values()
    }

    pub fn vifs_mut(&mut self) -> impl Iterator<Item = &mut Vif<H>> {
        self.vifs.values_mut()
    }
}

fn vif_of_token(token: &str) -> Option<VifId> {
    let rest = token.strip_prefix("netback-fe/")?;
    let (fe, handle) = rest.split_once('/')?;
    Some(VifId {
        frontend: fe.parse().ok()?,
        handle: handle.parse().ok()?,
    })
}
