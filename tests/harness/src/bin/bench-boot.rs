//! `bench-boot`: boots the aggdom ELF several times with the default NIC set
//! and prints the time from QEMU's spawn to the first shell prompt (median,
//! min, max) and the size of the stripped ELF, against the goals. Then it
//! boots once more with `make run`'s NICs and command line and measures the
//! idle domain (issue 9): the host CPU the QEMU process burns while nothing
//! happens, and the round trip of single pings through aggdom (guest port
//! -> uplink -> guest port). It measures and prints; it does not fail on a
//! number.
//!
//! Usage: `bench-boot [-n BOOTS] [--idle-secs S] [--elf PATH]` (default 7
//! boots, 10 s idle, the ELF from `$AGGDOM_ELF` or the workspace's release
//! build).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use aggdom_harness::rig::{macs, udp_frame, udp_tag};
use aggdom_harness::{default_elf, frame::Ipv4Ends, MacAddr, Machine, Nic};

const GOAL_PROMPT: Duration = Duration::from_millis(500);
const GOAL_STRIPPED: u64 = 1 << 20;
/// Host CPU of an idle aggdom, in % of one core.
const GOAL_IDLE_CPU: f64 = 1.0;
/// `make run`'s command line (Makefile `RUN_APPEND`).
const RUN_APPEND: &str = "uplinks=0,1,2,3 guest=4,52:54:00:00:01:01,10.0.0.11 \
                          guest=5,52:54:00:00:01:02,10.0.0.12 ip=10.0.0.2/24";
/// NIC index of guest 0's port in the default NIC set, and the guest.
const GUEST_PORT: usize = 4;
const GUEST_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x00, 0x01, 0x01]);
const GUEST_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 0, 11);
const PINGS: usize = 20;
const PING_GAP: Duration = Duration::from_millis(200);

