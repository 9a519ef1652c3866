//! The virtio-net device: bring-up, the receive, transmit and control
//! queues, and the NIC traits.
use core::mem::ManuallyDrop;
use core::sync::atomic::{fence, Ordering};

use nic::offload::{self, Offloads, Segmenter, TxOffload, MAX_GSO_FRAME_LEN};
use nic::{
    Counters, MacAddr, NicControl, NicDatapath, NicError, RxFilter, MAX_FRAME_LEN, MIN_FRAME_LEN,
};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::bus::{
    Command as PciCommand, ConfigurationAccess, DeviceFunction, PciRoot,
};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};
use virtio_drivers::{Hal, PAGE_SIZE};

use crate::ctrl::{self, Command};
use crate::features;
use crate::hdr::VirtioNetHdr;
use crate::slots::{FreeList, Outstanding};
use crate::VirtioNetError;
use dma_region::DmaRegion;

/// Descriptors in the receive and in the transmit queue (QEMU offers 256).
pub const QUEUE_LEN: usize = 128;
/// Descriptors in the control queue (QEMU offers 64; a command takes 4).
const CTRL_QUEUE_LEN: usize = 16;
/// Bytes per frame buffer: the 12-byte header and the largest frame fit.
pub const BUF_LEN: usize = 2048;
/// Buffers one transmit chain may take: a header and the largest
/// super-frame the device segments.
const MAX_CHAIN: usize = (12 + MAX_GSO_FRAME_LEN).div_ceil(BUF_LEN);
/// No next buffer in a transmit chain.
const END: u16 = u16::MAX;

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
const CTRL_QUEUE: u16 = 2;

/// How long a bounded wait (reset, control command) may take, in TSC
/// cycles: ~1.6 s at 2.6 GHz. It is a time, not a count of reads, because
/// QEMU answers control commands from its I/O thread (ioeventfd), which on a
/// busy 2-core host under TCG can lag the notify by many milliseconds.
const WAIT_CYCLES: u64 = 1 << 32;

fn tsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Polls `done` until it holds or `WAIT_CYCLES` have passed.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let start = tsc();
    loop {
        if done() {
            return true;
        }
        if tsc().wrapping_sub(start) > WAIT_CYCLES {
            return done();
        }
        core::hint::spin_loop();
    }
}

const RX_BUFS_OFFSET: usize = 0;
const TX_BUFS_OFFSET: usize = QUEUE_LEN * BUF_LEN;
const BUFS_PAGES: usize = (2 * QUEUE_LEN * BUF_LEN).div_ceil(PAGE_SIZE);
/// In the control page: header and data from 0, the ack byte here.
const CTRL_ACK_OFFSET: usize = PAGE_SIZE - 1;

/// Config space: `struct virtio_net_config { u8 mac[6]; le16 status; ... }`.
const CONFIG_MAC: usize = 0;
const CONFIG_STATUS: usize = 6;
const STATUS_LINK_UP: u16 = 1;

