//! An emulated virtio-net device behind a `Transport`: split virtqueues
//! read and written in the driver's memory (physical == virtual through the
//! test `Hal`), control commands handled as QEMU handles them, and QEMU's
//! receive filter.
use std::cell::RefCell;
use std::rc::Rc;

use nic::MacAddr;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::PhysAddr;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::ctrl;
use crate::features;
use crate::hdr::VirtioNetHdr;

/// DMA from the host heap, page aligned, physical == virtual.
pub use dma_region::HeapHal as TestHal;

thread_local! {
    /// The device [`WatchedHal`] checks frees against, and (frees, frees
    /// while it could still use the memory).
    static WATCHED: RefCell<Option<FakeVirtioNet>> = const { RefCell::new(None) };
    static FREES: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// [`TestHal`] that counts DMA frees, and those made while the device
/// named by [`WatchedHal::watch`] has not finished a reset (it may still
/// write there: a use after free in a real machine).
pub struct WatchedHal;

impl WatchedHal {
    pub fn watch(dev: &FakeVirtioNet) {
        WATCHED.with(|w| *w.borrow_mut() = Some(dev.clone()));
        FREES.with(|f| f.set((0, 0)));
    }

    /// (frees, frees while the device was live) since `watch`.
    pub fn frees() -> (usize, usize) {
        FREES.with(|f| f.get())
    }
}

// SAFETY: forwards to `TestHal`; the counting touches no DMA memory.
unsafe impl virtio_drivers::Hal for WatchedHal {
    fn dma_alloc(
        pages: usize,
        direction: virtio_drivers::BufferDirection,
    ) -> (PhysAddr, core::ptr::NonNull<u8>) {
        TestHal::dma_alloc(pages, direction)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: core::ptr::NonNull<u8>, pages: usize) -> i32 {
        let live = WATCHED.with(|w| {
            w.borrow().as_ref().is_some_and(|dev| {
                let d = dev.0.borrow();
                d.reset_pending > 0 || d.reset_sticks || !d.status.is_empty()
            })
        });
        FREES.with(|f| {
            let (n, l) = f.get();
            f.set((n + 1, l + usize::from(live)));
        });
        // SAFETY: forwarded: the caller returns what `dma_alloc` gave.
        unsafe { TestHal::dma_dealloc(paddr, vaddr, pages) }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> core::ptr::NonNull<u8> {
        // SAFETY: forwarded.
        unsafe { TestHal::mmio_phys_to_virt(paddr, size) }
    }

    unsafe fn share(
        buffer: core::ptr::NonNull<[u8]>,
        direction: virtio_drivers::BufferDirection,
    ) -> PhysAddr {
        // SAFETY: forwarded.
        unsafe { TestHal::share(buffer, direction) }
    }

    unsafe fn unshare(
        paddr: PhysAddr,
        buffer: core::ptr::NonNull<[u8]>,
        direction: virtio_drivers::BufferDirection,
    ) {
        // SAFETY: forwarded.
        unsafe { TestHal::unshare(paddr, buffer, direction) }
    }
}

pub const FACTORY: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

/// What QEMU's virtio-net-pci offers that matters here, plus two it offers
/// that the driver must decline.
pub const OFFERED: u64 = features::MAC
    | features::STATUS
    | features::CTRL_VQ
    | features::CTRL_RX
    | features::CTRL_MAC_ADDR
    | features::MRG_RXBUF
    | features::VERSION_1
    | (1 << 29); // EVENT_IDX

/// The buffers of a descriptor chain: (address, length, device-writable).
type Chain = Vec<(u64, u32, bool)>;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

#[derive(Clone, Copy, Default)]
struct Queue {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    enabled: bool,
    last_avail: u16,
}

pub struct Device {
    pub offered: u64,
    pub accepted: u64,
    pub status: DeviceStatus,
    /// FEATURES_OK never sticks (a device refusing the features).
    pub refuse_features: bool,
    /// Status never reads back as reset.
    pub reset_sticks: bool,
    /// Status reads a reset takes to complete (0: at once); until then the
    /// device still runs and may use the driver's queues and buffers.
    pub reset_reads: u32,
    reset_pending: u32,
    pub max_queue: [u32; 3],
    queues: [Queue; 3],
    pub link: bool,
    /// The MAC a reset restores (QEMU: the `mac=` property).
    pub factory: MacAddr,
    pub mac: MacAddr,
    pub promisc: bool,
    pub allmulti: bool,
    pub table: Vec<MacAddr>,
    /// Every control command: header and data.
    pub ctrl_log: Vec<(u8, u8, Vec<u8>)>,
    /// The ack the device writes; `None` never answers.
    pub ctrl_ack: Option<u8>,
    /// The transmitter holds frames until `kick`.
    pub tx_stalled: bool,
    pub sent: Vec<Vec<u8>>,
    /// The `virtio_net_hdr` of each frame in `sent`.
    pub sent_hdrs: Vec<VirtioNetHdr>,
    /// Frames that found no receive buffer.
    pub missed: usize,
    pub notifies: [usize; 3],
    /// Reads of the ISR status (each acknowledges the interrupt).
    pub isr_reads: usize,
}

/// The emulated device; clones share it, so a test keeps one handle while
/// the driver owns another.
#[derive(Clone)]
pub struct FakeVirtioNet(pub Rc<RefCell<Device>>);

/// Raw memory access in the driver's queues and buffers.
///
/// # Safety
/// `addr` is inside a live test-`Hal` allocation the driver handed to the
/// device (physical == virtual) and the driver is not accessing it now.
unsafe fn rd<T: Copy>(addr: u64) -> T {
    // SAFETY: the caller's contract.
    unsafe { (addr as *const T).read_unaligned() }
}

/// # Safety
/// As for [`rd`].
unsafe fn wr<T: Copy>(addr: u64, v: T) {
    // SAFETY: the caller's contract.
    unsafe { (addr as *mut T).write_unaligned(v) }
}

impl FakeVirtioNet {
    pub fn new() -> Self {
        Self(Rc::new(RefCell::new(Device {
            offered: OFFERED,
            accepted: 0,
            status: DeviceStatus::empty(),
            refuse_features: false,
            reset_sticks: false,
            reset_reads: 0,
            reset_pending: 0,
            max_queue: [256, 256, 64],
            queues: [Queue::default(); 3],
            link: true,
            factory: FACTORY,
            mac: FACTORY,
            promisc: true,
            allmulti: false,
            table: Vec::new(),
            ctrl_log: Vec::new(),
            ctrl_ack: Some(ctrl::ACK_OK),
            tx_stalled: false,
            sent: Vec::new(),
            sent_hdrs: Vec::new(),
            missed: 0,
            notifies: [0; 3],
            isr_reads: 0,
        })))
    }

    pub fn with(&self, f: impl FnOnce(&mut Device)) -> &Self {
        f(&mut self.0.borrow_mut());
        self
    }

    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.0.borrow_mut().sent)
    }

    /// The next available chain of queue `q`: its head and buffers.
    fn pop_avail(&self, q: usize) -> Option<(u16, Chain)> {
        let mut d = self.0.borrow_mut();
        let queue = &mut d.queues[q];
        if !queue.enabled {
            return None;
        }
        // SAFETY: the avail ring and descriptor table are the driver's queue
        // memory, given to the device by `queue_set`.
        unsafe {
            let avail_idx: u16 = rd(queue.avail + 2);
            if avail_idx == queue.last_avail {
                return None;
            }
            let slot = u64::from(queue.last_avail % queue.size);
            let head: u16 = rd(queue.avail + 4 + 2 * slot);
            queue.last_avail = queue.last_avail.wrapping_add(1);
            let mut chain = Vec::new();
            let mut i = head;
            loop {
                let desc = queue.desc + 16 * u64::from(i);
                let addr: u64 = rd(desc);
                let len: u32 = rd(desc + 8);
                let flags: u16 = rd(desc + 12);
                chain.push((addr, len, flags & DESC_F_WRITE != 0));
                if flags & DESC_F_NEXT == 0 {
                    break;
                }
                i = rd(desc + 14);
            }
            Some((head, chain))
        }
    }

    fn push_used(&self, q: usize, id: u16, len: u32) {
        let d = self.0.borrow();
        let queue = &d.queues[q];
        // SAFETY: the used ring is the driver's queue memory for the device.
        unsafe {
            let idx: u16 = rd(queue.used + 2);
            let slot = u64::from(idx % queue.size);
            wr(queue.used + 4 + 8 * slot, u32::from(id));
            wr(queue.used + 8 + 8 * slot, len);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            wr(queue.used + 2, idx.wrapping_add(1));
        }
    }

    /// Whether the driver wants used-buffer notifications on queue `q`: the
    /// avail ring's flags without VIRTQ_AVAIL_F_NO_INTERRUPT (virtio 1.2,
    /// 2.7.7; no EVENT_IDX here).
    pub fn wants_interrupts(&self, q: usize) -> bool {
        let d = self.0.borrow();
        // SAFETY: the avail ring is the driver's queue memory for the device.
        let flags: u16 = unsafe { rd(d.queues[q].avail) };
        flags & 1 == 0
    }

    /// Writes `id`/`len` into the used ring without any chain behind it: a
    /// device breaking the protocol.
    pub fn push_bogus_used(&self, q: usize, id: u16, len: u32) {
        self.push_used(q, id, len);
    }

    /// QEMU's receive_filter (hw/net/virtio-net.c), without VLANs.
    fn accepts(&self, dst: MacAddr) -> bool {
        let d = self.0.borrow();
        if d.promisc || dst.is_broadcast() {
            return true;
        }
        if dst.is_multicast() {
            return d.allmulti;
        }
        dst == d.mac || d.table.contains(&dst)
    }

    /// A frame from the wire: filtered, then written after a zeroed
    /// 12-byte header into the next receive buffer. Returns whether it was
    /// accepted into a buffer.
    pub fn deliver(&self, frame: &[u8]) -> bool {
        if !self.0.borrow().link || !self.accepts(MacAddr::destination_of(frame).unwrap()) {
            return false;
        }
        let mut bytes = vec![0u8; 12];
        bytes.extend_from_slice(frame);
        self.deliver_raw(&bytes, bytes.len() as u32)
    }

    /// Writes `bytes` into the next receive buffer and reports `used_len`.
    pub fn deliver_raw(&self, bytes: &[u8], used_len: u32) -> bool {
        let Some((head, chain)) = self.pop_avail(0) else {
            self.0.borrow_mut().missed += 1;
            return false;
        };
        let (addr, len, writable) = chain[0];
        assert!(
            writable && chain.len() == 1,
            "one writable buffer per frame"
        );
        assert!(bytes.len() <= len as usize);
        // SAFETY: the buffer is the driver's, handed over in this chain.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
        self.push_used(0, head, used_len);
        true
    }

    /// Sends every frame the driver has made available: the chain's
    /// buffers joined, the header split off (and kept), as QEMU's
    /// virtio_net_flush_tx hands header and frame to its backend.
    pub fn kick(&self) {
        while let Some((head, chain)) = self.pop_avail(1) {
            let mut bytes = Vec::new();
            for &(addr, len, writable) in &chain {
                assert!(!writable);
                // SAFETY: as in `deliver_raw`.
                let part = unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) };
                bytes.extend_from_slice(part);
            }
            let hdr = VirtioNetHdr::decode(bytes[..12].try_into().unwrap());
            let offloads = features::CSUM | features::HOST_TSO4 | features::HOST_TSO6;
            if self.0.borrow().accepted & offloads == 0 {
                assert_eq!(hdr, VirtioNetHdr::PLAIN, "zeroed virtio_net_hdr");
                assert_eq!(chain.len(), 1, "header and frame in one buffer");
            }
            let mut d = self.0.borrow_mut();
            d.sent.push(bytes[12..].to_vec());
            d.sent_hdrs.push(hdr);
            drop(d);
            self.push_used(1, head, 0);
        }
    }

    fn handle_ctrl(&self) {
        while let Some((head, chain)) = self.pop_avail(2) {
            let ack = self.0.borrow().ctrl_ack;
            let Some(ack) = ack else {
                return; // never answers
            };
            let (readable, writable): (Vec<_>, Vec<_>) = chain.iter().partition(|(_, _, w)| !w);
            // SAFETY: as in `deliver_raw`.
            let read = |(addr, len, _): &(u64, u32, bool)| unsafe {
                std::slice::from_raw_parts(*addr as *const u8, *len as usize).to_vec()
            };
            let hdr = read(readable[0]);
            assert_eq!(hdr.len(), 2, "header in a descriptor of its own");
            let data: Vec<u8> = readable[1..].iter().flat_map(|p| read(p)).collect();
            {
                let mut d = self.0.borrow_mut();
                d.ctrl_log.push((hdr[0], hdr[1], data.clone()));
                if ack == ctrl::ACK_OK {
                    match (hdr[0], hdr[1]) {
                        (ctrl::CLASS_RX, ctrl::RX_PROMISC) => d.promisc = data[0] != 0,
                        (ctrl::CLASS_RX, ctrl::RX_ALLMULTI) => d.allmulti = data[0] != 0,
                        (ctrl::CLASS_MAC, ctrl::MAC_ADDR_SET) => {
                            d.mac = MacAddr::from_bytes(&data).unwrap()
                        }
                        (ctrl::CLASS_MAC, ctrl::MAC_TABLE_SET) => {
                            let n = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
                            d.table = data[4..4 + 6 * n]
                                .chunks(6)
                                .map(|c| MacAddr::from_bytes(c).unwrap())
                                .collect();
                        }
                        _ => panic!("unknown control command {hdr:?}"),
                    }
                }
            }
            let (ack_addr, ack_len, _) = *writable[0];
            assert_eq!(ack_len, 1);
            // SAFETY: as in `deliver_raw`.
            unsafe { wr(ack_addr, ack) };
            self.push_used(2, head, 1);
        }
    }

    fn device_reset(&self) {
        let mut d = self.0.borrow_mut();
        d.queues = [Queue::default(); 3];
        d.mac = d.factory;
        d.promisc = true;
        d.allmulti = false;
        d.table.clear();
        d.accepted = 0;
    }
}

