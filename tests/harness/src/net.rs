//! The harness's end of each NIC: a loopback UDP socket connected to the
//! NIC's QEMU `dgram` netdev, one Ethernet frame per datagram, with one
//! receive thread for all NICs feeding one queue (so a test can wait on one
//! NIC, on any, or for the first frame that matches a predicate, and see
//! arrival order across NICs, as a switch would).
//!
//! That order is the order QEMU sent the frames in: QEMU sends each one
//! synchronously over loopback, and the kernel stamps it as it arrives. A
//! thread per NIC would queue them in the order the threads happened to
//! run, and a frame one NIC sent tens of microseconds before another's
//! would now and then come second (a switch model fed that order learns a
//! MAC that moved on the port it left).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A frame the harness received from one of the machine's NICs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Index of the NIC it left the machine through.
    pub nic: usize,
    /// The Ethernet frame (no FCS).
    pub data: Vec<u8>,
    /// When the harness's receive thread got it.
    pub at: Instant,
}

/// What the harness itself sent to and received from one NIC: the other
/// side of the kernel's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicCounters {
    /// Frames the harness sent into the NIC.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames the harness received from the NIC.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
}

#[derive(Default)]
struct Inbox {
    frames: VecDeque<Received>,
    counters: Vec<NicCounters>,
}

