//! Guest receive: a frame grant-copied into buffers the guest posted on its
//! RX ring (`feature-rx-copy`), one page per slot, answered in the slots of
//! the requests it used.
//!
//! With several queues, a frame goes to the queue its flow hashes to, so a
//! flow's frames stay in order. A GSO frame goes whole, with a GSO extra
//! after its first slot (`NETRXF_extra_info`), to a frontend that offered
//! `feature-gso-tcpv4`/`-tcpv6`; any other frontend gets its segments. A
//! partial checksum goes as `NETRXF_csum_blank` to a frontend that takes
//! checksum offload, completed to any other; a checksum known good is
//! flagged `NETRXF_data_validated`.
//!
//! Frames go in batches ([`RxBatch`]), because under Xen a hypercall costs
//! far more than copying an MTU frame, and a guest receiving TCP gets
//! dozens of frames per loop turn. Pushing a frame takes its requests and
//! stages its bytes in the connection's [`RxStage`]; one `GNTTABOP_copy`
//! then carries every staged copy, the responses are written once their
//! statuses are known (a failed copy fails only its own frame), and each
//! queue's ring is pushed once and its frontend notified at most once.
//! Each frame is still checked, dropped and counted on its own, exactly
//! as when it goes alone ([`Vif::deliver_rx_offload`] is a batch of one).
use alloc::vec;
use alloc::vec::Vec;

use hypervisor::{DomId, GrantAddr, GrantCopy, GrantRef, Hypervisor, PAGE_SIZE};

use crate::checksum::{self, Lengths};
use crate::coalesce::Segment;
use crate::counters::{Fatal, RxDrop, VifCounters};
use crate::error::RxError;
use crate::segment::{self, Csum, GsoKind, Offload, Plan};
use crate::vif::{Connection, Queue, RxFeatures, Vif};
use crate::wire::{
    ExtraInfo, RxRequest, RxResponse, ETH_HLEN, NETIF_RSP_ERROR, NETRXF_CSUM_BLANK,
    NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, XEN_NETIF_MAX_TX_SIZE,
};

/// Data slots the longest frame can need.
const MAX_DATA_SLOTS: usize = XEN_NETIF_MAX_TX_SIZE.div_ceil(PAGE_SIZE);

/// Copies one `grant_copy` call carries at most; a fuller stage is copied
/// first. (Xen's platform layer splits a call further if its own
/// hypercall batch is smaller.)
pub const RX_BATCH_OPS: usize = 64;

/// Pages of a connection's stage: 64 MTU frames at two to a page, or the
/// longest frame ([`MAX_DATA_SLOTS`] pages) twice.
const RX_STAGE_PAGES: usize = 32;

impl<H: Hypervisor> Vif<H> {
    /// Delivers one Ethernet frame (without FCS) to the guest: copies it
    /// into the guest's posted buffers, answers their requests and notifies
    /// the guest if it asked. Never allocates. Every failure is counted.
    pub fn deliver_rx(&mut self, hv: &mut H, frame: &[u8]) -> Result<(), RxError> {
        self.deliver_rx_offload(hv, frame, Offload::NONE)
    }

    /// [`Vif::deliver_rx`] with offload metadata: a GSO frame (up to
    /// 64 KiB, as [`crate::segment::Plan::normalise`] leaves it) goes
    /// whole to a guest that takes GSO, as segments (all or none) to any
    /// other; a partial checksum is completed unless the guest takes it.
    /// Header offsets are found from the frame itself (those in `off` are
    /// not trusted), and metadata that does not fit the frame is a counted
    /// drop ([`RxDrop::Offload`]). A batch of one ([`Vif::rx_batch`]).
    pub fn deliver_rx_offload(
        &mut self,
        hv: &mut H,
        frame: &[u8],
        off: Offload,
    ) -> Result<(), RxError> {
        let mut batch = self.rx_batch(hv);
        batch.push(frame, off)?;
        if batch.finish().guest_faults > 0 {
            return Err(RxError::GuestFault);
        }
        Ok(())
    }

