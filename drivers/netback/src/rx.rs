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
use hypervisor::{DomId, GrantAddr, GrantCopy, Hypervisor, PAGE_SIZE};

use crate::checksum::{self, Lengths};
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
/// With the GSO extra.
const MAX_RX_SLOTS: usize = MAX_DATA_SLOTS + 1;

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
    /// drop ([`RxDrop::Offload`]).
    pub fn deliver_rx_offload(
        &mut self,
        hv: &mut H,
        frame: &[u8],
        off: Offload,
    ) -> Result<(), RxError> {
        let fe = self.id.frontend;
        let max = self.config.max_frame_len;
        let counters = &mut self.counters;
        let Some(c) = self.conn.as_mut() else {
            counters.count_rx_drop(RxDrop::NotConnected);
            return Err(RxError::NotConnected);
        };
        let Connection {
            queues,
            rx_features: feat,
            seg,
            ..
        } = c;
        let feat = *feat;
        // One queue (the usual frontend) needs no hash: it parses the
        // headers of every frame.
        let qi = match queues.len() {
            0 | 1 => 0,
            nq => flow_hash(frame) as usize % nq,
        };
        let Some(q) = queues.get_mut(qi) else {
            counters.count_rx_drop(RxDrop::NotConnected);
            return Err(RxError::NotConnected);
        };
        let result = match off.gso {
            None => deliver_plain(hv, q, seg, fe, max, feat, counters, frame, off.csum),
            Some(gso) => {
                let takes = feat.sg
                    && match gso.kind {
                        GsoKind::TcpV4 => feat.gso4,
                        GsoKind::TcpV6 => feat.gso6,
                    };
                match Plan::new(frame, gso, max) {
                    Err(_) => {
                        counters.count_rx_drop(RxDrop::Offload);
                        Err(Delivery::Drop(RxError::BadLength))
                    }
                    Ok(_) if frame.len() > XEN_NETIF_MAX_TX_SIZE => {
                        counters.count_rx_drop(RxDrop::BadLength);
                        Err(Delivery::Drop(RxError::BadLength))
                    }
                    Ok(_) if takes => {
                        let extra = ExtraInfo::new_gso(gso.size, segment::netif_gso_type(gso.kind));
                        let flags = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
                        let r = deliver_one(hv, q, fe, counters, frame, flags, Some(extra));
                        if r.is_ok() {
                            counters.rx_gso += 1;
                        }
                        r
                    }
                    Ok(plan) => deliver_segments(hv, q, seg, fe, feat, counters, frame, &plan),
                }
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(Delivery::Drop(e)) => Err(e),
            Err(Delivery::Fatal) => {
                self.counters.count_rx_drop(RxDrop::NotConnected);
                self.fail(hv, Fatal::RingOverflow);
                Err(RxError::NotConnected)
            }
        }
    }
}

