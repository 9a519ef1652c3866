//! The console: where `println!` goes and where shell input comes from.
//!
//! COM1 always; under Xen also the PV console ring (`xl console -t pv`,
//! xenconsoled's log), for output and input alike. Output translates `\n`
//! into `\r\n` so terminals and scripts both see clean lines.
//!
//! Output never waits for a sink: text goes into one FIFO per sink and is
//! written out as far as the UART (or the PV ring) takes it now, the rest
//! by `flush` in later loop turns. A sink that stays full loses the newest
//! bytes, counted ([`dropped`]), instead of stalling the datapath.
use crate::serial::Uart;
use alloc::string::String;
use bytefifo::ByteFifo;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;

// SAFETY: the console is the one owner of COM1.
static UART: Mutex<Uart> = Mutex::new(unsafe { Uart::com1() });
/// COM1's backlog: large, because the test harness reads whole command
/// outputs and a slow host may leave the UART busy for a while.
static UART_OUT: Mutex<ByteFifo<{ 256 * 1024 }>> = Mutex::new(ByteFifo::new());
static PV_OUT: Mutex<ByteFifo<{ 64 * 1024 }>> = Mutex::new(ByteFifo::new());
/// While a command runs for aggctl ([`capture_output`]), its output goes
/// here instead of to the sinks.
static CAPTURED: Mutex<Option<String>> = Mutex::new(None);
/// The most output one captured command keeps (an aggctl reply holds
/// 128 KiB; the rest would be cut there anyway).
const CAPTURE_MAX: usize = 160 * 1024;

/// COM1 bytes one `flush` writes under Xen. There the UART is emulated by
/// the device model in dom0: every byte is two I/O exits (LSR, THR), each a
/// round trip through dom0's qemu-xen, ~1.5 ms on the rig. Unbudgeted, the
/// 2.5 KB of a `stats` reply held the loop for ~8 s and a guest lost 10
/// pings in a row (make soak-xen, 2026-12-07); 16 bytes hold it ~50 ms and
/// the rest follows in later turns. Under QEMU alone the exits are cheap.
const XEN_UART_BYTES_PER_FLUSH: usize = 16;

/// Under Xen, after boot, COM1 is written only while someone uses it. Each
/// COM1 register access stops aggdom's vCPU until dom0's qemu-xen answers
/// (`_VPF_blocked_in_xen` in Xen's `q` dump of soak run s6-1, 2026-12-07),
/// so a starved dom0 stalled the datapath for as long as output was
/// draining. The PV console (a shared ring: no exit, no wait) carries
/// everything; COM1 carries the boot log, fatal reports, and the shell for
/// [`COM1_INTERACTIVE_NS`] after a byte was typed there.
static COM1_QUIET: AtomicBool = AtomicBool::new(false);
/// When a byte last came in on COM1 (ns; 0: never).
static COM1_LAST_INPUT: AtomicU64 = AtomicU64::new(0);
/// How long COM1 stays a full console after a byte typed on it.
const COM1_INTERACTIVE_NS: u64 = 600_000_000_000;
/// How often a quiet COM1 is looked at for input under Xen: a keystroke
/// wakes it within a second, at one dom0 round trip per second.
const XEN_UART_QUIET_POLL_NS: u64 = 1_000_000_000;

pub fn init() {
    UART.lock().init();
}

/// Boot is over: under Xen with the PV console attached, COM1 goes quiet
/// (see [`COM1_QUIET`]) and says so there.
pub fn boot_done() {
    if xen::is_xen() && xen::console::is_attached() {
        let note = b"console: COM1 quiet from here (Xen: every COM1 byte waits for dom0); \
the PV console (xl console -t pv) has everything; type on COM1 to use it\r\n";
        UART_OUT.lock().push(note);
        COM1_QUIET.store(true, Ordering::Relaxed);
    }
}

/// Whether output goes to COM1 now.
fn com1_takes_output() -> bool {
    if !COM1_QUIET.load(Ordering::Relaxed) {
        return true;
    }
    let last = COM1_LAST_INPUT.load(Ordering::Relaxed);
    last != 0 && crate::time::now_ns().saturating_sub(last) < COM1_INTERACTIVE_NS
}

/// Queues text into both sinks' FIFOs, `\n` as `\r\n`.
struct Queuer;

