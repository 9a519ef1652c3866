//! Boots the real aggdom ELF in QEMU and checks the console contract of
//! "Boot aggdom in QEMU" (issue 2): banner, NIC discovery, the shell's
//! commands and line discipline, clean power-off and reported faults.

use std::process::ExitStatus;
use std::time::Duration;

use aggdom_harness::json::Json;
use aggdom_harness::{nic_pci_addr, MacAddr, Machine, MachineBuilder, Nic, NicKind, Pattern};

/// QEMU under TCG on two shared cores: be patient, never assert on time.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn nic(kind: NicKind, last: u8) -> Nic {
    Nic::new(kind, MacAddr([0x52, 0x54, 0x00, 0xa9, 0x00, last]))
}

/// 3 transitional virtio-net, 1 e1000 and 1 modern virtio-net, the e1000
/// in the middle so PCI order and kinds are both checked.
fn mixed_nics() -> Vec<Nic> {
    use NicKind::*;
    vec![
        nic(VirtioNet, 0x11),
        nic(VirtioNet, 0x22),
        nic(E1000, 0x33),
        nic(VirtioNetModern, 0x44),
        nic(VirtioNet, 0x55),
    ]
}

fn boot(nics: Vec<Nic>) -> Machine {
    Machine::builder().nics(nics).boot().unwrap()
}

/// What the banner's `pci` line must say after the address, for `n`.
fn pci_line_rest(n: &Nic) -> String {
    format!(
        "{} {} mac {} link up",
        n.kind.pci_id(),
        n.kind.console_name(),
        n.mac
    )
}

/// Boots `builder` with `nics` and command line `cmdline`, and checks the
/// boot log and `nics` list exactly those NICs, in order. With
/// `fixed_slots`, NIC `i` must be at 00:0(3+i).0; otherwise QEMU chose the
/// slots and the addresses must merely agree between the two listings.
fn check_nic_set(builder: MachineBuilder, nics: Vec<Nic>, cmdline: &str, fixed_slots: bool) {
    let mut m = builder.nics(nics.clone()).cmdline(cmdline).start().unwrap();
    let log = m.wait_prompt().unwrap();
    let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    let t = m.transcript();

    let banner = format!("aggdom 0.1.0 booting (PVH) cmdline=\"{cmdline}\"");
    assert!(
        lines.contains(&banner.as_str()),
        "no banner {banner:?} in:\n{t}"
    );
    let mem = Pattern::regex(r"(?m)^memory: \d+ MiB usable, heap \d+ KiB at 0x[0-9a-fA-F]+\r?$");
    assert!(mem.find(&log).is_some(), "no memory line in:\n{t}");

    // Exactly one `pci` line per NIC, in PCI order; every other device `other`.
    let nic_lines: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l.starts_with("pci ") && !l.ends_with(" other"))
        .map(|l| l["pci ".len()..].split_once(' ').unwrap_or((l, "")))
        .collect();
    let addrs: Vec<String> = if fixed_slots {
        (0..nics.len()).map(nic_pci_addr).collect()
    } else {
        nic_lines.iter().map(|(a, _)| a.to_string()).collect()
    };
    let got: Vec<(String, String)> = nic_lines
        .iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect();
    let want: Vec<(String, String)> = addrs
        .iter()
        .cloned()
        .zip(nics.iter().map(pci_line_rest))
        .collect();
    assert_eq!(got, want, "pci lines in:\n{t}");
    let ready = Pattern::regex(&format!(
        r"(?m)^aggdom ready: {} NICs, boot \d+(\.\d+)? ms\r?$",
        nics.len()
    ));
    assert!(
        ready.find(&log).is_some(),
        "no ready line for {} NICs in:\n{t}",
        nics.len()
    );

    // `nics`: a header, then one row per NIC (columns may be added on the right).
    let reply = m.command("nics").unwrap();
    let mut rows = reply.lines();
    let header = rows.next().unwrap_or_default();
    assert!(
        !header.trim().is_empty() && !header.trim_start().starts_with('0'),
        "no header in {reply:?}"
    );
    let got: Vec<Vec<String>> = rows
        .map(|r| r.split_whitespace().take(6).map(str::to_string).collect())
        .collect();
    let want: Vec<Vec<String>> = nics
        .iter()
        .zip(&addrs)
        .enumerate()
        .map(|(i, (n, addr))| {
            let cols = [
                &i.to_string(),
                addr,
                n.kind.pci_id(),
                n.kind.console_name(),
                &n.mac.to_string(),
                "up",
            ];
            cols.iter().map(|c| c.to_string()).collect()
        })
        .collect();
    assert_eq!(got, want, "`nics` replied:\n{reply}");
}

