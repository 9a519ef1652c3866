//! The console's line discipline on any bytes a serial line can carry.
//!
//! Checked against a model terminal that applies the echoes: the line
//! handed to the shell is exactly what the terminal shows, printable
//! ASCII of at most `MAX_LINE` characters; `pending` always equals the
//! terminal's line; an overlong line is reported, never cut into a
//! different command.
//!
//! Input: the bytes typed.
use line_editor::{Input, LineEditor, MAX_LINE};

pub fn run(data: &[u8]) {
    let mut ed = LineEditor::new();
    // What the terminal shows of the current line, and whether the user
    // typed past the limit since the line began.
    let mut screen: Vec<u8> = Vec::new();
    let mut typed_past = false;
    // ECMA-48 escape sequences (arrow keys) are swallowed whole: ESC, then
    // one final byte, or `[`, parameters 0x20..=0x3f and a final byte
    // 0x40..=0x7e. A control byte ends one and counts as itself.
    let mut escape = Escape::None;
    for &b in data {
        let swallowed = match (escape, b) {
            (Escape::None, 0x1b) => {
                escape = Escape::Started;
                true
            }
            (Escape::Started, b'[') => {
                escape = Escape::Csi;
                true
            }
            (Escape::Started, 0x20..=0x7e) | (Escape::Csi, 0x40..=0x7e) => {
                escape = Escape::None;
                true
            }
            (Escape::Csi, 0x20..=0x3f) => true,
            (_, 0x1b) => {
                escape = Escape::Started;
                true
            }
            _ => {
                escape = Escape::None;
                false
            }
        };
        let printable = (0x20..=0x7e).contains(&b) && !swallowed;
        let before = screen.len();
        match ed.push(b) {
            Input::Nothing => {}
            _ if swallowed => panic!("byte {b:#x} of an escape sequence did something"),
            Input::EchoChar(c) => {
                assert_eq!(c, b);
                assert!(printable);
                screen.push(c);
                assert!(screen.len() <= MAX_LINE);
            }
            Input::Echo(bytes) => {
                assert_eq!(bytes, b"\x08 \x08", "only erasing is echoed");
                assert!(matches!(b, 0x08 | 0x7f));
                assert!(screen.pop().is_some(), "erased past the line start");
            }
            Input::Line(line) => {
                assert!(matches!(b, b'\r' | b'\n'));
                assert!(!typed_past, "an overlong line was handed out");
                assert_eq!(
                    line.as_bytes(),
                    &screen[..],
                    "the shell runs what is not shown"
                );
                assert!(line.len() <= MAX_LINE);
                assert!(line.bytes().all(|c| (0x20..=0x7e).contains(&c)));
                screen.clear();
            }
            Input::TooLong => {
                assert!(matches!(b, b'\r' | b'\n'));
                assert!(typed_past, "a line that fit was called too long");
                screen.clear();
                typed_past = false;
            }
            Input::Cancelled => {
                assert_eq!(b, 0x03);
                screen.clear();
                typed_past = false;
            }
        }
        if screen.len() == before && printable && before == MAX_LINE {
            typed_past = true;
        }
        if !matches!(b, b'\r' | b'\n') {
            assert_eq!(
                ed.pending().as_bytes(),
                &screen[..],
                "pending differs from the screen"
            );
        }
    }
}

#[derive(Clone, Copy)]
enum Escape {
    None,
    Started,
    Csi,
}
