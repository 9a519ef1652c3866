//! The console's line discipline, byte by byte: printable ASCII is echoed and
//! collected; CR, LF or CR LF end a line; backspace/DEL erase; Ctrl-C drops
//! the line. Everything else (other control bytes, non-ASCII, non-UTF-8) is
//! ignored, and a line longer than the buffer is reported, not truncated into
//! a different command.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// Longest command line accepted.
pub const MAX_LINE: usize = 256;

/// What one input byte amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Nothing to do (ignored byte, or the LF of a CR LF pair).
    Nothing,
    /// Write these bytes back to the terminal.
    Echo(&'static [u8]),
    /// Echo this one printable character.
    EchoChar(u8),
    /// A complete line (without its terminator).
    Line(&'a str),
    /// A complete line that did not fit in `MAX_LINE`; it was discarded.
    TooLong,
    /// Ctrl-C: the partial line was discarded.
    Cancelled,
}

pub struct LineEditor {
    buf: [u8; MAX_LINE],
    len: usize,
    overflowed: bool,
    /// The previous byte was CR, so an LF right after it ends nothing.
    after_cr: bool,
    /// The buffer holds a line already handed out; clear before reuse.
    handed_out: bool,
    /// Inside a terminal escape sequence (arrow keys etc.), swallowed whole.
    escape: Escape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Started,
    /// After ESC [: parameters until a final byte 0x40..=0x7e (ECMA-48 5.4).
    Csi,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_LINE],
            len: 0,
            overflowed: false,
            after_cr: false,
            handed_out: false,
            escape: Escape::None,
        }
    }

    /// The partial line typed so far.
    pub fn pending(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    pub fn push(&mut self, byte: u8) -> Input<'_> {
        if self.handed_out {
            self.handed_out = false;
            self.len = 0;
        }
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match (self.escape, byte) {
            (Escape::Started, b'[') => {
                self.escape = Escape::Csi;
                return Input::Nothing;
            }
            (Escape::Started, 0x20..=0x7e) | (Escape::Csi, 0x40..=0x7e) => {
                self.escape = Escape::None;
                return Input::Nothing;
            }
            (Escape::Csi, 0x20..=0x3f) => return Input::Nothing,
            // Control bytes (CR, Ctrl-C, ...) end a sequence and count as themselves.
            _ => self.escape = Escape::None,
        }
        match byte {
            0x1b => {
                self.escape = Escape::Started;
                Input::Nothing
            }
            b'\n' if after_cr => Input::Nothing,
            b'\r' | b'\n' => self.finish_line(),
            0x08 | 0x7f => {
                if self.overflowed || self.len == 0 {
                    Input::Nothing
                } else {
                    self.len -= 1;
                    Input::Echo(b"\x08 \x08")
                }
            }
            0x03 => {
                self.len = 0;
                self.overflowed = false;
                Input::Cancelled
            }
            0x20..=0x7e => {
                if self.len == MAX_LINE {
                    self.overflowed = true;
                    Input::Nothing
                } else if self.overflowed {
                    Input::Nothing
                } else {
                    self.buf[self.len] = byte;
                    self.len += 1;
                    Input::EchoChar(byte)
                }
            }
            _ => Input::Nothing,
        }
    }

    fn finish_line(&mut self) -> Input<'_> {
        self.handed_out = true;
        if core::mem::take(&mut self.overflowed) {
            return Input::TooLong;
        }
        Input::Line(core::str::from_utf8(&self.buf[..self.len]).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds bytes, returning the completed lines (`None` for too long).
    fn lines(input: &[u8]) -> Vec<Option<String>> {
        let mut ed = LineEditor::new();
        let mut out = Vec::new();
        for &b in input {
            match ed.push(b) {
                Input::Line(l) => out.push(Some(l.to_string())),
                Input::TooLong => out.push(None),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn cr_lf_and_crlf_each_end_one_line() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            lines(b"a\rb\nc\r\nd\n\re\r\r"),
            [s("a"), s("b"), s("c"), s("d"), s(""), s("e"), s("")]
        );
    }

    #[test]
    fn backspace_and_del_erase_and_stop_at_empty() {
        assert_eq!(lines(b"hep\x08lp\r"), [Some("help".into())]);
        assert_eq!(lines(b"\x7f\x7fab\x7f\x7f\x7fx\n"), [Some("x".into())]);
    }

    #[test]
    fn control_and_non_ascii_bytes_are_ignored() {
        assert_eq!(
            lines(b"ve\x01r\xffs\xc3\xa9ion\x1b\r"),
            [Some("version".into())]
        );
    }

    #[test]
    fn arrow_keys_and_other_escape_sequences_are_swallowed() {
        assert_eq!(lines(b"ni\x1b[Acs\x1b[1;5D\x1bO\r"), [Some("nics".into())]);
    }

    #[test]
    fn ctrl_c_discards_the_partial_line() {
        assert_eq!(lines(b"shutd\x03nics\r"), [Some("nics".into())]);
    }

    #[test]
    fn an_overlong_line_is_reported_and_the_next_line_works() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\rversion\r");
        assert_eq!(lines(&input), [None, Some("version".into())]);
        let mut exact = vec![b'y'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(lines(&exact), [Some("y".repeat(MAX_LINE))]);
    }

    proptest! {
        #[test]
        fn any_bytes_give_printable_lines_of_bounded_length(input in proptest::collection::vec(any::<u8>(), 0..2000)) {
            for line in lines(&input).into_iter().flatten() {
                prop_assert!(line.len() <= MAX_LINE);
                prop_assert!(line.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            }
        }
    }
}
