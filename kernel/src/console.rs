//! The console: where `println!` goes and where shell input comes from.
//!
//! COM1 always; under Xen also the PV console ring (`xl console -t pv`,
//! xenconsoled's log), for output and input alike. Output translates `\n`
//! into `\r\n` so terminals and scripts both see clean lines.
use crate::serial::Uart;
use core::fmt::{self, Write};
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

pub fn read_byte() -> Option<u8> {
    UART.lock().read_byte().or_else(xen::console::read_byte)
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
