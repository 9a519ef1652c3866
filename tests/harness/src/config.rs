//! What to boot: the kernel ELF, its command line, memory and NICs, and the
//! QEMU command line built from them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The shell prompt of aggdom's serial console.
pub const DEFAULT_PROMPT: &str = "aggdom> ";

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// `52:54:00:00:00:<n>` (QEMU's locally administered prefix), the MACs
    /// the default NIC set uses.
    pub const fn qemu(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, n])
    }

    /// A locally administered unicast MAC `02:00:00:00:<hi>:<lo>` for test
    /// hosts and guests, distinct from every [`MacAddr::qemu`] address.
    pub const fn local(n: u16) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, (n >> 8) as u8, n as u8])
    }

    /// The six bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Group bit set (broadcast or multicast).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;

    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-`), any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts
                .next()
                .ok_or_else(|| format!("MAC {s:?}: too few octets"))?;
            if p.len() != 2 {
                return Err(format!("MAC {s:?}: octet {p:?} is not two hex digits"));
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| format!("MAC {s:?}: bad octet {p:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC {s:?}: too many octets"));
        }
        Ok(MacAddr(out))
    }
}

/// The NIC models aggdom drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NicKind {
    /// Transitional virtio-net (`virtio-net-pci`, 1af4:1000).
    VirtioNet,
    /// Modern-only virtio-net (`virtio-net-pci,disable-legacy=on`, 1af4:1041).
    VirtioNetModern,
    /// Intel 82540EM (`e1000`, 8086:100e).
    E1000,
}

impl NicKind {
    /// The PCI `vendor:device` the guest sees, as the console prints it.
    pub const fn pci_id(self) -> &'static str {
        match self {
            NicKind::VirtioNet => "1af4:1000",
            NicKind::VirtioNetModern => "1af4:1041",
            NicKind::E1000 => "8086:100e",
        }
    }

    /// The kind column of the console's `pci` and `nics` lines.
    pub const fn console_name(self) -> &'static str {
        match self {
            NicKind::VirtioNet | NicKind::VirtioNetModern => "virtio-net",
            NicKind::E1000 => "e1000",
        }
    }

    /// The `-device` driver and its model options.
    fn qemu_device(self) -> &'static str {
        match self {
            NicKind::VirtioNet => "virtio-net-pci",
            NicKind::VirtioNetModern => "virtio-net-pci,disable-legacy=on",
            NicKind::E1000 => "e1000",
        }
    }
}

/// One NIC of the machine. NIC `i` sits at PCI `00:0(3+i).0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nic {
    /// The device model.
    pub kind: NicKind,
    /// Its factory MAC.
    pub mac: MacAddr,
}

impl Nic {
    /// A NIC of `kind` with `mac`.
    pub const fn new(kind: NicKind, mac: MacAddr) -> Nic {
        Nic { kind, mac }
    }

    /// The set `make run` boots: 3 virtio-net + 1 e1000 uplinks, then 2
    /// virtio-net guest ports, MACs 52:54:00:00:00:01..06 in that order.
    pub fn default_set() -> Vec<Nic> {
        use NicKind::*;
        [VirtioNet, VirtioNet, VirtioNet, E1000, VirtioNet, VirtioNet]
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Nic::new(kind, MacAddr::qemu(i as u8 + 1)))
            .collect()
    }
}

/// PCI slot of NIC `index`: slot 2 stays free (as under Xen, where qemu-xen
/// refuses to pass a device through at 00:02.0), NICs start at slot 3.
pub const fn nic_slot(index: usize) -> usize {
    3 + index
}

/// The `bb:dd.f` PCI address the console prints for NIC `index`.
pub fn nic_pci_addr(index: usize) -> String {
    format!("00:{:02x}.0", nic_slot(index))
}

