//! Grant table v1, the operations a backend needs: batched `GNTTABOP_copy`
//! between a frontend's granted pages and our memory, and
//! `GNTTABOP_map_grant_ref` / `unmap_grant_ref` for its rings.
//!
//! Local memory is named by guest frame number (identity mapped: the
//! address >> 12). A copy may not cross a page on either side, so a local
//! buffer that straddles pages becomes several operations ([`split`]).
//!
//! HVM maps a grant by replacing the p2m entry of one of our own frames
//! (`GNTMAP_host_map` with a guest-physical `host_addr`). The RAM that was
//! there is gone from our physmap, and after the unmap the frame is a
//! hole, so map frames are heap pages taken once, never given back to the
//! allocator, and reused for later maps.
use alloc::vec::Vec;
use core::alloc::Layout;

use hypervisor::abi::{
    DOMID_SELF, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP, GNTMAP_READONLY,
    GNTTABOP_COPY, GNTTABOP_MAP_GRANT_REF, GNTTABOP_UNMAP_GRANT_REF, HYPERVISOR_GRANT_TABLE_OP,
};
use hypervisor::{
    CopyDir, DomId, GrantCopy, GrantRef, GrantStatus, MapAccess, SharedPage, PAGE_SIZE,
};

use crate::abi::{GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabUnmapGrantRef};
use crate::hypercall::hypercall;
use crate::page::RawPage;

/// Copy operations per hypercall: as many as netback stages for one guest
/// RX batch (`netback::RX_BATCH_OPS`), so a full batch is one hypercall
/// (64 entries of 40 bytes on the stack).
const BATCH: usize = 64;

/// One page-bounded piece of a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Local address of this piece.
    pub local: u64,
    /// Offset of this piece in the foreign page.
    pub foreign_offset: u16,
    pub len: u16,
}

/// A copy's page-bounded pieces: at most two, since the foreign side is
/// one page (`len` <= `PAGE_SIZE`) and so the local side spans at most two
/// pages. Held inline: [`split`] runs for every grant copy of every frame
/// and must not allocate.
#[derive(Clone, Copy)]
pub struct Segments {
    parts: [Segment; 2],
    n: usize,
}

impl core::ops::Deref for Segments {
    type Target = [Segment];

    fn deref(&self) -> &[Segment] {
        &self.parts[..self.n]
    }
}

impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Segments {}

impl<const N: usize> PartialEq<[Segment; N]> for Segments {
    fn eq(&self, other: &[Segment; N]) -> bool {
        **self == other[..]
    }
}

impl core::fmt::Debug for Segments {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Splits a copy of `len` bytes at local address `local` and foreign page
/// offset `foreign_offset` into pieces that cross no local page boundary.
/// `BadCopyArg` (what Xen would answer) when the foreign side passes the end
/// of its page, or the local side the end of the address space (no real
/// buffer does, but the sums below must not wrap).
pub fn split(local: u64, len: usize, foreign_offset: u16) -> Result<Segments, GrantStatus> {
    let end = usize::from(foreign_offset).checked_add(len);
    if end.is_none_or(|e| e > PAGE_SIZE) || local.checked_add(len as u64).is_none() {
        return Err(GrantStatus::BadCopyArg);
    }
    // From here `foreign_offset + len <= PAGE_SIZE`: every sum below fits
    // in a u16, and the second piece (if any) ends the copy; and
    // `local + len` fits in a u64.
    let empty = Segment {
        local,
        foreign_offset,
        len: 0,
    };
    let mut out = Segments {
        parts: [empty; 2],
        n: 0,
    };
    let room = PAGE_SIZE - (local as usize % PAGE_SIZE);
    let first = room.min(len);
    if first > 0 {
        out.parts[0].len = first as u16;
        out.n = 1;
    }
    if len > first {
        out.parts[1] = Segment {
            local: local + first as u64,
            foreign_offset: foreign_offset + first as u16,
            len: (len - first) as u16,
        };
        out.n = 2;
    }
    Ok(out)
}

/// Counts of grant work, for the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantStats {
    pub copy_hypercalls: u64,
    pub copy_ops: u64,
    pub copy_failures: u64,
    pub maps: u64,
    pub unmaps: u64,
    pub map_failures: u64,
}

/// A foreign page mapped over one of our frames.
#[derive(Debug)]
pub struct MappedPage {
    page: RawPage,
    handle: u32,
}

