//! xenstore messages (io/xs_wire.h): a 16-byte header (`struct
//! xsd_sockmsg`: type, req_id, tx_id, len) and a payload of at most 4096
//! bytes. Replies come from xenstored, a more trusted party than a guest,
//! but they are still parsed with checks: a bad length is an error, not a
//! panic.
use alloc::vec::Vec;
use hypervisor::{WatchEvent, XenError, XsOp};

pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: usize = 4096;

/// `enum xsd_sockmsg_type`, the types aggdom sends or receives.
pub mod ty {
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const WRITE: u32 = 11;
    pub const MKDIR: u32 = 12;
    pub const RM: u32 = 13;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
}

/// The name xs_wire.h gives a message type (`XS_READ` -> "read"), for
/// the console; "type N" for one aggdom never sends.
pub fn ty_name(t: u32) -> alloc::borrow::Cow<'static, str> {
    let name = match t {
        ty::DIRECTORY => "directory",
        ty::READ => "read",
        ty::WATCH => "watch",
        ty::UNWATCH => "unwatch",
        ty::WRITE => "write",
        ty::MKDIR => "mkdir",
        ty::RM => "rm",
        ty::WATCH_EVENT => "watch_event",
        ty::ERROR => "error",
        other => return alloc::format!("type {other}").into(),
    };
    name.into()
}

/// `struct xsd_sockmsg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.ty.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    pub fn parse(b: &[u8; HEADER_LEN]) -> Self {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            ty: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }
}

/// A whole request: header plus the payload parts, concatenated. `TooBig`
/// if the payload exceeds `XENSTORE_PAYLOAD_MAX`.
pub fn request(ty: u32, req_id: u32, tx_id: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XenError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > PAYLOAD_MAX {
        return Err(XenError::TooBig);
    }
    let mut msg = Vec::with_capacity(HEADER_LEN + len);
    msg.extend_from_slice(
        &Header {
            ty,
            req_id,
            tx_id,
            len: len as u32,
        }
        .to_bytes(),
    );
    for p in parts {
        msg.extend_from_slice(p);
    }
    Ok(msg)
}

/// The whole request message for `op`, outside any transaction (`tx_id`
/// 0). `Inval` for a bad path or token, `TooBig` for a payload over
/// `XENSTORE_PAYLOAD_MAX`.
pub fn encode(op: &XsOp<'_>, req_id: u32) -> Result<Vec<u8>, XenError> {
    let (kind, path, rest): (u32, &str, Option<&[u8]>) = match *op {
        XsOp::Read(p) => (ty::READ, p, None),
        XsOp::Write(p, v) => (ty::WRITE, p, Some(v)),
        XsOp::Mkdir(p) => (ty::MKDIR, p, None),
        XsOp::Rm(p) => (ty::RM, p, None),
        XsOp::Directory(p) => (ty::DIRECTORY, p, None),
        XsOp::Watch { path, token } | XsOp::Unwatch { path, token } => {
            let kind = if matches!(op, XsOp::Watch { .. }) {
                ty::WATCH
            } else {
                ty::UNWATCH
            };
            let p = path_part(path)?;
            let t = path_part(token)?;
            return request(kind, req_id, 0, &[&p, &t]);
        }
    };
    let p = path_part(path)?;
    // A written value goes as is, without a NUL (xenstore.txt: `WRITE
    // <path>|<value|>`).
    request(kind, req_id, 0, &[&p, rest.unwrap_or(&[])])
}

/// A path as a request payload part: its bytes and a NUL.
pub fn path_part(path: &str) -> Result<Vec<u8>, XenError> {
    if path.is_empty() || path.len() > 3072 || path.as_bytes().contains(&0) {
        return Err(XenError::Inval);
    }
    let mut v = Vec::with_capacity(path.len() + 1);
    v.extend_from_slice(path.as_bytes());
    v.push(0);
    Ok(v)
}

