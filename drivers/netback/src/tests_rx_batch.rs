//! Guest RX in batches against the fake Xen: one grant copy and at most
//! one notification per batch (per queue), and every frame in it checked,
//! dropped and counted as it would be alone.
use alloc::vec;
use alloc::vec::Vec;

use hypervisor::{DomId, FakeHypervisor, FakeStats, XenbusState};
use proptest::prelude::*;

use crate::segment::tests::{ipv4_ok, tcp_ok};
use crate::segment::{Csum, Gso, GsoKind, Offload, Plan};
use crate::testkit::{self, create_vif, settle, tcp_frame, vif_id as id, FakeFrontend};
use crate::wire::*;
use crate::*;

const BE: DomId = 1;
const A: DomId = 5;

/// A guest whose netfront `prepare` sets up before it connects, under a
/// netback with `config`.
fn start_with(
    config: Config,
    prepare: impl FnOnce(&mut FakeFrontend),
) -> (FakeHypervisor, Netback<FakeHypervisor>, FakeFrontend) {
    let (mut hv, mut nb) = testkit::start_netback(BE, config);
    let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
    settle(&mut hv, &mut nb);
    prepare(&mut f);
    f.connect(&mut hv);
    settle(&mut hv, &mut nb);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    (hv, nb, f)
}

fn start(config: Config) -> (FakeHypervisor, Netback<FakeHypervisor>, FakeFrontend) {
    start_with(config, |_| {})
}

/// A frame of `len` bytes, numbered `n` in its first payload bytes so a
/// reordering shows.
fn numbered(len: usize, n: u16) -> Vec<u8> {
    let mut f = vec![n as u8 ^ 0x5a; len];
    if len >= 16 {
        f[..6].copy_from_slice(&[0, 0x16, 0x3e, 0, 0, 5]);
        f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental
        f[14..16].copy_from_slice(&n.to_be_bytes());
    }
    f
}

/// Delivers `frames` as one batch; the results of each push and of the
/// batch.
fn batch(
    hv: &mut FakeHypervisor,
    nb: &mut Netback<FakeHypervisor>,
    frames: &[(Vec<u8>, Offload)],
) -> (Vec<Result<(), RxError>>, RxDelivered) {
    let vif = nb.vif_mut(id(A)).unwrap();
    let mut b = vif.rx_batch(hv);
    let pushed = frames.iter().map(|(f, off)| b.push(f, *off)).collect();
    (pushed, b.finish())
}

fn plain(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, Offload)> {
    frames.iter().map(|f| (f.clone(), Offload::NONE)).collect()
}

/// The fake's counts since `before`: grant-copy calls and event sends.
fn calls(hv: &FakeHypervisor, before: FakeStats) -> (u64, u64) {
    let now = hv.stats();
    (now.copy_calls - before.copy_calls, now.sends - before.sends)
}

#[test]
fn a_batch_of_frames_is_one_copy_and_one_notification() {
    let (mut hv, mut nb, mut f) = start(Config::DEFAULT);
    f.post_rx(&mut hv, 48);
    let _ = f.take_notification(&mut hv);
    let frames: Vec<Vec<u8>> = (0..48).map(|n| numbered(60 + n * 30, n as u16)).collect();
    let before = hv.stats();
    let (pushed, done) = batch(&mut hv, &mut nb, &plain(&frames));
    assert!(pushed.iter().all(Result::is_ok));
    assert_eq!(
        done,
        RxDelivered {
            frames: 48,
            guest_faults: 0
        }
    );
    assert_eq!(calls(&hv, before), (1, 1), "one copy, one notification");
    assert_eq!(hv.stats().copy_ops - before.copy_ops, 48);
    assert!(f.take_notification(&mut hv));
    let got: Vec<Vec<u8>> = f.rx_frames().into_iter().map(Result::unwrap).collect();
    assert_eq!(got, frames, "byte for byte, in order");
    let c = nb.vif(id(A)).unwrap().counters();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(
        (c.rx_frames, c.rx_bytes, c.rx_batches, c.notifies),
        (48, bytes as u64, 1, 1)
    );

    // The same frames one at a time: a copy and a notification each
    // (netfront asks for one after every response it reads).
    f.post_rx(&mut hv, 48);
    let before = hv.stats();
    for frame in &frames {
        let vif = nb.vif_mut(id(A)).unwrap();
        vif.deliver_rx(&mut hv, frame).unwrap();
        assert_eq!(f.rx_frames(), [Ok(frame.clone())]);
    }
    assert_eq!(calls(&hv, before), (48, 48));
}