impl Write for Queuer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(out) = CAPTURED.lock().as_mut() {
            let room = CAPTURE_MAX.saturating_sub(out.len());
            let mut cut = s.len().min(room);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&s[..cut]);
            return Ok(());
        }
        let pv = xen::console::is_attached();
        let com1 = com1_takes_output();
        let (mut uart, mut pv_out) = (UART_OUT.lock(), PV_OUT.lock());
        for (i, piece) in s.split('\n').enumerate() {
            if i > 0 {
                if com1 {
                    uart.push(b"\r\n");
                }
                if pv {
                    pv_out.push(b"\r\n");
                }
            }
            if com1 {
                uart.push(piece.as_bytes());
            }
            if pv {
                pv_out.push(piece.as_bytes());
            }
        }
        Ok(())
    }
}

/// Runs `f` with everything it prints kept instead of shown (a command
/// run for aggctl), and returns that text beside `f`'s result.
pub fn capture_output<R>(f: impl FnOnce() -> R) -> (R, String) {
    *CAPTURED.lock() = Some(String::new());
    let r = f();
    let text = CAPTURED.lock().take().unwrap_or_default();
    (r, text)
}

pub fn print(args: fmt::Arguments) {
    let _ = Queuer.write_fmt(args);
    flush();
}

/// Bytes as they are (the shell's echo).
pub fn write_bytes(bytes: &[u8]) {
    if com1_takes_output() {
        UART_OUT.lock().push(bytes);
    }
    if xen::console::is_attached() {
        PV_OUT.lock().push(bytes);
    }
    flush();
}

/// Writes out what each sink takes now; never waits.
pub fn flush() {
    // try_lock: a print from inside a flush (there is none) or a fault
    // handler must not deadlock; the next flush picks the bytes up.
    let mut budget = if xen::console::is_attached() {
        XEN_UART_BYTES_PER_FLUSH
    } else {
        usize::MAX
    };
    if let (Some(mut out), Some(mut uart)) = (UART_OUT.try_lock(), UART.try_lock()) {
        out.drain_into(|bytes| {
            let n = bytes
                .iter()
                .take(budget)
                .take_while(|b| uart.try_write_byte(**b))
                .count();
            budget -= n;
            n
        });
    }
    if let Some(mut out) = PV_OUT.try_lock() {
        out.drain_into(xen::console::write);
    }
}

/// Output is still queued for a sink that was busy: the idle loop should
/// come back soon to flush it.
pub fn has_pending() -> bool {
    let uart = UART_OUT.try_lock().is_some_and(|f| !f.is_empty());
    uart || PV_OUT.try_lock().is_some_and(|f| !f.is_empty())
}

/// Bytes lost because a sink stayed full: COM1's and the PV console's.
pub fn dropped() -> (u64, u64) {
    (UART_OUT.lock().dropped(), PV_OUT.lock().dropped())
}

/// Output for the fault path: takes the console even if the faulting code
/// held its locks (we are never going back to it), and waits for the
/// sinks a bounded time, as nothing else needs the CPU any more.
pub fn print_fatal(args: fmt::Arguments) {
    // SAFETY: only called on the way to exiting the machine; the holder of
    // a lock, if any, was interrupted by the fault and will not resume.
    unsafe {
        UART.force_unlock();
        UART_OUT.force_unlock();
        PV_OUT.force_unlock();
        CAPTURED.force_unlock();
        xen::console::force_unlock();
    }
    // A command run for aggctl panicked: the report goes to the consoles,
    // COM1 included.
    CAPTURED.lock().take();
    COM1_QUIET.store(false, Ordering::Relaxed);
    let _ = Queuer.write_fmt(args);
    let mut uart = UART.lock();
    UART_OUT.lock().drain_into(|bytes| {
        for &b in bytes {
            uart.write_byte(b);
        }
        bytes.len()
    });
    let mut out = PV_OUT.lock();
    for _ in 0..1000 {
        if out.is_empty() {
            break;
        }
        if out.drain_into(xen::console::write) == 0 {
            xen::evtchn::sched_yield();
        }
    }
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
        match b {
            Some(_) => COM1_LAST_INPUT.store(now.max(1), Ordering::Relaxed),
            None => {
                let every = if com1_takes_output() {
                    XEN_UART_POLL_NS
                } else {
                    XEN_UART_QUIET_POLL_NS
                };
                NEXT_UART_POLL.store(now + every, Ordering::Relaxed);
            }
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