/// A virtio-net device in poll mode, generic over the DMA allocator `H`
/// and the transport `T` (`PciTransport` for QEMU's virtio-net-pci, modern
/// or transitional).
///
/// The device writes into the queues and buffers until a reset completes,
/// so they are `ManuallyDrop`: `Drop` frees them only after it has seen the
/// reset complete, and leaks them if it never does (as `reset` replaces
/// the queues only after a completed reset).
pub struct VirtioNetNic<H: Hal, T: Transport = PciTransport> {
    /// Dropped last: `PciTransport`'s own drop resets the device again and
    /// waits for it without a bound.
    transport: ManuallyDrop<T>,
    features: u64,
    hdr_len: usize,
    rx: ManuallyDrop<VirtQueue<H, QUEUE_LEN>>,
    tx: ManuallyDrop<VirtQueue<H, QUEUE_LEN>>,
    ctrl: ManuallyDrop<Option<VirtQueue<H, CTRL_QUEUE_LEN>>>,
    /// Receive buffers, then transmit buffers.
    bufs: ManuallyDrop<DmaRegion<H>>,
    /// Control command header, data and ack.
    ctrl_mem: ManuallyDrop<DmaRegion<H>>,
    rx_out: Outstanding<QUEUE_LEN>,
    tx_out: Outstanding<QUEUE_LEN>,
    /// Bytes (header included) in each transmit buffer the device holds.
    tx_len: [u16; QUEUE_LEN],
    /// The next buffer of the chain a transmit buffer begins or continues
    /// (a super-frame spans several), `END` for its last.
    tx_next: [u16; QUEUE_LEN],
    /// What the device puts on the wire for the chain a buffer begins:
    /// frames (a super-frame's segments) and bytes.
    tx_wire: [(u16, u32); QUEUE_LEN],
    tx_free: FreeList<QUEUE_LEN>,
    tx_unnotified: bool,
    /// Used-buffer notifications are on for the receive queue: only while
    /// the caller sleeps (`arm_interrupt`), off again once frames flow.
    rx_notify: bool,
    permanent: MacAddr,
    filter: RxFilter,
    link: bool,
    /// The device broke the queue protocol (returned a token it was not
    /// given): the datapath stops until `reset`.
    broken: bool,
    /// A control command went unanswered: its buffers may still be the
    /// device's, so no further command is sent until `reset`.
    ctrl_broken: bool,
    counters: Counters,
}

/// What bring-up negotiates and sets up, before the driver state exists.
struct Queues<H: Hal> {
    features: u64,
    rx: VirtQueue<H, QUEUE_LEN>,
    tx: VirtQueue<H, QUEUE_LEN>,
    ctrl: Option<VirtQueue<H, CTRL_QUEUE_LEN>>,
}

impl<H: Hal> VirtioNetNic<H, PciTransport> {
    /// Brings up the virtio-net device at `function`, transitional
    /// (1af4:1000) or modern (1af4:1041): enables memory decoding and bus
    /// mastering, maps its modern capabilities through `H`, then as
    /// [`VirtioNetNic::new`].
    pub fn from_pci<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        function: DeviceFunction,
    ) -> Result<Self, VirtioNetError> {
        let (_, command) = root.get_status_command(function);
        root.set_command(
            function,
            command | PciCommand::MEMORY_SPACE | PciCommand::BUS_MASTER,
        );
        let transport =
            PciTransport::new::<H, C>(root, function).map_err(|_| VirtioNetError::Transport)?;
        Self::new(transport)
    }
}

impl<H: Hal, T: Transport> VirtioNetNic<H, T> {
    /// Brings up the device behind `transport`: reset, feature negotiation,
    /// queues, receive buffers, DRIVER_OK, then through the control queue
    /// promiscuous and all-multicast off and an empty MAC table, so that
    /// only its MAC and broadcast are accepted (QEMU starts promiscuous).
    pub fn new(mut transport: T) -> Result<Self, VirtioNetError> {
        if transport.device_type() != DeviceType::Network {
            return Err(VirtioNetError::NotNetwork);
        }
        let bufs = DmaRegion::new(BUFS_PAGES).ok_or(VirtioNetError::NoMemory)?;
        let ctrl_mem = DmaRegion::new(1).ok_or(VirtioNetError::NoMemory)?;
        let q = Self::negotiate(&mut transport)?;
        let permanent = transport
            .read_consistent(|| transport.read_config_space::<[u8; 6]>(CONFIG_MAC))
            .map(MacAddr)
            .map_err(|_| Self::fail(&mut transport, VirtioNetError::ConfigSpace))?;
        // QEMU takes any `mac=`, multicast too; such a NIC could never be
        // an identity.
        if !permanent.is_valid_unicast() {
            return Err(Self::fail(&mut transport, VirtioNetError::NoMac));
        }
        let mut nic = Self {
            transport: ManuallyDrop::new(transport),
            features: q.features,
            hdr_len: features::header_len(q.features),
            rx: ManuallyDrop::new(q.rx),
            tx: ManuallyDrop::new(q.tx),
            ctrl: ManuallyDrop::new(q.ctrl),
            bufs: ManuallyDrop::new(bufs),
            ctrl_mem: ManuallyDrop::new(ctrl_mem),
            rx_out: Outstanding::new(),
            tx_out: Outstanding::new(),
            tx_len: [0; QUEUE_LEN],
            tx_next: [END; QUEUE_LEN],
            tx_wire: [(0, 0); QUEUE_LEN],
            tx_free: FreeList::full(),
            tx_unnotified: false,
            rx_notify: false,
            permanent,
            filter: RxFilter::new(permanent),
            link: false,
            broken: false,
            ctrl_broken: false,
            counters: Counters::default(),
        };
        nic.start()?;
        Ok(nic)
    }