/// The errno an `XS_ERROR` payload names (`"ENOENT\0"`); `Io` for names
/// xs_wire.h does not list.
pub fn parse_error(payload: &[u8]) -> XenError {
    let name = payload.split(|b| *b == 0).next().unwrap_or(&[]);
    core::str::from_utf8(name)
        .ok()
        .and_then(XenError::from_xs_name)
        .unwrap_or(XenError::Io)
}

/// An `XS_WATCH_EVENT` payload: `path\0token\0`.
pub fn parse_watch_event(payload: &[u8]) -> Option<WatchEvent> {
    let mut parts = payload.split(|b| *b == 0);
    let path = core::str::from_utf8(parts.next()?).ok()?;
    let token = core::str::from_utf8(parts.next()?).ok()?;
    Some(WatchEvent {
        path: path.into(),
        token: token.into(),
    })
}

/// Whether `h` can start a message xenstored sends a client that never
/// opens transactions: a reply (the request's type or `XS_ERROR`) or a
/// watch event, with `tx_id` 0. Anything else means the stream is out of
/// step (we are reading from the middle of a message).
pub fn plausible_from_server(h: &Header) -> bool {
    let known = matches!(
        h.ty,
        ty::DIRECTORY
            | ty::READ
            | ty::WATCH
            | ty::UNWATCH
            | ty::WRITE
            | ty::MKDIR
            | ty::RM
            | ty::WATCH_EVENT
            | ty::ERROR
    );
    known && h.tx_id == 0 && h.len as usize <= PAYLOAD_MAX
}

/// Collects bytes read from the response ring into whole messages.
#[derive(Default)]
pub struct Assembler {
    buf: Vec<u8>,
}

/// A header that cannot start a message from xenstored
/// ([`plausible_from_server`]; e.g. one claiming more than
/// `XENSTORE_PAYLOAD_MAX`): the stream is corrupt or out of step, and only
/// a resynchronisation of the connection (see the client) brings it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMessage;

