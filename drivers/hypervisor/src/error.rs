//! The one error type of the hypervisor traits: Xen's errno values.
use core::fmt;

/// Why a hypercall or xenstore request failed: the errno Xen returned
/// (xen/include/public/errno.h; xenstore sends the same names as text,
/// io/xs_wire.h `xsd_errors`). Nothing changed unless the variant says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenError {
    /// EPERM (1): not allowed.
    Perm,
    /// ENOENT (2): no such node, port or domain entry.
    NoEnt,
    /// ESRCH (3): no such domain.
    Srch,
    /// EIO (5): xenstore or hypervisor I/O failure.
    Io,
    /// E2BIG (7): a request or value too big.
    TooBig,
    /// EAGAIN (11): try again later.
    Again,
    /// ENOMEM (12).
    NoMem,
    /// EACCES (13): xenstore permissions forbid it.
    Acces,
    /// EBUSY (16).
    Busy,
    /// EEXIST (17): already there (a watch with the same path and token).
    Exist,
    /// EISDIR (21).
    IsDir,
    /// EINVAL (22): a bad argument: malformed path, unbound port, bad value.
    Inval,
    /// ENOSPC (28): out of ports or quota.
    NoSpc,
    /// EROFS (30).
    Rofs,
    /// ENOSYS (38): the hypervisor lacks the operation.
    NoSys,
    /// ENOTEMPTY (39).
    NotEmpty,
    /// EISCONN (106).
    IsConn,
    /// Any other errno, as a positive number.
    Other(i32),
}

impl XenError {
    /// From a hypercall's negative return value (or a positive errno).
    pub const fn from_errno(rc: i32) -> Self {
        match rc.unsigned_abs() {
            1 => Self::Perm,
            2 => Self::NoEnt,
            3 => Self::Srch,
            5 => Self::Io,
            7 => Self::TooBig,
            11 => Self::Again,
            12 => Self::NoMem,
            13 => Self::Acces,
            16 => Self::Busy,
            17 => Self::Exist,
            21 => Self::IsDir,
            22 => Self::Inval,
            28 => Self::NoSpc,
            30 => Self::Rofs,
            38 => Self::NoSys,
            39 => Self::NotEmpty,
            106 => Self::IsConn,
            n => Self::Other(n as i32),
        }
    }

    /// From a xenstore `XS_ERROR` reply's text ("ENOENT"); `None` for a
    /// name xs_wire.h does not list.
    pub fn from_xs_name(name: &str) -> Option<Self> {
        Some(match name {
            "EPERM" => Self::Perm,
            "ENOENT" => Self::NoEnt,
            "EIO" => Self::Io,
            "E2BIG" => Self::TooBig,
            "EAGAIN" => Self::Again,
            "ENOMEM" => Self::NoMem,
            "EACCES" => Self::Acces,
            "EBUSY" => Self::Busy,
            "EEXIST" => Self::Exist,
            "EISDIR" => Self::IsDir,
            "EINVAL" => Self::Inval,
            "ENOSPC" => Self::NoSpc,
            "EROFS" => Self::Rofs,
            "ENOSYS" => Self::NoSys,
            "ENOTEMPTY" => Self::NotEmpty,
            "EISCONN" => Self::IsConn,
            _ => return None,
        })
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(n) => write!(f, "errno {n}"),
            e => write!(f, "{e:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_and_names_agree() {
        assert_eq!(XenError::from_errno(-11), XenError::Again);
        assert_eq!(XenError::from_errno(22), XenError::Inval);
        assert_eq!(XenError::from_errno(-99), XenError::Other(99));
        assert_eq!(XenError::from_xs_name("ENOENT"), Some(XenError::NoEnt));
        assert_eq!(XenError::from_xs_name("EWHAT"), None);
    }
}
