//! aggdom under Xen: the platform found at boot, netback over it, and each
//! connected vif attached to the datapath as a guest port.
//!
//! Configuration under Xen is the kernel command line plus the words in
//! xenstore at `/local/domain/<self>/aggdom/config`
//! ([`aggdom_config::merge`]). The node is watched: new `bind=` words
//! rebind at run time; other keys take effect at the next boot.
//!
//! Nothing here waits for dom0 once the main loop runs: xenstore requests
//! are queued and their replies picked up in later turns (netback's vif
//! state machines, the config node's re-read). Only boot reads block.
use crate::domain::Domain;
use crate::{println, time};
use aggdom_config::merge::{self, Merged};
use aggdom_config::Binding;
use aggregation::{GuestId, IpNet};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;
use datapath::{FrameQueue, GuestPort, PortError};
use hypervisor::{Hypervisor, RequestId, XenStore, XsOp};
use netback::segment::{Offload, OffloadCaps};
use netback::{Netback, RxDrop, TxDrop, VifId};
use nic::{MacAddr, TxOffload};
use spin::Mutex;
use xen::{Xen, XenCpuid};

/// The watch token of aggdom's own configuration node.
const CONFIG_TOKEN: &str = "aggdom/config";
/// Frames queued per vif between the datapath's delivery and the flush.
const VIF_RX_QUEUE: usize = 64;
/// Of those, TCP super-frames (GSO, up to 64 KiB each) at once: another
/// guest's, switched locally. 512 KiB per vif.
const VIF_RX_LARGE: usize = 8;
/// What a vif leaves to the datapath on guest TX: everything. The
/// datapath hands super-frames and partial checksums to uplinks that
/// finish them (or to the nic crate's software fallback, which writes
/// segments straight into the transmit ring) and to vifs whole, and
/// segments itself only for the own stack and floods; netback's
/// `tx_segments` then stays 0.
const VIF_TX_CAPS: OffloadCaps = OffloadCaps {
    csum: true,
    tso4: true,
    tso6: true,
};

/// A vif attached to the datapath.
struct Attached {
    guest: GuestId,
    mac: MacAddr,
    /// The vif's `ip` entries as netback read them.
    ips: Vec<(IpAddr, u8)>,
    /// As guest entries (addresses, IPv6 prefixes).
    nets: Vec<IpNet>,
}

/// Everything Xen: the platform, netback and which vif is which guest.
/// Lives in [`NET`] so that vif ports inside the datapath reach it.
pub struct XenNet {
    hv: Xen,
    netback: Option<Netback<Xen>>,
    attached: BTreeMap<VifId, Attached>,
    config_path: String,
    /// `bind=` words from xenstore (and command-line ones for vif IPs).
    binds: Vec<(IpNet, Binding)>,
    /// The config node's text as last read.
    config_text: String,
    /// The config node's re-read in flight, and whether another was asked
    /// for meanwhile.
    config_read: Option<RequestId>,
    config_dirty: bool,
}

static NET: Mutex<Option<XenNet>> = Mutex::new(None);
static INFO: spin::Once<XenCpuid> = spin::Once::new();

/// Detects Xen and sets up the hypercall page and PV console (no heap
/// needed): call right after the console.
pub fn early_init() -> bool {
    match xen::early_init() {
        Some(info) => {
            INFO.call_once(|| info);
            true
        }
        None => false,
    }
}

pub fn is_xen() -> bool {
    xen::is_xen()
}