fn usage() -> ExitCode {
    eprintln!("usage: bench-boot [-n BOOTS] [--idle-secs S] [--elf PATH]");
    ExitCode::from(2)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Size of `elf` with all symbols and debug info removed, via objcopy (or
/// strip) into a temporary file.
fn stripped_size(elf: &Path) -> Result<u64, String> {
    let out = std::env::temp_dir().join(format!("aggdom-bench-stripped-{}", std::process::id()));
    let tries: [(&str, Vec<&std::ffi::OsStr>); 2] = [
        (
            "objcopy",
            vec!["--strip-all".as_ref(), elf.as_os_str(), out.as_os_str()],
        ),
        (
            "strip",
            vec!["-o".as_ref(), out.as_os_str(), elf.as_os_str()],
        ),
    ];
    let mut errors = Vec::new();
    for (tool, args) in tries {
        match Command::new(tool).args(&args).output() {
            Ok(o) if o.status.success() => {
                let size = std::fs::metadata(&out)
                    .map(|m| m.len())
                    .map_err(|e| e.to_string());
                let _ = std::fs::remove_file(&out);
                return size;
            }
            Ok(o) => errors.push(format!(
                "{tool}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => errors.push(format!("{tool}: {e}")),
        }
    }
    Err(errors.join("; "))
}

fn main() -> ExitCode {
    let mut boots = 7usize;
    let mut idle_secs = 10.0f64;
    let mut elf: PathBuf = default_elf();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => boots = n,
                _ => return usage(),
            },
            "--idle-secs" => match args.next().and_then(|n| n.parse().ok()) {
                Some(s) if s > 0.0 => idle_secs = s,
                _ => return usage(),
            },
            "--elf" => match args.next() {
                Some(p) => elf = p.into(),
                None => return usage(),
            },
            _ => return usage(),
        }
    }

    let nics = Nic::default_set();
    println!(
        "bench-boot: {} ({} boots, {} NICs: 3 virtio-net + 1 e1000 uplinks, 2 virtio-net guest ports; TCG)",
        elf.display(),
        boots,
        nics.len()
    );
    let ready_re = regex_lite::Regex::new(r"aggdom ready: \d+ NICs, boot (\d+(?:\.\d+)?) ms")
        .expect("valid regex");
    let mut to_prompt = Vec::new();
    let mut reported = Vec::new();
    for i in 0..boots {
        let booted = Machine::builder()
            .elf(&elf)
            .nics(nics.clone())
            .start()
            .and_then(|mut m| {
                let log = m.wait_prompt()?;
                let secs = m.spawned_at().elapsed().as_secs_f64();
                Ok((secs, log))
            });
        match booted {
            Ok((secs, log)) => {
                let kernel_ms = ready_re
                    .captures(&log)
                    .and_then(|c| c[1].parse::<f64>().ok());
                println!(
                    "  boot {}: {:.3} s to prompt{}",
                    i + 1,
                    secs,
                    kernel_ms
                        .map(|ms| format!(" (kernel says {ms} ms)"))
                        .unwrap_or_default()
                );
                to_prompt.push(secs);
                reported.extend(kernel_ms);
            }
            Err(e) => {
                eprintln!("bench-boot: boot {} failed: {e}", i + 1);
                return ExitCode::FAILURE;
            }
        }
    }
    to_prompt.sort_by(f64::total_cmp);
    reported.sort_by(f64::total_cmp);
    let med = median(&to_prompt);
    println!(
        "boot to prompt (QEMU spawn -> first `aggdom> `): median {:.3} s, min {:.3} s, max {:.3} s; goal <= {:.1} s: {}",
        med,
        to_prompt[0],
        to_prompt[to_prompt.len() - 1],
        GOAL_PROMPT.as_secs_f64(),
        verdict(med <= GOAL_PROMPT.as_secs_f64())
    );
    if !reported.is_empty() {
        println!(
            "kernel-reported boot time (`aggdom ready` line): median {:.1} ms",
            median(&reported)
        );
    }
    let unstripped = std::fs::metadata(&elf).map(|m| m.len()).unwrap_or(0);
    match stripped_size(&elf) {
        Ok(size) => println!(
            "stripped ELF: {} bytes ({:.1} KiB; unstripped {} bytes); goal <= 1 MiB: {}",
            size,
            size as f64 / 1024.0,
            unstripped,
            verdict(size <= GOAL_STRIPPED)
        ),
        Err(e) => println!("stripped ELF: cannot strip ({e}); unstripped {unstripped} bytes"),
    }
    match idle(&elf, nics, idle_secs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-boot: idle measurement failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One ping through aggdom: a UDP frame from guest 0 into its port, out of
/// whichever uplink aggdom picks, answered at once into that uplink to the
/// identity MAC it carried, and back out of the guest port. Returns the
/// round trip as the harness sees it.
fn ping(m: &Machine, tag: u64) -> Result<Duration, String> {
    let remote = MacAddr::local(0x900);
    let remote_ip = std::net::Ipv4Addr::new(10, 0, 0, 100);
    let out = udp_frame(
        Ipv4Ends {
            src_mac: GUEST_MAC,
            dst_mac: remote,
            src_ip: GUEST_IP,
            dst_ip: remote_ip,
        },
        tag,
        64,
    );
    let timeout = Duration::from_secs(5);
    let start = std::time::Instant::now();
    m.send_frame(GUEST_PORT, &out).map_err(|e| e.to_string())?;
    let up = m
        .recv_where(timeout, |x| {
            x.nic < GUEST_PORT && udp_tag(&x.data) == Some(tag)
        })
        .ok_or(format!("ping {tag:#x} never left an uplink"))?;
    let identity = macs(&up.data).0;
    let back = udp_frame(
        Ipv4Ends {
            src_mac: remote,
            dst_mac: identity,
            src_ip: remote_ip,
            dst_ip: GUEST_IP,
        },
        tag | 0x8000,
        64,
    );
    m.send_frame(up.nic, &back).map_err(|e| e.to_string())?;
    let reply = m
        .recv_where(timeout, |x| {
            x.nic == GUEST_PORT && udp_tag(&x.data) == Some(tag | 0x8000)
        })
        .ok_or(format!(
            "the answer to ping {tag:#x} never reached the guest"
        ))?;
    Ok(reply.at.saturating_duration_since(start))
}

/// Idle host CPU and single-ping latency with `make run`'s NICs and command line.
fn idle(elf: &Path, nics: Vec<Nic>, secs: f64) -> Result<(), String> {
    println!("\nidle domain (`make run` NICs and command line: 4 uplinks, 2 guest ports):");
    let m = Machine::builder()
        .elf(elf)
        .nics(nics)
        .cmdline(RUN_APPEND)
        .boot()
        .map_err(|e| e.to_string())?;
    // Let boot-time chatter (learning frames, ARP) settle first.
    std::thread::sleep(Duration::from_secs(2));
    m.drain_all();
    let t0 = std::time::Instant::now();
    let qemu_cpu = || m.cpu_secs().ok_or("QEMU's CPU time unreadable in /proc");
    let c0 = qemu_cpu()?;
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cpu = (qemu_cpu()? - c0) / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "  host CPU of the QEMU process, idle for {secs:.0} s: {cpu:.2} % of one core; goal <= {GOAL_IDLE_CPU:.0} %: {}",
        verdict(cpu <= GOAL_IDLE_CPU)
    );
    m.drain_all();
    let mut rtts = Vec::new();
    for i in 0..PINGS {
        std::thread::sleep(PING_GAP);
        rtts.push(ping(&m, 0x1d1e_0000 + i as u64)?.as_secs_f64() * 1000.0);
    }
    rtts.sort_by(f64::total_cmp);
    println!(
        "  ping through aggdom when idle (guest port -> uplink -> guest port, {PINGS} pings {} ms apart): median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        PING_GAP.as_millis(),
        median(&rtts),
        percentile(&rtts, 0.9),
        rtts[rtts.len() - 1]
    );
    Ok(())
}
