//! The protocol's names and limits, and the pure halves both sides use.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The longest command line, as at the console.
pub const MAX_LINE: usize = 256;
/// The most bytes in one reply piece. xenstored refuses a node of an
/// unprivileged domain at 2048 bytes and more, counting its permissions
/// and children too (`quota_max_entry_size`; ENOSPC): 2048-byte pieces
/// failed on the rig (run k2-1), so half that.
pub const CHUNK: usize = 1024;
/// The most pieces in one reply: 128 KiB of output.
pub const MAX_CHUNKS: usize = 128;
/// Replies aggdom keeps for their clients; older ones are removed.
pub const KEEP_REPLIES: usize = 16;
/// The last piece of a reply that was cut ends with this.
pub const TRUNCATED: &str = "\n(output truncated)\n";

/// aggdom's control directory.
pub fn ctl_dir(domid: u32) -> String {
    format!("/local/domain/{domid}/data/aggctl")
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
}

/// The `status` node's value.
pub fn status_value(outcome: Outcome, pieces: usize) -> String {
    match outcome {
        Outcome::Ok => format!("ok {pieces}"),
        Outcome::Error => format!("error {pieces}"),
    }
}

/// Reads a `status` node: the outcome and how many pieces to read.
pub fn parse_status(value: &[u8]) -> Option<(Outcome, usize)> {
    let text = core::str::from_utf8(value).ok()?.trim_end_matches('\0');
    let (word, n) = text.split_once(' ')?;
    let n: usize = n.parse().ok().filter(|n| *n <= MAX_CHUNKS)?;
    match word {
        "ok" => Some((Outcome::Ok, n)),
        "error" => Some((Outcome::Error, n)),
        _ => None,
    }
}

/// A request's command line is acceptable: UTF-8 (checked by the
/// caller's `&str`), at most [`MAX_LINE`] bytes, no control characters.
pub fn valid_line(line: &str) -> bool {
    line.len() <= MAX_LINE && !line.chars().any(char::is_control)
}

/// Cuts `text` into reply pieces: at most [`CHUNK`] bytes each, on
/// character boundaries, at most [`MAX_CHUNKS`] of them (the last then
/// ends with [`TRUNCATED`]). Empty output is one empty piece.
pub fn chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        if rest.len() <= CHUNK {
            out.push(String::from(rest));
            return out;
        }
        let last = out.len() + 1 == MAX_CHUNKS;
        let mut cut = if last { CHUNK - TRUNCATED.len() } else { CHUNK };
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if last {
            out.push(format!("{}{TRUNCATED}", &rest[..cut]));
            return out;
        }
        out.push(String::from(&rest[..cut]));
        rest = &rest[cut..];
    }
}

/// The client's side of [`chunks`]: the pieces joined back.
pub fn join(pieces: &[Vec<u8>]) -> String {
    let mut bytes = Vec::new();
    for p in pieces {
        bytes.extend_from_slice(p);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_rejects_junk() {
        for (o, n) in [(Outcome::Ok, 0), (Outcome::Ok, 3), (Outcome::Error, 1)] {
            assert_eq!(parse_status(status_value(o, n).as_bytes()), Some((o, n)));
        }
        let too_many = format!("ok {}", MAX_CHUNKS + 1);
        for junk in [
            &b""[..],
            b"ok",
            b"ok x",
            b"fine 1",
            too_many.as_bytes(),
            b"\xff 1",
            b"ok -1",
        ] {
            assert_eq!(parse_status(junk), None, "{junk:?}");
        }
        assert_eq!(parse_status(b"ok 2\0"), Some((Outcome::Ok, 2)));
    }

    #[test]
    fn pieces_are_bounded_cut_on_characters_and_join_back() {
        assert_eq!(chunks(""), [""]);
        assert_eq!(chunks("abc"), ["abc"]);
        let exact = "x".repeat(CHUNK);
        assert_eq!(chunks(&exact).len(), 1);
        let text: String = (0..5000)
            .map(|i| if i % 7 == 0 { 'é' } else { 'a' })
            .collect();
        let pieces = chunks(&text);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK));
        assert_eq!(pieces.concat(), text);
        let bytes: Vec<Vec<u8>> = pieces.iter().map(|p| p.as_bytes().to_vec()).collect();
        assert_eq!(join(&bytes), text);
    }

    #[test]
    fn output_beyond_the_last_piece_is_cut_and_says_so() {
        let text = "y".repeat(CHUNK * MAX_CHUNKS + 10);
        let pieces = chunks(&text);
        assert_eq!(pieces.len(), MAX_CHUNKS);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK));
        assert!(pieces[MAX_CHUNKS - 1].ends_with(TRUNCATED));
        // Exactly the most that fits is not cut.
        let fits = "z".repeat(CHUNK * MAX_CHUNKS);
        assert_eq!(chunks(&fits).concat(), fits);
    }

    #[test]
    fn lines_are_checked() {
        assert!(valid_line("stats --json"));
        assert!(!valid_line("stats\n"));
        assert!(!valid_line(&"a".repeat(MAX_LINE + 1)));
        assert_eq!(ctl_dir(3), "/local/domain/3/data/aggctl");
    }
}