/// Sets up shared_info and xenstore, reads aggdom's configuration node and
/// returns the configuration line to build the datapath from (`cmdline`
/// merged with xenstore's words, vif `bind=` words held back). Without Xen,
/// or if the platform fails, `cmdline` unchanged.
pub fn start(cmdline: &str) -> String {
    let Some(info) = INFO.get().copied() else {
        return cmdline.to_string();
    };
    println!(
        "xen: Xen {}.{} (CPUID leaves at {:#x}), hypercall page set",
        info.major(),
        info.minor(),
        info.base
    );
    let mut hv = match Xen::new(info, time::now_ns) {
        Ok(hv) => hv,
        Err(e) => {
            println!("xen: platform set-up failed: {e}; running without netback");
            return cmdline.to_string();
        }
    };
    println!(
        "xen: shared_info at {:#x}, xenstore ring pfn {:#x} port {}, console pfn {:#x} port {}",
        hv.shared_info_addr(),
        hv.store_pfn(),
        hv.store_port(),
        xen::hvm_param(xen::abi::HVM_PARAM_CONSOLE_PFN).unwrap_or(0),
        xen::console::port().unwrap_or(0)
    );
    let config_path = format!("/local/domain/{}/aggdom/config", hv.domid());
    // Boot, before the main loop: the one place aggdom waits for xenstored.
    let config_text = hv
        .read_blocking(&config_path)
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default();
    println!(
        "xen: domid {}, xenstore up, PV console {}, config {config_path} = \"{}\"",
        hv.domid(),
        if xen::console::is_attached() {
            "attached"
        } else {
            "absent"
        },
        config_text.trim()
    );
    if let Err(e) = hv.send_forget(XsOp::Watch {
        path: &config_path,
        token: CONFIG_TOKEN,
    }) {
        println!("xen: cannot watch {config_path}: {e}");
    }
    // aggctl (issue 14): requests under data/aggctl, served by ctl.rs.
    let domid = u32::from(hv.domid());
    crate::ctl::start(&mut hv, domid);
    let Merged {
        line,
        vif_binds,
        rejected,
    } = merge::merge(cmdline, &config_text);
    report_rejected(&rejected);
    *NET.lock() = Some(XenNet {
        hv,
        netback: None,
        attached: BTreeMap::new(),
        config_path,
        binds: vif_binds,
        config_text,
        config_read: None,
        config_dirty: false,
    });
    line
}

fn report_rejected(rejected: &[(String, String)]) {
    for (word, why) in rejected {
        println!("xen: config: bad item '{word}': {why}; ignored");
    }
}

/// Starts netback (after the datapath exists).
pub fn start_netback() {
    let mut guard = NET.lock();
    let Some(net) = guard.as_mut() else { return };
    // Every offload netback implements (issue 10): guests send 64 KiB GSO
    // frames and partial checksums, cut and completed in software before
    // the datapath sees them; up to 4 queues and split event channels.
    match Netback::new(&mut net.hv, netback::Config::ALL_FEATURES) {
        Ok(nb) => {
            println!(
                "xen: netback serving /local/domain/{}/backend/vif",
                net.hv.domid()
            );
            net.netback = Some(nb);
        }
        Err(e) => println!("xen: netback could not watch its backend directory: {e}"),
    }
}

fn apply_bind(dp: &mut datapath::Datapath, ip: IpNet, b: &Binding) -> Result<(), String> {
    datapath::apply_binding(dp.engine_mut(), ip, b).map_err(|e| format!("{e}"))
}

/// One round of Xen work, never waiting for dom0: the xenstore ring
/// pumped, netback's vif state machines advanced, the config node's
/// changes applied, vifs attached or detached. Returns the work done.
pub fn poll(domain: &mut Domain) -> usize {
    let Some(mut guard) = NET.try_lock() else {
        return 0;
    };
    let Some(net) = guard.as_mut() else { return 0 };
    net.hv.pump_xenstore();
    let mut work = 0;
    if let Some(nb) = net.netback.as_mut() {
        work += nb.poll_control(&mut net.hv);
    }
    work += net.poll_config(domain);
    work += crate::ctl::pump(&mut net.hv); // aggctl replies out, requests in
    net.reconcile(domain);
    work
}

