//! The byte rings of xenstore and the PV console (io/xs_wire.h,
//! io/console.h): a power-of-two buffer and free-running 32-bit producer and
//! consumer indices in a page shared with the other end.
//!
//! The other end may write any value into the indices, so every read of
//! them is checked: a ring that claims more bytes than it holds is
//! [`Corrupt`] and nothing is copied.
use hypervisor::SharedPage;

/// The indices claim more data than the ring holds: the other end is
/// broken or hostile. The caller stops using the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt;

/// One direction of a byte ring inside a shared page.
#[derive(Clone, Copy, Debug)]
pub struct ByteRing {
    /// Offset of the data buffer in the page.
    pub buf: usize,
    /// Buffer size, a power of two.
    pub size: u32,
    pub cons: usize,
    pub prod: usize,
}

impl ByteRing {
    /// Bytes waiting to be consumed.
    pub fn available(&self, page: &impl SharedPage) -> Result<u32, Corrupt> {
        let prod = page.load_u32(self.prod);
        let cons = page.load_u32(self.cons);
        let used = prod.wrapping_sub(cons);
        if used > self.size {
            return Err(Corrupt);
        }
        Ok(used)
    }

    /// Producer side: copies as much of `data` as fits, publishes it and
    /// returns how many bytes went in.
    pub fn produce(&self, page: &impl SharedPage, data: &[u8]) -> Result<usize, Corrupt> {
        let cons = page.load_u32(self.cons);
        let prod = page.load_u32(self.prod);
        let used = prod.wrapping_sub(cons);
        if used > self.size {
            return Err(Corrupt);
        }
        let free = (self.size - used) as usize;
        let n = free.min(data.len());
        let mask = self.size - 1;
        let mut written = 0;
        while written < n {
            let at = (prod.wrapping_add(written as u32) & mask) as usize;
            let chunk = (self.size as usize - at).min(n - written);
            page.write(self.buf + at, &data[written..written + chunk]);
            written += chunk;
        }
        // store_u32 orders the data before the index (wmb()).
        page.store_u32(self.prod, prod.wrapping_add(n as u32));
        Ok(n)
    }

    /// Consumer side: copies up to `out.len()` waiting bytes out, frees
    /// their space and returns how many were copied.
    pub fn consume(&self, page: &impl SharedPage, out: &mut [u8]) -> Result<usize, Corrupt> {
        let prod = page.load_u32(self.prod); // acquire: data after it is visible
        let cons = page.load_u32(self.cons);
        let used = prod.wrapping_sub(cons);
        if used > self.size {
            return Err(Corrupt);
        }
        let n = (used as usize).min(out.len());
        let mask = self.size - 1;
        let mut read = 0;
        while read < n {
            let at = (cons.wrapping_add(read as u32) & mask) as usize;
            let chunk = (self.size as usize - at).min(n - read);
            page.read(self.buf + at, &mut out[read..read + chunk]);
            read += chunk;
        }
        // Release: our reads of the data happen before the space is freed.
        page.store_u32(self.cons, cons.wrapping_add(n as u32));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypervisor::FakePage;

    const RING: ByteRing = ByteRing {
        buf: 0,
        size: 16,
        cons: 64,
        prod: 68,
    };

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let page = FakePage::new();
        // Start near the end of the index space so the u32s wrap too.
        page.store_u32(RING.cons, u32::MAX - 5);
        page.store_u32(RING.prod, u32::MAX - 5);
        let mut next = 0u8;
        let mut expect = 0u8;
        for round in 0..20 {
            let data: Vec<u8> = (0..(round % 7 + 3))
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            let n = RING.produce(&page, &data).unwrap();
            assert_eq!(n, data.len());
            let mut out = [0u8; 16];
            let got = RING.consume(&page, &mut out).unwrap();
            assert_eq!(got, n);
            for b in &out[..got] {
                expect = expect.wrapping_add(1);
                assert_eq!(*b, expect);
            }
        }
    }

    #[test]
    fn a_full_ring_takes_nothing_more() {
        let page = FakePage::new();
        assert_eq!(RING.produce(&page, &[1; 20]).unwrap(), 16);
        assert_eq!(RING.produce(&page, &[2; 4]).unwrap(), 0);
        assert_eq!(RING.available(&page).unwrap(), 16);
        let mut out = [0u8; 4];
        assert_eq!(RING.consume(&page, &mut out).unwrap(), 4);
        assert_eq!(RING.produce(&page, &[3; 8]).unwrap(), 4);
    }

    #[test]
    fn impossible_indices_are_corrupt() {
        let page = FakePage::new();
        page.store_u32(RING.prod, 17);
        assert_eq!(RING.available(&page), Err(Corrupt));
        assert_eq!(RING.consume(&page, &mut [0; 4]), Err(Corrupt));
        assert_eq!(RING.produce(&page, &[0; 4]), Err(Corrupt));
        // cons ahead of prod is the same lie.
        page.store_u32(RING.prod, 0);
        page.store_u32(RING.cons, 3);
        assert_eq!(RING.available(&page), Err(Corrupt));
    }
}
