//! Netback's offloads, queues and rate limit against the fake Xen: GSO and
//! checksum offload both ways, multi-queue and split event channels, the
//! `rate` key, and the hostile-frontend table for GSO and extra-info slots.
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use hypervisor::{DomId, FakeHypervisor, GrantRef, SharedPage, XenbusState, PAGE_SIZE};

use crate::segment::tests::{ipv4_ok, tcp_frame, tcp_ok};
use crate::segment::{Csum, Gso, GsoKind, Offload, OffloadCaps, MAX_SEGMENTS};
use crate::testkit::{self, create_vif, settle, vif_id as id, FakeFrontend};
use crate::tests::{assert_tx_dropped, assert_tx_fatal};
use crate::wire::*;
use crate::*;

const BE: DomId = 1;
const A: DomId = 5;
const B: DomId = 6;
const V4: u8 = 1;
const V6: u8 = 2;

fn start(config: Config) -> (FakeHypervisor, Netback<FakeHypervisor>) {
    testkit::start_netback(BE, config)
}

/// A guest whose netfront is set up by `prepare` before it connects.
fn guest_with(
    hv: &mut FakeHypervisor,
    nb: &mut Netback<FakeHypervisor>,
    fe: DomId,
    prepare: impl FnOnce(&mut FakeFrontend),
) -> FakeFrontend {
    let mut f = create_vif(
        hv,
        BE,
        fe,
        0,
        &format!("00:16:3e:00:00:{fe:02x}"),
        &format!("10.0.0.{fe}"),
    );
    settle(hv, nb);
    prepare(&mut f);
    f.connect(hv);
    settle(hv, nb);
    assert_eq!(f.backend_state(hv), XenbusState::Connected);
    f
}

fn guest(hv: &mut FakeHypervisor, nb: &mut Netback<FakeHypervisor>, fe: DomId) -> FakeFrontend {
    guest_with(hv, nb, fe, |_| {})
}

fn poll(hv: &mut FakeHypervisor, nb: &mut Netback<FakeHypervisor>, fe: DomId) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    nb.vif_mut(id(fe))
        .unwrap()
        .poll_tx(hv, |f| got.push(f.to_vec()));
    got
}

fn gso(size: u16, kind: GsoKind) -> Gso {
    Gso { size, kind }
}

// ----- what is advertised -----

#[test]
fn features_follow_the_config() {
    for (config, gso, split, queues) in [
        (Config::DEFAULT, "0", "0", "1"),
        (Config::ALL_FEATURES, "1", "1", "4"),
    ] {
        let (mut hv, mut nb) = start(config);
        let f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
        settle(&mut hv, &mut nb);
        let be = |k: &str| hv.xs_get(&format!("{}/{k}", f.backend_path));
        assert_eq!(be("feature-gso-tcpv4").as_deref(), Some(gso));
        assert_eq!(be("feature-gso-tcpv6").as_deref(), Some(gso));
        assert_eq!(be("feature-split-event-channels").as_deref(), Some(split));
        assert_eq!(be("multi-queue-max-queues").as_deref(), Some(queues));
        assert_eq!(be("feature-ipv6-csum-offload").as_deref(), Some("1"));
    }
}

// ----- guest TX -----

#[test]
fn tx_gso_frames_are_segmented_in_software() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest(&mut hv, &mut nb, A);
    let mut segments = 0;
    for (v6, kind, mss) in [(false, V4, 1448), (true, V6, 1440)] {
        let big = tcp_frame(v6, 60_000);
        let ids = a.send_gso(&mut hv, &big, mss, kind);
        assert_eq!(ids.len(), big.len().div_ceil(PAGE_SIZE));
        let segs = poll(&mut hv, &mut nb, A);
        let h = if v6 { 74 } else { 54 };
        assert_eq!(
            segs.len(),
            60_000usize.div_ceil(usize::from(mss)),
            "v6 {v6}"
        );
        segments += segs.len() as u64;
        let mut data = Vec::new();
        for s in &segs {
            assert!(s.len() <= 1514);
            assert!(tcp_ok(s), "v6 {v6}: segment checksum");
            assert!(v6 || ipv4_ok(s));
            data.extend_from_slice(&s[h..]);
        }
        assert_eq!(data, &big[h..], "v6 {v6}: payload in order");
        let rsp = a.tx_responses();
        assert_eq!(rsp.len(), ids.len() + 1, "one response per slot, extra too");
        assert_eq!(rsp[0].status, NETIF_RSP_OKAY);
        assert_eq!(rsp[1].status, NETIF_RSP_NULL);
        assert!(rsp[2..].iter().all(|r| r.status == NETIF_RSP_OKAY));
    }
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!((c.tx_frames, c.tx_gso), (2, 2));
    assert_eq!(c.tx_segments, segments);
    assert_eq!(c.tx_drops_total(), 0);
}

