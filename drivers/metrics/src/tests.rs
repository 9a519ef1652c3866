use crate::*;
use aggregation::{Config, IdentityId, IpNet, Mode};
use alloc::boxed::Box;
use alloc::string::String;
use core::net::{IpAddr, Ipv4Addr};
use datapath::{Datapath, GuestPort, NicPort};
use nic::{FakeNic, MacAddr, Nic};

fn datapath() -> Datapath {
    let mut dp = Datapath::new(Config::with_mode(Mode::Identity), 4);
    for i in 1..=2u8 {
        dp.add_uplink(
            Box::new(FakeNic::new(MacAddr([2, 0, 0, 0, 0, i]))),
            1000,
            i == 2,
        )
        .unwrap();
    }
    let port: Box<dyn GuestPort> = Box::new(
        NicPort::new(Box::new(FakeNic::new(MacAddr([0x0e, 0, 0, 0, 0, 9]))) as Box<dyn Nic>)
            .unwrap(),
    );
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11));
    let prefix: IpNet = "fd00:1::/64".parse().unwrap();
    dp.add_guest(
        "vm1",
        port,
        MacAddr([0x52, 0x54, 0, 0, 1, 1]),
        &[IpNet::host(ip), prefix],
    )
    .unwrap();
    dp.engine_mut().bind(ip, &[IdentityId(0)]).unwrap();
    dp.engine_mut().pin(IdentityId(1)).unwrap();
    dp.program_all();
    dp
}

/// Every sample line's metric name has HELP and TYPE lines before it, and
/// counters end in `_total`.
#[test]
fn prometheus_text_follows_the_exposition_conventions() {
    let mut dp = datapath();
    let text = render_prometheus(&Snapshot::take(&mut dp, 1234));
    let mut helped = alloc::vec::Vec::new();
    let mut typed: alloc::vec::Vec<(String, String)> = alloc::vec::Vec::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            typed.push((w.next().unwrap().into(), w.next().unwrap().into()));
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("aggdom_"), "{line}");
            assert!(helped.iter().any(|h| h == name), "no HELP for {name}");
            let (_, kind) = typed
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no TYPE for {name}"));
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name} is a {kind}"
            );
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
            samples += 1;
        }
    }
    assert_eq!(helped.len(), typed.len());
    assert!(samples > 50);
    assert!(text.contains("aggdom_identity_pinned{identity=\"1\",mac=\"02:00:00:00:00:02\"} 1"));
    assert!(text.contains("aggdom_identity_holder{identity=\"0\",mac=\"02:00:00:00:00:01\"} 0"));
    assert!(text.contains("aggdom_uptime_seconds 1"));
}

#[test]
fn stats_and_metrics_show_the_same_counts() {
    let mut dp = datapath();
    // One 60-byte IPv4 frame from the guest, bound to identity 0 (uplink 0).
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[2, 0xaa, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x52, 0x54, 0, 0, 1, 1]);
    f[12..14].copy_from_slice(&[8, 0]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[26..30].copy_from_slice(&[10, 0, 0, 11]);
    f[30..34].copy_from_slice(&[8, 8, 8, 8]);
    assert_eq!(Snapshot::take(&mut dp, 0).guests[0].counters.tx_frames, 0);
    // The engine's decision is what counts the frame, as in the datapath.
    let d = dp
        .engine_mut()
        .guest_transmit(1, aggregation::GuestId(0), &mut f);
    assert!(matches!(d, aggregation::TxDecision::Send { .. }));
    let snap = Snapshot::take(&mut dp, 5000);
    let tables = render_tables(&snap);
    let prom = render_prometheus(&snap);
    assert!(
        prom.contains("aggdom_guest_tx_frames_total{guest=\"0\",mac=\"52:54:00:00:01:01\"} 1"),
        "{prom}"
    );
    assert!(prom.contains("aggdom_uplink_tx_frames_total{uplink=\"0\"} 1"));
    let guest_row = tables
        .lines()
        .find(|l| l.starts_with("0      vm1"))
        .expect(&tables);
    let cols: alloc::vec::Vec<&str> = guest_row.split_whitespace().collect();
    assert_eq!(cols[3], "1", "tx_frames column: {guest_row}");
    assert_eq!(cols[4], "60", "tx_bytes column: {guest_row}");
}

