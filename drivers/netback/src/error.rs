//! What can go wrong at netback's API.
use core::fmt;

/// Why [`crate::Vif::deliver_rx`] did not deliver a frame. Each case is
/// also counted in the vif's [`crate::VifCounters`]; the caller drops the
/// frame (there is no queue to retry from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// The vif is not connected (yet, or any more).
    NotConnected,
    /// The guest has not posted enough receive buffers: it is slow or
    /// stopped. Try later frames as they come.
    Full,
    /// The frame is too short, too long, or needs several buffers from a
    /// guest that takes only one per frame.
    BadLength,
    /// The guest's buffer grants were bad; the guest was told (error
    /// responses) and the frame is gone.
    GuestFault,
}

impl fmt::Display for RxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::NotConnected => "vif not connected",
            Self::Full => "guest receive ring full",
            Self::BadLength => "frame length not deliverable",
            Self::GuestFault => "guest receive buffer grant failed",
        };
        f.write_str(s)
    }
}

/// Why a connection attempt to a frontend failed (counted as
/// `connect_failures`; the vif's backend state goes to Closing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// A required frontend key is missing or not a number.
    BadKey(&'static str),
    /// The frontend asked for something aggdom does not do or does not
    /// offer (page flipping, multi-page rings, more queues than offered,
    /// split event channels when not offered).
    Unsupported(&'static str),
    /// Mapping a ring grant failed.
    MapFailed,
    /// The ring's indices were already impossible.
    BadRing,
    /// Binding the frontend's event channel failed.
    BindFailed,
    /// The toolstack's `mtu` (xl `mtu=`) is outside 68..=`max`, what this
    /// backend carries: refused rather than silently ignored.
    Mtu { asked: u32, max: u32 },
}

impl ConnectError {
    /// The errno Linux netback would report for it in the `error` node.
    pub fn errno(self) -> u32 {
        match self {
            Self::BadKey(_) | Self::BadRing | Self::Mtu { .. } => 22, // EINVAL
            Self::Unsupported(_) => 95,                               // EOPNOTSUPP
            Self::MapFailed | Self::BindFailed => 14,                 // EFAULT
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadKey(k) => write!(f, "reading {k}: missing or malformed"),
            Self::Unsupported(what) => write!(f, "{what} is not supported"),
            Self::MapFailed => f.write_str("mapping a ring grant failed"),
            Self::BadRing => f.write_str("the ring's indices are impossible"),
            Self::BindFailed => f.write_str("binding the event channel failed"),
            Self::Mtu { asked, max } => {
                write!(
                    f,
                    "mtu {asked} is not supported (this backend carries 68..={max})"
                )
            }
        }
    }
}