impl SharedPage for MappedPage {
    fn load_u32(&self, offset: usize) -> u32 {
        self.page.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        self.page.store_u32(offset, value)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.page.read(offset, buf)
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.page.write(offset, data)
    }
    fn fence(&self) {
        self.page.fence()
    }
}

/// The grant side of the platform: map frames and counters.
#[derive(Default)]
pub struct Grants {
    free_frames: Vec<usize>,
    pub stats: GrantStats,
}

impl Grants {
    /// Runs the batch; see [`hypervisor::GrantOps::grant_copy`].
    pub fn copy(&mut self, ops: &mut [GrantCopy<'_>]) {
        let mut raw = [GnttabCopy::default(); BATCH];
        let mut owner = [0usize; BATCH];
        let mut n = 0;
        for i in 0..ops.len() {
            ops[i].status = GrantStatus::Okay;
            let (local, len, foreign, from_foreign) = match &mut ops[i].dir {
                CopyDir::FromForeign { src, dst } => {
                    (dst.as_mut_ptr() as u64, dst.len(), *src, true)
                }
                CopyDir::ToForeign { src, dst } => (src.as_ptr() as u64, src.len(), *dst, false),
            };
            let segments = match split(local, len, foreign.offset) {
                Ok(s) => s,
                Err(e) => {
                    ops[i].status = e;
                    continue;
                }
            };
            for s in segments.iter() {
                if n == BATCH {
                    self.flush(&mut raw[..n], &owner[..n], ops);
                    n = 0;
                }
                let local = GnttabCopyPtr {
                    u: s.local >> 12,
                    domid: DOMID_SELF,
                    offset: (s.local & 0xfff) as u16,
                    pad: 0,
                };
                let remote = GnttabCopyPtr {
                    u: u64::from(foreign.gref),
                    domid: foreign.domid,
                    offset: s.foreign_offset,
                    pad: 0,
                };
                raw[n] = if from_foreign {
                    GnttabCopy {
                        source: remote,
                        dest: local,
                        len: s.len,
                        flags: GNTCOPY_SOURCE_GREF,
                        status: 0,
                        pad: 0,
                    }
                } else {
                    GnttabCopy {
                        source: local,
                        dest: remote,
                        len: s.len,
                        flags: GNTCOPY_DEST_GREF,
                        status: 0,
                        pad: 0,
                    }
                };
                owner[n] = i;
                n += 1;
            }
        }
        if n > 0 {
            self.flush(&mut raw[..n], &owner[..n], ops);
        }
    }

    fn flush(&mut self, raw: &mut [GnttabCopy], owner: &[usize], ops: &mut [GrantCopy<'_>]) {
        // SAFETY: `raw` holds `raw.len()` gnttab_copy structs; each local
        // side names memory of a slice in `ops`, which we hold exclusively
        // (destinations are `&mut`), within one page (split).
        let rc = unsafe { grant_table_op(GNTTABOP_COPY, raw.as_mut_ptr(), raw.len()) };
        self.stats.copy_hypercalls += 1;
        self.stats.copy_ops += raw.len() as u64;
        for (r, &i) in raw.iter().zip(owner) {
            let st = op_status(rc, r.status);
            if !st.is_okay() {
                self.stats.copy_failures += 1;
                if ops[i].status.is_okay() {
                    ops[i].status = st;
                }
            }
        }
    }

    fn take_frame(&mut self) -> Option<usize> {
        if let Some(f) = self.free_frames.pop() {
            return Some(f);
        }
        let layout = Layout::from_size_align(PAGE_SIZE, PAGE_SIZE).ok()?;
        // SAFETY: a non-zero-sized layout. The page is never deallocated:
        // once a grant was mapped over it, it is no longer RAM of ours.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        (!p.is_null()).then_some(p as usize)
    }

    pub fn map(
        &mut self,
        dom: DomId,
        gref: GrantRef,
        access: MapAccess,
    ) -> Result<MappedPage, GrantStatus> {
        let frame = self.take_frame().ok_or(GrantStatus::NoSpace)?;
        let mut op = GnttabMapGrantRef {
            host_addr: frame as u64,
            flags: GNTMAP_HOST_MAP
                | match access {
                    MapAccess::ReadOnly => GNTMAP_READONLY,
                    MapAccess::ReadWrite => 0,
                },
            gref,
            dom,
            ..Default::default()
        };
        // SAFETY: one valid gnttab_map_grant_ref naming a frame of ours that
        // only this module uses and Rust holds no reference into.
        let rc = unsafe { grant_table_op(GNTTABOP_MAP_GRANT_REF, &mut op, 1) };
        let st = op_status(rc, op.status);
        if !st.is_okay() {
            // Nothing was mapped: the frame is still ours and reusable.
            self.free_frames.push(frame);
            self.stats.map_failures += 1;
            return Err(st);
        }
        self.stats.maps += 1;
        Ok(MappedPage {
            // SAFETY: the frame is page-aligned, identity mapped and now
            // backed by the granted page until unmapped.
            page: unsafe { RawPage::new(frame) },
            handle: op.handle,
        })
    }

    pub fn unmap(&mut self, page: MappedPage) -> Result<(), GrantStatus> {
        let frame = page.page.addr();
        let mut op = GnttabUnmapGrantRef {
            host_addr: frame as u64,
            handle: page.handle,
            ..Default::default()
        };
        // SAFETY: one valid gnttab_unmap_grant_ref for a mapping `map` made;
        // the MappedPage is consumed, so nothing reaches the frame any more.
        let rc = unsafe { grant_table_op(GNTTABOP_UNMAP_GRANT_REF, &mut op, 1) };
        let st = op_status(rc, op.status);
        if !st.is_okay() {
            // Still mapped (or unknown): never reuse the frame.
            return Err(st);
        }
        self.stats.unmaps += 1;
        self.free_frames.push(frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_split_at_local_page_boundaries() {
        assert_eq!(
            split(0x1000, 100, 0).unwrap(),
            [Segment {
                local: 0x1000,
                foreign_offset: 0,
                len: 100
            }]
        );
        assert_eq!(
            split(0x1f00, 0x200, 0x10).unwrap(),
            [
                Segment {
                    local: 0x1f00,
                    foreign_offset: 0x10,
                    len: 0x100
                },
                Segment {
                    local: 0x2000,
                    foreign_offset: 0x110,
                    len: 0x100
                },
            ]
        );
        // A whole page from an unaligned buffer: two pieces.
        let s = split(0x3001, 4096, 0).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().map(|x| usize::from(x.len)).sum::<usize>(), 4096);
        // Split where the local page ends, the foreign offset following.
        let v: Vec<_> = s
            .iter()
            .map(|x| (x.local, x.foreign_offset, x.len))
            .collect();
        assert_eq!(v, [(0x3001, 0, 0xfff), (0x4000, 0xfff, 1)]);
        assert!(split(0x1000, 0, 0).unwrap().is_empty());
    }

    #[test]
    fn foreign_overruns_are_refused_like_xen_does() {
        assert_eq!(split(0x1000, 4097, 0), Err(GrantStatus::BadCopyArg));
        assert_eq!(split(0x1000, 2, 4095), Err(GrantStatus::BadCopyArg));
        assert_eq!(split(0x1000, 1, 4095).unwrap().len(), 1);
        assert_eq!(split(0x1000, usize::MAX, 1), Err(GrantStatus::BadCopyArg));
    }

    #[test]
    fn a_local_side_past_the_address_space_is_refused_not_wrapped() {
        // Found by the grant_split fuzz target: the second piece's address
        // overflowed (tests/fuzz/fuzz/corpus/grant_split/crash-local-wraps).
        assert_eq!(split(u64::MAX - 10, 20, 0), Err(GrantStatus::BadCopyArg));
        assert_eq!(split(u64::MAX - 9, 10, 0), Err(GrantStatus::BadCopyArg));
        assert_eq!(split(u64::MAX - 9, 9, 0).unwrap().len(), 1);
        assert!(split(u64::MAX, 0, 0).unwrap().is_empty());
    }
}

/// `HYPERVISOR_grant_table_op(cmd, ops, count)`.
///
/// # Safety
/// `ops` points at `count` valid argument structs of `cmd`, and every frame
/// they name is ours to hand to Xen for the call.
unsafe fn grant_table_op<T>(cmd: u32, ops: *mut T, count: usize) -> i64 {
    // SAFETY: forwarded to the caller.
    unsafe {
        hypercall(
            HYPERVISOR_GRANT_TABLE_OP,
            u64::from(cmd),
            ops as u64,
            count as u64,
            0,
            0,
        )
    }
}

/// One op's outcome: the op's own status, unless the hypercall itself
/// failed (then no op was carried out).
fn op_status(rc: i64, status: i16) -> GrantStatus {
    if rc < 0 {
        GrantStatus::GeneralError
    } else {
        GrantStatus::from_raw(status)
    }
}
