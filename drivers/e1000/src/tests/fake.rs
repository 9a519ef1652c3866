//! An emulated 82540EM for host tests: a register file with the side effects
//! the driver relies on, DMA done through the addresses the test `Hal` hands
//! out (physical == virtual), and the receive filter as QEMU implements it.
use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;

use nic::MacAddr;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::desc::{self, TxContext};
use crate::regs::{self, *};
use crate::Registers;

/// DMA from the host heap, page aligned, physical == virtual.
pub use dma_region::HeapHal as TestHal;

/// A `Hal` with no memory.
pub struct NoMemHal;

// SAFETY: never hands out memory.
unsafe impl Hal for NoMemHal {
    fn dma_alloc(_: usize, _: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        (0, NonNull::dangling())
    }
    unsafe fn dma_dealloc(_: PhysAddr, _: NonNull<u8>, _: usize) -> i32 {
        0
    }
    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap()
    }
    unsafe fn share(buffer: NonNull<[u8]>, _: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as PhysAddr
    }
    unsafe fn unshare(_: PhysAddr, _: NonNull<[u8]>, _: BufferDirection) {}
}

pub struct State {
    pub regs: Vec<u32>,
    pub phy: [u16; 32],
    pub eeprom: [u16; 64],
    pub link: bool,
    /// Statistics registers clear on read (the manual) or keep counting.
    pub stats_clear_on_read: bool,
    /// CTRL.RST never clears (a wedged device).
    pub reset_sticks: bool,
    /// The transmitter ignores TDT writes (a stalled device).
    pub tx_stalled: bool,
    pub sent: Vec<Vec<u8>>,
    pub writes: Vec<(u32, u32)>,
    /// The last TSO and checksum contexts, and the frame being gathered
    /// from data descriptors with its POPTS and TSE (as QEMU's `e1000_tx`).
    pub tso_ctx: TxContext,
    pub csum_ctx: TxContext,
    pub contexts: usize,
    pub gathering: Vec<u8>,
    pub popts: u8,
    pub tse: bool,
}

/// The emulated device; clones share it, so a test keeps one handle while
/// the driver owns another.
#[derive(Clone)]
pub struct FakeE1000(pub Rc<RefCell<State>>);

pub const FACTORY: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

impl FakeE1000 {
    /// Out of reset as QEMU leaves it: RAR0 holds the factory MAC, the
    /// EEPROM too, link up.
    pub fn new() -> Self {
        let mut regs = vec![0u32; (BAR0_SIZE / 4) as usize];
        let (l, h) = rar_encode(FACTORY);
        regs[(RAL0 / 4) as usize] = l;
        regs[(RAH0 / 4) as usize] = h;
        let mut eeprom = [0u16; 64];
        eeprom[0] = 0x5452;
        eeprom[1] = 0x1200;
        eeprom[2] = 0x5634;
        Self(Rc::new(RefCell::new(State {
            regs,
            phy: [0; 32],
            eeprom,
            link: true,
            stats_clear_on_read: true,
            reset_sticks: false,
            tx_stalled: false,
            sent: Vec::new(),
            writes: Vec::new(),
            tso_ctx: TxContext::default(),
            csum_ctx: TxContext::default(),
            contexts: 0,
            gathering: Vec::new(),
            popts: 0,
            tse: false,
        })))
    }

    pub fn with(&self, f: impl FnOnce(&mut State)) -> &Self {
        f(&mut self.0.borrow_mut());
        self
    }

    pub fn reg(&self, offset: u32) -> u32 {
        self.0.borrow().regs[(offset / 4) as usize]
    }