#[test]
fn tx_gso_goes_whole_to_a_consumer_that_segments() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest(&mut hv, &mut nb, A);
    let mut big = tcp_frame(false, 30_000);
    big[16..18].copy_from_slice(&[0, 0]); // lengths are not trusted
    a.send_gso(&mut hv, &big, 1448, V4);
    // A v6-only consumer: the v4 frame is segmented for it.
    let caps6 = OffloadCaps {
        csum: true,
        tso4: false,
        tso6: true,
    };
    let mut got = Vec::new();
    let vif = nb.vif_mut(id(A)).unwrap();
    vif.poll_tx_offload(&mut hv, caps6, |f, o| got.push((f.to_vec(), o)));
    assert_eq!(got.len(), 30_000usize.div_ceil(1448));
    assert!(got.iter().all(|(_, o)| o.gso.is_none()));

    a.send_gso(&mut hv, &big, 1448, V4);
    let caps = OffloadCaps {
        tso4: true,
        ..caps6
    };
    let mut got = Vec::new();
    let vif = nb.vif_mut(id(A)).unwrap();
    vif.poll_tx_offload(&mut hv, caps, |f, o| got.push((f.to_vec(), o)));
    let [(f, o)] = got.as_slice() else {
        panic!("one super-frame, got {}", got.len())
    };
    assert_eq!(f.len(), big.len());
    assert_eq!(o.gso, Some(gso(1448, GsoKind::TcpV4)));
    assert_eq!(
        o.csum,
        Csum::Partial {
            start: 34,
            offset: 16
        }
    );
    assert!(ipv4_ok(f), "lengths and header checksum made consistent");
    assert_eq!(
        usize::from(u16::from_be_bytes([f[16], f[17]])),
        f.len() - 14
    );
}

#[test]
fn tx_partial_checksums_left_to_a_consumer_that_inserts_them() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest(&mut hv, &mut nb, A);
    a.tx_flags = NETTXF_CSUM_BLANK;
    let f = tcp_frame(true, 500);
    a.send(&mut hv, &f, 4096, 0);
    let caps = OffloadCaps {
        csum: true,
        ..OffloadCaps::NONE
    };
    let mut got = Vec::new();
    let vif = nb.vif_mut(id(A)).unwrap();
    vif.poll_tx_offload(&mut hv, caps, |f, o| got.push((f.to_vec(), o)));
    let (g, o) = &got[0];
    assert_eq!(
        o.csum,
        Csum::Partial {
            start: 54,
            offset: 16
        }
    );
    assert!(!tcp_ok(g), "left partial");
    // Without the capability, completed here.
    a.send(&mut hv, &f, 4096, 0);
    let got = poll(&mut hv, &mut nb, A);
    assert!(tcp_ok(&got[0]));
    // The data_validated flag alone says the guest vouches for it.
    a.tx_flags = NETTXF_DATA_VALIDATED;
    a.send(&mut hv, &f, 4096, 0);
    let mut got = Vec::new();
    let vif = nb.vif_mut(id(A)).unwrap();
    vif.poll_tx_offload(&mut hv, caps, |_, o| got.push(o));
    assert_eq!(
        got,
        [Offload {
            gso: None,
            csum: Csum::Validated
        }]
    );
}

fn req(gref: GrantRef, offset: u16, flags: u16, id: u16, size: u16) -> [u8; TX_SLOT] {
    TxRequest {
        gref,
        offset,
        flags,
        id,
        size,
    }
    .encode()
}

fn gso_extra(size: u16, kind: u8, flags: u8) -> [u8; TX_SLOT] {
    ExtraInfo {
        flags,
        ..ExtraInfo::new_gso(size, kind)
    }
    .encode()
}

fn raw_extra(kind: u8, flags: u8) -> [u8; TX_SLOT] {
    ExtraInfo {
        kind,
        flags,
        data: [0; 6],
    }
    .encode()
}

#[derive(Debug)]
enum Expect {
    Drop(TxDrop),
    Fatal(Fatal),
    /// Accepted: this many frames come out.
    Frames(usize),
}

/// Writes `frame` into fresh granted pages of B, one page per slot, and
/// queues its slots with the extras after the first.
fn raw_gso(
    hv: &mut FakeHypervisor,
    b: &mut FakeFrontend,
    frame: &[u8],
    extras: &[[u8; TX_SLOT]],
    flags: u16,
) {
    let chunks: Vec<&[u8]> = frame.chunks(PAGE_SIZE).collect();
    for (i, c) in chunks.iter().enumerate() {
        let g = hv.grant_page(B, BE, true).unwrap();
        hv.granted_page(B, g).unwrap().write(0, c);
        let more = if i + 1 < chunks.len() {
            NETTXF_MORE_DATA
        } else {
            0
        };
        let (f, size) = if i == 0 {
            (
                more | flags
                    | if extras.is_empty() {
                        0
                    } else {
                        NETTXF_EXTRA_INFO
                    },
                frame.len(),
            )
        } else {
            (more, c.len())
        };
        b.push_tx_slot(&req(g, 0, f, i as u16, size as u16));
        if i == 0 {
            for e in extras {
                b.push_tx_slot(e);
            }
        }
    }
}