    /// Marks the device FAILED and returns `e`.
    fn fail(transport: &mut T, e: VirtioNetError) -> VirtioNetError {
        transport.set_status(DeviceStatus::FAILED);
        e
    }

    fn reset_device(transport: &mut T) -> Result<(), VirtioNetError> {
        transport.set_status(DeviceStatus::empty());
        if wait_until(|| transport.get_status() == DeviceStatus::empty()) {
            Ok(())
        } else {
            Err(VirtioNetError::ResetTimeout)
        }
    }

    /// Device initialization (virtio 1.2, 3.1.1) up to, not including,
    /// DRIVER_OK.
    fn negotiate(transport: &mut T) -> Result<Queues<H>, VirtioNetError> {
        Self::reset_device(transport)?;
        transport.set_status(DeviceStatus::ACKNOWLEDGE);
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let offered = transport.read_device_features();
        let features = features::negotiate(offered)
            .map_err(|missing| Self::fail(transport, VirtioNetError::MissingFeatures(missing)))?;
        transport.write_driver_features(features);
        let ok = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
        transport.set_status(ok);
        if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            return Err(Self::fail(transport, VirtioNetError::FeaturesRejected));
        }
        transport.set_guest_page_size(PAGE_SIZE as u32);
        let queue_err = |e| match e {
            virtio_drivers::Error::DmaError => VirtioNetError::NoMemory,
            _ => VirtioNetError::Queue,
        };
        let rx = VirtQueue::new(transport, RX_QUEUE, false, false).map_err(queue_err);
        let rx = rx.map_err(|e| Self::fail(transport, e))?;
        let tx = VirtQueue::new(transport, TX_QUEUE, false, false).map_err(queue_err);
        let tx = tx.map_err(|e| Self::fail(transport, e))?;
        let ctrl = if features & features::CTRL_VQ != 0 {
            let q = VirtQueue::new(transport, CTRL_QUEUE, false, false).map_err(queue_err);
            Some(q.map_err(|e| Self::fail(transport, e))?)
        } else {
            None
        };
        Ok(Queues {
            features,
            rx,
            tx,
            ctrl,
        })
    }

    /// Gives the device every receive buffer, sets DRIVER_OK, and programs
    /// the bring-up receive filter.
    fn start(&mut self) -> Result<(), VirtioNetError> {
        // Poll mode until `arm_interrupt`: no used-buffer notifications.
        self.rx.set_dev_notify(false);
        self.rx_notify = false;
        self.tx.set_dev_notify(false);
        if let Some(c) = self.ctrl.as_mut() {
            c.set_dev_notify(false);
        }
        self.rx_out.clear();
        self.tx_out.clear();
        self.tx_free = FreeList::full();
        self.tx_unnotified = false;
        self.broken = false;
        self.ctrl_broken = false;
        for buf in 0..QUEUE_LEN as u16 {
            if !self.give_rx(buf) {
                return Err(Self::fail(&mut self.transport, VirtioNetError::Queue));
            }
        }
        self.transport.finish_init();
        self.transport.notify(RX_QUEUE);
        self.link = self.read_link();

        let rx_mode = self.features & features::CTRL_RX != 0;
        self.filter = RxFilter::new(self.permanent);
        // Without CTRL_RX the device stays as it starts: promiscuous.
        self.filter.promiscuous = !rx_mode;
        if rx_mode {
            for cmd in [
                Command::Promiscuous(false),
                Command::AllMulticast(false),
                Command::SetTable(&[]),
            ] {
                self.control(cmd).map_err(VirtioNetError::Control)?;
            }
        }
        if self.features & features::CTRL_MAC_ADDR != 0 {
            // A reset restores the factory MAC in QEMU; say so explicitly
            // for devices that do not.
            self.control(Command::SetMac(self.permanent))
                .map_err(VirtioNetError::Control)?;
        }
        Ok(())
    }

    fn read_link(&self) -> bool {
        if self.features & features::STATUS == 0 {
            return true;
        }
        self.transport
            .read_config_space::<u16>(CONFIG_STATUS)
            .map_or(self.link, |s| s & STATUS_LINK_UP != 0)
    }

    /// Hands receive buffer `buf` to the device; false if the queue refused.
    fn give_rx(&mut self, buf: u16) -> bool {
        let slice = self.bufs.slice_mut(rx_buf(buf), BUF_LEN);
        // SAFETY: the buffer lies in `bufs`, which outlives the queue (the
        // device is reset before either is dropped); the driver does not
        // touch it again until the device returns this token.
        let token = unsafe { self.rx.add(&[], &mut [slice]) };
        token.is_ok_and(|t| self.rx_out.insert(t, buf))
    }

    /// Reclaims transmit chains the device has used, counting what they
    /// put on the wire.
    fn reclaim_tx(&mut self) {
        while let Some(token) = self.tx.peek_used() {
            let Some(head) = self.tx_out.take(token) else {
                self.broken = true;
                return;
            };
            let (parts, n) = tx_chain(&self.bufs, &self.tx_len, &self.tx_next, head);
            // SAFETY: `token` carried exactly this chain (`tx_out` and
            // `tx_next`), added as these device-readable descriptors.
            if unsafe { self.tx.pop_used(token, &parts[..n], &mut []) }.is_err() {
                self.broken = true;
                return;
            }
            let (frames, bytes) = self.tx_wire[usize::from(head)];
            self.counters.tx_frames += u64::from(frames);
            self.counters.tx_bytes += u64::from(bytes);
            self.free_tx_chain(head);
        }
    }

    /// Puts the buffers of the chain beginning with `head` back on the
    /// free list and unlinks them.
    fn free_tx_chain(&mut self, head: u16) {
        let mut b = head;
        while let Some(next) = self.tx_next.get_mut(usize::from(b)) {
            let next = core::mem::replace(next, END);
            self.tx_free.push(b);
            b = next;
        }
    }

    /// Takes `n` transmit buffers (reclaiming first if short), or none.
    fn take_tx_bufs(&mut self, n: usize) -> Option<[u16; MAX_CHAIN]> {
        if self.broken || n > MAX_CHAIN {
            return None;
        }
        if self.tx_free.len() < n || self.tx.available_desc() < n {
            self.reclaim_tx();
        }
        if self.tx_free.len() < n || self.tx.available_desc() < n {
            return None;
        }
        let mut chain = [END; MAX_CHAIN];
        for slot in &mut chain[..n] {
            *slot = self.tx_free.pop()?;
        }
        Some(chain)
    }

    /// Hands the chain of buffers beginning with `head` (lengths and links
    /// already recorded) to the device; on refusal its buffers go back.
    fn add_tx_chain(&mut self, head: u16, wire: (u16, u32)) -> Result<(), NicError> {
        let (parts, n) = tx_chain(&self.bufs, &self.tx_len, &self.tx_next, head);
        // SAFETY: the buffers lie in `bufs`, which outlives the queue, and
        // are not written again until the device returns this token.
        let token = match unsafe { self.tx.add(&parts[..n], &mut []) } {
            Ok(t) => t,
            Err(_) => {
                self.free_tx_chain(head);
                return Err(NicError::TxFull);
            }
        };
        if !self.tx_out.insert(token, head) {
            self.broken = true;
        }
        self.tx_wire[usize::from(head)] = wire;
        self.tx_unnotified = true;
        Ok(())
    }

    /// Both `receive` and `receive_in_place`: frames are lent mutably from
    /// their buffers; the buffers go back to the device after the batch,
    /// with at most one notification (none while the device says it is
    /// busy), and receive interrupts are turned off while frames flow.
    fn receive_frames(&mut self, budget: usize, sink: &mut dyn FnMut(&mut [u8])) -> usize {
        let mut delivered = 0;
        let mut done = [0u16; QUEUE_LEN];
        let mut n_done = 0;
        for _ in 0..QUEUE_LEN {
            if delivered >= budget || self.broken {
                break;
            }
            let Some(token) = self.rx.peek_used() else {
                break;
            };
            let Some(buf) = self.rx_out.take(token) else {
                self.broken = true;
                break;
            };
            let slice = self.bufs.slice_mut(rx_buf(buf), BUF_LEN);
            // SAFETY: `token` carried exactly this buffer (`rx_out`), added
            // as one device-writable descriptor of `BUF_LEN` bytes.
            let used = unsafe { self.rx.pop_used(token, &[], &mut [slice]) };
            let Ok(used) = used else {
                self.broken = true;
                break;
            };
            fence(Ordering::Acquire);
            match rx_frame(used, self.hdr_len) {
                Some(range) => {
                    let frame = self.bufs.slice_mut(rx_buf(buf) + range.start, range.len());
                    sink(frame);
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += range.len() as u64;
                    delivered += 1;
                }
                None => self.counters.rx_drops += 1,
            }
            done[n_done] = buf;
            n_done += 1;
        }
        for &buf in &done[..n_done] {
            if !self.give_rx(buf) {
                self.broken = true;
                break;
            }
        }
        if n_done > 0 {
            if self.rx_notify {
                // Frames flow: the caller polls until it runs dry and
                // re-arms, so QEMU need not raise an interrupt per frame.
                self.rx.set_dev_notify(false);
                self.rx_notify = false;
            }
            if self.rx.should_notify() {
                self.transport.notify(RX_QUEUE);
            }
        }
        delivered
    }

    /// Sends one control command and waits, bounded, for the device's ack.
    fn control(&mut self, cmd: Command) -> Result<(), NicError> {
        if self.ctrl_broken {
            return Err(NicError::Timeout);
        }
        let Self {
            ctrl,
            transport,
            ctrl_mem,
            ..
        } = self;
        let Some(queue) = ctrl.as_mut() else {
            return Err(NicError::Unsupported);
        };
        let mem = ctrl_mem.slice_mut(0, PAGE_SIZE);
        let (out, ack) = mem.split_at_mut(CTRL_ACK_OFFSET);
        out[..2].copy_from_slice(&cmd.header());
        let parts = cmd.encode(&mut out[2..]).ok_or(NicError::FilterFull)?;
        ack[0] = 0xff;
        let out: &[u8] = out;
        let mut inputs: [&[u8]; 3] = [&out[..2], &[], &[]];
        let mut at = 2;
        for (slot, &len) in inputs[1..].iter_mut().zip(parts.lens()) {
            *slot = &out[at..at + len];
            at += len;
        }
        let inputs = &inputs[..1 + parts.lens().len()];
        // SAFETY: header, data and ack live in `ctrl_mem`, which outlives
        // the queue; nothing touches them until `pop_used` below, or ever
        // again if the device does not answer (`ctrl_broken`).
        let token =
            unsafe { queue.add(inputs, &mut [&mut ack[..1]]) }.map_err(|_| NicError::Timeout)?;
        transport.notify(CTRL_QUEUE);
        if !wait_until(|| queue.peek_used() == Some(token)) {
            self.ctrl_broken = true;
            return Err(NicError::Timeout);
        }
        // SAFETY: the same buffers `add` was given for this token.
        if unsafe { queue.pop_used(token, inputs, &mut [&mut ack[..1]]) }.is_err() {
            self.ctrl_broken = true;
            return Err(NicError::Timeout);
        }
        match ack[0] {
            ctrl::ACK_OK => Ok(()),
            _ => Err(NicError::Rejected),
        }
    }
}

