//! Reads the classic libpcap files QEMU's `filter-dump` writes, so a test
//! can check what crossed a NIC's wire (both directions).

use std::io;
use std::path::Path;

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// Capture time: seconds and microseconds since the epoch.
    pub ts_sec: u32,
    /// Microseconds within the second.
    pub ts_usec: u32,
    /// The frame as captured (possibly cut to the snap length).
    pub data: Vec<u8>,
    /// Its length on the wire.
    pub orig_len: u32,
}

/// Parses a pcap file's bytes (either byte order, microsecond timestamps).
/// A record cut short at the end (QEMU still writing) is left out.
pub fn parse(bytes: &[u8]) -> Result<Vec<Captured>, String> {
    let magic = bytes.get(..4).ok_or("pcap: shorter than its header")?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        _ => return Err(format!("pcap: bad magic {magic:02x?}")),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut out = Vec::new();
    let mut at = 24;
    while let (Some(ts_sec), Some(ts_usec), Some(caplen), Some(orig_len)) =
        (u32_at(at), u32_at(at + 4), u32_at(at + 8), u32_at(at + 12))
    {
        let start = at + 16;
        let Some(data) = bytes.get(start..start + caplen as usize) else {
            break;
        };
        out.push(Captured {
            ts_sec,
            ts_usec,
            data: data.to_vec(),
            orig_len,
        });
        at = start + caplen as usize;
    }
    Ok(out)
}

/// Reads and parses a pcap file.
pub fn read(path: &Path) -> io::Result<Vec<Captured>> {
    let bytes = std::fs::read(path)?;
    parse(&bytes).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        h
    }

    fn record(ts: u32, data: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        for v in [ts, 7, data.len() as u32, data.len() as u32] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn reads_records_and_ignores_a_torn_tail() {
        let mut f = header();
        f.extend(record(1, &[1, 2, 3]));
        f.extend(record(2, &[4; 60]));
        let whole = parse(&f).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(
            whole[0],
            Captured {
                ts_sec: 1,
                ts_usec: 7,
                data: vec![1, 2, 3],
                orig_len: 3
            }
        );
        f.extend(&record(3, &[5; 10])[..20]);
        assert_eq!(parse(&f).unwrap(), whole);
        assert_eq!(parse(&header()).unwrap(), vec![]);
        assert!(parse(b"nope").is_err());
        assert!(parse(b"").is_err());
    }
}
