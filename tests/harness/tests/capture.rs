//! Packet capture and the commands aggctl sends (issue 14), on the real
//! kernel in QEMU: a capture of a guest port read back as a pcap file over
//! `GET /capture` on the own IP holds exactly the frames the guest sent,
//! both when the console started it and when the request's query did.
//!
//! Layout as in e2e.rs (`rig`): two uplinks, one guest (`10.0.0.11`), the
//! own IP `10.0.0.2`, remote host 0 behind the learning switch.

use std::thread::sleep;
use std::time::Duration;

use aggdom_harness::frame::Ipv4Ends;
use aggdom_harness::rig::{
    eventually, guest_mac, guest_udp, remote, uplink_mac, Layout, Net, OWN_IP,
};
use aggdom_harness::{pcap, tcp, Machine};

const T: Duration = Duration::from_secs(30);

/// Runs a console command that must succeed; returns its reply.
fn ok(m: &mut Machine, cmd: &str) -> String {
    let reply = m.command(cmd).unwrap();
    assert!(
        !reply.lines().any(|l| l.starts_with("error:")),
        "{cmd:?} failed: {reply}"
    );
    reply
}

/// Remote host 0's TCP ends towards the own IP (reached at identity 0).
fn to_own_ip() -> Ipv4Ends {
    let r = remote(0);
    Ipv4Ends {
        src_mac: r.mac,
        dst_mac: uplink_mac(0),
        src_ip: r.ip,
        dst_ip: OWN_IP,
    }
}

/// `GET <path>` from remote host 0: the response's head and body.
fn get(m: &Machine, net: &Net, path: &str, src_port: u16) -> (String, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    let raw = tcp::request(
        &net.link(m, 0),
        to_own_ip(),
        src_port,
        80,
        request.as_bytes(),
        T,
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    (
        String::from_utf8_lossy(&raw[..at]).into_owned(),
        raw[at + 4..].to_vec(),
    )
}

fn boot() -> (Machine, Layout, Net) {
    let layout = Layout::new(2, 1).with("ip=10.0.0.2/24");
    let m = layout.boot().unwrap();
    let net = Net::new(2, 1);
    net.announce(&m, 0).unwrap();
    (m, layout, net)
}

#[test]
fn a_console_capture_reads_back_over_http_as_the_frames_sent() {
    let (mut m, layout, net) = boot();
    let reply = ok(
        &mut m,
        &format!("capture guest 0 5 ethertype=ipv4 mac={}", guest_mac(0)),
    );
    assert!(reply.contains("running"), "{reply}");
    let sent: Vec<Vec<u8>> = (0..5)
        .map(|t| guest_udp(0, remote(0), 0xc0 + t, 100 + 10 * t as usize))
        .collect();
    for f in &sent {
        m.send_frame(layout.port(0), f).unwrap();
        sleep(Duration::from_millis(20));
    }
    let status = eventually(T, || {
        let s = m.command("capture").unwrap();
        s.contains("count reached").then_some(s)
    })
    .expect("the capture ends after 5 frames");
    assert!(status.contains("kept 5 matched 5 dropped 0"), "{status}");

    let (head, body) = get(&m, &net, "/capture", 41000);
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(head.contains("application/vnd.tcpdump.pcap"), "{head}");
    let frames = pcap::parse(&body).unwrap();
    let data: Vec<Vec<u8>> = frames.iter().map(|c| c.data.clone()).collect();
    assert_eq!(
        data, sent,
        "the pcap holds the frames as the guest sent them"
    );
    assert!(frames
        .windows(2)
        .all(|w| (w[0].ts_sec, w[0].ts_usec) <= (w[1].ts_sec, w[1].ts_usec)));

    // The counters in stats; `capture read` gives the same file in base64.
    let stats = ok(&mut m, "stats");
    assert!(
        stats.contains("capture_frames 5, capture_dropped 0"),
        "{stats}"
    );
    let read = ok(&mut m, "capture read 0");
    let mut lines = read.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap();
    assert!(
        first.starts_with(&format!("pcap {} bytes", body.len())),
        "{first}"
    );
    let b64: String = lines.map(str::trim).collect();
    assert_eq!(decode_base64(&b64), body);
}

#[test]
fn a_capture_started_by_the_query_streams_until_its_count() {
    let (mut m, layout, net) = boot();
    let sent: Vec<Vec<u8>> = (0..3)
        .map(|t| guest_udp(0, remote(0), 0xd0 + t, 200))
        .collect();
    let (head, body) = std::thread::scope(|s| {
        let getter = s.spawn(|| get(&m, &net, "/capture?guest=0&count=3&ip=10.0.0.11", 41001));
        // The capture starts when the request arrives; the guest's frames
        // come after (a frame sent before it is not in it).
        sleep(Duration::from_secs(3));
        for f in &sent {
            m.send_frame(layout.port(0), f).unwrap();
            sleep(Duration::from_millis(50));
        }
        getter.join().unwrap()
    });
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let data: Vec<Vec<u8>> = pcap::parse(&body)
        .unwrap()
        .into_iter()
        .map(|c| c.data)
        .collect();
    assert_eq!(data, sent);
    let status = ok(&mut m, "capture");
    assert!(
        status.contains("capture guest 0 3 ip=10.0.0.11: count reached"),
        "{status}"
    );

    // A bad query is a 400 with the reason, and nothing changes.
    let (head, body) = get(&m, &net, "/capture?guest=0&count=0", 41002);
    assert!(head.starts_with("HTTP/1.0 400"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("count must be"));
    // A network client cannot start a capture that never ends.
    let (head, body) = get(&m, &net, "/capture?guest=0", 41003);
    assert!(head.starts_with("HTTP/1.0 400"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("count= or seconds="));
    // Console-side errors are one line.
    let reply = m.command("capture uplink 9").unwrap();
    assert!(
        reply.contains("error: no uplink 9 (usage: capture"),
        "{reply}"
    );
}

/// The status command and stats --json, as aggctl runs them.
#[test]
fn status_and_stats_json_answer() {
    let (mut m, _layout, _net) = boot();
    let status = ok(&mut m, "status");
    assert!(status.contains("mode identity, 3 NICs"), "{status}");
    assert!(status.contains("capture: none yet"), "{status}");
    let json = ok(&mut m, "stats --json");
    let line = json
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("one JSON line");
    let v = aggdom_harness::json::Json::parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v.get("mode").and_then(|m| m.as_str()), Some("identity"));
    assert_eq!(
        v.get("uplinks").and_then(|u| u.as_array()).map(|u| u.len()),
        Some(2)
    );
    assert!(v
        .get("samples")
        .and_then(|s| s.as_array())
        .is_some_and(|s| s.len() > 20));
}

/// `capture read`'s base64, decoded as aggctl decodes it.
fn decode_base64(text: &str) -> Vec<u8> {
    aggdom_ctl::base64::decode(text).expect("capture read gives valid base64")
}
