//! The two NIC traits: moving frames, and controlling the NIC.
use crate::offload::{self, Offloads, TxOffload};
use crate::{Counters, MacAddr, NicError};

/// Moving frames. Poll mode: nothing happens between calls except what the
/// device does on its own; call `receive` and `flush_tx` from the poll loop.
///
/// Object safe, so mixed drivers can sit behind `dyn Nic`.
pub trait NicDatapath {
    /// Delivers up to `budget` received frames, oldest first, each lent to
    /// `sink` straight from the driver's receive buffer, which goes back to
    /// the device when `sink` returns. Returns how many frames were
    /// delivered. Frames the driver drops (runt, oversized, errored) are
    /// counted, not delivered, and do not use up the budget.
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize;

    /// Queues one frame of `len` bytes, written by `fill` straight into the
    /// driver's transmit buffer (`fill` gets exactly `len` bytes, of
    /// unspecified content). The frame is sent in order with the others;
    /// it is only sure to reach the device at [`NicDatapath::flush_tx`]
    /// (e1000 waits for the doorbell; a virtio device may pick it up
    /// earlier if it is already busy sending).
    ///
    /// Errors: [`NicError::TxFull`] (not taken; retry later) and
    /// [`NicError::FrameLength`] (taken, dropped and counted; `fill` is not
    /// called).
    fn queue_tx(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), NicError>;

    /// Hands every frame queued since the last flush to the device, with one
    /// doorbell, and reclaims buffers of frames the device has sent.
    fn flush_tx(&mut self);

    /// How many frames `queue_tx` would take right now. Reclaims sent
    /// buffers first.
    fn tx_space(&mut self) -> usize;

    /// Acknowledges whatever interrupt the device raised and asks it to
    /// raise one (on its PCI INTx line) for the next received frame or link
    /// change; transmit completions raise none. Cheap (a register read and
    /// write or two) and idempotent, also after [`NicControl::reset`].
    ///
    /// Call it when `receive` has drained the ring, then poll once more: a
    /// frame that arrived before the call raises nothing (the usual race).
    /// Returns false if the driver has no interrupts (poll it on a timer).
    fn arm_interrupt(&mut self) -> bool {
        false
    }

    /// As [`NicDatapath::receive`], but each frame is lent mutably: the
    /// caller may rewrite it in the receive buffer (it goes back to the
    /// device when `sink` returns) and queue it elsewhere with one copy.
    /// `None` when the driver cannot (the default); call `receive` then.
    fn receive_in_place(
        &mut self,
        _budget: usize,
        _sink: &mut dyn FnMut(&mut [u8]),
    ) -> Option<usize> {
        None
    }

    /// What the device finishes itself on transmit (see [`offload`]).
    /// Anything else `queue_tx_offload` does in software.
    fn offloads(&self) -> Offloads {
        Offloads::NONE
    }

    /// Queues `frame` with an offload request (`virtio_net_hdr`
    /// semantics, see [`offload`]), copied once into the driver's transmit
    /// buffers; sent at the next [`NicDatapath::flush_tx`]. What
    /// [`NicDatapath::offloads`] does not cover is done in software: a
    /// super-frame becomes its segments (all queued, or none), a partial
    /// checksum is completed. A super-frame may be up to
    /// [`offload::MAX_GSO_FRAME_LEN`] bytes; other frames as `queue_tx`.
    ///
    /// Errors: [`NicError::TxFull`] (nothing taken; retry later),
    /// [`NicError::FrameLength`] (taken, dropped, counted),
    /// [`NicError::Offload`] (the request does not fit the frame; nothing
    /// taken, drop it).
    fn queue_tx_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), NicError> {
        offload::queue_in_software(self, frame, req)
    }

    /// Copies `frames` into the transmit ring in order and flushes. Returns
    /// how many were taken: it stops at the first frame that does not fit;
    /// frames of bad length are taken, dropped and counted.
    fn transmit(&mut self, frames: &[&[u8]]) -> usize {
        let mut taken = 0;
        for frame in frames {
            match self.queue_tx(frame.len(), &mut |buf| buf.copy_from_slice(frame)) {
                Ok(()) | Err(NicError::FrameLength) => taken += 1,
                Err(_) => break,
            }
        }
        self.flush_tx();
        taken
    }
}

/// Controlling a NIC: its MAC register, receive filter, link and counters.
///
/// See the crate docs for the receive filter contract. Methods that program
/// the device check their arguments first: on error nothing has changed
/// (except for [`NicError::Timeout`]).
pub trait NicControl {
    /// The driver's name: `"e1000"`, `"virtio-net"` or `"fake"`.
    fn kind(&self) -> &'static str;

    /// The factory MAC, read from the device at construction.
    fn permanent_mac(&self) -> MacAddr;

    /// The primary MAC the device filters on and that the NIC's identity is
    /// (the value last written to the MAC register).
    fn mac(&self) -> MacAddr;

    /// Writes the primary MAC register: the address the device's receive
    /// filter matches. Frames to the old MAC are no longer accepted (unless
    /// it is also a filter entry). It does not touch the source MAC of sent
    /// frames, which is whatever the frame carries. Synchronous: done when
    /// it returns (e1000: three register writes; virtio-net: one control
    /// command round trip). Counts in `mac_writes`.
    fn set_mac(&mut self, mac: MacAddr) -> Result<(), NicError>;

    /// How many extra unicast addresses [`NicControl::set_filter`] takes
    /// (e1000: 15; virtio-net: 64, or 0 without the control queue).
    fn filter_slots(&self) -> usize;

    /// The extra unicast addresses currently accepted.
    fn filter(&self) -> &[MacAddr];

    /// Replaces the extra unicast addresses accepted besides the primary
    /// MAC. An empty slice leaves only the primary MAC.
    fn set_filter(&mut self, macs: &[MacAddr]) -> Result<(), NicError>;

    fn promiscuous(&self) -> bool;

    /// Accepts every frame (on) or only what the filter says (off).
    fn set_promiscuous(&mut self, on: bool) -> Result<(), NicError>;

    fn all_multicast(&self) -> bool;

    /// Accepts every multicast frame besides broadcast (on), or none (off).
    fn set_all_multicast(&mut self, on: bool) -> Result<(), NicError>;

    /// Reads the link state from the device now (one register read); counts
    /// transitions in `link_changes`.
    fn link_up(&mut self) -> bool;

    /// The counters, with the device's statistics folded in first.
    fn counters(&mut self) -> Counters;

    /// Resets the device and sets it up as after construction: factory MAC,
    /// no filter entries, promiscuous and all-multicast off, rings empty
    /// (frames in flight are lost). Counters are kept.
    fn reset(&mut self) -> Result<(), NicError>;
}

/// A whole NIC: what the aggregation datapath holds as `&mut dyn Nic`.
pub trait Nic: NicDatapath + NicControl {}

impl<T: NicDatapath + NicControl + ?Sized> Nic for T {}