type Shared = Arc<(Mutex<Inbox>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inbox> {
    shared.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often the receive thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Larger than any frame QEMU sends (jumbo included).
const MAX_DATAGRAM: usize = 65536;

/// A handle on a machine's NICs that another thread can own: it sends and
/// takes frames as [`crate::Machine`] does (same sockets, same queue, same
/// counters), while the machine itself stays free for console and QMP
/// work. It does not keep the receive threads alive: once the machine is
/// dropped, nothing more arrives.
#[derive(Clone)]
pub struct FrameIo {
    socks: Vec<Arc<UdpSocket>>,
    shared: Shared,
}

impl FrameIo {
    /// Sends one frame into NIC `nic` (as [`crate::Machine::send_frame`]).
    pub fn send_frame(&self, nic: usize, frame: &[u8]) -> io::Result<()> {
        send_on(&self.socks, &self.shared, nic, frame)
    }

    /// Removes and returns every queued frame, in arrival order.
    pub fn drain_all(&self) -> Vec<Received> {
        take_where(&self.shared, |_| true)
    }

    /// Waits up to `timeout` for a frame to be queued; `true` if one is.
    pub fn wait_any(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inbox = lock(&self.shared);
        while inbox.frames.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inbox = self
                .shared
                .1
                .wait_timeout(inbox, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// What the harness sent into and received from NIC `nic`.
    pub fn counters(&self, nic: usize) -> NicCounters {
        lock(&self.shared).counters[nic]
    }
}

fn send_on(socks: &[Arc<UdpSocket>], shared: &Shared, nic: usize, frame: &[u8]) -> io::Result<()> {
    let sock = socks
        .get(nic)
        .ok_or_else(|| io::Error::other(format!("no NIC {nic}")))?;
    let sent = match sock.send(frame) {
        // A pending ICMP error from an earlier datagram is reported on
        // this call instead of the send itself: send again.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => sock.send(frame),
        other => other,
    }?;
    if sent != frame.len() {
        return Err(io::Error::other(format!(
            "short send: {sent} of {} bytes",
            frame.len()
        )));
    }
    let mut inbox = lock(shared);
    inbox.counters[nic].tx_frames += 1;
    inbox.counters[nic].tx_bytes += frame.len() as u64;
    Ok(())
}

fn take_where(shared: &Shared, mut pred: impl FnMut(&Received) -> bool) -> Vec<Received> {
    let mut inbox = lock(shared);
    let (taken, kept): (VecDeque<_>, VecDeque<_>) = inbox.frames.drain(..).partition(|r| pred(r));
    inbox.frames = kept;
    taken.into()
}

/// The harness ends of all NICs of one machine.
pub(crate) struct Nics {
    socks: Vec<Arc<UdpSocket>>,
    shared: Shared,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Nics {
    /// Binds one loopback socket per NIC; their ports go on QEMU's command
    /// line as the netdevs' remote ends.
    pub(crate) fn bind(count: usize) -> io::Result<Nics> {
        let socks = (0..count)
            .map(|_| {
                let s = crate::ports::bind_loopback()?;
                crate::sys::set_recv_buffer(&s, 4 << 20);
                crate::sys::enable_rx_timestamps(&s)?;
                Ok(Arc::new(s))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let inbox = Inbox {
            frames: VecDeque::new(),
            counters: vec![NicCounters::default(); count],
        };
        Ok(Nics {
            socks,
            shared: Arc::new((Mutex::new(inbox), Condvar::new())),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        })
    }

    /// The harness's UDP port of each NIC.
    pub(crate) fn ports(&self) -> io::Result<Vec<u16>> {
        self.socks
            .iter()
            .map(|s| Ok(s.local_addr()?.port()))
            .collect()
    }

    /// Connects NIC `i`'s socket to QEMU's port `qemu_ports[i]` (so only
    /// QEMU's datagrams are accepted) and starts the receive threads.
    pub(crate) fn connect(&mut self, qemu_ports: &[u16]) -> io::Result<()> {
        for (sock, &port) in self.socks.iter().zip(qemu_ports) {
            sock.connect((Ipv4Addr::LOCALHOST, port))?;
        }
        if !self.threads.is_empty() {
            return Ok(()); // a retried start reconnects; the threads stay
        }
        let (socks, shared, stop) = (self.socks.clone(), self.shared.clone(), self.stop.clone());
        let t = thread::Builder::new()
            .name("aggdom-nics".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !stop.load(Ordering::Relaxed) {
                    if !crate::sys::wait_readable(&socks, POLL) {
                        continue; // timed out: look at `stop`
                    }
                    let batch = read_until_quiet(&socks, &mut buf);
                    if batch.is_empty() {
                        continue;
                    }
                    let mut inbox = lock(&shared);
                    let at = Instant::now();
                    for (_, nic, data) in batch {
                        let c = &mut inbox.counters[nic];
                        c.rx_frames += 1;
                        c.rx_bytes += data.len() as u64;
                        inbox.frames.push_back(Received { nic, data, at });
                    }
                    drop(inbox);
                    shared.1.notify_all();
                }
            })?;
        self.threads.push(t);
        Ok(())
    }

    /// How many NICs.
    pub(crate) fn len(&self) -> usize {
        self.socks.len()
    }

    /// Sends one frame into NIC `nic`.
    pub(crate) fn send(&self, nic: usize, frame: &[u8]) -> io::Result<()> {
        send_on(&self.socks, &self.shared, nic, frame)
    }

    /// A handle another thread can own ([`FrameIo`]).
    pub(crate) fn io(&self) -> FrameIo {
        FrameIo {
            socks: self.socks.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Removes and returns the earliest received frame for which `pred`
    /// holds, waiting up to `timeout`; other frames stay queued.
    pub(crate) fn recv_where(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Received) -> bool,
    ) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        let mut inbox = lock(&self.shared);
        let mut checked = 0; // frames before this index failed `pred`
        loop {
            if let Some(i) = inbox.frames.iter().skip(checked).position(&mut pred) {
                return inbox.frames.remove(checked + i);
            }
            checked = inbox.frames.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            inbox = self
                .shared
                .1
                .wait_timeout(inbox, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Removes every queued frame for which `pred` holds, in arrival order.
    pub(crate) fn take_all(&self, pred: impl FnMut(&Received) -> bool) -> Vec<Received> {
        take_where(&self.shared, pred)
    }

    /// The harness-side counters of NIC `nic`.
    pub(crate) fn counters(&self, nic: usize) -> NicCounters {
        lock(&self.shared).counters[nic]
    }
}

/// Most frames one batch of [`read_until_quiet`] gathers: under a stream
/// that never pauses the queue gets frames in pieces this large, each in
/// order (across pieces, as near as one pass over the sockets gets).
const MAX_BATCH: usize = 1024;

/// Reads every socket until a pass over all of them finds nothing, and
/// returns what it read as (kernel receive time, NIC, frame) in the order
/// the kernel received it. A frame that was not read had not arrived when
/// the last pass looked at its socket, after everything read had arrived:
/// it was sent later than all of them, so batches are in order too.
fn read_until_quiet(socks: &[Arc<UdpSocket>], buf: &mut [u8]) -> Vec<((i64, i64), usize, Vec<u8>)> {
    let mut batch = Vec::new();
    loop {
        let before = batch.len();
        for (nic, sock) in socks.iter().enumerate() {
            while batch.len() < MAX_BATCH {
                match crate::sys::recv_stamped(sock, buf) {
                    // Timestamps are on from `bind`; a datagram without one
                    // (none should come) sorts as if it had just arrived.
                    Ok((n, stamp)) => {
                        let stamp = stamp.unwrap_or((i64::MAX, 0));
                        batch.push((stamp, nic, buf[..n].to_vec()));
                    }
                    // The ICMP echo of a datagram sent before QEMU bound
                    // its port: what follows it is still to be read.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    // WouldBlock: all read.
                    Err(_) => break,
                }
            }
        }
        if batch.len() == before || batch.len() >= MAX_BATCH {
            break;
        }
    }
    // Stable: a NIC's own frames keep their order even if stamped alike.
    batch.sort_by_key(|&(stamp, _, _)| stamp);
    batch
}

impl Drop for Nics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for QEMU: one socket per NIC, connected back to the harness.
    fn fake_qemu(nics: &mut Nics) -> Vec<UdpSocket> {
        let ports = nics.ports().unwrap();
        let peers: Vec<UdpSocket> = ports
            .iter()
            .map(|&p| {
                let s = crate::ports::bind_loopback().unwrap();
                s.connect((Ipv4Addr::LOCALHOST, p)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .collect();
        let qemu_ports: Vec<u16> = peers
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        nics.connect(&qemu_ports).unwrap();
        peers
    }

    #[test]
    fn frames_both_ways_with_counters() {
        let mut nics = Nics::bind(3).unwrap();
        let peers = fake_qemu(&mut nics);
        let t = Duration::from_secs(5);

        nics.send(1, b"to-qemu").unwrap();
        let mut buf = [0u8; 64];
        let n = peers[1].recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"to-qemu");

        peers[2].send(b"a").unwrap();
        peers[0].send(b"bb").unwrap();
        peers[2].send(b"ccc").unwrap();
        // Per NIC, in order; other NICs' frames stay queued.
        assert_eq!(nics.recv_where(t, |r| r.nic == 2).unwrap().data, b"a");
        assert_eq!(nics.recv_where(t, |r| r.nic == 2).unwrap().data, b"ccc");
        assert_eq!(nics.recv_where(t, |_| true).unwrap().nic, 0);
        assert!(nics
            .recv_where(Duration::from_millis(50), |_| true)
            .is_none());

        assert_eq!(
            nics.counters(1),
            NicCounters {
                tx_frames: 1,
                tx_bytes: 7,
                rx_frames: 0,
                rx_bytes: 0
            }
        );
        assert_eq!(
            nics.counters(2),
            NicCounters {
                tx_frames: 0,
                tx_bytes: 0,
                rx_frames: 2,
                rx_bytes: 4
            }
        );
    }

    #[test]
    fn predicate_waits_past_non_matching_frames() {
        let mut nics = Nics::bind(1).unwrap();
        let peers = fake_qemu(&mut nics);
        for i in 0..10u8 {
            peers[0].send(&[i]).unwrap();
        }
        let got = nics
            .recv_where(Duration::from_secs(5), |r| r.data == [7])
            .unwrap();
        assert_eq!(got.data, [7]);
        // Wait for the rest, then drain them in order without 7.
        assert!(nics
            .recv_where(Duration::from_secs(5), |r| r.data == [9])
            .is_some());
        let rest: Vec<u8> = nics
            .take_all(|_| true)
            .into_iter()
            .map(|r| r.data[0])
            .collect();
        assert_eq!(rest, [0, 1, 2, 3, 4, 5, 6, 8]);
    }

    #[test]
    fn sending_before_qemu_listens_is_not_an_error_later() {
        let mut nics = Nics::bind(1).unwrap();
        // A port nobody listens on: the first send provokes an ICMP error.
        let dead = crate::ports::free_udp_ports(1).unwrap()[0];
        nics.connect(&[dead]).unwrap();
        let _ = nics.send(0, b"x");
        // Each send provokes the next error; no sleep: the receive thread
        // may take a pending error first, so one later send proves
        // nothing, while back-to-back sends meet one pending almost always.
        for k in 0..100 {
            nics.send(0, b"y")
                .unwrap_or_else(|e| panic!("send {k} after the refused one: {e}"));
        }
    }
}
