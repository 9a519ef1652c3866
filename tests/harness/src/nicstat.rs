//! One NIC as the console's `nic <n>` shows it, parsed: MAC, filter,
//! switches, link and counters, for tests and benchmarks that compare the
//! driver's view with what the harness sent and received.

use crate::config::MacAddr;
use crate::error::{Error, Result};
use crate::machine::Machine;

/// The state and counters of one NIC, from `nic <n>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicStatus {
    /// The NIC's number, as `nics` lists it.
    pub index: usize,
    /// The driver (`e1000`, `virtio-net`).
    pub kind: String,
    /// Its role: `spare`, `uplink <k>`, `guest <g>`.
    pub role: String,
    /// The primary MAC (the MAC register).
    pub mac: MacAddr,
    /// The factory MAC.
    pub factory: MacAddr,
    /// Extra unicast filter entries.
    pub filter: Vec<MacAddr>,
    /// How many extra entries the filter takes.
    pub filter_slots: usize,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// All-multicast mode.
    pub all_multicast: bool,
    /// Link state, read from the device by this command.
    pub link_up: bool,
    /// Frames delivered by the driver.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames the driver received and discarded (runt, oversized, errored).
    pub rx_drops: u64,
    /// Frames the device missed for lack of buffers.
    pub rx_missed: u64,
    /// Receive errors the device counted.
    pub rx_errors: u64,
    /// Frames the device reported sent.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames refused for their length.
    pub tx_drops: u64,
    /// Transmit errors the device counted.
    pub tx_errors: u64,
    /// MAC register writes.
    pub mac_writes: u64,
    /// Receive-filter programming.
    pub filter_writes: u64,
    /// Link transitions observed.
    pub link_changes: u64,
}

/// The numbers after each `key` in `line`, in order: `frames 3 bytes 180`
/// with keys `["frames", "bytes"]` gives `[3, 180]`.
fn numbers(line: &str, keys: &[&str]) -> Option<Vec<u64>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    keys.iter()
        .map(|k| {
            let at = words.iter().position(|w| w == k)?;
            words.get(at + 1)?.parse().ok()
        })
        .collect()
}

fn on_off(word: &str) -> Option<bool> {
    match word.trim_end_matches(',') {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

impl NicStatus {
    /// Parses the reply to `nic <n>`; `None` if it is not one.
    pub fn parse(reply: &str) -> Option<NicStatus> {
        let mut s = NicStatus::default();
        let mut lines = reply.lines().map(str::trim);
        // nic 1: 00:04.0 e1000 (spare)
        let head = lines.next()?.strip_prefix("nic ")?;
        let (index, rest) = head.split_once(": ")?;
        s.index = index.parse().ok()?;
        let mut words = rest.splitn(3, ' ');
        let _pci = words.next()?;
        s.kind = words.next()?.to_string();
        s.role = words
            .next()?
            .trim_start_matches('(')
            .trim_end_matches(')')
            .to_string();
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["mac", mac, "(factory", factory] => {
                    s.mac = mac.parse().ok()?;
                    s.factory = factory.trim_end_matches(')').parse().ok()?;
                }
                ["filter", counts, "slots:", entries @ ..] => {
                    let (_, slots) = counts.split_once('/')?;
                    s.filter_slots = slots.parse().ok()?;
                    s.filter = entries
                        .iter()
                        .filter(|e| **e != "-")
                        .map(|e| e.parse().ok())
                        .collect::<Option<_>>()?;
                }
                ["promiscuous", p, "all-multicast", a] => {
                    s.promiscuous = on_off(p)?;
                    s.all_multicast = on_off(a)?;
                }
                ["link", state] => s.link_up = *state == "up",
                ["rx", ..] => {
                    let n = numbers(line, &["frames", "bytes", "drops", "missed", "errors"])?;
                    [
                        s.rx_frames,
                        s.rx_bytes,
                        s.rx_drops,
                        s.rx_missed,
                        s.rx_errors,
                    ] = [n[0], n[1], n[2], n[3], n[4]];
                }
                ["tx", ..] => {
                    let n = numbers(line, &["frames", "bytes", "drops", "errors"])?;
                    [s.tx_frames, s.tx_bytes, s.tx_drops, s.tx_errors] = [n[0], n[1], n[2], n[3]];
                }
                ["mac", "writes", ..] => {
                    // mac writes N filter writes N link changes N
                    let w: Vec<u64> = words.iter().filter_map(|w| w.parse().ok()).collect();
                    let [mac, filter, link] = w.as_slice() else {
                        return None;
                    };
                    [s.mac_writes, s.filter_writes, s.link_changes] = [*mac, *filter, *link];
                }
                _ => {}
            }
        }
        Some(s)
    }
}

/// Runs `nic <n>` on `m` and parses the reply.
pub fn nic_status(m: &mut Machine, n: usize) -> Result<NicStatus> {
    let reply = m.command(&format!("nic {n}"))?;
    NicStatus::parse(&reply).ok_or_else(|| Error::Timeout {
        what: format!("a `nic {n}` reply (got {reply:?})"),
        context: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_nic_reply() {
        let reply = "nic 2: 00:05.0 virtio-net (uplink 0)\n  mac 02:00:00:00:00:07 (factory 52:54:00:00:00:03)\n  filter 2/64 slots: 02:00:00:00:00:01 02:00:00:00:00:02\n  promiscuous off, all-multicast on\n  link down\n  rx frames 5 bytes 300 drops 1 missed 0 errors 2\n  tx frames 7 bytes 420 drops 3 errors 0\n  mac writes 4 filter writes 6 link changes 2";
        let s = NicStatus::parse(reply).unwrap();
        assert_eq!(s.index, 2);
        assert_eq!(s.kind, "virtio-net");
        assert_eq!(s.role, "uplink 0");
        assert_eq!(s.mac, MacAddr::local(7));
        assert_eq!(s.factory, MacAddr::qemu(3));
        assert_eq!(s.filter, vec![MacAddr::local(1), MacAddr::local(2)]);
        assert_eq!(s.filter_slots, 64);
        assert!(!s.promiscuous && s.all_multicast && !s.link_up);
        assert_eq!(
            (
                s.rx_frames,
                s.rx_bytes,
                s.rx_drops,
                s.rx_missed,
                s.rx_errors
            ),
            (5, 300, 1, 0, 2)
        );
        assert_eq!(
            (s.tx_frames, s.tx_bytes, s.tx_drops, s.tx_errors),
            (7, 420, 3, 0)
        );
        assert_eq!((s.mac_writes, s.filter_writes, s.link_changes), (4, 6, 2));

        let empty = "nic 0: 00:03.0 e1000 (spare)\n  mac 52:54:00:00:00:01 (factory 52:54:00:00:00:01)\n  filter 0/15 slots: -\n  promiscuous on, all-multicast off\n  link up\n  rx frames 0 bytes 0 drops 0 missed 0 errors 0\n  tx frames 0 bytes 0 drops 0 errors 0\n  mac writes 0 filter writes 1 link changes 0";
        let s = NicStatus::parse(empty).unwrap();
        assert!(s.filter.is_empty() && s.promiscuous && s.link_up);
        assert_eq!(s.filter_slots, 15);
        assert!(NicStatus::parse("error: no NIC 9").is_none());
    }
}
