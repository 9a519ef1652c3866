//! The virtio-net device: bring-up, the receive, transmit and control
//! queues, and the NIC traits.
use core::mem::ManuallyDrop;
use core::sync::atomic::{fence, Ordering};

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
use crate::slots::{FreeList, Outstanding};
use crate::VirtioNetError;
use dma_region::DmaRegion;

/// Descriptors in the receive and in the transmit queue (QEMU offers 256).
pub const QUEUE_LEN: usize = 128;
/// Descriptors in the control queue (QEMU offers 64; a command takes 4).
const CTRL_QUEUE_LEN: usize = 16;
/// Bytes per frame buffer: the 12-byte header and the largest frame fit.
pub const BUF_LEN: usize = 2048;

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
    /// Frame length in each transmit buffer the device holds.
    tx_len: [u16; QUEUE_LEN],
    tx_free: FreeList<QUEUE_LEN>,
    tx_unnotified: bool,
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
            tx_free: FreeList::full(),
            tx_unnotified: false,
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

    fn reclaim_tx(&mut self) {
        while let Some(token) = self.tx.peek_used() {
            let Some(buf) = self.tx_out.take(token) else {
                self.broken = true;
                return;
            };
            let len = self.tx_len[usize::from(buf)];
            let slice = self
                .bufs
                .slice(tx_buf(buf), self.hdr_len + usize::from(len));
            // SAFETY: `token` carried exactly this buffer (`tx_out`), added
            // as one device-readable descriptor of this length.
            if unsafe { self.tx.pop_used(token, &[slice], &mut []) }.is_err() {
                self.broken = true;
                return;
            }
            self.counters.tx_frames += 1;
            self.counters.tx_bytes += u64::from(len);
            self.tx_free.push(buf);
        }
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

impl<H: Hal, T: Transport> NicDatapath for VirtioNetNic<H, T> {
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut delivered = 0;
        let mut given_back = false;
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
                    let frame = self.bufs.slice(rx_buf(buf) + range.start, range.len());
                    sink(frame);
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += range.len() as u64;
                    delivered += 1;
                }
                None => self.counters.rx_drops += 1,
            }
            if !self.give_rx(buf) {
                self.broken = true;
                break;
            }
            given_back = true;
        }
        if given_back && self.rx.should_notify() {
            self.transport.notify(RX_QUEUE);
        }
        delivered
    }

    fn queue_tx(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), NicError> {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            self.counters.tx_drops += 1;
            return Err(NicError::FrameLength);
        }
        if self.broken {
            return Err(NicError::TxFull);
        }
        if self.tx_free.len() == 0 {
            self.reclaim_tx();
        }
        let buf = self.tx_free.pop().ok_or(NicError::TxFull)?;
        let total = self.hdr_len + len;
        let slice = self.bufs.slice_mut(tx_buf(buf), total);
        // A zeroed virtio_net_hdr: no offloads, no GSO.
        slice[..self.hdr_len].fill(0);
        fill(&mut slice[self.hdr_len..]);
        let slice = self.bufs.slice(tx_buf(buf), total);
        // SAFETY: the buffer lies in `bufs`, which outlives the queue, and is
        // not written again until the device returns this token.
        let token = match unsafe { self.tx.add(&[slice], &mut []) } {
            Ok(t) => t,
            Err(_) => {
                self.tx_free.push(buf);
                return Err(NicError::TxFull);
            }
        };
        if !self.tx_out.insert(token, buf) {
            self.broken = true;
        }
        self.tx_len[usize::from(buf)] = len as u16;
        self.tx_unnotified = true;
        Ok(())
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
        self.rx.set_dev_notify(true);
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
