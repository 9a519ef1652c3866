//! Receive coalescing driven by bytes, without a ring: the coalescer
//! alone, fed wire frames as [`RxBatch::push`](crate::RxBatch::push) feeds
//! it (a frame joins the held super-frame, else the held one goes and the
//! frame starts the next, else it goes alone). The frames are two TCP
//! flows cut at a chosen MSS, edited as the input says (cut short, PSH,
//! bytes flipped with checksums fixed or not, gaps, grown, raw bytes), and
//! each push has its own bound from the buffers "posted".
//!
//! Every super-frame must cut back, with the segmenter a guest would use,
//! into exactly the segments that joined it (but for IPv4 IDs, which a cut
//! numbers up), hold no more bytes than each join allowed and no segment
//! whose checksums do not verify; a lone segment must go as it came.
//! Used by the `rx_coalesce` fuzz target (tests/fuzz) and by a property
//! test, so it runs in `cargo test` too.
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use nic::offload::{TcpFrame, MAX_SEGMENTS};

use super::{tcp_frame, Input};
use crate::checksum;
use crate::coalesce::{Coalescer, Segment};
use crate::segment::{Csum, Gso, GsoKind, Plan};
use crate::Config;

const TCP_PSH: u8 = 0x08;
/// Segments in each flow.
const FLOW_SEGMENTS: usize = 24;
/// At most this many frames a run.
const MAX_PUSHES: usize = 96;
const PAGE: usize = 4096;

/// `n` wire segments of one flow as a sender's TSO cuts them: `mss`
/// bytes each but the last (`last`), payload bytes counting up,
/// consecutive sequence numbers and IPv4 IDs (DF set), ACK on all and
/// PSH on the last, checksums complete.
pub fn tcp_segments(v6: bool, n: usize, mss: usize, last: usize) -> Vec<Vec<u8>> {
    let payload = (n - 1) * mss + last;
    let mut big = tcp_frame(v6, payload, 0);
    let hdr = big.len() - payload;
    for (i, b) in big[hdr..].iter_mut().enumerate() {
        *b = i as u8;
    }
    big[hdr - 20 + 4..hdr - 20 + 8].copy_from_slice(&1000u32.to_be_bytes());
    if !v6 {
        big[18..20].copy_from_slice(&7u16.to_be_bytes()); // IPv4 ID
        big[20] = 0x40; // DF
    }
    let kind = if v6 { GsoKind::TcpV6 } else { GsoKind::TcpV4 };
    let gso = Gso {
        kind,
        size: mss as u16,
    };
    let Ok(plan) = Plan::new(&big, gso, Config::ALL_FEATURES.max_frame_len) else {
        return Vec::new();
    };
    (0..plan.count())
        .map(|i| {
            let mut seg = vec![0u8; plan.max_len()];
            let len = plan.write(&big, i, &mut seg, true);
            seg.truncate(len);
            seg
        })
        .collect()
}

/// Makes the IPv4 header checksum of a frame with a 20-byte IPv4 header
/// after an Ethernet header right again (nothing for a shorter frame).
pub fn fix_ipv4_header(s: &mut [u8]) {
    if s.len() < 34 {
        return;
    }
    s[24..26].fill(0);
    let c = !nic::offload::fold(nic::offload::sum(&s[14..34], 0));
    s[24..26].copy_from_slice(&c.to_be_bytes());
}

/// `frame` with its IPv4 ID and header checksum zeroed: a super-frame
/// whose segments shared an ID (DF) is cut again with IDs counting up.
pub fn without_ids(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    if f.len() >= 26 && f[12..14] == [0x08, 0x00] {
        f[18..20].fill(0);
        f[24..26].fill(0);
    }
    f
}

/// The coalescer and what the checks need to know of it.
struct Run {
    gro: Coalescer,
    /// The segments held, as they came.
    held: Vec<Vec<u8>>,
    max_frame: usize,
}

