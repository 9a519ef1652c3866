//! aggdom's aggregation engine: the method of patent CN101909054A as pure,
//! allocation-free decisions.
//!
//! The engine owns the model of DESIGN.md, "The aggregation model": uplinks
//! (NICs with a factory MAC, link state, receive-filter slots, capacity),
//! identities (MACs the outside network associates with guests; identity
//! *k* starts as uplink *k*'s factory MAC; every identity is held by exactly
//! one uplink), guests (a MAC and up to four IP entries, IPv4 or IPv6
//! addresses or IPv6 prefixes, each bound to a set of identities), and
//! counters. It never touches hardware, never reads a clock
//! and never allocates: the datapath asks it what to do with each frame and
//! carries out the answer, which is a plain value.
//!
//! # Using it
//!
//! ```
//! use aggregation::*;
//! use core::net::{IpAddr, Ipv4Addr};
//!
//! let mut e = Engine::new(Config::DEFAULT); // identity mode
//! let nic0 = e.add_uplink(UplinkConfig::new(MacAddr([2, 0, 0, 0, 0, 1]))).unwrap();
//! let _nic1 = e.add_uplink(UplinkConfig::new(MacAddr([2, 0, 0, 0, 0, 2]))).unwrap();
//! let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
//! let vm = e.add_guest(MacAddr([0x52, 0x54, 0, 0, 0, 5]), &[ip]).unwrap();
//! // \[0052\]: this guest may use both NICs.
//! e.bind(ip, &[IdentityId(0), IdentityId(1)]).unwrap();
//!
//! let mut frame = [0u8; 64]; // an IPv4 frame from the guest, to the gateway
//! frame[0..6].copy_from_slice(&[0x02, 0xaa, 0, 0, 0, 1]);
//! frame[6..12].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 5]);
//! frame[12..14].copy_from_slice(&[0x08, 0x00]);
//! frame[14] = 0x45;
//! frame[26..30].copy_from_slice(&[10, 0, 0, 5]);
//! frame[30..34].copy_from_slice(&[10, 0, 0, 1]);
//! match e.guest_transmit(0, vm, &mut frame) {
//!     TxDecision::Send { uplink, steering: Steering::Rewritten { mac, .. }, .. } => {
//!         // The source MAC is now the identity `uplink` holds.
//!         assert_eq!(&frame[6..12], &mac.0);
//!         let _ = uplink; // hand the frame to that NIC
//!     }
//!     other => panic!("{other:?}"),
//! }
//! let moves = e.tick(10_000_000); // every ~10 ms: load EWMA, rebalance
//! assert!(moves.is_empty());
//! let _ = e.link_changed(20_000_000, nic0, false); // failover moves
//! ```
//!
//! # The contract
//!
//! - **Setup / control**: [`Engine::new`] (`const`), [`Engine::add_uplink`],
//!   [`Engine::add_guest`] / [`Engine::add_guest_nets`] (IPs spread over
//!   identities, \[0030\]),
//!   [`Engine::remove_guest`], [`Engine::bind`] (one, several, or no
//!   identities: \[0028\]–\[0029\], \[0052\]), [`Engine::bind_auto`],
//!   [`Engine::respread`], [`Engine::pin`] / [`Engine::unpin`] and
//!   [`Engine::set_exclusive`] (\[0051\]), [`Engine::set_own_stack`]. They
//!   return [`Error`] and change nothing on error.
//! - **Guest frame** ([`Engine::guest_transmit`], claim steps 7–10):
//!   validated (runt, malformed, ethertype, spoofed source MAC / IP; for
//!   IPv6 see below), then
//!   [`TxDecision::SwitchLocal`] / [`TxDecision::ToOwnStack`] for local
//!   destinations, `Drop(Denied)` for an empty binding, else
//!   [`TxDecision::Send`] through the least-loaded live uplink holding a
//!   bound identity. Identity mode rewrites the frame in place (source MAC,
//!   ARP sender MAC, NDP link-layer option with its checksum) and says
//!   [`Steering::Rewritten`]; literal mode leaves the frame alone and says
//!   [`Steering::WriteMacThenRestore`].
//! - **Received frame** ([`Engine::uplink_receive`]): [`RxDecision::ToGuest`]
//!   (identity mode: identity + destination IP → guest, destination MAC and
//!   ARP target rewritten to the guest's), [`RxDecision::ToOwnStack`],
//!   [`RxDecision::Flood`] for broadcasts (taken on one uplink only; it
//!   names the guests not denied in the frame's family), or a counted drop.
//!   Receive load counts delivered frames only. ARP requests for a guest go
//!   to that guest (dropped if its IP is denied); its reply goes
//!   out through the least-loaded bound identity, so peers learn different
//!   identities and receive load spreads too.
//! - **IPv6**: a guest may send from its configured addresses, from any
//!   address inside one of its prefixes and from link-local addresses
//!   (learned when first claimed, by DAD or use: at most
//!   `Config::learn_max` per guest, the longest-idle one forgotten after
//!   `learn_idle_ns` to make room; an address another guest or the own
//!   stack holds is refused as `Ip6Taken`), and from `::` for DAD, router
//!   solicitation and MLD. Learned addresses follow their prefix's binding;
//!   link-local ones and `::` the union of the guest's IPv6 bindings.
//!   NDP is checked and rewritten like ARP: every link-layer option must be
//!   the guest's MAC (`NdLladdr`) and becomes the identity (checksum
//!   patched), an NA's target must be the guest's (`NdTarget`), RAs and
//!   redirects are dropped (`RaGuard`), NDP is found behind extension
//!   headers or the frame is dropped (`Ip6ExtHeader`, `NdMalformed`). MLD
//!   reports leave through the broadcast uplink (where multicast is taken
//!   in). From the outside, a solicitation goes to its target's owner
//!   alone, other IPv6 multicast to the guests with IPv6 bound.
//! - **Own-stack frame** ([`Engine::own_transmit`], claim steps 3–6):
//!   [`OwnTxDecision::SwitchLocal`] to a guest named by its MAC, or by an
//!   identity and the guest's IP (destination MAC and ARP target rewritten
//!   to the guest's, as on receive); else the least-loaded uplink; if it
//!   does not hold the source MAC, the [`OwnTxDecision::Send`] carries the
//!   swap as [`Moves`].
//! - **Time** ([`Engine::tick`], every `tick_interval_ns`, 10 ms by
//!   default): rate EWMAs from the bytes counted, and at most every
//!   `rebalance_interval_ns` one rebalancing swap (\[0034\]) with hysteresis
//!   and a minimum dwell per identity. Rebalancing weighs only the load that
//!   follows an identity (transmit of IPs bound to it alone, and receive):
//!   traffic of IPs bound to several identities already picks the
//!   least-loaded uplink per frame, and fills whatever room a move makes. A
//!   swap is made only when it lowers the busier uplink: with equal NICs,
//!   \[0050\]'s swap would only trade places. The console's
//!   [`Engine::swap`] and [`Engine::rebalance_now`] do the same on demand.
//! - **Links** ([`Engine::link_changed`]): failover and return, bounded by
//!   filter slots, respecting pinned identities and exclusive uplinks.
//! - **Moves**: for every [`Move`], reprogram the two uplinks' filters to
//!   [`Engine::held`] (and, in literal mode, the MAC register to
//!   [`Engine::uplink_mac`]), then send [`learning_frame`] from `to`.
//! - **Counters**: [`Engine::uplink_counters`], [`Engine::guest_counters`],
//!   [`Engine::identity_counters`], [`Engine::counters`], [`Engine::load`]:
//!   plain `u64` fields.
//!
//! Decisions never panic on any frame bytes and never allocate (both are
//! tested: fuzzing, property tests and a counting allocator).
//!
//! # Known limits
//!
//! - Identities are one per uplink; a guest IP bound to one identity can use
//!   at most one uplink at a time (the patent's granularity), so after a
//!   failover two identities' guests share one uplink until it returns.
//! - Receive spreading is per peer: a peer (or a router, for everything
//!   behind it) keeps the identity its last ARP reply named.
//! - Guests must send from their configured IPs: DHCP from 0.0.0.0 is
//!   dropped as spoofed (ARP probes and IPv6 DAD are allowed). Own-stack
//!   broadcasts are not copied to guests. DHCPv6 is not guarded (only
//!   router advertisements and redirects are).
//!
//! # Testing
//!
//! `cargo test -p aggregation` runs the table tests (claim steps, the
//! worked example \[0049\]–\[0052\], receive, failover, bindings), the property
//! tests and the fuzz entry on random bytes, and the allocation check.
//! `cargo bench -p aggregation` measures ns per decision (4 uplinks, 64
//! guests) and counts allocations. `fuzz/` is a cargo-fuzz project
//! (`cargo +nightly fuzz run ops_and_frames`). The policy simulator is
//! `cargo run --release -p aggdom-sim` (tests/sim).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod counters;
mod decision;
mod engine;
mod error;
mod table;
mod types;
pub mod wire;

#[doc(hidden)]
pub mod testkit;

pub use counters::{DropCounters, EngineCounters, GuestCounters, IdentityCounters, UplinkCounters};
pub use decision::{DropReason, Move, Moves, OwnTxDecision, RxDecision, Steering, TxDecision};
pub use engine::{Engine, Load};
pub use error::Error;
pub use types::{
    Config, GuestId, GuestSet, IdentityId, IdentitySet, IpNet, IpNetError, MacAddr, Mode,
    UplinkConfig, UplinkId, MAX_GUESTS, MAX_IDENTITIES, MAX_IPS_PER_GUEST, MAX_LEARNED_PER_GUEST,
    MAX_OWN_IPS, MAX_UPLINKS,
};
pub use wire::learning_frame;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ipv6;
