//! Guest transmit: frames from the guest's TX rings, grant-copied into the
//! vif's local buffer and handed to the datapath.
//!
//! A frame is a first request (`size` = the whole frame), optional
//! extra-info slots, then continuation slots while `NETTXF_more_data` is
//! set. Each slot is copied out of the ring exactly once; validation works
//! on the copies. Every consumed slot gets exactly one response, in order:
//! the first request's, `NETIF_RSP_NULL` for each extra, then one per
//! continuation slot. Malformed frames are answered `NETIF_RSP_ERROR` and
//! counted ([`TxDrop`]); violations that make the ring untrustworthy
//! ([`Fatal`]) disconnect the vif.
//!
//! A frame with a GSO extra (when [`Config::gso`] offers it) may be up to
//! 64 KiB; it is cut into segments in software ([`crate::segment`]) unless
//! the consumer says it segments itself ([`OffloadCaps`]). A frame with
//! `NETTXF_csum_blank` has its checksum completed here unless the
//! consumer inserts checksums. Frames wait on the ring while the vif's
//! `rate` credit is short ([`crate::rate`]).
use hypervisor::{DomId, GrantAddr, GrantCopy, Hypervisor, SharedPage, PAGE_SIZE};

use crate::checksum::{self, Lengths};
use crate::config::{Config, FATAL_TX_SLOTS};
use crate::counters::{Fatal, TxDrop, VifCounters};
use crate::segment::{self, Csum, Gso, Offload, OffloadCaps, Plan, SegError};
use crate::vif::{Connection, Queue, Vif};
use crate::wire::{
    ExtraInfo, TxRequest, TxResponse, ETH_HLEN, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY,
    NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, XEN_NETIF_EXTRA_TYPE_MAX,
};

