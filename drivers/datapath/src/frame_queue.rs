//! A fixed ring of frame buffers, allocated once: the queue between the
//! datapath and the domain's own IP stack, and a vif's deliveries.
//!
//! Each frame may carry an offload request ([`TxOffload`]). A queue made
//! [`FrameQueue::with_large`] also holds a few TCP super-frames (up to
//! [`MAX_GSO_FRAME_LEN`]) in buffers of their own, so a plain queue does
//! not pay 64 KiB per slot.
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use nic::offload::MAX_GSO_FRAME_LEN;
use nic::{TxOffload, MAX_FRAME_LEN};

/// Where a queued frame's bytes are.
#[derive(Clone, Copy)]
enum At {
    /// Its slot's own buffer.
    Slot,
    /// Large buffer `n`.
    Large(usize),
}

pub struct FrameQueue {
    buffers: Vec<[u8; MAX_FRAME_LEN]>,
    lens: Vec<u32>,
    reqs: Vec<TxOffload>,
    at: Vec<At>,
    /// Buffers of [`MAX_GSO_FRAME_LEN`] bytes for frames longer than a slot.
    large: Vec<Box<[u8]>>,
    /// Indices of the large buffers not in use (a stack, its capacity
    /// reserved: pushing never allocates).
    large_free: Vec<usize>,
    head: usize,
    len: usize,
}

impl FrameQueue {
    /// Room for `capacity` frames of up to [`MAX_FRAME_LEN`] bytes.
    pub fn new(capacity: usize) -> Self {
        Self::with_large(capacity, 0)
    }

    /// As [`FrameQueue::new`], and `large` of the frames at once may be
    /// longer, up to [`MAX_GSO_FRAME_LEN`] (TCP super-frames).
    pub fn with_large(capacity: usize, large: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buffers: vec![[0; MAX_FRAME_LEN]; capacity],
            lens: vec![0; capacity],
            reqs: vec![TxOffload::NONE; capacity],
            at: vec![At::Slot; capacity],
            large: (0..large)
                .map(|_| vec![0u8; MAX_GSO_FRAME_LEN].into_boxed_slice())
                .collect(),
            large_free: (0..large).rev().collect(),
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.buffers.len()
    }

    /// Copies `frame` in; `false` (nothing queued) when full or too long.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        self.push_with(frame.len(), |buf| buf.copy_from_slice(frame))
    }

    /// Copies `frame` in with its offload request; `false` (nothing
    /// queued) when full or too long.
    pub fn push_offload(&mut self, frame: &[u8], req: &TxOffload) -> bool {
        self.push_inner(frame.len(), *req, |buf| buf.copy_from_slice(frame))
    }

    /// Queues a frame of `len` bytes written by `fill`; `false` when full or
    /// `len` is out of range.
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        self.push_inner(len, TxOffload::NONE, fill)
    }

    fn push_inner(&mut self, len: usize, req: TxOffload, fill: impl FnOnce(&mut [u8])) -> bool {
        if self.is_full() {
            return false;
        }
        let where_ = if len <= MAX_FRAME_LEN {
            At::Slot
        } else if len <= MAX_GSO_FRAME_LEN {
            match self.large_free.pop() {
                Some(n) => At::Large(n),
                None => return false,
            }
        } else {
            return false;
        };
        // head + len < 2 × capacity: one subtraction wraps it (no division
        // per frame).
        let mut at = self.head + self.len;
        if at >= self.buffers.len() {
            at -= self.buffers.len();
        }
        match where_ {
            At::Slot => fill(&mut self.buffers[at][..len]),
            At::Large(n) => fill(&mut self.large[n][..len]),
        }
        self.lens[at] = len as u32;
        self.reqs[at] = req;
        self.at[at] = where_;
        self.len += 1;
        true
    }

    /// Lends the oldest frame to `f` and removes it.
    pub fn pop<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.pop_offload(|frame, _| f(frame))
    }

    /// Lends the oldest frame and its offload request to `f` and removes it.
    pub fn pop_offload<R>(&mut self, f: impl FnOnce(&mut [u8], TxOffload) -> R) -> Option<R> {
        if self.is_empty() {
            return None;
        }
        let at = self.head;
        self.head += 1;
        if self.head == self.buffers.len() {
            self.head = 0;
        }
        self.len -= 1;
        let len = self.lens[at] as usize;
        let req = self.reqs[at];
        Some(match self.at[at] {
            At::Slot => f(&mut self.buffers[at][..len], req),
            At::Large(n) => {
                let r = f(&mut self.large[n][..len], req);
                self.large_free.push(n);
                r
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic::{Gso, GsoKind};

    const GSO: TxOffload = TxOffload {
        csum: None,
        gso: Some(Gso {
            kind: GsoKind::TcpV4,
            size: 1448,
        }),
    };

    #[test]
    fn large_frames_wait_in_their_own_buffers_in_order_with_the_rest() {
        let mut q = FrameQueue::with_large(4, 1);
        assert!(q.push(&[1; 60]));
        assert!(q.push_offload(&[2; 20_000], &GSO));
        assert!(
            !q.push_offload(&[3; 30_000], &GSO),
            "one large buffer, in use"
        );
        assert!(q.push(&[4; 100]), "a small frame still fits");
        let mut seen = Vec::new();
        while q
            .pop_offload(|f, r| seen.push((f[0], f.len(), r)))
            .is_some()
        {}
        assert_eq!(
            seen,
            [
                (1, 60, TxOffload::NONE),
                (2, 20_000, GSO),
                (4, 100, TxOffload::NONE)
            ]
        );
        assert!(q.push_offload(&[5; MAX_GSO_FRAME_LEN], &GSO), "freed");
        assert!(
            !q.push(&[6; MAX_GSO_FRAME_LEN + 1]),
            "longer than any buffer"
        );
    }

    #[test]
    fn a_plain_queue_refuses_anything_longer_than_a_slot() {
        let mut q = FrameQueue::new(2);
        assert!(!q.push(&[0; MAX_FRAME_LEN + 1]));
        assert!(q.push(&[0; MAX_FRAME_LEN]));
        assert!(q.push(&[0; 14]));
        assert!(!q.push(&[0; 14]), "full");
    }
}
