//! The datapath proper: sources polled in batches, engine decisions carried
//! out on NICs, identity moves turned into MAC register / filter writes.
//!
//! A guest's TCP super-frame (GSO) or partial checksum travels with its
//! offload request ([`TxOffload`]): the engine decides once for the whole
//! frame (charged its full bytes), and the request goes with the frame to
//! an uplink (whose device segments and checksums, or the nic crate's
//! software fallback) or a guest port that takes it. Only the own stack,
//! floods and ports that take plain frames get it finished here, with the
//! nic crate's segmenter: aggdom has one.
use crate::frame_queue::FrameQueue;
use crate::guest_port::{GuestPort, PortError};
use crate::tap::{Tap, TapDir, TapPort};
use aggregation::{
    learning_frame, Engine, GuestId, GuestSet, IpNet, Mode, Move, Moves, OwnTxDecision, RxDecision,
    Steering, TxDecision, UplinkConfig, UplinkId,
};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;
use nic::offload::{self, Segmenter};
use nic::{MacAddr, Nic, NicError, TxOffload, MAX_FRAME_LEN};

/// Frames taken from the own stack's queue in one poll.
const BATCH: usize = 32;
/// Fair service between sources (guest ports and uplinks), by deficit
/// round robin (issue 10.3): each round a source gains [`QUANTUM`] of
/// credit and spends a frame's length plus [`FRAME_COST`] on each frame it
/// hands in. It is asked for as many frames as its credit could pay for
/// at the smallest frame's price, at most [`MAX_FRAMES`]; a source that
/// overdrew (large frames) sits out rounds until its credit is back, and
/// an idle one keeps no more than one quantum. So a busy source gets about
/// a quantum per round whatever its frame sizes, and a light one is served
/// every round.
pub(crate) const QUANTUM: i64 = 32 * (MAX_FRAME_LEN as i64 + FRAME_COST);
/// The per-frame part of a frame's price: the work that does not grow
/// with its length (decision, descriptor, doorbell share).
pub(crate) const FRAME_COST: i64 = 64;
/// Frames one source may hand in per round: bounds the time one busy
/// source can hold the loop.
pub(crate) const MAX_FRAMES: usize = 64;
/// `log2(60 + FRAME_COST)` rounded up: credit >> this is how many
/// minimum-size frames the credit pays for, near enough (a shift, not a
/// division).
const MIN_PRICE_SHIFT: u32 = 7;
/// Link state is read this often (DESIGN.md: failover within ~100 ms).
const LINK_CHECK_NS: u64 = 10_000_000;

/// What went wrong while adding a NIC or guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    Engine(aggregation::Error),
    Nic(NicError),
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SetupError::Engine(e) => write!(f, "{e}"),
            SetupError::Nic(e) => write!(f, "NIC: {e}"),
        }
    }
}

/// Work the datapath could not do, by cause. Frame drops the engine decides
/// are counted by the engine, per guest/uplink and reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatapathCounters {
    /// A frame for an uplink found its transmit ring full.
    pub uplink_tx_full: u64,
    /// A frame for a guest found no receive buffer (or the port down).
    pub guest_port_full: u64,
    /// A frame for the own stack found its queue full.
    pub own_queue_full: u64,
    /// MAC register / filter programming the NIC refused.
    pub program_errors: u64,
    /// Learning frames sent after identity moves.
    pub learning_frames: u64,
    /// Identity moves carried out (rebalance, failover, own-stack swaps).
    pub moves: u64,
    /// Literal mode: MAC register writes around guest frames (writes and
    /// restores; consecutive frames of one guest on one uplink share them).
    pub literal_mac_writes: u64,
    /// Literal mode: guest frames sent without the MAC register write,
    /// because their uplink cannot write it (virtio-net without the
    /// control queue's MAC command).
    pub literal_unsupported: u64,
    /// Guests' TCP super-frames (GSO) queued whole on an uplink whose
    /// device segments them (TSO).
    pub gso_uplink_tso: u64,
    /// GSO frames queued on an uplink that cannot segment them: cut into
    /// segments in software (the nic crate's fallback) as they were queued.
    pub gso_uplink_software: u64,
    /// GSO frames handed whole, with their request, to another guest's
    /// port (a vif delivers them whole or segmented, as its frontend
    /// negotiated).
    pub gso_guest: u64,
    /// GSO frames the datapath cut into segments itself: for the own
    /// stack, a flood, or a port that takes plain frames only.
    pub gso_software: u64,
    /// Partial checksums the datapath completed itself, for the same.
    pub csum_software: u64,
    /// Frames dropped because their offload request does not fit them
    /// (GSO on a frame that is not TCP, a zero or oversized MSS, a
    /// checksum field outside the frame).
    pub offload_errors: u64,
}

