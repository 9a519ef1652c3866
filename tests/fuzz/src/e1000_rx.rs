//! e1000 receive classification: the device writes each receive
//! descriptor's status, errors and length, any values at all (a broken or
//! hostile device, or what came off the wire), and the driver's loop
//! (driver.rs `receive`) judges them one after the other, carrying whether
//! a frame spanning several buffers is open.
//!
//! Checked: only a whole, error-free frame of 14..=1518 bytes that fits
//! its buffer is delivered; each frame that ends (EOP) is delivered or
//! counted as one drop, exactly once; a descriptor not done is left to
//! the device and changes nothing.
//!
//! Input: a buffer length choice, then (status, errors, length)*.
use e1000::{classify_rx, RxVerdict, BUF_LEN};
use nic::{MAX_FRAME_LEN, MIN_FRAME_LEN};

use crate::bytes::Bytes;

pub fn run(data: &[u8]) {
    let mut input = Bytes::new(data);
    let buffer_len = match input.u8() % 3 {
        0 => BUF_LEN,
        1 => usize::from(input.u16()),
        _ => input.u64() as usize,
    };
    let mut in_split = false;
    let (mut frames_ended, mut verdicts_counted) = (0u64, 0u64);
    while !input.is_empty() {
        let status = input.u8();
        let errors = input.u8();
        let length = match input.u8() % 4 {
            0 => input.u16(),
            1 => 1518 + u16::from(input.u8() % 4) - 2,
            2 => u16::from(input.u8() % 20),
            _ => BUF_LEN as u16,
        };
        let done = status & 1 != 0;
        let eop = status & 2 != 0;
        let (verdict, after) = classify_rx(status, errors, length, buffer_len, in_split);
        match verdict {
            RxVerdict::NotDone => {
                assert!(!done);
                assert_eq!(after, in_split, "a descriptor not done changed the state");
            }
            RxVerdict::Fragment => assert!(done && !eop && after),
            RxVerdict::Deliver(n) => {
                assert!(done && eop && !in_split && !after);
                assert_eq!(n, usize::from(length));
                assert!(
                    (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&n),
                    "delivered {n} bytes"
                );
                assert!(n <= buffer_len, "delivered past the buffer");
                assert_eq!(errors & e1000_frame_errors(), 0, "delivered a bad frame");
            }
            RxVerdict::DropSplit => assert!(done && eop && in_split && !after),
            RxVerdict::DropError | RxVerdict::DropRunt | RxVerdict::DropOversize => {
                assert!(done && eop && !in_split && !after);
            }
        }
        if done && eop {
            frames_ended += 1;
        }
        if !matches!(verdict, RxVerdict::NotDone | RxVerdict::Fragment) {
            verdicts_counted += 1;
        }
        assert_eq!(
            frames_ended, verdicts_counted,
            "a frame counted twice or never"
        );
        in_split = after;
    }
}

/// 8254x SDM 3.2.3.2: CE, SE, SEQ, CXE and RXE mark a bad frame.
fn e1000_frame_errors() -> u8 {
    0b1001_0111
}
