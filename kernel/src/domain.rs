//! The running domain: the NICs found, the datapath built from the
//! configuration, and the own IP stack; polled from the main loop.
use crate::nics::{self, FoundNic};
use crate::ownstack::OwnStack;
use crate::{irq, println, time, xen_net};
use aggdom_config::NicAddress;
use alloc::string::String;
use alloc::vec::Vec;
use datapath::{Datapath, Role};
use nic::Nic;
use pci::{DeviceFunction, NicKind};

/// A usable NIC and what it serves as.
pub struct NicSlot {
    pub at: DeviceFunction,
    pub vendor_id: u16,
    pub device_id: u16,
    pub kind: NicKind,
    pub role: Role,
}

/// Nanoseconds spent in polls that moved frames, and the frames moved.
#[derive(Clone, Copy, Default)]
pub struct Busy {
    pub forward_ns: u64,
    pub forward_frames: u64,
    pub datapath_ns: u64,
    pub datapath_frames: u64,
}

pub struct Domain {
    /// Usable NICs in PCI order: `nics` and `nic <n>` number them so.
    pub nics: Vec<NicSlot>,
    /// `None` when the configuration was rejected.
    pub dp: Option<Datapath>,
    pub own: Option<OwnStack>,
    /// Bare NIC→NIC forwarding between spare NICs (`forward`), the
    /// baseline the aggregation cost is measured against.
    pub forwards: Vec<(usize, usize)>,
    /// Frames moved by `forward`.
    pub forwarded: u64,
    /// Frames `forward` received but the other NIC refused.
    pub forward_drops: u64,
    /// Time spent in polls that moved frames, and the frames they moved:
    /// bare forwarding and the datapath, for the per-frame cost of
    /// aggregation (`forward` prints them; `bench-datapath` reads them).
    pub busy: Busy,
    /// How the NICs wake the idle loop, if they all can; `None`: the loop
    /// must poll on a short timer.
    wake: Option<Wake>,
    /// When a poll last moved something.
    last_work_ns: u64,
}

/// How often an idle domain wakes to poll when its NICs cannot interrupt
/// (the 1 ms tick it always had).
const POLL_FALLBACK_NS: u64 = 1_000_000;
/// After the last frame, the datapath keeps its own cadence (engine tick,
/// link check: 10 ms) this long, so rates decay and rebalancing decides as
/// under load; ten EWMA time constants (100 ms each) leave nothing to decay.
const SETTLE_NS: u64 = 1_000_000_000;
/// Then it wakes only this often: link changes and frames interrupt, so the
/// timer is left for the shell's `watch` and the own stack's retransmits.
const IDLE_TIMER_NS: u64 = 100_000_000;

/// How every NIC's interrupt reaches the idle loop.
#[derive(Clone, Copy)]
enum Wake {
    /// Plain QEMU: these PIC lines (bit n = IRQ n) wake `hlt`.
    Pic(u16),
    /// Under Xen: each NIC's INTx is bound to an event channel
    /// (`xen_net::bind_nic_irqs`), which wakes `SCHEDOP_poll`.
    EventChannels,
}

impl Domain {
    /// Builds the datapath from `cmdline`; a bad configuration is reported
    /// and leaves every NIC idle (the console still works).
    pub fn start(found: Vec<FoundNic>, cmdline: &str) -> Domain {
        let mut meta = Vec::new();
        let mut drivers = Vec::new();
        for f in found {
            if let Ok(nic) = f.driver {
                meta.push((
                    f.at,
                    f.vendor_id,
                    f.device_id,
                    f.kind,
                    f.irq_line,
                    f.irq_pin,
                ));
                drivers.push(nic);
            }
        }
        let addresses: Vec<NicAddress> = meta.iter().map(|(at, ..)| nics::address(*at)).collect();
        let wake = if xen_net::is_xen() {
            // Under Xen the loop takes no interrupts: the NICs' INTx become
            // event channels, polled like the vifs'.
            let pins: Vec<(DeviceFunction, u8)> = meta.iter().map(|m| (m.0, m.5)).collect();
            xen_net::bind_nic_irqs(&pins).then_some(Wake::EventChannels)
        } else {
            pic_lines(meta.iter().map(|m| m.4)).map(Wake::Pic)
        };
        let slots = |roles: Vec<Role>| -> Vec<NicSlot> {
            meta.iter()
                .zip(roles)
                .map(|(&(at, vendor_id, device_id, kind, ..), role)| NicSlot {
                    at,
                    vendor_id,
                    device_id,
                    kind,
                    role,
                })
                .collect()
        };
        let plan = match aggdom_config::parse(cmdline) {
            Ok(plan) => plan,
            Err(e) => {
                println!("config: {e}; datapath not started");
                return Domain {
                    nics: slots(drivers.into_iter().map(Role::Spare).collect()),
                    dp: None,
                    own: None,
                    forwards: Vec::new(),
                    forwarded: 0,
                    forward_drops: 0,
                    busy: Busy::default(),
                    wake,
                    last_work_ns: 0,
                };
            }
        };
        match datapath::build(&plan, drivers, &addresses) {
            Ok(built) => {
                let mut dp = built.datapath;
                let own = plan.own.as_ref().map(|o| {
                    let mac = dp
                        .engine()
                        .identity_mac(aggregation::IdentityId(o.identity as u8))
                        .unwrap_or(nic::MacAddr([2, 0, 0, 0, 0, 1]));
                    let now = time::now_ns();
                    OwnStack::new(
                        &mut dp,
                        mac.0,
                        datapath::own_addresses(o, mac),
                        &o.gateways,
                        plan.metrics_allow.clone(),
                        now / 1_000_000,
                        now,
                    )
                });
                let domain = Domain {
                    nics: slots(built.roles),
                    dp: Some(dp),
                    own,
                    forwards: Vec::new(),
                    forwarded: 0,
                    forward_drops: 0,
                    busy: Busy::default(),
                    wake,
                    last_work_ns: 0,
                };
                domain.print_roles();
                domain
            }
            Err((e, back)) => {
                println!("config: {e}; datapath not started");
                let roles = if back.len() == meta.len() {
                    back.into_iter().map(Role::Spare).collect()
                } else {
                    Vec::new()
                };
                Domain {
                    nics: slots(roles),
                    dp: None,
                    own: None,
                    forwards: Vec::new(),
                    forwarded: 0,
                    forward_drops: 0,
                    busy: Busy::default(),
                    wake,
                    last_work_ns: 0,
                }
            }
        }
    }