/// One attack per row from frontend B with GSO offered, then a poll; A
/// beside it must be untouched. Every case is a counted drop or a fatal
/// error, or frames that are exactly right.
#[test]
fn hostile_gso_and_extra_info_table() {
    type Attack = fn(&mut FakeHypervisor, &mut FakeFrontend);
    const CB: u16 = NETTXF_CSUM_BLANK;
    const MORE: u8 = XEN_NETIF_EXTRA_FLAG_MORE;
    let cases: &[(&str, Attack, Expect)] = &[
        (
            "GSO size 0",
            |hv, b| raw_gso(hv, b, &tcp_frame(false, 5000), &[gso_extra(0, V4, 0)], CB),
            Expect::Fatal(Fatal::BadGso),
        ),
        (
            "GSO type NONE",
            |hv, b| raw_gso(hv, b, &tcp_frame(false, 5000), &[gso_extra(1448, 0, 0)], CB),
            Expect::Fatal(Fatal::BadGso),
        ),
        (
            "GSO type unknown",
            |hv, b| raw_gso(hv, b, &tcp_frame(false, 5000), &[gso_extra(1448, 7, 0)], CB),
            Expect::Fatal(Fatal::BadGso),
        ),
        (
            "GSO on UDP",
            |hv, b| {
                let mut f = tcp_frame(false, 5000);
                f[23] = 17;
                raw_gso(hv, b, &f, &[gso_extra(1448, V4, 0)], CB)
            },
            Expect::Drop(TxDrop::GsoNotTcp),
        ),
        (
            "GSO on ARP",
            |hv, b| {
                let mut f = tcp_frame(false, 3000);
                f[12..14].copy_from_slice(&[0x08, 0x06]);
                raw_gso(hv, b, &f, &[gso_extra(1448, V4, 0)], CB)
            },
            Expect::Drop(TxDrop::GsoNotTcp),
        ),
        (
            "GSO on an IPv4 fragment",
            |hv, b| {
                let mut f = tcp_frame(false, 3000);
                f[20] = 0x20;
                raw_gso(hv, b, &f, &[gso_extra(1448, V4, 0)], CB)
            },
            Expect::Drop(TxDrop::GsoNotTcp),
        ),
        (
            "GSO TCPv6 type on IPv4",
            |hv, b| {
                raw_gso(
                    hv,
                    b,
                    &tcp_frame(false, 5000),
                    &[gso_extra(1448, V6, 0)],
                    CB,
                )
            },
            Expect::Drop(TxDrop::GsoNotTcp),
        ),
        (
            "GSO TCP header past the end",
            |hv, b| {
                let mut f = tcp_frame(false, 10);
                f[46] = 0xf0; // 60-byte TCP header in a 64-byte frame
                raw_gso(hv, b, &f, &[gso_extra(1448, V4, 0)], CB)
            },
            Expect::Drop(TxDrop::GsoNotTcp),
        ),
        (
            "GSO size beyond the largest frame",
            |hv, b| {
                let mss = (Config::DEFAULT.max_frame_len - 54 + 1) as u16;
                raw_gso(hv, b, &tcp_frame(false, 5000), &[gso_extra(mss, V4, 0)], CB)
            },
            Expect::Drop(TxDrop::GsoSize),
        ),
        (
            "GSO size 65535",
            |hv, b| {
                raw_gso(
                    hv,
                    b,
                    &tcp_frame(false, 5000),
                    &[gso_extra(65535, V4, 0)],
                    CB,
                )
            },
            Expect::Drop(TxDrop::GsoSize),
        ),
        (
            "GSO size 1: 60000 segments",
            |hv, b| raw_gso(hv, b, &tcp_frame(false, 60_000), &[gso_extra(1, V4, 0)], CB),
            Expect::Drop(TxDrop::GsoSegments),
        ),
        (
            "one segment more than the limit",
            |hv, b| {
                let f = tcp_frame(false, 100 * (MAX_SEGMENTS + 1));
                raw_gso(hv, b, &f, &[gso_extra(100, V4, 0)], CB)
            },
            Expect::Drop(TxDrop::GsoSegments),
        ),
        (
            "exactly the segment limit",
            |hv, b| {
                let f = tcp_frame(false, 100 * MAX_SEGMENTS);
                raw_gso(hv, b, &f, &[gso_extra(100, V4, 0)], CB)
            },
            Expect::Frames(MAX_SEGMENTS),
        ),
        (
            "GSO frame in 19 slots",
            |hv, b| {
                let g = hv.grant_page(B, BE, true).unwrap();
                hv.granted_page(B, g).unwrap().fill(0x22);
                b.push_tx_slot(&req(
                    g,
                    0,
                    NETTXF_EXTRA_INFO | NETTXF_MORE_DATA,
                    0,
                    19 * 100,
                ));
                b.push_tx_slot(&gso_extra(1448, V4, 0));
                for i in 1..19u16 {
                    let m = if i < 18 { NETTXF_MORE_DATA } else { 0 };
                    b.push_tx_slot(&req(g, 0, m, i, 100));
                }
            },
            Expect::Drop(TxDrop::TooManySlots),
        ),
        (
            "GSO extra, then a hash extra",
            |hv, b| {
                raw_gso(
                    hv,
                    b,
                    &tcp_frame(false, 3000),
                    &[gso_extra(1448, V4, MORE), raw_extra(4, 0)],
                    CB,
                )
            },
            Expect::Frames(3),
        ),
        (
            "two GSO extras: the last counts",
            |hv, b| {
                raw_gso(
                    hv,
                    b,
                    &tcp_frame(false, 3000),
                    &[gso_extra(100, V4, MORE), gso_extra(1000, V4, 0)],
                    CB,
                )
            },
            Expect::Frames(3),
        ),
        (
            "extra chain past req_prod",
            |hv, b| {
                raw_gso(
                    hv,
                    b,
                    &tcp_frame(false, 100),
                    &[gso_extra(1448, V4, MORE)],
                    CB,
                )
            },
            // The chain's `more` swallows the next request: no frame slot
            // is left, so the frame's slots run past req_prod.
            Expect::Fatal(Fatal::MissingSlots),
        ),
        (
            "extra chain longer than the types",
            |hv, b| {
                let mut ex = vec![gso_extra(1448, V4, MORE); 5];
                ex.push(gso_extra(1448, V4, 0));
                raw_gso(hv, b, &tcp_frame(false, 100), &ex, CB)
            },
            Expect::Fatal(Fatal::BadExtra),
        ),
        (
            "extra of unknown type in a chain",
            |hv, b| {
                raw_gso(
                    hv,
                    b,
                    &tcp_frame(false, 100),
                    &[gso_extra(1448, V4, MORE), raw_extra(6, 0)],
                    CB,
                )
            },
            Expect::Fatal(Fatal::BadExtra),
        ),
        (
            "GSO on a 60000-byte frame without csum_blank",
            |hv, b| {
                raw_gso(
                    hv,
                    b,
                    &tcp_frame(true, 60_000),
                    &[gso_extra(1440, V6, 0)],
                    0,
                )
            },
            Expect::Frames(60_000usize.div_ceil(1440)),
        ),
        (
            "oversize frame without GSO",
            |hv, b| raw_gso(hv, b, &tcp_frame(false, 5000), &[], CB),
            Expect::Drop(TxDrop::Oversize),
        ),
    ];
    for (name, attack, expect) in cases {
        let (mut hv, mut nb) = start(Config::ALL_FEATURES);
        let mut a = guest(&mut hv, &mut nb, A);
        a.tx_fill = 0xee;
        let secret = tcp_frame(false, 20_000)
            .into_iter()
            .map(|x| if x == 0x22 { 0xee } else { x })
            .collect::<Vec<_>>();
        a.send_gso(&mut hv, &secret, 1448, V4);
        let mut b = guest(&mut hv, &mut nb, B);
        let before = b.tx_req_prod();
        attack(&mut hv, &mut b);
        b.publish_tx();
        let got = poll(&mut hv, &mut nb, B);
        let vif = nb.vif(id(B)).unwrap();
        let c = vif.counters();
        let slots = b.tx_req_prod().wrapping_sub(before) as usize;
        match expect {
            Expect::Drop(why) => assert_tx_dropped(name, vif, &mut b, slots, &got, *why),
            Expect::Fatal(why) => assert_tx_fatal(name, vif, &b, &hv, *why),
            Expect::Frames(n) => {
                assert_eq!(got.len(), *n, "{name}: {c:?}");
                assert!(
                    got.iter().all(|s| s.len() <= 1514 && tcp_ok(s)),
                    "{name}: every segment right"
                );
                assert_eq!(c.tx_drops_total() + c.fatal_total(), 0, "{name}");
                let rsp = b.tx_responses();
                assert_eq!(rsp.len(), slots, "{name}");
            }
        }
        // A is untouched: its segments arrive, right, and its vif is clean.
        let segs = poll(&mut hv, &mut nb, A);
        assert_eq!(segs.len(), 20_000usize.div_ceil(1448), "{name}");
        let data: Vec<u8> = segs.iter().flat_map(|s| s[54..].to_vec()).collect();
        assert_eq!(data, &secret[54..], "{name}");
        let ca = nb.vif(id(A)).unwrap().counters();
        assert_eq!((ca.tx_drops_total(), ca.fatal_total()), (0, 0), "{name}");
    }
}