impl Run {
    /// A frame from the wire, with `room` bytes of posted buffers.
    fn push(&mut self, frame: &[u8], room: usize) -> Result<(), String> {
        let seg = Segment::parse(frame, self.max_frame);
        if let Some(seg) = &seg {
            if self.gro.append(frame, seg, room) {
                self.held.push(frame.to_vec());
                let hdr = TcpFrame::parse(&self.held[0]).map_or(0, |t| t.hdr_len);
                let len = hdr + self.held.iter().map(|s| s.len() - hdr).sum::<usize>();
                if len > room {
                    return Err(format!(
                        "a {len}-byte super-frame with {room} bytes of room"
                    ));
                }
                return Ok(());
            }
        }
        self.release()?;
        if let Some(seg) = &seg {
            if self.gro.start(frame, seg) {
                self.held.push(frame.to_vec());
            }
        }
        Ok(())
    }

    /// Lets the held frame go and checks it is what was held.
    fn release(&mut self) -> Result<(), String> {
        let held = core::mem::take(&mut self.held);
        let Some((out, off)) = self.gro.take(self.max_frame) else {
            return match held.len() {
                0 => Ok(()),
                n => Err(format!("{n} segments held, nothing released")),
            };
        };
        for s in &held {
            let ok = TcpFrame::parse(s).is_some_and(|t| t.checksums_ok(s));
            if !ok {
                return Err("a segment whose checksums fail was coalesced".into());
            }
        }
        match held.as_slice() {
            [] => Err("released a frame never held".into()),
            [one] => {
                if out != one.as_slice() || off.gso.is_some() || off.csum != Csum::Validated {
                    return Err("a lone segment did not go as it came, validated".into());
                }
                Ok(())
            }
            many => {
                if many.len() > MAX_SEGMENTS {
                    return Err(format!("{} segments in one super-frame", many.len()));
                }
                let gso = off.gso.ok_or("a super-frame without GSO")?;
                let plan = Plan::new(out, gso, self.max_frame)
                    .map_err(|e| format!("a super-frame its guest would refuse: {e:?}"))?;
                if !matches!(off.csum, Csum::Partial { .. }) || plan.csum() != off.csum {
                    return Err(format!("super-frame checksum {:?}", off.csum));
                }
                let mut again = out.to_vec();
                plan.normalise(&mut again);
                if again != out {
                    return Err("a super-frame not normalised".into());
                }
                if plan.count() != many.len() {
                    return Err(format!(
                        "{} segments joined, the super-frame cuts into {}",
                        many.len(),
                        plan.count()
                    ));
                }
                for (i, want) in many.iter().enumerate() {
                    let mut seg = vec![0u8; plan.max_len()];
                    let len = plan.write(out, i, &mut seg, true);
                    seg.truncate(len);
                    if without_ids(&seg) != without_ids(want) {
                        return Err(format!(
                            "segment {i} of a super-frame is not the one joined"
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

/// One frame of the input's making: flow `fl`'s next segment edited, or
/// raw bytes.
fn frame(
    inp: &mut Input<'_>,
    flows: &[Vec<Vec<u8>>; 2],
    next: &mut [usize; 2],
    v6: bool,
) -> Vec<u8> {
    let op = inp.byte().unwrap_or(0);
    let fl = usize::from(op & 1);
    if (op >> 1) & 7 == 7 {
        let n = usize::from(inp.byte().unwrap_or(0));
        let raw: Vec<u8> = (0..n).map(|_| inp.byte().unwrap_or(0)).collect();
        return raw;
    }
    let Some(seg) = flows[fl].get(next[fl] % flows[fl].len().max(1)) else {
        return Vec::new();
    };
    let mut s = seg.clone();
    next[fl] += 1;
    let at = usize::from(inp.u16());
    let byte = inp.byte().unwrap_or(0);
    let l4 = if v6 { 54 } else { 34 };
    match (op >> 1) & 7 {
        0 => {}
        1 => {
            // Shorter: cut the payload, lengths and checksums made right.
            s.truncate((l4 + 20 + 1).max(at % (s.len() + 1)));
            let _ = fix_lengths(&mut s, v6);
        }
        2 => {
            s[l4 + 13] |= TCP_PSH;
            let _ = checksum::complete(&mut s);
        }
        3 => next[fl] += 1, // a gap
        4 => {
            // A byte flipped anywhere; checksums fixed or not.
            let i = at % s.len();
            s[i] ^= byte | 1;
            if op & 0x80 != 0 {
                let _ = checksum::complete(&mut s);
                if !v6 {
                    fix_ipv4_header(&mut s);
                }
            }
        }
        5 => s.extend(core::iter::repeat_n(byte, at % 64)), // grown
        _ => {
            // The same segment again (a retransmission), or its flags changed.
            next[fl] -= 1;
            if op & 0x80 != 0 {
                s[l4 + 13] = byte;
                let _ = checksum::complete(&mut s);
            }
        }
    }
    s
}

/// Makes a cut segment's IP length and checksums right again; false if
/// the TCP checksum could not be (not a TCP frame any more).
pub fn fix_lengths(s: &mut [u8], v6: bool) -> bool {
    if v6 {
        let plen = (s.len() - 54) as u16;
        s[18..20].copy_from_slice(&plen.to_be_bytes());
    } else {
        let total = (s.len() - 14) as u16;
        s[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ipv4_header(s);
    }
    checksum::complete(s)
}

/// Runs the byte-driven stream; `Err` says which invariant broke.
pub fn run(data: &[u8]) -> Result<(), String> {
    let mut inp = Input(data);
    let head = inp.byte().unwrap_or(0);
    let v6 = head & 1 != 0;
    let max_mss = if v6 { 1428 } else { 1448 };
    let mss = 1 + usize::from(inp.u16()) % max_mss;
    let last = 1 + usize::from(inp.u16()) % mss;
    let flow = tcp_segments(v6, FLOW_SEGMENTS, mss, last);
    let mut other = flow.clone();
    let l4 = if v6 { 54 } else { 34 };
    for s in &mut other {
        s[l4 + 1] ^= 1; // another source port
        let _ = checksum::complete(s);
    }
    let flows = [flow, other];
    let mut next = [0usize; 2];
    let mut run = Run {
        gro: Coalescer::new(),
        held: Vec::new(),
        max_frame: Config::ALL_FEATURES.max_frame_len,
    };
    for _ in 0..MAX_PUSHES {
        if inp.0.is_empty() {
            break;
        }
        let f = frame(&mut inp, &flows, &mut next, v6);
        // Buffers posted: none to plenty, as RxBatch counts them.
        let room = usize::from(inp.byte().unwrap_or(0)).saturating_sub(1) * PAGE;
        run.push(&f, room)?;
    }
    run.release()?;
    if run.gro.take(run.max_frame).is_some() {
        return Err("something still held after the release".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The fuzz target's invariants hold on random input too.
        #[test]
        fn random_streams_coalesce_without_breaking_an_invariant(
            data in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let r = super::run(&data);
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }

    /// The flows do coalesce: with room and no edits, each flow's segments
    /// join (a target whose checks never see a super-frame checks nothing).
    #[test]
    fn an_unedited_stream_makes_super_frames() {
        let mut run = super::Run {
            gro: super::Coalescer::new(),
            held: alloc::vec::Vec::new(),
            max_frame: crate::Config::ALL_FEATURES.max_frame_len,
        };
        let segs = super::tcp_segments(false, 8, 1000, 1000);
        for s in &segs[..7] {
            run.push(s, 1 << 20).unwrap();
        }
        assert_eq!(run.held.len(), 7);
        run.release().unwrap();
    }
}