    fn print_roles(&self) {
        let mut uplinks = String::new();
        let mut guests = String::new();
        for (i, n) in self.nics.iter().enumerate() {
            match n.role {
                Role::Uplink(u) => uplinks += &alloc::format!(" {i}(uplink {})", u.0),
                Role::Guest(g) => guests += &alloc::format!(" {i}(guest {})", g.0),
                Role::Spare(_) => {}
            }
        }
        let mode = self.dp.as_ref().map_or("-", |dp| dp.engine().mode().name());
        println!(
            "datapath: mode {mode}; uplinks:{uplinks}; guest ports:{}",
            if guests.is_empty() { " none" } else { &guests }
        );
        if let Some(dp) = self.dp.as_ref() {
            for u in dp.literal_unsupported() {
                println!(
                    "datapath: literal mode: uplink {} cannot write its MAC register (no control-queue MAC command); its guest frames leave without claim steps 8-10, counted as literal unsupported",
                    u.0
                );
            }
        }
        if let Some(own) = &self.own {
            let allow = own.metrics_allow().prefixes();
            let clients = if allow.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = allow.iter().map(|p| alloc::format!("{p}")).collect();
                alloc::format!(" for {}", list.join(","))
            };
            let ips: Vec<String> = own
                .ips
                .iter()
                .map(|(ip, _)| alloc::format!("{ip}"))
                .collect();
            println!(
                "own stack: {} at {}, HTTP /metrics on port {}{clients}",
                ips.join(", "),
                nic::MacAddr(own.mac.0),
                crate::ownstack::HTTP_PORT
            );
        }
    }

    /// The NIC numbered `index` by `nics`, whatever its role.
    pub fn nic_mut(&mut self, index: usize) -> Option<&mut dyn Nic> {
        let slot = self.nics.get_mut(index)?;
        match &mut slot.role {
            Role::Spare(nic) => Some(&mut **nic),
            Role::Uplink(u) => self.dp.as_mut()?.uplink(*u).map(|n| n as &mut dyn Nic),
            Role::Guest(g) => self.dp.as_mut()?.guest_nic(*g),
        }
    }

    pub fn role_name(&self, index: usize) -> String {
        match self.nics.get(index).map(|n| &n.role) {
            Some(Role::Uplink(u)) => alloc::format!("uplink {}", u.0),
            Some(Role::Guest(g)) => alloc::format!("guest {}", g.0),
            Some(Role::Spare(_)) => String::from("spare"),
            None => String::new(),
        }
    }

    /// Two distinct spare NICs at once.
    fn spare_pair(&mut self, a: usize, b: usize) -> Option<(&mut dyn Nic, &mut dyn Nic)> {
        if a == b || a.max(b) >= self.nics.len() {
            return None;
        }
        let (lo, hi) = self.nics.split_at_mut(a.max(b));
        let (x, y) = (&mut lo[a.min(b)].role, &mut hi[0].role);
        let (Role::Spare(x), Role::Spare(y)) = (x, y) else {
            return None;
        };
        Some(if a < b {
            (&mut **x, &mut **y)
        } else {
            (&mut **y, &mut **x)
        })
    }

    /// Starts bare forwarding of every frame from spare NIC `from` to spare
    /// NIC `to` (promiscuous on `from`).
    pub fn start_forward(&mut self, from: usize, to: usize) -> Result<(), String> {
        let (a, _) = self
            .spare_pair(from, to)
            .ok_or("both NICs must exist, differ and be spare (in no role)")?;
        a.set_promiscuous(true).map_err(|e| alloc::format!("{e}"))?;
        self.forwards.push((from, to));
        Ok(())
    }

    fn poll_forwards(&mut self) -> usize {
        let mut moved = 0;
        for i in 0..self.forwards.len() {
            let (from, to) = self.forwards[i];
            let Some((a, b)) = self.spare_pair(from, to) else {
                continue;
            };
            // Take no more than `to` has room for: the rest waits in
            // `from`'s receive ring (back-pressure) instead of being dropped.
            let budget = b.tx_space().min(32);
            let mut dropped = 0;
            moved += a.receive(budget, &mut |frame| {
                if b.queue_tx(frame.len(), &mut |buf| buf.copy_from_slice(frame))
                    .is_err()
                {
                    dropped += 1;
                }
            });
            b.flush_tx();
            self.forward_drops += dropped;
        }
        self.forwarded += moved as u64;
        moved
    }

    /// One round of the datapath and the own stack; returns frames moved.
    pub fn poll(&mut self, now_ns: u64) -> usize {
        let forwarded = if self.forwards.is_empty() {
            0
        } else {
            let moved = self.poll_forwards();
            if moved > 0 {
                self.busy.forward_ns += time::now_ns().saturating_sub(now_ns);
                self.busy.forward_frames += moved as u64;
            }
            moved
        };
        let Some(dp) = self.dp.as_mut() else {
            return forwarded;
        };
        let start = if forwarded > 0 {
            time::now_ns()
        } else {
            now_ns
        };
        let moved = dp.poll(now_ns);
        if moved > 0 {
            self.busy.datapath_ns += time::now_ns().saturating_sub(start);
            self.busy.datapath_frames += moved as u64;
        }
        let mut work = forwarded + moved;
        if let Some(own) = self.own.as_mut() {
            let before = dp.own_queues().1.len();
            own.poll(dp, now_ns / 1_000_000);
            work += dp.own_queues().1.len().saturating_sub(before);
        }
        if work > 0 {
            self.last_work_ns = now_ns;
        }
        work
    }

    /// Whether the last [`Domain::poll`] may have left frames in a ring
    /// ([`datapath::Datapath::saturated`]; forwards, QEMU's test wiring,
    /// count as never drained).
    pub fn saturated(&self) -> bool {
        !self.forwards.is_empty() || self.dp.as_ref().is_some_and(|dp| dp.saturated())
    }

    /// Before the loop sleeps: acknowledges every NIC's interrupt, asks it
    /// for one at the next frame or link change, and unmasks the NIC lines.
    /// The caller must poll once more before sleeping (a frame that came
    /// before the re-arm raises nothing). False when the NICs cannot wake
    /// the loop (then [`Domain::next_deadline`] stays short).
    pub fn arm_interrupts(&mut self) -> bool {
        let Some(wake) = self.wake else {
            return false;
        };
        let mut all = true;
        for i in 0..self.nics.len() {
            all &= self.nic_mut(i).is_some_and(|nic| nic.arm_interrupt());
        }
        if !all {
            // Only at start-up (a driver without interrupts): poll instead.
            self.wake = None;
            println!("irq: a NIC driver cannot interrupt; polling every 1 ms");
            return false;
        }
        match wake {
            Wake::Pic(lines) => irq::unmask(lines),
            // The devices are acknowledged: let Xen deliver the next one.
            Wake::EventChannels => xen_net::ack_nic_irqs(),
        }
        true
    }

    /// When the domain next needs the loop, with nothing arriving: the
    /// datapath's tick while traffic settles, then a slow timer; 1 ms when
    /// the NICs cannot interrupt.
    pub fn next_deadline(&self, now_ns: u64) -> u64 {
        if self.wake.is_none() {
            return now_ns + POLL_FALLBACK_NS;
        }
        let settling = now_ns.saturating_sub(self.last_work_ns) < SETTLE_NS;
        let tick = self
            .dp
            .as_ref()
            .map_or(IDLE_TIMER_NS, |dp| dp.engine().config().tick_interval_ns);
        now_ns + if settling { tick } else { IDLE_TIMER_NS }
    }
}

/// The PIC lines of the NICs' INTx, if every NIC has one the loop may take.
fn pic_lines(lines: impl Iterator<Item = Option<u8>>) -> Option<u16> {
    let Some(lines) = lines
        .map(|l| l.map(|l| 1u16 << l))
        .try_fold(0u16, |acc, bit| bit.map(|b| acc | b))
    else {
        println!("irq: a NIC has no routed INTx line; polling every 1 ms");
        return None;
    };
    let taken = irq::add_nic_lines(lines);
    if taken != lines {
        println!("irq: NIC lines {lines:#06x} include 0-2; polling every 1 ms");
    }
    (taken == lines).then_some(lines)
}

pub fn pci_text(at: DeviceFunction) -> String {
    alloc::format!("{}", nics::address(at))
}