    /// Starts a batch of frames for the guest: [`RxBatch::push`] each,
    /// then [`RxBatch::finish`]. Never allocates.
    pub fn rx_batch<'a>(&'a mut self, hv: &'a mut H) -> RxBatch<'a, H> {
        RxBatch {
            vif: self,
            hv,
            done: RxDelivered::default(),
        }
    }
}

/// Frames for one vif's guest, copied together (see the module
/// documentation). Dropping it finishes it too: a request taken is always
/// answered.
pub struct RxBatch<'a, H: Hypervisor> {
    vif: &'a mut Vif<H>,
    hv: &'a mut H,
    done: RxDelivered,
}

/// What a batch delivered, once finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxDelivered {
    /// Frames copied into the guest's buffers (each segment of a frame
    /// cut for a frontend without GSO counts).
    pub frames: u64,
    /// Frames whose copies failed on the guest's grants
    /// ([`RxDrop::BadGrant`]): the guest got error responses for them.
    pub guest_faults: u64,
}

impl<H: Hypervisor> RxBatch<'_, H> {
    /// Takes the guest's buffers for `frame` (with `off` as for
    /// [`Vif::deliver_rx_offload`]) and stages its bytes; the copy and the
    /// responses come at [`RxBatch::finish`], or earlier when the stage
    /// is full. An error is the frame's drop, counted; a later frame may
    /// still go. A bad grant shows only once the batch is finished
    /// ([`RxDelivered::guest_faults`]).
    ///
    /// For a frontend that takes GSO, a TCP segment may be held instead,
    /// to go with the segments of its flow that follow it as one
    /// super-frame (the `coalesce` module); a held frame goes before any
    /// other frame, so the guest sees the vif's frames in their order.
    pub fn push(&mut self, frame: &[u8], off: Offload) -> Result<(), RxError> {
        let max = self.vif.config.max_frame_len;
        // A frontend without GSO never has its frames parsed (or summed).
        let seg = match self.vif.conn.as_mut() {
            Some(c)
                if c.rx_features.sg
                    && (c.rx_features.gso4 || c.rx_features.gso6)
                    && off.gso.is_none()
                    && !matches!(off.csum, Csum::Partial { .. }) =>
            {
                let feat = c.rx_features;
                Segment::parse(frame, max).filter(|s| match s.kind() {
                    GsoKind::TcpV4 => feat.gso4,
                    GsoKind::TcpV6 => feat.gso6,
                })
            }
            _ => None,
        };
        if let Some(seg) = &seg {
            if let Some(c) = self.vif.conn.as_mut() {
                // No larger than the buffers the guest has posted: a
                // super-frame that does not fit would lose every segment
                // in it, where they alone would lose only the last ones.
                let room = match c.queues.get(queue_of(c.queues.len(), frame)) {
                    Some(q) => q.rx.unconsumed(&q.rx_page).unwrap_or(0) as usize,
                    None => 0,
                };
                let max_len = room.saturating_sub(1) * PAGE_SIZE;
                if c.rx_gro.append(frame, seg, max_len) {
                    self.vif.counters.rx_coalesced += 1;
                    return Ok(());
                }
            }
        }
        self.release_held();
        if let Some(seg) = &seg {
            if let Some(c) = self.vif.conn.as_mut() {
                if c.rx_gro.start(frame, seg) {
                    return Ok(());
                }
            }
        }
        self.deliver(frame, off)
    }

    /// Delivers the held super-frame, if any.
    fn release_held(&mut self) {
        let max = self.vif.config.max_frame_len;
        let Some(c) = self.vif.conn.as_mut() else {
            return;
        };
        if c.rx_gro.is_empty() {
            return;
        }
        // Out of the connection while it is delivered (the buffer moves,
        // nothing is allocated); a connection failed meanwhile is gone
        // and takes it along.
        let mut gro = core::mem::take(&mut c.rx_gro);
        if let Some((frame, off)) = gro.take(max) {
            // A drop is counted where it happens.
            let _ = self.deliver(frame, off);
        }
        if let Some(c) = self.vif.conn.as_mut() {
            c.rx_gro = gro;
        }
    }

    /// [`RxBatch::push`] without coalescing.
    fn deliver(&mut self, frame: &[u8], off: Offload) -> Result<(), RxError> {
        let vif = &mut *self.vif;
        let fe = vif.id.frontend;
        let max = vif.config.max_frame_len;
        let counters = &mut vif.counters;
        let Some(c) = vif.conn.as_mut() else {
            counters.count_rx_drop(RxDrop::NotConnected);
            return Err(RxError::NotConnected);
        };
        let Connection {
            queues,
            rx_features,
            rx_stage,
            ..
        } = c;
        let feat = *rx_features;
        let qi = queue_of(queues.len(), frame);
        let mut rx = Rx {
            hv: &mut *self.hv,
            queues,
            stage: rx_stage,
            fe,
            counters,
            done: &mut self.done,
        };
        let result = match off.gso {
            None => rx.plain(qi, max, feat, frame, off.csum),
            Some(gso) => {
                let takes = feat.sg
                    && match gso.kind {
                        GsoKind::TcpV4 => feat.gso4,
                        GsoKind::TcpV6 => feat.gso6,
                    };
                match Plan::new(frame, gso, max) {
                    Err(_) => {
                        rx.counters.count_rx_drop(RxDrop::Offload);
                        Err(Delivery::Drop(RxError::BadLength))
                    }
                    Ok(_) if frame.len() > XEN_NETIF_MAX_TX_SIZE => {
                        rx.counters.count_rx_drop(RxDrop::BadLength);
                        Err(Delivery::Drop(RxError::BadLength))
                    }
                    Ok(_) if takes => {
                        let extra = ExtraInfo::new_gso(gso.size, segment::netif_gso_type(gso.kind));
                        let flags = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
                        rx.stage(qi, frame.len(), flags, Some(extra), |dst| {
                            dst.copy_from_slice(frame)
                        })
                    }
                    Ok(plan) => rx.segments(qi, feat, frame, &plan),
                }
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(Delivery::Drop(e)) => Err(e),
            Err(Delivery::Fatal) => {
                // The frames before this one go, as they would have alone.
                self.commit();
                self.vif.counters.count_rx_drop(RxDrop::NotConnected);
                self.vif.fail(self.hv, Fatal::RingOverflow);
                Err(RxError::NotConnected)
            }
        }
    }

    /// Copies what is staged, answers its requests, pushes every queue's
    /// responses and notifies the frontend where it asked.
    pub fn finish(mut self) -> RxDelivered {
        self.release_held();
        self.commit();
        self.done
    }

    fn commit(&mut self) {
        let vif = &mut *self.vif;
        let Some(c) = vif.conn.as_mut() else {
            return;
        };
        let Connection {
            queues, rx_stage, ..
        } = c;
        let mut rx = Rx {
            hv: &mut *self.hv,
            queues,
            stage: rx_stage,
            fe: vif.id.frontend,
            counters: &mut vif.counters,
            done: &mut self.done,
        };
        rx.copy();
        rx.push_responses();
    }
}

