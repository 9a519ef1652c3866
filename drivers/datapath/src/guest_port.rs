//! Where guests attach: a Xen vif (netback) or, in QEMU, a NIC standing in
//! for one guest's vif.
//!
//! A port may lend frames with an offload request ([`TxOffload`]: a TCP
//! super-frame to segment, a partial checksum to complete), as netfront
//! sends them; the datapath carries the request to wherever the frame
//! goes and finishes it in software only for a destination that cannot
//! take it ([`GuestPort::takes_offload`], [`nic::NicDatapath::offloads`]).
use nic::{Nic, NicError, TxOffload};

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

    /// As [`GuestPort::receive`], but each frame is lent mutably, for a
    /// port whose frames are already its own copy (a vif's are grant-copied
    /// into its buffer): the datapath then rewrites them in place instead
    /// of copying each into its scratch buffer first. `None` when the port
    /// cannot (the default); the datapath then calls `receive`.
    fn receive_in_place(
        &mut self,
        _budget: usize,
        _sink: &mut dyn FnMut(&mut [u8]),
    ) -> Option<usize> {
        None
    }

    /// As [`GuestPort::receive_in_place`], but each frame comes with its
    /// offload request: a TCP super-frame of up to
    /// [`nic::offload::MAX_GSO_FRAME_LEN`] bytes with `gso`, a partial
    /// checksum with `csum` (a Xen vif's guest sends both). The request is
    /// untrusted: whoever finishes the frame checks it against the frame.
    /// `None` when the port cannot (the default); the datapath then calls
    /// `receive_in_place` and `receive`.
    fn receive_offload(
        &mut self,
        _budget: usize,
        _sink: &mut dyn FnMut(&mut [u8], TxOffload),
    ) -> Option<usize> {
        None
    }

    /// Queues a frame for the guest; [`GuestPort::flush`] makes it visible.
    fn deliver(&mut self, frame: &[u8]) -> Result<(), PortError>;

    /// Whether [`GuestPort::deliver_offload`] takes frames with offload
    /// requests (the port finishes them, or passes them on to a guest that
    /// can). False (the default): the datapath segments and completes
    /// them first and calls [`GuestPort::deliver`] with plain frames.
    fn takes_offload(&self) -> bool {
        false
    }

    /// Queues a frame with its offload request, for a port that
    /// [`GuestPort::takes_offload`]. The default takes plain frames only.
    fn deliver_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), PortError> {
        if *req == TxOffload::NONE {
            self.deliver(frame)
        } else {
            Err(PortError::FrameLength)
        }
    }

    /// Hands queued frames to the guest (one notification).
    fn flush(&mut self);

    /// The NIC behind the port, if it is one (for `nic <n>` and counters).
    fn nic(&mut self) -> Option<&mut dyn Nic> {
        None
    }
}

/// A NIC used as a guest port (QEMU): promiscuous, since a guest sends to
/// any destination MAC (the gateway's, another guest's, an identity's).
pub struct NicPort<N: Nic + ?Sized> {
    nic: alloc::boxed::Box<N>,
}

impl<N: Nic + ?Sized> NicPort<N> {
    pub fn new(mut nic: alloc::boxed::Box<N>) -> Result<Self, NicError> {
        nic.set_promiscuous(true)?;
        Ok(Self { nic })
    }
}

impl NicPort<dyn Nic> {
    fn nic_mut(&mut self) -> &mut dyn Nic {
        &mut *self.nic
    }
}

impl GuestPort for NicPort<dyn Nic> {
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.nic.receive(budget, sink)
    }

    fn receive_in_place(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(&mut [u8]),
    ) -> Option<usize> {
        self.nic.receive_in_place(budget, sink)
    }

    fn deliver(&mut self, frame: &[u8]) -> Result<(), PortError> {
        self.nic
            .queue_tx(frame.len(), &mut |buf| buf.copy_from_slice(frame))
            .map_err(|e| match e {
                NicError::FrameLength => PortError::FrameLength,
                _ => PortError::Full,
            })
    }

    /// The NIC finishes what it can and segments the rest in software
    /// (the nic crate's fallback).
    fn takes_offload(&self) -> bool {
        true
    }

    fn deliver_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), PortError> {
        self.nic.queue_tx_offload(frame, req).map_err(|e| match e {
            NicError::FrameLength | NicError::Offload => PortError::FrameLength,
            _ => PortError::Full,
        })
    }

    fn flush(&mut self) {
        self.nic.flush_tx();
    }

    fn nic(&mut self) -> Option<&mut dyn Nic> {
        Some(self.nic_mut())
    }
}