#[test]
fn http_serves_metrics_and_refuses_the_rest() {
    let body = || String::from("aggdom_x 1\n");
    assert_eq!(
        http_response(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", body),
        None,
        "incomplete head"
    );
    let ok = http_response(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", body).unwrap();
    assert!(ok.starts_with("HTTP/1.0 200 OK\r\n") && ok.ends_with("\r\n\r\naggdom_x 1\n"));
    assert!(ok.contains("Content-Length: 11\r\n"));
    assert!(http_response(b"GET / HTTP/1.0\n\n", body)
        .unwrap()
        .starts_with("HTTP/1.0 404"));
    assert!(http_response(b"POST /metrics HTTP/1.0\r\n\r\n", body)
        .unwrap()
        .starts_with("HTTP/1.0 405"));
    let huge = alloc::vec![b'a'; MAX_REQUEST];
    assert!(http_response(&huge, body)
        .unwrap()
        .starts_with("HTTP/1.0 431"));
    assert!(http_response(b"\xff\xfe\r\n\r\n", body)
        .unwrap()
        .starts_with("HTTP/1.0 405"));
}

#[test]
fn get_target_is_a_complete_get_s_path() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (
            b"GET /capture?uplink=0 HTTP/1.0\r\n\r\n",
            Some("/capture?uplink=0"),
        ),
        (b"GET /capture\n\n", Some("/capture")),
        (b"GET /capture HTTP/1.0\r\n", None),
        (b"POST /capture HTTP/1.0\r\n\r\n", None),
        (b"GET /\xff HTTP/1.0\r\n\r\n", None),
        (b"GET\r\n\r\n", Some("")),
        (b"", None),
    ];
    for (request, want) in cases {
        assert_eq!(get_target(request), *want, "{request:?}");
    }
    assert_eq!(
        response("400 Bad Request", "text/plain", "no\n"),
        "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n"
    );
}

/// Drops on receive (per uplink and per guest) and of own-stack frames show
/// in the console's tables and in Prometheus alike.
#[test]
fn receive_and_own_drops_show_in_both_renderings() {
    let mut dp = datapath();
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11));
    dp.engine_mut().bind(ip, &[]).unwrap();
    let frame = |dst: [u8; 6]| {
        let mut f = [0u8; 60];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&[2, 0xaa, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[8, 0]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[26..30].copy_from_slice(&[8, 8, 8, 8]);
        f[30..34].copy_from_slice(&[10, 0, 0, 11]);
        f
    };
    let e = dp.engine_mut();
    // To the denied guest, at identity 0 on its holder: denied.
    let mut f = frame([2, 0, 0, 0, 0, 1]);
    e.uplink_receive(1, aggregation::UplinkId(0), &mut f);
    // Identity 1 arriving on uplink 0, which does not hold it: not_holder.
    let mut f = frame([2, 0, 0, 0, 0, 2]);
    e.uplink_receive(1, aggregation::UplinkId(0), &mut f);
    e.uplink_receive(1, aggregation::UplinkId(0), &mut f);
    // An own-stack frame too short to parse.
    e.own_transmit(1, &mut [0u8; 10]);
    let snap = Snapshot::take(&mut dp, 0);
    let tables = render_tables(&snap);
    let prom = render_prometheus(&snap);
    let uplink_row = tables.lines().find(|l| l.starts_with("0      ")).unwrap();
    assert!(
        uplink_row.ends_with("denied=1 not_holder=2"),
        "{uplink_row}"
    );
    assert!(prom.contains("aggdom_uplink_rx_drops_total{uplink=\"0\",reason=\"not_holder\"} 2"));
    assert!(prom.contains("aggdom_uplink_rx_drops_total{uplink=\"0\",reason=\"denied\"} 1"));
    let guest_row = tables
        .lines()
        .find(|l| l.starts_with("0      vm1"))
        .unwrap();
    assert!(guest_row.ends_with(" rx_denied=1"), "{guest_row}");
    assert!(prom.contains("aggdom_guest_rx_drops_total{guest=\"0\",reason=\"denied\"} 1"));
    assert!(tables.contains("own tx drops runt=1"), "{tables}");
    assert!(prom.contains("aggdom_own_tx_drops_total{reason=\"runt\"} 1"));
}

