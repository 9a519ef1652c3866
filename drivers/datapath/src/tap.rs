//! The capture tap: a [`Tap`] set on the datapath sees every frame as it
//! crosses a port (a guest port or an uplink), in either direction, after
//! the engine's rewriting on the way out. Without a tap the cost is one
//! branch per frame; the kernel sets one only while a capture runs.
use aggregation::{GuestId, UplinkId};

/// The port a frame crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapPort {
    Uplink(UplinkId),
    Guest(GuestId),
}

/// Which way it crossed, seen from aggdom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapDir {
    /// The port handed it to aggdom (a guest sent it, the wire brought it):
    /// as the port gave it, before any rewriting.
    In,
    /// aggdom handed it to the port (queued on the uplink, delivered to the
    /// guest): as it leaves, after rewriting.
    Out,
}

/// Sees frames; must not keep `frame` beyond the call.
pub trait Tap {
    fn frame(&mut self, port: TapPort, dir: TapDir, frame: &[u8]);
}
