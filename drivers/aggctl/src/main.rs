//! aggctl: aggdom's control tool in dom0 (issue 14). Every command is
//! one of aggdom's console commands, sent through xenstore (the protocol
//! is in `aggdom_ctl` and README, "aggctl"), or over aggdom's console on a
//! socket with `--console` (QEMU). Errors are one line on stderr and exit
//! status 1 (aggdom refused) or 2 (usage, no answer, xenstore).
mod client;
mod restart;
mod store;

use client::{CallError, ConsoleClient, Transport, XsClient};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use store::Store;

const USAGE: &str =
    "usage: aggctl [-d DOMAIN] [--console HOST:PORT|unix:PATH] [--json] [--timeout SECS] COMMAND
  status | nics | guests | bindings | stats [--json] | mode | version | mem | uptime | xen
  bind IP IDS|none|auto | pin ID | unpin ID | exclusive UPLINK on|off | swap A B | rebalance
  capture [uplink|guest|nic N [COUNT|SECSs] [mac=..] [ip=..] [ethertype=..]] [-w FILE.pcap]
  capture stop | capture read -w FILE.pcap
  restart --config AGGDOM.cfg [--dry-run]
DOMAIN is aggdom's name or domid (default: aggdom).";

struct Options {
    domain: String,
    console: Option<String>,
    json: bool,
    timeout: Duration,
    write: Option<String>,
    config: Option<String>,
    dry_run: bool,
    words: Vec<String>,
}

fn parse_args(args: Vec<String>) -> Result<Options, String> {
    let mut o = Options {
        domain: "aggdom".into(),
        console: None,
        json: false,
        timeout: Duration::from_secs(15),
        write: None,
        config: None,
        dry_run: false,
        words: Vec::new(),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "-d" | "--domain" => o.domain = value("-d")?,
            "--console" => o.console = Some(value("--console")?),
            "--json" => o.json = true,
            "--timeout" => {
                let s = value("--timeout")?;
                o.timeout =
                    Duration::from_secs(s.parse().map_err(|_| format!("'{s}' is not seconds"))?);
            }
            "-w" => o.write = Some(value("-w")?),
            "--config" => o.config = Some(value("--config")?),
            "--dry-run" => o.dry_run = true,
            "-h" | "--help" => return Err(String::new()),
            _ => o.words.push(a),
        }
    }
    if o.words.is_empty() {
        return Err(String::new());
    }
    Ok(o)
}

/// aggdom's domid: the number given, or the domain with that name.
fn domid(store: &dyn Store, domain: &str) -> Result<u32, String> {
    if let Ok(id) = domain.parse() {
        return Ok(id);
    }
    let ids = store.list("/local/domain").map_err(|e| e.to_string())?;
    for id in ids {
        let name = store
            .read(&format!("/local/domain/{id}/name"))
            .ok()
            .flatten();
        if name.as_deref() == Some(domain.as_bytes()) {
            return id
                .parse()
                .map_err(|_| format!("domain '{domain}' has a strange id '{id}'"));
        }
    }
    Err(format!(
        "no domain named '{domain}' (give its domid with -d)"
    ))
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

enum Failure {
    Refused(String),
    Other(String),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Refused(s) => Failure::Refused(s),
            CallError::Transport(s) => Failure::Other(s),
        }
    }
}

