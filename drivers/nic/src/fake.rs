//! An in-memory NIC for host tests of anything that drives NICs.
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use crate::offload::{self, Offloads, Segmenter, TxOffload};
use crate::{
    Counters, MacAddr, NicControl, NicDatapath, NicError, RxFilter, MAX_FRAME_LEN, MIN_FRAME_LEN,
};

/// A NIC in memory: tests inject frames "from the wire" with
/// [`FakeNic::inject`], which applies the receive filter and the link state
/// as a device would, and read what the code under test sent with
/// [`FakeNic::sent`] / [`FakeNic::take_sent`].
///
/// It keeps the counters as the real drivers do, with one difference: while
/// the link is down, flushed frames are dropped and counted in `tx_drops`
/// (a real device completes them and they vanish on the dead wire), so a
/// test can see that nothing left through a dead uplink.
///
/// Offloads: none by default, so `queue_tx_offload` segments and
/// checksums in software and [`FakeNic::sent`] holds wire frames. With
/// [`FakeNic::with_offloads`] it takes what those offloads cover as a
/// device would (checked, not performed): [`FakeNic::sent`] then holds the
/// super-frame and [`FakeNic::sent_offloads`] its request.
#[derive(Debug)]
pub struct FakeNic {
    permanent: MacAddr,
    filter: RxFilter,
    filter_slots: usize,
    link: bool,
    link_seen: bool,
    rx: VecDeque<Vec<u8>>,
    rx_capacity: usize,
    queued: Vec<(Vec<u8>, TxOffload)>,
    tx_capacity: usize,
    sent: Vec<Vec<u8>>,
    sent_offloads: Vec<TxOffload>,
    offloads: Offloads,
    control_error: Option<NicError>,
    counters: Counters,
}

impl FakeNic {
    /// Receive queue length before injected frames count as `rx_missed`.
    pub const DEFAULT_RX_CAPACITY: usize = 256;
    /// Transmit ring size.
    pub const DEFAULT_TX_CAPACITY: usize = 256;
    /// Extra filter entries, as many as an e1000 has.
    pub const DEFAULT_FILTER_SLOTS: usize = 15;

    /// A NIC with factory MAC `mac`, link up, 15 filter slots.
    pub fn new(mac: MacAddr) -> Self {
        Self {
            permanent: mac,
            filter: RxFilter::new(mac),
            filter_slots: Self::DEFAULT_FILTER_SLOTS,
            link: true,
            link_seen: true,
            rx: VecDeque::new(),
            rx_capacity: Self::DEFAULT_RX_CAPACITY,
            queued: Vec::new(),
            tx_capacity: Self::DEFAULT_TX_CAPACITY,
            sent: Vec::new(),
            sent_offloads: Vec::new(),
            offloads: Offloads::NONE,
            control_error: None,
            counters: Counters::default(),
        }
    }

    /// Sets how many extra filter entries the NIC offers (at most
    /// [`RxFilter::MAX_ENTRIES`]).
    pub fn with_filter_slots(mut self, slots: usize) -> Self {
        self.filter_slots = slots.min(RxFilter::MAX_ENTRIES);
        self
    }

    /// Sets the offloads the NIC claims (see the type docs).
    pub fn with_offloads(mut self, offloads: Offloads) -> Self {
        self.offloads = offloads;
        self
    }