    pub fn set_reg(&self, offset: u32, value: u32) {
        self.0.borrow_mut().regs[(offset / 4) as usize] = value;
    }

    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.0.borrow_mut().sent)
    }

    pub fn take_writes(&self) -> Vec<(u32, u32)> {
        std::mem::take(&mut self.0.borrow_mut().writes)
    }

    /// The addresses receive-address slots 0..16 accept.
    pub fn rar(&self) -> Vec<Option<MacAddr>> {
        (0..RAR_SLOTS)
            .map(|n| rar_decode(self.reg(ral(n)), self.reg(rah(n))))
            .collect()
    }

    /// QEMU's e1000x_rx_group_filter, without the multicast hash.
    fn accepts(&self, dst: MacAddr) -> bool {
        let rctl = self.reg(RCTL);
        if dst.is_broadcast() {
            if rctl & RCTL_BAM != 0 {
                return true;
            }
        } else if dst.is_multicast() {
            if rctl & RCTL_MPE != 0 {
                return true;
            }
        } else if rctl & RCTL_UPE != 0 {
            return true;
        }
        self.rar().contains(&Some(dst))
    }

    fn ring_len(&self, len_reg: u32) -> u32 {
        self.reg(len_reg) / 16
    }

    fn desc_ptr(&self, base_lo: u32, base_hi: u32, index: u32) -> *mut u8 {
        let base = u64::from(self.reg(base_lo)) | (u64::from(self.reg(base_hi)) << 32);
        (base + u64::from(index) * 16) as *mut u8
    }

    /// A frame from the wire: filtered, then written to the next receive
    /// descriptor as the device would. Returns whether it was accepted.
    pub fn deliver(&self, frame: &[u8]) -> bool {
        if self.reg(RCTL) & RCTL_EN == 0 || !self.0.borrow().link {
            return false;
        }
        if !self.accepts(MacAddr::destination_of(frame).unwrap()) {
            return false;
        }
        self.write_rx_desc(frame, frame.len() as u16, 0x03, 0)
    }

    /// Writes the next receive descriptor with any contents, bypassing the
    /// filter; counts MPC and returns false when the driver left no buffer.
    pub fn write_rx_desc(&self, data: &[u8], length: u16, status: u8, errors: u8) -> bool {
        let (rdh, rdt) = (self.reg(RDH), self.reg(RDT));
        if rdh == rdt {
            let mpc = self.reg(MPC);
            self.set_reg(MPC, mpc + 1);
            return false;
        }
        let d = self.desc_ptr(RDBAL, RDBAH, rdh);
        // SAFETY: the descriptor and its buffer are in the driver's test-Hal
        // DMA allocations (physical == virtual), and the driver gave this
        // descriptor to the device (RDH != RDT), so it does not touch it now.
        unsafe {
            let buf = (d as *const u64).read_volatile() as *mut u8;
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len().min(2048));
            (d.add(8) as *mut u16).write_volatile(length);
            d.add(13).write_volatile(errors);
            d.add(12).write_volatile(status);
        }
        self.set_reg(RDH, (rdh + 1) % self.ring_len(RDLEN));
        if status & 0x02 != 0 && errors == 0 {
            let gprc = self.reg(GPRC);
            self.set_reg(GPRC, gprc + 1);
        }
        true
    }

    /// Sends what the driver queued, as a TDT write makes QEMU do
    /// (hw/net/e1000.c start_xmit, process_tx_desc, xmit_seg): legacy
    /// descriptors, context descriptors, and data descriptors gathered up
    /// to EOP, then segmented (TSE) and checksummed (POPTS) as QEMU does.
    pub fn transmit(&self) {
        if self.reg(TCTL) & TCTL_EN == 0 || self.0.borrow().tx_stalled {
            return;
        }
        while self.reg(TDH) != self.reg(TDT) {
            let tdh = self.reg(TDH);
            let d = self.desc_ptr(TDBAL, TDBAH, tdh);
            // SAFETY: as in `write_rx_desc`: the driver handed descriptors
            // TDH..TDT to the device.
            let (lo, hi) = unsafe {
                (
                    (d as *const u64).read_volatile(),
                    (d.add(8) as *const u64).read_volatile(),
                )
            };
            let cmd = (hi >> 24) as u8;
            assert!(cmd & desc::TXD_CMD_RS != 0, "RS on every descriptor");
            let extended = cmd & desc::TXD_CMD_DEXT != 0;
            if extended && hi & desc::TXD_DTYP_DATA == 0 {
                let ctx = TxContext::decode(lo, hi);
                let mut s = self.0.borrow_mut();
                s.contexts += 1;
                if ctx.tucmd & desc::TXD_TUCMD_TSE != 0 {
                    s.tso_ctx = ctx;
                } else {
                    s.csum_ctx = ctx;
                }
            } else {
                let len = if extended {
                    (hi & 0xf_ffff) as usize
                } else {
                    assert_eq!(cmd & 0x0b, 0x0b, "EOP, IFCS and RS on every legacy frame");
                    (hi & 0xffff) as usize
                };
                // SAFETY: as above; the buffer is the driver's DMA memory.
                let data = unsafe { std::slice::from_raw_parts(lo as *const u8, len) }.to_vec();
                let mut s = self.0.borrow_mut();
                if s.gathering.is_empty() {
                    s.popts = if extended { (hi >> 40) as u8 } else { 0 };
                }
                s.tse = extended && cmd & desc::TXD_DCMD_TSE != 0;
                s.gathering.extend_from_slice(&data);
                if cmd & desc::TXD_CMD_EOP != 0 {
                    let frame = std::mem::take(&mut s.gathering);
                    let frames = if s.tse {
                        segment(&frame, &s.tso_ctx, s.popts)
                    } else {
                        vec![checksum(frame, &s.csum_ctx, s.popts)]
                    };
                    drop(s);
                    for f in frames {
                        self.0.borrow_mut().sent.push(f);
                        let gptc = self.reg(GPTC);
                        self.set_reg(GPTC, gptc + 1);
                    }
                }
            }
            // SAFETY: as above; DD in the status byte.
            unsafe { d.add(12).write_volatile(0x01) };
            self.set_reg(TDH, (tdh + 1) % self.ring_len(TDLEN));
        }
    }
}