/// Everything that shapes one QEMU run.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// The QEMU binary (`$AGGDOM_QEMU`, else `qemu-system-x86_64`).
    pub qemu: PathBuf,
    /// The kernel ELF given to `-kernel`.
    pub elf: PathBuf,
    /// The kernel command line (`-append`); `None` passes none.
    pub cmdline: Option<String>,
    /// The QEMU machine type (`pc`; `q35` also boots aggdom).
    pub machine: String,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// The NICs, in PCI order.
    pub nics: Vec<Nic>,
    /// Place NIC `i` at PCI slot `3 + i` (`addr=`); if false, QEMU picks
    /// the slots, as a command line written by someone else would.
    pub fixed_pci_slots: bool,
    /// If set, NIC `i`'s traffic is dumped to `<dir>/nic<i>.pcap`.
    pub pcap_dir: Option<PathBuf>,
    /// Extra arguments appended to the QEMU command line.
    pub extra_args: Vec<String>,
    /// How long [`crate::Machine::wait_prompt`] waits after boot.
    pub boot_timeout: Duration,
    /// How long [`crate::Machine::command`] waits for the next prompt.
    pub command_timeout: Duration,
    /// The shell prompt.
    pub prompt: String,
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig {
            qemu: std::env::var_os("AGGDOM_QEMU")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64")),
            elf: default_elf(),
            cmdline: None,
            machine: "pc".to_string(),
            memory_mib: 128,
            nics: Vec::new(),
            fixed_pci_slots: true,
            pcap_dir: None,
            extra_args: Vec::new(),
            // TCG on two busy cores: generous, and never asserted on.
            boot_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(10),
            prompt: DEFAULT_PROMPT.to_string(),
        }
    }
}

/// Where one run's sockets live and which UDP ports its NICs use.
#[derive(Clone, Debug)]
pub(crate) struct RunPaths {
    /// QEMU's QMP server socket.
    pub qmp_sock: PathBuf,
    /// Per NIC: (QEMU's local UDP port, the harness's UDP port).
    pub nic_ports: Vec<(u16, u16)>,
}

impl QemuConfig {
    /// The QEMU arguments (without the binary) for one run.
    pub(crate) fn args(&self, run: &RunPaths) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&["-machine", &self.machine, "-nodefaults", "-display", "none"]);
        push(&["-m", &format!("{}M", self.memory_mib)]);
        // COM1 on QEMU's stdin/stdout pipes (see `serial` for why not a
        // socket); signal=off: a 0x03 byte is input, not SIGINT.
        push(&[
            "-chardev",
            "stdio,id=ser0,signal=off",
            "-serial",
            "chardev:ser0",
        ]);
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", run.qmp_sock.display()),
        ]);
        push(&[
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-no-reboot",
        ]);
        push(&["-kernel", &self.elf.display().to_string()]);
        if let Some(cmdline) = &self.cmdline {
            push(&["-append", cmdline]);
        }
        for (i, (nic, (qemu_port, harness_port))) in
            self.nics.iter().zip(&run.nic_ports).enumerate()
        {
            push(&[
                "-netdev",
                &format!(
                    "dgram,id=n{i},local.type=inet,local.host=127.0.0.1,local.port={qemu_port},\
                     remote.type=inet,remote.host=127.0.0.1,remote.port={harness_port}"
                ),
            ]);
            let mut device = format!(
                "{},netdev=n{i},id=nic{i},mac={}",
                nic.kind.qemu_device(),
                nic.mac
            );
            if self.fixed_pci_slots {
                device.push_str(&format!(",addr=0x{:x}", nic_slot(i)));
            }
            push(&["-device", &device]);
            if let Some(dir) = &self.pcap_dir {
                push(&[
                    "-object",
                    &format!(
                        "filter-dump,id=f{i},netdev=n{i},file={}",
                        pcap_path(dir, i).display()
                    ),
                ]);
            }
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// Where NIC `index`'s pcap goes inside `dir`.
pub(crate) fn pcap_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("nic{index}.pcap"))
}