// ----- guest RX -----

/// A normalised super-frame and its offload: MSS 1448 (IPv4), 1428 (IPv6).
fn super_frame(v6: bool, payload: usize) -> (Vec<u8>, Offload) {
    let mut f = tcp_frame(v6, payload);
    let (kind, mss) = if v6 {
        (GsoKind::TcpV6, 1428)
    } else {
        (GsoKind::TcpV4, 1448)
    };
    let plan = crate::segment::Plan::new(&f, gso(mss, kind), 1514).unwrap();
    plan.normalise(&mut f);
    (
        f,
        Offload {
            gso: Some(gso(mss, kind)),
            csum: plan.csum(),
        },
    )
}

#[test]
fn rx_gso_goes_whole_to_a_frontend_that_asked() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest_with(&mut hv, &mut nb, A, |f| f.gso = true);
    a.post_rx(&mut hv, 40);
    for v6 in [false, true] {
        let (big, off) = super_frame(v6, 60_000);
        let vif = nb.vif_mut(id(A)).unwrap();
        vif.deliver_rx_offload(&mut hv, &big, off).unwrap();
        let got = a.rx_frames_meta();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data.as_deref(), Ok(&big[..]));
        assert_eq!(
            got[0].flags & (NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED | NETRXF_EXTRA_INFO),
            NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED | NETRXF_EXTRA_INFO
        );
        let (kind, mss) = if v6 { (V6, 1428) } else { (V4, 1448) };
        assert_eq!(got[0].extras, [ExtraInfo::new_gso(mss, kind)]);
    }
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!((c.rx_frames, c.rx_gso, c.rx_segmented), (2, 2, 0));
}

