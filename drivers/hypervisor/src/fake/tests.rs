//! The fake behaves as Xen does in the ways backends rely on.
use super::*;
use crate::grant::GrantAddr;
use crate::transact;

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

#[test]
fn xenstore_nodes_and_permissions() {
    let mut hv = hv();
    let t = Transaction::NONE;
    hv.write_str(t, "/local/domain/1/backend/vif/5/0/state", "2")
        .unwrap();
    assert_eq!(hv.read_string(t, "backend/vif/5/0/state").unwrap(), "2");
    assert_eq!(
        hv.read_u32(t, "/local/domain/1/backend/vif/5/0/state")
            .unwrap(),
        2
    );
    assert_eq!(
        hv.directory(t, "/local/domain/1/backend/vif").unwrap(),
        ["5"]
    );
    assert_eq!(
        hv.write_str(t, "/local/domain/5/device/vif/0/state", "4"),
        Err(XenError::Acces)
    );
    hv.xs_write_as(FE, "/local/domain/5/device/vif/0/state", "4")
        .unwrap();
    assert_eq!(
        hv.xs_write_as(FE, "/local/domain/1/x", "1"),
        Err(XenError::Acces)
    );
    assert_eq!(
        hv.read(t, "/local/domain/5/device/vif/0/nothing"),
        Err(XenError::NoEnt)
    );
    hv.rm(t, "/local/domain/1/backend/vif/5").unwrap();
    assert_eq!(
        hv.directory(t, "/local/domain/1/backend/vif").unwrap(),
        Vec::<String>::new()
    );
    hv.rm(t, "/local/domain/1/backend/vif/5").unwrap();
    assert_eq!(hv.rm(t, "/local/domain/1/a/b"), Err(XenError::NoEnt));
    assert_eq!(hv.read(t, "/bad//path"), Err(XenError::Inval));
}

#[test]
fn watches_fire_for_subtree_and_removal() {
    let mut hv = hv();
    hv.watch("/local/domain/1/backend/vif", "be").unwrap();
    assert_eq!(
        hv.watch("/local/domain/1/backend/vif", "be"),
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
    hv.watch("/local/domain/5/device/vif/0/state", "fe")
        .unwrap();
    let _ = hv.poll_watch();
    hv.xs_rm_as(0, "/local/domain/5").unwrap();
    assert_eq!(
        hv.poll_watch().unwrap().path,
        "/local/domain/5/device/vif/0/state"
    );
    hv.unwatch("/local/domain/5/device/vif/0/state", "fe")
        .unwrap();
    hv.xs_rm_as(0, "/local/domain/1/backend/vif/5").unwrap();
    assert_eq!(hv.poll_watch().unwrap().token, "be");
    assert_eq!(hv.poll_watch(), None);
}

#[test]
fn transactions_conflict_and_transact_retries() {
    let mut hv = hv();
    let t = hv.transaction_start().unwrap();
    hv.write_str(t, "/local/domain/1/a", "1").unwrap();
    assert_eq!(
        hv.xs_get("/local/domain/1/a"),
        None,
        "not visible before commit"
    );
    hv.xs_write_as(0, "/local/domain/0/x", "1").unwrap();
    assert_eq!(hv.transaction_end(t, true), Err(XenError::Again));
    assert_eq!(hv.xs_get("/local/domain/1/a"), None);

    hv.fail_next_commits(2);
    let mut runs = 0;
    let v = transact(&mut hv, 5, |xs, t| {
        runs += 1;
        xs.write_str(t, "/local/domain/1/a", "2")?;
        xs.read_u32(t, "/local/domain/1/a")
    })
    .unwrap();
    assert_eq!((v, runs), (2, 3));
    assert_eq!(hv.xs_get("/local/domain/1/a").as_deref(), Some("2"));

    hv.fail_next_commits(10);
    assert_eq!(
        transact(&mut hv, 3, |xs, t| xs.write_str(t, "b", "1")),
        Err(XenError::Again)
    );
    let err = transact(&mut hv, 3, |xs, t| xs.read(t, "/nowhere").map(|_| ()));
    assert_eq!(err, Err(XenError::NoEnt));
}
