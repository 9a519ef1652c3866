//! The bodies of aggdom's fuzz targets, one module per input that a guest,
//! dom0, the wire or an operator controls, each with `run(data)`. A target
//! panics when an invariant breaks; bad input itself must never panic.
//!
//! The cargo-fuzz project in `fuzz/` (nightly) calls these; on stable,
//! `tests/replay.rs` runs every committed corpus file through the same
//! entries, so an input that once crashed a target keeps being tried.
//!
//! | target | input | who controls it |
//! |---|---|---|
//! | [`xs_wire`] | xenstore messages (assembler, reply parsers, request encoding) and the byte ring | dom0's xenstored |
//! | [`xs_client`] | the xenstore client against a hostile xenstored on the ring page | dom0's xenstored |
//! | [`config`] | the kernel command line and the xenstore config node, merged | the operator, dom0 |
//! | [`metrics_http`] | `GET /metrics` request heads and connection timing | any client on the network |
//! | [`grant_split`] | grant-copy splitting | a guest (offsets and lengths in its ring requests) |
//! | [`e1000_rx`] | e1000 receive descriptors | the device (and what it received) |
//! | [`virtio_net_rx`] | virtio-net used-ring tokens and lengths | the device |
//! | [`line_editor`] | console bytes | whoever holds the serial line |
//! | [`start_info`] | PVH start info and memory map, and the heap's place in it | the loader (QEMU, Xen) |
//! | [`acpi_tables`] | RSDP, RSDT/XSDT, FADT and DSDT | firmware |
//! | [`rx_coalesce`] | TCP segments to coalesce for a guest (receive GRO) | the wire |
//! | [`ops_and_frames`], [`frontend`] | the two older targets (engine, netback frontend), in their crates | guests and the wire |
#![forbid(unsafe_code)]

pub mod acpi_tables;
pub mod config;
pub mod e1000_rx;
pub mod grant_split;
pub mod line_editor;
pub mod metrics_http;
pub mod start_info;
pub mod virtio_net_rx;
pub mod xs_client;
pub mod xs_wire;

mod bytes;
mod mem;
mod page;

/// The aggregation engine's target (drivers/aggregation/fuzz).
pub fn ops_and_frames(data: &[u8]) {
    if let Err(why) = aggregation::testkit::Harness::run_bytes(data) {
        panic!("invariant violated: {why}");
    }
}

/// Netback's malicious-frontend target (drivers/netback/fuzz).
pub fn frontend(data: &[u8]) {
    if let Err(why) = netback::testkit::fuzz::run(data) {
        panic!("invariant violated: {why}");
    }
}

/// Netback's receive coalescing, the coalescer alone (its body is
/// `netback::testkit::coalesce`, beside the code it drives).
pub fn rx_coalesce(data: &[u8]) {
    if let Err(why) = netback::testkit::coalesce::run(data) {
        panic!("invariant violated: {why}");
    }
}

/// A fuzz target: its name (the cargo-fuzz target), its committed corpus
/// (relative to the repository root) and its entry.
pub struct Target {
    pub name: &'static str,
    pub corpus: &'static str,
    pub run: fn(&[u8]),
}

const fn target(name: &'static str, corpus: &'static str, run: fn(&[u8])) -> Target {
    Target { name, corpus, run }
}

/// Every target.
pub const TARGETS: &[Target] = &[
    target("xs_wire", "tests/fuzz/fuzz/corpus/xs_wire", xs_wire::run),
    target(
        "xs_client",
        "tests/fuzz/fuzz/corpus/xs_client",
        xs_client::run,
    ),
    target("config", "tests/fuzz/fuzz/corpus/config", config::run),
    target(
        "metrics_http",
        "tests/fuzz/fuzz/corpus/metrics_http",
        metrics_http::run,
    ),
    target(
        "grant_split",
        "tests/fuzz/fuzz/corpus/grant_split",
        grant_split::run,
    ),
    target("e1000_rx", "tests/fuzz/fuzz/corpus/e1000_rx", e1000_rx::run),
    target(
        "virtio_net_rx",
        "tests/fuzz/fuzz/corpus/virtio_net_rx",
        virtio_net_rx::run,
    ),
    target(
        "line_editor",
        "tests/fuzz/fuzz/corpus/line_editor",
        line_editor::run,
    ),
    target(
        "start_info",
        "tests/fuzz/fuzz/corpus/start_info",
        start_info::run,
    ),
    target(
        "acpi_tables",
        "tests/fuzz/fuzz/corpus/acpi_tables",
        acpi_tables::run,
    ),
    target(
        "ops_and_frames",
        "drivers/aggregation/fuzz/corpus/ops_and_frames",
        ops_and_frames,
    ),
    target("frontend", "drivers/netback/fuzz/corpus/frontend", frontend),
    target(
        "rx_coalesce",
        "tests/fuzz/fuzz/corpus/rx_coalesce",
        rx_coalesce,
    ),
];