impl<H: Hypervisor> Drop for RxBatch<'_, H> {
    fn drop(&mut self) {
        // After `finish` nothing is held, staged or unpushed: no hypercall.
        self.release_held();
        self.commit();
    }
}

/// Where a connection's frames for the guest wait between being pushed
/// and being copied: their bytes, their copies and their responses to
/// be. Allocated at connect, so delivering never allocates.
pub(crate) struct RxStage {
    /// [`RX_STAGE_PAGES`] pages and one more, so that the part used can
    /// start at a page boundary of this domain's memory.
    bytes: Vec<u8>,
    /// Where that boundary is in `bytes`.
    base: usize,
    /// Bytes used after `base`, with the gaps left at page ends.
    used: usize,
    copies: Vec<StagedCopy>,
    frames: Vec<StagedFrame>,
}

/// One copy into one posted buffer, and the request it answers.
#[derive(Clone, Copy)]
struct StagedCopy {
    /// Where its bytes are in [`RxStage::bytes`].
    at: usize,
    len: usize,
    gref: GrantRef,
    id: u16,
}

/// One frame on the ring: its copies, and what its first response says.
#[derive(Clone, Copy)]
struct StagedFrame {
    queue: usize,
    /// Its copies are `copies[first..first + slots]`, one per data slot.
    first: usize,
    slots: usize,
    flags: u16,
    /// A GSO extra, in the slot after the first (a GSO frame whole).
    extra: Option<ExtraInfo>,
}

