//! xl conventions (issue 14, item 4): the toolstack's `mtu` honoured or
//! refused, never overwritten; `hotplug-status` and the `feature-*` keys
//! written as Linux netback's hotplug path leaves them.
use hypervisor::{DomId, FakeHypervisor, XenbusState};

use crate::testkit::{create_vif, settle, FakeFrontend};
use crate::*;

const BE: DomId = 1;
const A: DomId = 5;

/// A vif whose toolstack wrote `mtu` (or none), connected by its frontend.
fn vif_with_mtu(mtu: Option<&str>) -> (FakeHypervisor, Netback<FakeHypervisor>, FakeFrontend) {
    let mut hv = FakeHypervisor::new(BE);
    let mut nb = Netback::new(&mut hv, Config::DEFAULT).unwrap();
    let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
    if let Some(m) = mtu {
        hv.xs_write_as(0, &format!("{}/mtu", f.backend_path), m)
            .unwrap();
    }
    settle(&mut hv, &mut nb);
    f.connect(&mut hv);
    settle(&mut hv, &mut nb);
    (hv, nb, f)
}

fn key(hv: &FakeHypervisor, f: &FakeFrontend, k: &str) -> Option<String> {
    hv.xs_get(&format!("{}/{k}", f.backend_path))
}

#[test]
fn an_mtu_up_to_what_aggdom_carries_is_kept_and_served() {
    for mtu in ["1500", "1400", "68"] {
        let (hv, nb, f) = vif_with_mtu(Some(mtu));
        assert_eq!(f.backend_state(&hv), XenbusState::Connected, "mtu {mtu}");
        assert!(nb
            .vif(VifId {
                frontend: A,
                handle: 0
            })
            .unwrap()
            .is_connected());
        assert_eq!(
            key(&hv, &f, "mtu").as_deref(),
            Some(mtu),
            "left as xl wrote it"
        );
    }
}

#[test]
fn without_an_mtu_the_largest_carried_is_written() {
    let (hv, _nb, f) = vif_with_mtu(None);
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    assert_eq!(key(&hv, &f, "mtu").as_deref(), Some("1500"));
}

#[test]
fn a_larger_or_malformed_mtu_is_refused_with_an_error_node() {
    let cases = [
        (
            "9000",
            "22 mtu 9000 is not supported (this backend carries 68..=1500)",
        ),
        (
            "20",
            "22 mtu 20 is not supported (this backend carries 68..=1500)",
        ),
        ("jumbo", "22 reading mtu: missing or malformed"),
    ];
    for (mtu, error) in cases {
        let (hv, nb, f) = vif_with_mtu(Some(mtu));
        let vif = nb
            .vif(VifId {
                frontend: A,
                handle: 0,
            })
            .unwrap();
        assert!(!vif.is_connected(), "mtu {mtu}");
        assert_eq!(f.backend_state(&hv), XenbusState::Closing, "mtu {mtu}");
        assert_eq!(
            hv.xs_get(&format!("/local/domain/{BE}/error/backend/vif/{A}/0/error"))
                .as_deref(),
            Some(error)
        );
        assert_eq!(key(&hv, &f, "mtu").as_deref(), Some(mtu), "not overwritten");
    }
}

/// What Linux netback and its hotplug script leave in the backend
/// directory, aggdom writes too (there is no script: `script=` is ignored).
#[test]
fn hotplug_status_and_features_are_written_as_linux_netback_does() {
    let (hv, _nb, f) = vif_with_mtu(None);
    assert_eq!(key(&hv, &f, "hotplug-status").as_deref(), Some("connected"));
    for (k, v) in [
        ("feature-sg", "1"),
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-ipv6-csum-offload", "1"),
    ] {
        assert_eq!(key(&hv, &f, k).as_deref(), Some(v), "{k}");
    }
    for k in [
        "feature-gso-tcpv4",
        "feature-gso-tcpv6",
        "feature-split-event-channels",
    ] {
        assert!(key(&hv, &f, k).is_some(), "{k} advertised either way");
    }
}

/// Issue 14, item 3: aggdom starts and finds a backend directory a previous
/// aggdom left (state Connected, features, hotplug-status) whose frontend
/// is Connected with its rings: it takes the vif over and serves it, with
/// no step from the guest. Netback here never saw the vif before.
#[test]
fn a_new_netback_takes_over_a_connected_vif_a_previous_aggdom_left() {
    let mut hv = FakeHypervisor::new(BE);
    let mut f = create_vif(&mut hv, BE, A, 0, "00:16:3e:00:00:05", "10.0.0.5");
    // What the previous aggdom and the guest left in xenstore.
    for (k, v) in [
        ("state", "4"),
        ("hotplug-status", "connected"),
        ("feature-sg", "1"),
        ("feature-rx-copy", "1"),
        ("mtu", "1500"),
    ] {
        hv.xs_write_as(0, &format!("{}/{k}", f.backend_path), v)
            .unwrap();
    }
    f.connect(&mut hv);

    let mut nb = Netback::new(&mut hv, Config::DEFAULT).unwrap();
    settle(&mut hv, &mut nb);
    let id = VifId {
        frontend: A,
        handle: 0,
    };
    assert!(nb.vif(id).unwrap().is_connected());
    assert_eq!(f.backend_state(&hv), XenbusState::Connected);
    let mut frame = alloc::vec![0u8; 60];
    frame[6..12].copy_from_slice(&[0, 0x16, 0x3e, 0, 0, 5]);
    f.send(&mut hv, &frame, 4096, 0);
    let mut got = 0;
    nb.vif_mut(id).unwrap().poll_tx(&mut hv, |_| got += 1);
    assert_eq!(got, 1, "the guest's frame is served");
    f.post_rx(&mut hv, 1);
    nb.vif_mut(id).unwrap().deliver_rx(&mut hv, &frame).unwrap();
    assert_eq!(f.rx_frames(), [Ok(frame)]);
}