    /// A frame arrives from the wire. Returns whether it was queued for
    /// `receive`: not when the link is down or the filter rejects it
    /// (neither counted, as with a real device), nor when its length is out
    /// of range (`rx_drops`) or the receive queue is full (`rx_missed`).
    pub fn inject(&mut self, frame: &[u8]) -> bool {
        if !self.link {
            return false;
        }
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&frame.len()) {
            self.counters.rx_drops += 1;
            return false;
        }
        let Some(dst) = MacAddr::destination_of(frame) else {
            return false;
        };
        if !self.filter.accepts(dst) {
            return false;
        }
        if self.rx.len() >= self.rx_capacity {
            self.counters.rx_missed += 1;
            return false;
        }
        self.rx.push_back(frame.to_vec());
        true
    }

    /// Frames injected and not yet received.
    pub fn pending_rx(&self) -> usize {
        self.rx.len()
    }

    /// Frames sent (flushed while the link was up), oldest first.
    pub fn sent(&self) -> &[Vec<u8>] {
        &self.sent
    }

    /// The offload request of each frame in [`FakeNic::sent`]
    /// ([`TxOffload::NONE`] for plain ones).
    pub fn sent_offloads(&self) -> &[TxOffload] {
        &self.sent_offloads
    }

    /// Takes the sent frames, leaving none (and no offload requests).
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        self.sent_offloads.clear();
        core::mem::take(&mut self.sent)
    }

    /// Frames queued by `queue_tx` and not yet flushed.
    pub fn queued_tx(&self) -> usize {
        self.queued.len()
    }

    /// Plugs or unplugs the cable. `link_up` notices (and counts) it.
    pub fn set_link(&mut self, up: bool) {
        self.link = up;
    }

    /// Sets the transmit ring size; 0 makes every `queue_tx` fail with
    /// `TxFull`, as a stalled device would.
    pub fn set_tx_capacity(&mut self, frames: usize) {
        self.tx_capacity = frames;
    }

    /// Sets the receive queue size.
    pub fn set_rx_capacity(&mut self, frames: usize) {
        self.rx_capacity = frames;
    }

    /// Makes every control method that programs the device fail with `err`
    /// (`None`: succeed again), to test how callers cope.
    pub fn fail_control(&mut self, err: Option<NicError>) {
        self.control_error = err;
    }

    /// The filter as programmed.
    pub fn rx_filter(&self) -> &RxFilter {
        &self.filter
    }

    fn check_control(&self) -> Result<(), NicError> {
        self.control_error.map_or(Ok(()), Err)
    }
}

impl NicDatapath for FakeNic {
    fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(frame) = self.rx.pop_front() else {
                break;
            };
            self.counters.rx_frames += 1;
            self.counters.rx_bytes += frame.len() as u64;
            sink(&frame);
            n += 1;
        }
        n
    }

    fn queue_tx(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), NicError> {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            self.counters.tx_drops += 1;
            return Err(NicError::FrameLength);
        }
        if self.queued.len() >= self.tx_capacity {
            return Err(NicError::TxFull);
        }
        let mut buf = vec![0; len];
        fill(&mut buf);
        self.queued.push((buf, TxOffload::NONE));
        Ok(())
    }

    fn receive_in_place(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(&mut [u8]),
    ) -> Option<usize> {
        let mut n = 0;
        while n < budget {
            let Some(mut frame) = self.rx.pop_front() else {
                break;
            };
            self.counters.rx_frames += 1;
            self.counters.rx_bytes += frame.len() as u64;
            sink(&mut frame);
            n += 1;
        }
        Some(n)
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn queue_tx_offload(&mut self, frame: &[u8], req: &TxOffload) -> Result<(), NicError> {
        if !self.offloads.covers(req) {
            return offload::queue_in_software(self, frame, req);
        }
        if let Some(gso) = req.gso {
            Segmenter::new(frame, gso)?;
        } else if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&frame.len()) {
            self.counters.tx_drops += 1;
            return Err(NicError::FrameLength);
        }
        if req.csum.is_some_and(|c| !c.fits(frame.len())) {
            return Err(NicError::Offload);
        }
        if self.queued.len() >= self.tx_capacity {
            return Err(NicError::TxFull);
        }
        self.queued.push((frame.to_vec(), *req));
        Ok(())
    }

    fn flush_tx(&mut self) {
        for (frame, req) in self.queued.drain(..) {
            if self.link {
                self.counters.tx_frames += 1;
                self.counters.tx_bytes += frame.len() as u64;
                self.sent.push(frame);
                self.sent_offloads.push(req);
            } else {
                self.counters.tx_drops += 1;
            }
        }
    }

    fn tx_space(&mut self) -> usize {
        self.tx_capacity.saturating_sub(self.queued.len())
    }
}

impl NicControl for FakeNic {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn permanent_mac(&self) -> MacAddr {
        self.permanent
    }

    fn mac(&self) -> MacAddr {
        self.filter.mac
    }

    fn set_mac(&mut self, mac: MacAddr) -> Result<(), NicError> {
        if !mac.is_valid_unicast() {
            return Err(NicError::InvalidMac);
        }
        self.check_control()?;
        self.filter.mac = mac;
        self.counters.mac_writes += 1;
        Ok(())
    }