/// QEMU's putsum: the ones' complement sum from `css` to `cse` (0: the
/// end), stored at `cso`, 0 sent as 0xffff.
fn putsum(data: &mut [u8], cso: usize, css: usize, cse: usize) {
    let n = if cse != 0 && cse < data.len() {
        cse + 1
    } else {
        data.len()
    };
    if cso + 1 < n {
        let mut sum = nic::offload::fold(nic::offload::sum(&data[css..n], 0));
        sum = !sum;
        if sum == 0 {
            sum = 0xffff;
        }
        data[cso..cso + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

fn checksum(mut frame: Vec<u8>, ctx: &TxContext, popts: u8) -> Vec<u8> {
    if popts & desc::TXD_POPTS_TXSM != 0 {
        let (so, ss, se) = (ctx.tucso.into(), ctx.tucss.into(), ctx.tucse.into());
        putsum(&mut frame, so, ss, se);
    }
    if popts & desc::TXD_POPTS_IXSM != 0 {
        let (so, ss, se) = (ctx.ipcso.into(), ctx.ipcss.into(), ctx.ipcse.into());
        putsum(&mut frame, so, ss, se);
    }
    frame
}

/// QEMU's TSO: header + MSS payload per segment, lengths, IPv4 ID and TCP
/// sequence advanced, PSH/FIN cleared but on the last, the segment's TCP
/// length added to the pseudo-header sum the driver left in the checksum
/// field, then the checksums.
fn segment(frame: &[u8], ctx: &TxContext, popts: u8) -> Vec<Vec<u8>> {
    let hdr = usize::from(ctx.hdr_len);
    let mss = usize::from(ctx.mss);
    let css = usize::from(ctx.ipcss);
    let tucss = usize::from(ctx.tucss);
    assert_eq!(ctx.paylen as usize, frame.len() - hdr, "PAYLEN");
    let be16 = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    frame[hdr..]
        .chunks(mss)
        .enumerate()
        .map(|(k, chunk)| {
            let mut seg = frame[..hdr].to_vec();
            seg.extend_from_slice(chunk);
            let size = seg.len();
            if ctx.tucmd & desc::TXD_TUCMD_IP != 0 {
                let id = be16(&seg, css + 4).wrapping_add(k as u16);
                seg[css + 2..css + 4].copy_from_slice(&((size - css) as u16).to_be_bytes());
                seg[css + 4..css + 6].copy_from_slice(&id.to_be_bytes());
            } else {
                seg[css + 4..css + 6].copy_from_slice(&((size - css) as u16).to_be_bytes());
            }
            let seq = u32::from_be_bytes(seg[tucss + 4..tucss + 8].try_into().unwrap());
            let seq = seq.wrapping_add((k * mss) as u32);
            seg[tucss + 4..tucss + 8].copy_from_slice(&seq.to_be_bytes());
            if frame.len() - hdr - k * mss > mss {
                seg[tucss + 13] &= !9;
            }
            if popts & desc::TXD_POPTS_TXSM != 0 {
                let at = usize::from(ctx.tucso);
                let phsum = u32::from(be16(&seg, at)) + (size - tucss) as u32;
                let phsum = ((phsum >> 16) + (phsum & 0xffff)) as u16;
                seg[at..at + 2].copy_from_slice(&phsum.to_be_bytes());
            }
            checksum(seg, ctx, popts)
        })
        .collect()
}

impl Registers for FakeE1000 {
    fn read(&self, offset: u32) -> u32 {
        let mut s = self.0.borrow_mut();
        let i = (offset / 4) as usize;
        match offset {
            STATUS => {
                if s.link {
                    STATUS_LU
                } else {
                    0
                }
            }
            EERD => {
                let v = s.regs[i];
                if v & EERD_START == 0 {
                    return v;
                }
                let word = ((v >> EERD_ADDR_SHIFT) & 0xff) as usize;
                (u32::from(s.eeprom[word % 64]) << EERD_DATA_SHIFT) | EERD_DONE | (v & !EERD_START)
            }
            0x4000..=0x40ff => {
                let v = s.regs[i];
                if s.stats_clear_on_read {
                    s.regs[i] = 0;
                }
                v
            }
            // Interrupt causes clear on read (8254x SDM 13.4.17).
            ICR => core::mem::take(&mut s.regs[i]),
            _ => s.regs[i],
        }
    }

    fn write(&mut self, offset: u32, value: u32) {
        let i = (offset / 4) as usize;
        {
            let mut s = self.0.borrow_mut();
            s.writes.push((offset, value));
            match offset {
                CTRL => {
                    s.regs[i] = if s.reset_sticks {
                        value
                    } else {
                        value & !CTRL_RST
                    };
                }
                MDIC => {
                    let reg = ((value >> MDIC_REG_SHIFT) & 0x1f) as usize;
                    if (value >> MDIC_PHY_SHIFT) & 0x1f != regs::PHY_ADDR {
                        s.regs[i] = value | MDIC_ERROR | MDIC_READY;
                    } else {
                        if value & MDIC_OP_WRITE != 0 {
                            s.phy[reg] = value as u16;
                        }
                        s.regs[i] = value | MDIC_READY;
                    }
                }
                RDH | RDT | TDH | TDT => s.regs[i] = value & 0xffff,
                // IMS sets mask bits and IMC clears them; IMS reads the mask.
                IMS => s.regs[i] |= value,
                IMC => s.regs[(IMS / 4) as usize] &= !value,
                _ => s.regs[i] = value,
            }
        }
        if offset == TDT {
            self.transmit();
        }
    }
}
