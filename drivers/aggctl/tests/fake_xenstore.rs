//! aggctl, the real binary, against a fake xenstore (a directory, through
//! `AGGCTL_XENSTORE_DIR`) and a fake aggdom answering through the same
//! protocol server the kernel runs (`aggdom_ctl::Server`).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aggdom_ctl::{base64, Server};
use hypervisor::{RequestId, WatchEvent, XenError, XenStore, XsOp, XsReply};

const AGGDOM: u32 = 7;

/// xenstore as the directory layout aggctl's `DirStore` uses.
struct FsStore {
    root: PathBuf,
    /// The domain whose request directory is watched.
    domid: u32,
    next: u32,
    replies: BTreeMap<u32, XsReply>,
    seen: BTreeSet<String>,
    events: Vec<WatchEvent>,
}

impl FsStore {
    fn dir(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Watch events for request nodes that appeared (xenstored would fire
    /// them on the write).
    fn scan(&mut self) {
        let dir = format!("{}/request", aggdom_ctl::ctl_dir(self.domid));
        let Ok(entries) = std::fs::read_dir(self.dir(&dir)) else {
            return;
        };
        for e in entries.flatten() {
            let path = format!("{dir}/{}", e.file_name().to_string_lossy());
            if e.path().join(".value").exists() && self.seen.insert(path.clone()) {
                self.events.push(WatchEvent {
                    path,
                    token: aggdom_ctl::WATCH_TOKEN.into(),
                });
            }
        }
    }
}

impl XenStore for FsStore {
    fn submit(&mut self, op: XsOp<'_>) -> Result<RequestId, XenError> {
        let reply = match op {
            XsOp::Read(p) => std::fs::read(self.dir(p).join(".value")).map_err(|_| XenError::NoEnt),
            XsOp::Write(p, v) => {
                let d = self.dir(p);
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(".tmp"), v).unwrap();
                std::fs::rename(d.join(".tmp"), d.join(".value")).unwrap();
                Ok(Vec::new())
            }
            XsOp::Rm(p) => {
                let _ = std::fs::remove_dir_all(self.dir(p));
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        };
        self.next += 1;
        self.replies.insert(self.next, reply);
        Ok(RequestId(self.next))
    }
    fn take_reply(&mut self, id: RequestId) -> Option<XsReply> {
        self.replies.remove(&id.0)
    }
    fn forget(&mut self, id: RequestId) {
        self.replies.remove(&id.0);
    }
    fn poll_watch(&mut self) -> Option<WatchEvent> {
        self.events.pop()
    }
}

/// The pcap the fake aggdom's capture holds.
fn fake_pcap() -> Vec<u8> {
    (0..2500u32).map(|i| (i * 7) as u8).collect()
}

/// The fake aggdom's command table.
fn run(line: &str) -> Result<String, String> {
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["status"] => Ok("aggdom 0.1.0, up 1.000 s\n".into()),
        ["stats", "--json"] => Ok("{\"mode\":\"identity\"}\n".into()),
        ["bindings"] => Ok("ip guest identities\n10.0.0.11 0 0\n".into()),
        ["nics"] => Ok("n".repeat(10_000)),
        ["bind", "10.0.0.99", _] => Err("no guest has IP 10.0.0.99 (usage: bind ...)".into()),
        ["capture", "guest", "0", "3"] => Ok("capture guest 0 3: running, ...\n".into()),
        ["capture"] => Ok("capture guest 0 3: count reached, frames kept 3\n".into()),
        ["capture", "read", off] => {
            let file = fake_pcap();
            let off: usize = off.parse().unwrap();
            let piece = &file[off.min(file.len())..(off + 1000).min(file.len())];
            Ok(format!(
                "pcap {} bytes, {} from {off}\n{}\n",
                file.len(),
                piece.len(),
                base64::encode(piece)
            ))
        }
        _ => Err(format!("unknown command '{}'", words[0])),
    }
}

/// A fake aggdom serving until dropped.
struct FakeAggdom {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeAggdom {
    fn start(root: &Path) -> FakeAggdom {
        FakeAggdom::start_as(root, AGGDOM)
    }