fn rx_buf(i: u16) -> usize {
    RX_BUFS_OFFSET + usize::from(i) * BUF_LEN
}

fn tx_buf(i: u16) -> usize {
    TX_BUFS_OFFSET + usize::from(i) * BUF_LEN
}

/// Where the frame is in a receive buffer the device says it wrote
/// `used_len` bytes into, or `None` for a runt or oversized one (or a
/// length larger than the buffer, which only a broken device reports).
pub fn rx_frame(used_len: u32, hdr_len: usize) -> Option<core::ops::Range<usize>> {
    let used = usize::try_from(used_len).ok().filter(|&u| u <= BUF_LEN)?;
    let frame_len = used.checked_sub(hdr_len)?;
    (MIN_FRAME_LEN..=MAX_FRAME_LEN)
        .contains(&frame_len)
        .then_some(hdr_len..used)
}

/// The buffers of the transmit chain beginning with `head`, as they were
/// given to `add`, and how many.
fn tx_chain<'a, H: Hal>(
    bufs: &'a DmaRegion<H>,
    len: &[u16; QUEUE_LEN],
    next: &[u16; QUEUE_LEN],
    head: u16,
) -> ([&'a [u8]; MAX_CHAIN], usize) {
    let mut parts: [&[u8]; MAX_CHAIN] = [&[]; MAX_CHAIN];
    let mut n = 0;
    let mut b = head;
    while usize::from(b) < QUEUE_LEN && n < MAX_CHAIN {
        parts[n] = bufs.slice(tx_buf(b), usize::from(len[usize::from(b)]));
        n += 1;
        b = next[usize::from(b)];
    }
    (parts, n)
}

impl<H: Hal, T: Transport> NicDatapath for VirtioNetNic<H, T> {
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.receive_frames(budget, &mut |frame| sink(frame))
    }

    fn receive_in_place(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(&mut [u8]),
    ) -> Option<usize> {
        Some(self.receive_frames(budget, sink))
    }

    fn queue_tx(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), NicError> {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            self.counters.tx_drops += 1;
            return Err(NicError::FrameLength);
        }
        let buf = self.take_tx_bufs(1).ok_or(NicError::TxFull)?[0];
        let total = self.hdr_len + len;
        let slice = self.bufs.slice_mut(tx_buf(buf), total);
        // A zeroed virtio_net_hdr: no offloads, no GSO.
        slice[..self.hdr_len].fill(0);
        fill(&mut slice[self.hdr_len..]);
        self.tx_len[usize::from(buf)] = total as u16;
        self.add_tx_chain(buf, (1, len as u32))
    }

    /// VIRTIO_NET_F_CSUM and HOST_TSO4/6 as negotiated.
    fn offloads(&self) -> Offloads {
        Offloads {
            csum: self.features & features::CSUM != 0,
            tso4: self.features & features::HOST_TSO4 != 0,
            tso6: self.features & features::HOST_TSO6 != 0,
        }
    }

    fn queue_tx_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), NicError> {
        if *req == TxOffload::NONE || !self.offloads().covers(req) {
            return offload::queue_in_software(self, frame, req);
        }
        let seg = match req.gso {
            Some(gso) => Some(Segmenter::new(frame, gso)?),
            None => {
                if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&frame.len()) {
                    self.counters.tx_drops += 1;
                    return Err(NicError::FrameLength);
                }
                None
            }
        };
        if req.csum.is_some_and(|c| !c.fits(frame.len())) {
            return Err(NicError::Offload);
        }
        let hdr = VirtioNetHdr::for_request(req, seg.as_ref().map(|s| &s.tcp)).encode();
        let hdr = &hdr[..self.hdr_len];
        let total = hdr.len() + frame.len();
        let n = total.div_ceil(BUF_LEN);
        let chain = self.take_tx_bufs(n).ok_or(NicError::TxFull)?;
        // The header and the frame as one byte stream cut into buffers.
        for (k, &b) in chain[..n].iter().enumerate() {
            let (from, to) = (k * BUF_LEN, total.min((k + 1) * BUF_LEN));
            let dst = self.bufs.slice_mut(tx_buf(b), to - from);
            let in_hdr = hdr.len().saturating_sub(from).min(to - from);
            if in_hdr > 0 {
                dst[..in_hdr].copy_from_slice(&hdr[from..from + in_hdr]);
            }
            dst[in_hdr..].copy_from_slice(&frame[from + in_hdr - hdr.len()..to - hdr.len()]);
            self.tx_len[usize::from(b)] = (to - from) as u16;
            self.tx_next[usize::from(b)] = if k + 1 < n { chain[k + 1] } else { END };
        }
        let wire = match &seg {
            Some(seg) => {
                // The device (its backend, or the host kernel behind a tap)
                // derives each segment's checksum from the pseudo-header
                // sum over the whole TCP length (Linux CHECKSUM_PARTIAL);
                // written here in the driver's copy, not trusted from the
                // caller. The headers lie in the first buffer.
                let t = seg.tcp;
                let sum = offload::fold(t.pseudo_header_sum(frame, frame.len() - t.l4));
                let at = hdr.len() + t.l4 + usize::from(offload::TCP_CSUM_OFFSET);
                let first = self.bufs.slice_mut(tx_buf(chain[0]), at + 2);
                first[at..at + 2].copy_from_slice(&sum.to_be_bytes());
                (seg.count() as u16, seg.wire_bytes() as u32)
            }
            None => (1, frame.len() as u32),
        };
        self.add_tx_chain(chain[0], wire)
    }

    fn flush_tx(&mut self) {
        if self.tx_unnotified {
            self.tx_unnotified = false;
            fence(Ordering::SeqCst);
            if self.tx.should_notify() {
                self.transport.notify(TX_QUEUE);
            }
        }
        self.reclaim_tx();
    }

    fn tx_space(&mut self) -> usize {
        self.reclaim_tx();
        if self.broken {
            return 0;
        }
        self.tx_free.len().min(self.tx.available_desc())
    }

    fn arm_interrupt(&mut self) -> bool {
        // Used-buffer notifications on the receive queue only (transmit
        // completions are reclaimed when polled); a link change raises a
        // configuration interrupt regardless. Reading the ISR clears both
        // causes and deasserts INTx (virtio 1.2, 4.1.4.5).
        if !self.rx_notify {
            self.rx.set_dev_notify(true);
            self.rx_notify = true;
        }
        // The flag must be visible before the caller's next look at the
        // used ring, or a frame could slip between the two unnoticed.
        fence(Ordering::SeqCst);
        self.transport.ack_interrupt();
        true
    }
}