/// A guest as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestInfo {
    pub name: String,
    pub mac: MacAddr,
    /// Addresses and IPv6 prefixes, as configured.
    pub ips: Vec<IpNet>,
}

pub struct Datapath {
    /// Boxed: the engine's tables are ~290 KiB, too much to move around on
    /// a kernel stack.
    engine: Box<Engine>,
    /// Indexed by `UplinkId`; `None` only while that uplink is being polled.
    uplinks: Vec<Option<Box<dyn Nic>>>,
    /// Indexed by `GuestId`; `None` for removed guests and while polled.
    ports: Vec<Option<Box<dyn GuestPort>>>,
    /// Indexed by `GuestId`: who the guest is, for the console and metrics.
    guests: Vec<Option<GuestInfo>>,
    /// Frames for the domain's own IP stack.
    own_rx: FrameQueue,
    /// Frames from the domain's own IP stack.
    own_tx: FrameQueue,
    /// An own IP stack reads `own_rx` ([`Datapath::set_own_stack`]); without
    /// one, floods skip the queue instead of filling it with frames nobody
    /// takes (and counting them lost).
    own_stack: bool,
    /// The copy of the frame in hand that the engine may edit: one buffer
    /// reused for every frame (a fresh zeroed 1514-byte array per frame
    /// cost a memset each, measurable under TCG).
    scratch: Box<[u8]>,
    /// Where a super-frame's segments (or a completed checksum's copy)
    /// are built, one at a time, for a destination that takes plain
    /// frames only.
    segment: Box<[u8]>,
    counters: DatapathCounters,
    /// Literal mode, indexed by `UplinkId`: the guest MAC the uplink's MAC
    /// register holds now and the MAC to restore (claim steps 8-10,
    /// amortised over a guest's consecutive frames); `None`: its own.
    written: Vec<Option<(MacAddr, MacAddr)>>,
    /// Literal mode, indexed by `UplinkId`: the uplink cannot write its MAC
    /// register (found when it was added).
    no_mac_write: Vec<bool>,
    /// Deficit round robin credit, indexed by `GuestId` / `UplinkId`.
    guest_credit: Vec<i64>,
    uplink_credit: Vec<i64>,
    /// The guest port and uplink served first in the next round: rotated
    /// so no source is always first to the shared transmit rings.
    first_guest: usize,
    first_uplink: usize,
    /// The last round left a source that may still hold frames
    /// ([`Datapath::saturated`]).
    saturated: bool,
    next_tick: u64,
    next_link_check: u64,
    /// A packet capture's tap ([`Datapath::set_tap`]); `None`: one branch.
    tap: Option<Box<dyn Tap>>,
}

impl Datapath {
    /// An empty datapath; `own_queue` frames of room each way for the own stack.
    pub fn new(config: aggregation::Config, own_queue: usize) -> Self {
        Self {
            engine: Box::new(Engine::new(config)),
            uplinks: Vec::new(),
            ports: Vec::new(),
            guests: Vec::new(),
            own_rx: FrameQueue::new(own_queue),
            own_tx: FrameQueue::new(own_queue),
            own_stack: false,
            scratch: alloc::vec![0; MAX_FRAME_LEN].into_boxed_slice(),
            segment: alloc::vec![0; MAX_FRAME_LEN].into_boxed_slice(),
            counters: DatapathCounters::default(),
            written: Vec::new(),
            no_mac_write: Vec::new(),
            guest_credit: Vec::new(),
            uplink_credit: Vec::new(),
            first_guest: 0,
            first_uplink: 0,
            saturated: false,
            next_tick: 0,
            next_link_check: 0,
            tap: None,
        }
    }

    /// Sets (or with `None` removes) the capture tap; returns the old one.
    pub fn set_tap(&mut self, tap: Option<Box<dyn Tap>>) -> Option<Box<dyn Tap>> {
        core::mem::replace(&mut self.tap, tap)
    }

