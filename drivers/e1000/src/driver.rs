//! The e1000 driver proper: bring-up, the two rings, and the NIC traits.
use core::sync::atomic::{fence, Ordering};

use nic::offload::{self, Offloads, Segmenter, TxOffload};
use nic::{
    Counters, MacAddr, NicControl, NicDatapath, NicError, RxFilter, MAX_FRAME_LEN, MIN_FRAME_LEN,
};
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::{Hal, PAGE_SIZE};

use crate::desc::{self, RxVerdict, TxContext, DESC_LEN};
use crate::mmio::{Mmio, Registers};
use crate::regs;
use crate::ring::{self, TxRing};
use crate::stats::HwStats;
use crate::E1000Error;
use dma_region::DmaRegion;

/// Receive descriptors (RDLEN must be a multiple of 128 bytes: 8 of them).
pub const RX_RING_LEN: u16 = 128;
/// Transmit descriptors.
pub const TX_RING_LEN: u16 = 128;
/// Bytes per frame buffer (RCTL.BSIZE = 2048).
pub const BUF_LEN: usize = 2048;

/// How many register reads a bounded wait (reset, EEPROM, PHY) may take.
const SPIN_LIMIT: u32 = 100_000;

const RX_RING_OFFSET: usize = 0;
const TX_RING_OFFSET: usize = RX_RING_LEN as usize * DESC_LEN;
const RINGS_PAGES: usize = (TX_RING_OFFSET + TX_RING_LEN as usize * DESC_LEN).div_ceil(PAGE_SIZE);
const RX_BUFS_OFFSET: usize = 0;
const TX_BUFS_OFFSET: usize = RX_RING_LEN as usize * BUF_LEN;
const BUFS_PAGES: usize = (TX_BUFS_OFFSET + TX_RING_LEN as usize * BUF_LEN).div_ceil(PAGE_SIZE);

/// PCI IDs of the 82540EM.
pub const VENDOR_ID: u16 = 0x8086;
pub const DEVICE_ID: u16 = 0x100e;

/// An Intel 82540EM in poll mode, generic over the DMA allocator `H` and
/// the register access `R` (real MMIO, or an emulation in tests).
pub struct E1000<H: Hal, R: Registers = Mmio> {
    regs: R,
    /// Receive ring, then transmit ring.
    rings: DmaRegion<H>,
    /// Receive buffers, then transmit buffers; buffer i belongs to
    /// descriptor i of its ring.
    bufs: DmaRegion<H>,
    rx_next: u16,
    rx_in_split: bool,
    tx: TxRing,
    /// What the device puts on the wire when descriptor i is done: frames
    /// and bytes (a TSO frame's segments count on its last descriptor;
    /// context descriptors and a frame's other buffers count nothing).
    tx_wire: [(u16, u32); TX_RING_LEN as usize],
    /// IMS holds the wake-up causes (cleared by a reset), so
    /// `arm_interrupt` need not write it again.
    irq_unmasked: bool,
    permanent: MacAddr,
    filter: RxFilter,
    autoneg: bool,
    link: bool,
    stats: HwStats,
    counters: Counters,
}

impl<H: Hal> E1000<H, Mmio> {
    /// Brings up the e1000 whose register BAR is at physical `bar0_phys`,
    /// `bar0_len` bytes long, mapped through `H::mmio_phys_to_virt`.
    ///
    /// # Safety
    /// The range is BAR0 of an 82540EM with memory decoding and bus
    /// mastering enabled, and no other code drives that device.
    pub unsafe fn new(bar0_phys: u64, bar0_len: u64) -> Result<Self, E1000Error> {
        if bar0_phys == 0 || bar0_len < regs::BAR0_SIZE {
            return Err(E1000Error::BadBar);
        }
        let len = regs::BAR0_SIZE as usize;
        // SAFETY: the caller vouches that this is the device's register BAR.
        let base = unsafe { H::mmio_phys_to_virt(bar0_phys, len) };
        // SAFETY: as above; `mmio_phys_to_virt` gives a valid mapping of it.
        let regs = unsafe { Mmio::new(base, len) };
        Self::with_registers(regs)
    }

