//! The capture tap: a [`Tap`] set on the datapath sees every frame as it
//! crosses a port (a guest port or an uplink), in either direction, after
//! the engine's rewriting on the way out. Without a tap the cost is one
//! branch per frame; the kernel sets one only while a capture runs.
use aggregation::{GuestId, UplinkId};

/// The port a frame crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapPort {
    Uplink(UplinkId),
    Guest(GuestId),
}

/// Which way it crossed, seen from aggdom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapDir {
    /// The port handed it to aggdom (a guest sent it, the wire brought it):
    /// as the port gave it, before any rewriting.
    In,
    /// aggdom handed it to the port (queued on the uplink, delivered to the
    /// guest): as it leaves, after rewriting.
    Out,
}

/// Sees frames; must not keep `frame` beyond the call.
pub trait Tap {
    fn frame(&mut self, port: TapPort, dir: TapDir, frame: &[u8]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Datapath, NicPort};
    use aggregation::IpNet;
    use alloc::boxed::Box;
    use alloc::rc::Rc;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use core::net::{IpAddr, Ipv4Addr};
    use nic::{Counters, FakeNic, MacAddr, Nic, NicControl, NicDatapath, NicError};

    type Seen = Rc<RefCell<Vec<(TapPort, TapDir, Vec<u8>)>>>;
    struct Recorder(Seen);
    impl Tap for Recorder {
        fn frame(&mut self, port: TapPort, dir: TapDir, frame: &[u8]) {
            self.0.borrow_mut().push((port, dir, frame.to_vec()));
        }
    }

    /// A `FakeNic` the test reaches while the datapath owns it.
    struct Shared(Rc<RefCell<FakeNic>>);
    impl NicDatapath for Shared {
        fn receive(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
            self.0.borrow_mut().receive(budget, sink)
        }
        fn queue_tx(
            &mut self,
            len: usize,
            fill: &mut dyn FnMut(&mut [u8]),
        ) -> Result<(), NicError> {
            self.0.borrow_mut().queue_tx(len, fill)
        }
        fn flush_tx(&mut self) {
            self.0.borrow_mut().flush_tx()
        }
        fn tx_space(&mut self) -> usize {
            self.0.borrow_mut().tx_space()
        }
    }
    impl NicControl for Shared {
        fn kind(&self) -> &'static str {
            "shared"
        }
        fn permanent_mac(&self) -> MacAddr {
            self.0.borrow().permanent_mac()
        }
        fn mac(&self) -> MacAddr {
            self.0.borrow().mac()
        }
        fn set_mac(&mut self, mac: MacAddr) -> Result<(), NicError> {
            self.0.borrow_mut().set_mac(mac)
        }
        fn filter_slots(&self) -> usize {
            self.0.borrow().filter_slots()
        }
        fn filter(&self) -> &[MacAddr] {
            &[]
        }
        fn set_filter(&mut self, macs: &[MacAddr]) -> Result<(), NicError> {
            self.0.borrow_mut().set_filter(macs)
        }
        fn promiscuous(&self) -> bool {
            self.0.borrow().promiscuous()
        }
        fn set_promiscuous(&mut self, on: bool) -> Result<(), NicError> {
            self.0.borrow_mut().set_promiscuous(on)
        }
        fn all_multicast(&self) -> bool {
            self.0.borrow().all_multicast()
        }
        fn set_all_multicast(&mut self, on: bool) -> Result<(), NicError> {
            self.0.borrow_mut().set_all_multicast(on)
        }
        fn link_up(&mut self) -> bool {
            self.0.borrow_mut().link_up()
        }
        fn counters(&mut self) -> Counters {
            self.0.borrow_mut().counters()
        }
        fn reset(&mut self) -> Result<(), NicError> {
            self.0.borrow_mut().reset()
        }
    }

    fn shared(mac: MacAddr) -> (Box<dyn Nic>, Rc<RefCell<FakeNic>>) {
        let nic = Rc::new(RefCell::new(FakeNic::new(mac)));
        (Box::new(Shared(nic.clone())), nic)
    }

    fn udp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&src_mac);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f
    }

    /// A guest frame out through an uplink and the answer back: the tap
    /// sees each on both ports, the uplink copy with the identity's MAC.
    #[test]
    fn the_tap_sees_both_ports_both_ways_after_rewriting() {
        let uplink_mac = [2, 0, 0, 0, 0, 1];
        let guest_mac = [0x52, 0x54, 0, 0, 1, 1];
        let gw = [2, 0xaa, 0, 0, 0, 1];
        let mut dp = Datapath::new(aggregation::Config::DEFAULT, 4);
        let (up, up_wire) = shared(MacAddr(uplink_mac));
        dp.add_uplink(up, 1000, false).unwrap();
        let (port, port_wire) = shared(MacAddr([2, 0, 0, 0, 9, 9]));
        let ip = IpNet::host(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)));
        let port = Box::new(NicPort::new(port).unwrap());
        dp.add_guest("g", port, MacAddr(guest_mac), &[ip]).unwrap();
        dp.program_all();
        let seen: Seen = Rc::default();
        assert!(dp.set_tap(Some(Box::new(Recorder(seen.clone())))).is_none());

        let out = udp(guest_mac, gw, [10, 0, 0, 11], [8, 8, 8, 8]);
        assert!(port_wire.borrow_mut().inject(&out));
        dp.poll(0);
        let back = udp(gw, uplink_mac, [8, 8, 8, 8], [10, 0, 0, 11]);
        assert!(up_wire.borrow_mut().inject(&back));
        dp.poll(1);

        let seen = seen.borrow();
        let g = TapPort::Guest(GuestId(0));
        let u = TapPort::Uplink(UplinkId(0));
        let kinds: Vec<(TapPort, TapDir)> = seen.iter().map(|(p, d, _)| (*p, *d)).collect();
        assert_eq!(
            kinds,
            [
                (g, TapDir::In),
                (u, TapDir::Out),
                (u, TapDir::In),
                (g, TapDir::Out)
            ]
        );
        assert_eq!(seen[0].2, out, "as the guest sent it");
        assert_eq!(seen[1].2[6..12], uplink_mac, "rewritten to the identity");
        assert_eq!(seen[2].2, back, "as the wire brought it");
        assert_eq!(seen[3].2[0..6], guest_mac, "rewritten back to the guest");
        drop(seen);
        assert!(dp.set_tap(None).is_some());
    }
}