impl RxStage {
    pub(crate) fn new() -> Self {
        let bytes = vec![0u8; (RX_STAGE_PAGES + 1) * PAGE_SIZE];
        // Xen copies within pages: a copy whose local bytes cross a page
        // boundary costs the hypercall two entries. The address only
        // places frames; it is never turned back into a pointer.
        let base = (bytes.as_ptr() as usize).wrapping_neg() % PAGE_SIZE;
        Self {
            bytes,
            base,
            used: 0,
            copies: Vec::with_capacity(RX_BATCH_OPS),
            frames: Vec::with_capacity(RX_BATCH_OPS),
        }
    }

    /// Where a frame of `len` bytes in `slots` copies would go (after
    /// `base`), placed so that no copy crosses a page boundary: inside
    /// one page if it fits in one, else from the start of a page. `None`
    /// when the stage is full.
    fn place(&self, len: usize, slots: usize) -> Option<usize> {
        if self.copies.len() + slots > RX_BATCH_OPS {
            return None;
        }
        let in_page = self.used % PAGE_SIZE;
        let at = if in_page == 0 || in_page + len <= PAGE_SIZE {
            self.used
        } else {
            self.used + (PAGE_SIZE - in_page)
        };
        (at + len <= RX_STAGE_PAGES * PAGE_SIZE).then_some(at)
    }
}

/// How a delivery failed: the frame was dropped (and counted), or the
/// ring's indices are impossible.
enum Delivery {
    Drop(RxError),
    Fatal,
}

/// A connection's parts that delivery works on, borrowed apart.
struct Rx<'c, H: Hypervisor> {
    hv: &'c mut H,
    queues: &'c mut [Queue<H::Page>],
    stage: &'c mut RxStage,
    fe: DomId,
    counters: &'c mut VifCounters,
    done: &'c mut RxDelivered,
}

