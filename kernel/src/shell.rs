//! The console shell: one command per line, one reply, then the prompt.
use crate::domain::{pci_text, Domain};
use crate::{console, memory, power, print, println, time};
use aggregation::{IdentityId, UplinkId};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;
use line_editor::{Input, LineEditor, MAX_LINE};

pub const PROMPT: &str = "aggdom> ";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The most repetitions one console command may ask for (`nic <n> send`,
/// `macbench`): a command runs to completion before the console reads
/// again, so an unbounded count would take the console away.
const MAX_CONSOLE_REPEAT: usize = 100_000;

type Run = fn(&mut Domain, &[&str]) -> Result<(), String>;

struct Command {
    name: &'static str,
    args: &'static str,
    help: &'static str,
    run: Run,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "",
        help: "list commands",
        run: help,
    },
    Command {
        name: "version",
        args: "",
        help: "print the aggdom version",
        run: version,
    },
    Command {
        name: "status",
        args: "",
        help: "one screen: version, uptime, mode, NICs, guests, identities, capture",
        run: status,
    },
    Command {
        name: "nics",
        args: "",
        help: "every NIC: PCI address, id, kind, MAC, link, role, counters",
        run: nics,
    },
    Command {
        name: "nic",
        args: "<n> [mac <mac> | filter <mac>,...|none | promisc on|off | send <dst> <len> [count] | tso <dst> <len> <mss> [v6] | reset | macbench <count>]",
        help: "one NIC: show it, or drive it directly (tests, diagnosis)",
        run: nic,
    },
    Command {
        name: "forward",
        args: "<from> <to> | off",
        help: "bare NIC-to-NIC forwarding between spare NICs",
        run: forward,
    },
    Command {
        name: "guests",
        args: "",
        help: "guests: port, MAC, IPs",
        run: guests,
    },
    Command {
        name: "bindings",
        args: "",
        help: "each guest IP's identities, and who holds each identity",
        run: bindings,
    },
    Command {
        name: "bind",
        args: "<ip>|<prefix> <id>[,<id>...]|none|auto",
        help: "bind a guest IP (or IPv6 prefix) to identities",
        run: bind,
    },
    Command {
        name: "pin",
        args: "<identity>",
        help: "keep an identity on its uplink",
        run: pin,
    },
    Command {
        name: "unpin",
        args: "<identity>",
        help: "let an identity move again",
        run: unpin,
    },
    Command {
        name: "exclusive",
        args: "<uplink> on|off",
        help: "an exclusive uplink never changes its MAC",
        run: exclusive,
    },
    Command {
        name: "swap",
        args: "<identity> <identity>",
        help: "swap two identities' uplinks",
        run: swap,
    },
    Command {
        name: "rebalance",
        args: "",
        help: "run a rebalance check now",
        run: rebalance,
    },
    Command {
        name: "mode",
        args: "",
        help: "the MAC steering mode",
        run: mode,
    },
    Command {
        name: "stats",
        args: "[--json]",
        help: "counters per uplink, guest and identity",
        run: stats,
    },
    Command {
        name: "capture",
        args: "<uplink|guest|nic> <n> [<count>|<secs>s] [mac=..] [ip=..] [ethertype=..] | stop | read <offset> [len]",
        help: "record a port's frames into a ring, read as pcap (no args: status)",
        run: capture,
    },
    Command {
        name: "watch",
        args: "",
        help: "stats every second until a key is pressed",
        run: watch,
    },
    Command {
        name: "xen",
        args: "",
        help: "Xen: domid, xenstore and grant counters, each vif's state and counters",
        run: crate::xen_net::command,
    },
    Command {
        name: "profile",
        args: "[reset]",
        help: "cycles since loop start or reset: busy vs asleep, loop phases, hypercalls by kind",
        run: crate::profile::command,
    },
    Command {
        name: "mem",
        args: "",
        help: "heap used and free, console output dropped",
        run: mem,
    },
    Command {
        name: "uptime",
        args: "",
        help: "time since boot",
        run: uptime,
    },
    Command {
        name: "shutdown",
        args: "",
        help: "power off cleanly",
        run: shutdown,
    },
    Command {
        name: "fault",
        args: "int3|pagefault|panic",
        help: "trigger a fault (tests the fault path)",
        run: fault,
    },
];

