//! The back end of an io/ring.h shared ring, over a mapped page.
//!
//! The page holds the shared header (`req_prod`, `req_event`, `rsp_prod`,
//! `rsp_event`, then padding to 64 bytes) and the slots. The frontend owns
//! `req_prod` and `rsp_event` and may write anything anywhere at any time;
//! the backend keeps its own `req_cons` and private `rsp_prod`, reads each
//! request slot once into local memory, and never trusts an index it did not
//! check: a `req_prod` claiming more outstanding requests than the ring
//! holds is [`RingOverflow`].
use hypervisor::{SharedPage, PAGE_SIZE};

/// Offsets in `struct <name>_sring` (io/ring.h).
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// The slots start after the 64-byte header (indices, `pvt`, `__pad[44]`).
pub const RING_HEADER: usize = 64;

/// `__RING_SIZE` for one page: the slots that fit after the header, rounded
/// down to a power of two. 256 for both netif rings.
pub const fn ring_size(slot: usize) -> u32 {
    let n = ((PAGE_SIZE - RING_HEADER) / slot) as u32;
    1 << (31 - n.leading_zeros())
}

/// The frontend published a `req_prod` that would put more requests in
/// flight than the ring holds, or moved it backwards. Only a broken or
/// malicious frontend does this; the ring cannot be trusted any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingOverflow;

/// The backend's private view of one ring.
#[derive(Debug)]
pub struct BackRing<const SLOT: usize> {
    req_cons: u32,
    rsp_prod_pvt: u32,
    rsp_pushed: u32,
}

impl<const SLOT: usize> BackRing<SLOT> {
    pub const SIZE: u32 = ring_size(SLOT);

    /// Attaches to a ring the frontend initialised: continues after the
    /// last response published (0 on a fresh ring, later when aggdom
    /// reconnects to a ring a previous instance served; requests published
    /// but unanswered are then served again).
    pub fn attach(page: &impl SharedPage) -> Result<Self, RingOverflow> {
        let rsp_prod = page.load_u32(RSP_PROD);
        let ring = Self {
            req_cons: rsp_prod,
            rsp_prod_pvt: rsp_prod,
            rsp_pushed: rsp_prod,
        };
        ring.unconsumed(page)?;
        Ok(ring)
    }

    /// Requests published and not yet taken (`RING_HAS_UNCONSUMED_REQUESTS`),
    /// after checking the frontend's `req_prod`.
    pub fn unconsumed(&self, page: &impl SharedPage) -> Result<u32, RingOverflow> {
        let req_prod = page.load_u32(REQ_PROD);
        let in_flight = req_prod.wrapping_sub(self.rsp_prod_pvt);
        let taken = self.req_cons.wrapping_sub(self.rsp_prod_pvt);
        if in_flight > Self::SIZE || in_flight < taken {
            return Err(RingOverflow);
        }
        Ok(in_flight - taken)
    }

    fn slot_offset(index: u32) -> usize {
        RING_HEADER + (index & (Self::SIZE - 1)) as usize * SLOT
    }

    /// Copies the next request slot out of the ring and consumes it. The
    /// caller must have seen it published ([`BackRing::unconsumed`]).
    pub fn take_request(&mut self, page: &impl SharedPage) -> [u8; SLOT] {
        let mut slot = [0u8; SLOT];
        page.read(Self::slot_offset(self.req_cons), &mut slot);
        self.req_cons = self.req_cons.wrapping_add(1);
        slot
    }

    /// Copies the next request slot out of the ring without consuming it
    /// (to look at a frame's size before deciding to take it). A caller
    /// that takes it goes on with this copy and calls
    /// [`BackRing::consume_peeked`]: the slot is read once, so what decided
    /// is what is served.
    pub fn peek_request(&self, page: &impl SharedPage) -> [u8; SLOT] {
        let mut slot = [0u8; SLOT];
        page.read(Self::slot_offset(self.req_cons), &mut slot);
        slot
    }

    /// Consumes the slot [`BackRing::peek_request`] copied.
    pub fn consume_peeked(&mut self) {
        self.req_cons = self.req_cons.wrapping_add(1);
    }