    #[inline]
    fn tap(&mut self, port: TapPort, dir: TapDir, frame: &[u8]) {
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.frame(port, dir, frame);
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// For control-plane changes (bind, pin, ...). Changes that move
    /// identities return `Moves`: hand them to [`Datapath::apply_moves`].
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn counters(&self) -> &DatapathCounters {
        &self.counters
    }

    pub fn uplink(&mut self, u: UplinkId) -> Option<&mut (dyn Nic + 'static)> {
        self.uplinks.get_mut(usize::from(u.0))?.as_deref_mut()
    }

    pub fn uplink_count(&self) -> usize {
        self.uplinks.len()
    }

    /// Adds an uplink; its factory MAC becomes a new identity. Program it
    /// with [`Datapath::program_all`] once every uplink is added.
    pub fn add_uplink(
        &mut self,
        mut nic: Box<dyn Nic>,
        capacity_mbps: u32,
        exclusive: bool,
    ) -> Result<UplinkId, SetupError> {
        let mut cfg = UplinkConfig::new(nic.permanent_mac());
        cfg.capacity_mbps = capacity_mbps;
        // The primary MAC register plus the extra filter entries.
        cfg.filter_slots = u8::try_from(nic.filter_slots() + 1).unwrap_or(u8::MAX);
        cfg.link_up = nic.link_up();
        let id = self.engine.add_uplink(cfg).map_err(SetupError::Engine)?;
        if exclusive {
            self.engine
                .set_exclusive(id, true)
                .map_err(SetupError::Engine)?;
        }
        debug_assert_eq!(usize::from(id.0), self.uplinks.len());
        // Literal mode needs the MAC register: writing the one it holds
        // finds out whether the driver can (virtio-net cannot without the
        // control queue's MAC command).
        let no_mac_write = self.engine.mode() == Mode::Literal
            && nic.set_mac(nic.mac()) == Err(NicError::Unsupported);
        self.uplinks.push(Some(nic));
        self.written.push(None);
        self.no_mac_write.push(no_mac_write);
        self.uplink_credit.push(QUANTUM);
        Ok(id)
    }

    /// Literal mode: the uplinks whose MAC register cannot be written; their
    /// guest frames leave without claim steps 8-10, counted in
    /// `literal_unsupported`.
    pub fn literal_unsupported(&self) -> impl Iterator<Item = UplinkId> + '_ {
        self.no_mac_write
            .iter()
            .enumerate()
            .filter(|(_, &no)| no)
            .map(|(u, _)| UplinkId(u as u8))
    }

    /// Adds a guest behind `port`, with its MAC and IPs: addresses and
    /// IPv6 prefixes (spread over the identities, [0030]).
    pub fn add_guest(
        &mut self,
        name: &str,
        port: Box<dyn GuestPort>,
        mac: MacAddr,
        ips: &[IpNet],
    ) -> Result<GuestId, SetupError> {
        let id = self
            .engine
            .add_guest_nets(mac, ips)
            .map_err(SetupError::Engine)?;
        let at = usize::from(id.0);
        if self.ports.len() <= at {
            self.ports.resize_with(at + 1, || None);
        }
        if self.guests.len() <= at {
            self.guests.resize_with(at + 1, || None);
        }
        if self.guest_credit.len() <= at {
            self.guest_credit.resize(at + 1, QUANTUM);
        }
        self.ports[at] = Some(port);
        self.guests[at] = Some(GuestInfo {
            name: name.into(),
            mac,
            ips: ips.to_vec(),
        });
        if self.engine.mode() == Mode::Literal {
            // Literal mode: uplinks accept guest MACs (DESIGN.md).
            self.program_all();
        }
        Ok(id)
    }

    /// Removes a guest (its vif went away) and returns its port.
    pub fn remove_guest(&mut self, id: GuestId) -> Option<Box<dyn GuestPort>> {
        self.engine.remove_guest(id).ok()?;
        if self.engine.mode() == Mode::Literal {
            // Literal mode put the guest's MAC in every uplink's filter: take
            // it out, or the uplinks keep accepting (and the switch keeps
            // sending) frames for a guest that is gone, and a filter that had
            // overflowed into promiscuous stays there.
            self.program_all();
        }
        let at = usize::from(id.0);
        self.guests.get_mut(at)?.take();
        self.ports.get_mut(at)?.take()
    }

    /// Writes every uplink's MAC register and filter from the engine's state.
    pub fn program_all(&mut self) {
        for u in 0..self.uplinks.len() {
            self.program_uplink(UplinkId(u as u8));
        }
    }