/// Binds every passed-through NIC's INTx (its slot on bus 0 and its
/// Interrupt Pin) to an event channel, so a frame wakes the idle loop's
/// `SCHEDOP_poll`. True only if every NIC's was bound: one NIC that cannot
/// wake the loop means polling on a timer anyway.
pub fn bind_nic_irqs(nics: &[(pci::DeviceFunction, u8)]) -> bool {
    let mut guard = NET.lock();
    let Some(net) = guard.as_mut() else {
        return false;
    };
    // Xen maps a GSI for an HVM domain only while it has a callback vector
    // (`is_hvm_pv_evtchn_domain`); the vector is removed again once the
    // pirqs are bound, so event delivery stays as before: pending bits
    // that SCHEDOP_poll sees, and no upcall state left set.
    if let Err(e) = xen::physdev::set_callback_vector(Some(crate::cpu::XEN_CALLBACK_VECTOR)) {
        println!("xen: no event-channel callback vector ({e}): uplinks are polled every 1 ms");
        return false;
    }
    let mut all = !nics.is_empty();
    for &(at, pin) in nics {
        let gsi = (at.bus == 0)
            .then(|| xen::physdev::hvm_pci_intx_gsi(at.device, pin))
            .flatten();
        let addr = crate::domain::pci_text(at);
        match gsi.map(|gsi| (gsi, net.hv.bind_device_irq(gsi))) {
            Some((gsi, Ok(irq))) => println!(
                "xen: NIC {addr} interrupt: GSI {gsi} -> pirq {} -> event channel {}",
                irq.pirq, irq.port
            ),
            Some((gsi, Err(e))) => {
                println!("xen: NIC {addr} interrupt: GSI {gsi} not bound: {e}");
                all = false;
            }
            None => {
                println!("xen: NIC {addr} has no INTx this domain can bind (pin {pin})");
                all = false;
            }
        }
    }
    if let Err(e) = xen::physdev::set_callback_vector(None) {
        println!("xen: callback vector not removed: {e}");
    }
    if !all {
        println!("xen: uplinks are polled every 1 ms");
    }
    all
}

/// After the NICs were acknowledged: EOIs their interrupts that fired.
pub fn ack_nic_irqs() {
    if let Some(net) = NET.try_lock().as_mut().and_then(|g| g.as_mut()) {
        net.hv.ack_device_irqs();
    }
}

/// Step 1 of a loop turn under Xen: clears the pending bits of every event
/// channel the loop sleeps on, before any ring is looked at, so an event
/// that comes later in the turn cuts the next sleep short.
pub fn clear_events() {
    if let Some(net) = NET.try_lock().as_mut().and_then(|g| g.as_mut()) {
        net.hv.clear_events();
    }
}

/// Under Xen the loop sleeps in `SCHEDOP_poll` on its event channels (up
/// to `timeout_ns`) instead of `hlt` with the PIC tick: aggdom takes no
/// interrupts at all there. (An HVM aggdom once triple-faulted inside the
/// PIC wake-up stub under the nested, emulated Xen of the test rig.)
/// `false` when not on Xen, or when its platform did not come up (no event
/// channel then wakes anything): idle as usual. With the platform up it
/// never falls back to `hlt` (see [`Xen::block_until`]).
pub fn block(timeout_ns: u64) -> bool {
    match NET.try_lock().as_mut().and_then(|g| g.as_mut()) {
        Some(net) => {
            net.hv.block_until(timeout_ns);
            true
        }
        None => false,
    }
}

/// When netback next needs the loop with nothing arriving (a vif's TX
/// credit window, an unplugged vif's removal): the loop's sleep ends by
/// then. `None` off Xen, with no netback, or while the platform is busy.
pub fn next_timer_ns() -> Option<u64> {
    let guard = NET.try_lock()?;
    guard.as_ref()?.netback.as_ref()?.next_timer_ns()
}

/// Under Xen, a loop that stays busy still gives the CPU away this often.
const YIELD_EVERY_NS: u64 = 1_000_000;
static LAST_YIELD: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Called when the loop moved something and will not idle: under Xen, at
/// most every [`YIELD_EVERY_NS`] it yields the physical CPU, so a stream of
/// work can never keep dom0 (xenstored, xenconsoled, the device model) off
/// a CPU it shares with aggdom. On the 2-CPU test rig a busy aggdom vCPU
/// held a CPU while dom0's runnable vCPU waited behind it.
pub fn yield_if_due(now_ns: u64) {
    use core::sync::atomic::Ordering;
    if !is_xen() || now_ns.saturating_sub(LAST_YIELD.load(Ordering::Relaxed)) < YIELD_EVERY_NS {
        return;
    }
    LAST_YIELD.store(now_ns, Ordering::Relaxed);
    xen::evtchn::sched_yield();
}

