//! The harness itself against real QEMU (any bootable aggdom ELF): frames
//! reach every NIC's netdev and come back, pcaps are written, QMP works,
//! machines run side by side, and no QEMU outlives its `Machine`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use aggdom_harness::frame::{self, Eth};
use aggdom_harness::json::Json;
use aggdom_harness::{pcap, MacAddr, Machine, Nic, NicKind};

const T: Duration = Duration::from_secs(10);

fn four_nics() -> Vec<Nic> {
    use NicKind::*;
    [VirtioNet, E1000, VirtioNetModern, E1000]
        .into_iter()
        .enumerate()
        .map(|(i, k)| Nic::new(k, MacAddr([0x52, 0x54, 0x00, 0xb0, 0x00, i as u8 + 1])))
        .collect()
}

/// EtherType of the RARP frames QEMU's `announce-self` sends.
const ETHERTYPE_RARP: u16 = 0x8035;

fn announce(m: &mut Machine) {
    let args = Json::object([
        ("initial", Json::from(10)),
        ("max", Json::from(10)),
        ("rounds", Json::from(1)),
        ("step", Json::from(10)),
    ]);
    m.qmp_execute("announce-self", Some(args)).unwrap();
}

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still show.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn frames_leave_through_the_right_nic_socket() {
    // QEMU itself sends a RARP from every NIC's MAC on `announce-self`
    // (none of these NICs negotiated guest announce), whatever the kernel
    // does: each must arrive on that NIC's socket only.
    let nics = four_nics();
    let mut m = Machine::builder().nics(nics.clone()).boot().unwrap();
    announce(&mut m);
    for (i, n) in nics.iter().enumerate() {
        let got = m
            .recv_where(T, |r| {
                Eth::parse(&r.data).is_some_and(|e| e.ethertype == ETHERTYPE_RARP && e.src == n.mac)
            })
            .unwrap_or_else(|| panic!("no RARP from NIC {i}"));
        assert_eq!(got.nic, i, "RARP from {} arrived on NIC {}", n.mac, got.nic);
        assert_eq!(Eth::parse(&got.data).unwrap().dst, MacAddr::BROADCAST);
    }
    assert!(m.nic_counters(0).rx_frames >= 1);
}