#[test]
fn a_batch_larger_than_the_stage_is_copied_in_as_few_calls_as_fit() {
    let (mut hv, mut nb, mut f) = start(Config::DEFAULT);
    f.post_rx(&mut hv, 200);
    let frames: Vec<Vec<u8>> = (0..150).map(|n| numbered(1514, n)).collect();
    let before = hv.stats();
    let (pushed, done) = batch(&mut hv, &mut nb, &plain(&frames));
    assert!(pushed.iter().all(Result::is_ok));
    assert_eq!(done.frames, 150);
    let (copies, sends) = calls(&hv, before);
    assert_eq!(copies, 150usize.div_ceil(RX_BATCH_OPS) as u64);
    assert_eq!(sends, 1, "still one push and one notification");
    let got: Vec<Vec<u8>> = f.rx_frames().into_iter().map(Result::unwrap).collect();
    assert_eq!(got, frames);
    assert_eq!(nb.vif(id(A)).unwrap().counters().rx_batches, copies);
}

#[test]
fn a_batch_larger_than_the_posted_buffers_delivers_what_fits() {
    let config = Config {
        max_frame_len: 9018,
        ..Config::DEFAULT
    };
    let (mut hv, mut nb, mut f) = start(config);
    f.post_rx(&mut hv, 5);
    let frames: Vec<Vec<u8>> = (0..8).map(|n| numbered(100 + usize::from(n), n)).collect();
    let before = hv.stats();
    let (pushed, done) = batch(&mut hv, &mut nb, &plain(&frames));
    assert_eq!(pushed[..5], [Ok(()); 5]);
    assert_eq!(pushed[5..], [Err(RxError::Full); 3]);
    assert_eq!(done.frames, 5);
    assert_eq!(calls(&hv, before), (1, 1));
    let got: Vec<Vec<u8>> = f.rx_frames().into_iter().map(Result::unwrap).collect();
    assert_eq!(got, frames[..5]);
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!((c.rx_frames, c.rx_drops(RxDrop::RingFull)), (5, 3));

    // Each frame is checked on its own: a 3-slot frame that does not fit
    // the 2 buffers left does not stop a 1-slot frame after it.
    f.post_rx(&mut hv, 3);
    let frames = [numbered(60, 1), numbered(9018, 2), numbered(60, 3)];
    let (pushed, _) = batch(&mut hv, &mut nb, &plain(&frames));
    assert_eq!(pushed, [Ok(()), Err(RxError::Full), Ok(())]);
    assert_eq!(
        f.rx_frames(),
        [Ok(frames[0].clone()), Ok(frames[2].clone())]
    );
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!((c.rx_frames, c.rx_drops(RxDrop::RingFull)), (7, 4));
}

#[test]
fn a_bad_grant_in_the_middle_fails_only_its_frame() {
    let config = Config {
        max_frame_len: 9018,
        ..Config::DEFAULT
    };
    let (mut hv, mut nb, mut f) = start(config);
    let good = f.post_rx(&mut hv, 2);
    // A buffer the guest never granted, then a read-only one in the
    // middle of a 3-slot frame.
    f.push_rx_slot(
        &RxRequest {
            id: 900,
            gref: good[1] + 500,
        }
        .encode(),
    );
    f.publish_rx();
    f.post_rx(&mut hv, 1);
    let ro = hv.grant_page(A, BE, true).unwrap();
    f.push_rx_slot(&RxRequest { id: 901, gref: ro }.encode());
    f.publish_rx();
    f.post_rx(&mut hv, 2);
    let frames = [
        numbered(60, 0),
        numbered(1514, 1),
        numbered(700, 2),  // the ungranted buffer
        numbered(9018, 3), // its second slot read-only
        numbered(80, 4),
    ];
    let before = hv.stats();
    let (pushed, done) = batch(&mut hv, &mut nb, &plain(&frames));
    assert!(pushed.iter().all(Result::is_ok), "known only at the copy");
    assert_eq!(
        done,
        RxDelivered {
            frames: 3,
            guest_faults: 2
        }
    );
    assert_eq!(calls(&hv, before), (1, 1));
    assert_eq!(
        f.rx_frames(),
        [
            Ok(frames[0].clone()),
            Ok(frames[1].clone()),
            Err(NETIF_RSP_ERROR),
            Err(NETIF_RSP_ERROR),
            Ok(frames[4].clone()),
        ]
    );
    let vif = nb.vif(id(A)).unwrap();
    let c = vif.counters();
    assert_eq!((c.rx_frames, c.rx_drops(RxDrop::BadGrant)), (3, 2));
    assert!(vif.is_connected());

    // Alone, the frame with the bad grant says so.
    f.push_rx_slot(
        &RxRequest {
            id: 902,
            gref: good[1] + 500,
        }
        .encode(),
    );
    f.publish_rx();
    let vif = nb.vif_mut(id(A)).unwrap();
    assert_eq!(
        vif.deliver_rx(&mut hv, &frames[2]),
        Err(RxError::GuestFault)
    );
}

