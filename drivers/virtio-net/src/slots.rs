//! Bookkeeping of which frame buffer each descriptor chain in a virtqueue
//! carries, so nothing the device writes in the used ring can make the
//! driver touch a buffer it does not own.

const NONE: u16 = u16::MAX;

/// For each token (head descriptor index) the device holds, the buffer it
/// carries.
#[derive(Clone, Debug)]
pub struct Outstanding<const N: usize> {
    buf_of: [u16; N],
}

impl<const N: usize> Default for Outstanding<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Outstanding<N> {
    pub const fn new() -> Self {
        Self { buf_of: [NONE; N] }
    }

    /// Records that `token` carries `buf`; false if the token is out of
    /// range or already outstanding (the queue would be broken).
    pub fn insert(&mut self, token: u16, buf: u16) -> bool {
        match self.buf_of.get_mut(usize::from(token)) {
            Some(slot) if *slot == NONE => {
                *slot = buf;
                true
            }
            _ => false,
        }
    }

    /// The buffer `token` carried, if the driver gave the device that token.
    pub fn take(&mut self, token: u16) -> Option<u16> {
        let slot = self.buf_of.get_mut(usize::from(token))?;
        let buf = core::mem::replace(slot, NONE);
        (buf != NONE).then_some(buf)
    }

    pub fn clear(&mut self) {
        self.buf_of = [NONE; N];
    }
}

/// A stack of free buffer indices.
#[derive(Clone, Debug)]
pub struct FreeList<const N: usize> {
    free: [u16; N],
    len: usize,
}

impl<const N: usize> FreeList<N> {
    /// Every buffer 0..N free.
    pub fn full() -> Self {
        let mut free = [0; N];
        for (i, f) in free.iter_mut().enumerate() {
            *f = i as u16;
        }
        Self { free, len: N }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn pop(&mut self) -> Option<u16> {
        self.len = self.len.checked_sub(1)?;
        Some(self.free[self.len])
    }

    /// Returns a buffer; ignored if the list is already full (cannot happen
    /// when every index is pushed once per pop).
    pub fn push(&mut self, buf: u16) {
        if let Some(slot) = self.free.get_mut(self.len) {
            *slot = buf;
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_buffers_once() {
        let mut o = Outstanding::<4>::new();
        assert!(o.insert(2, 7));
        assert!(!o.insert(2, 8), "a token cannot be outstanding twice");
        assert!(!o.insert(4, 1), "out of range");
        assert_eq!(o.take(2), Some(7));
        assert_eq!(o.take(2), None, "the device cannot return a token twice");
        assert_eq!(o.take(3), None, "nor one it was never given");
        assert_eq!(o.take(u16::MAX), None);
    }

    #[test]
    fn free_list_hands_out_each_buffer_once() {
        let mut f = FreeList::<3>::full();
        let mut got: Vec<u16> = core::iter::from_fn(|| f.pop()).collect();
        got.sort();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(f.len(), 0);
        f.push(1);
        f.push(2);
        f.push(0);
        f.push(0); // over-full: ignored
        assert_eq!(f.len(), 3);
    }
}
