//! One aggdom machine: the QEMU process and the harness's ends of its serial
//! console, NICs and QMP monitor.

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{pcap_path, MacAddr, Nic, NicKind, QemuConfig, RunPaths};
use crate::error::{Error, Result};
use crate::json::Json;
use crate::net::{FrameIo, NicCounters, Nics, Received};
use crate::qmp::Qmp;
use crate::serial::{self, parse_reply, Pattern, Serial, Wait};

/// How many times QEMU is started again when it lost the race for a UDP
/// port (see `ports`).
const START_ATTEMPTS: usize = 5;
/// How long QEMU gets to exit on SIGTERM before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Serial lines shown in failure messages.
const TAIL_LINES: usize = 40;

/// Builds a [`Machine`]: start from [`Machine::builder`], add NICs, then
/// [`start`](MachineBuilder::start) or [`boot`](MachineBuilder::boot).
#[derive(Clone, Debug, Default)]
pub struct MachineBuilder {
    config: QemuConfig,
}

impl MachineBuilder {
    /// Boots this kernel ELF instead of the default ([`crate::default_elf`]).
    pub fn elf(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.elf = path.into();
        self
    }

    /// The kernel command line (`-append`).
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.config.cmdline = Some(cmdline.into());
        self
    }

    /// Guest RAM in MiB (default 128).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.config.memory_mib = mib;
        self
    }

    /// The QEMU machine type (default `pc`).
    pub fn machine_type(mut self, machine: impl Into<String>) -> Self {
        self.config.machine = machine.into();
        self
    }

    /// Lets QEMU choose the NICs' PCI slots instead of `3 + i`.
    pub fn auto_pci_slots(mut self) -> Self {
        self.config.fixed_pci_slots = false;
        self
    }

    /// Adds a NIC; NIC `i` (in the order added) sits at PCI `00:0(3+i).0`.
    pub fn nic(mut self, kind: NicKind, mac: MacAddr) -> Self {
        self.config.nics.push(Nic::new(kind, mac));
        self
    }

    /// Adds several NICs.
    pub fn nics(mut self, nics: impl IntoIterator<Item = Nic>) -> Self {
        self.config.nics.extend(nics);
        self
    }

    /// Adds [`Nic::default_set`], the six NICs `make run` boots.
    pub fn default_nics(self) -> Self {
        self.nics(Nic::default_set())
    }

    /// Writes `<dir>/nic<i>.pcap` for every NIC (QEMU `filter-dump`).
    pub fn pcap_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.pcap_dir = Some(dir.into());
        self
    }

    /// Appends raw arguments to the QEMU command line.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.config.extra_args.push(arg.into());
        self
    }

    /// How long to wait for the first prompt (default 30 s).
    pub fn boot_timeout(mut self, t: Duration) -> Self {
        self.config.boot_timeout = t;
        self
    }

    /// How long [`Machine::command`] waits for a reply (default 10 s).
    pub fn command_timeout(mut self, t: Duration) -> Self {
        self.config.command_timeout = t;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &QemuConfig {
        &self.config
    }

    /// Starts QEMU; returns once the kernel printed its first byte (or the
    /// boot timeout passed). Nothing has been consumed from the console.
    pub fn start(self) -> Result<Machine> {
        Machine::start(self.config)
    }

    /// Starts QEMU and waits for the first prompt.
    pub fn boot(self) -> Result<Machine> {
        let mut m = self.start()?;
        m.wait_prompt()?;
        Ok(m)
    }
}

/// A running (or exited) QEMU with aggdom in it. Dropping it kills QEMU and
/// removes its temporary directory; if the thread is panicking, the serial
/// tail and QEMU's stderr are printed first.
pub struct Machine {
    config: QemuConfig,
    dir: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
    spawned_at: Instant,
    serial: Serial,
    nics: Nics,
    /// Per NIC: (QEMU's UDP port, the harness's UDP port).
    nic_ports: Vec<(u16, u16)>,
    qmp: Option<Qmp>,
}

/// A fresh, private directory for one machine's sockets and logs.
fn make_temp_dir() -> io::Result<PathBuf> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "aggdom-{}-{}-{nanos:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&dir)?;
    Ok(dir)
}