impl XenNet {
    /// Follows the config node: a watch event asks for a re-read (one in
    /// flight at a time), and the text that comes back is applied.
    fn poll_config(&mut self, domain: &mut Domain) -> usize {
        let mut work = 0;
        while let Some(ev) = self.hv.poll_private_watch() {
            work += 1;
            // aggctl's request directory (ctl.rs); the rest is the config node.
            if crate::ctl::on_watch(&ev) {
                continue;
            }
            self.config_dirty = true;
        }
        if let Some(id) = self.config_read {
            let Some(reply) = self.hv.take_reply(id) else {
                return work;
            };
            self.config_read = None;
            work += 1;
            // A node removed reads as empty: every vif bind goes back to auto.
            let text = reply
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
                .unwrap_or_default();
            self.apply_config(domain, text);
        }
        if self.config_dirty {
            match self.hv.submit(XsOp::Read(&self.config_path)) {
                Ok(id) => {
                    self.config_read = Some(id);
                    self.config_dirty = false;
                }
                Err(e) => println!("xen: config re-read not queued: {e}; retried"),
            }
        }
        work
    }

    fn apply_config(&mut self, domain: &mut Domain, text: String) {
        if text == self.config_text {
            return;
        }
        println!("xen: config changed: \"{}\"", text.trim());
        for w in merge::boot_time_changes(&self.config_text, &text) {
            println!("xen: config: '{w}' takes effect at the next boot");
        }
        let (new, rejected) = merge::parse_binds(merge::bind_words(&text));
        report_rejected(&rejected);
        let Some(dp) = domain.dp.as_mut() else {
            self.binds = new;
            self.config_text = text;
            return;
        };
        // IPs that lost their explicit binding go back to the spreading rule.
        for (ip, _) in &self.binds {
            if !new.iter().any(|(n, _)| n == ip) && self.owns_ip(*ip) {
                let _ = apply_bind(dp, *ip, &Binding::Auto);
            }
        }
        for (ip, b) in &new {
            if self.owns_ip(*ip) {
                match apply_bind(dp, *ip, b) {
                    Ok(()) => println!("xen: bind {ip} applied"),
                    Err(e) => println!("xen: bind {ip}: {e}"),
                }
            }
        }
        self.binds = new;
        self.config_text = text;
    }

    fn owns_ip(&self, ip: IpNet) -> bool {
        self.attached.values().any(|a| a.nets.contains(&ip))
    }