    /// Brings up the e1000 at `function`: checks it is an 82540EM, reads
    /// BAR0, enables memory decoding and bus mastering, then as
    /// [`E1000::new`].
    pub fn from_pci<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        function: DeviceFunction,
    ) -> Result<Self, E1000Error> {
        let is_e1000 = root.enumerate_bus(function.bus).any(|(f, info)| {
            f == function && (info.vendor_id, info.device_id) == (VENDOR_ID, DEVICE_ID)
        });
        if !is_e1000 {
            return Err(E1000Error::NotE1000);
        }
        let bar = root.bar_info(function, 0).map_err(|_| E1000Error::BadBar)?;
        let (address, size) = bar
            .and_then(|b| b.memory_address_size())
            .ok_or(E1000Error::BadBar)?;
        let (_, command) = root.get_status_command(function);
        root.set_command(
            function,
            command | Command::MEMORY_SPACE | Command::BUS_MASTER,
        );
        // SAFETY: PCI says this memory BAR belongs to an 82540EM, decoding
        // and bus mastering are on, and this function is its only driver.
        unsafe { Self::new(address, size) }
    }
}

impl<H: Hal, R: Registers> E1000<H, R> {
    /// Brings up the device behind `regs`: resets it, reads its MAC (RAR0,
    /// else EEPROM), sets up both rings, and enables receive and transmit
    /// with only its MAC and broadcast accepted.
    pub fn with_registers(regs: R) -> Result<Self, E1000Error> {
        if regs.read(regs::STATUS) == u32::MAX {
            return Err(E1000Error::Absent);
        }
        let rings = DmaRegion::new(RINGS_PAGES).ok_or(E1000Error::NoMemory)?;
        let bufs = DmaRegion::new(BUFS_PAGES).ok_or(E1000Error::NoMemory)?;
        let mut nic = Self {
            regs,
            rings,
            bufs,
            rx_next: 0,
            rx_in_split: false,
            tx: TxRing::new(TX_RING_LEN),
            tx_wire: [(0, 0); TX_RING_LEN as usize],
            irq_unmasked: false,
            permanent: MacAddr::ZERO,
            filter: RxFilter::new(MacAddr::ZERO),
            autoneg: false,
            link: false,
            stats: HwStats::new(),
            counters: Counters::default(),
        };
        nic.reset_device()?;
        nic.permanent = nic.read_mac()?;
        nic.setup()?;
        let regs = &nic.regs;
        nic.stats.calibrate(|r| regs.read(r));
        nic.link = nic.regs.read(regs::STATUS) & regs::STATUS_LU != 0;
        Ok(nic)
    }

    /// Turns PHY autonegotiation on or off (off by default).
    ///
    /// QEMU restarts a 500 ms autonegotiation every time the link comes
    /// back up while it is on, so aggdom turns it off to see a returning
    /// link at once; the PHY then claims 1000 Mb/s full duplex. A real
    /// copper 82540EM needs it on to get a gigabit link.
    pub fn set_autonegotiation(&mut self, on: bool) -> Result<(), E1000Error> {
        self.autoneg = on;
        self.write_phy(regs::PHY_CTRL, regs::phy_ctrl(on))
    }

    fn spin_until(&self, mut done: impl FnMut(&R) -> bool) -> bool {
        (0..SPIN_LIMIT).any(|_| {
            let ok = done(&self.regs);
            if !ok {
                core::hint::spin_loop();
            }
            ok
        })
    }

    /// Global reset with interrupts masked (8254x SDM 14.2 ff.).
    fn reset_device(&mut self) -> Result<(), E1000Error> {
        self.regs.write(regs::IMC, u32::MAX);
        self.regs.write(regs::RCTL, 0);
        self.regs.write(regs::TCTL, 0);
        let ctrl = self.regs.read(regs::CTRL);
        self.regs.write(regs::CTRL, ctrl | regs::CTRL_RST);
        if !self.spin_until(|r| r.read(regs::CTRL) & regs::CTRL_RST == 0) {
            return Err(E1000Error::ResetTimeout);
        }
        // The reset unmasks nothing on the 8254x, but mask again in case.
        self.regs.write(regs::IMC, u32::MAX);
        self.irq_unmasked = false;
        Ok(())
    }

