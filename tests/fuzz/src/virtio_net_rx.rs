//! virtio-net receive: the device returns used-ring entries, a token and a
//! length it wrote, any values at all. The driver (driver.rs `receive`)
//! maps the token back to the buffer it lent (`Outstanding`), finds the
//! frame behind the virtio-net header (`rx_frame`), and lends the buffer
//! out again.
//!
//! Checked: a token the driver did not lend is refused (the driver then
//! stops using the queue) and never yields a buffer; a buffer is never held
//! by the device twice; a delivered frame lies inside its buffer, behind
//! the header, and is 14..=1518 bytes.
//!
//! Input: a header length choice, then (token, used length)*.
use nic::{MAX_FRAME_LEN, MIN_FRAME_LEN};
use virtio_net::{rx_frame, Outstanding, BUF_LEN, QUEUE_LEN};

use crate::bytes::Bytes;

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    // VERSION_1 headers are 12 bytes, legacy ones 10; anything else only
    // tests the arithmetic.
    let hdr_len = match input.u8() % 3 {
        0 => 12,
        1 => 10,
        _ => usize::from(input.u16()),
    };
    let mut out = Outstanding::<QUEUE_LEN>::new();
    // The driver's view, mirrored both ways: which token holds each buffer,
    // and which buffer each token holds (so a token's buffer and a free
    // token are found without scanning the queue: the scans made this
    // target quadratic in the queue length).
    let mut holder: Vec<Option<u16>> = vec![None; QUEUE_LEN];
    let mut held: Vec<Option<u16>> = vec![None; QUEUE_LEN];
    for buf in 0..QUEUE_LEN as u16 {
        assert!(out.insert(buf, buf));
        holder[usize::from(buf)] = Some(buf);
        held[usize::from(buf)] = Some(buf);
    }
    while !input.is_empty() {
        let token = match input.u8() % 3 {
            0 => u16::from(input.u8()) % QUEUE_LEN as u16,
            1 => input.u16(),
            _ => QUEUE_LEN as u16 + u16::from(input.u8()),
        };
        let used = match input.u8() % 3 {
            0 => (hdr_len as u32).wrapping_add(u32::from(input.u16() % 1600)),
            1 => input.u32(),
            _ => u32::from(input.u16()),
        };
        let lent = held.get(usize::from(token)).copied().flatten();
        if let Some(b) = lent {
            assert_eq!(holder[usize::from(b)], Some(token), "mirror out of step");
        }
        let Some(buf) = out.take(token) else {
            assert_eq!(lent, None, "token {token} was lent but gave nothing");
            // The driver marks the queue broken; a reset starts over.
            out.clear();
            for b in 0..QUEUE_LEN {
                assert!(out.insert(b as u16, b as u16));
                holder[b] = Some(b as u16);
                held[b] = Some(b as u16);
            }
            continue;
        };
        assert_eq!(lent, Some(buf), "token {token} gave the wrong buffer");
        holder[usize::from(buf)] = None;
        held[usize::from(token)] = None;
        if let Some(range) = rx_frame(used, hdr_len) {
            assert!(range.start == hdr_len && range.end <= BUF_LEN, "{range:?}");
            assert_eq!(range.end as u64, u64::from(used));
            assert!((MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&range.len()));
        } else {
            let fits = (used as usize) <= BUF_LEN
                && (used as usize)
                    .checked_sub(hdr_len)
                    .is_some_and(|n| (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&n));
            assert!(!fits, "a good frame of {used} bytes was dropped");
        }
        // Lent again under a token the queue picks (any free one).
        let again = input.u16() % QUEUE_LEN as u16;
        let again = (0..QUEUE_LEN as u16)
            .map(|k| (again + k) % QUEUE_LEN as u16)
            .find(|t| held[usize::from(*t)].is_none())
            .expect("a free token, since this buffer's was freed");
        assert!(out.insert(again, buf), "token {again} is free");
        assert!(!out.insert(again, buf), "token {again} taken twice");
        holder[usize::from(buf)] = Some(again);
        held[usize::from(again)] = Some(buf);
    }
}
