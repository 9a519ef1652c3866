//! A fixed ring of frame buffers, allocated once: the queue between the
//! datapath and the domain's own IP stack.
use alloc::vec;
use alloc::vec::Vec;
use nic::MAX_FRAME_LEN;

pub struct FrameQueue {
    buffers: Vec<[u8; MAX_FRAME_LEN]>,
    lens: Vec<u16>,
    head: usize,
    len: usize,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buffers: vec![[0; MAX_FRAME_LEN]; capacity],
            lens: vec![0; capacity],
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

    /// Queues a frame of `len` bytes written by `fill`; `false` when full or
    /// `len` is out of range.
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        if self.is_full() || len > MAX_FRAME_LEN {
            return false;
        }
        // head + len < 2 × capacity: one subtraction wraps it (no division
        // per frame).
        let mut at = self.head + self.len;
        if at >= self.buffers.len() {
            at -= self.buffers.len();
        }
        fill(&mut self.buffers[at][..len]);
        self.lens[at] = len as u16;
        self.len += 1;
        true
    }

    /// Lends the oldest frame to `f` and removes it.
    pub fn pop<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if self.is_empty() {
            return None;
        }
        let at = self.head;
        self.head += 1;
        if self.head == self.buffers.len() {
            self.head = 0;
        }
        self.len -= 1;
        let len = usize::from(self.lens[at]);
        Some(f(&mut self.buffers[at][..len]))
    }
}