    /// The factory MAC: receive-address slot 0, which the device (and
    /// QEMU) loads from the EEPROM, else the EEPROM itself.
    fn read_mac(&mut self) -> Result<MacAddr, E1000Error> {
        let rar0 = regs::rar_decode(self.regs.read(regs::RAL0), self.regs.read(regs::RAH0));
        if let Some(mac) = rar0.filter(|m| m.is_valid_unicast()) {
            return Ok(mac);
        }
        let mut words = [0u16; 3];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.read_eeprom(i as u8)?;
        }
        Some(regs::mac_from_eeprom(words))
            .filter(|m| m.is_valid_unicast())
            .ok_or(E1000Error::NoMac)
    }

    fn read_eeprom(&mut self, word: u8) -> Result<u16, E1000Error> {
        self.regs.write(regs::EERD, regs::eerd_request(word));
        let mut data = None;
        if self.spin_until(|r| {
            data = regs::eerd_data(r.read(regs::EERD));
            data.is_some()
        }) {
            data.ok_or(E1000Error::EepromTimeout)
        } else {
            Err(E1000Error::EepromTimeout)
        }
    }

    fn write_phy(&mut self, reg: u32, value: u16) -> Result<(), E1000Error> {
        self.regs.write(regs::MDIC, regs::mdic_write(reg, value));
        let mut mdic = 0;
        if !self.spin_until(|r| {
            mdic = r.read(regs::MDIC);
            mdic & regs::MDIC_READY != 0
        }) || mdic & regs::MDIC_ERROR != 0
        {
            return Err(E1000Error::Phy);
        }
        Ok(())
    }

    /// Everything after the reset: link, filters, rings, receiver and
    /// transmitter (8254x SDM 14.3 to 14.5). Leaves the factory MAC, no
    /// extra filter entries, both promiscuous bits off.
    fn setup(&mut self) -> Result<(), E1000Error> {
        let ctrl = self.regs.read(regs::CTRL);
        self.regs.write(regs::CTRL, regs::ctrl_after_reset(ctrl));
        // A PHY that will not take the setting still links, only slower to
        // come back after a link loss: not worth failing bring-up for.
        let _ = self.write_phy(regs::PHY_CTRL, regs::phy_ctrl(self.autoneg));
        for reg in [regs::FCAL, regs::FCAH, regs::FCT, regs::FCTTV] {
            self.regs.write(reg, 0);
        }
        for i in 0..regs::MTA_LEN {
            self.regs.write(regs::MTA + 4 * i, 0);
        }
        self.write_rar(0, Some(self.permanent));
        for slot in 1..regs::RAR_SLOTS {
            self.write_rar(slot, None);
        }
        self.filter = RxFilter::new(self.permanent);

        self.rings.zero();
        for i in 0..RX_RING_LEN {
            let addr = self.bufs.paddr(rx_buf(i));
            self.rings.write(rx_desc(i) + desc::RX_ADDR, addr);
        }
        for i in 0..TX_RING_LEN {
            let addr = self.bufs.paddr(tx_buf(i));
            self.rings.write(tx_desc(i) + desc::TX_ADDR, addr);
        }
        self.rx_next = 0;
        self.rx_in_split = false;
        self.tx = TxRing::new(TX_RING_LEN);
        fence(Ordering::SeqCst);

        let rx_base = self.rings.paddr(RX_RING_OFFSET);
        self.regs.write(regs::RDBAL, rx_base as u32);
        self.regs.write(regs::RDBAH, (rx_base >> 32) as u32);
        self.regs
            .write(regs::RDLEN, u32::from(RX_RING_LEN) * DESC_LEN as u32);
        self.regs.write(regs::RDH, 0);
        self.regs.write(regs::RDT, u32::from(RX_RING_LEN - 1));
        self.regs.write(regs::RDTR, 0);
        self.regs.write(regs::ITR, regs::ITR_INTERVAL);

        let tx_base = self.rings.paddr(TX_RING_OFFSET);
        self.regs.write(regs::TDBAL, tx_base as u32);
        self.regs.write(regs::TDBAH, (tx_base >> 32) as u32);
        self.regs
            .write(regs::TDLEN, u32::from(TX_RING_LEN) * DESC_LEN as u32);
        self.regs.write(regs::TDH, 0);
        self.regs.write(regs::TDT, 0);
        self.regs.write(regs::TIPG, regs::TIPG_COPPER);
        self.regs.write(regs::TCTL, regs::tctl());

        self.regs.write(regs::RCTL, regs::rctl(false, false));
        Ok(())
    }

    /// Programs receive-address slot `slot`: invalidated first, so it never
    /// matches a half-written address.
    fn write_rar(&mut self, slot: usize, mac: Option<MacAddr>) {
        self.regs.write(regs::rah(slot), 0);
        if let Some(mac) = mac {
            let (ral, rah) = regs::rar_encode(mac);
            self.regs.write(regs::ral(slot), ral);
            self.regs.write(regs::rah(slot), rah);
        } else {
            self.regs.write(regs::ral(slot), 0);
        }
    }

    fn write_rctl(&mut self, promiscuous: bool, all_multicast: bool) {
        let changed =
            promiscuous != self.filter.promiscuous || all_multicast != self.filter.all_multicast;
        self.filter.promiscuous = promiscuous;
        self.filter.all_multicast = all_multicast;
        if changed {
            // Only on change: QEMU holds back reception for a second after
            // every RCTL write.
            self.regs
                .write(regs::RCTL, regs::rctl(promiscuous, all_multicast));
            self.counters.filter_writes += 1;
        }
    }

    /// Reclaims transmit descriptors the device is done with: their
    /// Descriptor Done bits, in descriptor memory, say so (every
    /// descriptor asks for it with RS); no register is read.
    fn reclaim_tx(&mut self) {
        while let Some(i) = self.tx.oldest_flushed() {
            let off = tx_desc(i);
            let status: u8 = self.rings.read(off + desc::TX_STATUS);
            if status & desc::TXD_STAT_DD == 0 {
                break;
            }
            let (frames, bytes) = self.tx_wire[usize::from(i)];
            self.counters.tx_frames += u64::from(frames);
            self.counters.tx_bytes += u64::from(bytes);
            self.tx.reclaim();
        }
    }

    /// Whether `needed` descriptors are free, reclaiming first if short.
    fn room_for(&mut self, needed: usize) -> bool {
        if usize::from(self.tx.free()) < needed {
            self.reclaim_tx();
        }
        usize::from(self.tx.free()) >= needed
    }

    /// Fills one descriptor with its second quadword `upper` (the buffer
    /// address is rewritten too: never trust it was kept) and what it puts
    /// on the wire when done.
    /// `None` (nothing written) when the ring is full.
    fn fill_tx(&mut self, upper: u64, wire: (u16, u32)) -> Option<u16> {
        let i = self.tx.fill()?;
        let off = tx_desc(i);
        let addr = self.bufs.paddr(tx_buf(i));
        self.rings.write(off + desc::TX_ADDR, addr);
        self.rings.write(off + desc::TX_LENGTH, upper);
        self.tx_wire[usize::from(i)] = wire;
        Some(i)
    }

    /// Queues a context descriptor and then `frame` in as many data
    /// descriptors as its length needs (one buffer each), the headers of
    /// a TSO frame prepared in the driver's copy.
    fn queue_offloaded(
        &mut self,
        frame: &[u8],
        ctx: TxContext,
        tso: Option<&Segmenter>,
        popts: u8,
        wire: (u16, u32),
    ) -> Result<(), NicError> {
        let buffers = frame.len().div_ceil(BUF_LEN);
        if !self.room_for(1 + buffers) {
            return Err(NicError::TxFull);
        }
        let (lo, hi) = ctx.encode();
        let c = self.fill_tx(hi, (0, 0)).ok_or(NicError::TxFull)?;
        // The context's first quadword is its offsets, not a buffer address.
        self.rings.write(tx_desc(c) + desc::TX_ADDR, lo);
        for (k, chunk) in frame.chunks(BUF_LEN).enumerate() {
            let last = k + 1 == buffers;
            let upper = desc::data_tx(chunk.len() as u16, tso.is_some(), last, popts);
            // `room_for` made sure every descriptor is free.
            let Some(i) = self.fill_tx(upper, if last { wire } else { (0, 0) }) else {
                break;
            };
            let buf = self.bufs.slice_mut(tx_buf(i), chunk.len());
            buf.copy_from_slice(chunk);
            if let (0, Some(seg)) = (k, tso) {
                desc::prepare_tso_headers(&seg.tcp, buf);
            }
        }
        Ok(())
    }

    fn fold_stats(&mut self) {
        let regs = &self.regs;
        self.stats.fold_into(&mut self.counters, |r| regs.read(r));
    }
}