    /// Attaches connected vifs that are not yet guests, detaches the rest.
    fn reconcile(&mut self, domain: &mut Domain) {
        let Some(nb) = self.netback.as_mut() else {
            return;
        };
        let Some(dp) = domain.dp.as_mut() else { return };
        // Detach: vif gone, disconnected, or its identity changed.
        let stale: Vec<VifId> = self
            .attached
            .iter()
            .filter(|(id, a)| match nb.vif(**id) {
                Some(v) => {
                    !v.is_connected() || v.mac() != Some(a.mac) || v.ips() != a.ips.as_slice()
                }
                None => true,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(a) = self.attached.remove(&id) {
                dp.remove_guest(a.guest);
                println!(
                    "xen: vif {}/{} detached (guest {})",
                    id.frontend, id.handle, a.guest.0
                );
            }
        }
        // Netback connects only vifs that have a MAC.
        let fresh: Vec<(VifId, MacAddr, Vec<(IpAddr, u8)>)> = nb
            .vifs()
            .filter(|v| v.is_connected() && !self.attached.contains_key(&v.id()))
            .filter_map(|v| Some((v.id(), v.mac()?, v.ips().to_vec())))
            .collect();
        for (id, mac, ips) in fresh {
            let name = format!("vif{}.{}", id.frontend, id.handle);
            let nets: Vec<IpNet> = ips
                .iter()
                .filter_map(|&(a, l)| merge::vif_entry(a, l))
                .collect();
            let port = Box::new(VifPort {
                id,
                rx: FrameQueue::with_large(VIF_RX_QUEUE, VIF_RX_LARGE),
            });
            match dp.add_guest(&name, port, mac, &nets) {
                Ok(guest) => {
                    let ip_text: Vec<String> = nets.iter().map(|i| format!("{i}")).collect();
                    println!(
                        "xen: vif {}/{} attached as guest {} ({name}, mac {mac}, ip {})",
                        id.frontend,
                        id.handle,
                        guest.0,
                        if ip_text.is_empty() {
                            "none: add ip= to the vif".into()
                        } else {
                            ip_text.join(" ")
                        }
                    );
                    for (ip, b) in &self.binds {
                        if nets.contains(ip) {
                            match apply_bind(dp, *ip, b) {
                                Ok(()) => println!("xen: bind {ip} applied"),
                                Err(e) => println!("xen: bind {ip}: {e}"),
                            }
                        }
                    }
                    self.attached.insert(
                        id,
                        Attached {
                            guest,
                            mac,
                            ips,
                            nets,
                        },
                    );
                }
                Err(e) => {
                    // Refused: the vif goes to Closing with the reason in
                    // its `error` node, not Connected and unserved.
                    println!(
                        "xen: vif {}/{} (mac {mac}) refused: {e}",
                        id.frontend, id.handle
                    );
                    nb.refuse(&mut self.hv, id, &format!("{e}"));
                }
            }
        }
    }
}

/// A vif as the datapath's guest port. Frames for the guest are queued by
/// `deliver` and copied into the guest's buffers at `flush`, so a port
/// never takes the [`NET`] lock while another port's `receive` holds it
/// (the datapath switches guest-to-guest frames inside `receive`).
struct VifPort {
    id: VifId,
    rx: FrameQueue,
}

impl GuestPort for VifPort {
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.receive_in_place(budget, &mut |frame| sink(frame))
            .unwrap_or(0)
    }

    /// The frame `poll_tx` lends is the vif's own copy: the datapath edits
    /// it there, with no copy into its scratch buffer.
    fn receive_in_place(
        &mut self,
        _budget: usize,
        sink: &mut dyn FnMut(&mut [u8]),
    ) -> Option<usize> {
        Some(with_vif(self.id, |hv, vif| vif.poll_tx(hv, |frame| sink(frame))).unwrap_or(0))
    }

    /// The guest's GSO super-frames and partial checksums go to the
    /// datapath as netback lends them ([`VIF_TX_CAPS`]).
    fn receive_offload(
        &mut self,
        _budget: usize,
        sink: &mut dyn FnMut(&mut [u8], TxOffload),
    ) -> Option<usize> {
        let taken = with_vif(self.id, |hv, vif| {
            vif.poll_tx_offload(hv, VIF_TX_CAPS, |frame, off| sink(frame, off.tx()))
        });
        Some(taken.unwrap_or(0))
    }

    fn deliver(&mut self, frame: &[u8]) -> Result<(), PortError> {
        if self.rx.push(frame) {
            Ok(())
        } else {
            Err(PortError::Full)
        }
    }

    /// Netback delivers a super-frame whole to a frontend that negotiated
    /// GSO and segments it for one that did not; it checks the request
    /// against the frame.
    fn takes_offload(&self) -> bool {
        true
    }

