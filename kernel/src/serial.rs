//! The 16550 UART at COM1: polled transmit and receive.
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
// Register offsets from the base (16550 datasheet).
const DATA: u16 = 0; // RBR/THR; DLL when DLAB=1
const IER: u16 = 1; // interrupt enable; DLM when DLAB=1
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;

pub struct Uart {
    base: u16,
}

impl Uart {
    /// # Safety
    /// Only one `Uart` for the port exists (the console owns it), and the
    /// machine has a 16550 at COM1 (QEMU and Xen HVM do; a missing one reads
    /// as 0xff and output is dropped, see `write_byte`).
    pub const unsafe fn com1() -> Self {
        Self { base: COM1 }
    }

    fn port(&self, reg: u16) -> Port<u8> {
        Port::new(self.base + reg)
    }

    /// 115200 8N1, the receive interrupt on (it only wakes `hlt`).
    pub fn init(&mut self) {
        // SAFETY: COM1 registers, owned by this `Uart` (see `com1`).
        unsafe {
            self.port(IER).write(0x00);
            self.port(LCR).write(0x80); // DLAB
            self.port(DATA).write(0x01); // divisor 1 = 115200
            self.port(IER).write(0x00);
            self.port(LCR).write(0x03); // 8N1, DLAB off
                                        // FIFOs stay off: turning them on flushes bytes already typed,
                                        // and emulated UARTs (QEMU, Xen) never overrun a 1-byte RBR.
            self.port(FCR).write(0x00);
            self.port(MCR).write(0x0b); // DTR, RTS, OUT2 (routes the IRQ)
            self.port(IER).write(0x01); // received-data interrupt
        }
    }

    /// Writes `byte` if the transmit holding register is free now; never
    /// waits. `false` if it is busy (the host side of the console is slow).
    /// A missing UART reads LSR as 0xff ("free") and swallows the byte.
    pub fn try_write_byte(&mut self, byte: u8) -> bool {
        // SAFETY: reading LSR has no side effect on transmit.
        if unsafe { self.port(LSR).read() } & LSR_THR_EMPTY == 0 {
            return false;
        }
        // SAFETY: THR write, owned port.
        unsafe { self.port(DATA).write(byte) };
        true
    }

    /// Writes `byte`, waiting a bounded time for the holding register: for
    /// the way out of the machine only (a panic's last words), where
    /// nothing else needs the CPU.
    pub fn write_byte(&mut self, byte: u8) {
        // Wait for the holding register: QEMU keeps it full while the host
        // side of the console is slow, and writing anyway loses a byte. The
        // wait is bounded (~10 ms of TSC at GHz rates) so a wedged console
        // slows the kernel down but never hangs it; a missing UART reads LSR
        // as 0xff ("empty") and costs nothing.
        // SAFETY: RDTSC has no side effects.
        let start = unsafe { core::arch::x86_64::_rdtsc() };
        // SAFETY: reading LSR has no side effect on transmit.
        while unsafe { self.port(LSR).read() } & LSR_THR_EMPTY == 0 {
            // SAFETY: as above.
            if unsafe { core::arch::x86_64::_rdtsc() }.wrapping_sub(start) > 1 << 25 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: THR write, owned port.
        unsafe { self.port(DATA).write(byte) };
    }

    pub fn read_byte(&mut self) -> Option<u8> {
        // SAFETY: LSR then RBR reads of the owned port.
        unsafe {
            let lsr = self.port(LSR).read();
            (lsr != 0xff && lsr & LSR_DATA_READY != 0).then(|| self.port(DATA).read())
        }
    }
}