#[test]
fn banner_and_nics_list_exactly_a_mixed_nic_set() {
    check_nic_set(
        Machine::builder(),
        mixed_nics(),
        "role=test uplinks=0,1,2,3",
        true,
    );
}

#[test]
fn eight_nics_of_both_kinds_are_all_found() {
    use NicKind::*;
    let kinds = [
        E1000,
        VirtioNet,
        VirtioNetModern,
        E1000,
        VirtioNet,
        E1000,
        VirtioNet,
        VirtioNetModern,
    ];
    let nics = kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| nic(k, 0x80 + i as u8))
        .collect();
    check_nic_set(Machine::builder(), nics, "eight", true);
}

#[test]
fn boots_without_nics() {
    check_nic_set(Machine::builder(), Vec::new(), "", true);
}

#[test]
fn nics_at_slots_qemu_chooses_on_q35_are_found() {
    // A command line written by someone else: no `addr=`, another chipset.
    use NicKind::*;
    let nics = [VirtioNet, E1000, VirtioNetModern, E1000]
        .iter()
        .enumerate()
        .map(|(i, &k)| nic(k, 0x60 + i as u8));
    check_nic_set(
        Machine::builder().machine_type("q35").auto_pci_slots(),
        nics.collect(),
        "q35",
        false,
    );
}

