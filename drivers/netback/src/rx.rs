//! Guest receive: a frame grant-copied into buffers the guest posted on its
//! RX ring (`feature-rx-copy`), one page per slot, answered in the slots of
//! the requests it used.
use hypervisor::{GrantAddr, GrantCopy, Hypervisor, PAGE_SIZE};

use crate::counters::{Fatal, RxDrop};
use crate::error::RxError;
use crate::vif::Vif;
use crate::wire::{
    RxRequest, RxResponse, ETH_HLEN, NETIF_RSP_ERROR, NETRXF_MORE_DATA, XEN_NETIF_MAX_TX_SIZE,
};

/// Slots the longest frame can need.
const MAX_RX_SLOTS: usize = XEN_NETIF_MAX_TX_SIZE.div_ceil(PAGE_SIZE);

impl<H: Hypervisor> Vif<H> {
    /// Delivers one Ethernet frame (without FCS) to the guest: copies it
    /// into the guest's posted buffers, answers their requests and notifies
    /// the guest if it asked. Never allocates. Every failure is counted.
    pub fn deliver_rx(&mut self, hv: &mut H, frame: &[u8]) -> Result<(), RxError> {
        let fe = self.id.frontend;
        let max = self.config.max_frame_len;
        let counters = &mut self.counters;
        let Some(c) = self.conn.as_mut() else {
            counters.count_rx_drop(RxDrop::NotConnected);
            return Err(RxError::NotConnected);
        };
        let len = frame.len();
        let needed = len.div_ceil(PAGE_SIZE);
        if len < ETH_HLEN || len > max || (needed > 1 && !c.rx_sg) {
            counters.count_rx_drop(RxDrop::BadLength);
            return Err(RxError::BadLength);
        }
        let needed = needed as u32;
        let mut avail = match c.rx.unconsumed(&c.rx_page) {
            Ok(n) => n,
            Err(_) => return Err(self.rx_fatal(hv)),
        };
        if avail < needed {
            // Ask to be told about the next buffer, then look once more.
            c.rx.want_requests(&c.rx_page, avail + 1);
            avail = match c.rx.unconsumed(&c.rx_page) {
                Ok(n) => n,
                Err(_) => return Err(self.rx_fatal(hv)),
            };
            if avail < needed {
                counters.count_rx_drop(RxDrop::RingFull);
                return Err(RxError::Full);
            }
        }

        let mut reqs = [RxRequest::default(); MAX_RX_SLOTS];
        for r in reqs.iter_mut().take(needed as usize) {
            *r = RxRequest::parse(&c.rx.take_request(&c.rx_page));
        }
        let mut ops: [GrantCopy<'_>; MAX_RX_SLOTS] = core::array::from_fn(|_| GrantCopy::default());
        let chunks = frame.chunks(PAGE_SIZE);
        for ((op, chunk), r) in ops.iter_mut().zip(chunks.clone()).zip(&reqs) {
            *op = GrantCopy::to_foreign(
                chunk,
                GrantAddr {
                    domid: fe,
                    gref: r.gref,
                    offset: 0,
                },
            );
        }
        let ops = &mut ops[..needed as usize];
        hv.grant_copy(ops);
        let ok = ops.iter().all(|op| op.status.is_okay());

        for (i, (chunk, r)) in chunks.zip(&reqs).enumerate() {
            let last = i + 1 == needed as usize;
            let rsp = RxResponse {
                id: r.id,
                offset: 0,
                flags: if last { 0 } else { NETRXF_MORE_DATA },
                // A chunk is at most a page: it fits.
                status: if ok {
                    chunk.len() as i16
                } else {
                    NETIF_RSP_ERROR
                },
            };
            c.rx.put_response(&c.rx_page, &rsp.encode());
        }
        if c.rx.push_responses(&c.rx_page) && hv.send(c.port).is_ok() {
            counters.notifies += 1;
        }
        if ok {
            counters.rx_frames += 1;
            counters.rx_bytes += len as u64;
            Ok(())
        } else {
            counters.count_rx_drop(RxDrop::BadGrant);
            Err(RxError::GuestFault)
        }
    }

    fn rx_fatal(&mut self, hv: &mut H) -> RxError {
        self.counters.count_rx_drop(RxDrop::NotConnected);
        self.fail(hv, Fatal::RingOverflow);
        RxError::NotConnected
    }
}