    /// Writes the next response into the slot of the request it answers
    /// (responses are produced in request order, one per request slot).
    pub fn put_response(&mut self, page: &impl SharedPage, bytes: &[u8]) {
        debug_assert!(bytes.len() <= SLOT);
        page.write(Self::slot_offset(self.rsp_prod_pvt), bytes);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publishes the responses written so far and says whether the frontend
    /// asked to be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`). The
    /// old `rsp_prod` is our own copy: the frontend cannot fake it.
    pub fn push_responses(&mut self, page: &impl SharedPage) -> bool {
        let old = self.rsp_pushed;
        let new = self.rsp_prod_pvt;
        if old == new {
            return false;
        }
        page.store_u32(RSP_PROD, new);
        page.fence();
        let event = page.load_u32(RSP_EVENT);
        self.rsp_pushed = new;
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: when idle, asks the frontend to
    /// notify on the next request, then looks once more so a request
    /// published meanwhile is not missed.
    pub fn final_check(&mut self, page: &impl SharedPage) -> Result<bool, RingOverflow> {
        if self.unconsumed(page)? > 0 {
            return Ok(true);
        }
        page.store_u32(REQ_EVENT, self.req_cons.wrapping_add(1));
        page.fence();
        Ok(self.unconsumed(page)? > 0)
    }

    /// Asks the frontend to notify once `n` more requests are published
    /// (RX: waiting for enough posted buffers).
    pub fn want_requests(&mut self, page: &impl SharedPage, n: u32) {
        page.store_u32(REQ_EVENT, self.req_cons.wrapping_add(n.max(1)));
        page.fence();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypervisor::FakePage;

    type Ring = BackRing<12>;

    fn set(page: &FakePage, off: usize, v: u32) {
        page.store_u32(off, v);
    }

    #[test]
    fn sizes_match_netif() {
        assert_eq!(ring_size(12), 256);
        assert_eq!(ring_size(8), 256);
        assert_eq!(ring_size(64), 32);
    }

    #[test]
    fn unconsumed_rejects_impossible_producers() {
        let page = FakePage::new();
        let mut r = Ring::attach(&page).unwrap();
        set(&page, REQ_PROD, 256);
        assert_eq!(r.unconsumed(&page), Ok(256));
        set(&page, REQ_PROD, 257);
        assert_eq!(r.unconsumed(&page), Err(RingOverflow));
        set(&page, REQ_PROD, u32::MAX);
        assert_eq!(r.unconsumed(&page), Err(RingOverflow), "backwards");
        set(&page, REQ_PROD, 3);
        r.take_request(&page);
        r.take_request(&page);
        set(&page, REQ_PROD, 1);
        assert_eq!(r.unconsumed(&page), Err(RingOverflow), "behind req_cons");
    }

    #[test]
    fn indices_wrap_around_u32() {
        let page = FakePage::new();
        set(&page, RSP_PROD, u32::MAX - 1);
        set(&page, REQ_PROD, 2);
        let mut r = Ring::attach(&page).unwrap();
        assert_eq!(r.unconsumed(&page), Ok(4));
        for _ in 0..4 {
            r.take_request(&page);
            r.put_response(&page, &[1, 0, 0, 0]);
        }
        set(&page, RSP_EVENT, u32::MAX);
        assert!(r.push_responses(&page));
        assert_eq!(page.load_u32(RSP_PROD), 2);
        assert_eq!(r.unconsumed(&page), Ok(0));
    }

    #[test]
    fn notify_follows_rsp_event() {
        let page = FakePage::new();
        set(&page, RSP_EVENT, 1);
        set(&page, REQ_PROD, 3);
        let mut r = Ring::attach(&page).unwrap();
        r.take_request(&page);
        r.put_response(&page, &[0; 4]);
        assert!(r.push_responses(&page), "frontend waits for response 1");
        r.take_request(&page);
        r.put_response(&page, &[0; 4]);
        assert!(!r.push_responses(&page), "rsp_event 1 already passed");
        set(&page, RSP_EVENT, 3);
        r.take_request(&page);
        r.put_response(&page, &[0; 4]);
        assert!(r.push_responses(&page));
        assert!(!r.push_responses(&page), "nothing new");
    }

    #[test]
    fn final_check_sets_req_event() {
        let page = FakePage::new();
        let mut r = Ring::attach(&page).unwrap();
        assert_eq!(r.final_check(&page), Ok(false));
        assert_eq!(page.load_u32(REQ_EVENT), 1);
        set(&page, REQ_PROD, 1);
        assert_eq!(r.final_check(&page), Ok(true));
        r.want_requests(&page, 4);
        assert_eq!(page.load_u32(REQ_EVENT), 4);
    }

    #[test]
    fn requests_are_copied_from_their_slot() {
        let page = FakePage::new();
        page.write(RING_HEADER + 12 * 255, &[9; 12]);
        set(&page, RSP_PROD, 255);
        set(&page, REQ_PROD, 256);
        let mut r = Ring::attach(&page).unwrap();
        assert_eq!(r.take_request(&page), [9; 12]);
    }

    #[test]
    fn a_peeked_slot_is_consumed_without_a_second_read() {
        let page = FakePage::new();
        page.write(RING_HEADER, &[1; 12]);
        page.write(RING_HEADER + 12, &[2; 12]);
        set(&page, REQ_PROD, 2);
        let mut r = Ring::attach(&page).unwrap();
        assert_eq!(r.peek_request(&page), [1; 12]);
        assert_eq!(r.unconsumed(&page), Ok(2), "peeking consumes nothing");
        r.consume_peeked();
        assert_eq!(r.unconsumed(&page), Ok(1));
        assert_eq!(r.take_request(&page), [2; 12]);
        r.put_response(&page, &[0; 4]);
        r.put_response(&page, &[0; 4]);
        r.push_responses(&page);
        assert_eq!(page.load_u32(RSP_PROD), 2, "one response per slot");
    }
}
