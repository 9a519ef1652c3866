//! The console shell: one command per line, one reply, then the prompt.
use crate::nics::{self, PciAddr};
use crate::{console, memory, power, println, time};
use line_editor::{Input, LineEditor, MAX_LINE};

pub const PROMPT: &str = "aggdom> ";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

struct Command {
    name: &'static str,
    args: &'static str,
    help: &'static str,
    run: fn(&[&str]) -> Result<(), &'static str>,
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
        name: "nics",
        args: "",
        help: "list the NICs found: PCI address, id, kind, MAC, link",
        run: nics,
    },
    Command {
        name: "mem",
        args: "",
        help: "heap used and free",
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
}

impl Shell {
    pub const fn new() -> Self {
        Self {
            editor: LineEditor::new(),
        }
    }

    pub fn start(&self) {
        crate::print!("{PROMPT}");
    }

    /// Feeds one input byte; runs a command when a line completes.
    pub fn feed(&mut self, byte: u8) {
        match self.editor.push(byte) {
            Input::Nothing => {}
            Input::Echo(bytes) => console::write_bytes(bytes),
            Input::EchoChar(c) => console::write_bytes(&[c]),
            Input::Line(line) => {
                println!();
                run_line(line);
                crate::print!("{PROMPT}");
            }
            Input::TooLong => {
                println!();
                println!("error: line too long (at most {} characters)", MAX_LINE);
                crate::print!("{PROMPT}");
            }
            Input::Cancelled => {
                println!("^C");
                crate::print!("{PROMPT}");
            }
        }
    }
}

fn run_line(line: &str) {
    let mut words = [""; 8];
    let mut count = 0;
    for word in line.split_ascii_whitespace() {
        if count == words.len() {
            println!("error: too many arguments");
            return;
        }
        words[count] = word;
        count += 1;
    }
    let Some((&name, args)) = words[..count].split_first() else {
        return;
    };
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(cmd) => {
            if let Err(msg) = (cmd.run)(args) {
                println!("error: {msg} (usage: {} {})", cmd.name, cmd.args);
            }
        }
        None => println!("error: unknown command '{name}' (try 'help')"),
    }
}

fn no_args(args: &[&str]) -> Result<(), &'static str> {
    if args.is_empty() {
        Ok(())
    } else {
        Err("takes no arguments")
    }
}

fn help(args: &[&str]) -> Result<(), &'static str> {
    no_args(args)?;
    for c in COMMANDS {
        let usage = if c.args.is_empty() {
            c.name.into()
        } else {
            alloc::format!("{} {}", c.name, c.args)
        };
        println!("  {usage:<28} {}", c.help);
    }
    Ok(())
}

fn version(args: &[&str]) -> Result<(), &'static str> {
    no_args(args)?;
    println!("aggdom {VERSION}");
    Ok(())
}

fn nics(args: &[&str]) -> Result<(), &'static str> {
    no_args(args)?;
    println!(
        "{:<3} {:<8} {:<10} {:<11} {:<18} link",
        "#", "pci", "id", "kind", "mac"
    );
    nics::with_functions(|functions| {
        let usable = functions
            .iter()
            .filter_map(|f| Some((f, f.nic.as_ref()?)))
            .filter(|(_, n)| n.problem.is_none());
        for (index, (f, nic)) in usable.enumerate() {
            let mac = nic.mac.map(|m| alloc::format!("{m}")).unwrap_or_default();
            println!(
                "{index:<3} {:<8} {:04x}:{:04x}  {:<11} {mac:<18} {}",
                alloc::format!("{}", PciAddr(f.at)),
                f.vendor_id,
                f.device_id,
                nic.kind.name(),
                if nic.link_up { "up" } else { "down" }
            );
        }
    });
    Ok(())
}

fn mem(args: &[&str]) -> Result<(), &'static str> {
    no_args(args)?;
    let (used, free) = memory::heap_used_free();
    println!("heap used {used} bytes, free {free} bytes");
    Ok(())
}

fn uptime(args: &[&str]) -> Result<(), &'static str> {
    no_args(args)?;
    let ms = time::now_ns() / 1_000_000;
    println!("uptime {}.{:03} s", ms / 1000, ms % 1000);
    Ok(())
}

fn shutdown(args: &[&str]) -> Result<(), &'static str> {
    no_args(args)?;
    println!("shutting down");
    power::shutdown()
}

fn fault(args: &[&str]) -> Result<(), &'static str> {
    match args {
        ["int3"] => x86_64::instructions::interrupts::int3(),
        ["pagefault"] => {
            // 64 GiB: canonical but outside the boot identity map.
            // SAFETY: none; this read is meant to fault (the point of the command).
            let v = unsafe { core::ptr::read_volatile(0x10_0000_0000 as *const u64) };
            println!("read {v:#x}: no fault?");
        }
        ["panic"] => panic!("deliberate panic from the console"),
        _ => return Err("expects one of int3, pagefault, panic"),
    }
    Ok(())
}