    fn deliver_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), PortError> {
        if self.rx.push_offload(frame, req) {
            Ok(())
        } else {
            Err(PortError::Full)
        }
    }

    fn flush(&mut self) {
        if self.rx.is_empty() {
            return;
        }
        let Some(mut guard) = NET.try_lock() else {
            return;
        };
        let Some(net) = guard.as_mut() else { return };
        let XenNet { hv, netback, .. } = net;
        let vif = netback.as_mut().and_then(|nb| nb.vif_mut(self.id));
        match vif {
            Some(vif) => {
                // One batch for the turn's frames: one grant copy for all
                // (where they fit) and at most one notification per queue,
                // instead of a hypercall and an event per frame (issue 10).
                // A frame's drop is counted by netback.
                let mut batch = vif.rx_batch(hv);
                while self
                    .rx
                    .pop_offload(|frame, req| {
                        let _ = batch.push(frame, Offload::from_tx(&req));
                    })
                    .is_some()
                {}
                batch.finish();
            }
            None => while self.rx.pop(|_| ()).is_some() {},
        }
    }
}

/// Runs `f` on vif `id` with the platform, from inside the datapath's
/// turn; `None` if the platform is busy or gone or the vif is gone (the
/// vif then lends nothing this turn).
fn with_vif<R>(id: VifId, f: impl FnOnce(&mut Xen, &mut netback::Vif<Xen>) -> R) -> Option<R> {
    let mut guard = NET.try_lock()?;
    let XenNet { hv, netback, .. } = guard.as_mut()?;
    let vif = netback.as_mut()?.vif_mut(id)?;
    Some(f(hv, vif))
}

/// The `xen` console command.
pub fn command(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("takes no arguments".into());
    }
    let guard = NET.lock();
    let Some(net) = guard.as_ref() else {
        return Err(if is_xen() {
            "Xen found but the platform did not start (see the boot log)".into()
        } else {
            "not running on Xen".into()
        });
    };
    let (major, minor) = net.hv.version();
    let xs = net.hv.xenstore_stats();
    let g = net.hv.grant_stats();
    println!(
        "xen {major}.{minor} domid {} xenstore requests {} errors {} timeouts {} watch_events {} resyncs {} in_flight {} max_in_flight {} unknown_replies {} noent {}",
        net.hv.domid(),
        xs.requests,
        xs.errors,
        xs.timeouts,
        xs.watch_events,
        xs.resyncs,
        xs.in_flight,
        xs.max_in_flight,
        xs.unknown_replies,
        xs.noent
    );
    if let Some(e) = net.hv.xenstore_last_error() {
        println!(
            "xenstore last error {:?} on {} {}",
            e.error,
            xen::xs_wire::ty_name(e.ty),
            e.path
        );
    }
    println!(
        "grants copy_ops {} copy_hypercalls {} copy_failures {} maps {} unmaps {} map_failures {}; evtchn open {}; pv console {}",
        g.copy_ops,
        g.copy_hypercalls,
        g.copy_failures,
        g.maps,
        g.unmaps,
        g.map_failures,
        net.hv.open_ports().len(),
        if xen::console::is_attached() { "attached" } else { "absent" }
    );
    let irqs: Vec<String> = net
        .hv
        .device_irqs()
        .iter()
        .map(|i| format!("gsi {} pirq {} port {}", i.gsi, i.pirq, i.port))
        .collect();
    println!(
        "nic interrupts {} events {}",
        if irqs.is_empty() {
            "none (uplinks polled every 1 ms)".to_string()
        } else {
            irqs.join(", ")
        },
        net.hv.device_irq_events()
    );
    println!(
        "idle: block fallbacks {} (yielded: Xen's clock unreadable or SCHEDOP_poll refused)",
        net.hv.block_fallbacks()
    );
    println!("config {} \"{}\"", net.config_path, net.config_text.trim());
    if let Some(dp) = domain.dp.as_mut() {
        offload_line(dp);
    }
    if let Some(line) = crate::ctl::counters_line() {
        println!("{line}");
    }
    let Some(nb) = net.netback.as_ref() else {
        println!("netback not running");
        return Ok(());
    };
    let mut any = false;
    for v in nb.vifs() {
        any = true;
        let id = v.id();
        let c = v.counters();
        let guest = net
            .attached
            .get(&id)
            .map_or("-".to_string(), |a| format!("{}", a.guest.0));
        let ips: Vec<String> = v
            .ips()
            .iter()
            .map(|&(a, l)| match IpNet::new(a, l) {
                Some(n) => format!("{n}"),
                None => format!("{a}/{l}"),
            })
            .collect();
        println!(
            "vif {}/{} state {} {} guest {guest} mac {} ip {}",
            id.frontend,
            id.handle,
            v.state().to_raw(),
            if v.is_connected() {
                "connected"
            } else {
                "disconnected"
            },
            v.mac().map_or("-".to_string(), |m| format!("{m}")),
            if ips.is_empty() {
                "-".to_string()
            } else {
                ips.join(",")
            },
        );
        println!(
            "  tx_frames {} tx_bytes {} rx_frames {} rx_bytes {} tx_drops {} rx_drops {} fatal {} connects {} disconnects {} connect_failures {} notifies {} rx_batches {} refusals {} xenstore_errors {}",
            c.tx_frames,
            c.tx_bytes,
            c.rx_frames,
            c.rx_bytes,
            c.tx_drops_total(),
            c.rx_drops_total(),
            c.fatal_total(),
            c.connects,
            c.disconnects,
            c.connect_failures,
            c.notifies,
            c.rx_batches,
            c.refusals,
            c.xenstore_errors
        );
        // Offloads (issue 10): GSO super-frames from the guest and the
        // segments netback cut them into (none: the datapath takes them
        // whole, see the `datapath offload` line above), GSO frames
        // delivered whole and frames segmented for a frontend without
        // GSO, the rate limit.
        println!(
            "  offload tx_gso {} tx_segments {} rx_gso {} rx_segmented {} tx_rate_limited {} rate_errors {} rx_coalesced {}",
            c.tx_gso, c.tx_segments, c.rx_gso, c.rx_segmented, c.tx_rate_limited, c.rate_errors, c.rx_coalesced
        );
        let drops: Vec<String> = TxDrop::ALL
            .iter()
            .filter(|d| c.tx_drops(**d) > 0)
            .map(|d| format!("tx_{}={}", d.name(), c.tx_drops(*d)))
            .chain(
                RxDrop::ALL
                    .iter()
                    .filter(|d| c.rx_drops(**d) > 0)
                    .map(|d| format!("rx_{}={}", d.name(), c.rx_drops(*d))),
            )
            .collect();
        if !drops.is_empty() {
            println!("  drops {}", drops.join(" "));
        }
        if let Some(e) = v.last_error() {
            println!("  last connect error: {e:?}");
        }
        if let Some(why) = v.refused() {
            println!("  refused: {why}");
        }
    }
    if !any {
        println!("no vifs");
    }
    Ok(())
}

