//! The serial console: a background reader collects every byte QEMU's COM1
//! sends, and the test waits for patterns in it, expect-style, from a cursor
//! that advances past each match.
//!
//! COM1 is QEMU's stdio chardev on a pair of pipes. Not a Unix socket: the
//! kernel writes one byte per THR write, a Unix stream socket accounts each
//! 1-byte write as a whole skb, so a few hundred unread bytes fill it; QEMU's
//! UART then holds THRE clear and a kernel that stops waiting for THRE loses
//! bytes. A pipe merges small writes (64 KiB) and QEMU's stdout write blocks
//! rather than drops.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What to wait for on the console: a plain substring (from `&str`) or a
/// regular expression ([`Pattern::regex`], regex-lite syntax).
#[derive(Clone, Debug)]
pub enum Pattern {
    /// Matches where this text occurs.
    Substring(String),
    /// Matches where this expression matches (leftmost-first).
    Regex(regex_lite::Regex),
}

impl Pattern {
    /// A regular expression pattern.
    ///
    /// # Panics
    /// On an invalid expression: patterns are written by tests.
    pub fn regex(re: &str) -> Pattern {
        match regex_lite::Regex::new(re) {
            Ok(r) => Pattern::Regex(r),
            Err(e) => panic!("bad pattern {re:?}: {e}"),
        }
    }

