//! Register access: the trait the driver is written against, and the one
//! implementation that touches hardware.
use core::ptr::NonNull;

/// 32-bit register access at byte offsets into the register BAR.
///
/// The driver uses only this, so host tests run it against an emulated
/// register file. Reads may have side effects (statistics clear on read).
pub trait Registers {
    fn read(&self, offset: u32) -> u32;
    fn write(&mut self, offset: u32, value: u32);
}

/// The register BAR of a real device, accessed with volatile 32-bit loads
/// and stores. Offsets outside the BAR or not dword aligned read as
/// all-ones and ignore writes, as an absent device would.
#[derive(Debug)]
pub struct Mmio {
    base: NonNull<u32>,
    len: usize,
}

impl Mmio {
    /// # Safety
    /// `base` is the virtual address of the register BAR of an 8254x,
    /// `len` bytes long, mapped as device memory and used by nothing else
    /// while this value exists.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self {
            base: base.cast(),
            len,
        }
    }

    fn index(&self, offset: u32) -> Option<usize> {
        let offset = offset as usize;
        (offset.is_multiple_of(4) && offset.checked_add(4)? <= self.len).then_some(offset / 4)
    }
}

impl Registers for Mmio {
    fn read(&self, offset: u32) -> u32 {
        let Some(i) = self.index(offset) else {
            return u32::MAX;
        };
        // SAFETY: `new`'s contract makes `base..base+len` this device's
        // registers; `index` checked the dword lies inside and is aligned.
        unsafe { self.base.as_ptr().add(i).read_volatile() }
    }

    fn write(&mut self, offset: u32, value: u32) {
        let Some(i) = self.index(offset) else {
            return;
        };
        // SAFETY: as in `read`.
        unsafe { self.base.as_ptr().add(i).write_volatile(value) }
    }
}

// SAFETY: the registers belong to one device that this value owns; moving
// the owner to another CPU does not change what the accesses mean.
unsafe impl Send for Mmio {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside_the_bar() {
        let mut mem = [0u32; 4];
        let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `mem` is 16 bytes of ordinary memory standing in for a BAR
        // and outlives `regs`.
        let mut regs = unsafe { Mmio::new(base, 16) };
        regs.write(12, 7);
        regs.write(16, 9);
        regs.write(2, 9);
        assert_eq!(regs.read(12), 7);
        assert_eq!(regs.read(16), u32::MAX);
        assert_eq!(regs.read(u32::MAX - 1), u32::MAX);
        assert_eq!(mem, [0, 0, 0, 7]);
    }
}