pub struct Shell {
    editor: LineEditor,
    /// While watching: when the next stats print is due.
    watch_next: Option<u64>,
}

impl Shell {
    pub const fn new() -> Self {
        Self {
            editor: LineEditor::new(),
            watch_next: None,
        }
    }

    pub fn start(&self) {
        print!("{PROMPT}");
    }

    /// Feeds one input byte; runs a command when a line completes.
    pub fn feed(&mut self, domain: &mut Domain, byte: u8) {
        if self.watch_next.take().is_some() {
            println!("(watch stopped)");
            print!("{PROMPT}");
            return;
        }
        match self.editor.push(byte) {
            Input::Nothing => {}
            Input::Echo(bytes) => console::write_bytes(bytes),
            Input::EchoChar(c) => console::write_bytes(&[c]),
            Input::Line(line) => {
                println!();
                let watching = run_line(domain, line);
                if watching {
                    self.watch_next = Some(time::now_ns());
                } else {
                    print!("{PROMPT}");
                }
            }
            Input::TooLong => {
                println!();
                println!("error: line too long (at most {MAX_LINE} characters)");
                print!("{PROMPT}");
            }
            Input::Cancelled => {
                println!("^C");
                print!("{PROMPT}");
            }
        }
    }

    /// Called from the poll loop: prints `watch` output when due.
    pub fn tick(&mut self, domain: &mut Domain, now: u64) {
        if let Some(due) = self.watch_next {
            if now >= due {
                let _ = stats(domain, &[]);
                println!("(press any key to stop)");
                self.watch_next = Some(now + 1_000_000_000);
            }
        }
    }
}

/// Runs one line; `true` when it started `watch`.
fn run_line(domain: &mut Domain, line: &str) -> bool {
    match dispatch(domain, line, &[]) {
        Ok(name) => name == "watch",
        Err(msg) => {
            println!("error: {msg}");
            false
        }
    }
}

/// Commands that make sense at a console only: `watch` never ends by
/// itself, `fault` and `shutdown` would never answer.
const CONSOLE_ONLY: &[&str] = &["watch", "fault", "shutdown"];

/// Runs one line for aggctl (the xenstore request node, ctl.rs): the same
/// command table as the console, the output returned instead of printed;
/// an error is the console's error line without `error: `.
pub fn run_remote(domain: &mut Domain, line: &str) -> Result<String, String> {
    let (result, output) = console::capture_output(|| dispatch(domain, line, CONSOLE_ONLY));
    result.map(|_| output)
}

/// Finds and runs the command; its name, or the error line's text.
fn dispatch(domain: &mut Domain, line: &str, refused: &[&str]) -> Result<&'static str, String> {
    let words: Vec<&str> = line.split_ascii_whitespace().take(9).collect();
    if words.len() > 8 {
        return Err("too many arguments".into());
    }
    let Some((&name, args)) = words.split_first() else {
        return Ok("");
    };
    let Some(cmd) = COMMANDS.iter().find(|c| c.name == name) else {
        return Err(format!("unknown command '{name}' (try 'help')"));
    };
    if refused.contains(&cmd.name) {
        return Err(format!("'{name}' works at the console only"));
    }
    match (cmd.run)(domain, args) {
        Ok(()) => Ok(cmd.name),
        Err(msg) if cmd.args.is_empty() => Err(msg),
        Err(msg) => Err(format!("{msg} (usage: {} {})", cmd.name, cmd.args)),
    }
}

fn no_args(args: &[&str]) -> Result<(), String> {
    if args.is_empty() {
        Ok(())
    } else {
        Err("takes no arguments".into())
    }
}

fn datapath(domain: &mut Domain) -> Result<&mut datapath::Datapath, String> {
    domain
        .dp
        .as_mut()
        .ok_or_else(|| String::from("no datapath: the configuration was rejected at boot"))
}

fn parse_number(s: &str, what: &str) -> Result<u8, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a {what} number"))
}

fn help(_: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    for c in COMMANDS {
        let usage = if c.args.is_empty() {
            c.name.into()
        } else {
            format!("{} {}", c.name, c.args)
        };
        println!("  {usage:<38} {}", c.help);
    }
    Ok(())
}