    /// Serving as domain `domid`. Requests already written are never
    /// reported, as with xenstored: a new watch fires for the watched
    /// directory itself, not for what is in it.
    fn start_as(root: &Path, domid: u32) -> FakeAggdom {
        let stop = Arc::new(AtomicBool::new(false));
        let mut xs = FsStore {
            root: root.to_path_buf(),
            domid,
            next: 0,
            replies: BTreeMap::new(),
            seen: BTreeSet::new(),
            events: Vec::new(),
        };
        xs.scan();
        xs.events.clear();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut server = Server::start(&mut xs, domid).unwrap();
            while !flag.load(Ordering::Relaxed) {
                xs.scan();
                while let Some(ev) = xs.poll_watch() {
                    server.on_watch(&ev.path, &ev.token);
                }
                server.pump(&mut xs);
                while let Some((id, line)) = server.next_request() {
                    server.answer(id, run(&line));
                }
                server.pump(&mut xs);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        FakeAggdom {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeAggdom {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().map(|t| t.join());
    }
}

fn store_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aggctl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    write(&d, &format!("/local/domain/{AGGDOM}/name"), "aggdom");
    write(&d, "/local/domain/0/name", "Domain-0");
    d
}

fn write(root: &Path, path: &str, value: &str) {
    let d = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(".value"), value).unwrap();
}

fn aggctl(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aggctl"))
        .env("AGGCTL_XENSTORE_DIR", root)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn commands_answers_errors_and_json() {
    let root = store_dir("commands");
    let _aggdom = FakeAggdom::start(&root);

    let out = aggctl(&root, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "aggdom 0.1.0, up 1.000 s\n");

    // By domid too; aggdom's error is one line and exit status 1.
    let out = aggctl(&root, &["-d", "7", "bind", "10.0.0.99", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "aggctl: error: no guest has IP 10.0.0.99 (usage: bind ...)\n"
    );

    let out = aggctl(&root, &["stats", "--json"]);
    assert_eq!(text(&out.stdout), "{\"mode\":\"identity\"}\n");
    let out = aggctl(&root, &["--json", "stats"]);
    assert_eq!(text(&out.stdout), "{\"mode\":\"identity\"}\n");
    let out = aggctl(&root, &["--json", "bindings"]);
    assert_eq!(
        text(&out.stdout),
        "{\"ok\":true,\"output\":\"ip guest identities\\n10.0.0.11 0 0\\n\"}\n"
    );
    let out = aggctl(&root, &["--json", "frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "{\"ok\":false,\"error\":\"unknown command 'frobnicate'\"}\n"
    );

    // Output in several pieces comes back whole.
    let out = aggctl(&root, &["nics"]);
    assert_eq!(text(&out.stdout), "n".repeat(10_000));

    // Replies are collected: nothing is left under reply/ or request/.
    let ctl = root.join(aggdom_ctl::ctl_dir(AGGDOM).trim_start_matches('/'));
    for sub in ["request", "reply"] {
        let left = std::fs::read_dir(ctl.join(sub)).map_or(0, |d| d.count());
        assert_eq!(left, 0, "{sub} left behind");
    }
}

#[test]
fn a_capture_is_written_as_the_pcap_aggdom_holds() {
    let root = store_dir("capture");
    let _aggdom = FakeAggdom::start(&root);
    let file = root.join("out.pcap");
    let out = aggctl(
        &root,
        &["capture", "guest", "0", "3", "-w", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), fake_pcap());
    assert!(text(&out.stdout).contains("wrote 2500 bytes"));
}

#[test]
fn no_aggdom_no_answer_and_no_such_domain() {
    let root = store_dir("silent");
    let out = aggctl(&root, &["--timeout", "1", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no answer from aggdom within 1 s"),
        "{}",
        text(&out.stderr)
    );
    // The unanswered request was withdrawn.
    let req = root.join(format!("local/domain/{AGGDOM}/data/aggctl/request"));
    assert_eq!(std::fs::read_dir(req).map_or(0, |d| d.count()), 0);
    let out = aggctl(&root, &["-d", "nosuch", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no domain named 'nosuch'"));
    let out = aggctl(&root, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("usage: aggctl"));
}

#[test]
fn restart_plans_from_the_backend_keys() {
    let root = store_dir("restart");
    let be = format!("/local/domain/{AGGDOM}/backend/vif");
    write(&root, "/local/domain/11/name", "guest1");
    write(&root, &format!("{be}/11/0/mac"), "00:16:3e:00:00:11");
    write(&root, &format!("{be}/11/0/ip"), "10.0.0.11");
    write(&root, &format!("{be}/11/0/rate"), "125000,50000");
    write(&root, &format!("{be}/11/0/mtu"), "1500");
    write(
        &root,
        &format!("/local/domain/{AGGDOM}/aggdom/config"),
        "bind=10.0.0.11:0",
    );
    let out = aggctl(
        &root,
        &["restart", "--config", "/etc/xen/aggdom.cfg", "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "xl destroy aggdom\n\
         xl create -p /etc/xen/aggdom.cfg\n\
         xenstore-write /local/domain/$(xl domid <aggdom>)/aggdom/config 'bind=10.0.0.11:0'\n\
         xl unpause aggdom\n\
         (wait until the new aggdom answers aggctl status)\n\
         xl network-detach guest1 0\n\
         xl network-attach guest1 backend=aggdom mac=00:16:3e:00:00:11 ip=10.0.0.11 rate=2500000B/s@50000us mtu=1500\n"
    );
    let out = aggctl(&root, &["restart"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config"));
}

/// `restart` carried out, with a fake `xl` on PATH that plays the
/// toolstack in the fake xenstore: the new aggdom (domain 8) starts
/// serving only after aggctl wrote its first `status` request, as a real
/// one booting does, and that request is never reported to it; aggctl
/// must ask again, then reattach the vif.
#[test]
fn restart_waits_for_the_new_aggdom_then_reattaches() {
    use std::os::unix::fs::PermissionsExt;
    let root = store_dir("restart-run");
    let be = format!("/local/domain/{AGGDOM}/backend/vif");
    write(&root, "/local/domain/11/name", "guest1");
    write(&root, &format!("{be}/11/0/mac"), "00:16:3e:00:00:11");
    write(&root, &format!("{be}/11/0/ip"), "10.0.0.11");
    write(
        &root,
        &format!("/local/domain/{AGGDOM}/aggdom/config"),
        "bind=10.0.0.11:0",
    );
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let xl = bin.join("xl");
    std::fs::write(
        &xl,
        format!(
            "#!/bin/sh\n\
             R='{root}'\n\
             echo \"xl $*\" >> \"$R/xl.log\"\n\
             case $1 in\n\
             destroy) rm -rf \"$R/local/domain/{AGGDOM}\";;\n\
             create) mkdir -p \"$R/local/domain/8/name\" && printf aggdom > \"$R/local/domain/8/name/.value\";;\n\
             unpause) touch \"$R/unpaused\";;\n\
             esac\n",
            root = root.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&xl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new(env!("CARGO_BIN_EXE_aggctl"))
        .env("AGGCTL_XENSTORE_DIR", &root)
        .env("PATH", path)
        .args(["restart", "--config", "/etc/xen/aggdom.cfg"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // aggdom "boots" once aggctl's first request is there.
    let requests = root.join(format!(
        "{}/request",
        aggdom_ctl::ctl_dir(8).trim_start_matches('/')
    ));
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&requests).map_or(0, |d| d.count()) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no request from aggctl"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _aggdom = FakeAggdom::start_as(&root, 8);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Every step printed, as it ran.
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with("xl destroy aggdom\n") && printed.ends_with("ip=10.0.0.11\n"),
        "{printed}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("xl.log")).unwrap(),
        "xl destroy aggdom\n\
         xl create -p /etc/xen/aggdom.cfg\n\
         xl unpause aggdom\n\
         xl network-detach guest1 0\n\
         xl network-attach guest1 backend=aggdom mac=00:16:3e:00:00:11 ip=10.0.0.11\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("local/domain/8/aggdom/config/.value")).unwrap(),
        "bind=10.0.0.11:0"
    );
}

/// `--console`: the same commands over aggdom's serial console on a
/// socket (QEMU's `-serial tcp:...,server`), framed by the prompt.
#[test]
fn the_console_transport_frames_by_the_prompt() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let console = std::thread::spawn(move || {
        for s in listener.incoming().take(2) {
            let mut s = s.unwrap();
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).map_or(false, |n| n == 1) {
                match b[0] {
                    3 => s.write_all(b"^C\r\naggdom> ").unwrap(),
                    b'\r' => {
                        let l = String::from_utf8_lossy(&line).into_owned();
                        line.clear();
                        let reply = match l.as_str() {
                            "status" => "aggdom 0.1.0, up 1.000 s\r\n".to_string(),
                            other => format!("error: unknown command '{other}' (try 'help')\r\n"),
                        };
                        s.write_all(format!("{l}\r\n{reply}aggdom> ").as_bytes())
                            .unwrap();
                    }
                    c => line.push(c),
                }
            }
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_aggctl"))
        .args(["--console", &addr, "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "aggdom 0.1.0, up 1.000 s\n");
    let out = Command::new(env!("CARGO_BIN_EXE_aggctl"))
        .args(["--console", &addr, "bad"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "aggctl: error: unknown command 'bad' (try 'help')\n"
    );
    console.join().unwrap();
}
