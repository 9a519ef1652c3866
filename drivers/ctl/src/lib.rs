//! The aggctl protocol: how dom0 (or any toolstack) runs aggdom's console
//! commands through xenstore, and gets each answer back.
//!
//! Under `/local/domain/<aggdom>/data/aggctl` ([`ctl_dir`]), a directory
//! libxl creates writable by aggdom and dom0 alone:
//! 1. the client picks an id (a decimal `u32` no other client uses now)
//!    and writes the command line, as typed at the console, to
//!    `request/<id>`;
//! 2. aggdom, which watches `request`, reads it, runs the command and
//!    writes the output in pieces of at most [`CHUNK`] bytes to
//!    `reply/<id>/0`, `reply/<id>/1`, ..., then `reply/<id>/status` =
//!    `ok <pieces>` or `error <pieces>` (an error is one line), and
//!    removes `request/<id>`;
//! 3. the client waits for `status`, reads the pieces, joins them and
//!    removes `reply/<id>`. aggdom removes replies nobody collected once
//!    [`KEEP_REPLIES`] newer ones exist.
//!
//! Output longer than [`MAX_CHUNKS`] pieces is cut, and the last piece
//! says so. [`Server`] is aggdom's side (over the asynchronous
//! [`hypervisor::XenStore`]: it never waits for xenstored);
//! [`parse_status`] and [`join`] are the client's.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod base64;
mod protocol;
mod server;

pub use protocol::{
    chunks, ctl_dir, join, parse_status, status_value, valid_line, Outcome, CHUNK, KEEP_REPLIES,
    MAX_CHUNKS, MAX_LINE, TRUNCATED,
};
pub use server::{Server, ServerCounters, MAX_PENDING, WATCH_TOKEN};