    /// Makes one uplink's MAC register and receive filter match the
    /// identities it holds (and, in literal mode, the guests' MACs).
    fn program_uplink(&mut self, u: UplinkId) {
        self.literal_restore(usize::from(u.0));
        let Some(primary) = self.engine.uplink_mac(u) else {
            return;
        };
        let mut wanted: Vec<MacAddr> = self
            .engine
            .held(u)
            .iter()
            .filter_map(|id| self.engine.identity_mac(id))
            .filter(|m| *m != primary)
            .collect();
        let literal = self.engine.mode() == Mode::Literal;
        if literal {
            for g in self.engine.guests() {
                if let Some(m) = self.engine.guest_mac(g) {
                    wanted.push(m);
                }
            }
        }
        // Multicast (IPv6 neighbour solicitations above all) is accepted
        // on every uplink, as broadcasts are: the switch floods it to all
        // of them and the engine keeps the broadcast uplink's copy. Were it
        // accepted there alone, a failover would have to turn it on
        // elsewhere, and on QEMU's e1000 that receive-control write stops
        // reception for a second, on the uplink just taking over.
        let all_multicast = true;
        let Some(Some(nic)) = self.uplinks.get_mut(usize::from(u.0)) else {
            return;
        };
        let promiscuous = wanted.len() > nic.filter_slots();
        let mut ok = true;
        if nic.mac() != primary {
            ok &= nic.set_mac(primary).is_ok();
        }
        if promiscuous {
            ok &= nic.set_promiscuous(true).is_ok();
        } else {
            if nic.filter() != wanted.as_slice() {
                ok &= nic.set_filter(&wanted).is_ok();
            }
            if nic.promiscuous() {
                ok &= nic.set_promiscuous(false).is_ok();
            }
        }
        if nic.all_multicast() != all_multicast {
            // A NIC without the switch (virtio-net without CTRL_RX) takes
            // every frame anyway: nothing to count.
            ok &= !matches!(
                nic.set_all_multicast(all_multicast),
                Err(e) if e != NicError::Unsupported
            );
        }
        if !ok {
            self.counters.program_errors += 1;
        }
    }

    /// Carries out identity moves: reprogram both uplinks, then a learning
    /// frame from the new holder so the switch relearns the MAC.
    pub fn apply_moves(&mut self, moves: &Moves) {
        for m in moves.iter() {
            self.apply_move(m);
        }
    }

    fn apply_move(&mut self, m: &Move) {
        self.counters.moves += 1;
        // What the old holder queued this round (an own-stack frame under
        // this identity, say) goes to its device before the learning frame
        // below: handed over after it, it would teach the switch the MAC
        // on the old holder's port again, and the identity's traffic would
        // go to an uplink that no longer takes it until it next sent.
        if let Some(Some(nic)) = self.uplinks.get_mut(usize::from(m.from.0)) {
            nic.flush_tx();
        }
        self.program_uplink(m.from);
        self.program_uplink(m.to);
        let mut frame = [0u8; 64];
        let len = learning_frame(m.mac, &mut frame);
        if let Some(Some(nic)) = self.uplinks.get_mut(usize::from(m.to.0)) {
            if nic.transmit(&[&frame[..len]]) == 1 {
                self.counters.learning_frames += 1;
            } else {
                self.counters.uplink_tx_full += 1;
            }
        }
    }

    /// Declares the domain's own IP stack (its identity and IPs, as
    /// [`Engine::set_own_stack`]); from now on broadcasts reach it too.
    pub fn set_own_stack(
        &mut self,
        identity: aggregation::IdentityId,
        ips: &[IpAddr],
    ) -> Result<(), aggregation::Error> {
        self.engine.set_own_stack(identity, ips)?;
        self.own_stack = true;
        Ok(())
    }

    /// The guests present, with their ids.
    pub fn guests(&self) -> impl Iterator<Item = (GuestId, &GuestInfo)> {
        self.guests
            .iter()
            .enumerate()
            .filter_map(|(i, g)| Some((GuestId(i as u16), g.as_ref()?)))
    }

    /// The NIC behind a guest port, when the port is a NIC (QEMU).
    pub fn guest_nic(&mut self, g: GuestId) -> Option<&mut dyn Nic> {
        self.ports.get_mut(usize::from(g.0))?.as_deref_mut()?.nic()
    }

    /// Both own-stack queues at once: (to the stack, from the stack).
    pub fn own_queues(&mut self) -> (&mut FrameQueue, &mut FrameQueue) {
        (&mut self.own_rx, &mut self.own_tx)
    }

    /// Frames waiting for the own IP stack.
    pub fn own_rx(&mut self) -> &mut FrameQueue {
        &mut self.own_rx
    }

    /// Where the own IP stack puts frames to send.
    pub fn own_tx(&mut self) -> &mut FrameQueue {
        &mut self.own_tx
    }