impl Assembler {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if one is there. The header is checked
    /// as soon as it is in, so a bad one is found without waiting for the
    /// payload it claims.
    pub fn next_message(&mut self) -> Result<Option<(Header, Vec<u8>)>, BadMessage> {
        let Some(head) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let h = Header::parse(head);
        if !plausible_from_server(&h) {
            return Err(BadMessage);
        }
        let len = h.len as usize;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some((h, payload)))
    }

    /// Bytes held that do not yet make a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_round_trip() {
        let p = path_part("device/vif").unwrap();
        let msg = request(ty::WRITE, 7, 3, &[&p, b"4"]).unwrap();
        assert_eq!(msg.len(), HEADER_LEN + 12);
        let h = Header::parse(msg.first_chunk().unwrap());
        assert_eq!(
            h,
            Header {
                ty: ty::WRITE,
                req_id: 7,
                tx_id: 3,
                len: 12
            }
        );
        assert_eq!(&msg[HEADER_LEN..], b"device/vif\x004");
    }

    #[test]
    fn oversized_payloads_and_bad_paths_are_refused() {
        let big = [b'a'; PAYLOAD_MAX + 1];
        assert_eq!(request(ty::WRITE, 1, 0, &[&big]), Err(XenError::TooBig));
        assert_eq!(path_part(""), Err(XenError::Inval));
        assert_eq!(path_part("a\0b"), Err(XenError::Inval));
    }

    #[test]
    fn reply_payloads_parse() {
        assert_eq!(parse_error(b"ENOENT\0"), XenError::NoEnt);
        assert_eq!(parse_error(b"EAGAIN\0"), XenError::Again);
        assert_eq!(parse_error(b"EWHAT\0"), XenError::Io);
        assert_eq!(parse_error(b""), XenError::Io);
        assert_eq!(
            parse_watch_event(b"/local/domain/1/backend\0tok\0"),
            Some(WatchEvent {
                path: "/local/domain/1/backend".into(),
                token: "tok".into()
            })
        );
        assert_eq!(parse_watch_event(b"only-a-path"), None);
    }

    #[test]
    fn ops_encode_as_xs_wire_says() {
        let cases: &[(XsOp<'_>, u32, &[u8])] = &[
            (XsOp::Read("domid"), ty::READ, b"domid\0"),
            (XsOp::Write("a/b", b"4"), ty::WRITE, b"a/b\x004"),
            (XsOp::Write("a", b""), ty::WRITE, b"a\0"),
            (XsOp::Mkdir("/m"), ty::MKDIR, b"/m\0"),
            (XsOp::Rm("/r"), ty::RM, b"/r\0"),
            (XsOp::Directory("/d"), ty::DIRECTORY, b"/d\0"),
            (
                XsOp::Watch {
                    path: "/w",
                    token: "t",
                },
                ty::WATCH,
                b"/w\0t\0",
            ),
            (
                XsOp::Unwatch {
                    path: "/w",
                    token: "t",
                },
                ty::UNWATCH,
                b"/w\0t\0",
            ),
        ];
        for (op, kind, payload) in cases {
            let msg = encode(op, 9).unwrap();
            let h = Header::parse(msg.first_chunk().unwrap());
            assert_eq!((h.ty, h.req_id, h.tx_id), (*kind, 9, 0), "{op:?}");
            assert_eq!(h.len as usize, payload.len(), "{op:?}");
            assert_eq!(&msg[HEADER_LEN..], *payload, "{op:?}");
        }
        let big = [b'v'; PAYLOAD_MAX];
        assert_eq!(encode(&XsOp::Write("k", &big), 1), Err(XenError::TooBig));
        assert_eq!(encode(&XsOp::Read(""), 1), Err(XenError::Inval));
        let bad_token = XsOp::Watch {
            path: "/w",
            token: "a\0",
        };
        assert_eq!(encode(&bad_token, 1), Err(XenError::Inval));
    }

    #[test]
    fn the_assembler_waits_for_whole_messages() {
        let m1 = request(ty::READ, 1, 0, &[b"abc"]).unwrap();
        let m2 = request(ty::WATCH_EVENT, 0, 0, &[b"p\0t\0"]).unwrap();
        let mut all = m1.clone();
        all.extend_from_slice(&m2);
        let mut a = Assembler::default();
        for (i, b) in all.iter().enumerate() {
            a.feed(&[*b]);
            let got = a.next_message().unwrap();
            if i + 1 == m1.len() {
                let (h, p) = got.unwrap();
                assert_eq!((h.ty, p.as_slice()), (ty::READ, &b"abc"[..]));
            } else if i + 1 == all.len() {
                assert_eq!(got.unwrap().0.ty, ty::WATCH_EVENT);
            } else {
                assert!(got.is_none());
            }
        }
        let mut bad = Header {
            ty: 2,
            req_id: 0,
            tx_id: 0,
            len: 5000,
        }
        .to_bytes()
        .to_vec();
        bad.push(0);
        a.feed(&bad);
        assert_eq!(a.next_message(), Err(BadMessage));
    }

    #[test]
    fn only_headers_xenstored_can_send_are_plausible() {
        let h = |ty, tx_id, len| Header {
            ty,
            req_id: 3,
            tx_id,
            len,
        };
        let cases = [
            (h(ty::READ, 0, 4096), true),
            (h(ty::WATCH_EVENT, 0, 10), true),
            (h(ty::ERROR, 0, 7), true),
            (h(ty::READ, 0, 4097), false),
            (h(ty::READ, 5, 1), false),
            (h(6, 0, 1), false),           // XS_TRANSACTION_START: never sent
            (h(0x6c6f_632f, 0, 1), false), // "/loc" read as a type
        ];
        for (header, want) in cases {
            assert_eq!(plausible_from_server(&header), want, "{header:?}");
        }
        let mut a = Assembler::default();
        a.feed(&h(0x6c6f_632f, 0, 1).to_bytes());
        assert_eq!(a.next_message(), Err(BadMessage));
    }
}
