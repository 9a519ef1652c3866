//! Test harness for aggdom: boots the real kernel ELF in QEMU and drives it
//! the way a person and a network would.
//!
//! A [`Machine`] owns one QEMU process and everything around it: the serial
//! console (a background reader collects every byte; [`Machine::wait_for`],
//! [`Machine::command`]), one UDP `dgram` endpoint per NIC carrying raw
//! Ethernet frames ([`Machine::send_frame`], [`Machine::recv_frame`],
//! [`Machine::recv_any`]), QMP ([`Machine::set_link`], [`Machine::qmp`]) and
//! the exit status ([`Machine::wait_exit`]). Dropping it kills QEMU and
//! removes its temporary directory, also when a test panics; QEMU is started
//! with `PR_SET_PDEATHSIG` so it dies with the test process too. A `Machine`
//! is `Send + Sync`: frames can be sent from one thread while another waits
//! for them (`send_frame`/`recv_*` take `&self`).
//!
//! [`frame`] builds and parses the Ethernet/ARP/IPv4/UDP/TCP/ICMP frames
//! tests send and expect, [`frame6`] the IPv6 ones (UDP, TCP, ICMPv6 echo,
//! NDP); [`tcp`] is a one-request TCP client over raw frames, IPv4 or
//! IPv6 (for aggdom's own IP stack); [`pcap`] reads the per-NIC captures; [`switch`] is a host-side learning switch for tests that
//! put the harness between aggdom's uplinks and remote hosts.
//!
//! ```no_run
//! use aggdom_harness::{Machine, NicKind, MacAddr};
//! let mut m = Machine::builder()
//!     .nic(NicKind::VirtioNet, MacAddr::qemu(1))
//!     .nic(NicKind::E1000, MacAddr::qemu(2))
//!     .boot()
//!     .unwrap();
//! assert_eq!(m.command("version").unwrap(), "aggdom 0.1.0");
//! ```

#![deny(unsafe_code)] // allowed only in `sys` (pre_exec, prctl, kill, setsockopt)
#![deny(missing_docs)]

mod config;
mod error;
pub mod frame;
pub mod frame6;
pub mod json;
mod machine;
mod net;
pub mod nicstat;
pub mod pcap;
mod ports;
mod qmp;
pub mod rig;
mod serial;
pub mod soak;
pub mod switch;
mod sys;
pub mod tcp;

pub use config::{
    default_elf, nic_pci_addr, workspace_root, MacAddr, Nic, NicKind, QemuConfig, DEFAULT_PROMPT,
};
pub use error::{Error, Result};
pub use machine::{debug_exit_value, Machine, MachineBuilder};
pub use net::{FrameIo, NicCounters, Received};
pub use regex_lite;
pub use serial::{parse_reply, Pattern};
