//! The console: where `println!` goes and where shell input comes from.
//!
//! COM1 always; under Xen also the PV console ring (`xl console -t pv`,
//! xenconsoled's log), for output and input alike. Output translates `\n`
//! into `\r\n` so terminals and scripts both see clean lines.
use crate::serial::Uart;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

// SAFETY: the console is the one owner of COM1.
static UART: Mutex<Uart> = Mutex::new(unsafe { Uart::com1() });

pub fn init() {
    UART.lock().init();
}

struct Writer<'a>(&'a mut Uart);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(b);
        }
        if xen::console::is_attached() {
            // One ring write per line piece: each costs an event-channel kick.
            for (i, piece) in s.split('\n').enumerate() {
                if i > 0 {
                    xen::console::write(b"\r\n");
                }
                xen::console::write(piece.as_bytes());
            }
        }
        Ok(())
    }
}

pub fn print(args: fmt::Arguments) {
    let _ = Writer(&mut UART.lock()).write_fmt(args);
}

pub fn write_bytes(bytes: &[u8]) {
    let mut uart = UART.lock();
    for &b in bytes {
        uart.write_byte(b);
    }
    xen::console::write(bytes);
}

/// Output for the fault path: takes the console even if the faulting code
/// held its lock (we are never going back to it).
pub fn print_fatal(args: fmt::Arguments) {
    // SAFETY: only called on the way to exiting the machine; the holder of
    // the lock, if any, was interrupted by the fault and will not resume.
    unsafe {
        UART.force_unlock();
        xen::console::force_unlock();
    }
    print(args);
}

/// Under Xen, COM1 is emulated by qemu-xen in dom0: every register read is
/// a round trip through the device model. The main loop asks for input at
/// least every millisecond, which kept dom0 busy enough to stall it under
/// software emulation, so COM1 is looked at this often at most (typing
/// does not notice; the PV console ring is plain memory and read every time).
const XEN_UART_POLL_NS: u64 = 20_000_000;
static NEXT_UART_POLL: AtomicU64 = AtomicU64::new(0);

pub fn read_byte() -> Option<u8> {
    if xen::is_xen() {
        if let Some(b) = xen::console::read_byte() {
            return Some(b);
        }
        let now = crate::time::now_ns();
        if now < NEXT_UART_POLL.load(Ordering::Relaxed) {
            return None;
        }
        let b = UART.lock().read_byte();
        if b.is_none() {
            NEXT_UART_POLL.store(now + XEN_UART_POLL_NS, Ordering::Relaxed);
        }
        return b;
    }
    UART.lock().read_byte()
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
