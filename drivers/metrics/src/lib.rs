//! Every counter aggdom keeps, taken as one [`Snapshot`] and rendered two
//! ways from it: the console's `stats` tables and the Prometheus text
//! format served at `GET /metrics`. One snapshot, two renderings: the two
//! always agree.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod conns;
mod http;
mod json;
mod prometheus;
mod snapshot;
mod table;

pub use conns::{Action, Connections, Limits, ServerCounters, Socket};
pub use http::{get_target, http_response, response, MAX_REQUEST};
pub use json::render_json;
pub use prometheus::render_prometheus;
pub use snapshot::{GuestRow, IdentityRow, Snapshot, UplinkRow};
pub use table::render_tables;

#[cfg(test)]
mod tests;
