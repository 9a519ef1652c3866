//! Loopback UDP ports that never collide between tests running in parallel.
//!
//! The harness's own socket is bound to port 0 and kept, so the kernel picks
//! it and nobody else can take it. QEMU's port has to be named on its command
//! line, so it is picked by binding an ephemeral port and releasing it just
//! before QEMU starts; the rare loser of that race sees QEMU fail to bind, and
//! the machine retries with fresh ports (see `machine::start`).

use std::io;
use std::net::{Ipv4Addr, UdpSocket};

/// Binds a UDP socket on 127.0.0.1 at a port the kernel chooses.
pub(crate) fn bind_loopback() -> io::Result<UdpSocket> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
}

/// `n` distinct loopback UDP ports that were free a moment ago (all are
/// held until all are chosen, so they differ from each other).
pub(crate) fn free_udp_ports(n: usize) -> io::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| bind_loopback())
        .collect::<io::Result<Vec<_>>>()?;
    held.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

/// Does QEMU's stderr say a netdev could not bind its port?
pub(crate) fn is_bind_failure(qemu_stderr: &str) -> bool {
    qemu_stderr.contains("Address already in use") || qemu_stderr.contains("can't bind")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ports_are_distinct_while_held() {
        let socks: Vec<_> = (0..32).map(|_| bind_loopback().unwrap()).collect();
        let ports: HashSet<u16> = socks
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), socks.len());
        assert!(!ports.contains(&0));
    }

    #[test]
    fn a_released_port_can_be_bound_again() {
        let p = free_udp_ports(1).unwrap()[0];
        assert_ne!(p, 0);
        // Nobody else should have taken it within microseconds (the kernel
        // picks ephemeral ports at random); the machine's retry covers that
        // race in real starts, but here the bind is what is tested.
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, p))
            .unwrap_or_else(|e| panic!("port {p} picked as free: {e}"));
        assert_eq!(s.local_addr().unwrap().port(), p);
    }

    #[test]
    fn picked_ports_are_distinct() {
        let mut p = free_udp_ports(8).unwrap();
        p.sort();
        p.dedup();
        assert_eq!(p.len(), 8);
    }

    #[test]
    fn recognises_qemu_bind_errors() {
        assert!(is_bind_failure(
            "qemu-system-x86_64: -netdev dgram,id=n0,...: can't bind ip=127.0.0.1 to socket: Address already in use"
        ));
        assert!(!is_bind_failure(
            "qemu-system-x86_64: -kernel x: No such file or directory"
        ));
    }
}
