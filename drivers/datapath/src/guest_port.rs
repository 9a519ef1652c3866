//! Where guests attach: a Xen vif (netback) or, in QEMU, a NIC standing in
//! for one guest's vif.
use nic::{Nic, NicError};

/// Why a frame could not be handed to a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// The guest has no free receive buffer; the frame is dropped and counted.
    Full,
    /// The port is not connected (vif down, link down).
    Down,
    /// The frame's length is out of range for the port.
    FrameLength,
}

/// One guest's port, as the datapath sees it.
pub trait GuestPort {
    /// Frames the guest sent, up to `budget`, lent one at a time to `sink`.
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize;

    /// Queues a frame for the guest; [`GuestPort::flush`] makes it visible.
    fn deliver(&mut self, frame: &[u8]) -> Result<(), PortError>;

    /// Hands queued frames to the guest (one notification).
    fn flush(&mut self);
}

/// A NIC used as a guest port (QEMU): promiscuous, since a guest sends to
/// any destination MAC (the gateway's, another guest's, an identity's).
pub struct NicPort<N: Nic + ?Sized> {
    pub nic: alloc::boxed::Box<N>,
}

impl<N: Nic + ?Sized> NicPort<N> {
    pub fn new(mut nic: alloc::boxed::Box<N>) -> Result<Self, NicError> {
        nic.set_promiscuous(true)?;
        Ok(Self { nic })
    }
}

impl<N: Nic + ?Sized> GuestPort for NicPort<N> {
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.nic.receive(budget, sink)
    }

    fn deliver(&mut self, frame: &[u8]) -> Result<(), PortError> {
        self.nic
            .queue_tx(frame.len(), &mut |buf| buf.copy_from_slice(frame))
            .map_err(|e| match e {
                NicError::FrameLength => PortError::FrameLength,
                _ => PortError::Full,
            })
    }

    fn flush(&mut self) {
        self.nic.flush_tx();
    }
}