/// Where guests' GSO frames were finished (issue 10.2): by an uplink's
/// device (TSO), by the nic crate's fallback on an uplink that cannot, by
/// the vif they went to (whole or segmented, as its frontend negotiated),
/// or cut by the datapath (own stack, floods); and what each uplink does.
fn offload_line(dp: &mut datapath::Datapath) {
    let d = *dp.counters();
    let caps: Vec<String> = (0..dp.uplink_count())
        .filter_map(|u| {
            let nic = dp.uplink(aggregation::UplinkId(u as u8))?;
            Some(nic::NicDatapath::offloads(&*nic))
        })
        .map(|o| {
            let mut words: Vec<&str> = Vec::new();
            if o.csum {
                words.push("csum");
            }
            if o.tso4 {
                words.push("tso4");
            }
            if o.tso6 {
                words.push("tso6");
            }
            if words.is_empty() {
                "none".into()
            } else {
                words.join("+")
            }
        })
        .collect();
    println!(
        "datapath offload gso_uplink_tso {} gso_uplink_software {} gso_guest {} gso_software {} csum_software {} offload_errors {}; uplinks {}",
        d.gso_uplink_tso,
        d.gso_uplink_software,
        d.gso_guest,
        d.gso_software,
        d.csum_software,
        d.offload_errors,
        if caps.is_empty() { "none".into() } else { caps.join(" ") }
    );
}