fn version(_: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    println!("aggdom {VERSION}");
    Ok(())
}

fn nics(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    println!(
        "{:<3} {:<8} {:<10} {:<11} {:<18} {:<5} {:<9} {:<10} {:<10} {:<8} {:<10} {:<10} {:<6} {}",
        "#",
        "pci",
        "id",
        "kind",
        "mac",
        "link",
        "role",
        "rx_frames",
        "tx_frames",
        "rx_drops",
        "rx_bytes",
        "tx_bytes",
        "promisc",
        "mac_writes"
    );
    for i in 0..domain.nics.len() {
        let (at, vendor, device, kind) = {
            let s = &domain.nics[i];
            (s.at, s.vendor_id, s.device_id, s.kind)
        };
        let role = domain.role_name(i);
        let Some(nic) = domain.nic_mut(i) else {
            continue;
        };
        let c = nic.counters();
        println!(
            "{i:<3} {:<8} {vendor:04x}:{device:04x}  {:<11} {:<18} {:<5} {role:<9} {:<10} {:<10} {:<8} {:<10} {:<10} {:<6} {}",
            pci_text(at),
            kind.name(),
            format!("{}", nic.mac()),
            if nic.link_up() { "up" } else { "down" },
            c.rx_frames,
            c.tx_frames,
            c.rx_drops,
            c.rx_bytes,
            c.tx_bytes,
            if nic.promiscuous() { "on" } else { "off" },
            c.mac_writes,
        );
    }
    Ok(())
}

fn parse_mac(s: &str) -> Result<nic::MacAddr, String> {
    s.parse().map_err(|_| format!("'{s}' is not a MAC address"))
}

fn nic(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    let Some((n, action)) = args.split_first() else {
        return Err("expects a NIC number".into());
    };
    let i = usize::from(parse_number(n, "NIC")?);
    if !action.is_empty() {
        return nic_action(domain, i, action);
    }
    let role = domain.role_name(i);
    let (at, kind) = domain
        .nics
        .get(i)
        .map(|s| (s.at, s.kind))
        .ok_or_else(|| format!("no NIC {i}"))?;
    let nic = domain.nic_mut(i).ok_or_else(|| format!("no NIC {i}"))?;
    let c = nic.counters();
    println!("nic {i}: {} {} ({role})", pci_text(at), kind.name());
    println!("  mac {} (factory {})", nic.mac(), nic.permanent_mac());
    let filter: Vec<String> = nic.filter().iter().map(|m| format!("{m}")).collect();
    println!(
        "  filter {}/{} slots: {}",
        filter.len(),
        nic.filter_slots(),
        if filter.is_empty() {
            "-".into()
        } else {
            filter.join(" ")
        }
    );
    println!(
        "  promiscuous {}, all-multicast {}",
        on_off(nic.promiscuous()),
        on_off(nic.all_multicast())
    );
    println!("  link {}", if nic.link_up() { "up" } else { "down" });
    println!(
        "  rx frames {} bytes {} drops {} missed {} errors {}",
        c.rx_frames, c.rx_bytes, c.rx_drops, c.rx_missed, c.rx_errors
    );
    println!(
        "  tx frames {} bytes {} drops {} errors {}",
        c.tx_frames, c.tx_bytes, c.tx_drops, c.tx_errors
    );
    println!(
        "  mac writes {} filter writes {} link changes {}",
        c.mac_writes, c.filter_writes, c.link_changes
    );
    Ok(())
}