    /// One round: own-stack frames, a batch from every guest port and
    /// uplink, link checks and the engine's tick. Returns the frames moved
    /// (0: the caller may idle).
    pub fn poll(&mut self, now: u64) -> usize {
        self.saturated = false;
        let mut work = self.poll_own_tx(now);
        let n = self.ports.len();
        let first = if self.first_guest < n {
            self.first_guest
        } else {
            0
        };
        for g in (first..n).chain(0..first) {
            work += self.poll_guest(now, g);
        }
        self.first_guest = first + 1;
        let n = self.uplinks.len();
        let first = if self.first_uplink < n {
            self.first_uplink
        } else {
            0
        };
        for u in (first..n).chain(0..first) {
            work += self.poll_uplink(now, u);
        }
        self.first_uplink = first + 1;
        self.flush_all();
        if now >= self.next_link_check {
            self.next_link_check = now + LINK_CHECK_NS;
            self.check_links(now);
        }
        if now >= self.next_tick {
            self.next_tick = now + self.engine.config().tick_interval_ns;
            let moves = self.engine.tick(now);
            self.apply_moves(&moves);
        }
        work
    }

    /// Whether the last [`Datapath::poll`] may have left frames behind: a
    /// source gave all the round asked of it, or was skipped while paying
    /// off an overdraft. When false every source was drained, so a loop
    /// may sleep until the next interrupt or event (as NAPI re-enables
    /// interrupts once a poll comes in under its budget) with nothing
    /// waiting that would raise none.
    pub fn saturated(&self) -> bool {
        self.saturated
    }

    fn flush_all(&mut self) {
        for nic in self.uplinks.iter_mut().flatten() {
            nic.flush_tx();
        }
        for port in self.ports.iter_mut().flatten() {
            port.flush();
        }
    }

    fn check_links(&mut self, now: u64) {
        for u in 0..self.uplinks.len() {
            let id = UplinkId(u as u8);
            let Some(Some(nic)) = self.uplinks.get_mut(u) else {
                continue;
            };
            let up = nic.link_up();
            if up != self.engine.is_link_up(id) {
                let moves = self.engine.link_changed(now, id, up);
                self.apply_moves(&moves);
            }
        }
    }

    fn poll_own_tx(&mut self, now: u64) -> usize {
        let mut done = 0;
        // The frame is copied into `scratch` (not a fresh zeroed array per
        // frame), taken out for the loop as in `guest_frame`.
        let mut buf = core::mem::take(&mut self.scratch);
        while done < BATCH {
            let Some(len) = self.own_tx.pop(|f| {
                let len = f.len().min(buf.len());
                buf[..len].copy_from_slice(&f[..len]);
                len
            }) else {
                break;
            };
            done += 1;
            let frame = &mut buf[..len];
            match self.engine.own_transmit(now, frame) {
                OwnTxDecision::Send { uplink, moves } => {
                    // Claim step 5: the swap happens before the send.
                    self.apply_moves(&moves);
                    self.send_on_uplink(uplink, None, frame, &TxOffload::NONE);
                }
                OwnTxDecision::SwitchLocal { guest } => self.deliver_to_guest(guest, frame),
                OwnTxDecision::Drop(_) => {}
            }
        }
        self.scratch = buf;
        self.saturated |= done == BATCH;
        done
    }

    fn poll_guest(&mut self, now: u64, g: usize) -> usize {
        let Some(mut port) = self.ports.get_mut(g).and_then(Option::take) else {
            return 0;
        };
        let guest = GuestId(g as u16);
        let Some(budget) = self.guest_credit.get_mut(g).and_then(round_budget) else {
            self.ports[g] = Some(port);
            self.saturated = true;
            return 0;
        };
        // A port that lends its own copy saves the copy into scratch; one
        // that lends offload requests saves segmenting before the engine.
        let mut lent = port.receive_offload(budget, &mut |frame, req| {
            self.spend_guest(g, frame.len());
            self.guest_decide(now, guest, frame, &req)
        });
        if lent.is_none() {
            lent = port.receive_in_place(budget, &mut |frame| {
                self.spend_guest(g, frame.len());
                self.guest_decide(now, guest, frame, &TxOffload::NONE)
            });
        }
        let n = match lent {
            Some(n) => n,
            None => port.receive(budget, &mut |frame| {
                self.spend_guest(g, frame.len());
                self.guest_frame(now, guest, frame)
            }),
        };
        self.ports[g] = Some(port);
        // The batch ended: literal mode's registers get their own MACs back.
        self.literal_restore_all();
        self.saturated |= n >= budget;
        n
    }

    fn spend_guest(&mut self, g: usize, len: usize) {
        if let Some(c) = self.guest_credit.get_mut(g) {
            *c -= len as i64 + FRAME_COST;
        }
    }

    /// Claim steps 7-10 for one guest frame.
    fn guest_frame(&mut self, now: u64, guest: GuestId, frame: &[u8]) {
        // Taken out for the call (an empty box in its place: no allocation).
        let mut buf = core::mem::take(&mut self.scratch);
        let len = frame.len().min(buf.len());
        buf[..len].copy_from_slice(&frame[..len]);
        self.guest_decide(now, guest, &mut buf[..len], &TxOffload::NONE);
        self.scratch = buf;
    }