impl<H: Hypervisor> Rx<'_, H> {
    /// A frame without GSO: its checksum as the guest takes it.
    fn plain(
        &mut self,
        qi: usize,
        max: usize,
        feat: RxFeatures,
        frame: &[u8],
        csum: Csum,
    ) -> Result<(), Delivery> {
        let len = frame.len();
        if len < ETH_HLEN || len > max || (len > PAGE_SIZE && !feat.sg) {
            self.counters.count_rx_drop(RxDrop::BadLength);
            return Err(Delivery::Drop(RxError::BadLength));
        }
        let copy = |dst: &mut [u8]| dst.copy_from_slice(frame);
        match csum {
            Csum::Unknown => self.stage(qi, len, 0, None, copy),
            Csum::Validated => self.stage(qi, len, NETRXF_DATA_VALIDATED, None, copy),
            Csum::Partial { .. } => {
                let Some(at) = checksum::locate(frame, Lengths::Ip) else {
                    self.counters.count_rx_drop(RxDrop::Offload);
                    return Err(Delivery::Drop(RxError::BadLength));
                };
                let takes = if at.ipv6 { feat.csum6 } else { feat.csum4 };
                if takes {
                    let flags = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
                    return self.stage(qi, len, flags, None, copy);
                }
                // Completed in the staged copy: the frame is not ours.
                self.stage(qi, len, NETRXF_DATA_VALIDATED, None, |dst| {
                    dst.copy_from_slice(frame);
                    checksum::fill(dst, &at);
                })
            }
        }
    }

    /// A GSO frame for a guest without GSO: every segment, or none if the
    /// guest has not posted buffers for all. Each segment is a frame of
    /// its own on the ring, and a bad grant fails only its segment.
    fn segments(
        &mut self,
        qi: usize,
        feat: RxFeatures,
        frame: &[u8],
        plan: &Plan,
    ) -> Result<(), Delivery> {
        let per_seg = |i: usize| plan.len(i).div_ceil(PAGE_SIZE) as u32;
        if !feat.sg && per_seg(0) > 1 {
            self.counters.count_rx_drop(RxDrop::BadLength);
            return Err(Delivery::Drop(RxError::BadLength));
        }
        let needed: u32 = (0..plan.count()).map(per_seg).sum();
        let Some(q) = self.queues.get_mut(qi) else {
            self.counters.count_rx_drop(RxDrop::NotConnected);
            return Err(Delivery::Drop(RxError::NotConnected));
        };
        if !ensure_slots(q, needed)? {
            self.counters.count_rx_drop(RxDrop::RingFull);
            return Err(Delivery::Drop(RxError::Full));
        }
        self.counters.rx_segmented += 1;
        for i in 0..plan.count() {
            self.stage(qi, plan.len(i), NETRXF_DATA_VALIDATED, None, |dst| {
                plan.write(frame, i, dst, true);
            })?;
        }
        Ok(())
    }

    /// Takes the requests for one frame of `len` bytes on queue `qi` (its
    /// data slots, and after the first the `extra` slot if any), lets
    /// `fill` write its bytes into the stage, and records its copies.
    fn stage(
        &mut self,
        qi: usize,
        len: usize,
        flags: u16,
        extra: Option<ExtraInfo>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), Delivery> {
        let data_slots = len.div_ceil(PAGE_SIZE);
        if data_slots == 0 || data_slots > MAX_DATA_SLOTS {
            self.counters.count_rx_drop(RxDrop::BadLength);
            return Err(Delivery::Drop(RxError::BadLength));
        }
        let at = match self.stage.place(len, data_slots) {
            Some(at) => at,
            None => {
                // Full: what is staged goes now, and the frame fits after.
                self.copy();
                match self.stage.place(len, data_slots) {
                    Some(at) => at,
                    None => {
                        self.counters.count_rx_drop(RxDrop::BadLength);
                        return Err(Delivery::Drop(RxError::BadLength));
                    }
                }
            }
        };
        let Some(q) = self.queues.get_mut(qi) else {
            self.counters.count_rx_drop(RxDrop::NotConnected);
            return Err(Delivery::Drop(RxError::NotConnected));
        };
        let needed = data_slots + usize::from(extra.is_some());
        if !ensure_slots(q, needed as u32)? {
            self.counters.count_rx_drop(RxDrop::RingFull);
            return Err(Delivery::Drop(RxError::Full));
        }

        let st = &mut *self.stage;
        let first = st.copies.len();
        let start = st.base + at;
        for i in 0..data_slots {
            let req = RxRequest::parse(&q.rx.take_request(&q.rx_page));
            if i == 0 && extra.is_some() {
                // The extra takes the second request; data the others.
                q.rx.take_request(&q.rx_page);
            }
            let off = i * PAGE_SIZE;
            st.copies.push(StagedCopy {
                at: start + off,
                len: (len - off).min(PAGE_SIZE),
                gref: req.gref,
                id: req.id,
            });
        }
        fill(&mut st.bytes[start..start + len]);
        st.used = at + len;
        st.frames.push(StagedFrame {
            queue: qi,
            first,
            slots: data_slots,
            flags,
            extra,
        });
        Ok(())
    }

    /// Copies every staged frame in one `grant_copy` and writes their
    /// responses, each frame with its own copies' status.
    fn copy(&mut self) {
        let Rx {
            hv,
            queues,
            stage,
            fe,
            counters,
            done,
        } = self;
        if stage.copies.is_empty() {
            return;
        }
        let mut ops: [GrantCopy<'_>; RX_BATCH_OPS] = core::array::from_fn(|_| GrantCopy::default());
        for (op, c) in ops.iter_mut().zip(&stage.copies) {
            *op = GrantCopy::to_foreign(
                &stage.bytes[c.at..c.at + c.len],
                GrantAddr {
                    domid: *fe,
                    gref: c.gref,
                    offset: 0,
                },
            );
        }
        let ops = &mut ops[..stage.copies.len()];
        hv.grant_copy(ops);
        counters.rx_batches += 1;

        for f in &stage.frames {
            let span = f.first..f.first + f.slots;
            let (Some(q), Some(copies), Some(status)) = (
                queues.get_mut(f.queue),
                stage.copies.get(span.clone()),
                ops.get(span),
            ) else {
                continue; // not staged so: nothing was taken for it
            };
            let ok = status.iter().all(|op| op.status.is_okay());
            for (i, c) in copies.iter().enumerate() {
                let mut flags = if i + 1 == f.slots {
                    0
                } else {
                    NETRXF_MORE_DATA
                };
                if i == 0 {
                    flags |= f.flags;
                    if f.extra.is_some() {
                        flags |= NETRXF_EXTRA_INFO;
                    }
                }
                let rsp = RxResponse {
                    id: c.id,
                    offset: 0,
                    flags,
                    // A copy is at most a page: it fits.
                    status: if ok { c.len as i16 } else { NETIF_RSP_ERROR },
                };
                q.rx.put_response(&q.rx_page, &rsp.encode());
                if i == 0 {
                    if let Some(e) = f.extra {
                        // netif_extra_info in the response slot (8 bytes).
                        q.rx.put_response(&q.rx_page, &e.encode()[..8]);
                    }
                }
            }
            if ok {
                counters.rx_frames += 1;
                counters.rx_bytes += copies.iter().map(|c| c.len as u64).sum::<u64>();
                if f.extra.is_some() {
                    counters.rx_gso += 1;
                }
                done.frames += 1;
            } else {
                counters.count_rx_drop(RxDrop::BadGrant);
                done.guest_faults += 1;
            }
        }
        stage.copies.clear();
        stage.frames.clear();
        stage.used = 0;
    }

    /// Publishes every queue's new responses, notifying where the
    /// frontend asked (its `rsp_event`).
    fn push_responses(&mut self) {
        for q in self.queues.iter_mut() {
            if q.rx.push_responses(&q.rx_page) && self.hv.send(q.rx_port).is_ok() {
                self.counters.notifies += 1;
            }
        }
    }
}

