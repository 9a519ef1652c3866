//! Packet capture in the kernel: one capture at a time, its ring in a
//! static, fed by a tap on the datapath that is set only while a capture
//! runs (so frames pay nothing otherwise). Read by the `capture` command
//! (and so by aggctl) and streamed by `GET /capture` on the own IP.
use crate::domain::Domain;
use crate::time;
use aggdom_capture::{Capture, Dir, Limit, Port, Spec, Stopped};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use datapath::{Datapath, Role, Tap, TapDir, TapPort};
use spin::Mutex;

/// The ring's size: frames kept whole, 13 bytes of record besides each.
pub const RING_BYTES: usize = 256 * 1024;
/// The most pcap bytes one `capture read` returns.
pub const READ_MAX: usize = 48 * 1024;

static CAPTURE: Mutex<Capture> = Mutex::new(Capture::new(RING_BYTES));

/// The datapath's tap while a capture runs.
struct KernelTap;

impl Tap for KernelTap {
    fn frame(&mut self, port: TapPort, dir: TapDir, frame: &[u8]) {
        let port = match port {
            TapPort::Uplink(u) => Port::Uplink(u.0),
            TapPort::Guest(g) => Port::Guest(g.0),
        };
        let dir = match dir {
            TapDir::In => Dir::In,
            TapDir::Out => Dir::Out,
        };
        if let Some(mut c) = CAPTURE.try_lock() {
            c.record(time::now_ns(), port, dir, frame);
        }
    }
}

/// A NIC number (`nics`) as the port it serves as.
pub fn resolve(domain: &Domain, spec: &mut Spec) -> Result<(), String> {
    if let Port::Nic(n) = spec.port {
        spec.port = match domain.nics.get(usize::from(n)).map(|s| &s.role) {
            Some(Role::Uplink(u)) => Port::Uplink(u.0),
            Some(Role::Guest(g)) => Port::Guest(g.0),
            Some(Role::Spare(_)) => return Err(format!("NIC {n} is spare: no frames cross it")),
            None => return Err(format!("no NIC {n}")),
        };
    }
    Ok(())
}

/// Starts a capture (ending the one running), its port resolved.
pub fn start(dp: &mut Datapath, spec: Spec) -> Result<(), String> {
    let exists = match spec.port {
        Port::Uplink(u) => usize::from(u) < dp.uplink_count(),
        Port::Guest(g) => dp.guests().any(|(id, _)| id.0 == g),
        Port::Nic(_) => false,
    };
    if !exists {
        return Err(format!("no {}", spec.port));
    }
    let mut c = CAPTURE.lock();
    c.stop(Stopped::Operator);
    c.start(spec, time::now_ns());
    drop(c);
    dp.set_tap(Some(Box::new(KernelTap)));
    Ok(())
}

pub fn stop(dp: Option<&mut Datapath>) {
    CAPTURE.lock().stop(Stopped::Operator);
    if let Some(dp) = dp {
        dp.set_tap(None);
    }
}

/// From the main loop: ends a capture whose time is up, and takes the tap
/// away once none runs.
pub fn poll(domain: &mut Domain, now_ns: u64) {
    let running = {
        let Some(mut c) = CAPTURE.try_lock() else {
            return;
        };
        if !c.is_running() && c.generation() == 0 {
            return; // never used
        }
        c.poll(now_ns);
        c.is_running()
    };
    if !running {
        if let Some(dp) = domain.dp.as_mut() {
            dp.set_tap(None);
        }
    }
}

/// One line: what is captured, whether it runs, the counters.
pub fn status_line() -> String {
    let c = CAPTURE.lock();
    let Some(spec) = c.spec() else {
        return String::from("capture: none yet");
    };
    let state = match c.stopped() {
        None if c.is_running() => "running",
        None => "idle",
        Some(why) => why.name(),
    };
    let bytes = c.pcap_len();
    format!(
        "capture {spec}: {state}, frames kept {} matched {} dropped {}, pcap {bytes} bytes (ring {} KiB)",
        c.counters.kept,
        c.counters.matched,
        c.counters.dropped,
        RING_BYTES / 1024
    )
}

/// `offset..offset+len` of the pcap file, and the file's whole length.
pub fn read(offset: usize, len: usize) -> (Vec<u8>, usize) {
    let file = CAPTURE.lock().to_pcap();
    let total = file.len();
    let start = offset.min(total);
    let end = start.saturating_add(len.min(READ_MAX)).min(total);
    (file[start..end].to_vec(), total)
}

/// The counters as `Snapshot::extra` rows (stats and /metrics).
pub fn counter_rows() -> [(&'static str, &'static str, u64); 2] {
    let c = CAPTURE.lock();
    [
        (
            "aggdom_capture_frames_total",
            "Frames the current or last capture kept.",
            c.counters.kept,
        ),
        (
            "aggdom_capture_dropped_total",
            "Frames the current or last capture matched but its full ring dropped.",
            c.counters.dropped,
        ),
    ]
}

/// A `GET /capture` stream: which capture it follows, and the next frame
/// to send.
pub struct Stream {
    generation: u32,
    next: usize,
}

/// Answers `GET /capture[?spec]`: with a spec, starts that capture first.
/// Returns the response head and the pcap file header, and the stream to
/// follow, or an error response.
pub fn http_start(query: Option<&str>, dp: &mut Datapath) -> (Vec<u8>, Option<Stream>) {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let started = Spec::parse_query(q).and_then(|spec| {
            if let Port::Nic(_) = spec.port {
                return Err("over HTTP name the port as uplink= or guest=".into());
            }
            // A network client may not start a capture that runs until
            // the operator stops it: it would hold one of the few HTTP
            // connections and replace the operator's capture for good.
            if spec.limit == Limit::None {
                return Err("over HTTP give count= or seconds=".into());
            }
            start(dp, spec)
        });
        if let Err(e) = started {
            return (http_error("400 Bad Request", &e), None);
        }
    }
    let generation = {
        let c = CAPTURE.lock();
        if c.spec().is_none() {
            drop(c);
            return (
                http_error(
                    "404 Not Found",
                    "no capture: GET /capture?uplink=0&count=100 starts one",
                ),
                None,
            );
        }
        c.generation()
    };
    let mut head = Vec::from(
        &b"HTTP/1.0 200 OK\r\nContent-Type: application/vnd.tcpdump.pcap\r\nContent-Disposition: attachment; filename=\"aggdom.pcap\"\r\nConnection: close\r\n\r\n"[..],
    );
    head.extend_from_slice(&aggdom_capture::pcap::file_header());
    (
        head,
        Some(Stream {
            generation,
            next: 0,
        }),
    )
}

fn http_error(status: &str, why: &str) -> Vec<u8> {
    aggdom_metrics::response(status, "text/plain", &format!("{why}\n")).into_bytes()
}

impl Stream {
    /// The stream's next piece (at most `max` bytes): empty with `true`
    /// when the capture is over and everything was sent, empty with
    /// `false` when it waits for frames.
    pub fn next_piece(&mut self, max: usize) -> (Vec<u8>, bool) {
        let c = CAPTURE.lock();
        if c.generation() != self.generation {
            return (Vec::new(), true); // another capture replaced it
        }
        let mut out = Vec::new();
        self.next = c.pcap_records(self.next, &mut out, max);
        let done = out.is_empty() && !c.is_running();
        (out, done)
    }

    /// The capture it follows still runs.
    pub fn live(&self) -> bool {
        let c = CAPTURE.lock();
        c.generation() == self.generation && c.is_running()
    }
}
