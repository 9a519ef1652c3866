//! Event channels, polled: aggdom takes no interrupts, it tests and clears
//! pending bits in its poll loop.
use crate::abi::{DomId, EvtchnPort};
use crate::error::XenError;

/// The event-channel operations of a backend (2-level ABI).
pub trait EventChannels {
    /// `EVTCHNOP_alloc_unbound`: a new local port that `remote` may bind to.
    fn alloc_unbound(&mut self, remote: DomId) -> Result<EvtchnPort, XenError>;

    /// `EVTCHNOP_bind_interdomain`: connects a new local port to
    /// `remote_port`, which `remote` allocated unbound for us. `Inval` if
    /// that port is not unbound for this domain.
    fn bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError>;

    /// `EVTCHNOP_send`: sets the pending bit of the other end.
    fn send(&mut self, port: EvtchnPort) -> Result<(), XenError>;

    /// Tests and clears `port`'s pending bit (shared_info's
    /// `evtchn_pending` under the 2-level ABI). False for a closed port.
    fn take_pending(&mut self, port: EvtchnPort) -> bool;

    /// `EVTCHNOP_close`: the other end becomes unbound again.
    fn close(&mut self, port: EvtchnPort) -> Result<(), XenError>;
}