/// The queue of `nq` that `frame` goes to. One queue (the usual
/// frontend) needs no hash: it parses the headers of every frame.
fn queue_of(nq: usize, frame: &[u8]) -> usize {
    match nq {
        0 | 1 => 0,
        nq => flow_hash(frame) as usize % nq,
    }
}

/// Spreads flows over queues: a hash of the IP addresses, protocol and
/// ports (0 for frames that are not TCP/UDP over IP).
fn flow_hash(frame: &[u8]) -> u32 {
    let Some(at) = checksum::locate(frame, Lengths::Frame) else {
        return 0;
    };
    let addrs = if at.ipv6 {
        &frame[at.l3 + 8..at.l3 + 40]
    } else {
        &frame[at.l3 + 12..at.l3 + 20]
    };
    // FNV-1a: the flow's frames land together; the spread need only be fair.
    let mut h: u32 = 0x811c_9dc5;
    for b in addrs
        .iter()
        .chain(&[at.proto])
        .chain(&frame[at.l4..at.l4 + 4])
    {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// Whether `needed` requests are posted; if not, asks to be notified
/// when they are and looks once more.
fn ensure_slots<P: hypervisor::SharedPage>(
    q: &mut Queue<P>,
    needed: u32,
) -> Result<bool, Delivery> {
    let avail = q.rx.unconsumed(&q.rx_page).map_err(|_| Delivery::Fatal)?;
    if avail >= needed {
        return Ok(true);
    }
    q.rx.want_requests(&q.rx_page, avail + 1);
    let avail = q.rx.unconsumed(&q.rx_page).map_err(|_| Delivery::Fatal)?;
    Ok(avail >= needed)
}