/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub(crate) const EXTRA_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD` / `_DEL`.
const EXTRA_MCAST_ADD: u8 = 2;
const EXTRA_MCAST_DEL: u8 = 3;
/// Each extra type may appear once: more extras than types is a flood.
const MAX_EXTRAS: usize = XEN_NETIF_EXTRA_TYPE_MAX as usize - 1;

enum Outcome {
    /// A frame of this many bytes is in the connection's buffer.
    Frame(usize, Csum),
    /// A GSO frame of this many bytes, checked, is in the buffer.
    Gso(usize, Gso, Plan),
    /// A control request (multicast extras), answered without a frame.
    Control,
    Dropped,
}

impl<H: Hypervisor> Vif<H> {
    /// Takes up to the configured budget of frames from the guest, calling
    /// `out` with each valid one: an Ethernet frame without FCS, at most
    /// `max_frame_len` bytes, checksum completed if the guest offloaded it,
    /// a GSO frame cut into segments. The frame is the vif's own copy:
    /// `out` may rewrite it in place (e.g. the source MAC) before sending
    /// it on. Answers every request, notifies the guest if it asked, and
    /// returns the number of frames passed to `out`. Does nothing when not
    /// connected; never allocates.
    pub fn poll_tx(&mut self, hv: &mut H, mut out: impl FnMut(&mut [u8])) -> usize {
        self.poll_tx_offload(hv, OffloadCaps::NONE, |frame, _| out(frame))
    }

    /// [`Vif::poll_tx`] for a consumer that can finish frames itself: what
    /// `caps` names is left to it and described by the [`Offload`] passed
    /// with each frame (a GSO super-frame of up to 64 KiB with
    /// `Offload::gso`, a partial checksum with [`Csum::Partial`]);
    /// everything else is done here as for `poll_tx`.
    pub fn poll_tx_offload(
        &mut self,
        hv: &mut H,
        caps: OffloadCaps,
        mut out: impl FnMut(&mut [u8], Offload),
    ) -> usize {
        let fe = self.id.frontend;
        let config = self.config;
        let now = hv.now_ns();
        let (counters, credit) = (&mut self.counters, &mut self.credit);
        let Some(c) = self.conn.as_mut() else {
            return 0;
        };
        let Connection {
            queues, buf, seg, ..
        } = c;
        let mut frames = 0;
        let mut fatal = None;
        let mut budget = config.tx_budget;
        for q in queues.iter_mut() {
            // The pending bit only says "look"; aggdom looks every poll
            // anyway. A split RX channel's bit ("buffers posted") is
            // cleared here too, so it never stays set for a loop that
            // blocks on events.
            let _ = hv.take_pending(q.tx_port);
            if q.rx_port != q.tx_port {
                let _ = hv.take_pending(q.rx_port);
            }
            let mut notify = false;
            while budget > 0 {
                budget -= 1;
                let avail = match q.tx.unconsumed(&q.tx_page) {
                    Ok(0) => match q.tx.final_check(&q.tx_page) {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(_) => {
                            fatal = Some(Fatal::RingOverflow);
                            break;
                        }
                    },
                    Ok(n) => n,
                    Err(_) => {
                        fatal = Some(Fatal::RingOverflow);
                        break;
                    }
                };
                // The first slot is copied once: the size charged is the
                // size served, whatever the guest writes meanwhile.
                let first = TxRequest::parse(&q.tx.peek_request(&q.tx_page));
                if credit.limit.is_some() {
                    let was_waiting = credit.waiting();
                    if !credit.take(now, u64::from(first.size)) {
                        if !was_waiting {
                            counters.tx_rate_limited += 1;
                        }
                        break;
                    }
                }
                q.tx.consume_peeked();
                match take_frame(hv, q, first, buf, fe, &config, caps, counters, avail) {
                    Ok((outcome, n)) => {
                        notify |= n;
                        frames += emit(outcome, buf, seg, caps, counters, &mut out);
                    }
                    Err(why) => {
                        fatal = Some(why);
                        break;
                    }
                }
            }
            if notify && hv.send(q.tx_port).is_ok() {
                counters.notifies += 1;
            }
            if fatal.is_some() {
                break;
            }
        }
        if let Some(why) = fatal {
            self.fail(hv, why);
        }
        frames
    }
}

/// Hands a taken frame to `out`, segmented or completed as `caps` needs.
/// Returns the frames passed.
fn emit(
    outcome: Outcome,
    buf: &mut [u8],
    seg: &mut [u8],
    caps: OffloadCaps,
    counters: &mut VifCounters,
    out: &mut impl FnMut(&mut [u8], Offload),
) -> usize {
    match outcome {
        Outcome::Frame(len, csum) => {
            out(&mut buf[..len], Offload { gso: None, csum });
            1
        }
        Outcome::Gso(len, gso, plan) if segment::takes(&caps, gso) => {
            let frame = &mut buf[..len];
            plan.normalise(frame);
            out(
                frame,
                Offload {
                    gso: Some(gso),
                    csum: plan.csum(),
                },
            );
            1
        }
        Outcome::Gso(len, _, plan) => {
            let mut n = 0;
            for i in 0..plan.count() {
                let l = plan.write(&buf[..len], i, seg, true);
                if l == 0 {
                    break;
                }
                counters.tx_segments += 1;
                n += 1;
                out(
                    &mut seg[..l],
                    Offload {
                        gso: None,
                        csum: Csum::Validated,
                    },
                );
            }
            n
        }
        Outcome::Control | Outcome::Dropped => 0,
    }
}

/// What the guest's flags say of a plain frame's checksum, after
/// completing it when the consumer cannot. `None`: a partial checksum on
/// a frame that is not TCP/UDP over IP.
fn tx_csum(frame: &mut [u8], flags: u16, caps: OffloadCaps) -> Option<Csum> {
    if flags & NETTXF_CSUM_BLANK == 0 {
        return Some(if flags & NETTXF_DATA_VALIDATED != 0 {
            Csum::Validated
        } else {
            Csum::Unknown
        });
    }
    let at = checksum::locate(frame, Lengths::Ip)?;
    if caps.csum {
        // The guest's seed is rewritten so the consumer can rely on it.
        checksum::fill_partial(frame, &at);
        Some(Csum::Partial {
            start: at.l4 as u16,
            offset: at.csum_offset() as u16,
        })
    } else {
        checksum::fill(frame, &at);
        Some(Csum::Validated)
    }
}

/// Reads, validates, copies and answers one frame whose `first` request
/// (consumed already) begins it; `avail` requests are published, `first`'s
/// among them. Returns the outcome and whether the guest wants a
/// notification for the responses.
#[allow(clippy::too_many_arguments)]
fn take_frame<H: Hypervisor>(
    hv: &mut H,
    q: &mut Queue<H::Page>,
    first: TxRequest,
    buf: &mut [u8],
    fe: DomId,
    config: &Config,
    caps: OffloadCaps,
    counters: &mut VifCounters,
    avail: u32,
) -> Result<(Outcome, bool), Fatal> {
    let mut reqs = [TxRequest::default(); FATAL_TX_SLOTS];
    reqs[0] = first;
    let mut n = 1;
    let mut used: u32 = 1;
    let mut extras = 0;
    let (mut gso, mut mcast) = (None, false);

    if first.flags & NETTXF_EXTRA_INFO != 0 {
        loop {
            if used >= avail {
                return Err(Fatal::MissingSlots);
            }
            let e = ExtraInfo::parse(&q.tx.take_request(&q.tx_page));
            used += 1;
            extras += 1;
            if e.kind == 0 || e.kind >= XEN_NETIF_EXTRA_TYPE_MAX || extras > MAX_EXTRAS {
                return Err(Fatal::BadExtra);
            }
            match e.kind {
                // The last one counts, as Linux copies each into its
                // type's place.
                EXTRA_GSO => gso = Some(e.gso()),
                EXTRA_MCAST_ADD | EXTRA_MCAST_DEL => mcast = true,
                _ => {} // hash, XDP: nothing to do on TX
            }
            if !e.more() {
                break;
            }
        }
    }
    let mut more = first.more_data();
    while more {
        if used >= avail {
            return Err(Fatal::MissingSlots);
        }
        let r = TxRequest::parse(&q.tx.take_request(&q.tx_page));
        used += 1;
        if n >= FATAL_TX_SLOTS {
            return Err(Fatal::SlotFlood);
        }
        reqs[n] = r;
        n += 1;
        more = r.more_data();
    }
    let reqs = &reqs[..n];

    // The first slot carries what the later ones do not.
    let total = usize::from(first.size);
    let rest: usize = reqs[1..].iter().map(|r| usize::from(r.size)).sum();
    let own0 = total.checked_sub(rest);
    let slot_len = |i: usize, r: &TxRequest| {
        if i == 0 {
            own0.unwrap_or(0)
        } else {
            usize::from(r.size)
        }
    };
    for (i, r) in reqs.iter().enumerate() {
        if usize::from(r.offset) + slot_len(i, r) > PAGE_SIZE {
            return Err(Fatal::CrossPage);
        }
    }
    // A GSO extra: size 0 or an unknown type is as fatal as in Linux's
    // `xenvif_set_skb_gso`, once GSO is offered.
    let gso = match gso {
        Some(_) if !config.gso => Some(Err(TxDrop::Gso)),
        Some((size, kind)) => match segment::gso_kind(kind) {
            Some(kind) if size > 0 => Some(Ok(Gso { size, kind })),
            _ => return Err(Fatal::BadGso),
        },
        None => None,
    };
    let max_len = match gso {
        Some(Ok(_)) => buf.len(),
        _ => config.max_frame_len,
    };
    let drop = if n > config.max_tx_slots {
        Some(TxDrop::TooManySlots)
    } else if own0.is_none() {
        Some(TxDrop::SizeMismatch)
    } else if mcast {
        None
    } else if let Some(Err(why)) = gso {
        Some(why)
    } else if total < ETH_HLEN {
        Some(TxDrop::Runt)
    } else if total > max_len {
        Some(TxDrop::Oversize)
    } else {
        None
    };

    let outcome = match drop {
        Some(why) => {
            counters.count_tx_drop(why);
            Outcome::Dropped
        }
        None if mcast => {
            counters.tx_control += 1;
            Outcome::Control
        }
        None => {
            let frame = &mut buf[..total];
            if !copy_in(hv, frame, reqs, fe, slot_len) {
                counters.count_tx_drop(TxDrop::BadGrant);
                Outcome::Dropped
            } else if let Some(Ok(g)) = gso {
                match Plan::new(frame, g, config.max_frame_len) {
                    Ok(plan) => Outcome::Gso(total, g, plan),
                    Err(e) => {
                        counters.count_tx_drop(match e {
                            SegError::NotTcp => TxDrop::GsoNotTcp,
                            SegError::BadSize => TxDrop::GsoSize,
                            SegError::TooManySegments => TxDrop::GsoSegments,
                        });
                        Outcome::Dropped
                    }
                }
            } else {
                match tx_csum(frame, first.flags, caps) {
                    Some(csum) => Outcome::Frame(total, csum),
                    None => {
                        counters.count_tx_drop(TxDrop::Checksum);
                        Outcome::Dropped
                    }
                }
            }
        }
    };
    match outcome {
        Outcome::Frame(len, _) | Outcome::Gso(len, ..) => {
            counters.tx_frames += 1;
            counters.tx_bytes += len as u64;
            if matches!(outcome, Outcome::Gso(..)) {
                counters.tx_gso += 1;
            }
        }
        Outcome::Control | Outcome::Dropped => {}
    }

    let status = if matches!(outcome, Outcome::Dropped) {
        NETIF_RSP_ERROR
    } else {
        NETIF_RSP_OKAY
    };
    respond(q, first.id, status);
    for _ in 0..extras {
        respond(q, 0, NETIF_RSP_NULL);
    }
    for r in &reqs[1..] {
        respond(q, r.id, status);
    }
    let notify = q.tx.push_responses(&q.tx_page);
    Ok((outcome, notify))
}

fn respond<P: SharedPage>(q: &mut Queue<P>, id: u16, status: i16) {
    q.tx.put_response(&q.tx_page, &TxResponse { id, status }.encode());
}
/// Grant-copies every slot's bytes into `buf` (whose length is the sum of
/// the slot lengths), in one batch. False if any copy failed.
fn copy_in(
    hv: &mut impl Hypervisor,
    buf: &mut [u8],
    reqs: &[TxRequest],
    fe: DomId,
    slot_len: impl Fn(usize, &TxRequest) -> usize,
) -> bool {
    let mut ops: [GrantCopy<'_>; FATAL_TX_SLOTS] = core::array::from_fn(|_| GrantCopy::default());
    let mut k = 0;
    let mut rest = buf;
    for (i, r) in reqs.iter().enumerate() {
        let len = slot_len(i, r);
        if len == 0 {
            continue;
        }
        let Some((head, tail)) = core::mem::take(&mut rest).split_at_mut_checked(len) else {
            return false;
        };
        rest = tail;
        ops[k] = GrantCopy::from_foreign(
            GrantAddr {
                domid: fe,
                gref: r.gref,
                offset: r.offset,
            },
            head,
        );
        k += 1;
    }
    hv.grant_copy(&mut ops[..k]);
    ops[..k].iter().all(|op| op.status.is_okay())
}
