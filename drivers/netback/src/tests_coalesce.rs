//! Receive coalescing against the fake Xen: a flow's in-order segments in
//! one batch reach a frontend that takes GSO as one super-frame, which
//! cut again gives back exactly the segments that went in; anything that
//! may not join goes alone, in its place, as it came.
use alloc::vec;
use alloc::vec::Vec;

use hypervisor::{DomId, FakeHypervisor, XenbusState};
use proptest::prelude::*;

use crate::segment::tests::{ipv4_ok, tcp_ok};
use crate::segment::{Csum, Gso, Offload, Plan};
use crate::testkit::coalesce::{
    fix_ipv4_header, fix_lengths, tcp_segments as segments, without_ids,
};
use crate::testkit::{self, create_vif, settle, vif_id as id, FakeFrontend, RxFrame};
use crate::wire::*;
use crate::*;

const BE: DomId = 1;
const A: DomId = 5;
/// IPv4's MSS in an MTU frame.
const MSS: usize = 1448;

/// The MSS in an MTU frame.
fn mss(v6: bool) -> usize {
    if v6 {
        1428
    } else {
        MSS
    }
}
const TCP_PSH: u8 = 0x08;

/// A connected guest; `gso`: its netfront takes GSO.
fn start(gso: bool) -> (FakeHypervisor, Netback<FakeHypervisor>, FakeFrontend) {
    let (mut hv, mut nb) = testkit::start_netback(BE, Config::ALL_FEATURES);
    let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
    settle(&mut hv, &mut nb);
    f.gso = gso;
    f.connect(&mut hv);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    (hv, nb, f)
}

/// Delivers `frames` as one batch.
fn batch(hv: &mut FakeHypervisor, nb: &mut Netback<FakeHypervisor>, frames: &[Vec<u8>]) {
    let vif = nb.vif_mut(id(A)).unwrap();
    let mut b = vif.rx_batch(hv);
    for f in frames {
        let _ = b.push(f, Offload::NONE);
    }
    b.finish();
}

/// What the guest got, each GSO frame cut again into its segments as the
/// guest's stack would see them (checked consistent on the way).
fn as_segments(got: &[RxFrame]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in got {
        let data = f.data.clone().expect("no error response");
        let Some(e) = f.extras.first() else {
            out.push(data);
            continue;
        };
        assert_eq!(
            f.flags & (NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED),
            NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED
        );
        let (size, ty) = e.gso();
        let kind = segment::gso_kind(ty).expect("a known GSO type");
        let plan = Plan::new(&data, Gso { kind, size }, 9018).expect("a valid super-frame");
        let mut norm = data.clone();
        plan.normalise(&mut norm);
        assert_eq!(
            norm, data,
            "lengths and checksums as a segmenter wants them"
        );
        for i in 0..plan.count() {
            let mut seg = vec![0u8; plan.max_len()];
            let len = plan.write(&data, i, &mut seg, true);
            seg.truncate(len);
            out.push(seg);
        }
    }
    out
}

#[test]
fn a_flows_segments_reach_a_gso_guest_as_one_super_frame() {
    for v6 in [false, true] {
        let (mut hv, mut nb, mut f) = start(true);
        f.post_rx(&mut hv, 64);
        let segs = segments(v6, 30, mss(v6), 500);
        batch(&mut hv, &mut nb, &segs);
        let got = f.rx_frames_meta();
        assert_eq!(got.len(), 1, "one frame for the guest");
        let kind = if v6 { 2 } else { 1 };
        assert_eq!(got[0].extras, [ExtraInfo::new_gso(mss(v6) as u16, kind)]);
        assert_eq!(as_segments(&got), segs, "cut again, the same segments");
        let c = nb.vif(id(A)).unwrap().counters();
        assert_eq!((c.rx_frames, c.rx_gso, c.rx_coalesced), (1, 1, 29));
    }
}

#[test]
fn a_guest_without_gso_gets_each_segment_as_it_came() {
    let (mut hv, mut nb, mut f) = start(false);
    f.post_rx(&mut hv, 64);
    let segs = segments(false, 30, MSS, MSS);
    batch(&mut hv, &mut nb, &segs);
    let got = f.rx_frames_meta();
    assert!(got.iter().all(|g| g.flags == 0 && g.extras.is_empty()));
    assert_eq!(as_segments(&got), segs);
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!((c.rx_frames, c.rx_coalesced), (30, 0));
}