/// A normalised TCP/IPv4 super-frame of `payload` bytes and its offload.
fn super_frame(payload: usize) -> (Vec<u8>, Offload) {
    let mut f = tcp_frame(false, payload, 0x77);
    let gso = Gso {
        size: 1448,
        kind: GsoKind::TcpV4,
    };
    let plan = Plan::new(&f, gso, 1514).unwrap();
    plan.normalise(&mut f);
    let off = Offload {
        gso: Some(gso),
        csum: plan.csum(),
    };
    (f, off)
}

#[test]
fn a_gso_frame_for_a_frontend_without_gso_is_cut_inside_the_batch() {
    let (mut hv, mut nb, mut f) = start_with(Config::ALL_FEATURES, |f| f.no_csum = true);
    f.post_rx(&mut hv, 40);
    let (big, gso_off) = super_frame(10_000);
    let segments = 10_000usize.div_ceil(1448);
    // A partial checksum this frontend wants completed.
    let mut partial = tcp_frame(false, 1000, 0x66);
    let at = crate::checksum::locate(&partial, crate::checksum::Lengths::Ip).unwrap();
    crate::checksum::fill_partial(&mut partial, &at);
    let partial_off = Offload {
        gso: None,
        csum: Csum::Partial {
            start: 34,
            offset: 16,
        },
    };
    let frames = vec![
        (numbered(60, 1), Offload::NONE),
        (big.clone(), gso_off),
        (partial.clone(), partial_off),
        (numbered(61, 2), Offload::NONE),
    ];
    let before = hv.stats();
    let (pushed, done) = batch(&mut hv, &mut nb, &frames);
    assert!(pushed.iter().all(Result::is_ok));
    assert_eq!(done.frames, segments as u64 + 3);
    assert_eq!(calls(&hv, before), (1, 1));

    let got = f.rx_frames_meta();
    assert_eq!(got.len(), segments + 3);
    assert_eq!(got[0].data, Ok(frames[0].0.clone()));
    let mut data = Vec::new();
    for s in &got[1..=segments] {
        let bytes = s.data.as_ref().unwrap();
        assert!(bytes.len() <= 1514 && tcp_ok(bytes) && ipv4_ok(bytes));
        assert_eq!(s.flags, NETRXF_DATA_VALIDATED);
        data.extend_from_slice(&bytes[54..]);
    }
    assert_eq!(data, &big[54..], "the segments carry the frame, in order");
    let completed = got[segments + 1].data.as_ref().unwrap();
    assert!(tcp_ok(completed), "checksum completed in the staged copy");
    assert_eq!(completed[54..], partial[54..]);
    assert_eq!(got[segments + 1].flags, NETRXF_DATA_VALIDATED);
    assert_eq!(got[segments + 2].data, Ok(frames[3].0.clone()));
    let c = nb.vif(id(A)).unwrap().counters();
    assert_eq!((c.rx_segmented, c.rx_gso), (1, 0));
}

#[test]
fn a_gso_frame_goes_whole_in_a_batch_with_its_extra() {
    let (mut hv, mut nb, mut f) = start_with(Config::ALL_FEATURES, |f| f.gso = true);
    f.post_rx(&mut hv, 40);
    let (big, off) = super_frame(30_000);
    let frames = vec![
        (numbered(60, 1), Offload::NONE),
        (big.clone(), off),
        (numbered(60, 2), Offload::NONE),
    ];
    let before = hv.stats();
    let (pushed, _) = batch(&mut hv, &mut nb, &frames);
    assert!(pushed.iter().all(Result::is_ok));
    assert_eq!(calls(&hv, before), (1, 1));
    let got = f.rx_frames_meta();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].data.as_deref(), Ok(&big[..]));
    assert_eq!(got[1].extras, [ExtraInfo::new_gso(1448, 1)]);
    assert_eq!(got[2].data, Ok(frames[2].0.clone()));
    assert_eq!(nb.vif(id(A)).unwrap().counters().rx_gso, 1);
}