fn rx_desc(i: u16) -> usize {
    RX_RING_OFFSET + usize::from(i) * DESC_LEN
}

fn tx_desc(i: u16) -> usize {
    TX_RING_OFFSET + usize::from(i) * DESC_LEN
}

fn rx_buf(i: u16) -> usize {
    RX_BUFS_OFFSET + usize::from(i) * BUF_LEN
}

fn tx_buf(i: u16) -> usize {
    TX_BUFS_OFFSET + usize::from(i) * BUF_LEN
}

impl<H: Hal, R: Registers> E1000<H, R> {
    /// Both `receive` and `receive_in_place`: frames are lent mutably
    /// from their receive buffers, which the driver owns until RDT is
    /// written after the batch (one register write per batch).
    fn receive_frames(&mut self, budget: usize, sink: &mut dyn FnMut(&mut [u8])) -> usize {
        let mut delivered = 0;
        let mut handled = false;
        // At most one lap per call, however many descriptors are drops.
        for _ in 0..RX_RING_LEN {
            if delivered >= budget {
                break;
            }
            let i = self.rx_next;
            let off = rx_desc(i);
            let status: u8 = self.rings.read(off + desc::RX_STATUS);
            if status & desc::RXD_STAT_DD == 0 {
                break;
            }
            // The length, errors and buffer were written before the status.
            fence(Ordering::Acquire);
            let errors: u8 = self.rings.read(off + desc::RX_ERRORS);
            let length: u16 = self.rings.read(off + desc::RX_LENGTH);
            let (verdict, in_split) =
                desc::classify_rx(status, errors, length, BUF_LEN, self.rx_in_split);
            self.rx_in_split = in_split;
            match verdict {
                RxVerdict::Deliver(n) => {
                    sink(self.bufs.slice_mut(rx_buf(i), n));
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += n as u64;
                    delivered += 1;
                }
                RxVerdict::NotDone | RxVerdict::Fragment => {}
                RxVerdict::DropSplit
                | RxVerdict::DropError
                | RxVerdict::DropRunt
                | RxVerdict::DropOversize => self.counters.rx_drops += 1,
            }
            // Re-arm: the buffer address again (never trust it was kept),
            // and length, status and errors cleared.
            let addr = self.bufs.paddr(rx_buf(i));
            self.rings.write(off + desc::RX_ADDR, addr);
            self.rings.write(off + desc::RX_LENGTH, 0u64);
            handled = true;
            self.rx_next = ring::next(i, RX_RING_LEN);
        }
        if handled {
            fence(Ordering::SeqCst);
            let tail = ring::rx_tail_before(self.rx_next, RX_RING_LEN);
            self.regs.write(regs::RDT, u32::from(tail));
        }
        delivered
    }
}