#[test]
fn a_lone_segment_goes_as_it_came_with_its_checksum_validated() {
    let (mut hv, mut nb, mut f) = start(true);
    f.post_rx(&mut hv, 4);
    let seg = segments(false, 1, MSS, 100).remove(0);
    let vif = nb.vif_mut(id(A)).unwrap();
    vif.deliver_rx(&mut hv, &seg).unwrap();
    let got = f.rx_frames_meta();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data.as_deref(), Ok(&seg[..]));
    assert_eq!(
        (got[0].flags, got[0].extras.len()),
        (NETRXF_DATA_VALIDATED, 0)
    );
}

#[test]
fn a_segment_with_a_bad_checksum_is_never_inside_a_super_frame() {
    let (mut hv, mut nb, mut f) = start(true);
    f.post_rx(&mut hv, 64);
    let mut segs = segments(false, 10, MSS, MSS);
    segs[4][100] ^= 1; // payload, TCP checksum now wrong
    let mut ip = segments(false, 10, MSS, MSS);
    ip[7][24] ^= 1; // the IPv4 header checksum, now wrong
    segs[7] = ip.remove(7);
    batch(&mut hv, &mut nb, &segs);
    let got = f.rx_frames_meta();
    // 0-3 together; 4 alone, not validated; 5-6 together; 7 alone; 8-9.
    let shape: Vec<(usize, u16)> = got
        .iter()
        .map(|g| {
            (
                g.data.as_ref().unwrap().len(),
                g.flags & NETRXF_DATA_VALIDATED,
            )
        })
        .collect();
    let seg = segs[0].len();
    let two = seg + MSS;
    assert_eq!(
        shape,
        [
            (seg + 3 * MSS, NETRXF_DATA_VALIDATED),
            (seg, 0),
            (two, NETRXF_DATA_VALIDATED),
            (seg, 0),
            (two, NETRXF_DATA_VALIDATED),
        ]
    );
    assert_eq!(got[1].data.as_deref(), Ok(&segs[4][..]), "as it came");
    assert_eq!(got[3].data.as_deref(), Ok(&segs[7][..]));
    assert!(!tcp_ok(&segs[4]) && !ipv4_ok(&segs[7]));
}

/// Changes one segment of a run so that it may not join the one before.
type Breaker = fn(&mut Vec<u8>);

#[test]
fn what_breaks_a_flow_ends_its_super_frame() {
    let fix = |s: &mut Vec<u8>| {
        // Headers changed after the checksums: complete them again.
        fix_ipv4_header(s);
        assert!(checksum::complete(s));
    };
    let cases: &[(&str, Breaker)] = &[
        ("sequence gap", |s| s[38] ^= 0x40),
        ("other source port", |s| s[34] ^= 1),
        ("other ACK number", |s| s[45] ^= 1),
        ("other window", |s| s[49] ^= 1),
        ("SYN", |s| s[47] |= 0x02),
        ("FIN", |s| s[47] |= 0x01),
        ("RST", |s| s[47] |= 0x04),
        ("URG", |s| s[47] |= 0x20),
        ("ECE", |s| s[47] |= 0x40),
        ("IPv4 ID jump", |s| s[19] ^= 0x10),
        ("other TOS", |s| s[15] ^= 4),
        ("other TTL", |s| s[22] ^= 1),
        ("other destination MAC", |s| s[5] ^= 1),
        ("Ethernet padding", |s| s.push(0)),
    ];
    for (what, brk) in cases {
        let (mut hv, mut nb, mut f) = start(true);
        f.post_rx(&mut hv, 64);
        let mut segs = segments(false, 6, MSS, MSS);
        brk(&mut segs[3]);
        if *what != "Ethernet padding" {
            fix(&mut segs[3]);
        }
        batch(&mut hv, &mut nb, &segs);
        let got = f.rx_frames_meta();
        let lens: Vec<usize> = got.iter().map(|g| g.data.as_ref().unwrap().len()).collect();
        let (seg, hdr) = (segs[0].len(), segs[0].len() - MSS);
        assert_eq!(lens[0], hdr + 3 * MSS, "{what}: 0-2 together");
        assert_eq!(
            got[1].data.as_deref(),
            Ok(&segs[3][..]),
            "{what}: 3 as it came"
        );
        // 4 and 5 follow 3 unless it broke them off (a gap, a change of
        // flow): then they join each other.
        assert!(
            lens[2..] == [hdr + 2 * MSS] || lens[2..] == [seg, seg],
            "{what}: {lens:?}"
        );
        let c = nb.vif(id(A)).unwrap().counters();
        assert_eq!(c.rx_frames + c.rx_coalesced, 6, "{what}");
    }
}