/// `nic <n> <action>`: direct control of one NIC.
fn nic_action(domain: &mut Domain, i: usize, action: &[&str]) -> Result<(), String> {
    let nic = domain.nic_mut(i).ok_or_else(|| format!("no NIC {i}"))?;
    let err = |e: nic::NicError| format!("{e}");
    match action {
        ["mac", mac] => {
            let mac = parse_mac(mac)?;
            nic.set_mac(mac).map_err(err)?;
            println!("nic {i} mac {mac}");
        }
        ["filter", "none"] => {
            nic.set_filter(&[]).map_err(err)?;
            println!("nic {i} filter cleared");
        }
        ["filter", list] => {
            let macs = list
                .split(',')
                .map(parse_mac)
                .collect::<Result<Vec<_>, _>>()?;
            nic.set_filter(&macs).map_err(err)?;
            println!("nic {i} filter {} entries", macs.len());
        }
        ["promisc", state] => {
            let on = match *state {
                "on" => true,
                "off" => false,
                _ => return Err(format!("'{state}' is not on|off")),
            };
            nic.set_promiscuous(on).map_err(err)?;
            println!("nic {i} promiscuous {}", on_off(on));
        }
        ["send", dst, len, rest @ ..] => {
            let dst = parse_mac(dst)?;
            let len: usize = len
                .parse()
                .map_err(|_| format!("'{len}' is not a length"))?;
            if !(nic::MIN_FRAME_LEN..=nic::MAX_FRAME_LEN).contains(&len) {
                return Err(format!(
                    "length must be {}..={}",
                    nic::MIN_FRAME_LEN,
                    nic::MAX_FRAME_LEN
                ));
            }
            let count: usize = match rest {
                [] => 1,
                [c] => match c.parse() {
                    Ok(n) if n <= MAX_CONSOLE_REPEAT => n,
                    _ => {
                        return Err(format!(
                            "'{c}' is not a count (at most {MAX_CONSOLE_REPEAT})"
                        ))
                    }
                },
                _ => return Err("too many arguments".into()),
            };
            let src = nic.mac();
            let mut sent = 0;
            for k in 0..count {
                // A test frame: ethertype 0x88b5 (IEEE local experimental),
                // the sequence number in the first payload bytes.
                let mut fill = |buf: &mut [u8]| {
                    buf.fill(0);
                    buf[..6].copy_from_slice(&dst.0);
                    buf[6..12].copy_from_slice(&src.0);
                    buf[12..14].copy_from_slice(&[0x88, 0xb5]);
                    if len >= 18 {
                        buf[14..18].copy_from_slice(&(k as u32).to_be_bytes());
                    }
                };
                if nic.queue_tx(len, &mut fill).is_err() {
                    // Ring full: hand it to the device, give it up to
                    // 100 ms to make room (virtio-net sends from QEMU's
                    // I/O thread, later), then the same frame once more.
                    nic.flush_tx();
                    let until = time::now_ns() + 100_000_000;
                    while nic.tx_space() == 0 && time::now_ns() < until {
                        core::hint::spin_loop();
                    }
                    if nic.queue_tx(len, &mut fill).is_err() {
                        break;
                    }
                }
                sent += 1;
            }
            nic.flush_tx();
            println!("nic {i} sent {sent} frames");
        }
        ["tso", dst, len, mss, rest @ ..] => {
            // A TCP super-frame through the NIC's offload path (the device
            // segments it, or the driver in software), for the driver
            // tests: `len` bytes from the NIC's MAC to `dst`, cut into
            // `mss`-byte segments (nic::offload::tcp_test_frame).
            let dst = parse_mac(dst)?;
            let len: usize = len
                .parse()
                .ok()
                .filter(|l| (1..=nic::offload::MAX_GSO_FRAME_LEN).contains(l))
                .ok_or_else(|| format!("'{len}' is not a length"))?;
            let mss: u16 = mss
                .parse()
                .map_err(|_| format!("'{mss}' is not a segment size"))?;
            let ipv6 = match rest {
                [] => false,
                ["v6"] => true,
                _ => return Err("expected v6 or nothing after the segment size".into()),
            };
            let mut frame = alloc::vec![0u8; len];
            let req = nic::offload::tcp_test_frame(&mut frame, nic.mac(), dst, ipv6, mss)
                .ok_or("too short for the headers")?;
            let segments = req
                .gso
                .and_then(|gso| nic::offload::Segmenter::new(&frame, gso).ok())
                .map_or(0, |s| s.count());
            let until = time::now_ns() + 100_000_000;
            loop {
                match nic.queue_tx_offload(&frame, &req) {
                    Ok(()) => break,
                    // Ring full: let the device drain, up to 100 ms.
                    Err(nic::NicError::TxFull) if time::now_ns() < until => nic.flush_tx(),
                    Err(e) => return Err(format!("{e}")),
                }
            }
            nic.flush_tx();
            let by = if nic.offloads().covers(&req) {
                "device"
            } else {
                "driver"
            };
            println!("nic {i} sent {len} bytes as {segments} segments, segmented by the {by}");
        }
        ["reset"] => {
            nic.reset().map_err(err)?;
            println!("nic {i} reset");
        }
        ["macbench", count] => {
            // The price of literal mode: `count` MAC register writes,
            // alternating with a neighbour MAC, timed; the MAC is restored.
            let count: u64 = match count.parse() {
                Ok(c) if c > 0 && c <= MAX_CONSOLE_REPEAT as u64 => c,
                _ => {
                    return Err(format!(
                        "'{count}' is not a count from 1 to {MAX_CONSOLE_REPEAT}"
                    ))
                }
            };
            let mac = nic.mac();
            let mut other = mac;
            other.0[5] ^= 1;
            let start = time::now_ns();
            for k in 0..count {
                nic.set_mac(if k % 2 == 0 { other } else { mac })
                    .map_err(err)?;
            }
            let ns = time::now_ns() - start;
            nic.set_mac(mac).map_err(err)?;
            println!(
                "nic {i} macbench {count} writes {ns} ns, {} ns each",
                ns / count
            );
        }
        _ => return Err("unknown NIC action".into()),
    }
    Ok(())
}