#[test]
fn rx_gso_is_segmented_for_a_frontend_without_it() {
    for config in [Config::DEFAULT, Config::ALL_FEATURES] {
        let (mut hv, mut nb) = start(config);
        // Asking is not enough when netback does not offer it.
        let mut a = guest_with(&mut hv, &mut nb, A, |f| f.gso = !config.gso);
        let (big, off) = super_frame(false, 10_000);
        let n = 10_000usize.div_ceil(1448);
        a.post_rx(&mut hv, n - 1);
        let vif = nb.vif_mut(id(A)).unwrap();
        assert_eq!(
            vif.deliver_rx_offload(&mut hv, &big, off),
            Err(RxError::Full),
            "all segments or none"
        );
        assert!(a.rx_frames().is_empty());
        a.post_rx(&mut hv, 1);
        let vif = nb.vif_mut(id(A)).unwrap();
        vif.deliver_rx_offload(&mut hv, &big, off).unwrap();
        let got = a.rx_frames_meta();
        assert_eq!(got.len(), n);
        let mut data = Vec::new();
        for f in &got {
            let bytes = f.data.as_ref().unwrap();
            assert!(bytes.len() <= 1514 && tcp_ok(bytes) && ipv4_ok(bytes));
            assert_eq!(f.flags & NETRXF_DATA_VALIDATED, NETRXF_DATA_VALIDATED);
            assert!(f.extras.is_empty());
            data.extend_from_slice(&bytes[54..]);
        }
        assert_eq!(data, &big[54..]);
        let c = nb.vif(id(A)).unwrap().counters();
        assert_eq!((c.rx_frames, c.rx_segmented), (n as u64, 1));
        assert_eq!(c.rx_drops(RxDrop::RingFull), 1);
    }
}

#[test]
fn rx_bad_offload_metadata_is_a_counted_drop() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest_with(&mut hv, &mut nb, A, |f| f.gso = true);
    a.post_rx(&mut hv, 40);
    let (big, off) = super_frame(false, 10_000);
    let vif = nb.vif_mut(id(A)).unwrap();
    let wrong_family = Offload {
        gso: Some(gso(1448, GsoKind::TcpV6)),
        ..off
    };
    let zero = Offload {
        gso: Some(gso(0, GsoKind::TcpV4)),
        ..off
    };
    let tiny = Offload {
        gso: Some(gso(10, GsoKind::TcpV4)),
        ..off
    };
    for bad in [wrong_family, zero, tiny] {
        assert_eq!(
            vif.deliver_rx_offload(&mut hv, &big, bad),
            Err(RxError::BadLength)
        );
    }
    let mut udp = big.clone();
    udp[23] = 17;
    assert_eq!(
        vif.deliver_rx_offload(&mut hv, &udp, off),
        Err(RxError::BadLength)
    );
    let partial_arp = Offload {
        gso: None,
        csum: Csum::Partial {
            start: 34,
            offset: 16,
        },
    };
    let mut arp = big[..60].to_vec();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        vif.deliver_rx_offload(&mut hv, &arp, partial_arp),
        Err(RxError::BadLength)
    );
    // An oversized plain frame.
    assert_eq!(
        vif.deliver_rx_offload(&mut hv, &big, Offload::NONE),
        Err(RxError::BadLength)
    );
    let c = vif.counters();
    assert_eq!(c.rx_drops(RxDrop::Offload), 5);
    assert_eq!(c.rx_drops(RxDrop::BadLength), 1);
    assert!(vif.is_connected());
    assert!(a.rx_frames().is_empty());
}

