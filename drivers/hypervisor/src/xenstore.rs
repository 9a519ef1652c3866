//! The xenstore client interface, asynchronous: a request is queued and
//! answered later, so nothing that drives the datapath ever waits for
//! xenstored (which runs in dom0 and may be slow, descheduled or stuck).
//!
//! A caller [`XenStore::submit`]s an [`XsOp`] and gets a [`RequestId`];
//! the reply comes back through [`XenStore::take_reply`] with that id, in
//! a later poll. Watch events are queued for [`XenStore::poll_watch`].
//! Requests on one connection are answered in the order they were sent,
//! so a write submitted after another lands after it.
//!
//! There are no transactions: each request applies at once. aggdom's
//! writes are independent keys whose order (features, then `state`) is
//! kept by the ring, and its reads are level-triggered (see netback).
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XenError;

/// A fired watch (`XS_WATCH_EVENT`): the node that changed (or the watched
/// path itself, once, when the watch is set) and the watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub path: String,
    pub token: String,
}

/// Names one submitted request; its reply carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u32);

/// One xenstore request (io/xs_wire.h). Paths are absolute
/// (`/local/domain/...`) or relative to this domain's home, at most 3072
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsOp<'a> {
    /// `XS_READ`: the reply is the node's value; `NoEnt` if absent.
    Read(&'a str),
    /// `XS_WRITE`: creates the node (and missing parents) or replaces it.
    Write(&'a str, &'a [u8]),
    /// `XS_MKDIR`: creates an empty node if absent.
    Mkdir(&'a str),
    /// `XS_RM`: removes the node and everything below it.
    Rm(&'a str),
    /// `XS_DIRECTORY`: the reply is the children's names, each followed by
    /// a NUL ([`parse_directory`]).
    Directory(&'a str),
    /// `XS_WATCH`: events for `path` and everything below it are queued
    /// for [`XenStore::poll_watch`], starting with one for `path` itself.
    Watch { path: &'a str, token: &'a str },
    /// `XS_UNWATCH`.
    Unwatch { path: &'a str, token: &'a str },
}

/// What a request came back with: the reply's payload, or the error
/// xenstored named (`Io` when the connection failed or the request timed
/// out before a reply came).
pub type XsReply = Result<Vec<u8>, XenError>;

/// A xenstore connection that never blocks.
///
/// # Contract
/// - `submit` only queues: it never waits for xenstored. It fails at once
///   (and queues nothing) for a request that cannot be encoded (`Inval`,
///   `TooBig`) or when the queue of unanswered requests is full (`Busy`).
/// - Every submitted request gets exactly one reply, possibly an error;
///   `take_reply` hands it out once. A caller that does not care about a
///   reply says so with `forget`, and the reply is dropped when it comes.
/// - Events may be coalesced or arrive late: react by reading the current
///   state, never by trusting that an event means one particular change.
pub trait XenStore {
    /// Queues `op`; see the trait's contract.
    fn submit(&mut self, op: XsOp<'_>) -> Result<RequestId, XenError>;
    /// The reply to `id`, if it has come; each reply is handed out once.
    fn take_reply(&mut self, id: RequestId) -> Option<XsReply>;
    /// Drops the reply to `id` (now or when it comes).
    fn forget(&mut self, id: RequestId);
    /// The oldest queued watch event, if any.
    fn poll_watch(&mut self) -> Option<WatchEvent>;

    /// Submits `op` and forgets its reply: for writes whose failure the
    /// caller learns of anyway (the next level-triggered read shows it).
    fn send_forget(&mut self, op: XsOp<'_>) -> Result<(), XenError> {
        let id = self.submit(op)?;
        self.forget(id);
        Ok(())
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

/// An `XS_DIRECTORY` reply: names, each NUL-terminated. Names that are not
/// UTF-8 are left out.
pub fn parse_directory(payload: &[u8]) -> Vec<String> {
    payload
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| core::str::from_utf8(n).ok().map(String::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_directory, parse_u32};

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

    #[test]
    fn directory_names() {
        assert_eq!(parse_directory(b"0\x001\x00vif\x00"), ["0", "1", "vif"]);
        assert_eq!(parse_directory(b""), Vec::<String>::new());
        assert_eq!(parse_directory(b"a\x00\xff\x00b"), ["a", "b"]);
    }
}
