//! `bench-boot`: boots the aggdom ELF several times with the default NIC set
//! and prints the time from QEMU's spawn to the first shell prompt (median,
//! min, max) and the size of the stripped ELF, against the goals. It
//! measures and prints; it does not fail on a number.
//!
//! Usage: `bench-boot [-n BOOTS] [--elf PATH]` (default 7 boots, the ELF
//! from `$AGGDOM_ELF` or the workspace's release build).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use aggdom_harness::{default_elf, Machine, Nic};

const GOAL_PROMPT: Duration = Duration::from_millis(500);
const GOAL_STRIPPED: u64 = 1 << 20;

fn usage() -> ExitCode {
    eprintln!("usage: bench-boot [-n BOOTS] [--elf PATH]");
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
    let mut elf: PathBuf = default_elf();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => boots = n,
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
    ExitCode::SUCCESS
}