#[test]
fn rx_partial_checksums_follow_the_frontend() {
    for no_csum in [false, true] {
        let (mut hv, mut nb) = start(Config::ALL_FEATURES);
        let mut a = guest_with(&mut hv, &mut nb, A, |f| f.no_csum = no_csum);
        a.post_rx(&mut hv, 4);
        let mut f = tcp_frame(false, 1000);
        let at = crate::checksum::locate(&f, crate::checksum::Lengths::Ip).unwrap();
        crate::checksum::fill_partial(&mut f, &at);
        let off = Offload {
            gso: None,
            csum: Csum::Partial {
                start: 34,
                offset: 16,
            },
        };
        let vif = nb.vif_mut(id(A)).unwrap();
        vif.deliver_rx_offload(&mut hv, &f, off).unwrap();
        let v6 = tcp_frame(true, 1000);
        let validated = Offload {
            gso: None,
            csum: Csum::Validated,
        };
        vif.deliver_rx_offload(&mut hv, &v6, validated).unwrap();
        let got = a.rx_frames_meta();
        let bytes = got[0].data.as_ref().unwrap();
        if no_csum {
            assert_eq!(got[0].flags, NETRXF_DATA_VALIDATED);
            assert!(tcp_ok(bytes), "completed for a frontend without offload");
        } else {
            assert_eq!(got[0].flags, NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED);
            assert_eq!(bytes, &f, "left partial");
        }
        assert_eq!(got[1].flags, NETRXF_DATA_VALIDATED);
    }
}

// ----- queues and event channels -----

/// Two TCP flows that hash to different queues of a 2-queue vif.
fn flow(port: u16) -> Vec<u8> {
    let mut f = tcp_frame(false, 100);
    f[34..36].copy_from_slice(&port.to_be_bytes());
    f
}

#[test]
fn multi_queue_spreads_flows_and_keeps_each_on_one_queue() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest_with(&mut hv, &mut nb, A, |f| f.num_queues = 2);
    assert_eq!(a.queue_count(), 2);
    assert_eq!(
        hv.xs_get(&format!("{}/multi-queue-num-queues", a.path))
            .as_deref(),
        Some("2")
    );
    for q in 0..2 {
        a.use_queue(q);
        a.post_rx(&mut hv, 64);
    }
    // TX on either queue.
    for q in 0..2 {
        a.use_queue(q);
        a.send(&mut hv, &flow(1000 + q as u16), 4096, 0);
    }
    let got = poll(&mut hv, &mut nb, A);
    assert_eq!(got, [flow(1000), flow(1001)]);
    for q in 0..2 {
        a.use_queue(q);
        assert_eq!(a.tx_responses().len(), 1, "queue {q} answered");
    }
    // RX: 32 flows, 3 frames each; each flow's frames on one queue.
    let vif = nb.vif_mut(id(A)).unwrap();
    for round in 0..3 {
        for port in 0..32 {
            let mut f = flow(2000 + port);
            f[60] = round;
            vif.deliver_rx(&mut hv, &f).unwrap();
        }
    }
    let mut per_queue = [0; 2];
    let mut queue_of = alloc::collections::BTreeMap::new();
    for (q, count) in per_queue.iter_mut().enumerate() {
        a.use_queue(q);
        for f in a.rx_frames() {
            let f = f.unwrap();
            let port = u16::from_be_bytes([f[34], f[35]]);
            assert_eq!(*queue_of.entry(port).or_insert(q), q, "flow {port} split");
            *count += 1;
        }
    }
    assert_eq!(queue_of.len(), 32);
    assert!(per_queue.iter().all(|n| *n >= 15), "spread {per_queue:?}");
}

#[test]
fn split_event_channels_notify_the_right_port() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest_with(&mut hv, &mut nb, A, |f| {
        f.split = true;
        f.num_queues = 2;
    });
    for q in 0..2 {
        assert!(hv
            .xs_get(&format!("{}/queue-{q}/event-channel-rx", a.path))
            .is_some());
        a.use_queue(q);
        a.post_rx(&mut hv, 8);
        let _ = a.take_queue_notification(&mut hv, q, true);
        let _ = a.take_queue_notification(&mut hv, q, false);
    }
    a.use_queue(1);
    a.send(&mut hv, &flow(7), 4096, 0);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 1);
    assert!(a.take_queue_notification(&mut hv, 1, false), "TX port");
    assert!(!a.take_queue_notification(&mut hv, 1, true));
    assert!(!a.take_queue_notification(&mut hv, 0, false));
    let vif = nb.vif_mut(id(A)).unwrap();
    let mut rx_ports = [false; 2];
    for port in 0..8 {
        vif.deliver_rx(&mut hv, &flow(port)).unwrap();
        for (q, seen) in rx_ports.iter_mut().enumerate() {
            *seen |= a.take_queue_notification(&mut hv, q, true);
            assert!(!a.take_queue_notification(&mut hv, q, false), "not TX");
        }
    }
    assert_eq!(rx_ports, [true, true]);
    let vif = nb.vif(id(A)).unwrap();
    assert_eq!(vif.queues(), 2);
    assert_eq!(vif.event_ports().count(), 4);
    let mut ports: Vec<_> = vif.event_ports().collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4, "four distinct ports");
    assert!(vif.rx_notify());
    // The guest's "buffers posted" on a split RX channel does not stay
    // pending: a loop blocking on events would spin.
    a.notify_queue(&mut hv, 1, true);
    let _ = poll(&mut hv, &mut nb, A);
    let vif = nb.vif(id(A)).unwrap();
    let ports: Vec<_> = vif.event_ports().collect();
    for p in ports {
        assert!(
            !hypervisor::EventChannels::take_pending(&mut hv, p),
            "port {p}"
        );
    }
    // Disconnect closes every port.
    a.set_state(&mut hv, XenbusState::Closing);
    settle(&mut hv, &mut nb);
    assert_eq!(hv.open_ports(BE), 0);
}