    /// One engine decision for a guest's frame, super-frame or not, and
    /// the frame (with `req`) to wherever it goes.
    fn guest_decide(&mut self, now: u64, guest: GuestId, frame: &mut [u8], req: &TxOffload) {
        self.tap(TapPort::Guest(guest), TapDir::In, frame);
        match self.engine.guest_transmit(now, guest, frame) {
            TxDecision::Send {
                uplink,
                steering,
                flood_local,
            } => {
                if flood_local {
                    let mut others = GuestSet::ALL;
                    others.remove(guest);
                    self.in_software(frame, req, |dp, f| dp.flood(others, f));
                }
                self.send_on_uplink(uplink, Some(steering), frame, req);
            }
            TxDecision::SwitchLocal { guest: to } => self.deliver_to_guest_offload(to, frame, req),
            TxDecision::ToOwnStack => {
                self.in_software(frame, req, |dp, f| dp.deliver_to_own_stack(f))
            }
            TxDecision::Drop(_) => {}
        }
    }

    /// Lends `frame` to `out` finished as `req` asks, for a destination
    /// that takes plain frames only: as it is when there is nothing to
    /// finish, else each segment of a super-frame, or a copy with its
    /// checksum completed. A request that does not fit the frame is a
    /// counted drop.
    fn in_software(
        &mut self,
        frame: &[u8],
        req: &TxOffload,
        mut out: impl FnMut(&mut Self, &[u8]),
    ) {
        if *req == TxOffload::NONE {
            return out(self, frame);
        }
        // Taken out for the calls, as `scratch` is; `out` never finishes
        // another frame in software, so the empty box is not used.
        let mut buf = core::mem::take(&mut self.segment);
        if let Some(gso) = req.gso {
            match Segmenter::new(frame, gso) {
                Ok(seg) => {
                    self.counters.gso_software += 1;
                    for i in 0..seg.count() {
                        // Segments fit MAX_FRAME_LEN (`Segmenter::new`).
                        let Some(b) = buf.get_mut(..seg.len(i)) else {
                            break;
                        };
                        seg.write(frame, i, b);
                        out(self, b);
                    }
                }
                Err(_) => self.counters.offload_errors += 1,
            }
        } else if let Some(c) = req.csum {
            match buf.get_mut(..frame.len()) {
                Some(b) => {
                    b.copy_from_slice(frame);
                    if offload::complete_checksum(b, c).is_ok() {
                        self.counters.csum_software += 1;
                        out(self, b);
                    } else {
                        self.counters.offload_errors += 1;
                    }
                }
                // Longer than a frame, and not a super-frame.
                None => self.counters.offload_errors += 1,
            }
        }
        self.segment = buf;
    }

    fn poll_uplink(&mut self, now: u64, u: usize) -> usize {
        let Some(mut nic) = self.uplinks.get_mut(u).and_then(Option::take) else {
            return 0;
        };
        let uplink = UplinkId(u as u8);
        let Some(budget) = self.uplink_credit.get_mut(u).and_then(round_budget) else {
            self.uplinks[u] = Some(nic);
            self.saturated = true;
            return 0;
        };
        // A driver that lends its receive buffer saves the copy into scratch.
        let in_place = nic.receive_in_place(budget, &mut |frame| {
            self.spend_uplink(u, frame.len());
            self.uplink_decide(now, uplink, frame)
        });
        let n = match in_place {
            Some(n) => n,
            None => nic.receive(budget, &mut |frame| {
                self.spend_uplink(u, frame.len());
                self.uplink_frame(now, uplink, frame)
            }),
        };
        self.uplinks[u] = Some(nic);
        self.saturated |= n >= budget;
        n
    }

    fn spend_uplink(&mut self, u: usize, len: usize) {
        if let Some(c) = self.uplink_credit.get_mut(u) {
            *c -= len as i64 + FRAME_COST;
        }
    }

    fn uplink_frame(&mut self, now: u64, uplink: UplinkId, frame: &[u8]) {
        let mut buf = core::mem::take(&mut self.scratch);
        let len = frame.len().min(buf.len());
        buf[..len].copy_from_slice(&frame[..len]);
        self.uplink_decide(now, uplink, &mut buf[..len]);
        self.scratch = buf;
    }

