//! A 4 KiB page two domains can share, for the fake.
use core::sync::atomic::{fence, AtomicU64, Ordering};

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::abi::PAGE_SIZE;
use crate::grant::SharedPage;

const WORD: usize = 8;
const WORDS: usize = PAGE_SIZE / WORD;

/// A page of fake guest memory. Both the granting test code (the frontend)
/// and the backend's mapping reach it through [`SharedPage`].
///
/// The bytes live in 64-bit atomics, little-endian, eight to a word: every
/// byte is still read and written atomically (a write that covers part of
/// a word merges into it with a compare-exchange), but a page is filled,
/// copied and compared a word at a time. A byte at a time made every
/// loop step a traced compare under the fuzzers' instrumentation.
pub struct FakePage {
    words: Box<[AtomicU64; WORDS]>,
}

impl Default for FakePage {
    fn default() -> Self {
        Self::new()
    }
}

/// `bytes` (at most a word) merged into `word` from byte `from` on.
fn merge(word: &AtomicU64, from: usize, bytes: &[u8]) {
    let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
        let mut b = w.to_le_bytes();
        b[from..from + bytes.len()].copy_from_slice(bytes);
        Some(u64::from_le_bytes(b))
    });
}

impl FakePage {
    /// A zeroed page.
    pub fn new() -> Self {
        Self {
            words: Box::new([const { AtomicU64::new(0) }; WORDS]),
        }
    }

    /// A copy of the whole page.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = alloc::vec![0u8; PAGE_SIZE];
        self.read(0, &mut out);
        out
    }

    /// Sets every byte to `value` (e.g. a marker to detect leaks).
    pub fn fill(&self, value: u8) {
        let w = u64::from_le_bytes([value; WORD]);
        for word in self.words.iter() {
            word.store(w, Ordering::Relaxed);
        }
    }

    fn range(offset: usize, len: usize) -> core::ops::Range<usize> {
        let end = offset.checked_add(len).filter(|e| *e <= PAGE_SIZE);
        match end {
            Some(end) => offset..end,
            None => panic!("shared page access {offset}+{len} beyond the page"),
        }
    }

    /// Splits `r` into the bytes before its first whole word, the whole
    /// words (as word indices) and the bytes after them.
    fn split(r: core::ops::Range<usize>) -> (usize, core::ops::Range<usize>, usize) {
        let head = ((WORD - r.start % WORD) % WORD).min(r.len());
        let first = (r.start + head) / WORD;
        let whole = (r.len() - head) / WORD;
        let tail = r.len() - head - whole * WORD;
        (head, first..first + whole, tail)
    }
}

impl SharedPage for FakePage {
    fn load_u32(&self, offset: usize) -> u32 {
        assert!(offset.is_multiple_of(4), "unaligned u32 access at {offset}");
        Self::range(offset, 4);
        // An aligned u32 is one half of a word.
        let w = self.words[offset / WORD].load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (w >> (8 * (offset % WORD))) as u32
    }

    fn store_u32(&self, offset: usize, value: u32) {
        assert!(offset.is_multiple_of(4), "unaligned u32 access at {offset}");
        Self::range(offset, 4);
        fence(Ordering::Release);
        merge(
            &self.words[offset / WORD],
            offset % WORD,
            &value.to_le_bytes(),
        );
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let r = Self::range(offset, buf.len());
        let (head, whole, tail) = Self::split(r.clone());
        let (head_buf, rest) = buf.split_at_mut(head);
        let (whole_buf, tail_buf) = rest.split_at_mut(whole.len() * WORD);
        if head > 0 {
            let w = self.words[r.start / WORD]
                .load(Ordering::Relaxed)
                .to_le_bytes();
            let from = r.start % WORD;
            head_buf.copy_from_slice(&w[from..from + head]);
        }
        // Whole words as arrays: a slice copy per word costs a call and,
        // with debug assertions (as the fuzzers build), overlap checks.
        let (whole_buf, _) = whole_buf.as_chunks_mut::<WORD>();
        for (d, w) in whole_buf.iter_mut().zip(&self.words[whole.clone()]) {
            *d = w.load(Ordering::Relaxed).to_le_bytes();
        }
        if tail > 0 {
            let w = self.words[whole.end].load(Ordering::Relaxed).to_le_bytes();
            tail_buf.copy_from_slice(&w[..tail]);
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let r = Self::range(offset, data.len());
        let (head, whole, tail) = Self::split(r.clone());
        let (head_data, rest) = data.split_at(head);
        let (whole_data, tail_data) = rest.split_at(whole.len() * WORD);
        if head > 0 {
            merge(&self.words[r.start / WORD], r.start % WORD, head_data);
        }
        let (whole_data, _) = whole_data.as_chunks::<WORD>();
        for (s, w) in whole_data.iter().zip(&self.words[whole.clone()]) {
            w.store(u64::from_le_bytes(*s), Ordering::Relaxed);
        }
        if tail > 0 {
            merge(&self.words[whole.end], 0, tail_data);
        }
    }

    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every offset and length near word edges reads back what a byte
    /// model of the page holds, and writes touch nothing else.
    #[test]
    fn bytes_as_a_byte_array_would_hold_them() {
        let page = FakePage::new();
        let mut model = alloc::vec![0u8; PAGE_SIZE];
        let mut n = 1u8;
        for offset in (0..40).chain(PAGE_SIZE - 40..PAGE_SIZE) {
            for len in 0..=(PAGE_SIZE - offset).min(30) {
                let data: Vec<u8> = (0..len).map(|i| n.wrapping_add(i as u8)).collect();
                n = n.wrapping_add(7);
                page.write(offset, &data);
                model[offset..offset + len].copy_from_slice(&data);
                let mut got = alloc::vec![0u8; len];
                page.read(offset, &mut got);
                assert_eq!(got, data, "{offset}+{len}");
                assert_eq!(page.snapshot(), model, "{offset}+{len}");
            }
        }
        page.write(5, &[9; 4000]);
        model[5..4005].fill(9);
        assert_eq!(page.snapshot(), model);
        page.fill(0x5a);
        assert!(page.snapshot().iter().all(|b| *b == 0x5a));
        for at in [8, 12, PAGE_SIZE - 4] {
            page.store_u32(at, 0x1234_5678);
            assert_eq!(page.load_u32(at), 0x1234_5678);
            let mut b = [0u8; 4];
            page.read(at, &mut b);
            assert_eq!(b, [0x78, 0x56, 0x34, 0x12]);
            page.write(at, &[1, 2, 3, 4]);
            assert_eq!(page.load_u32(at), 0x0403_0201);
        }
        let mut b = [0u8; 8];
        page.read(8, &mut b);
        assert_eq!(b, [1, 2, 3, 4, 1, 2, 3, 4]);
    }

    #[test]
    #[should_panic(expected = "beyond the page")]
    fn access_beyond_the_page_panics() {
        FakePage::new().read(PAGE_SIZE - 2, &mut [0; 3]);
    }

    #[test]
    #[should_panic(expected = "beyond the page")]
    fn u32_beyond_the_page_panics() {
        FakePage::new().load_u32(PAGE_SIZE);
    }
}
