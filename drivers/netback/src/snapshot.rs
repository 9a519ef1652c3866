//! A vif's view of xenstore, read without waiting: every key the state
//! machine decides on is requested at once ([`ReadRound`]), the replies
//! come back over later polls, and the decision runs once they are all in
//! ([`Snapshot`]). Reads are level-triggered: an event that comes while a
//! round is in flight only asks for one more round afterwards.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hypervisor::{parse_u32, RequestId, XenError, XenStore, XsOp, XsReply};

/// A key the state machine reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// The backend directory node itself: `NoEnt` once the toolstack
    /// removed the vif.
    BackendDir,
    State,
    Frontend,
    FrontendId,
    Online,
    Mac,
    Ip,
    /// `rate`: the toolstack's TX limit, `bytes,usec`.
    Rate,
    /// The MTU the toolstack asks for (libxl writes it, default 1500).
    Mtu,
    FrontendState,
    TxRingRef,
    RxRingRef,
    EventChannel,
    EventChannelTx,
    EventChannelRx,
    RequestRxCopy,
    FeatureSg,
    NumQueues,
    TxRingOrder,
    RingPageOrder,
    FeGsoTcpv4,
    FeGsoTcpv6,
    FeNoCsumOffload,
    FeIpv6CsumOffload,
    FeRxNotify,
}

/// Every key, for checks over a whole snapshot.
#[cfg(test)]
pub(crate) const ALL_KEYS: [Key; Key::COUNT] = [
    Key::BackendDir,
    Key::State,
    Key::Frontend,
    Key::FrontendId,
    Key::Online,
    Key::Mac,
    Key::Ip,
    Key::Rate,
    Key::Mtu,
    Key::FrontendState,
    Key::TxRingRef,
    Key::RxRingRef,
    Key::EventChannel,
    Key::EventChannelTx,
    Key::EventChannelRx,
    Key::RequestRxCopy,
    Key::FeatureSg,
    Key::NumQueues,
    Key::TxRingOrder,
    Key::RingPageOrder,
    Key::FeGsoTcpv4,
    Key::FeGsoTcpv6,
    Key::FeNoCsumOffload,
    Key::FeIpv6CsumOffload,
    Key::FeRxNotify,
];

impl Key {
    const COUNT: usize = 25;

    /// Keys in the backend directory (the first is the directory itself).
    const BACKEND: [(Key, &'static str); 9] = [
        (Key::BackendDir, ""),
        (Key::State, "state"),
        (Key::Frontend, "frontend"),
        (Key::FrontendId, "frontend-id"),
        (Key::Online, "online"),
        (Key::Mac, "mac"),
        (Key::Ip, "ip"),
        (Key::Rate, "rate"),
        (Key::Mtu, "mtu"),
    ];

    /// Keys in the frontend directory.
    const FRONTEND: [(Key, &'static str); 16] = [
        (Key::FrontendState, "state"),
        (Key::TxRingRef, "tx-ring-ref"),
        (Key::RxRingRef, "rx-ring-ref"),
        (Key::EventChannel, "event-channel"),
        (Key::EventChannelTx, "event-channel-tx"),
        (Key::RequestRxCopy, "request-rx-copy"),
        (Key::FeatureSg, "feature-sg"),
        (Key::NumQueues, "multi-queue-num-queues"),
        (Key::TxRingOrder, "tx-ring-order"),
        (Key::RingPageOrder, "ring-page-order"),
        (Key::EventChannelRx, "event-channel-rx"),
        (Key::FeGsoTcpv4, "feature-gso-tcpv4"),
        (Key::FeGsoTcpv6, "feature-gso-tcpv6"),
        (Key::FeNoCsumOffload, "feature-no-csum-offload"),
        (Key::FeIpv6CsumOffload, "feature-ipv6-csum-offload"),
        (Key::FeRxNotify, "feature-rx-notify"),
    ];
}

/// A key of a queue's directory (`<frontend>/queue-<n>/`, or the
/// frontend directory itself when there is one queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QKey {
    TxRingRef,
    RxRingRef,
    EventChannel,
    EventChannelTx,
    EventChannelRx,
}

impl QKey {
    const ALL: [(QKey, &'static str); 5] = [
        (QKey::TxRingRef, "tx-ring-ref"),
        (QKey::RxRingRef, "rx-ring-ref"),
        (QKey::EventChannel, "event-channel"),
        (QKey::EventChannelTx, "event-channel-tx"),
        (QKey::EventChannelRx, "event-channel-rx"),
    ];
}

/// Which key a reply is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Key(Key),
    Queue(usize, QKey),
}

/// The replies of one complete round, by key.
pub(crate) struct Snapshot {
    values: [Option<XsReply>; Key::COUNT],
    /// `queue-<n>/` keys, read when the frontend asked for several queues.
    queues: Vec<[Option<XsReply>; 5]>,
    /// The frontend directory the frontend keys were read from.
    pub(crate) frontend_read: Option<String>,
}

impl Snapshot {
    fn new() -> Self {
        Self {
            values: core::array::from_fn(|_| None),
            queues: Vec::new(),
            frontend_read: None,
        }
    }

    pub(crate) fn get(&self, k: Key) -> Option<&XsReply> {
        self.values[k as usize].as_ref()
    }