fn forward(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    match args {
        ["off"] => {
            domain.forwards.clear();
            println!(
                "forwarding off ({} frames forwarded, {} dropped)",
                domain.forwarded, domain.forward_drops
            );
        }
        [from, to] => {
            let (from, to) = (
                usize::from(parse_number(from, "NIC")?),
                usize::from(parse_number(to, "NIC")?),
            );
            domain.start_forward(from, to)?;
            println!("forwarding nic {from} -> nic {to}");
        }
        [] => {
            println!(
                "forwarded {} frames, {} dropped; pairs {:?}",
                domain.forwarded, domain.forward_drops, domain.forwards
            );
            // Busy time per frame moved: bare forwarding vs the datapath.
            let b = domain.busy;
            println!(
                "busy: forward {} ns for {} frames; datapath {} ns for {} frames",
                b.forward_ns, b.forward_frames, b.datapath_ns, b.datapath_frames
            );
        }
        _ => return Err("expects <from> <to> or off".into()),
    }
    Ok(())
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn guests(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let ports: Vec<(u16, usize)> = domain
        .nics
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n.role {
            datapath::Role::Guest(g) => Some((g.0, i)),
            _ => None,
        })
        .collect();
    let dp = datapath(domain)?;
    println!(
        "{:<6} {:<10} {:<6} {:<18} ips",
        "guest", "name", "nic", "mac"
    );
    for (g, info) in dp.guests() {
        let nic = ports
            .iter()
            .find(|(id, _)| *id == g.0)
            .map_or(String::from("-"), |(_, i)| format!("{i}"));
        let ips: Vec<String> = info.ips.iter().map(|ip| format!("{ip}")).collect();
        let learned: Vec<String> = dp.engine().learned(g).map(|ip| format!("{ip}")).collect();
        println!(
            "{:<6} {:<10} {nic:<6} {:<18} {}{}",
            g.0,
            info.name,
            format!("{}", info.mac),
            ips.join(" "),
            if learned.is_empty() {
                String::new()
            } else {
                format!(" learned {}", learned.join(" "))
            }
        );
    }
    Ok(())
}

fn identity_list(set: aggregation::IdentitySet) -> String {
    let ids: Vec<String> = set.iter().map(|i| format!("{}", i.0)).collect();
    if ids.is_empty() {
        String::from("none (denied)")
    } else {
        ids.join(",")
    }
}

fn bindings(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let dp = datapath(domain)?;
    println!("{:<16} {:<8} identities", "ip", "guest");
    for (g, info) in dp.guests() {
        for ip in &info.ips {
            let set = dp.engine().guest_binding(g, *ip).unwrap_or_default();
            println!("{:<16} {:<8} {}", format!("{ip}"), g.0, identity_list(set));
        }
        // Learned IPv6 addresses follow their prefix (link-local ones every
        // IPv6 entry of the guest).
        for ip in dp.engine().learned(g) {
            let set = dp.engine().binding(IpAddr::V6(ip)).unwrap_or_default();
            println!(
                "{:<16} {:<8} {} (learned)",
                format!("{ip}"),
                g.0,
                identity_list(set)
            );
        }
    }
    let e = dp.engine();
    println!("{:<9} {:<18} {:<7} pinned", "identity", "mac", "holder");
    for i in 0..e.identity_count() {
        let id = IdentityId(i as u8);
        let holder = e
            .holder(id)
            .map_or(String::from("-"), |u| format!("{}", u.0));
        let mac = e.identity_mac(id).map_or(String::new(), |m| format!("{m}"));
        println!(
            "{i:<9} {mac:<18} {holder:<7} {}",
            if e.is_pinned(id) { "yes" } else { "no" }
        );
    }
    Ok(())
}