#[test]
fn a_shorter_segment_or_psh_ends_the_super_frame() {
    let (mut hv, mut nb, mut f) = start(true);
    f.post_rx(&mut hv, 64);
    let a = segments(false, 3, MSS, 700); // ends short (and PSH)
    let mut b = segments(false, 4, MSS, MSS);
    for s in &mut b {
        // The same flow, carrying on after `a`.
        let seq =
            u32::from_be_bytes([s[38], s[39], s[40], s[41]]).wrapping_add((2 * MSS + 700) as u32);
        s[38..42].copy_from_slice(&seq.to_be_bytes());
        let id = u16::from_be_bytes([s[18], s[19]]) + 3;
        s[18..20].copy_from_slice(&id.to_be_bytes());
        fix_ipv4_header(s);
        assert!(checksum::complete(s));
    }
    let all: Vec<Vec<u8>> = a.iter().chain(&b).cloned().collect();
    batch(&mut hv, &mut nb, &all);
    let got = f.rx_frames_meta();
    assert_eq!(got.len(), 2, "a, then b");
    assert_eq!(as_segments(&got), all);
    assert_eq!(got[0].data.as_ref().unwrap()[47] & TCP_PSH, TCP_PSH);
}

#[test]
fn same_ids_with_df_join_and_other_frames_keep_their_place() {
    let (mut hv, mut nb, mut f) = start(true);
    f.post_rx(&mut hv, 64);
    let mut segs = segments(false, 4, MSS, MSS);
    for s in &mut segs {
        s[18..20].copy_from_slice(&[0, 0]); // Linux's IDs for DF, some stacks'
        fix_ipv4_header(s);
    }
    let arp = {
        let mut a = vec![0u8; 60];
        a[..6].fill(0xff);
        a[12..14].copy_from_slice(&[0x08, 0x06]);
        a
    };
    let mut frames = segs.clone();
    frames.insert(2, arp.clone());
    batch(&mut hv, &mut nb, &frames);
    let got = f.rx_frames_meta();
    let lens: Vec<usize> = got.iter().map(|g| g.data.as_ref().unwrap().len()).collect();
    let hdr = segs[0].len() - MSS;
    assert_eq!(lens, [hdr + 2 * MSS, 60, hdr + 2 * MSS]);
    assert_eq!(got[1].data.as_deref(), Ok(&arp[..]));
}

#[test]
fn a_super_frame_grows_no_larger_than_the_buffers_posted() {
    let (mut hv, mut nb, mut f) = start(true);
    // Three buffers: an extra slot and two pages, five full segments.
    f.post_rx(&mut hv, 3);
    let segs = segments(false, 10, MSS, MSS);
    batch(&mut hv, &mut nb, &segs);
    let got = f.rx_frames_meta();
    assert_eq!(got.len(), 1);
    assert_eq!(as_segments(&got), segs[..5], "the first five, whole");
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!(
        (c.rx_frames, c.rx_coalesced, c.rx_drops(RxDrop::RingFull)),
        (1, 4, 5),
        "every segment in a counter"
    );
}

