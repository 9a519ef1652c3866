//! xenstore framing and parsing: the byte stream from xenstored cut into
//! messages by the client's assembler, fed in arbitrary pieces and checked
//! against a one-pass reference; the reply payload parsers; request
//! encoding round-tripped through the assembler; and the byte ring under
//! indices the other end may set to anything.
//!
//! Input: a mode byte (assembler / encoding / ring), then that mode's
//! stream.

use hypervisor::{parse_directory, parse_u32, SharedPage, XenError, XsOp, PAGE_SIZE};
use xen::ring::{ByteRing, Corrupt};
use xen::xs_wire::{
    self, encode, parse_error, parse_watch_event, plausible_from_server, Assembler, BadMessage,
    Header, HEADER_LEN, PAYLOAD_MAX,
};

use crate::bytes::Bytes;
use crate::page::RingPage;

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    match input.u8() % 3 {
        0 => assemble(&mut input),
        1 => encode_requests(&mut input),
        _ => ring(&mut input),
    }
}

/// What the assembler must produce from `stream`: the whole messages in
/// order, then either a bad header or an incomplete tail.
fn reference(stream: &[u8]) -> (Vec<(Header, Vec<u8>)>, bool) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = stream.get(at..at + HEADER_LEN) {
        let h = Header::parse(head.try_into().unwrap());
        if !plausible_from_server(&h) {
            return (out, true);
        }
        let end = at + HEADER_LEN + h.len as usize;
        let Some(payload) = stream.get(at + HEADER_LEN..end) else {
            break;
        };
        out.push((h, payload.to_vec()));
        at = end;
    }
    (out, false)
}

/// Input: (piece length byte, piece)* fed to the assembler; the stream is
/// the pieces concatenated.
fn assemble(input: &mut Bytes) {
    let mut asm = Assembler::default();
    let mut stream = Vec::new();
    let mut got = Vec::new();
    let mut bad = false;
    while !input.is_empty() && !bad {
        let piece = input.short();
        asm.feed(piece);
        stream.extend_from_slice(piece);
        loop {
            match asm.next_message() {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(BadMessage) => {
                    bad = true;
                    break;
                }
            }
        }
    }
    let (want, want_bad) = reference(&stream);
    assert_eq!(got, want, "messages differ from the reference framing");
    assert_eq!(bad, want_bad, "bad header seen by one side only");
    let consumed: usize = got.iter().map(|(_, p)| HEADER_LEN + p.len()).sum();
    assert_eq!(
        asm.buffered(),
        stream.len() - consumed,
        "bytes lost or made up"
    );
    for (h, payload) in &got {
        assert!(h.len as usize <= PAYLOAD_MAX && payload.len() == h.len as usize);
        payloads(payload);
    }
}

/// Every parser a reply payload meets.
fn payloads(payload: &[u8]) {
    let e = parse_error(payload);
    let name = payload.split(|b| *b == 0).next().unwrap_or(&[]);
    let named = core::str::from_utf8(name)
        .ok()
        .and_then(XenError::from_xs_name);
    assert_eq!(e, named.unwrap_or(XenError::Io));
    if let Some(ev) = parse_watch_event(payload) {
        let mut again = ev.path.as_bytes().to_vec();
        again.push(0);
        again.extend_from_slice(ev.token.as_bytes());
        assert!(
            payload.starts_with(&again),
            "watch event not from its payload"
        );
        assert!(!ev.path.contains('\0') && !ev.token.contains('\0'));
    }
    for name in parse_directory(payload) {
        assert!(!name.is_empty() && !name.contains('\0'));
    }
    if let Some(v) = parse_u32(payload) {
        let digits = payload.strip_suffix(b"\0").unwrap_or(payload);
        assert_eq!(
            digits.iter().filter(|b| b.is_ascii_digit()).count(),
            digits.len()
        );
        assert_eq!(core::str::from_utf8(digits).unwrap().parse::<u32>(), Ok(v));
    }
}

/// A path or token: a length (two bytes, up to ~3.3 KB, so the limits at
/// 3072 and 4096 are reached) and that many bytes, as UTF-8 lossily.
fn text(input: &mut Bytes) -> String {
    let n = usize::from(input.u16() % 3300);
    String::from_utf8_lossy(input.take(n)).into_owned()
}

/// The request of `kind` (0..7: read, write, mkdir, rm, directory, watch,
/// unwatch) on `path`, with `other` as the written value or watch token;
/// both targets pick requests this way.
pub(crate) fn op<'a>(kind: u8, path: &'a str, other: &'a str) -> XsOp<'a> {
    match kind {
        0 => XsOp::Read(path),
        1 => XsOp::Write(path, other.as_bytes()),
        2 => XsOp::Mkdir(path),
        3 => XsOp::Rm(path),
        4 => XsOp::Directory(path),
        5 => XsOp::Watch { path, token: other },
        _ => XsOp::Unwatch { path, token: other },
    }
}