    /// Byte range of the first match in `hay`.
    pub fn find(&self, hay: &str) -> Option<(usize, usize)> {
        match self {
            Pattern::Substring(s) => hay.find(s.as_str()).map(|at| (at, at + s.len())),
            Pattern::Regex(r) => r.find(hay).map(|m| (m.start(), m.end())),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Substring(s) => write!(f, "{s:?}"),
            Pattern::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Self {
        Pattern::Substring(s.to_string())
    }
}

impl From<String> for Pattern {
    fn from(s: String) -> Self {
        Pattern::Substring(s)
    }
}

impl From<&String> for Pattern {
    fn from(s: &String) -> Self {
        Pattern::Substring(s.clone())
    }
}

impl From<regex_lite::Regex> for Pattern {
    fn from(r: regex_lite::Regex) -> Self {
        Pattern::Regex(r)
    }
}

impl From<&Pattern> for Pattern {
    fn from(p: &Pattern) -> Self {
        p.clone()
    }
}

/// Everything received so far.
#[derive(Default)]
struct Buffer {
    /// The bytes as received.
    raw: Vec<u8>,
    /// The bytes decoded as UTF-8 (invalid sequences become U+FFFD).
    text: String,
    /// The start of a UTF-8 sequence split across two reads.
    pending: Vec<u8>,
    /// The reader saw EOF or an error: no more bytes will come.
    closed: bool,
}

impl Buffer {
    fn push(&mut self, chunk: &[u8]) {
        self.raw.extend_from_slice(chunk);
        self.pending.extend_from_slice(chunk);
        decode_utf8(&mut self.pending, &mut self.text);
    }

    fn close(&mut self) {
        if !self.pending.is_empty() {
            self.text.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
        self.closed = true;
    }
}

/// Moves the complete UTF-8 prefix of `pending` into `out` (invalid
/// sequences as U+FFFD), leaving an incomplete trailing sequence in
/// `pending` for the next read to finish.
fn decode_utf8(pending: &mut Vec<u8>, out: &mut String) {
    let mut start = 0;
    loop {
        match std::str::from_utf8(&pending[start..]) {
            Ok(s) => {
                out.push_str(s);
                pending.clear();
                return;
            }
            Err(e) => {
                let valid = start + e.valid_up_to();
                // from_utf8 just validated this range.
                out.push_str(std::str::from_utf8(&pending[start..valid]).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        start = valid + n;
                    }
                    None => {
                        pending.drain(..valid);
                        return;
                    }
                }
            }
        }
    }
}

type Shared = Arc<(Mutex<Buffer>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Buffer> {
    // A panic in the reader thread cannot leave the buffer inconsistent.
    shared.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// The outcome of one wait.
pub(crate) enum Wait {
    /// The text from the cursor up to the end of the match.
    Found(String),
    /// The timeout passed.
    TimedOut,
    /// The console closed (QEMU exited) without a match.
    Closed,
}

/// One serial console connection.
pub(crate) struct Serial {
    shared: Shared,
    /// Non-blocking, so a kernel that stops reading cannot hang a test.
    writer: File,
    /// Byte offset into the decoded text up to which output is consumed.
    cursor: usize,
    /// Ends by itself at EOF, when QEMU exits; never joined, so dropping a
    /// `Serial` cannot hang.
    _reader: JoinHandle<()>,
}

impl Serial {
    /// Starts the reader thread on `output` (QEMU's COM1 output) and writes
    /// input to `input`; with `echo`, every byte is also copied to the test's
    /// stderr (set `AGGDOM_SERIAL=1` to watch a boot).
    pub(crate) fn start(output: File, input: File, echo: bool) -> io::Result<Serial> {
        crate::sys::set_nonblocking(&input)?;
        let shared: Shared = Arc::new((Mutex::new(Buffer::default()), Condvar::new()));
        let mut rx = output;
        let sh = shared.clone();
        let reader = thread::Builder::new()
            .name("aggdom-serial".into())
            .spawn(move || {
                let mut chunk = [0u8; 4096];
                loop {
                    match rx.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            if echo {
                                let _ = io::stderr().write_all(&chunk[..n]);
                            }
                            lock(&sh).push(&chunk[..n]);
                            sh.1.notify_all();
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                lock(&sh).close();
                sh.1.notify_all();
            })?;
        Ok(Serial {
            shared,
            writer: input,
            cursor: 0,
            _reader: reader,
        })
    }

    /// Waits until `pat` matches the unconsumed output; consumes through
    /// the end of the match.
    pub(crate) fn wait_for(&mut self, pat: &Pattern, timeout: Duration) -> Wait {
        let deadline = Instant::now() + timeout;
        let mut buf = lock(&self.shared);
        loop {
            let hay = buf.text.get(self.cursor..).unwrap_or("");
            if let Some((_, end)) = pat.find(hay) {
                let found = hay[..end].to_string();
                self.cursor += end;
                return Wait::Found(found);
            }
            if buf.closed {
                return Wait::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wait::TimedOut;
            }
            buf = self
                .shared
                .1
                .wait_timeout(buf, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until at least one byte has arrived or the console closed;
    /// returns whether anything arrived.
    pub(crate) fn wait_any_output(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = lock(&self.shared);
        while buf.raw.is_empty() && !buf.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            buf = self
                .shared
                .1
                .wait_timeout(buf, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        !buf.raw.is_empty()
    }

    /// Writes bytes to the console (flow-controlled by QEMU's UART).
    pub(crate) fn write(&mut self, bytes: &[u8], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.writer.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The pipe is full: the kernel is not reading its UART.
                    if Instant::now() >= deadline {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Everything received, decoded.
    pub(crate) fn transcript(&self) -> String {
        lock(&self.shared).text.clone()
    }

    /// Everything received, as bytes.
    pub(crate) fn raw(&self) -> Vec<u8> {
        lock(&self.shared).raw.clone()
    }

    /// Output after the cursor, without consuming it.
    pub(crate) fn unread(&self) -> String {
        lock(&self.shared)
            .text
            .get(self.cursor..)
            .unwrap_or("")
            .to_string()
    }

    /// Consumes everything received so far.
    pub(crate) fn skip_all(&mut self) {
        self.cursor = lock(&self.shared).text.len();
    }

    /// Has the console closed?
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.shared).closed
    }

    /// Waits up to `timeout` for the console to close (QEMU flushed and
    /// exited), so a transcript read after it is complete.
    pub(crate) fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut buf = lock(&self.shared);
        while !buf.closed {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            buf = self
                .shared
                .1
                .wait_timeout(buf, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The last `n` lines of `text`, for failure messages.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let from = lines.len().saturating_sub(n);
    let mut out: String = lines[from..].concat();
    // Keep a pathological line (a 10 KB echo) from flooding the report.
    if out.len() > 8192 {
        let cut = out.len() - 8192;
        let cut = (cut..out.len())
            .find(|&i| out.is_char_boundary(i))
            .unwrap_or(out.len());
        out = format!("[...]{}", &out[cut..]);
    }
    out
}

/// Splits console output into lines at CR LF, LF or CR.
pub(crate) fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                lines.push(&text[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            b'\n' => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// What a line looks like on a terminal: BS (0x08) moves the cursor left,
/// other characters overwrite at the cursor; trailing blanks dropped. This is
/// how `abc\x08 \x08` (a shell echoing a backspace) reads as `ab`.
fn render_echo(line: &str) -> String {
    let mut cells: Vec<char> = Vec::new();
    let mut pos = 0usize;
    for c in line.chars() {
        match c {
            '\u{8}' => pos = pos.saturating_sub(1),
            c => {
                if pos < cells.len() {
                    cells[pos] = c;
                } else {
                    cells.push(c);
                }
                pos += 1;
            }
        }
    }
    cells.into_iter().collect::<String>().trim_end().to_string()
}

/// What a line editor makes of typed input: BS (0x08) and DEL (0x7f) delete
/// the character before them.
fn render_typed(input: &str) -> String {
    let mut out = String::new();
    for c in input.chars() {
        match c {
            '\u{8}' | '\u{7f}' => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// The reply to `command` in `raw`, the console output from just after the
/// command was sent through the next `prompt`: the prompt is cut off, the
/// echoed command line removed (if the shell echoed it), line endings made
/// `\n`, and leading/trailing blank lines dropped.
pub fn parse_reply(raw: &str, command: &str, prompt: &str) -> String {
    let body = raw.strip_suffix(prompt).unwrap_or(raw);
    let mut lines = split_lines(body);
    let typed = render_typed(command);
    if let Some(first) = lines.first() {
        if render_echo(first) == typed {
            lines.remove(0);
        }
    }
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    const P: &str = "aggdom> ";

    #[test]
    fn reply_tables() {
        // (raw console output after sending the command, command, reply)
        let cases: &[(&str, &str, &str)] = &[
            (
                "version\r\naggdom 0.1.0\r\naggdom> ",
                "version",
                "aggdom 0.1.0",
            ),
            ("version\naggdom 0.1.0\naggdom> ", "version", "aggdom 0.1.0"),
            ("version\raggdom 0.1.0\raggdom> ", "version", "aggdom 0.1.0"),
            // A shell that does not echo.
            ("aggdom 0.1.0\r\naggdom> ", "version", "aggdom 0.1.0"),
            // Multi-line reply, blank lines inside kept.
            (
                "nics\r\nidx pci\r\n0 00:03.0\r\n\r\n1 00:04.0\r\naggdom> ",
                "nics",
                "idx pci\n0 00:03.0\n\n1 00:04.0",
            ),
            // Empty reply.
            ("\r\naggdom> ", "", ""),
            ("shutdown\r\naggdom> ", "shutdown", ""),
            // Backspace typed and echoed as BS SP BS.
            (
                "versiox\x08 \x08n\r\naggdom 0.1.0\r\naggdom> ",
                "versiox\x08n",
                "aggdom 0.1.0",
            ),
            // DEL typed, echoed as a bare BS.
            (
                "versiox\x08n\r\naggdom 0.1.0\r\naggdom> ",
                "versiox\x7fn",
                "aggdom 0.1.0",
            ),
            // An error reply is not mistaken for the echo.
            (
                "bogus\r\nerror: unknown command 'bogus'\r\naggdom> ",
                "bogus",
                "error: unknown command 'bogus'",
            ),
        ];
        for (raw, cmd, want) in cases {
            assert_eq!(parse_reply(raw, cmd, P), *want, "raw {raw:?}");
        }
    }

    #[test]
    fn line_splitting() {
        assert_eq!(split_lines("a\r\nb\nc\rd"), ["a", "b", "c", "d"]);
        assert_eq!(split_lines("a\n\rb"), ["a", "", "b"]);
        assert_eq!(split_lines("a\r\n"), ["a"]);
        assert!(split_lines("").is_empty());
    }

    #[test]
    fn utf8_split_across_reads_and_invalid_bytes() {
        let mut b = Buffer::default();
        let euro = "€".as_bytes(); // e2 82 ac
        b.push(&[b'a', euro[0]]);
        assert_eq!(b.text, "a");
        b.push(&euro[1..]);
        assert_eq!(b.text, "a€");
        b.push(&[0xff, b'b', 0xc3]);
        assert_eq!(b.text, "a€\u{fffd}b");
        b.close();
        assert_eq!(b.text, "a€\u{fffd}b\u{fffd}");
        assert_eq!(b.raw.len(), 7);
    }

    #[test]
    fn patterns() {
        let p: Pattern = "ready".into();
        assert_eq!(p.find("aggdom ready: 4 NICs"), Some((7, 12)));
        let r = Pattern::regex(r"ready: (\d+) NICs");
        assert_eq!(r.find("aggdom ready: 4 NICs, boot"), Some((7, 20)));
        assert_eq!(r.find("aggdom ready: x NICs"), None);
        assert_eq!(r.to_string(), r"/ready: (\d+) NICs/");
    }

    #[test]
    fn wait_for_consumes_through_the_match() {
        // Stand-ins for QEMU's stdout and stdin pipes.
        let (a, mut b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        let file = |s: UnixStream| File::from(std::os::fd::OwnedFd::from(s));
        let mut s = Serial::start(file(a), file(c), false).unwrap();
        b.write_all(b"boot\r\naggdom> version\r\naggdom 0.1.0\r\naggdom> ")
            .unwrap();
        let t = Duration::from_secs(5);
        assert!(
            matches!(s.wait_for(&"aggdom> ".into(), t), Wait::Found(x) if x == "boot\r\naggdom> ")
        );
        match s.wait_for(&"aggdom> ".into(), t) {
            Wait::Found(x) => assert_eq!(parse_reply(&x, "version", P), "aggdom 0.1.0"),
            _ => panic!("no second prompt"),
        }
        assert!(matches!(
            s.wait_for(&"aggdom> ".into(), Duration::from_millis(50)),
            Wait::TimedOut
        ));
        // Bytes written by the harness reach the other end.
        s.write(b"help\r", t).unwrap();
        let mut got = [0u8; 5];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"help\r");
        drop(b);
        assert!(matches!(s.wait_for(&"never".into(), t), Wait::Closed));
        assert!(s.is_closed());
        assert!(s.transcript().starts_with("boot\r\n"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a", 5), "a");
        assert!(tail(&"x".repeat(20000), 3).len() < 8300);
    }
}