    fn uplink_decide(&mut self, now: u64, uplink: UplinkId, frame: &mut [u8]) {
        self.tap(TapPort::Uplink(uplink), TapDir::In, frame);
        match self.engine.uplink_receive(now, uplink, frame) {
            RxDecision::ToGuest { guest } => self.deliver_to_guest(guest, frame),
            RxDecision::ToOwnStack => self.deliver_to_own_stack(frame),
            RxDecision::Flood { guests } => self.flood(guests, frame),
            RxDecision::Drop(_) => {}
        }
    }

    /// A broadcast to the guests in `to`, and to the own stack.
    fn flood(&mut self, to: GuestSet, frame: &[u8]) {
        for g in 0..self.ports.len() {
            if to.contains(GuestId(g as u16)) && self.ports[g].is_some() {
                self.deliver_to_guest(GuestId(g as u16), frame);
            }
        }
        if self.own_stack {
            self.deliver_to_own_stack(frame);
        }
    }

    fn deliver_to_guest(&mut self, guest: GuestId, frame: &[u8]) {
        let delivered = match self.ports.get_mut(usize::from(guest.0)) {
            Some(Some(port)) => port.deliver(frame),
            // The guest being polled (a hairpin) or gone.
            _ => Err(PortError::Down),
        };
        if delivered.is_err() {
            self.counters.guest_port_full += 1;
        } else {
            self.tap(TapPort::Guest(guest), TapDir::Out, frame);
        }
    }

    /// A guest's frame with its offload request to another guest: whole
    /// to a port that takes requests, finished here for any other.
    fn deliver_to_guest_offload(&mut self, guest: GuestId, frame: &[u8], req: &TxOffload) {
        if *req == TxOffload::NONE {
            return self.deliver_to_guest(guest, frame);
        }
        let delivered = match self.ports.get_mut(usize::from(guest.0)) {
            Some(Some(port)) if port.takes_offload() => port.deliver_offload(frame, req),
            Some(Some(_)) => {
                return self.in_software(frame, req, |dp, f| dp.deliver_to_guest(guest, f));
            }
            _ => Err(PortError::Down),
        };
        match delivered {
            Ok(()) => {
                if req.gso.is_some() {
                    self.counters.gso_guest += 1;
                }
                self.tap(TapPort::Guest(guest), TapDir::Out, frame);
            }
            Err(PortError::FrameLength) => self.counters.offload_errors += 1,
            Err(_) => self.counters.guest_port_full += 1,
        }
    }

    fn deliver_to_own_stack(&mut self, frame: &[u8]) {
        if !self.own_rx.push(frame) {
            self.counters.own_queue_full += 1;
        }
    }

    /// Sends on an uplink, with the frame's offload request: the device
    /// does what it can, the nic crate's fallback the rest. Literal mode
    /// (claim steps 8-10): the MAC register holds the frame's source MAC
    /// while it leaves, and its own MAC again once the guest's frames in
    /// this batch have left.
    fn send_on_uplink(
        &mut self,
        uplink: UplinkId,
        steering: Option<Steering>,
        frame: &[u8],
        req: &TxOffload,
    ) {
        let u = usize::from(uplink.0);
        match steering {
            Some(Steering::WriteMacThenRestore { mac, restore }) => {
                self.literal_write(u, mac, restore)
            }
            // The uplink's own MAC is needed (an own-stack frame).
            _ => self.literal_restore(u),
        }
        let Some(Some(nic)) = self.uplinks.get_mut(u) else {
            self.counters.uplink_tx_full += 1;
            return;
        };
        let mut queued = queue_on(&mut **nic, frame, req);
        if queued == Err(NicError::TxFull) {
            // The ring holds this round's frames so far: hand them to the
            // device and try once more, rather than drop a frame of
            // whichever source comes last to a busy uplink.
            nic.flush_tx();
            queued = queue_on(&mut **nic, frame, req);
        }
        match queued {
            Ok(()) => {
                if req.gso.is_some() {
                    if nic.offloads().covers(req) {
                        self.counters.gso_uplink_tso += 1;
                    } else {
                        self.counters.gso_uplink_software += 1;
                    }
                }
                self.tap(TapPort::Uplink(uplink), TapDir::Out, frame);
            }
            Err(NicError::Offload) => self.counters.offload_errors += 1,
            Err(_) => self.counters.uplink_tx_full += 1,
        }
    }
}

