//! The fake behaves as Xen does in the ways backends rely on.
use super::*;
use crate::grant::GrantAddr;
use crate::{parse_directory, FAKE_XS_MAX_IN_FLIGHT};

const ME: DomId = 1;
const FE: DomId = 5;
const OTHER: DomId = 6;

fn hv() -> FakeHypervisor {
    let mut hv = FakeHypervisor::new(ME);
    hv.add_domain(FE);
    hv.add_domain(OTHER);
    hv
}

#[test]
fn grant_copy_checks_like_xen() {
    let mut hv = hv();
    let rw = hv.grant_page(FE, ME, false).unwrap();
    let ro = hv.grant_page(FE, ME, true).unwrap();
    let not_ours = hv.grant_page(FE, OTHER, false).unwrap();
    hv.granted_page(FE, rw).unwrap().write(100, b"hello");

    let mut got = [0u8; 5];
    let mut out = [0u8; 8];
    let mut one = [0u8; 1];
    let mut big = [0u8; 10];
    let mut whole = [0u8; 4097];
    let mut ops = [
        GrantCopy::from_foreign(
            GrantAddr {
                domid: FE,
                gref: rw,
                offset: 100,
            },
            &mut got,
        ),
        GrantCopy::to_foreign(
            b"written!",
            GrantAddr {
                domid: FE,
                gref: ro,
                offset: 0,
            },
        ),
        GrantCopy::from_foreign(
            GrantAddr {
                domid: FE,
                gref: not_ours,
                offset: 0,
            },
            &mut out,
        ),
        GrantCopy::from_foreign(
            GrantAddr {
                domid: FE,
                gref: rw,
                offset: 4090,
            },
            &mut big,
        ),
        GrantCopy::from_foreign(
            GrantAddr {
                domid: 77,
                gref: rw,
                offset: 0,
            },
            &mut one,
        ),
        GrantCopy::from_foreign(
            GrantAddr {
                domid: FE,
                gref: 9999,
                offset: 0,
            },
            &mut whole[..1],
        ),
        GrantCopy::to_foreign(
            b"ok",
            GrantAddr {
                domid: FE,
                gref: rw,
                offset: 4094,
            },
        ),
    ];
    hv.grant_copy(&mut ops);
    let status: Vec<GrantStatus> = ops.iter().map(|o| o.status).collect();
    assert_eq!(
        status,
        [
            GrantStatus::Okay,
            GrantStatus::PermissionDenied,
            GrantStatus::BadGntref,
            GrantStatus::BadCopyArg,
            GrantStatus::BadDomain,
            GrantStatus::BadGntref,
            GrantStatus::Okay,
        ]
    );
    assert_eq!(&got, b"hello");
    let mut tail = [0u8; 2];
    hv.granted_page(FE, rw).unwrap().read(4094, &mut tail);
    assert_eq!(&tail, b"ok");
    let mut op = [GrantCopy::from_foreign(
        GrantAddr {
            domid: FE,
            gref: rw,
            offset: 0,
        },
        &mut whole,
    )];
    hv.grant_copy(&mut op);
    assert_eq!(op[0].status, GrantStatus::BadCopyArg);
    assert_eq!(hv.stats().copy_calls, 2);
}

#[test]
fn mapping_shares_the_page_and_blocks_revocation() {
    let mut hv = hv();
    let gref = hv.grant_page(FE, ME, false).unwrap();
    let m = hv.map_grant(FE, gref, MapAccess::ReadWrite).unwrap();
    m.store_u32(0, 0xdead_beef);
    assert_eq!(hv.granted_page(FE, gref).unwrap().load_u32(0), 0xdead_beef);
    assert!(!hv.revoke_grant(FE, gref));
    assert_eq!(hv.stats().live_maps, 1);
    hv.unmap_grant(m).unwrap();
    assert!(hv.revoke_grant(FE, gref));
    assert_eq!(
        hv.map_grant(FE, gref, MapAccess::ReadOnly).err(),
        Some(GrantStatus::BadGntref)
    );
    let ro = hv.grant_page(FE, ME, true).unwrap();
    assert_eq!(
        hv.map_grant(FE, ro, MapAccess::ReadWrite).err(),
        Some(GrantStatus::PermissionDenied)
    );
}

#[test]
fn event_channels_bind_send_close() {
    let mut hv = hv();
    let fe_port = hv.alloc_unbound_as(FE, ME).unwrap();
    // Only the domain the port was allocated for may bind.
    assert_eq!(
        hv.bind_interdomain_as(OTHER, FE, fe_port),
        Err(XenError::Inval)
    );
    let mine = hv.bind_interdomain(FE, fe_port).unwrap();
    assert!(hv.take_pending(mine), "bind leaves the local port pending");
    assert!(!hv.take_pending(mine));
    hv.send(mine).unwrap();
    assert!(hv.take_pending_as(FE, fe_port));
    hv.send_as(FE, fe_port).unwrap();
    assert!(hv.take_pending(mine));
    assert_eq!(
        hv.bind_interdomain(FE, fe_port),
        Err(XenError::Inval),
        "already bound"
    );
    hv.close(mine).unwrap();
    assert!(!hv.is_bound(FE, fe_port, ME));
    // The frontend's port waits for us again: rebinding works.
    let again = hv.bind_interdomain(FE, fe_port).unwrap();
    assert!(hv.is_bound(FE, fe_port, ME));
    hv.restart_self();
    assert_eq!(hv.open_ports(ME), 0);
    assert!(!hv.is_bound(FE, fe_port, ME));
    assert_eq!(hv.send(again), Err(XenError::Inval));
    hv.bind_interdomain(FE, fe_port).unwrap();
}