/// Stops a child: SIGTERM, a grace period, then SIGKILL; reaps it.
fn stop_child(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    let _ = crate::sys::kill(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// The decoded value QEMU's isa-debug-exit device was written with, if
/// `status` came from it: writing v exits with status (v << 1) | 1.
/// (Status 1 is ambiguous: v = 0, or QEMU's own failure.)
pub fn debug_exit_value(status: ExitStatus) -> Option<i32> {
    status.code().filter(|c| c & 1 == 1).map(|c| c >> 1)
}

enum Started {
    Running(Child, Serial, Instant),
    /// QEMU lost the race for a UDP port: try again with fresh ones.
    PortTaken(String),
}

impl Machine {
    /// A builder with the default configuration and no NICs.
    pub fn builder() -> MachineBuilder {
        MachineBuilder::default()
    }

    /// Starts QEMU with `config` (see [`MachineBuilder::start`]).
    pub fn start(config: QemuConfig) -> Result<Machine> {
        if !config.elf.is_file() {
            return Err(Error::Spawn(format!(
                "kernel ELF {} not found: build it first (`make build`) or set AGGDOM_ELF",
                config.elf.display()
            )));
        }
        if let Some(dir) = &config.pcap_dir {
            fs::create_dir_all(dir)?;
        }
        let dir = make_temp_dir()?;
        match Self::start_in(config, dir.clone()) {
            Ok(m) => Ok(m),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn start_in(config: QemuConfig, dir: PathBuf) -> Result<Machine> {
        let mut nics = Nics::bind(config.nics.len())?;
        let harness_ports = nics.ports()?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let qemu_ports = crate::ports::free_udp_ports(config.nics.len())?;
            let run = RunPaths {
                qmp_sock: dir.join("qmp.sock"),
                nic_ports: qemu_ports
                    .iter()
                    .copied()
                    .zip(harness_ports.iter().copied())
                    .collect(),
            };
            nics.connect(&qemu_ports)?;
            match Self::spawn(&config, &dir, &run)? {
                Started::Running(child, serial, spawned_at) => {
                    return Ok(Machine {
                        config,
                        dir,
                        child,
                        status: None,
                        spawned_at,
                        serial,
                        nics,
                        nic_ports: run.nic_ports,
                        qmp: None,
                    });
                }
                Started::PortTaken(stderr) => last = stderr,
            }
        }
        Err(Error::Spawn(format!(
            "QEMU could not bind its UDP ports {START_ATTEMPTS} times:\n{last}"
        )))
    }

    fn spawn(config: &QemuConfig, dir: &Path, run: &RunPaths) -> Result<Started> {
        let _ = fs::remove_file(&run.qmp_sock);
        let mut cmd = Command::new(&config.qemu);
        cmd.args(config.args(run))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(dir.join("qemu.stderr"))?);
        let spawned_at = Instant::now();
        let mut child = crate::sys::spawn_tied_to_process(cmd)
            .map_err(|e| Error::Spawn(format!("{}: {e}", config.qemu.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            stop_child(&mut child);
            return Err(Error::Spawn("no stdio pipes".into()));
        };
        let echo = std::env::var_os("AGGDOM_SERIAL").is_some_and(|v| !v.is_empty() && v != "0");
        let serial = Serial::start(
            File::from(OwnedFd::from(stdout)),
            File::from(OwnedFd::from(stdin)),
            echo,
        )?;

        // A UDP port lost to another process shows as QEMU exiting before
        // the kernel says anything.
        if !serial.wait_any_output(config.boot_timeout) && serial.is_closed() {
            let status = child.wait().ok();
            let err = fs::read_to_string(dir.join("qemu.stderr")).unwrap_or_default();
            if crate::ports::is_bind_failure(&err) {
                return Ok(Started::PortTaken(err));
            }
            let status = status.map(|s| s.to_string()).unwrap_or_default();
            return Err(Error::Spawn(format!(
                "QEMU exited at start ({status}):\n{err}"
            )));
        }
        Ok(Started::Running(child, serial, spawned_at))
    }

    // --- what is running -------------------------------------------------

    /// The configuration this machine was started with.
    pub fn config(&self) -> &QemuConfig {
        &self.config
    }

    /// The NICs, in PCI order.
    pub fn nics(&self) -> &[Nic] {
        &self.config.nics
    }

    /// When QEMU was spawned (for boot-time measurements).
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Host CPU time QEMU has used so far (utime + stime of all its
    /// threads), in seconds; `None` if `/proc` cannot tell.
    pub fn cpu_secs(&self) -> Option<f64> {
        crate::sys::cpu_secs(self.pid())
    }

    /// This machine's private temporary directory (removed on drop).
    pub fn temp_dir(&self) -> &Path {
        &self.dir
    }

    /// NIC `nic`'s pcap file, if a pcap directory was configured.
    pub fn pcap_path(&self, nic: usize) -> Option<PathBuf> {
        self.config.pcap_dir.as_deref().map(|d| pcap_path(d, nic))
    }

    /// What QEMU wrote to stderr so far.
    pub fn qemu_stderr(&self) -> String {
        fs::read_to_string(self.dir.join("qemu.stderr")).unwrap_or_default()
    }

    /// QEMU's exit status, if it has exited (does not wait).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The serial tail, QEMU's stderr and state, for failure messages.
    pub fn diagnostics(&mut self) -> String {
        let state = match self.try_exit_status() {
            Some(s) => format!("exited ({s})"),
            None => "running".to_string(),
        };
        let stderr = self.qemu_stderr();
        format!(
            "--- serial, last {TAIL_LINES} lines ---\n{}\n--- QEMU stderr ---\n{}\n--- QEMU {state}, pid {}, {} ---",
            serial::tail(&self.serial.transcript(), TAIL_LINES),
            if stderr.trim().is_empty() { "(empty)" } else { stderr.trim_end() },
            self.child.id(),
            self.dir.display(),
        )
    }

    // --- serial console --------------------------------------------------

    /// Waits until `pattern` (a `&str` substring or a [`Pattern::regex`])
    /// appears in console output not consumed yet; returns that output up
    /// to the end of the match and consumes it.
    pub fn wait_for(&mut self, pattern: impl Into<Pattern>, timeout: Duration) -> Result<String> {
        let pattern = pattern.into();
        self.wait(&pattern, timeout, || pattern.to_string())
    }

    fn wait(
        &mut self,
        pattern: &Pattern,
        timeout: Duration,
        what: impl FnOnce() -> String,
    ) -> Result<String> {
        match self.serial.wait_for(pattern, timeout) {
            Wait::Found(text) => Ok(text),
            Wait::TimedOut => Err(Error::Timeout {
                what: what(),
                context: self.diagnostics(),
            }),
            Wait::Closed => {
                // EOF on the console means QEMU is exiting: collect its status.
                let _ = self.wait_exit_quiet(Duration::from_secs(5));
                match self.status {
                    Some(status) => Err(Error::Exited {
                        what: what(),
                        status,
                        context: self.diagnostics(),
                    }),
                    None => Err(Error::Timeout {
                        what: what(),
                        context: self.diagnostics(),
                    }),
                }
            }
        }
    }

    /// Waits for the shell prompt (with the boot timeout); returns the
    /// output before it and consumes it.
    pub fn wait_prompt(&mut self) -> Result<String> {
        let t = self.config.boot_timeout;
        self.wait_prompt_timeout(t)
    }

    /// Waits for the shell prompt for at most `timeout`.
    pub fn wait_prompt_timeout(&mut self, timeout: Duration) -> Result<String> {
        let prompt = Pattern::Substring(self.config.prompt.clone());
        self.wait(&prompt, timeout, || "the prompt".into())
    }

    /// Sends raw bytes to the console.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let t = self.config.command_timeout;
        let Err(e) = self.serial.write(bytes, t) else {
            return Ok(());
        };
        let what = format!("the console to take {} bytes", bytes.len());
        // A broken pipe means QEMU is gone: say so, with its status.
        if let Some(status) = self.wait_exit_quiet(Duration::from_secs(1)) {
            return Err(Error::Exited {
                what,
                status,
                context: self.diagnostics(),
            });
        }
        Err(match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                what,
                context: self.diagnostics(),
            },
            _ => Error::Io(e),
        })
    }

    /// Sends `line` followed by CR (what a terminal sends for Enter).
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\r');
        self.send_bytes(&bytes)
    }

    /// Runs a shell command: sends `cmd` + CR and returns the reply up to
    /// the next prompt, echo stripped, lines joined with `\n`.
    pub fn command(&mut self, cmd: &str) -> Result<String> {
        let t = self.config.command_timeout;
        self.command_timeout(cmd, t)
    }

    /// [`Machine::command`] with its own timeout.
    pub fn command_timeout(&mut self, cmd: &str, timeout: Duration) -> Result<String> {
        self.send_line(cmd)?;
        let prompt = Pattern::Substring(self.config.prompt.clone());
        let raw = self.wait(&prompt, timeout, || format!("the reply to {cmd:?}"))?;
        Ok(parse_reply(&raw, cmd, &self.config.prompt))
    }

    /// Everything the console printed so far (decoded, invalid UTF-8 as
    /// U+FFFD).
    pub fn transcript(&self) -> String {
        self.serial.transcript()
    }

    /// Everything the console printed so far, as raw bytes.
    pub fn serial_bytes(&self) -> Vec<u8> {
        self.serial.raw()
    }

    /// Console output not consumed by a wait yet (does not consume it).
    pub fn unread(&self) -> String {
        self.serial.unread()
    }

    /// Consumes all console output received so far.
    pub fn skip_output(&mut self) {
        self.serial.skip_all();
    }

    // --- frames ----------------------------------------------------------

    fn check_nic(&self, nic: usize) -> Result<()> {
        if nic < self.nics.len() {
            Ok(())
        } else {
            Err(Error::NoSuchNic(nic))
        }
    }

    /// Sends one Ethernet frame into NIC `nic` (it arrives at aggdom as if
    /// from the wire).
    pub fn send_frame(&self, nic: usize, frame: &[u8]) -> Result<()> {
        self.check_nic(nic)?;
        Ok(self.nics.send(nic, frame)?)
    }

    /// Sends frames into NIC `nic`, in order.
    pub fn send_frames<F: AsRef<[u8]>>(
        &self,
        nic: usize,
        frames: impl IntoIterator<Item = F>,
    ) -> Result<()> {
        frames
            .into_iter()
            .try_for_each(|f| self.send_frame(nic, f.as_ref()))
    }

    /// The next frame aggdom sent out of NIC `nic`, waiting up to `timeout`.
    /// Frames of other NICs stay queued.
    pub fn recv_frame(&self, nic: usize, timeout: Duration) -> Option<Vec<u8>> {
        self.recv_where(timeout, |r| r.nic == nic).map(|r| r.data)
    }

    /// The next frame out of any NIC, in arrival order.
    pub fn recv_any(&self, timeout: Duration) -> Option<Received> {
        self.recv_where(timeout, |_| true)
    }

    /// The earliest frame (from any NIC) for which `pred` holds, waiting up
    /// to `timeout`; frames that do not match stay queued.
    pub fn recv_where(
        &self,
        timeout: Duration,
        pred: impl FnMut(&Received) -> bool,
    ) -> Option<Received> {
        self.nics.recv_where(timeout, pred)
    }

    /// NIC `nic` as a [`crate::tcp::Link`], for [`crate::tcp::request`].
    pub fn link(&self, nic: usize) -> crate::tcp::NicLink<'_> {
        crate::tcp::NicLink { machine: self, nic }
    }

    /// Removes and returns the frames queued from NIC `nic`.
    pub fn drain(&self, nic: usize) -> Vec<Vec<u8>> {
        self.nics
            .take_all(|r| r.nic == nic)
            .into_iter()
            .map(|r| r.data)
            .collect()
    }

    /// Removes and returns every queued frame, in arrival order.
    pub fn drain_all(&self) -> Vec<Received> {
        self.nics.take_all(|_| true)
    }

    /// What the harness sent into and received from NIC `nic`.
    pub fn nic_counters(&self, nic: usize) -> NicCounters {
        self.nics.counters(nic)
    }

    /// A handle that sends and takes this machine's frames from another
    /// thread while this one uses the console ([`FrameIo`]).
    pub fn frame_io(&self) -> FrameIo {
        self.nics.io()
    }

    /// NIC `nic`'s loopback UDP ports: (QEMU's end, the harness's end), to
    /// find their sockets in `/proc/net/udp`.
    pub fn nic_udp_ports(&self, nic: usize) -> Option<(u16, u16)> {
        self.nic_ports.get(nic).copied()
    }

    // --- QMP -------------------------------------------------------------

    fn qmp_session(&mut self) -> Result<&mut Qmp> {
        if self.qmp.is_none() {
            let t = self.config.command_timeout;
            self.qmp = Some(Qmp::connect(&self.dir.join("qmp.sock"), t)?);
        }
        Ok(self.qmp.as_mut().expect("just connected"))
    }

    /// Runs a QMP command given as JSON text, e.g.
    /// `{"execute": "query-rx-filter", "arguments": {"name": "nic0"}}`;
    /// returns its `return` value.
    pub fn qmp(&mut self, cmd: &str) -> Result<Json> {
        let cmd = Json::parse(cmd).map_err(Error::Qmp)?;
        self.qmp_session()?.execute(&cmd)
    }

    /// Runs QMP command `name` with `arguments` (an object, or `None`).
    pub fn qmp_execute(&mut self, name: &str, arguments: Option<Json>) -> Result<Json> {
        let mut cmd = vec![("execute", Json::from(name))];
        if let Some(a) = arguments {
            cmd.push(("arguments", a));
        }
        self.qmp_session()?.execute(&Json::object(cmd))
    }

    /// Takes NIC `nic`'s link down or up (QMP `set_link` on its netdev
    /// `n<nic>`, which QEMU passes on to the NIC model).
    pub fn set_link(&mut self, nic: usize, up: bool) -> Result<()> {
        self.check_nic(nic)?;
        let args = Json::object([
            ("name", Json::from(format!("n{nic}"))),
            ("up", Json::from(up)),
        ]);
        self.qmp_execute("set_link", Some(args)).map(drop)
    }

    /// QMP events received so far (taken out).
    pub fn qmp_events(&mut self) -> Vec<Json> {
        self.qmp
            .as_mut()
            .map(|q| std::mem::take(&mut q.events))
            .unwrap_or_default()
    }

    // --- exit ------------------------------------------------------------

    fn wait_exit_quiet(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit_status() {
                // Let the reader take the console's last bytes.
                self.serial.wait_closed(Duration::from_secs(2));
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for QEMU to exit and returns its status: 0 after an ACPI
    /// power-off, `(v << 1) | 1` after the kernel wrote v to isa-debug-exit
    /// (see [`debug_exit_value`]).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match self.wait_exit_quiet(timeout) {
            Some(s) => Ok(s),
            None => Err(Error::Timeout {
                what: "QEMU to exit".into(),
                context: self.diagnostics(),
            }),
        }
    }

    /// Kills QEMU now (SIGTERM, then SIGKILL after a grace period).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = stop_child(&mut self.child);
        }
        self.status
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "aggdom-harness: test failed; machine state:\n{}",
                self.diagnostics()
            );
        }
        self.kill();
        self.qmp = None;
        if std::env::var_os("AGGDOM_KEEP_TMP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_decoding() {
        use std::os::unix::process::ExitStatusExt;
        // ExitStatus from a raw wait status: exit code c is c << 8.
        let st = |c: i32| ExitStatus::from_raw(c << 8);
        assert_eq!(debug_exit_value(st(0)), None);
        assert_eq!(debug_exit_value(st(3)), Some(1));
        assert_eq!(debug_exit_value(st(0x21)), Some(0x10));
        assert_eq!(debug_exit_value(ExitStatus::from_raw(9)), None); // killed
    }

    #[test]
    fn machines_can_be_shared_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<Machine>();
    }

    #[test]
    fn missing_elf_is_a_clear_error() {
        let e = Machine::builder()
            .elf("/nonexistent/aggdom")
            .start()
            .err()
            .unwrap();
        assert!(e.to_string().contains("make build"), "{e}");
    }

    #[test]
    fn temp_dirs_are_distinct() {
        let a = make_temp_dir().unwrap();
        let b = make_temp_dir().unwrap();
        assert_ne!(a, b);
        fs::remove_dir_all(a).unwrap();
        fs::remove_dir_all(b).unwrap();
    }
}