/// `capture ... -w FILE`: starts the capture (if words follow), waits for
/// it to end (or `--timeout`, then stops it), and writes the pcap file.
fn capture_to_file(
    t: &mut dyn Transport,
    words: &[String],
    file: &str,
    wait: Duration,
) -> Result<String, Failure> {
    let start = words.iter().skip(1).all(|w| w != "read");
    if start && words.len() > 1 {
        t.call(&words.join(" "))?;
        let deadline = Instant::now() + wait;
        loop {
            let status = t.call("capture")?;
            if !status.contains(": running,") {
                break;
            }
            if Instant::now() >= deadline {
                t.call("capture stop")?;
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let mut file_bytes = Vec::new();
    loop {
        let reply = t.call(&format!("capture read {}", file_bytes.len()))?;
        let mut lines = reply.lines();
        let head = lines.next().unwrap_or_default();
        // "pcap <total> bytes, <n> from <offset>"
        let total: usize = head
            .strip_prefix("pcap ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Failure::Other(format!("unexpected capture read reply: {head}")))?;
        let b64: String = lines.map(str::trim).collect();
        let piece = aggdom_ctl::base64::decode(&b64)
            .ok_or_else(|| Failure::Other("capture read: bad base64".into()))?;
        if piece.is_empty() && file_bytes.len() < total {
            return Err(Failure::Other("capture read returned nothing".into()));
        }
        file_bytes.extend_from_slice(&piece);
        if file_bytes.len() >= total {
            break;
        }
    }
    std::fs::write(file, &file_bytes).map_err(|e| Failure::Other(format!("{file}: {e}")))?;
    let status = t.call("capture")?;
    Ok(format!(
        "{}wrote {} bytes to {file}\n",
        status,
        file_bytes.len()
    ))
}

/// The vifs aggdom serves, from its backend directory.
fn vifs(store: &dyn Store, aggdom: u32) -> Result<Vec<restart::Vif>, String> {
    let base = format!("/local/domain/{aggdom}/backend/vif");
    let text = |p: String| -> Option<String> {
        store
            .read(&p)
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    let mut out = Vec::new();
    for fe in store.list(&base).map_err(|e| e.to_string())? {
        let Ok(frontend) = fe.parse() else { continue };
        let guest = text(format!("/local/domain/{fe}/name")).unwrap_or_else(|| fe.clone());
        for h in store
            .list(&format!("{base}/{fe}"))
            .map_err(|e| e.to_string())?
        {
            let Ok(handle) = h.parse() else { continue };
            let dir = format!("{base}/{fe}/{h}");
            out.push(restart::Vif {
                guest: guest.clone(),
                frontend,
                handle,
                mac: text(format!("{dir}/mac")),
                ip: text(format!("{dir}/ip")),
                rate: text(format!("{dir}/rate")),
                mtu: text(format!("{dir}/mtu")),
            });
        }
    }
    Ok(out)
}

/// How long `restart` waits for the new aggdom to answer (its boot under
/// an emulated Xen took 7-75 s), and how long each `status` it sends
/// waits before it is withdrawn and sent again.
const READY_WAIT: Duration = Duration::from_secs(120);
const READY_TRY: Duration = Duration::from_secs(3);

/// Waits until a freshly started aggdom answers `status` (an error line
/// is an answer too). One request is not enough: aggdom serves request
/// nodes its watch reports, and xenstored fires a new watch for the
/// watched directory itself, not for what was written into it before, so
/// a request written while aggdom boots is never seen. Each try is
/// withdrawn after `READY_TRY` and written again under a new id.
fn wait_ready(mut t: XsClient, total: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + total;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        t.timeout = READY_TRY.min(left).max(Duration::from_secs(1));
        match t.call("status") {
            Ok(_) | Err(CallError::Refused(_)) => return Ok(()),
            Err(CallError::Transport(e)) if Instant::now() >= deadline => {
                return Err(Failure::Other(format!(
                    "the new aggdom did not answer within {} s: {e}",
                    total.as_secs()
                )))
            }
            // (after a pause: a failing xenstore tool returns at once)
            Err(CallError::Transport(_)) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn restart(o: &Options) -> Result<String, Failure> {
    let cfg = o
        .config
        .clone()
        .ok_or_else(|| Failure::Other("restart needs --config <aggdom's xl config>".into()))?;
    let store = store::from_env();
    let id = domid(&*store, &o.domain).map_err(Failure::Other)?;
    let name = store
        .read(&format!("/local/domain/{id}/name"))
        .ok()
        .flatten()
        .map_or(o.domain.clone(), |n| {
            String::from_utf8_lossy(&n).into_owned()
        });
    let vifs = vifs(&*store, id).map_err(Failure::Other)?;
    let config = store
        .read(&format!("/local/domain/{id}/aggdom/config"))
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let steps = restart::plan(&name, &cfg, config.as_deref(), &vifs);
    // Each step is printed as it starts (kept for the end with --json):
    // a restart that stops half-way shows how far it got, and what took
    // the time.
    let mut log = String::new();
    let mut note = |line: String| {
        if o.json {
            log.push_str(&line);
        } else {
            print!("{line}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    };
    for step in &steps {
        note(format!("{step}\n"));
        if o.dry_run {
            continue;
        }
        match step {
            restart::Step::Run(argv) => {
                let out = Command::new(&argv[0])
                    .args(&argv[1..])
                    .output()
                    .map_err(|e| Failure::Other(format!("{}: {e}", argv[0])))?;
                if !out.status.success() {
                    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
                    // A detach of a vif whose old backend is gone may
                    // complain; the attach after it is what counts.
                    if argv[1] != "network-detach" {
                        return Err(Failure::Other(format!("{step}: {why}")));
                    }
                    note(format!("  (detach: {why})\n"));
                }
            }
            restart::Step::WriteConfig(text) => {
                let new = domid(&*store, &name).map_err(Failure::Other)?;
                store
                    .write(
                        &format!("/local/domain/{new}/aggdom/config"),
                        text.as_bytes(),
                    )
                    .map_err(|e| Failure::Other(e.to_string()))?;
            }
            restart::Step::WaitReady => {
                let new = domid(&*store, &name).map_err(Failure::Other)?;
                wait_ready(
                    XsClient {
                        store: store::from_env(),
                        dir: aggdom_ctl::ctl_dir(new),
                        timeout: READY_TRY,
                    },
                    o.timeout.max(READY_WAIT),
                )?;
            }
        }
    }
    Ok(log)
}

fn run(o: &Options) -> Result<String, Failure> {
    if o.words[0] == "restart" {
        return restart(o);
    }
    let mut t: Box<dyn Transport> = match &o.console {
        Some(addr) => Box::new(
            ConsoleClient::connect(addr, o.timeout)
                .map_err(|e| Failure::Other(format!("{addr}: {e}")))?,
        ),
        None => {
            let store = store::from_env();
            let id = domid(&*store, &o.domain).map_err(Failure::Other)?;
            Box::new(XsClient {
                store,
                dir: aggdom_ctl::ctl_dir(id),
                timeout: o.timeout,
            })
        }
    };
    let mut words = o.words.clone();
    if o.json && words[0] == "stats" && !words.contains(&"--json".to_string()) {
        words.push("--json".into());
    }
    if words[0] == "capture" {
        if let Some(file) = &o.write {
            return capture_to_file(&mut *t, &words, file, o.timeout);
        }
    }
    Ok(t.call(&words.join(" "))?)
}

fn main() -> ExitCode {
    let o = match parse_args(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("aggctl: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stats_json = o.words[0] == "stats";
    match run(&o) {
        Ok(out) if o.json && !stats_json => {
            println!("{{\"ok\":true,\"output\":{}}}", json_string(&out));
            ExitCode::SUCCESS
        }
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure::Refused(e)) => {
            if o.json {
                println!("{{\"ok\":false,\"error\":{}}}", json_string(&e));
            }
            eprintln!("aggctl: error: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Other(e)) => {
            if o.json {
                println!("{{\"ok\":false,\"error\":{}}}", json_string(&e));
            }
            eprintln!("aggctl: {e}");
            ExitCode::from(2)
        }
    }
}
