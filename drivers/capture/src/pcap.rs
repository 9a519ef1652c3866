//! The classic libpcap file format (pcap-savefile(5)): a 24-byte file
//! header, then per frame a 16-byte record header and the frame's bytes.
//! Little-endian, microsecond timestamps, link type Ethernet: what
//! Wireshark, tcpdump and the test harness all read.

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The snap length the file header announces; frames are kept whole.
pub const SNAPLEN: u32 = 65535;
pub const FILE_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;

/// The file header: magic, version 2.4, zone 0, sigfigs 0, snap length,
/// link type.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// One record's header: the time (`ts_ns`, here since aggdom booted) and
/// the frame's captured and original lengths.
pub fn record_header(ts_ns: u64, caplen: u32, orig_len: u32) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    let secs = (ts_ns / 1_000_000_000) as u32;
    let usecs = ((ts_ns % 1_000_000_000) / 1000) as u32;
    h[0..4].copy_from_slice(&secs.to_le_bytes());
    h[4..8].copy_from_slice(&usecs.to_le_bytes());
    h[8..12].copy_from_slice(&caplen.to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_laid_out_as_libpcap_reads_them() {
        assert_eq!(
            file_header(),
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0,
                0, 0
            ]
        );
        assert_eq!(
            record_header(3_000_250_999, 60, 61),
            [3, 0, 0, 0, 250, 0, 0, 0, 60, 0, 0, 0, 61, 0, 0, 0]
        );
    }
}