#[test]
fn a_frontend_that_asks_for_no_notification_gets_none() {
    let (mut hv, mut nb, mut f) = start(Config::DEFAULT);
    f.post_rx(&mut hv, 16);
    let _ = f.take_notification(&mut hv);
    let frames: Vec<Vec<u8>> = (0..4).map(|n| numbered(60, n)).collect();
    batch(&mut hv, &mut nb, &plain(&frames));
    assert!(f.take_notification(&mut hv), "rsp_event 1 is in the batch");
    assert_eq!(f.rx_frames().len(), 4);
    // Polling, netfront wants no event before response 100.
    f.set_rx_rsp_event(100);
    let before = hv.stats();
    let (_, done) = batch(&mut hv, &mut nb, &plain(&frames));
    assert_eq!(done.frames, 4);
    assert_eq!(calls(&hv, before), (1, 0), "copied, not notified");
    assert!(!f.take_notification(&mut hv));
    assert_eq!(f.rx_frames().len(), 4, "the responses are published");
    // rsp_event inside the next batch: one notification for it.
    f.set_rx_rsp_event(10);
    let before = hv.stats();
    batch(&mut hv, &mut nb, &plain(&frames));
    assert_eq!(calls(&hv, before), (1, 1));
    assert!(f.take_notification(&mut hv));
    assert_eq!(nb.vif(id(A)).unwrap().counters().notifies, 2);
}

/// A TCP flow's frame, by source port.
fn flow(port: u16, n: u8) -> Vec<u8> {
    let mut f = tcp_frame(false, 100, n);
    f[34..36].copy_from_slice(&port.to_be_bytes());
    f
}

#[test]
fn a_batch_over_several_queues_is_one_copy_and_a_notification_per_queue() {
    let (mut hv, mut nb, mut f) = start_with(Config::ALL_FEATURES, |f| {
        f.num_queues = 2;
        f.split = true;
    });
    for q in 0..2 {
        f.use_queue(q);
        f.post_rx(&mut hv, 64);
        let _ = f.take_queue_notification(&mut hv, q, true);
    }
    let frames: Vec<Vec<u8>> = (0..3)
        .flat_map(|n| (0..16).map(move |port| flow(3000 + port, n)))
        .collect();
    let before = hv.stats();
    let (pushed, done) = batch(&mut hv, &mut nb, &plain(&frames));
    assert!(pushed.iter().all(Result::is_ok));
    assert_eq!(done.frames, 48);
    assert_eq!(
        calls(&hv, before),
        (1, 2),
        "one copy; each queue woken once"
    );
    let mut got = Vec::new();
    for q in 0..2 {
        assert!(f.take_queue_notification(&mut hv, q, true), "queue {q}");
        f.use_queue(q);
        got.extend(f.rx_frames().into_iter().map(Result::unwrap));
    }
    assert_eq!(got.len(), 48);
    // Every flow's frames in the order they were pushed.
    for port in 0..16u16 {
        let mine: Vec<&Vec<u8>> = got
            .iter()
            .filter(|g| g[34..36] == (3000 + port).to_be_bytes())
            .collect();
        let want: Vec<&Vec<u8>> = frames
            .iter()
            .filter(|g| g[34..36] == (3000 + port).to_be_bytes())
            .collect();
        assert_eq!(mine, want, "flow {port}");
    }
}

#[test]
fn a_ring_violation_in_a_batch_delivers_the_frames_before_and_disconnects() {
    let (mut hv, mut nb, mut f) = start(Config::DEFAULT);
    f.post_rx(&mut hv, 8);
    let frames: Vec<Vec<u8>> = (0..5).map(|n| numbered(60, n)).collect();
    let vif = nb.vif_mut(id(A)).unwrap();
    let mut b = vif.rx_batch(&mut hv);
    for frame in &frames[..3] {
        b.push(frame, Offload::NONE).unwrap();
    }
    // The frontend claims more requests than the ring holds.
    f.set_rx_req_prod(5000);
    assert_eq!(
        b.push(&frames[3], Offload::NONE),
        Err(RxError::NotConnected)
    );
    assert_eq!(
        b.push(&frames[4], Offload::NONE),
        Err(RxError::NotConnected)
    );
    assert_eq!(b.finish().frames, 3);
    assert_eq!(
        f.rx_frames(),
        frames[..3].iter().cloned().map(Ok).collect::<Vec<_>>()
    );
    let vif = nb.vif(id(A)).unwrap();
    let c = vif.counters();
    assert_eq!(c.fatal(Fatal::RingOverflow), 1);
    assert_eq!((c.rx_frames, c.rx_drops(RxDrop::NotConnected)), (3, 2));
    assert!(!vif.is_connected());
    assert_eq!(f.backend_state(&hv), XenbusState::Closing);
}