/// How a delivery failed: the frame was dropped (and counted), or the
/// ring's indices are impossible.
enum Delivery {
    Drop(RxError),
    Fatal,
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

/// A frame without GSO: its checksum as the guest takes it.
#[allow(clippy::too_many_arguments)]
fn deliver_plain<H: Hypervisor>(
    hv: &mut H,
    q: &mut Queue<H::Page>,
    seg: &mut [u8],
    fe: DomId,
    max: usize,
    feat: RxFeatures,
    counters: &mut VifCounters,
    frame: &[u8],
    csum: Csum,
) -> Result<(), Delivery> {
    if frame.len() < ETH_HLEN || frame.len() > max || (frame.len() > PAGE_SIZE && !feat.sg) {
        counters.count_rx_drop(RxDrop::BadLength);
        return Err(Delivery::Drop(RxError::BadLength));
    }
    match csum {
        Csum::Unknown => deliver_one(hv, q, fe, counters, frame, 0, None),
        Csum::Validated => deliver_one(hv, q, fe, counters, frame, NETRXF_DATA_VALIDATED, None),
        Csum::Partial { .. } => {
            let Some(at) = checksum::locate(frame, Lengths::Ip) else {
                counters.count_rx_drop(RxDrop::Offload);
                return Err(Delivery::Drop(RxError::BadLength));
            };
            let takes = if at.ipv6 { feat.csum6 } else { feat.csum4 };
            if takes {
                let flags = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
                return deliver_one(hv, q, fe, counters, frame, flags, None);
            }
            // `seg` holds `max` bytes, and the frame is no longer.
            let copy = &mut seg[..frame.len()];
            copy.copy_from_slice(frame);
            checksum::fill(copy, &at);
            deliver_one(hv, q, fe, counters, copy, NETRXF_DATA_VALIDATED, None)
        }
    }
}

/// A GSO frame for a guest without GSO: every segment, or none if the
/// guest has not posted buffers for all.
#[allow(clippy::too_many_arguments)]
fn deliver_segments<H: Hypervisor>(
    hv: &mut H,
    q: &mut Queue<H::Page>,
    seg: &mut [u8],
    fe: DomId,
    feat: RxFeatures,
    counters: &mut VifCounters,
    frame: &[u8],
    plan: &Plan,
) -> Result<(), Delivery> {
    let per_seg = |i: usize| plan.len(i).div_ceil(PAGE_SIZE) as u32;
    if !feat.sg && per_seg(0) > 1 {
        counters.count_rx_drop(RxDrop::BadLength);
        return Err(Delivery::Drop(RxError::BadLength));
    }
    let needed: u32 = (0..plan.count()).map(per_seg).sum();
    if !ensure_slots(q, needed)? {
        counters.count_rx_drop(RxDrop::RingFull);
        return Err(Delivery::Drop(RxError::Full));
    }
    counters.rx_segmented += 1;
    for i in 0..plan.count() {
        let n = plan.write(frame, i, seg, true);
        deliver_one(hv, q, fe, counters, &seg[..n], NETRXF_DATA_VALIDATED, None)?;
    }
    Ok(())
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

/// Copies one frame into posted buffers: its data slots, and after the
/// first the `extra` slot if any.
fn deliver_one<H: Hypervisor>(
    hv: &mut H,
    q: &mut Queue<H::Page>,
    fe: DomId,
    counters: &mut VifCounters,
    frame: &[u8],
    flags: u16,
    extra: Option<ExtraInfo>,
) -> Result<(), Delivery> {
    let len = frame.len();
    let data_slots = len.div_ceil(PAGE_SIZE);
    if data_slots > MAX_DATA_SLOTS {
        counters.count_rx_drop(RxDrop::BadLength);
        return Err(Delivery::Drop(RxError::BadLength));
    }
    let needed = data_slots + usize::from(extra.is_some());
    if !ensure_slots(q, needed as u32)? {
        counters.count_rx_drop(RxDrop::RingFull);
        return Err(Delivery::Drop(RxError::Full));
    }

    let mut reqs = [RxRequest::default(); MAX_RX_SLOTS];
    for r in reqs.iter_mut().take(needed) {
        *r = RxRequest::parse(&q.rx.take_request(&q.rx_page));
    }
    // The extra takes the second request; data goes into the others.
    let data_req = |i: usize| if extra.is_some() && i > 0 { i + 1 } else { i };
    let mut ops: [GrantCopy<'_>; MAX_DATA_SLOTS] = core::array::from_fn(|_| GrantCopy::default());
    for (i, (op, chunk)) in ops.iter_mut().zip(frame.chunks(PAGE_SIZE)).enumerate() {
        *op = GrantCopy::to_foreign(
            chunk,
            GrantAddr {
                domid: fe,
                gref: reqs[data_req(i)].gref,
                offset: 0,
            },
        );
    }
    let ops = &mut ops[..data_slots];
    hv.grant_copy(ops);
    let ok = ops.iter().all(|op| op.status.is_okay());

    for (i, chunk) in frame.chunks(PAGE_SIZE).enumerate() {
        let last = i + 1 == data_slots;
        let mut f = if last { 0 } else { NETRXF_MORE_DATA };
        if i == 0 {
            f |= flags;
            if extra.is_some() {
                f |= NETRXF_EXTRA_INFO;
            }
        }
        let rsp = RxResponse {
            id: reqs[data_req(i)].id,
            offset: 0,
            flags: f,
            // A chunk is at most a page: it fits.
            status: if ok {
                chunk.len() as i16
            } else {
                NETIF_RSP_ERROR
            },
        };
        q.rx.put_response(&q.rx_page, &rsp.encode());
        if i == 0 {
            if let Some(e) = extra {
                // netif_extra_info in the response slot (8 bytes).
                q.rx.put_response(&q.rx_page, &e.encode()[..8]);
            }
        }
    }
    if q.rx.push_responses(&q.rx_page) && hv.send(q.rx_port).is_ok() {
        counters.notifies += 1;
    }
    if ok {
        counters.rx_frames += 1;
        counters.rx_bytes += len as u64;
        Ok(())
    } else {
        counters.count_rx_drop(RxDrop::BadGrant);
        Err(Delivery::Drop(RxError::GuestFault))
    }
}