#[test]
fn a_partial_checksum_or_gso_frame_is_never_coalesced() {
    let (mut hv, mut nb, mut f) = start(true);
    f.post_rx(&mut hv, 64);
    let segs = segments(false, 3, MSS, MSS);
    let vif = nb.vif_mut(id(A)).unwrap();
    let mut b = vif.rx_batch(&mut hv);
    let partial = Offload {
        gso: None,
        csum: Csum::Partial {
            start: 34,
            offset: 16,
        },
    };
    for s in &segs {
        b.push(s, partial).unwrap();
    }
    b.finish();
    assert_eq!(f.rx_frames_meta().len(), 3);
    assert_eq!(nb.vif(id(A)).unwrap().counters().rx_coalesced, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever two interleaved flows, breaks and buffer shortages a batch
    /// holds, the guest gets the frames that fit, in order, each as it was
    /// or inside a super-frame that cuts back into exactly them, and every
    /// frame pushed is delivered, joined or a counted drop.
    #[test]
    fn coalescing_loses_reorders_and_changes_nothing(
        plan in proptest::collection::vec((any::<bool>(), 0u8..8, 1usize..=MSS), 1..20),
        posted in 1usize..80,
        v6 in any::<bool>(),
    ) {
        let (mut hv, mut nb, mut f) = start(true);
        f.post_rx(&mut hv, posted);
        let m = mss(v6);
        let flows = [segments(v6, 40, m, m), {
            let mut other = segments(v6, 40, m, m);
            for s in &mut other {
                let l4 = if v6 { 54 } else { 34 };
                s[l4 + 1] ^= 1; // another source port
                assert!(checksum::complete(s));
            }
            other
        }];
        let mut next = [0usize; 2];
        let mut frames = Vec::new();
        for (flow, what, cut) in &plan {
            let fl = usize::from(*flow);
            let mut s = flows[fl][next[fl]].clone();
            next[fl] += 1;
            match what {
                0 => {
                    // Shorter: cut the payload.
                    let keep = s.len() - m + cut % m;
                    s.truncate(keep.max(s.len() - m + 1));
                    assert!(fix_lengths(&mut s, v6));
                }
                1 => {
                    let l4 = if v6 { 54 } else { 34 };
                    s[l4 + 13] |= TCP_PSH;
                    assert!(checksum::complete(&mut s));
                }
                2 => {
                    let last = s.len() - 1;
                    s[last] ^= 0xff; // corrupt
                }
                3 => next[fl] += 1,          // a gap
                _ => {}
            }
            frames.push(s);
        }
        batch(&mut hv, &mut nb, &frames);
        let got = f.rx_frames_meta();
        let cut = as_segments(&got);
        // In order: what arrived is the frames pushed, less some.
        let mut it = frames.iter();
        for s in &cut {
            prop_assert!(it.any(|x| x == s), "a frame the guest got was not pushed, or came out of order");
        }
        let c = nb.vif(id(A)).unwrap().counters();
        prop_assert_eq!(cut.len() as u64, c.rx_frames + c.rx_coalesced);
        prop_assert_eq!(
            frames.len() as u64,
            c.rx_frames + c.rx_coalesced + c.rx_drops_total()
        );
        if posted >= frames.len() + got.len() {
            prop_assert_eq!(&cut, &frames, "with room for all, all arrive");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any bytes from the wire: segments of a flow with bytes flipped
    /// anywhere, cut short or grown, checksums made right again or not.
    /// Nothing panics, every frame is counted, and what the guest gets,
    /// cut again, is the frames pushed less some, in order.
    #[test]
    fn no_frame_from_the_wire_breaks_coalescing(
        edits in proptest::collection::vec(
            (any::<u16>(), any::<u8>(), 0u8..4, any::<bool>()), 1..40),
        v6 in any::<bool>(),
    ) {
        let (mut hv, mut nb, mut f) = start(true);
        f.post_rx(&mut hv, 200);
        let m = mss(v6);
        let flow = segments(v6, 40, m, m);
        let frames: Vec<Vec<u8>> = edits
            .iter()
            .enumerate()
            .map(|(i, (at, byte, how, fix))| {
                let mut s = flow[i].clone();
                let at = usize::from(*at) % (s.len() + 8);
                match how {
                    0 if at < s.len() => s[at] ^= byte | 1,
                    1 => s.truncate(at.max(1)),
                    2 => s.extend(core::iter::repeat_n(*byte, at % 64)),
                    _ => {}
                }
                if *fix && s.len() > 34 {
                    let _ = checksum::complete(&mut s);
                    if s[12..14] == [0x08, 0x00] && s[14] & 0x0f == 5 {
                        fix_ipv4_header(&mut s);
                    }
                }
                s
            })
            .collect();
        batch(&mut hv, &mut nb, &frames);
        let got = f.rx_frames_meta();
        let mut cut = Vec::new();
        for g in &got {
            let data = g.data.clone().expect("no error response");
            match g.extras.first() {
                None => cut.push(data),
                Some(e) => {
                    let (size, ty) = e.gso();
                    let kind = segment::gso_kind(ty).expect("a known GSO type");
                    let plan = Plan::new(&data, Gso { kind, size }, 9018).expect("a valid super-frame");
                    for i in 0..plan.count() {
                        let mut seg = vec![0u8; plan.max_len()];
                        let len = plan.write(&data, i, &mut seg, true);
                        seg.truncate(len);
                        cut.push(seg);
                    }
                }
            }
        }
        let mut it = frames.iter();
        for s in &cut {
            prop_assert!(
                it.any(|x| without_ids(x) == without_ids(s)),
                "a frame the guest got was not pushed, or came out of order"
            );
        }
        let c = nb.vif(id(A)).unwrap().counters();
        prop_assert_eq!(
            frames.len() as u64,
            c.rx_frames + c.rx_coalesced + c.rx_drops_total()
        );
    }
}