impl<H: Hal, R: Registers> NicDatapath for E1000<H, R> {
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

    /// Checksum insertion and IPv4 TCP segmentation through context
    /// descriptors. Not IPv6 segmentation: QEMU's model (hw/net/e1000.c
    /// xmit_seg) writes the IPv6 payload length 40 bytes too long, and the
    /// 82540EM's Linux driver never asks for it either.
    fn offloads(&self) -> Offloads {
        Offloads {
            csum: true,
            tso4: true,
            tso6: false,
        }
    }

    fn queue_tx_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), NicError> {
        if let Some(gso) = req.gso.filter(|_| self.offloads().covers(req)) {
            let seg = Segmenter::new(frame, gso)?;
            let Some(ctx) = TxContext::tso(&seg.tcp, frame.len(), gso.size) else {
                return offload::queue_in_software(self, frame, req);
            };
            let wire = (seg.count() as u16, seg.wire_bytes() as u32);
            let popts = desc::tso_popts(seg.tcp.ipv6);
            return self.queue_offloaded(frame, ctx, Some(&seg), popts, wire);
        }
        match (req.gso, req.csum) {
            (None, Some(c)) => {
                if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&frame.len()) {
                    self.counters.tx_drops += 1;
                    return Err(NicError::FrameLength);
                }
                if !c.fits(frame.len()) {
                    return Err(NicError::Offload);
                }
                match TxContext::csum(c) {
                    Some(ctx) => {
                        let wire = (1, frame.len() as u32);
                        self.queue_offloaded(frame, ctx, None, desc::TXD_POPTS_TXSM, wire)
                    }
                    None => offload::queue_in_software(self, frame, req),
                }
            }
            _ => offload::queue_in_software(self, frame, req),
        }
    }

    fn queue_tx(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), NicError> {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            self.counters.tx_drops += 1;
            return Err(NicError::FrameLength);
        }
        if self.tx.free() == 0 {
            self.reclaim_tx();
        }
        let i = self
            .fill_tx(desc::legacy_tx(len as u16), (1, len as u32))
            .ok_or(NicError::TxFull)?;
        fill(self.bufs.slice_mut(tx_buf(i), len));
        Ok(())
    }

    fn flush_tx(&mut self) {
        if let Some(tail) = self.tx.flush() {
            // Descriptors and buffers before the doorbell.
            fence(Ordering::SeqCst);
            self.regs.write(regs::TDT, u32::from(tail));
        }
        self.reclaim_tx();
    }

    fn tx_space(&mut self) -> usize {
        self.reclaim_tx();
        usize::from(self.tx.free())
    }

    fn arm_interrupt(&mut self) -> bool {
        // Unmask first (a reset masked everything; once is enough), then
        // read the causes to clear them: the line drops and rises again at
        // the next cause, no sooner than ITR allows.
        if !self.irq_unmasked {
            self.regs.write(regs::IMS, regs::IMS_WAKE);
            self.irq_unmasked = true;
        }
        self.regs.read(regs::ICR);
        true
    }
}