impl Transport for FakeVirtioNet {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }

    fn read_device_features(&mut self) -> u64 {
        self.0.borrow().offered
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.borrow_mut().accepted = driver_features;
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.0.borrow().max_queue[usize::from(queue)]
    }

    fn notify(&mut self, queue: u16) {
        self.0.borrow_mut().notifies[usize::from(queue)] += 1;
        match queue {
            1 if !self.0.borrow().tx_stalled => self.kick(),
            2 => self.handle_ctrl(),
            _ => {}
        }
    }

    fn get_status(&self) -> DeviceStatus {
        if self.0.borrow().reset_sticks {
            return DeviceStatus::DRIVER;
        }
        let done = {
            let mut d = self.0.borrow_mut();
            if d.reset_pending == 0 {
                return d.status;
            }
            d.reset_pending -= 1;
            d.reset_pending == 0
        };
        if done {
            self.device_reset();
            self.0.borrow_mut().status = DeviceStatus::empty();
        }
        self.0.borrow().status
    }

    fn set_status(&mut self, status: DeviceStatus) {
        if status.is_empty() {
            let delay = self.0.borrow().reset_reads;
            if delay > 0 {
                // The reset completes over the next status reads.
                self.0.borrow_mut().reset_pending = delay;
                return;
            }
            self.device_reset();
        }
        let mut d = self.0.borrow_mut();
        d.status = if d.refuse_features {
            status - DeviceStatus::FEATURES_OK
        } else {
            status
        };
    }

    fn set_guest_page_size(&mut self, _: u32) {}

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        desc: PhysAddr,
        avail: PhysAddr,
        used: PhysAddr,
    ) {
        self.0.borrow_mut().queues[usize::from(queue)] = Queue {
            size: size as u16,
            desc,
            avail,
            used,
            enabled: true,
            last_avail: 0,
        };
    }

    fn queue_unset(&mut self, queue: u16) {
        self.0.borrow_mut().queues[usize::from(queue)] = Queue::default();
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.borrow().queues[usize::from(queue)].enabled
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.0.borrow_mut().isr_reads += 1;
        InterruptStatus::empty()
    }

    fn read_config_generation(&self) -> u32 {
        0
    }

    fn read_config_space<T: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<T> {
        let d = self.0.borrow();
        let mut config = [0u8; 12];
        config[..6].copy_from_slice(&d.mac.0);
        config[6..8].copy_from_slice(&u16::from(d.link).to_le_bytes());
        let bytes = config
            .get(offset..offset + size_of::<T>())
            .ok_or(virtio_drivers::Error::ConfigSpaceTooSmall)?;
        T::read_from_bytes(bytes).map_err(|_| virtio_drivers::Error::IoError)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        _: usize,
        _: T,
    ) -> virtio_drivers::Result<()> {
        Ok(())
    }
}