/// Input: (kind, request id, path, token or value)* encoded, each message
/// checked field by field and then read back through the assembler.
fn encode_requests(input: &mut Bytes) {
    while !input.is_empty() {
        let kind = input.u8() % 7;
        let id = input.u32();
        let path = text(input);
        let other = text(input);
        let op = op(kind, &path, &other);
        let bad = |s: &str| s.is_empty() || s.len() > 3072 || s.contains('\0');
        let watch = kind >= 5;
        // Write carries the value after the path's NUL; watches a NUL-ended
        // token; the others the path alone.
        let mut payload = path.as_bytes().to_vec();
        payload.push(0);
        if kind == 1 || watch {
            payload.extend_from_slice(other.as_bytes());
        }
        if watch {
            payload.push(0);
        }
        let want = if bad(&path) || (watch && bad(&other)) {
            Err(XenError::Inval)
        } else if payload.len() > PAYLOAD_MAX {
            Err(XenError::TooBig)
        } else {
            Ok(())
        };
        let msg = encode(&op, id);
        assert_eq!(
            msg.as_ref().map(|_| ()),
            want.as_ref().map(|_| ()),
            "{op:?}"
        );
        let Ok(msg) = msg else { continue };
        let h = Header::parse(msg.first_chunk().unwrap());
        let ty = [
            xs_wire::ty::READ,
            xs_wire::ty::WRITE,
            xs_wire::ty::MKDIR,
            xs_wire::ty::RM,
            xs_wire::ty::DIRECTORY,
            xs_wire::ty::WATCH,
            xs_wire::ty::UNWATCH,
        ][usize::from(kind)];
        assert_eq!((h.ty, h.req_id, h.tx_id), (ty, id, 0));
        assert_eq!(&msg[HEADER_LEN..], &payload[..]);
        assert_eq!(h.len as usize, payload.len());
        let mut asm = Assembler::default();
        asm.feed(&msg);
        assert_eq!(asm.next_message(), Ok(Some((h, payload.to_vec()))));
        assert_eq!(asm.buffered(), 0);
    }
}

/// Input: a size exponent, then operations on one ring whose indices the
/// other end also writes: produce, consume, or set either index to any
/// value. Each call is checked against the page as it was before it.
fn ring(input: &mut Bytes) {
    const CONS: usize = 2048;
    const PROD: usize = 2052;
    let ring = ByteRing {
        buf: 0,
        size: 1 << (input.u8() % 11),
        cons: CONS,
        prod: PROD,
    };
    let page = RingPage::new();
    let start = input.u32();
    page.store_u32(CONS, start);
    page.store_u32(PROD, start);
    let mut serial = 0u8;
    while !input.is_empty() {
        let (cons, prod) = (page.load_u32(CONS), page.load_u32(PROD));
        let used = prod.wrapping_sub(cons);
        let sane = used <= ring.size;
        let mask = ring.size - 1;
        assert_eq!(
            ring.available(&page),
            if sane { Ok(used) } else { Err(Corrupt) }
        );
        match input.u8() % 4 {
            0 => {
                let n = usize::from(input.u16() % 2100);
                let data: Vec<u8> = (0..n)
                    .map(|_| {
                        serial = serial.wrapping_add(1);
                        serial
                    })
                    .collect();
                let got = ring.produce(&page, &data);
                if !sane {
                    assert_eq!(got, Err(Corrupt));
                    assert_eq!((page.load_u32(CONS), page.load_u32(PROD)), (cons, prod));
                    continue;
                }
                let n = got.unwrap();
                assert_eq!(n, data.len().min((ring.size - used) as usize));
                let mut mem = vec![0u8; ring.size as usize];
                page.read(0, &mut mem);
                for (i, b) in data[..n].iter().enumerate() {
                    assert_eq!(mem[(prod.wrapping_add(i as u32) & mask) as usize], *b);
                }
                assert_eq!(page.load_u32(PROD), prod.wrapping_add(n as u32));
                assert_eq!(page.load_u32(CONS), cons);
            }
            1 => {
                let mut out = vec![0u8; usize::from(input.u16() % 2100)];
                let mut mem = vec![0u8; ring.size as usize];
                page.read(0, &mut mem);
                let got = ring.consume(&page, &mut out);
                if !sane {
                    assert_eq!(got, Err(Corrupt));
                    assert_eq!((page.load_u32(CONS), page.load_u32(PROD)), (cons, prod));
                    continue;
                }
                let n = got.unwrap();
                assert_eq!(n, out.len().min(used as usize));
                for (i, b) in out[..n].iter().enumerate() {
                    assert_eq!(mem[(cons.wrapping_add(i as u32) & mask) as usize], *b);
                }
                assert_eq!(page.load_u32(CONS), cons.wrapping_add(n as u32));
                assert_eq!(page.load_u32(PROD), prod);
            }
            2 => page.store_u32(CONS, input.u32()),
            _ => page.store_u32(PROD, input.u32()),
        }
    }
    // The ring never writes outside its buffer and its two indices.
    // (Compared with zeros as slices: one memcmp, not a loop of 4 K
    // instrumented comparisons.)
    const ZEROS: [u8; PAGE_SIZE] = [0; PAGE_SIZE];
    let mem = page.0.borrow();
    let below = &mem[ring.size as usize..CONS];
    assert!(
        below == &ZEROS[..below.len()],
        "ring wrote below its indices"
    );
    let above = &mem[PROD + 4..];
    assert!(
        above == &ZEROS[..above.len()],
        "ring wrote past its indices"
    );
}
