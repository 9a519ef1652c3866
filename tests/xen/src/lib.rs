//! aggdom under real Xen: `make test-xen` runs `tests/xen/run-test-xen.py`,
//! `make soak-xen` `tests/xen/soak-xen.py` and `make restart-xen`
//! `tests/xen/restart-xen.py` (minutes, need the rig
//! in `../shared/xen-rig`). This crate only holds host checks
//! (`cargo test -p aggdom-xen-test`): the xl configs in `tests/xen/` keep the
//! settings an HVM driver domain needs in Xen 4.17, and the Python side
//! (`xentest.py`'s parsers and verdicts against aggdom's own format strings,
//! the dom0 shell snippets, restart-xen's probe summary) passes its unit
//! tests (`test_xentest.py`, `test_restart_xen.py`).
#![forbid(unsafe_code)]

/// The `key = value` lines of an xl config, comments dropped.
pub fn xl_keys(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::xl_keys;
    use std::path::Path;
    use std::process::Command;

    /// `python3`, or None (with a note) where there is none: the rig
    /// scripts need it anyway, but a host without it can still build.
    fn python3() -> Option<Command> {
        match Command::new("python3").arg("--version").output() {
            Ok(o) if o.status.success() => {
                let mut c = Command::new("python3");
                c.env("PYTHONDONTWRITEBYTECODE", "1");
                Some(c)
            }
            _ => {
                eprintln!("python3 not found: the Xen test scripts' checks are skipped");
                None
            }
        }
    }

    fn here() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn the_rig_scripts_compile() {
        let Some(mut py) = python3() else { return };
        let out = py
            .current_dir(here())
            .args([
                "-c",
                "import sys\nfor f in sys.argv[1:]:\n    compile(open(f).read(), f, 'exec')",
                "run-test-xen.py",
                "soak-xen.py",
                "restart-xen.py",
                "xentest.py",
                "test_xentest.py",
                "test_restart_xen.py",
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_rig_scripts_helpers_pass_their_unit_tests() {
        let Some(mut py) = python3() else { return };
        let out = py
            .current_dir(here())
            .args(["-m", "unittest", "-q", "test_xentest", "test_restart_xen"])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn get(keys: &[(String, String)], k: &str) -> String {
        // xl takes the last assignment of a key.
        keys.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} missing"))
    }

    #[test]
    fn the_driver_domain_config_has_what_hvm_passthrough_needs() {
        let keys = xl_keys(include_str!("../aggdom.cfg"));
        assert_eq!(get(&keys, "type"), "\"hvm\"");
        assert!(get(&keys, "kernel").ends_with("aggdom32\""));
        assert_eq!(get(&keys, "driver_domain"), "1");
        assert!(get(&keys, "device_model_args_hvm").contains("xenfv-4.2"));
        let pci = get(&keys, "pci");
        assert!(pci.contains("00:03.0") && !pci.contains("00:02.0"));
        // The rest of what README's "Running under Xen" says matters: the
        // 32-bit qemu-xen device model, a COM1 for the console, native TSC.
        assert_eq!(get(&keys, "device_model_version"), "\"qemu-xen\"");
        assert!(get(&keys, "serial").len() > 2, "serial= is empty");
        assert_eq!(get(&keys, "tsc_mode"), "\"native\"");
    }

    #[test]
    fn the_guest_config_names_aggdom_as_its_backend_with_mac_and_ip() {
        let keys = xl_keys(include_str!("../guest.cfg"));
        let vif = get(&keys, "vif");
        assert!(vif.contains("backend=aggdom"));
        assert!(vif.contains("mac=") && vif.contains("ip="));
    }
}