    fn filter_slots(&self) -> usize {
        self.filter_slots
    }

    fn filter(&self) -> &[MacAddr] {
        self.filter.entries()
    }

    fn set_filter(&mut self, macs: &[MacAddr]) -> Result<(), NicError> {
        RxFilter::check_entries(macs, self.filter_slots)?;
        self.check_control()?;
        self.filter.set_entries(macs, self.filter_slots)?;
        self.counters.filter_writes += 1;
        Ok(())
    }

    fn promiscuous(&self) -> bool {
        self.filter.promiscuous
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<(), NicError> {
        self.check_control()?;
        if self.filter.promiscuous != on {
            self.filter.promiscuous = on;
            self.counters.filter_writes += 1;
        }
        Ok(())
    }

    fn all_multicast(&self) -> bool {
        self.filter.all_multicast
    }

    fn set_all_multicast(&mut self, on: bool) -> Result<(), NicError> {
        self.check_control()?;
        if self.filter.all_multicast != on {
            self.filter.all_multicast = on;
            self.counters.filter_writes += 1;
        }
        Ok(())
    }

    fn link_up(&mut self) -> bool {
        if self.link != self.link_seen {
            self.link_seen = self.link;
            self.counters.link_changes += 1;
        }
        self.link
    }

    fn counters(&mut self) -> Counters {
        self.counters
    }

    fn reset(&mut self) -> Result<(), NicError> {
        self.check_control()?;
        self.filter = RxFilter::new(self.permanent);
        self.rx.clear();
        self.queued.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Nic;

    const OWN: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
    const NEW: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 9]);
    const PEER: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 0x20]);

    fn frame(dst: MacAddr, len: usize) -> Vec<u8> {
        let mut f = vec![0xab; len];
        f[..6].copy_from_slice(&dst.0);
        f[6..12].copy_from_slice(&PEER.0);
        f
    }

    fn received(nic: &mut dyn Nic) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        nic.receive(usize::MAX, &mut |f| out.push(f.to_vec()));
        out
    }

    #[test]
    fn receives_what_the_filter_accepts_in_order() {
        let mut nic = FakeNic::new(OWN);
        assert!(nic.inject(&frame(OWN, 60)));
        assert!(!nic.inject(&frame(NEW, 60)));
        assert!(nic.inject(&frame(MacAddr::BROADCAST, 42)));
        let got = received(&mut nic);
        assert_eq!(got, vec![frame(OWN, 60), frame(MacAddr::BROADCAST, 42)]);
        let c = nic.counters();
        assert_eq!((c.rx_frames, c.rx_bytes), (2, 102));
    }

    #[test]
    fn receive_respects_the_budget() {
        let mut nic = FakeNic::new(OWN);
        for _ in 0..5 {
            nic.inject(&frame(OWN, 60));
        }
        assert_eq!(nic.receive(3, &mut |_| {}), 3);
        assert_eq!(nic.pending_rx(), 2);
    }

    #[test]
    fn mac_write_moves_acceptance_from_old_to_new() {
        let mut nic = FakeNic::new(OWN);
        nic.set_mac(NEW).unwrap();
        assert!(!nic.inject(&frame(OWN, 60)));
        assert!(nic.inject(&frame(NEW, 60)));
        assert_eq!(nic.mac(), NEW);
        assert_eq!(nic.permanent_mac(), OWN);
        assert_eq!(nic.counters().mac_writes, 1);
        assert_eq!(nic.set_mac(MacAddr::BROADCAST), Err(NicError::InvalidMac));
        assert_eq!(nic.counters().mac_writes, 1);
    }

    #[test]
    fn filter_entries_and_promiscuous_widen_acceptance() {
        let mut nic = FakeNic::new(OWN).with_filter_slots(2);
        nic.set_filter(&[NEW, PEER]).unwrap();
        assert!(nic.inject(&frame(NEW, 60)));
        assert!(nic.inject(&frame(PEER, 60)));
        assert_eq!(nic.set_filter(&[NEW, PEER, OWN]), Err(NicError::FilterFull));
        assert_eq!(nic.filter(), &[NEW, PEER]);
        let stranger = MacAddr([0x02, 0, 0, 0, 0, 7]);
        assert!(!nic.inject(&frame(stranger, 60)));
        nic.set_promiscuous(true).unwrap();
        assert!(nic.inject(&frame(stranger, 60)));
        nic.set_promiscuous(true).unwrap();
        assert_eq!(nic.counters().filter_writes, 2);
    }

    #[test]
    fn link_down_drops_both_ways_and_counts_transitions() {
        let mut nic = FakeNic::new(OWN);
        nic.set_link(false);
        assert!(!nic.link_up());
        assert!(!nic.inject(&frame(OWN, 60)));
        assert_eq!(nic.transmit(&[&frame(PEER, 60)]), 1);
        assert!(nic.sent().is_empty());
        nic.set_link(true);
        assert!(nic.link_up());
        assert!(nic.link_up());
        let c = nic.counters();
        assert_eq!((c.link_changes, c.tx_drops, c.tx_frames), (2, 1, 0));
    }

    #[test]
    fn transmit_takes_until_full_and_drops_bad_lengths() {
        let mut nic = FakeNic::new(OWN);
        nic.set_tx_capacity(2);
        let ok = frame(PEER, 60);
        let runt = vec![0u8; 10];
        let giant = frame(PEER, MAX_FRAME_LEN + 1);
        // The runt and the giant are taken (dropped); the ring holds two.
        let frames: [&[u8]; 5] = [&ok, &runt, &ok, &giant, &ok];
        assert_eq!(nic.transmit(&frames), 4);
        assert_eq!(nic.take_sent(), vec![ok.clone(), ok.clone()]);
        let c = nic.counters();
        assert_eq!((c.tx_frames, c.tx_bytes, c.tx_drops), (2, 120, 2));
    }

    #[test]
    fn queue_tx_writes_in_place_and_waits_for_flush() {
        let mut nic = FakeNic::new(OWN);
        nic.queue_tx(20, &mut |buf| {
            buf.fill(7);
            buf[..6].copy_from_slice(&PEER.0);
        })
        .unwrap();
        assert!(nic.sent().is_empty());
        assert_eq!(nic.queued_tx(), 1);
        assert_eq!(nic.tx_space(), FakeNic::DEFAULT_TX_CAPACITY - 1);
        nic.flush_tx();
        assert_eq!(nic.sent().len(), 1);
        assert_eq!(&nic.sent()[0][..6], &PEER.0);
        assert_eq!(nic.sent()[0][19], 7);
    }

    #[test]
    fn bad_lengths_and_a_full_queue_are_counted_on_receive() {
        let mut nic = FakeNic::new(OWN);
        nic.set_rx_capacity(1);
        assert!(!nic.inject(&frame(OWN, 13)));
        assert!(!nic.inject(&frame(OWN, MAX_FRAME_LEN + 1)));
        assert!(nic.inject(&frame(OWN, 60)));
        assert!(!nic.inject(&frame(OWN, 60)));
        let c = nic.counters();
        assert_eq!((c.rx_drops, c.rx_missed), (2, 1));
    }

    #[test]
    fn reset_restores_factory_state_and_keeps_counters() {
        let mut nic = FakeNic::new(OWN);
        nic.set_mac(NEW).unwrap();
        nic.set_filter(&[PEER]).unwrap();
        nic.set_promiscuous(true).unwrap();
        nic.set_all_multicast(true).unwrap();
        nic.inject(&frame(OWN, 60));
        nic.reset().unwrap();
        assert_eq!(nic.mac(), OWN);
        assert!(nic.filter().is_empty());
        assert!(!nic.promiscuous() && !nic.all_multicast());
        assert_eq!(nic.pending_rx(), 0);
        assert_eq!(nic.counters().mac_writes, 1);
    }

    #[test]
    fn injected_control_failures_change_nothing() {
        let mut nic = FakeNic::new(OWN);
        nic.fail_control(Some(NicError::Timeout));
        assert_eq!(nic.set_mac(NEW), Err(NicError::Timeout));
        assert_eq!(nic.set_promiscuous(true), Err(NicError::Timeout));
        assert_eq!(nic.mac(), OWN);
        assert!(!nic.promiscuous());
        nic.fail_control(None);
        nic.set_mac(NEW).unwrap();
    }
}
