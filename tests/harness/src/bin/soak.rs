//! `soak` (`make soak`): aggdom under continuous traffic from every guest
//! and the outside for `SOAK_SECONDS` (600), while links flap, bindings
//! change, identities are swapped and pinned and the rebalancer runs; then
//! every frame offered is reconciled with aggdom's counters
//! ([`aggdom_harness::soak`]). Prints the reconciliation per guest and per
//! uplink and exits non-zero if any frame is neither delivered nor counted,
//! the heap grew, or aggdom panicked.
//!
//! Usage: `soak [--seconds N] [--seed S] [--elf PATH] [-v]`; `SOAK_SECONDS`
//! and `SOAK_SEED` set the same.

use std::process::ExitCode;
use std::time::Duration;

use aggdom_harness::soak::{self, SoakConfig};

fn main() -> ExitCode {
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut cfg = SoakConfig::new(Duration::from_secs(seconds));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let ok = match a.as_str() {
            "--seconds" => args
                .next()
                .and_then(|s| s.parse().ok())
                .map(|s| cfg.duration = Duration::from_secs(s))
                .is_some(),
            "--seed" => args
                .next()
                .and_then(|s| match s.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).ok(),
                    None => s.parse().ok(),
                })
                .map(|s| cfg.seed = s)
                .is_some(),
            "--elf" => args.next().map(|p| cfg.elf = p.into()).is_some(),
            "-v" => {
                cfg.verbose = true;
                true
            }
            _ => false,
        };
        if !ok {
            eprintln!("usage: soak [--seconds N] [--seed S] [--elf PATH] [-v]");
            return ExitCode::from(2);
        }
    }
    eprintln!(
        "soak: {} s with seed {:#x} (SOAK_SEED={:#x} repeats it)",
        cfg.duration.as_secs(),
        cfg.seed,
        cfg.seed
    );
    match soak::run(&cfg) {
        Ok(report) => {
            print!("{}", report.text);
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("soak: could not run to the end: {e}");
            ExitCode::FAILURE
        }
    }
}
