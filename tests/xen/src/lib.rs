//! aggdom under real Xen: `make test-xen` runs `tests/xen/run-test-xen.py`
//! (minutes, needs the rig in `../shared/xen-rig`). This crate only holds
//! host checks that the xl configs in `tests/xen/` keep the settings an HVM
//! driver domain needs in Xen 4.17 (`cargo test -p aggdom-xen-test`).
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