/// One request answered at once (the fake's default).
fn rq(hv: &mut FakeHypervisor, op: XsOp<'_>) -> XsReply {
    let id = hv.submit(op).unwrap();
    hv.take_reply(id).expect("answered at once")
}

fn text(r: XsReply) -> String {
    String::from_utf8(r.unwrap()).unwrap()
}

#[test]
fn xenstore_nodes_and_permissions() {
    let mut hv = hv();
    rq(
        &mut hv,
        XsOp::Write("/local/domain/1/backend/vif/5/0/state", b"2"),
    )
    .unwrap();
    assert_eq!(text(rq(&mut hv, XsOp::Read("backend/vif/5/0/state"))), "2");
    let dir = rq(&mut hv, XsOp::Directory("/local/domain/1/backend/vif")).unwrap();
    assert_eq!(parse_directory(&dir), ["5"]);
    assert_eq!(
        rq(
            &mut hv,
            XsOp::Write("/local/domain/5/device/vif/0/state", b"4")
        ),
        Err(XenError::Acces)
    );
    hv.xs_write_as(FE, "/local/domain/5/device/vif/0/state", "4")
        .unwrap();
    assert_eq!(
        hv.xs_write_as(FE, "/local/domain/1/x", "1"),
        Err(XenError::Acces)
    );
    assert_eq!(
        rq(&mut hv, XsOp::Read("/local/domain/5/device/vif/0/nothing")),
        Err(XenError::NoEnt)
    );
    rq(&mut hv, XsOp::Rm("/local/domain/1/backend/vif/5")).unwrap();
    let dir = rq(&mut hv, XsOp::Directory("/local/domain/1/backend/vif")).unwrap();
    assert_eq!(parse_directory(&dir), Vec::<String>::new());
    rq(&mut hv, XsOp::Rm("/local/domain/1/backend/vif/5")).unwrap();
    assert_eq!(
        rq(&mut hv, XsOp::Rm("/local/domain/1/a/b")),
        Err(XenError::NoEnt)
    );
    assert_eq!(rq(&mut hv, XsOp::Read("/bad//path")), Err(XenError::Inval));
}

#[test]
fn watches_fire_for_subtree_and_removal() {
    let mut hv = hv();
    let watch = |hv: &mut FakeHypervisor, path, token| rq(hv, XsOp::Watch { path, token });
    watch(&mut hv, "/local/domain/1/backend/vif", "be").unwrap();
    assert_eq!(
        watch(&mut hv, "/local/domain/1/backend/vif", "be"),
        Err(XenError::Exist)
    );
    let ev = hv.poll_watch().unwrap();
    assert_eq!(
        (ev.path.as_str(), ev.token.as_str()),
        ("/local/domain/1/backend/vif", "be")
    );
    hv.xs_write_as(0, "/local/domain/1/backend/vif/5/0/state", "1")
        .unwrap();
    assert_eq!(
        hv.poll_watch().unwrap().path,
        "/local/domain/1/backend/vif/5/0/state"
    );
    hv.xs_write_as(0, "/local/domain/1/backend/vifx", "1")
        .unwrap();
    assert_eq!(
        hv.poll_watch(),
        None,
        "a sibling with a common prefix is not below"
    );
    watch(&mut hv, "/local/domain/5/device/vif/0/state", "fe").unwrap();
    let _ = hv.poll_watch();
    hv.xs_rm_as(0, "/local/domain/5").unwrap();
    assert_eq!(
        hv.poll_watch().unwrap().path,
        "/local/domain/5/device/vif/0/state"
    );
    rq(
        &mut hv,
        XsOp::Unwatch {
            path: "/local/domain/5/device/vif/0/state",
            token: "fe",
        },
    )
    .unwrap();
    hv.xs_rm_as(0, "/local/domain/1/backend/vif/5").unwrap();
    assert_eq!(hv.poll_watch().unwrap().token, "be");
    assert_eq!(hv.poll_watch(), None);
}

#[test]
fn held_requests_are_answered_in_order_when_xenstored_runs() {
    let mut hv = hv();
    hv.hold_xenstore(true);
    let w = hv.submit(XsOp::Write("/local/domain/1/a", b"1")).unwrap();
    let r = hv.submit(XsOp::Read("/local/domain/1/a")).unwrap();
    let gone = hv.submit(XsOp::Write("/local/domain/1/b", b"2")).unwrap();
    hv.forget(gone);
    assert_eq!(hv.take_reply(w), None, "a mute dom0 answers nothing");
    assert_eq!(hv.xs_get("/local/domain/1/a"), None, "nor applies it");
    assert_eq!(hv.xs_unanswered(), 3);
    assert_eq!(hv.run_xenstored(1), 1);
    assert_eq!(hv.take_reply(w), Some(Ok(Vec::new())));
    assert_eq!(hv.take_reply(w), None, "a reply is handed out once");
    assert_eq!(hv.run_xenstored(10), 2);
    assert_eq!(
        hv.take_reply(r),
        Some(Ok(b"1".to_vec())),
        "the write sent first landed first"
    );
    assert_eq!(hv.take_reply(gone), None, "a forgotten reply is dropped");
    assert_eq!(hv.xs_get("/local/domain/1/b").as_deref(), Some("2"));
}

#[test]
fn a_full_request_queue_is_busy_not_unbounded() {
    let mut hv = hv();
    hv.hold_xenstore(true);
    for _ in 0..FAKE_XS_MAX_IN_FLIGHT {
        hv.submit(XsOp::Read("/local/domain/1")).unwrap();
    }
    assert_eq!(
        hv.submit(XsOp::Read("/local/domain/1")),
        Err(XenError::Busy)
    );
    hv.run_xenstored(1);
    assert_eq!(hv.xs_unanswered(), FAKE_XS_MAX_IN_FLIGHT - 1);
}