/// Literal mode's register work, amortised (issue 13.4): a guest's frames
/// on one uplink share one write, and the restore waits until the
/// uplink's own MAC is needed or the batch ends.
impl Datapath {
    /// Claim step 8: uplink `u`'s MAC register holds `mac` for the frame
    /// about to be queued.
    fn literal_write(&mut self, u: usize, mac: MacAddr, restore: MacAddr) {
        if self.no_mac_write.get(u).copied().unwrap_or(false) {
            self.counters.literal_unsupported += 1;
            return;
        }
        match self.written.get(u) {
            Some(Some((now, _))) if *now == mac => return,
            Some(Some(_)) => self.literal_restore(u), // another guest's
            _ => {}
        }
        let Some(Some(nic)) = self.uplinks.get_mut(u) else {
            return;
        };
        match nic.set_mac(mac) {
            Ok(()) => {
                self.counters.literal_mac_writes += 1;
                self.written[u] = Some((mac, restore));
            }
            Err(NicError::Unsupported) => {
                self.no_mac_write[u] = true;
                self.counters.literal_unsupported += 1;
            }
            Err(_) => self.counters.program_errors += 1,
        }
    }

    /// Claim step 10: the frames sent under a written MAC leave, then uplink
    /// `u`'s register gets its own MAC back.
    fn literal_restore(&mut self, u: usize) {
        let Some((_, restore)) = self.written.get_mut(u).and_then(Option::take) else {
            return;
        };
        let Some(Some(nic)) = self.uplinks.get_mut(u) else {
            return;
        };
        nic.flush_tx();
        if nic.set_mac(restore).is_ok() {
            self.counters.literal_mac_writes += 1;
        } else {
            self.counters.program_errors += 1;
        }
    }

    fn literal_restore_all(&mut self) {
        for u in 0..self.written.len() {
            self.literal_restore(u);
        }
    }
}

/// Queues `frame` on `nic`: a plain frame as ever, one with an offload
/// request through the driver's offload path.
#[inline]
fn queue_on(nic: &mut dyn Nic, frame: &[u8], req: &TxOffload) -> Result<(), NicError> {
    if *req == TxOffload::NONE {
        nic.queue_tx(frame.len(), &mut |buf| buf.copy_from_slice(frame))
    } else {
        nic.queue_tx_offload(frame, req)
    }
}

/// A new round's credit for one source, and how many frames to ask it for;
/// `None` while it is still paying off an overdraft.
#[inline]
fn round_budget(credit: &mut i64) -> Option<usize> {
    *credit = (*credit + QUANTUM).min(QUANTUM);
    if *credit <= 0 {
        return None;
    }
    Some(((*credit >> MIN_PRICE_SHIFT) as usize + 1).min(MAX_FRAMES))
}

#[cfg(test)]
mod in_place_tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::RefCell;
    use core::net::{IpAddr, Ipv4Addr};
    use nic::FakeNic;

    /// A port that lends its frames only mutably, and keeps them so the test
    /// sees what the datapath did to them.
    struct InPlacePort {
        frames: Rc<RefCell<Vec<Vec<u8>>>>,
    }

    impl GuestPort for InPlacePort {
        fn receive(&mut self, _: usize, _: &mut dyn FnMut(&[u8])) -> usize {
            panic!("the datapath must use receive_in_place when a port offers it");
        }
        fn receive_in_place(
            &mut self,
            budget: usize,
            sink: &mut dyn FnMut(&mut [u8]),
        ) -> Option<usize> {
            let mut frames = self.frames.borrow_mut();
            let n = frames.len().min(budget);
            for f in frames.iter_mut().take(n) {
                sink(f);
            }
            Some(n)
        }
        fn deliver(&mut self, _: &[u8]) -> Result<(), PortError> {
            Ok(())
        }
        fn flush(&mut self) {}
    }

    #[test]
    fn a_port_lending_its_own_copy_is_rewritten_in_place() {
        let uplink_mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let guest_mac = MacAddr([0x52, 0x54, 0, 0, 1, 1]);
        let mut dp = Datapath::new(aggregation::Config::DEFAULT, 4);
        dp.add_uplink(Box::new(FakeNic::new(uplink_mac)), 1000, false)
            .unwrap();
        dp.program_all();
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[2, 0xaa, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&guest_mac.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 11]);
        f[30..34].copy_from_slice(&[8, 8, 8, 8]);
        let frames = Rc::new(RefCell::new(vec![f]));
        let port = InPlacePort {
            frames: frames.clone(),
        };
        let ip = IpNet::host(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)));
        dp.add_guest("g", Box::new(port), guest_mac, &[ip]).unwrap();
        assert_eq!(dp.poll(0), 1);
        // Identity mode: the source MAC became the uplink's identity, in
        // the port's own buffer, and the frame left the uplink.
        assert_eq!(frames.borrow()[0][6..12], uplink_mac.0);
        let c = dp.uplink(UplinkId(0)).unwrap().counters();
        assert_eq!(c.tx_frames, 1);
    }
}