#[test]
fn a_batch_dropped_unfinished_still_answers_what_it_took() {
    let (mut hv, mut nb, mut f) = start(Config::DEFAULT);
    f.post_rx(&mut hv, 2);
    let vif = nb.vif_mut(id(A)).unwrap();
    {
        let mut b = vif.rx_batch(&mut hv);
        b.push(&numbered(60, 7), Offload::NONE).unwrap();
    }
    assert_eq!(f.rx_frames(), [Ok(numbered(60, 7))]);
    assert!(f.take_notification(&mut hv));
}

#[test]
fn an_empty_batch_makes_no_hypercall() {
    let (mut hv, mut nb, _f) = start(Config::DEFAULT);
    let before = hv.stats();
    let (_, done) = batch(&mut hv, &mut nb, &[]);
    assert_eq!(done, RxDelivered::default());
    assert_eq!(calls(&hv, before), (0, 0));
}

// ----- batched or alone, the same -----

/// One frame of a random batch: its length, and what it carries.
#[derive(Clone, Debug)]
enum Item {
    Plain(usize),
    Partial(usize),
    Gso(usize),
}

fn an_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (0usize..=9100).prop_map(Item::Plain),
        2 => (0usize..3000).prop_map(Item::Partial),
        1 => (0usize..20_000).prop_map(Item::Gso),
    ]
}

fn item_frame(item: &Item, n: u16) -> (Vec<u8>, Offload) {
    match *item {
        Item::Plain(len) => (numbered(len, n), Offload::NONE),
        Item::Partial(payload) => {
            let mut f = tcp_frame(n % 2 == 1, payload, n as u8);
            let at = crate::checksum::locate(&f, crate::checksum::Lengths::Ip).unwrap();
            crate::checksum::fill_partial(&mut f, &at);
            let start = at.l4 as u16;
            (
                f,
                Offload {
                    gso: None,
                    csum: Csum::Partial { start, offset: 16 },
                },
            )
        }
        Item::Gso(payload) => super_frame(payload.max(1)),
    }
}

/// What a frontend and netback are left with after `frames` were
/// delivered, in one batch or one by one: the frames the guest read, the
/// results known at push, the counters (but batches and notifications).
fn deliver_all(
    frames: &[(Vec<u8>, Offload)],
    posted: usize,
    bad: Option<usize>,
    (gso, no_csum): (bool, bool),
    batched: bool,
) -> (Vec<testkit::RxFrame>, Vec<Result<(), RxError>>, VifCounters) {
    let config = Config {
        max_frame_len: 9018,
        ..Config::ALL_FEATURES
    };
    let (mut hv, mut nb, mut f) = start_with(config, |f| {
        f.gso = gso;
        f.no_csum = no_csum;
    });
    for i in 0..posted {
        if Some(i) == bad {
            f.push_rx_slot(
                &RxRequest {
                    id: 999,
                    gref: 9999,
                }
                .encode(),
            );
            f.publish_rx();
        } else {
            f.post_rx(&mut hv, 1);
        }
    }
    let results = if batched {
        batch(&mut hv, &mut nb, frames).0
    } else {
        let vif = nb.vif_mut(id(A)).unwrap();
        frames
            .iter()
            .map(
                |(fr, off)| match vif.deliver_rx_offload(&mut hv, fr, *off) {
                    // A batch learns of a bad grant only at its copy.
                    Err(RxError::GuestFault) => Ok(()),
                    r => r,
                },
            )
            .collect()
    };
    let mut c = nb.vif(id(A)).unwrap().counters().clone();
    c.rx_batches = 0;
    c.notifies = 0;
    (f.rx_frames_meta(), results, c)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn a_batch_delivers_what_its_frames_would_alone(
        items in proptest::collection::vec(an_item(), 0..24),
        posted in 0usize..80,
        bad in proptest::option::of(0usize..80),
        features in any::<(bool, bool)>(),
    ) {
        let frames: Vec<(Vec<u8>, Offload)> = items
            .iter()
            .enumerate()
            .map(|(n, it)| item_frame(it, n as u16))
            .collect();
        let alone = deliver_all(&frames, posted, bad, features, false);
        let together = deliver_all(&frames, posted, bad, features, true);
        prop_assert_eq!(&alone.0, &together.0, "what the guest read");
        prop_assert_eq!(&alone.1, &together.1, "results");
        prop_assert_eq!(&alone.2, &together.2, "counters");
    }
}