#[test]
fn sent_frames_reach_each_nic_and_show_in_its_pcap() {
    let pcaps = std::env::temp_dir().join(format!("aggdom-pcap-test-{}", std::process::id()));
    let nics = four_nics();
    let m = Machine::builder()
        .nics(nics.clone())
        .pcap_dir(&pcaps)
        .boot()
        .unwrap();
    let host = MacAddr::local(1);
    for (i, n) in nics.iter().enumerate() {
        m.send_frame(i, &frame::tagged(n.mac, host, 0x1000 + i as u64, 100))
            .unwrap();
        let ends = frame::Ipv4Ends {
            src_mac: host,
            dst_mac: n.mac,
            src_ip: Ipv4Addr::new(10, 9, 0, 1),
            dst_ip: Ipv4Addr::new(10, 9, 0, 2),
        };
        m.send_frame(i, &frame::udp(ends, 7, 9, b"discard me"))
            .unwrap();
        assert_eq!(m.nic_counters(i).tx_frames, 2);
        assert_eq!(m.nic_counters(i).tx_bytes, 100 + 60);
    }
    assert!(
        m.send_frame(nics.len(), &[0; 60]).is_err(),
        "NIC past the end accepted"
    );
    // filter-dump writes synchronously as frames pass the netdev.
    let deadline = Instant::now() + T;
    for i in 0..nics.len() {
        let path = m.pcap_path(i).unwrap();
        loop {
            let tags: Vec<u64> = pcap::read(&path)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| frame::tag_of(&c.data))
                .collect();
            if tags.contains(&(0x1000 + i as u64)) {
                assert_eq!(
                    tags,
                    [0x1000 + i as u64],
                    "pcap of NIC {i} holds another NIC's frame"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tagged frame never reached {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(m);
    std::fs::remove_dir_all(&pcaps).unwrap();
}

/// Whether a RARP from `mac` arrives (after `announce-self`) within `wait`.
fn rarp_from(m: &Machine, mac: MacAddr, wait: Duration) -> bool {
    m.recv_where(wait, |r| {
        Eth::parse(&r.data).is_some_and(|e| e.ethertype == ETHERTYPE_RARP && e.src == mac)
    })
    .is_some()
}

#[test]
fn qmp_commands_and_set_link() {
    let nics = four_nics();
    let mut m = Machine::builder().nics(nics.clone()).boot().unwrap();
    let status = m.qmp(r#"{"execute": "query-status"}"#).unwrap();
    assert_eq!(status.get("status").and_then(Json::as_str), Some("running"));
    // set_link takes effect: QEMU sends nothing from a NIC whose link is
    // down, so its announce RARP is missing while the others' come.
    m.set_link(1, false).unwrap();
    announce(&mut m);
    for i in [0, 2, 3] {
        assert!(rarp_from(&m, nics[i].mac, T), "no RARP from NIC {i}");
    }
    assert!(
        !rarp_from(&m, nics[1].mac, Duration::from_millis(1500)),
        "NIC 1 sent with its link down"
    );
    m.set_link(1, true).unwrap();
    announce(&mut m);
    assert!(
        rarp_from(&m, nics[1].mac, T),
        "no RARP from NIC 1 after its link came back"
    );
    assert!(m.set_link(9, false).is_err());
    let e = m.qmp(r#"{"execute": "no-such-command"}"#).unwrap_err();
    assert!(e.to_string().contains("no-such-command"), "{e}");
    // The NICs carry the ids the harness gave them.
    let f = m
        .qmp(r#"{"execute": "query-rx-filter", "arguments": {"name": "nic0"}}"#)
        .unwrap();
    assert_eq!(
        f.pointer(&["0", "main-mac"]).and_then(Json::as_str),
        Some("52:54:00:b0:00:01")
    );
}

#[test]
fn machines_run_side_by_side_without_port_clashes() {
    let handles: Vec<_> = (0..4)
        .map(|k| {
            std::thread::spawn(move || {
                let nics: Vec<Nic> = (0..4)
                    .map(|i| Nic::new(NicKind::VirtioNet, MacAddr([0x52, 0x54, 0, 0xc0, k, i])))
                    .collect();
                let mut m = Machine::builder().nics(nics).boot().unwrap();
                announce(&mut m);
                // Every machine hears only its own NICs.
                for i in 0..4u8 {
                    let mac = MacAddr([0x52, 0x54, 0, 0xc0, k, i]);
                    let r = m
                        .recv_where(T, |r| Eth::parse(&r.data).is_some_and(|e| e.src == mac))
                        .unwrap_or_else(|| panic!("machine {k}: nothing from {mac}"));
                    assert_eq!(r.nic, usize::from(i));
                }
                let strangers = m.drain_all().into_iter().filter(|r| {
                    Eth::parse(&r.data)
                        .is_some_and(|e| e.ethertype == ETHERTYPE_RARP && e.src.0[4] != k)
                });
                assert_eq!(strangers.count(), 0, "machine {k} heard another machine");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn drop_kills_qemu_and_removes_its_temp_dir() {
    let m = Machine::builder().nics(four_nics()).start().unwrap();
    let (pid, dir) = (m.pid(), m.temp_dir().to_path_buf());
    assert!(alive(pid) && dir.exists());
    drop(m);
    assert!(!alive(pid), "QEMU {pid} survived drop");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// Set in the re-executed test process of `qemu_dies_with_the_test_process`.
const ORPHAN_ENV: &str = "AGGDOM_HARNESS_ORPHAN_CHILD";

#[test]
fn qemu_dies_with_the_test_process() {
    if std::env::var_os(ORPHAN_ENV).is_some() {
        // The child: start a machine on a thread that then ends (the
        // machine outlives it), report QEMU's pid, and wait to be killed.
        let m = std::thread::spawn(|| Machine::builder().start().unwrap())
            .join()
            .unwrap();
        println!("QEMU_PID={} DIR={}", m.pid(), m.temp_dir().display());
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "qemu_dies_with_the_test_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ORPHAN_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| {
            l.ok().and_then(|l| {
                l.find("QEMU_PID=")
                    .map(|at| l[at + "QEMU_PID=".len()..].to_string())
            })
        })
        .expect("the child test process never reported QEMU's pid");
    // (The test runner may print "test ... " on the same line first.)
    let (pid, dir) = line.split_once(" DIR=").unwrap();
    let pid: u32 = pid.parse().unwrap();
    // The machine survived the end of the thread that started it...
    assert!(
        alive(pid),
        "QEMU {pid} died with the thread that started it"
    );
    // ...and dies with the process, which gets no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + T;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "QEMU {pid} outlived the killed test process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exits_are_reported_with_status_and_console_tail() {
    let mut m = Machine::builder().start().unwrap();
    m.wait_prompt().unwrap();
    m.send_line("shutdown").unwrap();
    let status = m.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    // Waiting on an exited machine fails at once with a useful message:
    // the exit status and the console's tail.
    let e = m.wait_for("never", Duration::from_secs(30)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("QEMU exited")
            && msg.contains(&status.to_string())
            && msg.contains("aggdom 0.1.0 booting"),
        "{msg}"
    );
    assert!(m.command("version").is_err());
}

#[test]
fn a_port_qemu_cannot_bind_is_recognised_and_retried() {
    // An extra netdev on a port we hold makes every start lose the bind
    // race; the harness must see that, retry, and then say so.
    let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let e = Machine::builder()
        .arg("-netdev")
        .arg(format!(
            "dgram,id=busy,local.type=inet,local.host=127.0.0.1,local.port={port},\
             remote.type=inet,remote.host=127.0.0.1,remote.port=9"
        ))
        .start()
        .err()
        .expect("QEMU started on a taken port");
    let msg = e.to_string();
    assert!(
        msg.contains("could not bind its UDP ports") && msg.contains("Address already in use"),
        "{msg}"
    );
}
