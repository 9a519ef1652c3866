//! Grant operations: batched copies to and from foreign pages, and mapped
//! foreign pages reached through offset accessors.
use crate::abi::{DomId, GrantRef, GrantStatus};

/// One side of a grant copy that lives in another domain: its grant
/// reference and a byte offset into the granted page (`gnttab_copy_ptr` with
/// `GNTCOPY_{source,dest}_gref`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantAddr {
    pub domid: DomId,
    pub gref: GrantRef,
    pub offset: u16,
}

/// The direction of one copy and its local buffer. The length copied is the
/// local slice's length.
#[derive(Debug)]
pub enum CopyDir<'a> {
    /// From a page `src.domid` granted us into local memory.
    FromForeign { src: GrantAddr, dst: &'a mut [u8] },
    /// From local memory into a page `dst.domid` granted us writable.
    ToForeign { src: &'a [u8], dst: GrantAddr },
}

impl Default for CopyDir<'_> {
    fn default() -> Self {
        Self::FromForeign {
            src: GrantAddr::default(),
            dst: &mut [],
        }
    }
}

/// One `GNTTABOP_copy` operation and, after [`GrantOps::grant_copy`], its
/// status. Xen refuses (with `BadCopyArg`) a copy longer than a page or one
/// whose foreign offset plus length passes the end of the granted page.
#[derive(Debug)]
pub struct GrantCopy<'a> {
    pub dir: CopyDir<'a>,
    /// Out: `Okay`, or why this operation copied nothing.
    pub status: GrantStatus,
}

impl Default for GrantCopy<'_> {
    fn default() -> Self {
        Self {
            dir: CopyDir::default(),
            status: GrantStatus::GeneralError,
        }
    }
}

impl<'a> GrantCopy<'a> {
    /// Copy `dst.len()` bytes from a foreign grant into `dst`.
    pub fn from_foreign(src: GrantAddr, dst: &'a mut [u8]) -> Self {
        Self {
            dir: CopyDir::FromForeign { src, dst },
            status: GrantStatus::GeneralError,
        }
    }

    /// Copy `src` into a foreign grant.
    pub fn to_foreign(src: &'a [u8], dst: GrantAddr) -> Self {
        Self {
            dir: CopyDir::ToForeign { src, dst },
            status: GrantStatus::GeneralError,
        }
    }

    /// Bytes this operation copies.
    pub fn len(&self) -> usize {
        match &self.dir {
            CopyDir::FromForeign { dst, .. } => dst.len(),
            CopyDir::ToForeign { src, .. } => src.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The foreign side.
    pub fn foreign(&self) -> GrantAddr {
        match &self.dir {
            CopyDir::FromForeign { src, .. } => *src,
            CopyDir::ToForeign { dst, .. } => *dst,
        }
    }
}

/// How a grant is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapAccess {
    /// `GNTMAP_host_map | GNTMAP_readonly`.
    ReadOnly,
    /// `GNTMAP_host_map`.
    ReadWrite,
}

/// A foreign page mapped into this domain (a shared ring). The other
/// domain may change any byte at any time, so the page is only reached
/// through these accessors and never through a Rust reference: read what
/// you need once into local memory and validate the copy.
///
/// Offsets are bytes from the start of the page; an access that does not fit
/// in [`crate::PAGE_SIZE`] bytes, or a `u32` access at an offset that is not
/// a multiple of 4, panics (a caller bug: ring offsets come from constants).
pub trait SharedPage {
    /// Reads an aligned little-endian `u32` atomically, with acquire
    /// ordering: later reads see what the writer published before it (the
    /// `rmb()` after reading a producer index in io/ring.h).
    fn load_u32(&self, offset: usize) -> u32;
    /// Writes an aligned `u32` atomically, with release ordering: earlier
    /// writes are visible before it (the `wmb()` before publishing a
    /// producer index).
    fn store_u32(&self, offset: usize, value: u32);
    /// Copies bytes out of the page (no atomicity across bytes).
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies bytes into the page.
    fn write(&self, offset: usize, data: &[u8]);
    /// A full memory barrier (`mb()`): orders an earlier store before a
    /// later load, as the ring protocol's event-index checks need.
    fn fence(&self);
}

/// The grant-table operations of a backend (grant table v1).
pub trait GrantOps {
    /// What [`GrantOps::map_grant`] returns.
    type Page: SharedPage;

    /// Performs every operation of the batch (one `GNTTABOP_copy` hypercall
    /// with `ops.len()` entries, or several if the implementation's batch is
    /// smaller), and sets each operation's `status`. A failed operation
    /// copies nothing and does not stop the others.
    fn grant_copy(&mut self, ops: &mut [GrantCopy<'_>]);

    /// Maps the page `domid` granted as `gref` (`GNTTABOP_map_grant_ref`).
    fn map_grant(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        access: MapAccess,
    ) -> Result<Self::Page, GrantStatus>;

    /// Unmaps a page from [`GrantOps::map_grant`]
    /// (`GNTTABOP_unmap_grant_ref`). A page dropped without this stays
    /// mapped (and the granting domain cannot reclaim it).
    fn unmap_grant(&mut self, page: Self::Page) -> Result<(), GrantStatus>;
}
