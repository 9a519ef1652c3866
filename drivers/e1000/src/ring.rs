//! Descriptor ring index arithmetic (8254x SDM 3.2.6 and 3.3.4), apart from
//! any memory so it can be tested alone.
//!
//! Receive: the device owns descriptors from RDH up to RDT-1; the driver
//! owns the rest. The driver checks descriptors in order from `next`, and
//! after handling some writes RDT = the last one handled, which gives back
//! every earlier one and keeps one descriptor out of the device's hands so a
//! full ring is told apart from an empty one.
//!
//! Transmit: the driver fills descriptors at `tail`, tells the device with
//! TDT = `tail` at a flush, and reclaims from `clean` once the device has
//! set their Descriptor Done bits. One slot stays empty, again so that
//! TDH == TDT means "nothing to send".

/// The next index after `i` in a ring of `size` descriptors.
pub const fn next(i: u16, size: u16) -> u16 {
    if i + 1 >= size {
        0
    } else {
        i + 1
    }
}

/// The RDT value to write after handling every descriptor before `next`.
pub const fn rx_tail_before(next: u16, size: u16) -> u16 {
    if next == 0 {
        size - 1
    } else {
        next - 1
    }
}

/// The driver's view of the transmit ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRing {
    size: u16,
    /// Oldest descriptor not yet reclaimed.
    clean: u16,
    /// Next descriptor to fill.
    tail: u16,
    /// The tail the device was last told (TDT).
    flushed: u16,
}

impl TxRing {
    pub const fn new(size: u16) -> Self {
        Self {
            size,
            clean: 0,
            tail: 0,
            flushed: 0,
        }
    }

    /// Descriptors filled and not reclaimed (flushed or not).
    pub const fn in_use(&self) -> u16 {
        (self.tail + self.size - self.clean) % self.size
    }

    /// Descriptors that can be filled now.
    pub const fn free(&self) -> u16 {
        self.size - 1 - self.in_use()
    }

    /// Takes the descriptor to fill next, `None` when the ring is full.
    pub fn fill(&mut self) -> Option<u16> {
        if self.free() == 0 {
            return None;
        }
        let i = self.tail;
        self.tail = next(i, self.size);
        Some(i)
    }

    /// The new TDT if anything was filled since the last flush.
    pub fn flush(&mut self) -> Option<u16> {
        if self.flushed == self.tail {
            return None;
        }
        self.flushed = self.tail;
        Some(self.tail)
    }

    /// The oldest descriptor the device was given and the driver has not
    /// reclaimed; check its Done bit before calling `reclaim`.
    pub const fn oldest_flushed(&self) -> Option<u16> {
        if self.clean == self.flushed {
            None
        } else {
            Some(self.clean)
        }
    }

    /// Reclaims the descriptor `oldest_flushed` returned.
    pub fn reclaim(&mut self) {
        if self.clean != self.flushed {
            self.clean = next(self.clean, self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_wraps() {
        assert_eq!(next(0, 8), 1);
        assert_eq!(next(7, 8), 0);
        assert_eq!(rx_tail_before(0, 8), 7);
        assert_eq!(rx_tail_before(5, 8), 4);
    }

    #[test]
    fn tx_ring_keeps_one_slot_empty() {
        let mut r = TxRing::new(8);
        assert_eq!(r.free(), 7);
        let filled: Vec<u16> = core::iter::from_fn(|| r.fill()).collect();
        assert_eq!(filled, (0..7).collect::<Vec<_>>());
        assert_eq!(r.free(), 0);
        assert_eq!(r.fill(), None);
        assert_eq!(r.flush(), Some(7));
        assert_eq!(r.flush(), None);
    }

    #[test]
    fn only_flushed_descriptors_are_reclaimed() {
        let mut r = TxRing::new(8);
        r.fill();
        r.fill();
        assert_eq!(r.oldest_flushed(), None);
        assert_eq!(r.flush(), Some(2));
        r.fill();
        assert_eq!(r.oldest_flushed(), Some(0));
        r.reclaim();
        assert_eq!(r.oldest_flushed(), Some(1));
        r.reclaim();
        assert_eq!(r.oldest_flushed(), None);
        r.reclaim(); // nothing flushed left: no effect
        assert_eq!(r.in_use(), 1);
        assert_eq!(r.free(), 6);
    }

    #[test]
    fn indices_wrap_around_many_times() {
        let mut r = TxRing::new(8);
        let mut expect = 0u16;
        for round in 0..50 {
            let n = round % 7 + 1;
            for _ in 0..n {
                assert_eq!(r.fill(), Some(expect));
                expect = next(expect, 8);
            }
            assert_eq!(r.flush(), Some(expect));
            while r.oldest_flushed().is_some() {
                r.reclaim();
            }
            assert_eq!(r.free(), 7);
        }
    }
}
