//! A host-side learning switch, for tests that join aggdom's uplinks to
//! remote hosts "the way a real switch does": it learns each source MAC's
//! port from the frames it sees, forwards known unicast to that one port,
//! floods broadcast, multicast and unknown unicast, and records every MAC
//! move, so a test can assert that the switch relearned an identity.
//!
//! Ports are plain indices chosen by the test (e.g. `0..n` for the
//! machine's uplink NICs and `n..` for simulated remote hosts). The switch
//! decides; the test moves the bytes (`Machine::recv_any` in,
//! `Machine::send_frame` or its own hosts out).

use std::collections::HashMap;

use crate::frame::Eth;
use crate::MacAddr;

/// A MAC address seen on a new port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacMove {
    /// The address.
    pub mac: MacAddr,
    /// Where it was learnt before.
    pub from: usize,
    /// Where it is now.
    pub to: usize,
}

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// To the one port that learnt the destination.
    Unicast(usize),
    /// To every port but the ingress one (broadcast, multicast, unknown).
    Flood(Vec<usize>),
    /// Nowhere: the destination lives on the ingress port, or the frame is
    /// too short to have an Ethernet header.
    Drop,
}

impl Forward {
    /// The egress ports, in order.
    pub fn ports(&self) -> Vec<usize> {
        match self {
            Forward::Unicast(p) => vec![*p],
            Forward::Flood(ps) => ps.clone(),
            Forward::Drop => Vec::new(),
        }
    }
}

/// A learning switch with `ports` ports and no ageing (tests are short; a
/// test that wants ageing calls [`LearningSwitch::forget`]).
#[derive(Clone, Debug)]
pub struct LearningSwitch {
    ports: usize,
    table: HashMap<MacAddr, usize>,
    moves: Vec<MacMove>,
}

impl LearningSwitch {
    /// A switch with ports `0..ports` and an empty table.
    pub fn new(ports: usize) -> LearningSwitch {
        LearningSwitch {
            ports,
            table: HashMap::new(),
            moves: Vec::new(),
        }
    }

    /// Learns `frame`'s source on `in_port` and decides where it goes.
    pub fn handle(&mut self, in_port: usize, frame: &[u8]) -> Forward {
        let Some(eth) = Eth::parse(frame) else {
            return Forward::Drop;
        };
        if !eth.src.is_multicast() {
            self.learn(eth.src, in_port);
        }
        if eth.dst.is_multicast() {
            return self.flood(in_port);
        }
        match self.table.get(&eth.dst) {
            Some(&p) if p == in_port => Forward::Drop,
            Some(&p) => Forward::Unicast(p),
            None => self.flood(in_port),
        }
    }

    fn flood(&self, in_port: usize) -> Forward {
        Forward::Flood((0..self.ports).filter(|&p| p != in_port).collect())
    }

    /// Records that `mac` is behind `port` (what the switch does with every
    /// source address).
    pub fn learn(&mut self, mac: MacAddr, port: usize) {
        if let Some(old) = self.table.insert(mac, port) {
            if old != port {
                self.moves.push(MacMove {
                    mac,
                    from: old,
                    to: port,
                });
            }
        }
    }

    /// The port `mac` was last seen on.
    pub fn port_of(&self, mac: MacAddr) -> Option<usize> {
        self.table.get(&mac).copied()
    }

    /// Every move so far, oldest first.
    pub fn moves(&self) -> &[MacMove] {
        &self.moves
    }

    /// Drops `mac` from the table (as ageing would).
    pub fn forget(&mut self, mac: MacAddr) {
        self.table.remove(&mac);
    }

    /// The number of ports.
    pub fn port_count(&self) -> usize {
        self.ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tagged;

    const H: MacAddr = MacAddr::local(1);
    const I: MacAddr = MacAddr::qemu(1);

    #[test]
    fn learns_floods_forwards_and_records_moves() {
        let mut sw = LearningSwitch::new(4);
        // Unknown destination: flooded, source learnt.
        assert_eq!(
            sw.handle(3, &tagged(I, H, 0, 60)),
            Forward::Flood(vec![0, 1, 2])
        );
        assert_eq!(sw.port_of(H), Some(3));
        // The reply is unicast back to where H lives; I is learnt on 0.
        assert_eq!(sw.handle(0, &tagged(H, I, 0, 60)), Forward::Unicast(3));
        assert_eq!(sw.handle(3, &tagged(I, H, 0, 60)), Forward::Unicast(0));
        // I moves to port 2 (an identity moved to another uplink).
        assert_eq!(sw.handle(2, &tagged(H, I, 0, 60)), Forward::Unicast(3));
        assert_eq!(
            sw.moves(),
            &[MacMove {
                mac: I,
                from: 0,
                to: 2
            }]
        );
        assert_eq!(sw.handle(3, &tagged(I, H, 0, 60)).ports(), vec![2]);
        // Broadcast floods; a frame to its own port is dropped.
        assert_eq!(
            sw.handle(1, &tagged(MacAddr::BROADCAST, MacAddr::local(9), 0, 60))
                .ports(),
            vec![0, 2, 3]
        );
        assert_eq!(
            sw.handle(2, &tagged(I, MacAddr::local(5), 0, 60)),
            Forward::Drop
        );
        assert_eq!(sw.handle(0, &[1, 2, 3]), Forward::Drop);
        sw.forget(I);
        assert_eq!(sw.port_of(I), None);
    }
}
