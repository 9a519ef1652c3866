//! The harness's error type. Its `Display` carries the context a failing
//! test needs (what was awaited, the serial tail, QEMU's stderr), so
//! `.unwrap()` in a test prints a useful message.

use std::fmt;
use std::io;
use std::process::ExitStatus;

/// Result with the harness [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while driving a machine.
#[derive(Debug)]
pub enum Error {
    /// Nothing matched within the timeout. `what` names the wait; `context`
    /// is the serial transcript tail (and QEMU's stderr if it exited).
    Timeout {
        /// What was being waited for.
        what: String,
        /// Diagnostics: serial tail, QEMU state.
        context: String,
    },
    /// QEMU exited while the harness was waiting for something else.
    Exited {
        /// What was being waited for.
        what: String,
        /// QEMU's exit status.
        status: ExitStatus,
        /// Diagnostics: serial tail and QEMU's stderr.
        context: String,
    },
    /// QEMU could not be started (missing binary or ELF, bad arguments).
    Spawn(String),
    /// QMP answered with an error, or the QMP connection failed.
    Qmp(String),
    /// A NIC index past the machine's NICs.
    NoSuchNic(usize),
    /// An I/O error on a harness socket.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { what, context } => {
                write!(f, "timed out waiting for {what}\n{context}")
            }
            Error::Exited {
                what,
                status,
                context,
            } => {
                write!(
                    f,
                    "QEMU exited ({status}) while waiting for {what}\n{context}"
                )
            }
            Error::Spawn(msg) => write!(f, "cannot start QEMU: {msg}"),
            Error::Qmp(msg) => write!(f, "QMP: {msg}"),
            Error::NoSuchNic(i) => write!(f, "no NIC {i} on this machine"),
            Error::Io(e) => write!(f, "I/O: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