/// The workspace root: two levels above this crate's manifest.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// `$AGGDOM_ELF`, else `<workspace>/target/x86_64-unknown-none/release/aggdom`.
pub fn default_elf() -> PathBuf {
    match std::env::var_os("AGGDOM_ELF") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join("target/x86_64-unknown-none/release/aggdom"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips() {
        let m: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(m, MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0x0f]));
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(
            "02-00-00-00-01-02".parse::<MacAddr>().unwrap(),
            MacAddr::local(0x102)
        );
        for bad in [
            "",
            "52:54:00:00:00",
            "52:54:00:00:00:01:02",
            "5:54:00:00:00:01",
            "zz:54:00:00:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::qemu(1).is_multicast());
    }

    #[test]
    fn default_set_matches_make_run() {
        let set = Nic::default_set();
        let kinds: Vec<_> = set.iter().map(|n| n.kind.console_name()).collect();
        assert_eq!(
            kinds,
            [
                "virtio-net",
                "virtio-net",
                "virtio-net",
                "e1000",
                "virtio-net",
                "virtio-net"
            ]
        );
        assert_eq!(set[3].mac.to_string(), "52:54:00:00:00:04");
        assert_eq!(nic_pci_addr(3), "00:06.0");
        assert_eq!(nic_pci_addr(7), "00:0a.0");
    }

    #[test]
    fn qemu_args_follow_the_documented_line() {
        let cfg = QemuConfig {
            qemu: "qemu".into(),
            elf: "/k/aggdom".into(),
            cmdline: Some("a=b c".into()),
            memory_mib: 64,
            nics: vec![
                Nic::new(NicKind::VirtioNet, MacAddr::qemu(1)),
                Nic::new(NicKind::VirtioNetModern, MacAddr::qemu(2)),
                Nic::new(NicKind::E1000, MacAddr::qemu(3)),
            ],
            pcap_dir: Some("/p".into()),
            extra_args: vec!["-S".into()],
            ..QemuConfig::default()
        };
        let run = RunPaths {
            qmp_sock: "/t/qmp.sock".into(),
            nic_ports: vec![(1001, 2001), (1002, 2002), (1003, 2003)],
        };
        let line = cfg.args(&run).join(" ");
        let expected = [
            "-machine pc -nodefaults -display none -m 64M",
            "-chardev stdio,id=ser0,signal=off -serial chardev:ser0",
            "-qmp unix:/t/qmp.sock,server=on,wait=off",
            "-device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot",
            "-kernel /k/aggdom -append a=b c",
            "-netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=1001,\
             remote.type=inet,remote.host=127.0.0.1,remote.port=2001",
            "-device virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:00:00:01,addr=0x3",
            "-object filter-dump,id=f0,netdev=n0,file=/p/nic0.pcap",
            "-netdev dgram,id=n1,local.type=inet,local.host=127.0.0.1,local.port=1002,\
             remote.type=inet,remote.host=127.0.0.1,remote.port=2002",
            "-device virtio-net-pci,disable-legacy=on,netdev=n1,id=nic1,mac=52:54:00:00:00:02,addr=0x4",
            "-object filter-dump,id=f1,netdev=n1,file=/p/nic1.pcap",
            "-netdev dgram,id=n2,local.type=inet,local.host=127.0.0.1,local.port=1003,\
             remote.type=inet,remote.host=127.0.0.1,remote.port=2003",
            "-device e1000,netdev=n2,id=nic2,mac=52:54:00:00:00:03,addr=0x5",
            "-object filter-dump,id=f2,netdev=n2,file=/p/nic2.pcap",
            "-S",
        ]
        .join(" ");
        assert_eq!(line, expected);
        // `-append` keeps the command line as one argument.
        assert!(cfg.args(&run).contains(&"a=b c".to_string()));
    }

    #[test]
    fn other_machine_types_and_qemu_chosen_slots() {
        let cfg = QemuConfig {
            machine: "q35".into(),
            fixed_pci_slots: false,
            nics: vec![Nic::new(NicKind::E1000, MacAddr::qemu(9))],
            ..QemuConfig::default()
        };
        let run = RunPaths {
            qmp_sock: "/q".into(),
            nic_ports: vec![(1, 2)],
        };
        let args = cfg.args(&run);
        assert_eq!(args[..2], ["-machine", "q35"]);
        assert!(
            args.contains(&"e1000,netdev=n0,id=nic0,mac=52:54:00:00:00:09".to_string()),
            "{args:?}"
        );
    }

    #[test]
    fn elf_defaults_to_the_workspace_target() {
        if std::env::var_os("AGGDOM_ELF").is_none() {
            assert!(default_elf().ends_with("target/x86_64-unknown-none/release/aggdom"));
            assert!(workspace_root().join("Cargo.toml").exists());
        }
    }
}
