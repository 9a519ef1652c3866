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
    FrontendState,
    TxRingRef,
    RxRingRef,
    EventChannel,
    EventChannelTx,
    RequestRxCopy,
    FeatureSg,
    NumQueues,
    TxRingOrder,
    RingPageOrder,
}

/// Every key, for checks over a whole snapshot.
pub(crate) const ALL_KEYS: [Key; Key::COUNT] = [
    Key::BackendDir,
    Key::State,
    Key::Frontend,
    Key::FrontendId,
    Key::Online,
    Key::Mac,
    Key::Ip,
    Key::FrontendState,
    Key::TxRingRef,
    Key::RxRingRef,
    Key::EventChannel,
    Key::EventChannelTx,
    Key::RequestRxCopy,
    Key::FeatureSg,
    Key::NumQueues,
    Key::TxRingOrder,
    Key::RingPageOrder,
];

impl Key {
    const COUNT: usize = 17;

    /// Keys in the backend directory (the first is the directory itself).
    const BACKEND: [(Key, &'static str); 7] = [
        (Key::BackendDir, ""),
        (Key::State, "state"),
        (Key::Frontend, "frontend"),
        (Key::FrontendId, "frontend-id"),
        (Key::Online, "online"),
        (Key::Mac, "mac"),
        (Key::Ip, "ip"),
    ];

    /// Keys in the frontend directory.
    const FRONTEND: [(Key, &'static str); 10] = [
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
    ];
}

/// The replies of one complete round, by key.
pub(crate) struct Snapshot {
    values: [Option<XsReply>; Key::COUNT],
    /// The frontend directory the frontend keys were read from.
    pub(crate) frontend_read: Option<String>,
}

impl Snapshot {
    fn new() -> Self {
        Self {
            values: core::array::from_fn(|_| None),
            frontend_read: None,
        }
    }

    pub(crate) fn get(&self, k: Key) -> Option<&XsReply> {
        self.values[k as usize].as_ref()
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

    /// The toolstack removed the backend directory.
    pub(crate) fn is_gone(&self) -> bool {
        matches!(self.get(Key::BackendDir), Some(Err(XenError::NoEnt)))
    }
}

/// Reads in flight for one snapshot.
pub(crate) struct ReadRound {
    pending: Vec<(RequestId, Key)>,
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
        match xs.submit(XsOp::Read(path)) {
            Ok(id) => self.pending.push((id, k)),
            Err(e) => {
                self.short = true;
                self.snap.values[k as usize] = Some(Err(e));
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
        self.pending.retain(|(id, k)| match xs.take_reply(*id) {
            Some(reply) => {
                snap.values[*k as usize] = Some(reply);
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
