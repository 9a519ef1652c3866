//! Guest transmit: frames from the guest's TX ring, grant-copied into the
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
use hypervisor::{DomId, GrantAddr, GrantCopy, Hypervisor, SharedPage, PAGE_SIZE};

use crate::checksum;
use crate::config::{Config, FATAL_TX_SLOTS};
use crate::counters::{Fatal, TxDrop, VifCounters};
use crate::vif::{Connection, Vif};
use crate::wire::{
    ExtraInfo, TxRequest, TxResponse, ETH_HLEN, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY,
    NETTXF_CSUM_BLANK, NETTXF_EXTRA_INFO, XEN_NETIF_EXTRA_TYPE_MAX,
};

/// `XEN_NETIF_EXTRA_TYPE_GSO`.
const EXTRA_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD` / `_DEL`.
const EXTRA_MCAST_ADD: u8 = 2;
const EXTRA_MCAST_DEL: u8 = 3;
/// Each extra type may appear once: more extras than types is a flood.
const MAX_EXTRAS: usize = XEN_NETIF_EXTRA_TYPE_MAX as usize - 1;

enum Outcome {
    /// A frame of this many bytes is in the connection's buffer.
    Frame(usize),
    /// A control request (multicast extras), answered without a frame.
    Control,
    Dropped,
}

impl<H: Hypervisor> Vif<H> {
    /// Takes up to the configured budget of frames from the guest, calling
    /// `out` with each valid one (an Ethernet frame without FCS, checksum
    /// completed if the guest offloaded it). The frame is the vif's own
    /// copy: `out` may rewrite it in place (e.g. the source MAC) before
    /// sending it on. Answers every request, notifies
    /// the guest if it asked, and returns the number of frames passed to
    /// `out`. Does nothing when not connected; never allocates.
    pub fn poll_tx(&mut self, hv: &mut H, mut out: impl FnMut(&mut [u8])) -> usize {
        let fe = self.id.frontend;
        let config = self.config;
        let counters = &mut self.counters;
        let Some(c) = self.conn.as_mut() else {
            return 0;
        };
        // The pending bit only says "look"; aggdom looks every poll anyway.
        let _ = hv.take_pending(c.port);
        let mut frames = 0;
        let mut notify = false;
        let mut fatal = None;
        for _ in 0..config.tx_budget {
            let avail = match c.tx.unconsumed(&c.tx_page) {
                Ok(0) => match c.tx.final_check(&c.tx_page) {
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
            match take_frame(hv, c, fe, &config, counters, avail) {
                Ok((outcome, n)) => {
                    notify |= n;
                    if let Outcome::Frame(len) = outcome {
                        counters.tx_frames += 1;
                        counters.tx_bytes += len as u64;
                        frames += 1;
                        out(&mut c.buf[..len]);
                    }
                }
                Err(why) => {
                    fatal = Some(why);
                    break;
                }
            }
        }
        if notify && hv.send(c.port).is_ok() {
            counters.notifies += 1;
        }
        if let Some(why) = fatal {
            self.fail(hv, why);
        }
        frames
    }
}

/// Reads, validates, copies and answers one frame; `avail` requests are
/// published. Returns the outcome and whether the guest wants a
/// notification for the responses.
fn take_frame<H: Hypervisor>(
    hv: &mut H,
    c: &mut Connection<H::Page>,
    fe: DomId,
    config: &Config,
    counters: &mut VifCounters,
    avail: u32,
) -> Result<(Outcome, bool), Fatal> {
    let mut reqs = [TxRequest::default(); FATAL_TX_SLOTS];
    let first = TxRequest::parse(&c.tx.take_request(&c.tx_page));
    reqs[0] = first;
    let mut n = 1;
    let mut used: u32 = 1;
    let mut extras = 0;
    let (mut gso, mut mcast) = (false, false);

    if first.flags & NETTXF_EXTRA_INFO != 0 {
        loop {
            if used >= avail {
                return Err(Fatal::MissingSlots);
            }
            let e = ExtraInfo::parse(&c.tx.take_request(&c.tx_page));
            used += 1;
            extras += 1;
            if e.kind == 0 || e.kind >= XEN_NETIF_EXTRA_TYPE_MAX || extras > MAX_EXTRAS {
                return Err(Fatal::BadExtra);
            }
            match e.kind {
                EXTRA_GSO => gso = true,
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
        let r = TxRequest::parse(&c.tx.take_request(&c.tx_page));
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
    let drop = if n > config.max_tx_slots {
        Some(TxDrop::TooManySlots)
    } else if own0.is_none() {
        Some(TxDrop::SizeMismatch)
    } else if mcast {
        None
    } else if gso {
        Some(TxDrop::Gso)
    } else if total < ETH_HLEN {
        Some(TxDrop::Runt)
    } else if total > config.max_frame_len {
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
            if !copy_in(hv, &mut c.buf[..total], reqs, fe, slot_len) {
                counters.count_tx_drop(TxDrop::BadGrant);
                Outcome::Dropped
            } else if first.flags & NETTXF_CSUM_BLANK != 0
                && !checksum::complete(&mut c.buf[..total])
            {
                counters.count_tx_drop(TxDrop::Checksum);
                Outcome::Dropped
            } else {
                Outcome::Frame(total)
            }
        }
    };

    let status = if matches!(outcome, Outcome::Dropped) {
        NETIF_RSP_ERROR
    } else {
        NETIF_RSP_OKAY
    };
    respond(c, first.id, status);
    for _ in 0..extras {
        respond(c, 0, NETIF_RSP_NULL);
    }
    for r in &reqs[1..] {
        respond(c, r.id, status);
    }
    let notify = c.tx.push_responses(&c.tx_page);
    Ok((outcome, notify))
}

fn respond<P: SharedPage>(c: &mut Connection<P>, id: u16, status: i16) {
    c.tx.put_response(&c.tx_page, &TxResponse { id, status }.encode());
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