impl<H: Hal, T: Transport> NicControl for VirtioNetNic<H, T> {
    fn kind(&self) -> &'static str {
        "virtio-net"
    }

    fn permanent_mac(&self) -> MacAddr {
        self.permanent
    }

    fn mac(&self) -> MacAddr {
        self.filter.mac
    }

    fn set_mac(&mut self, mac: MacAddr) -> Result<(), NicError> {
        if !mac.is_valid_unicast() {
            return Err(NicError::InvalidMac);
        }
        if self.features & features::CTRL_MAC_ADDR == 0 {
            return Err(NicError::Unsupported);
        }
        self.control(Command::SetMac(mac))?;
        self.filter.mac = mac;
        self.counters.mac_writes += 1;
        Ok(())
    }

    fn filter_slots(&self) -> usize {
        if self.features & features::CTRL_RX != 0 {
            ctrl::MAC_TABLE_ENTRIES
        } else {
            0
        }
    }

    fn filter(&self) -> &[MacAddr] {
        self.filter.entries()
    }

    fn set_filter(&mut self, macs: &[MacAddr]) -> Result<(), NicError> {
        RxFilter::check_entries(macs, self.filter_slots())?;
        if self.filter_slots() == 0 {
            // Nothing to program, and `check_entries` let only `[]` through.
            return Ok(());
        }
        self.control(Command::SetTable(macs))?;
        self.filter.set_entries(macs, self.filter_slots())?;
        self.counters.filter_writes += 1;
        Ok(())
    }

    fn promiscuous(&self) -> bool {
        self.filter.promiscuous
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<(), NicError> {
        if self.features & features::CTRL_RX == 0 {
            return if on {
                Ok(())
            } else {
                Err(NicError::Unsupported)
            };
        }
        if on != self.filter.promiscuous {
            self.control(Command::Promiscuous(on))?;
            self.filter.promiscuous = on;
            self.counters.filter_writes += 1;
        }
        Ok(())
    }

    fn all_multicast(&self) -> bool {
        self.filter.all_multicast
    }

    fn set_all_multicast(&mut self, on: bool) -> Result<(), NicError> {
        if self.features & features::CTRL_RX == 0 {
            return Err(NicError::Unsupported);
        }
        if on != self.filter.all_multicast {
            self.control(Command::AllMulticast(on))?;
            self.filter.all_multicast = on;
            self.counters.filter_writes += 1;
        }
        Ok(())
    }

    fn link_up(&mut self) -> bool {
        let up = self.read_link();
        if up != self.link {
            self.link = up;
            self.counters.link_changes += 1;
        }
        up
    }

    fn counters(&mut self) -> Counters {
        self.reclaim_tx();
        self.counters
    }

    fn reset(&mut self) -> Result<(), NicError> {
        // Reset first, so the device lets go of the old queues before they
        // are freed below (`negotiate` resets again: the new queues).
        Self::reset_device(&mut self.transport)?;
        let q = Self::negotiate(&mut self.transport)?;
        self.features = q.features;
        self.hdr_len = features::header_len(q.features);
        drop(replace(&mut self.rx, q.rx));
        drop(replace(&mut self.tx, q.tx));
        drop(replace(&mut self.ctrl, q.ctrl));
        self.start()?;
        Ok(())
    }
}