    fn file(&mut self, slot: Slot, reply: XsReply) {
        match slot {
            Slot::Key(k) => self.values[k as usize] = Some(reply),
            Slot::Queue(q, k) => {
                if let Some(qv) = self.queues.get_mut(q) {
                    qv[k as usize] = Some(reply);
                }
            }
        }
    }

    /// The key's value as bytes, if it was read and exists.
    pub(crate) fn bytes(&self, k: Key) -> Option<&[u8]> {
        match self.get(k) {
            Some(Ok(v)) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn text(&self, k: Key) -> Option<&str> {
        core::str::from_utf8(self.bytes(k)?).ok()
    }

    pub(crate) fn u32(&self, k: Key) -> Option<u32> {
        parse_u32(self.bytes(k)?)
    }

    /// Queues whose `queue-<n>/` keys were read (0: none).
    pub(crate) fn queues_read(&self) -> usize {
        self.queues.len()
    }

    /// A queue key as a number: from `queue-<q>/` when those were read,
    /// else (one queue) from the frontend directory.
    pub(crate) fn queue_u32(&self, q: usize, k: QKey) -> Option<u32> {
        if self.queues.is_empty() {
            return match k {
                QKey::TxRingRef => self.u32(Key::TxRingRef),
                QKey::RxRingRef => self.u32(Key::RxRingRef),
                QKey::EventChannel => self.u32(Key::EventChannel),
                QKey::EventChannelTx => self.u32(Key::EventChannelTx),
                QKey::EventChannelRx => self.u32(Key::EventChannelRx),
            };
        }
        match self.queues.get(q)?[k as usize].as_ref()? {
            Ok(v) => parse_u32(v),
            Err(_) => None,
        }
    }

    /// Every reply of the round, for error checks.
    pub(crate) fn replies(&self) -> impl Iterator<Item = &XsReply> {
        self.values
            .iter()
            .chain(self.queues.iter().flatten())
            .flatten()
    }

    /// The toolstack removed the backend directory.
    pub(crate) fn is_gone(&self) -> bool {
        matches!(self.get(Key::BackendDir), Some(Err(XenError::NoEnt)))
    }
}

/// Reads in flight for one snapshot.
pub(crate) struct ReadRound {
    pending: Vec<(RequestId, Slot)>,
    snap: Snapshot,
    /// A request could not even be queued: the round ends incomplete and
    /// the vif reads again on its next poll.
    pub(crate) short: bool,
}

impl ReadRound {
    /// Starts a round: the backend keys, and the frontend's if its
    /// directory is known.
    pub(crate) fn start(xs: &mut impl XenStore, backend: &str, frontend: Option<&str>) -> Self {
        let mut r = Self {
            pending: Vec::with_capacity(Key::COUNT),
            snap: Snapshot::new(),
            short: false,
        };
        for (k, name) in Key::BACKEND {
            let path = if name.is_empty() {
                String::from(backend)
            } else {
                format!("{backend}/{name}")
            };
            r.read(xs, k, &path);
        }
        if let Some(fe) = frontend {
            r.read_frontend(xs, fe);
        }
        r
    }

    fn read(&mut self, xs: &mut impl XenStore, k: Key, path: &str) {
        self.read_slot(xs, Slot::Key(k), path);
    }

    fn read_slot(&mut self, xs: &mut impl XenStore, slot: Slot, path: &str) {
        match xs.submit(XsOp::Read(path)) {
            Ok(id) => self.pending.push((id, slot)),
            Err(e) => {
                self.short = true;
                self.snap.file(slot, Err(e));
            }
        }
    }

    /// Adds the `queue-<n>/` keys of `n` queues under `fe` to the round.
    pub(crate) fn read_queues(&mut self, xs: &mut impl XenStore, fe: &str, n: usize) {
        self.snap.queues = (0..n).map(|_| core::array::from_fn(|_| None)).collect();
        for q in 0..n {
            for (k, name) in QKey::ALL {
                self.read_slot(xs, Slot::Queue(q, k), &format!("{fe}/queue-{q}/{name}"));
            }
        }
    }

    /// Adds the frontend keys under `fe` to the round.
    pub(crate) fn read_frontend(&mut self, xs: &mut impl XenStore, fe: &str) {
        for (k, name) in Key::FRONTEND {
            self.read(xs, k, &format!("{fe}/{name}"));
        }
        self.snap.frontend_read = Some(String::from(fe));
    }

    /// Files the replies that have come. Returns how many.
    pub(crate) fn collect(&mut self, xs: &mut impl XenStore) -> usize {
        let before = self.pending.len();
        let snap = &mut self.snap;
        self.pending.retain(|(id, slot)| match xs.take_reply(*id) {
            Some(reply) => {
                snap.file(*slot, reply);
                false
            }
            None => true,
        });
        before - self.pending.len()
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.pending.is_empty()
    }

    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    pub(crate) fn into_snapshot(self) -> Snapshot {
        self.snap
    }

    /// Gives up on the replies still out (the vif is going away).
    pub(crate) fn abandon(self, xs: &mut impl XenStore) {
        for (id, _) in self.pending {
            xs.forget(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_own_place() {
        for (i, k) in ALL_KEYS.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        let named = Key::BACKEND.len() + Key::FRONTEND.len();
        assert_eq!(named, Key::COUNT);
    }
}
