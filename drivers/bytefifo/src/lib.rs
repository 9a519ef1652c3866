//! A byte FIFO of fixed size for output that must never wait for its
//! sink: the console pushes text in, the main loop drains as much as the
//! UART or the PV console ring takes right now, and bytes that find the
//! FIFO full are dropped and counted instead of stalling the caller.
//! No heap: it lives in a static, usable before the allocator.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub struct ByteFifo<const N: usize> {
    buf: [u8; N],
    /// Index of the oldest byte.
    head: usize,
    len: usize,
    dropped: u64,
}

impl<const N: usize> Default for ByteFifo<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteFifo<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes dropped because the FIFO was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends what fits; the rest of `bytes` is dropped and counted (the
    /// newest bytes go, so what is already queued stays whole).
    pub fn push(&mut self, bytes: &[u8]) {
        let room = N - self.len;
        let take = bytes.len().min(room);
        for &b in &bytes[..take] {
            self.buf[(self.head + self.len) % N] = b;
            self.len += 1;
        }
        self.dropped += (bytes.len() - take) as u64;
    }

    /// The oldest queued bytes that lie in one piece (the rest follows
    /// after [`ByteFifo::consume`]).
    pub fn front(&self) -> &[u8] {
        let end = (self.head + self.len).min(N);
        &self.buf[self.head..end]
    }

    /// Removes `n` bytes from the front (at most what is queued).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % N;
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Hands the queued bytes to `sink` piece by piece until it takes
    /// fewer than offered (it is full) or the FIFO is empty. `sink` returns
    /// how many bytes it took. Returns the bytes drained.
    pub fn drain_into(&mut self, mut sink: impl FnMut(&[u8]) -> usize) -> usize {
        let mut total = 0;
        while !self.is_empty() {
            let piece = self.front();
            let offered = piece.len();
            let took = sink(piece).min(offered);
            self.consume(took);
            total += took;
            if took < offered {
                break;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let mut f = ByteFifo::<8>::new();
        let mut out = Vec::new();
        let mut next = 0u8;
        for round in 0..50 {
            let chunk: Vec<u8> = (0..(round % 5 + 1))
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            f.push(&chunk);
            // A sink that takes at most 3 bytes per call.
            f.drain_into(|b| {
                let n = b.len().min(3);
                out.extend_from_slice(&b[..n]);
                n
            });
        }
        f.drain_into(|b| {
            out.extend_from_slice(b);
            b.len()
        });
        assert_eq!(f.dropped(), 0, "the sink kept up");
        let want: Vec<u8> = (1..=next).collect();
        assert_eq!(out, want, "nothing lost, reordered or duplicated");
    }

    #[test]
    fn a_full_fifo_drops_the_newest_bytes_and_counts_them() {
        let mut f = ByteFifo::<4>::new();
        f.push(b"abc");
        f.push(b"def");
        assert_eq!(f.len(), 4);
        assert_eq!(f.dropped(), 2);
        let mut out = Vec::new();
        f.drain_into(|b| {
            out.extend_from_slice(b);
            b.len()
        });
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn a_sink_that_takes_nothing_stops_the_drain() {
        let mut f = ByteFifo::<4>::new();
        f.push(b"xy");
        let mut calls = 0;
        assert_eq!(
            f.drain_into(|_| {
                calls += 1;
                0
            }),
            0
        );
        assert_eq!((calls, f.len()), (1, 2), "one look, nothing lost");
    }
}