/// Puts `new` in `slot` and returns the old value, to be dropped.
fn replace<X>(slot: &mut ManuallyDrop<X>, new: X) -> X {
    ManuallyDrop::into_inner(core::mem::replace(slot, ManuallyDrop::new(new)))
}

impl<H: Hal, T: Transport> Drop for VirtioNetNic<H, T> {
    /// Resets the device and waits, bounded, for the reset to complete
    /// (virtio 1.2, 4.1.4.3.2: the driver reads `device_status` back until
    /// 0), and only then frees the queues and buffers. A device that does
    /// not reset may still write into them: they are leaked, and so is the
    /// transport, whose own drop would wait for that reset forever.
    fn drop(&mut self) {
        if Self::reset_device(&mut self.transport).is_err() {
            return;
        }
        // SAFETY: each field is dropped once, here, and never used again
        // (this is the driver's drop); the device has completed its reset,
        // so it no longer reads or writes the memory freed.
        unsafe {
            ManuallyDrop::drop(&mut self.rx);
            ManuallyDrop::drop(&mut self.tx);
            ManuallyDrop::drop(&mut self.ctrl);
            ManuallyDrop::drop(&mut self.bufs);
            ManuallyDrop::drop(&mut self.ctrl_mem);
            ManuallyDrop::drop(&mut self.transport);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_lengths_are_checked_against_header_frame_and_buffer() {
        // (used length, header) -> frame range
        let table = [
            (12 + 60, 12, Some(12..72)),
            (12 + 14, 12, Some(12..26)),
            (12 + 13, 12, None),
            (12 + 1518, 12, Some(12..1530)),
            (12 + 1519, 12, None),
            (11, 12, None),
            (0, 12, None),
            (10 + 60, 10, Some(10..70)),
            (BUF_LEN as u32 + 1, 12, None),
            (u32::MAX, 12, None),
        ];
        for (used, hdr, want) in table {
            assert_eq!(rx_frame(used, hdr), want, "used {used} header {hdr}");
        }
    }
}