#[test]
fn a_nic_whose_bar_firmware_put_above_4_gib_works() {
    // A 4 GiB ivshmem BAR makes SeaBIOS move every 64-bit BAR above 4 GiB
    // (here the modern virtio-net's BAR4 lands at 8 GiB), where the boot
    // identity map does not reach: the kernel must map it to use the NIC.
    let n = nic(NicKind::VirtioNetModern, 0x70);
    let mut m = Machine::builder()
        .machine_type("q35")
        .auto_pci_slots()
        .nics(vec![n.clone()])
        .cmdline("uplinks=0")
        .arg("-object")
        .arg("memory-backend-ram,id=bigbar,size=4G")
        .arg("-device")
        .arg("ivshmem-plain,memdev=bigbar")
        .boot()
        .unwrap();
    // The premise: firmware did put one of the NIC's BARs above 4 GiB.
    let pci = m.qmp(r#"{"execute": "query-pci"}"#).unwrap();
    let nic_bars: Vec<i64> = pci
        .as_array()
        .unwrap_or_default()
        .iter()
        .flat_map(|bus| {
            bus.get("devices")
                .and_then(Json::as_array)
                .unwrap_or_default()
        })
        .filter(|d| {
            d.pointer(&["id", "vendor"]).and_then(Json::as_i64) == Some(0x1af4)
                && d.pointer(&["id", "device"]).and_then(Json::as_i64) == Some(0x1041)
        })
        .flat_map(|d| {
            d.get("regions")
                .and_then(Json::as_array)
                .unwrap_or_default()
        })
        .filter(|r| r.get("type").and_then(Json::as_str) == Some("memory"))
        .filter_map(|r| r.get("address").and_then(Json::as_i64))
        .collect();
    assert!(
        nic_bars.iter().any(|&a| a >= 1 << 32),
        "no BAR of the NIC above 4 GiB: {nic_bars:#x?}"
    );
    let line = format!("virtio-net mac {} link up", n.mac);
    assert!(
        m.transcript().contains(&line),
        "NIC not up:\n{}",
        m.transcript()
    );
    let out = m.command("nic 0 send ff:ff:ff:ff:ff:ff 64 1").unwrap();
    assert!(out.contains("sent 1 frames"), "{out}");
    let frame = m
        .recv_frame(0, Duration::from_secs(20))
        .expect("the frame the NIC sent through its high BAR's queues");
    assert_eq!(&frame[6..12], &n.mac.0, "source is the NIC's MAC");
    assert_eq!(&frame[12..14], &[0x88, 0xb5]);
}

#[test]
fn the_elf32_copy_boots_too() {
    // `make build` leaves aggdom32 (for Xen's 32-bit device model) beside
    // the ELF; it must boot the same way.
    let elf32 = aggdom_harness::default_elf().with_file_name("aggdom32");
    assert!(
        elf32.is_file(),
        "{} missing: `make build` makes it",
        elf32.display()
    );
    check_nic_set(Machine::builder().elf(elf32), mixed_nics(), "elf32", true);
}

#[test]
fn version_help_mem_and_uptime_answer() {
    let mut m = boot(mixed_nics());
    assert_eq!(m.command("version").unwrap(), "aggdom 0.1.0");
    let help = m.command("help").unwrap();
    for cmd in [
        "help", "version", "nics", "mem", "uptime", "shutdown", "fault",
    ] {
        assert!(help.contains(cmd), "help does not mention {cmd}:\n{help}");
    }
    let mem = m.command("mem").unwrap();
    assert!(
        Pattern::regex(
            r"^heap used \d+ bytes, free \d+ bytes, peak \d+ bytes\r?\nconsole output dropped: com1 0 bytes, pv 0 bytes$"
        )
            .find(&mem)
            .is_some(),
        "mem: {mem:?}"
    );
    let uptime = |m: &mut Machine| {
        let u = m.command("uptime").unwrap();
        let secs = Pattern::regex(r"^uptime \d+\.\d{3} s$")
            .find(&u)
            .map(|_| u[7..u.len() - 2].parse::<f64>());
        match secs {
            Some(Ok(s)) => s,
            _ => panic!("uptime: {u:?}"),
        }
    };
    let first = uptime(&mut m);
    std::thread::sleep(Duration::from_millis(300));
    let second = uptime(&mut m);
    assert!(
        second > first,
        "uptime did not advance: {first} then {second}"
    );
}

#[test]
fn unknown_command_gets_one_error_line() {
    let mut m = boot(mixed_nics());
    for cmd in ["frobnicate", "versionx", "nics please now 1 2 3"] {
        let reply = m.command(cmd).unwrap();
        assert_eq!(reply.lines().count(), 1, "{cmd:?} got {reply:?}");
        assert!(reply.starts_with("error: "), "{cmd:?} got {reply:?}");
    }
    // An empty line is not an error: just a new prompt.
    assert_eq!(m.command("").unwrap(), "");
    assert_eq!(m.command("version").unwrap(), "aggdom 0.1.0");
}

#[test]
fn cr_lf_and_crlf_each_end_one_line() {
    let mut m = boot(mixed_nics());
    for ending in ["\r", "\n", "\r\n"] {
        m.send_bytes(format!("version{ending}").as_bytes()).unwrap();
        let raw = m.wait_prompt().unwrap();
        assert!(raw.contains("aggdom 0.1.0"), "ending {ending:?}: {raw:?}");
    }
    // Had CR LF counted as two line ends, an extra prompt would sit before
    // this reply; `command` would then return an empty reply.
    assert_eq!(m.command("version").unwrap(), "aggdom 0.1.0");
    let prompts = m.transcript().matches("aggdom> ").count();
    assert_eq!(
        prompts,
        5,
        "one prompt after boot and one per line:\n{}",
        m.transcript()
    );
}

#[test]
fn backspace_and_delete_edit_the_line() {
    let mut m = boot(mixed_nics());
    assert_eq!(m.command("versiox\x08n").unwrap(), "aggdom 0.1.0");
    assert_eq!(m.command("verzz\x7f\x7fsion").unwrap(), "aggdom 0.1.0");
    // Backspace on an empty line is harmless.
    assert_eq!(m.command("\x08\x08\x7fversion").unwrap(), "aggdom 0.1.0");
}

/// Sends `junk` then CR, then `version`, and checks the shell answers it.
/// (Control characters may legitimately print prompts of their own, e.g.
/// Ctrl-C cancelling the line, so the reply is looked for, not counted.)
fn survives(junk: &[u8]) {
    let mut m = boot(mixed_nics());
    let mut line = junk.to_vec();
    line.extend_from_slice(b"\rversion\r");
    m.send_bytes(&line).unwrap();
    m.wait_for(
        Pattern::regex(r"(?m)^aggdom 0\.1\.0\r?$"),
        Duration::from_secs(10),
    )
    .unwrap();
    m.wait_prompt().unwrap();
    assert_eq!(
        m.command("version").unwrap(),
        "aggdom 0.1.0",
        "after {} bytes of junk",
        junk.len()
    );
    let t = m.transcript();
    assert!(!t.contains("PANIC") && !t.contains("EXCEPTION"), "{t}");
}

#[test]
fn shell_survives_a_10_kib_line() {
    let line: Vec<u8> = (0..10 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    survives(&line);
}

#[test]
fn shell_survives_control_characters() {
    // Every C0 control but CR, LF, BS; plus DEL and ESC sequences.
    let mut junk: Vec<u8> = (0u8..0x20)
        .filter(|b| !matches!(b, b'\r' | b'\n' | 0x08))
        .collect();
    junk.extend_from_slice(b"\x1b[A\x1b[2J\x7fver\x00sion\x03\x04");
    survives(&junk);
}

#[test]
fn shell_survives_invalid_utf8() {
    survives(b"ver\xff\xfe\xc3\x28sion \xe2\x82 \xf0\x9f\x98 \x80\xbf\xc0\xaf end");
}

#[test]
fn shutdown_powers_off_with_status_0() {
    let mut m = boot(mixed_nics());
    m.send_line("shutdown").unwrap();
    let status = m.wait_exit(EXIT_TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(0), "{status}:\n{}", m.diagnostics());
}

/// Triggers `fault <which>` and returns the exit status and the console
/// output that followed.
fn fault(which: &str) -> (ExitStatus, String, Machine) {
    let mut m = boot(mixed_nics());
    m.skip_output();
    m.send_line(&format!("fault {which}")).unwrap();
    let status = m.wait_exit(EXIT_TIMEOUT).unwrap();
    let out = m.unread();
    (status, out, m)
}

fn assert_failure_status(status: ExitStatus, m: &mut Machine) {
    // isa-debug-exit: (v << 1) | 1, never 0 (and not a signal).
    assert!(
        status.code().is_some_and(|c| c != 0),
        "{status}:\n{}",
        m.diagnostics()
    );
}

/// An `EXCEPTION` line naming `vector`, with error code, RIP and CR2.
fn assert_exception_report(out: &str, vector: u8) {
    let line = out
        .lines()
        .find(|l| l.contains("EXCEPTION"))
        .unwrap_or_else(|| panic!("no EXCEPTION in {out:?}"));
    let l = line.to_ascii_lowercase();
    let vec_re = Pattern::regex(&format!(r"vector(=| )({vector}|0x0*{vector:x})\b"));
    assert!(vec_re.find(&l).is_some(), "vector {vector} not in {line:?}");
    for field in ["error", "rip", "cr2"] {
        assert!(l.contains(field), "{field} not in {line:?}");
    }
}

#[test]
fn fault_int3_is_reported_and_exits_nonzero() {
    let (status, out, mut m) = fault("int3");
    assert_exception_report(&out, 3);
    assert_failure_status(status, &mut m);
}

#[test]
fn fault_pagefault_is_reported_and_exits_nonzero() {
    let (status, out, mut m) = fault("pagefault");
    assert_exception_report(&out, 14);
    // The faulting address is reported, in hex.
    let cr2 = Pattern::regex(r"cr2=(0x)?([0-9a-fA-F]+)");
    assert!(cr2.find(&out).is_some(), "no cr2=<hex> in {out:?}");
    assert_failure_status(status, &mut m);
}

#[test]
fn fault_panic_is_reported_and_exits_nonzero() {
    let (status, out, mut m) = fault("panic");
    let re = Pattern::regex(r"PANIC at [^\s:]+:\d+(:\d+)?: \S");
    assert!(
        re.find(&out).is_some(),
        "no `PANIC at <file:line>: <msg>` in {out:?}"
    );
    assert_failure_status(status, &mut m);
}

#[test]
fn unknown_fault_kind_is_an_error_not_a_fault() {
    let mut m = boot(mixed_nics());
    let reply = m.command("fault sideways").unwrap();
    assert!(reply.starts_with("error: "), "{reply:?}");
    assert_eq!(m.command("version").unwrap(), "aggdom 0.1.0");
}
