//! The capture ring: frames kept in one buffer of fixed size, as records
//! (time, direction, length, bytes). A frame that matches when the buffer
//! is full is dropped and counted; the frames kept stay readable after
//! the capture ends, until the next one starts.
use crate::pcap;
use crate::spec::{Limit, Port, Spec};
use alloc::vec::Vec;

/// Which way a frame crossed the port (see the datapath's tap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

/// Why a capture ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Its frame count was reached.
    Count,
    /// Its time was up.
    Time,
    /// `capture stop`, or a new capture replaced it.
    Operator,
}

impl Stopped {
    pub fn name(self) -> &'static str {
        match self {
            Stopped::Count => "count reached",
            Stopped::Time => "time up",
            Stopped::Operator => "stopped",
        }
    }
}

/// A capture's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Frames on the port that passed the filter.
    pub matched: u64,
    /// Of those, frames kept in the ring.
    pub kept: u64,
    /// Of those, frames the full ring had no room for.
    pub dropped: u64,
}

/// Record header in the buffer: time (8), direction (1), length (4).
const RECORD_HEAD: usize = 13;

pub struct Capture {
    spec: Option<Spec>,
    running: bool,
    stopped: Option<Stopped>,
    started_ns: u64,
    generation: u32,
    capacity: usize,
    buf: Vec<u8>,
    /// Where each record starts in `buf`.
    starts: Vec<u32>,
    pub counters: CaptureCounters,
}

impl Capture {
    /// An idle capture whose ring holds `capacity` bytes of records (13
    /// bytes per frame besides the frame). Nothing is allocated until a
    /// capture starts.
    pub const fn new(capacity: usize) -> Self {
        Self {
            spec: None,
            running: false,
            stopped: None,
            started_ns: 0,
            generation: 0,
            capacity,
            buf: Vec::new(),
            starts: Vec::new(),
            counters: CaptureCounters {
                matched: 0,
                kept: 0,
                dropped: 0,
            },
        }
    }

    /// Starts capturing per `spec` (its port as the tap names it, not
    /// [`Port::Nic`]), forgetting the frames of the one before.
    pub fn start(&mut self, spec: Spec, now_ns: u64) {
        self.buf.clear();
        if self.buf.capacity() < self.capacity {
            self.buf.reserve_exact(self.capacity);
        }
        self.starts.clear();
        self.spec = Some(spec);
        self.running = true;
        self.stopped = None;
        self.started_ns = now_ns;
        self.generation = self.generation.wrapping_add(1);
        self.counters = CaptureCounters::default();
    }

    pub fn stop(&mut self, why: Stopped) {
        if self.running {
            self.running = false;
            self.stopped = Some(why);
        }
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Why the last capture ended; `None` while one runs or before any.
    pub fn stopped(&self) -> Option<Stopped> {
        self.stopped
    }

    /// The spec of the running or last capture.
    pub fn spec(&self) -> Option<&Spec> {
        self.spec.as_ref()
    }

    /// Changes with every start: a reader following one capture notices
    /// when another replaced it.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn started_ns(&self) -> u64 {
        self.started_ns
    }

    /// Ends a capture whose time is up.
    pub fn poll(&mut self, now_ns: u64) {
        if let (true, Some(Limit::Seconds(s))) = (self.running, self.spec.map(|s| s.limit)) {
            if now_ns >= self.started_ns.saturating_add(u64::from(s) * 1_000_000_000) {
                self.stop(Stopped::Time);
            }
        }
    }

    /// A frame crossed `port`: kept if the capture runs on that port and
    /// the frame passes its filter, dropped and counted if it does not fit.
    pub fn record(&mut self, now_ns: u64, port: Port, dir: Dir, frame: &[u8]) {
        if !self.running {
            return;
        }
        self.poll(now_ns);
        let Some(spec) = self.spec.filter(|s| s.port == port && self.running) else {
            return;
        };
        if !spec.filter.matches(frame) {
            return;
        }
        self.counters.matched += 1;
        let len = frame.len().min(pcap::SNAPLEN as usize);
        let fits = self.buf.len() + RECORD_HEAD + len <= self.capacity;
        if fits {
            self.starts.push(self.buf.len() as u32);
            self.buf.extend_from_slice(&now_ns.to_le_bytes());
            self.buf.push(match dir {
                Dir::In => 0,
                Dir::Out => 1,
            });
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
            self.buf.extend_from_slice(&frame[..len]);
            self.counters.kept += 1;
        } else {
            self.counters.dropped += 1;
        }
        if let Limit::Count(n) = spec.limit {
            if self.counters.matched >= u64::from(n) {
                self.stop(Stopped::Count);
            }
        }
    }

    /// Frames kept.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Frame `i`: time, direction and bytes.
    pub fn frame(&self, i: usize) -> Option<(u64, Dir, &[u8])> {
        let at = *self.starts.get(i)? as usize;
        let head = self.buf.get(at..at + RECORD_HEAD)?;
        let ts = u64::from_le_bytes(head[..8].try_into().ok()?);
        let dir = if head[8] == 0 { Dir::In } else { Dir::Out };
        let len = u32::from_le_bytes(head[9..13].try_into().ok()?) as usize;
        let data = self.buf.get(at + RECORD_HEAD..at + RECORD_HEAD + len)?;
        Some((ts, dir, data))
    }

    /// Appends the pcap records of frames `from..` to `out` while `out`
    /// stays within `max_len` bytes (at least one record if any is left);
    /// returns the index of the first frame not appended.
    pub fn pcap_records(&self, from: usize, out: &mut Vec<u8>, max_len: usize) -> usize {
        let mut i = from;
        while let Some((ts, _, data)) = self.frame(i) {
            let need = pcap::RECORD_HEADER_LEN + data.len();
            if i > from && out.len() + need > max_len {
                break;
            }
            out.extend_from_slice(&pcap::record_header(
                ts,
                data.len() as u32,
                data.len() as u32,
            ));
            out.extend_from_slice(data);
            i += 1;
        }
        i
    }