impl<H: Hal, R: Registers> NicControl for E1000<H, R> {
    fn kind(&self) -> &'static str {
        "e1000"
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
        self.write_rar(0, Some(mac));
        self.filter.mac = mac;
        self.counters.mac_writes += 1;
        Ok(())
    }

    fn filter_slots(&self) -> usize {
        regs::RAR_SLOTS - 1
    }

    fn filter(&self) -> &[MacAddr] {
        self.filter.entries()
    }

    fn set_filter(&mut self, macs: &[MacAddr]) -> Result<(), NicError> {
        RxFilter::check_entries(macs, self.filter_slots())?;
        for slot in 1..regs::RAR_SLOTS {
            let want = macs.get(slot - 1).copied();
            if want != self.filter.entries().get(slot - 1).copied() {
                self.write_rar(slot, want);
            }
        }
        self.filter.set_entries(macs, self.filter_slots())?;
        self.counters.filter_writes += 1;
        Ok(())
    }

    fn promiscuous(&self) -> bool {
        self.filter.promiscuous
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<(), NicError> {
        self.write_rctl(on, self.filter.all_multicast);
        Ok(())
    }

    fn all_multicast(&self) -> bool {
        self.filter.all_multicast
    }

    fn set_all_multicast(&mut self, on: bool) -> Result<(), NicError> {
        self.write_rctl(self.filter.promiscuous, on);
        Ok(())
    }

    fn link_up(&mut self) -> bool {
        let up = self.regs.read(regs::STATUS) & regs::STATUS_LU != 0;
        if up != self.link {
            self.link = up;
            self.counters.link_changes += 1;
        }
        up
    }

    fn counters(&mut self) -> Counters {
        self.reclaim_tx();
        self.fold_stats();
        self.counters
    }

    fn reset(&mut self) -> Result<(), NicError> {
        // Keep what the statistics counted before the reset clears them.
        self.fold_stats();
        self.reset_device()?;
        self.setup()?;
        Ok(())
    }
}

impl<H: Hal, R: Registers> Drop for E1000<H, R> {
    /// Stops both DMA engines before the rings and buffers are freed.
    fn drop(&mut self) {
        self.regs.write(regs::RCTL, 0);
        self.regs.write(regs::TCTL, 0);
        self.regs.write(regs::RDBAL, 0);
        self.regs.write(regs::RDBAH, 0);
        self.regs.write(regs::TDBAL, 0);
        self.regs.write(regs::TDBAH, 0);
    }
}
