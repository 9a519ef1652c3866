//! Grant-copy splitting: a guest's ring request names a foreign offset and
//! a length, and the local side is wherever our buffer lies; `split` cuts
//! the copy so no piece crosses a page on either side, or refuses it as
//! Xen would.
//!
//! Input: (local address, length, foreign offset)*; lengths and offsets
//! are drawn around the page size, addresses from the whole space.
use hypervisor::{GrantStatus, PAGE_SIZE};
use xen::grant::split;

use crate::bytes::Bytes;

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    while !input.is_empty() {
        let local = match input.u8() % 3 {
            0 => u64::from(input.u32()),
            1 => input.u64(),
            // Near a page boundary, or near the top of the address space.
            _ => (input.u64() & !0xfff).wrapping_sub(u64::from(input.u8())),
        };
        let len = match input.u8() % 3 {
            0 => usize::from(input.u16() % 8200),
            1 => usize::from(input.u16()),
            _ => input.u64() as usize,
        };
        let foreign_offset = input.u16() % 8200;
        check(local, len, foreign_offset);
    }
}

fn check(local: u64, len: usize, foreign_offset: u16) {
    let fits = usize::from(foreign_offset)
        .checked_add(len)
        .is_some_and(|end| end <= PAGE_SIZE);
    let local_fits = local.checked_add(len as u64).is_some();
    let got = split(local, len, foreign_offset);
    if !fits || !local_fits {
        assert_eq!(
            got,
            Err(GrantStatus::BadCopyArg),
            "{local:#x} {len} {foreign_offset}"
        );
        return;
    }
    let segments = got.expect("a copy that fits is split");
    assert!(segments.len() <= 2);
    let (mut at, mut foreign) = (local, usize::from(foreign_offset));
    for s in segments.iter() {
        assert!(s.len > 0, "an empty piece");
        assert_eq!(s.local, at, "pieces not contiguous on the local side");
        assert_eq!(
            usize::from(s.foreign_offset),
            foreign,
            "nor on the foreign side"
        );
        let page = s.local / PAGE_SIZE as u64;
        let last = (s.local + u64::from(s.len) - 1) / PAGE_SIZE as u64;
        assert_eq!(page, last, "a piece crosses a local page");
        assert!(usize::from(s.foreign_offset) + usize::from(s.len) <= PAGE_SIZE);
        at += u64::from(s.len);
        foreign += usize::from(s.len);
    }
    assert_eq!(at - local, len as u64, "pieces do not add up to the copy");
}