/// An address or IPv6 prefix (`fd00:1::/64`).
fn parse_ip(s: &str) -> Result<aggregation::IpNet, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an IP address or prefix"))
}

fn bind(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    let [ip, ids] = args else {
        return Err("expects an IP and identities".into());
    };
    let ip = parse_ip(ip)?;
    let dp = datapath(domain)?;
    let result = match *ids {
        "none" => dp.engine_mut().bind(ip, &[]),
        "auto" => dp.engine_mut().bind_auto(ip),
        list => {
            let ids = list
                .split(',')
                .map(|s| parse_number(s, "identity").map(IdentityId))
                .collect::<Result<Vec<_>, _>>()?;
            dp.engine_mut().bind(ip, &ids)
        }
    };
    result.map_err(|e| format!("{e}"))?;
    println!(
        "{ip} bound to {}",
        identity_list(dp.engine().binding(ip).unwrap_or_default())
    );
    Ok(())
}

fn pin(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    let [id] = args else {
        return Err("expects one identity".into());
    };
    let id = IdentityId(parse_number(id, "identity")?);
    datapath(domain)?
        .engine_mut()
        .pin(id)
        .map_err(|e| format!("{e}"))?;
    println!("identity {} pinned", id.0);
    Ok(())
}

fn unpin(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    let [id] = args else {
        return Err("expects one identity".into());
    };
    let id = IdentityId(parse_number(id, "identity")?);
    datapath(domain)?
        .engine_mut()
        .unpin(id)
        .map_err(|e| format!("{e}"))?;
    println!("identity {} unpinned", id.0);
    Ok(())
}

fn exclusive(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    let [u, state] = args else {
        return Err("expects an uplink and on|off".into());
    };
    let u = UplinkId(parse_number(u, "uplink")?);
    let on = match *state {
        "on" => true,
        "off" => false,
        _ => return Err(format!("'{state}' is not on|off")),
    };
    datapath(domain)?
        .engine_mut()
        .set_exclusive(u, on)
        .map_err(|e| format!("{e}"))?;
    println!("uplink {} exclusive {}", u.0, on_off(on));
    Ok(())
}

fn swap(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    let [a, b] = args else {
        return Err("expects two identities".into());
    };
    let (a, b) = (
        IdentityId(parse_number(a, "identity")?),
        IdentityId(parse_number(b, "identity")?),
    );
    let dp = datapath(domain)?;
    let moves = dp
        .engine_mut()
        .swap(time::now_ns(), a, b)
        .map_err(|e| format!("{e}"))?;
    dp.apply_moves(&moves);
    for m in moves.iter() {
        println!(
            "identity {} ({}) moved uplink {} -> {}",
            m.identity.0, m.mac, m.from.0, m.to.0
        );
    }
    Ok(())
}

fn rebalance(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let dp = datapath(domain)?;
    let moves = dp.engine_mut().rebalance_now(time::now_ns());
    dp.apply_moves(&moves);
    if moves.is_empty() {
        println!("balanced: no move needed");
    }
    for m in moves.iter() {
        println!(
            "identity {} ({}) moved uplink {} -> {}",
            m.identity.0, m.mac, m.from.0, m.to.0
        );
    }
    Ok(())
}

fn mode(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let dp = datapath(domain)?;
    println!("mode {}", dp.engine().mode().name());
    Ok(())
}