#[test]
fn bad_queue_keys_refuse_the_connection() {
    type Spoil = fn(&mut FakeHypervisor, &FakeFrontend);
    let cases: &[(&str, usize, Spoil, ConnectError)] = &[
        (
            "more queues than offered",
            2,
            |hv, f| f.write_key(hv, "multi-queue-num-queues", "5"),
            ConnectError::Unsupported("multi-queue-num-queues"),
        ),
        (
            "zero queues",
            2,
            |hv, f| f.write_key(hv, "multi-queue-num-queues", "0"),
            ConnectError::BadKey("multi-queue-num-queues"),
        ),
        (
            "garbage queue count",
            2,
            |hv, f| f.write_key(hv, "multi-queue-num-queues", "two"),
            ConnectError::BadKey("multi-queue-num-queues"),
        ),
        (
            "a queue's ring ref missing",
            2,
            |hv, f| {
                hv.xs_rm_as(f.domid, &format!("{}/queue-1/rx-ring-ref", f.path))
                    .unwrap()
            },
            ConnectError::BadKey("rx-ring-ref"),
        ),
        (
            "split channel without its RX half",
            1,
            |hv, f| {
                hv.xs_rm_as(f.domid, &format!("{}/event-channel", f.path))
                    .unwrap();
                f.write_key(hv, "event-channel-tx", "1");
            },
            ConnectError::BadKey("event-channel-rx"),
        ),
        (
            "a queue bound to another guest's channel",
            2,
            |hv, f| f.write_key(hv, "queue-1/event-channel", "99999"),
            ConnectError::BindFailed,
        ),
    ];
    for (name, queues, spoil, want) in cases {
        let (mut hv, mut nb) = start(Config::ALL_FEATURES);
        let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
        settle(&mut hv, &mut nb);
        f.num_queues = *queues;
        f.setup(&mut hv);
        spoil(&mut hv, &f);
        f.set_state(&mut hv, XenbusState::Connected);
        settle(&mut hv, &mut nb);
        let vif = nb.vif(id(A)).unwrap();
        assert_eq!(vif.last_error(), Some(*want), "{name}");
        assert!(!vif.is_connected(), "{name}");
        assert_eq!(f.backend_state(&hv), XenbusState::Closing, "{name}");
        assert_eq!(hv.open_ports(BE), 0, "{name}: nothing left bound");
    }
}

// ----- the rate limit -----

fn set_rate(hv: &mut FakeHypervisor, f: &FakeFrontend, rate: Option<&str>) {
    let path = format!("{}/rate", f.backend_path);
    match rate {
        Some(r) => hv.xs_write_as(0, &path, r).unwrap(),
        None => hv.xs_rm_as(0, &path).unwrap(),
    }
}

/// A guest blocked on credit sends no event that would wake the loop: the
/// loop must sleep no later than the window's opening (bench-7's rate row
/// made 8.9 of 10 Mbit/s, the windows opened only when something else woke
/// aggdom, at the latest its 10 ms tick).
#[test]
fn a_frame_waiting_for_credit_sets_the_loops_timer() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut a = guest(&mut hv, &mut nb, A);
    assert_eq!(nb.next_timer_ns(), None, "no limit, no timer");
    set_rate(&mut hv, &a, Some("10000,100000"));
    settle(&mut hv, &mut nb);
    for _ in 0..15 {
        a.send(&mut hv, &tcp_frame(false, 946), 4096, 0);
    }
    let t0 = hypervisor::Hypervisor::now_ns(&mut hv);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 10);
    assert_eq!(
        nb.next_timer_ns(),
        Some(t0 + 100_000_000),
        "the next window"
    );
    hv.advance_clock(100_000_000);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 5);
    assert_eq!(nb.next_timer_ns(), None, "nothing waits");
}