/// IPv6 drops are told apart by reason, and the IPv6 counters of the
/// engine show, in the console's tables and in Prometheus alike.
#[test]
fn ipv6_drops_and_counters_show_in_both_renderings() {
    use aggregation::testkit::{ipv6_packet, link_local, nd_body};
    let mut dp = datapath();
    let vm = MacAddr([0x52, 0x54, 0, 0, 1, 1]);
    let e = dp.engine_mut();
    let g = aggregation::GuestId(0);
    let gw6: [u8; 16] = "fd00:1::fe"
        .parse::<core::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let mut body = [0u8; 40];
    // A router advertisement and a spoofed source, from the guest.
    let k = nd_body(&mut body, 134, [0; 16], &[]);
    let mut f = [0u8; 120];
    let n = ipv6_packet(
        &mut f,
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        vm,
        link_local(1),
        gw6,
        &[],
        58,
        &body[..k],
    );
    e.guest_transmit(1, g, &mut f[..n]);
    let mut spoof = gw6;
    spoof[1] = 2;
    let n = ipv6_packet(
        &mut f,
        MacAddr([2, 0xaa, 0, 0, 0, 1]),
        vm,
        spoof,
        gw6,
        &[],
        17,
        &[0; 8],
    );
    e.guest_transmit(1, g, &mut f[..n]);
    let snap = Snapshot::take(&mut dp, 0);
    let tables = render_tables(&snap);
    let prom = render_prometheus(&snap);
    let guest_row = tables
        .lines()
        .find(|l| l.starts_with("0      vm1"))
        .unwrap();
    assert!(
        guest_row.ends_with(" spoofed_ip6=1 ra_guard=1"),
        "{guest_row}"
    );
    for r in ["spoofed_ip6", "ra_guard"] {
        let want = format!("aggdom_guest_tx_drops_total{{guest=\"0\",reason=\"{r}\"}} 1");
        assert!(prom.contains(&want), "{want}");
    }
    assert!(
        tables.contains("solicitations directed 0; mld out 0;"),
        "{tables}"
    );
    assert!(prom.contains("aggdom_rx_nd_directed_total 0"));
    assert!(prom.contains("aggdom_mld_out_total 0"));
}

/// The /metrics server's own counters (refused clients among them) show in
/// `stats` and in Prometheus alike.
#[test]
fn server_counters_show_in_both_renderings() {
    let mut dp = datapath();
    let mut snap = Snapshot::take(&mut dp, 0);
    assert!(
        !render_tables(&snap).contains("http_"),
        "no own stack, no line"
    );
    let counters = crate::ServerCounters {
        served: 3,
        refused: 2,
        timed_out: 1,
        evicted: 4,
    };
    snap.extra.extend(counters.rows());
    let tables = render_tables(&snap);
    let line = tables
        .lines()
        .find(|l| l.starts_with("domain:"))
        .expect(&tables);
    assert_eq!(
        line,
        "domain: http_requests 3, http_refused 2, http_timeouts 1, http_evicted 4"
    );
    let prom = render_prometheus(&snap);
    for sample in [
        "aggdom_http_requests_total 3",
        "aggdom_http_refused_total 2",
        "aggdom_http_timeouts_total 1",
        "aggdom_http_evicted_total 4",
    ] {
        assert!(prom.lines().any(|l| l == sample), "{sample} in\n{prom}");
    }
}

/// `stats` shows how often the engine saw each uplink's link go down (a
/// soak waits for it before it sends again after pulling a link).
#[test]
fn offload_counters_show_in_both_renderings() {
    let mut dp = datapath();
    let mut snap = Snapshot::take(&mut dp, 0);
    let d = &mut snap.datapath;
    (d.gso_uplink_tso, d.gso_uplink_software, d.gso_guest) = (16339, 2, 3);
    (d.gso_software, d.csum_software, d.offload_errors) = (4, 5, 6);
    let prom = render_prometheus(&snap);
    for (name, v) in [
        ("gso_uplink_tso", 16339),
        ("gso_uplink_software", 2),
        ("gso_guest", 3),
        ("gso_software", 4),
        ("csum_software", 5),
        ("offload_errors", 6),
    ] {
        let line = alloc::format!("aggdom_datapath_{name}_total {v}\n");
        assert!(prom.contains(&line), "{line} in {prom}");
    }
    let tables = render_tables(&snap);
    assert!(
        tables.contains(
            "offload: gso to uplink tso 16339, gso cut for an uplink 2, gso to guests 3, gso cut 4, checksums completed 5, errors 6\n"
        ),
        "{tables}"
    );
}

#[test]
fn stats_show_the_link_downs_the_engine_saw() {
    let mut dp = datapath();
    assert!(
        render_tables(&Snapshot::take(&mut dp, 0)).contains("\nlink downs per uplink 0/0\n"),
        "{}",
        render_tables(&Snapshot::take(&mut dp, 0))
    );
    let up1 = aggregation::UplinkId(1);
    dp.engine_mut().link_changed(1, up1, false);
    dp.engine_mut().link_changed(2, up1, true);
    dp.engine_mut().link_changed(3, up1, false);
    let tables = render_tables(&Snapshot::take(&mut dp, 5));
    assert!(tables.contains("\nlink downs per uplink 0/2\n"), "{tables}");
    let prom = render_prometheus(&Snapshot::take(&mut dp, 5));
    assert!(
        prom.contains("aggdom_uplink_link_downs_total{uplink=\"1\"} 2"),
        "{prom}"
    );
}