    /// The length of [`Capture::to_pcap`]'s file, without making it: each
    /// record's pcap header replaces the ring's shorter one.
    pub fn pcap_len(&self) -> usize {
        pcap::FILE_HEADER_LEN
            + self.buf.len()
            + self.len() * (pcap::RECORD_HEADER_LEN - RECORD_HEAD)
    }

    /// The whole ring as a pcap file.
    pub fn to_pcap(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pcap_len());
        out.extend_from_slice(&pcap::file_header());
        self.pcap_records(0, &mut out, usize::MAX);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn spec(words: &str) -> Spec {
        Spec::parse(words.split(' ')).unwrap()
    }

    fn frame(n: u8, len: usize) -> Vec<u8> {
        let mut f = vec![n; len];
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f
    }

    /// Parses a pcap file as a reader would: the frames with their times.
    fn parse(bytes: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        assert_eq!(bytes[..24], pcap::file_header());
        let mut out = Vec::new();
        let mut at = 24;
        while at < bytes.len() {
            let u = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
            let (sec, usec, cap, orig) = (u(0), u(4), u(8) as usize, u(12) as usize);
            assert_eq!(cap, orig);
            out.push((sec, usec, bytes[at + 16..at + 16 + cap].to_vec()));
            at += 16 + cap;
        }
        assert_eq!(at, bytes.len());
        out
    }

    #[test]
    fn keeps_the_port_s_matching_frames_and_reads_as_pcap() {
        let mut c = Capture::new(4096);
        c.start(spec("uplink 1 ethertype=0x88b5"), 0);
        c.record(1_000_001_000, Port::Uplink(1), Dir::In, &frame(1, 60));
        c.record(1_000_002_000, Port::Uplink(0), Dir::In, &frame(2, 60));
        c.record(1_000_003_000, Port::Guest(1), Dir::In, &frame(3, 60));
        let mut ip = frame(4, 60);
        ip[12..14].copy_from_slice(&[8, 0]);
        c.record(1_000_004_000, Port::Uplink(1), Dir::Out, &ip);
        c.record(2_500_000_000, Port::Uplink(1), Dir::Out, &frame(5, 1514));
        assert_eq!(
            c.counters,
            CaptureCounters {
                matched: 2,
                kept: 2,
                dropped: 0
            }
        );
        let got = parse(&c.to_pcap());
        assert_eq!(got, [(1, 1, frame(1, 60)), (2, 500_000, frame(5, 1514))]);
        assert_eq!(c.frame(1).unwrap().1, Dir::Out);
    }

    #[test]
    fn a_full_ring_drops_and_counts_and_a_count_ends_the_capture() {
        let mut c = Capture::new(3 * (RECORD_HEAD + 100));
        c.start(spec("guest 0 5"), 0);
        for i in 0..10 {
            c.record(i, Port::Guest(0), Dir::In, &frame(i as u8, 100));
        }
        assert!(!c.is_running());
        assert_eq!(c.stopped(), Some(Stopped::Count));
        assert_eq!(
            c.counters,
            CaptureCounters {
                matched: 5,
                kept: 3,
                dropped: 2
            }
        );
        assert_eq!(parse(&c.to_pcap()).len(), 3);
        // A new capture starts empty.
        let g = c.generation();
        c.start(spec("guest 0"), 20);
        assert_eq!((c.len(), c.generation()), (0, g + 1));
        assert_eq!(c.counters, CaptureCounters::default());
    }

    #[test]
    fn time_ends_a_capture_and_nothing_is_kept_after() {
        let mut c = Capture::new(4096);
        c.start(spec("nic 2 2s"), 1_000);
        c.record(1_000, Port::Nic(2), Dir::In, &frame(1, 60));
        c.poll(2_000_000_999);
        assert!(c.is_running());
        c.poll(2_000_001_000);
        assert_eq!(c.stopped(), Some(Stopped::Time));
        c.record(2_000_001_001, Port::Nic(2), Dir::In, &frame(2, 60));
        assert_eq!(c.len(), 1);
        c.stop(Stopped::Operator);
        assert_eq!(c.stopped(), Some(Stopped::Time), "the first reason stays");
    }

    #[test]
    fn pcap_len_is_the_file_s_length() {
        let mut c = Capture::new(4096);
        assert_eq!(c.pcap_len(), c.to_pcap().len());
        c.start(spec("uplink 0"), 0);
        for (i, len) in [60, 1514, 14].into_iter().enumerate() {
            c.record(i as u64, Port::Uplink(0), Dir::In, &frame(i as u8, len));
            assert_eq!(c.pcap_len(), c.to_pcap().len());
        }
    }

    #[test]
    fn records_stream_in_bounded_pieces() {
        let mut c = Capture::new(1 << 16);
        c.start(spec("uplink 0"), 0);
        for i in 0..20 {
            c.record(i, Port::Uplink(0), Dir::In, &frame(i as u8, 100));
        }
        let mut out = pcap::file_header().to_vec();
        let mut next = 0;
        let mut pieces = 0;
        while next < c.len() {
            let mut piece = Vec::new();
            next = c.pcap_records(next, &mut piece, 300);
            assert!(piece.len() <= 300);
            out.extend(piece);
            pieces += 1;
        }
        assert_eq!(pieces, 10);
        assert_eq!(out, c.to_pcap());
        // A record larger than the piece still goes, alone.
        let mut piece = Vec::new();
        assert_eq!(c.pcap_records(0, &mut piece, 10), 1);
    }
}