#[test]
fn rate_limits_guest_tx_per_window_and_follows_the_key_live() {
    let (mut hv, mut nb) = start(Config::DEFAULT);
    let mut a = guest(&mut hv, &mut nb, A);
    // 10000 bytes per 100 ms, as xl writes rate=100KB/s@100ms.
    set_rate(&mut hv, &a, Some("10000,100000"));
    settle(&mut hv, &mut nb);
    assert_eq!(
        nb.vif(id(A)).unwrap().rate(),
        Some(Rate {
            bytes: 10_000,
            usec: 100_000
        })
    );
    for _ in 0..30 {
        a.send(&mut hv, &tcp_frame(false, 946), 4096, 0);
    }
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 10, "the first window");
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 0, "waits on the ring");
    assert_eq!(a.tx_responses().len(), 10, "the rest unanswered");
    hv.advance_clock(99_000_000);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 0);
    hv.advance_clock(1_000_000);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 10, "the next window");
    assert_eq!(nb.vif(id(A)).unwrap().counters().tx_rate_limited, 2);
    // Raised live: the waiting frames go at the next window.
    set_rate(&mut hv, &a, Some("1000000,100000"));
    settle(&mut hv, &mut nb);
    hv.advance_clock(100_000_000);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 10);
    // A bad value is counted and means no limit, as in Linux.
    set_rate(&mut hv, &a, Some("10Mb/s@20ms"));
    settle(&mut hv, &mut nb);
    let vif = nb.vif(id(A)).unwrap();
    assert_eq!((vif.rate(), vif.counters().rate_errors), (None, 1));
    for _ in 0..200 {
        a.send(&mut hv, &tcp_frame(false, 946), 4096, 0);
    }
    let n: usize = (0..4).map(|_| poll(&mut hv, &mut nb, A).len()).sum();
    assert_eq!(n, 200);
    // Lowered live, below what is left: capped at one window.
    set_rate(&mut hv, &a, Some("2000,1000000"));
    settle(&mut hv, &mut nb);
    for _ in 0..5 {
        a.send(&mut hv, &tcp_frame(false, 946), 4096, 0);
    }
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 2);
    set_rate(&mut hv, &a, None);
    settle(&mut hv, &mut nb);
    assert_eq!(poll(&mut hv, &mut nb, A).len(), 3, "removed: unlimited");
    // A bad value from the start is counted once, however often read.
    set_rate(&mut hv, &a, Some("fast"));
    settle(&mut hv, &mut nb);
    a.write_key(&mut hv, "state", "4"); // any event: the vif reads again
    settle(&mut hv, &mut nb);
    assert_eq!(nb.vif(id(A)).unwrap().counters().rate_errors, 2);
}

#[test]
fn a_gso_frame_fits_the_minimum_burst() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let mut a = guest(&mut hv, &mut nb, A);
    // 1000 bytes per ms: a 60 KB frame waits for credit to add up, but
    // goes (the burst is 131072), and the guest is not stuck.
    set_rate(&mut hv, &a, Some("1000,1000"));
    settle(&mut hv, &mut nb);
    a.send_gso(&mut hv, &tcp_frame(false, 60_000), 1448, V4);
    let mut got = 0;
    for _ in 0..200 {
        got += poll(&mut hv, &mut nb, A).len();
        hv.advance_clock(1_000_000);
    }
    assert_eq!(got, 60_000usize.div_ceil(1448));
}

// ----- the fuzz entry -----

#[test]
fn fuzz_corpus_offload_seeds_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/frontend");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("offload-") {
            let data = std::fs::read(&path).unwrap();
            assert_eq!(testkit::fuzz::run(&data), Ok(()), "{name}");
            n += 1;
        }
    }
    assert!(n >= 5, "the offload seeds are there");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// The fuzz entry with most moves drawn from the offload ones.
    #[test]
    fn random_offload_moves_are_harmless(
        moves in proptest::collection::vec((0u8..32, proptest::prelude::any::<[u8; 14]>()), 0..40)
    ) {
        let mut data = Vec::new();
        for (op, args) in moves {
            data.push(if op < 16 { 240 + op } else { op % 10 });
            data.extend_from_slice(&args);
        }
        proptest::prop_assert_eq!(testkit::fuzz::run(&data), Ok(()));
    }
}

#[test]
fn frontend_features_are_read_at_connect() {
    let (mut hv, mut nb) = start(Config::ALL_FEATURES);
    let a = guest_with(&mut hv, &mut nb, A, |f| f.gso = true);
    let vif = nb.vif(id(A)).unwrap();
    assert_eq!(
        (vif.rx_gso(), vif.rx_notify(), vif.queues()),
        ((true, true), true, 1)
    );
    // A frontend without feature-rx-notify is served: aggdom polls.
    let mut b = create_vif(&mut hv, BE, B, 0, "00:16:3e:00:00:06", "10.0.0.6");
    settle(&mut hv, &mut nb);
    b.setup(&mut hv);
    hv.xs_rm_as(B, &format!("{}/feature-rx-notify", b.path))
        .unwrap();
    b.set_state(&mut hv, XenbusState::Connected);
    settle(&mut hv, &mut nb);
    let vif = nb.vif(id(B)).unwrap();
    assert!(vif.is_connected() && !vif.rx_notify());
    assert_eq!(vif.rx_gso(), (false, false));
    drop(a);
}
