//! The xenstore client interface: requests of io/xs_wire.h, watches whose
//! events the caller polls, transactions and their retry.
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XenError;

/// A xenstore transaction id; [`Transaction::NONE`] (`XBT_NIL`, 0) is "no
/// transaction": the request applies at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transaction(pub u32);

impl Transaction {
    pub const NONE: Self = Self(0);
}

/// A fired watch (`XS_WATCH_EVENT`): the node that changed (or the watched
/// path itself, once, when the watch is set) and the watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub path: String,
    pub token: String,
}

/// A xenstore connection. Paths are absolute (`/local/domain/...`) or
/// relative to this domain's home (`/local/domain/<self>`), at most 3072
/// bytes. Values are bytes; xenstore values written by the toolstack and
/// frontends are text.
pub trait XenStore {
    /// `XS_READ`. `NoEnt` if the node does not exist.
    fn read(&mut self, t: Transaction, path: &str) -> Result<Vec<u8>, XenError>;
    /// `XS_WRITE`: creates the node (and missing parents) or replaces its value.
    fn write(&mut self, t: Transaction, path: &str, value: &[u8]) -> Result<(), XenError>;
    /// `XS_MKDIR`: creates an empty node if absent.
    fn mkdir(&mut self, t: Transaction, path: &str) -> Result<(), XenError>;
    /// `XS_RM`: removes the node and everything below it.
    fn rm(&mut self, t: Transaction, path: &str) -> Result<(), XenError>;
    /// `XS_DIRECTORY`: the names (not paths) of the node's children.
    fn directory(&mut self, t: Transaction, path: &str) -> Result<Vec<String>, XenError>;
    /// `XS_WATCH`: events for `path` and everything below it are queued for
    /// [`XenStore::poll_watch`], starting with one for `path` itself.
    fn watch(&mut self, path: &str, token: &str) -> Result<(), XenError>;
    /// `XS_UNWATCH`.
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError>;
    /// The oldest queued watch event, if any. Events may be coalesced or
    /// arrive late: react by reading the current state, never by trusting
    /// that an event means one particular change.
    fn poll_watch(&mut self) -> Option<WatchEvent>;
    /// `XS_TRANSACTION_START`.
    fn transaction_start(&mut self) -> Result<Transaction, XenError>;
    /// `XS_TRANSACTION_END`: commits (`commit`) or aborts. `Again` when the
    /// transaction conflicted with another writer and nothing was applied.
    fn transaction_end(&mut self, t: Transaction, commit: bool) -> Result<(), XenError>;

    /// Reads a node as UTF-8 text (`Inval` if it is not).
    fn read_string(&mut self, t: Transaction, path: &str) -> Result<String, XenError> {
        String::from_utf8(self.read(t, path)?).map_err(|_| XenError::Inval)
    }

    /// Reads a node holding an unsigned decimal number, as frontends write
    /// ring refs, ports and flags. `Inval` for anything else (empty, sign,
    /// junk, overflow).
    fn read_u32(&mut self, t: Transaction, path: &str) -> Result<u32, XenError> {
        parse_u32(&self.read(t, path)?).ok_or(XenError::Inval)
    }

    /// Writes text.
    fn write_str(&mut self, t: Transaction, path: &str, value: &str) -> Result<(), XenError> {
        self.write(t, path, value.as_bytes())
    }
}

/// Parses an unsigned decimal `u32` with nothing around it. A trailing NUL,
/// which some C frontends include, is accepted.
pub fn parse_u32(bytes: &[u8]) -> Option<u32> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() || bytes.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in bytes {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        v = v.checked_mul(10)?.checked_add(u32::from(d))?;
    }
    Some(v)
}

/// Runs `body` in a transaction and commits it, starting over (up to
/// `attempts` times in all) when the commit reports `Again`. An error from
/// `body` aborts the transaction and is returned.
pub fn transact<X, T, F>(xs: &mut X, attempts: u32, mut body: F) -> Result<T, XenError>
where
    X: XenStore + ?Sized,
    F: FnMut(&mut X, Transaction) -> Result<T, XenError>,
{
    let mut last = XenError::Again;
    for _ in 0..attempts {
        let t = xs.transaction_start()?;
        let value = match body(xs, t) {
            Ok(v) => v,
            Err(e) => {
                let _ = xs.transaction_end(t, false);
                return Err(e);
            }
        };
        match xs.transaction_end(t, true) {
            Ok(()) => return Ok(value),
            Err(XenError::Again) => last = XenError::Again,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::parse_u32;

    #[test]
    fn parse_u32_table() {
        let cases: &[(&[u8], Option<u32>)] = &[
            (b"0", Some(0)),
            (b"8", Some(8)),
            (b"4294967295", Some(u32::MAX)),
            (b"4294967296", None),
            (b"12\0", Some(12)),
            (b"", None),
            (b"-1", None),
            (b" 1", None),
            (b"1 ", None),
            (b"0x10", None),
            (b"99999999999", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_u32(input), *want, "{input:?}");
        }
    }
}