fn stats(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    let json = match args {
        [] => false,
        ["--json"] => true,
        _ => return Err("takes no arguments but --json".into()),
    };
    let uptime_ms = time::now_ns() / 1_000_000;
    let own_rows = domain.own.as_ref().map(|o| o.counter_rows());
    let dp = datapath(domain)?;
    let mut snap = aggdom_metrics::Snapshot::take(dp, uptime_ms);
    // The /metrics server's counters, as a scrape shows them.
    snap.extra.extend(own_rows.into_iter().flatten());
    snap.extra.extend(crate::capture::counter_rows());
    if json {
        println!("{}", aggdom_metrics::render_json(&snap));
    } else {
        print!("{}", aggdom_metrics::render_tables(&snap));
    }
    Ok(())
}

fn status(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let ms = time::now_ns() / 1_000_000;
    println!("aggdom {VERSION}, up {}.{:03} s", ms / 1000, ms % 1000);
    let (used, free) = memory::heap_used_free();
    println!("heap used {used} bytes, free {free} bytes");
    let nics = domain.nics.len();
    let Some(dp) = domain.dp.as_mut() else {
        println!("{nics} NICs; no datapath: the configuration was rejected at boot");
        return Ok(());
    };
    let e = dp.engine();
    let uplinks: Vec<String> = (0..dp.uplink_count())
        .map(|u| {
            let id = UplinkId(u as u8);
            let held: Vec<String> = e.held(id).iter().map(|i| format!("{}", i.0)).collect();
            format!(
                "{u}:{}[{}]",
                if e.is_link_up(id) { "up" } else { "down" },
                held.join(",")
            )
        })
        .collect();
    println!(
        "mode {}, {nics} NICs, uplinks {} (link[identities held]), guests {}, identities {}",
        e.mode().name(),
        uplinks.join(" "),
        dp.guests().count(),
        e.identity_count()
    );
    println!("{}", crate::capture::status_line());
    Ok(())
}

/// `capture <spec>`, `capture stop`, `capture read <offset> [len]`, or
/// `capture` alone for its status.
fn capture(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    match args {
        [] => {}
        ["stop"] => crate::capture::stop(domain.dp.as_mut()),
        ["read", offset, rest @ ..] => {
            let number = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| format!("'{s}' is not a byte count"))
            };
            let offset = number(offset)?;
            let len = match rest {
                [] => crate::capture::READ_MAX,
                [len] => number(len)?,
                _ => return Err("read takes an offset and a length".into()),
            };
            // Base64 in lines of 76, after a line saying what this is.
            let (bytes, total) = crate::capture::read(offset, len);
            println!("pcap {total} bytes, {} from {offset}", bytes.len());
            let text = aggdom_ctl::base64::encode(&bytes);
            for line in text.as_bytes().chunks(76) {
                println!("{}", core::str::from_utf8(line).unwrap_or_default());
            }
            return Ok(());
        }
        words => {
            let mut spec = aggdom_capture::Spec::parse(words.iter().copied())?;
            crate::capture::resolve(domain, &mut spec)?;
            crate::capture::start(datapath(domain)?, spec)?;
        }
    }
    println!("{}", crate::capture::status_line());
    Ok(())
}

fn watch(domain: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    datapath(domain)?;
    Ok(())
}

fn mem(_: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let (used, free) = memory::heap_used_free();
    println!(
        "heap used {used} bytes, free {free} bytes, peak {} bytes",
        memory::heap_peak()
    );
    let (uart, pv) = console::dropped();
    println!("console output dropped: com1 {uart} bytes, pv {pv} bytes");
    Ok(())
}

fn uptime(_: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let ms = time::now_ns() / 1_000_000;
    println!("uptime {}.{:03} s", ms / 1000, ms % 1000);
    Ok(())
}

fn shutdown(_: &mut Domain, args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    println!("shutting down");
    power::shutdown()
}

fn fault(_: &mut Domain, args: &[&str]) -> Result<(), String> {
    match args {
        ["int3"] => x86_64::instructions::interrupts::int3(),
        ["pagefault"] => {
            // 64 GiB: canonical but outside the boot identity map.
            // SAFETY: none; this read is meant to fault (the point of the command).
            let v = unsafe { core::ptr::read_volatile(0x10_0000_0000 as *const u64) };
            println!("read {v:#x}: no fault?");
        }
        ["panic"] => panic!("deliberate panic from the console"),
        _ => return Err("expects one of int3, pagefault, panic".into()),
    }
    Ok(())
}
