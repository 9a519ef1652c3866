//! The fuzz entry: a malicious frontend, driven by bytes, against netback,
//! beside an honest guest whose data must never reach the attacker and whose
//! service must not suffer. Used by `fuzz/fuzz_targets/frontend.rs` and by
//! a property test, so it runs in `cargo test` too.
//!
//! Every step may panic only through netback itself (a bug); a broken
//! invariant is returned as `Err` with what broke.
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use hypervisor::{DomId, FakeHypervisor, GrantRef, XenbusState};

use super::{create_vif, tcp_frame, FakeFrontend, Input};
use crate::segment::{Csum, Gso, GsoKind, Offload, OffloadCaps, Plan};
use crate::wire::{ExtraInfo, NETIF_RSP_NULL, NETIF_RSP_OKAY, RX_SLOT, TX_SLOT};
use crate::{Config, Netback, VifId};

/// Op bytes from here on drive the offload moves (GSO frames and extras,
/// queues and split channels, offload delivery); the ones below keep the
/// meaning they had before offloads, so older corpus entries mostly still
/// mean what they found.
const OFFLOAD_OPS: u8 = 240;

const BE: DomId = 1;
const VICTIM: DomId = 2;
const ATTACKER: DomId = 3;
/// Every byte the victim sends. The attacker never writes it anywhere.
const SECRET: u8 = 0xee;
/// Every byte aggdom delivers to the victim.
const VICTIM_RX: u8 = 0xaa;
/// The attacker's own data pages.
const ATTACKER_FILL: u8 = 0x22;

impl Input<'_> {
    /// `N` bytes, with the secret byte replaced so the attacker cannot
    /// forge it.
    fn arr<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for b in a.iter_mut() {
            *b = match self.byte().unwrap_or(0) {
                SECRET => SECRET ^ 1,
                x => x,
            };
        }
        a
    }
}

struct Run {
    hv: FakeHypervisor,
    nb: Netback<FakeHypervisor>,
    victim: FakeFrontend,
    bad: FakeFrontend,
    /// Victim frames sent and not yet seen from `poll_tx`.
    victim_expected: VecDeque<Vec<u8>>,
    /// Grant refs the victim holds (as numbers the attacker may guess).
    victim_grefs: Vec<GrantRef>,
    /// Pages the attacker granted read-only to the backend.
    bad_pages: Vec<GrantRef>,
}

const VICTIM_ID: VifId = VifId {
    frontend: VICTIM,
    handle: 0,
};
const BAD_ID: VifId = VifId {
    frontend: ATTACKER,
    handle: 0,
};

impl Run {
    fn settle(&mut self) {
        for _ in 0..8 {
            if self.nb.poll_control(&mut self.hv) == 0 {
                break;
            }
        }
    }

    fn poll_attacker(&mut self) -> Result<(), String> {
        let mut leak = None;
        if let Some(v) = self.nb.vif_mut(BAD_ID) {
            let mut check = |f: &[u8]| {
                // A completed checksum may hold two such bytes by chance,
                // IP header checksums and IDs a few more.
                if f.iter().filter(|b| **b == SECRET).count() > 6 {
                    leak = Some(f.len());
                }
            };
            v.poll_tx(&mut self.hv, |f| check(f));
            // And as a consumer that segments and checksums itself.
            let caps = OffloadCaps {
                csum: true,
                tso4: true,
                tso6: true,
            };
            v.poll_tx_offload(&mut self.hv, caps, |f, _| check(f));
        }
        let _ = self.bad.tx_responses();
        let _ = self.bad.rx_frames();
        match leak {
            Some(len) => Err(format!(
                "attacker got a {len}-byte frame with the victim's bytes"
            )),
            None => Ok(()),
        }
    }

    fn poll_victim(&mut self) -> Result<(), String> {
        let mut got = Vec::new();
        let v = self.nb.vif_mut(VICTIM_ID).ok_or("victim vif vanished")?;
        v.poll_tx(&mut self.hv, |f| got.push(f.to_vec()));
        for f in got {
            match self.victim_expected.pop_front() {
                Some(want) if want == f => {}
                _ => {
                    return Err(format!(
                        "victim frame of {} bytes not the one it sent",
                        f.len()
                    ))
                }
            }
        }
        if !self.victim_expected.is_empty() {
            return Err("victim frames not delivered".into());
        }
        if let Some(r) = self
            .victim
            .tx_responses()
            .iter()
            .find(|r| r.status != NETIF_RSP_OKAY && r.status != NETIF_RSP_NULL)
        {
            let c = self.nb.vif(VICTIM_ID).map(|v| v.counters().clone());
            return Err(format!("victim got response {r:?}: {c:?}"));
        }
        Ok(())
    }

    fn victim_send(&mut self, len: usize) -> Result<(), String> {
        let frame = vec![SECRET; len.clamp(14, 1514)];
        self.victim.send(&mut self.hv, &frame, 1000, 8);
        self.victim_expected.push_back(frame);
        self.poll_victim()
    }

    fn victim_receive(&mut self, len: usize) -> Result<(), String> {
        let frame = vec![VICTIM_RX; len.clamp(14, 1514)];
        let v = self.nb.vif_mut(VICTIM_ID).ok_or("victim vif vanished")?;
        v.deliver_rx(&mut self.hv, &frame)
            .map_err(|e| format!("victim rx: {e}"))?;
        match self.victim.rx_frames().as_slice() {
            [Ok(got)] if *got == frame => {}
            _ => return Err("victim received something else".into()),
        }
        self.victim_grefs
            .extend(self.victim.post_rx(&mut self.hv, 1));
        Ok(())
    }

    fn pick_gref(&self, sel: u8, raw: GrantRef) -> GrantRef {
        let pick = |v: &[GrantRef]| {
            v.get(usize::from(sel / 4) % v.len().max(1))
                .copied()
                .unwrap_or(raw)
        };
        match sel % 4 {
            0 => raw,
            1 => pick(&self.bad_pages),
            2 => pick(&self.victim_grefs),
            _ => self
                .bad
                .ring_refs()
                .map_or(raw, |(t, r)| if sel & 4 == 0 { t } else { r }),
        }
    }

    fn step(&mut self, op: u8, inp: &mut Input<'_>) -> Result<(), String> {
        if op >= OFFLOAD_OPS {
            return self.step_offload(op - OFFLOAD_OPS, inp);
        }
        match op % 10 {
            0 => {
                // A raw TX slot, its grant ref maybe swapped for a chosen one.
                let mut slot: [u8; TX_SLOT] = inp.arr();
                let raw = u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]);
                let gref = self.pick_gref(inp.byte().unwrap_or(0), raw);
                slot[..4].copy_from_slice(&gref.to_le_bytes());
                self.bad.push_tx_slot(&slot);
                self.bad.publish_tx();
            }
            1 => {
                let v = inp.u32();
                let near = self.bad.tx_req_prod().wrapping_add((v as i8) as u32);
                self.bad
                    .set_tx_req_prod(if v & 0x100 != 0 { v } else { near });
            }
            2 => {
                let len = usize::from(inp.u16() % 2100);
                let slot = usize::from(inp.byte().unwrap_or(0)) * 16 + 1;
                let offset = u16::from(inp.byte().unwrap_or(0)) * 16;
                self.bad.tx_flags = u16::from(inp.byte().unwrap_or(0) & 0x0f);
                self.bad
                    .send(&mut self.hv, &vec![ATTACKER_FILL; len], slot, offset);
            }
            3 => {
                self.poll_attacker()?;
                self.poll_victim()?;
            }
            4 => {
                let len = usize::from(inp.u16() % 3000);
                if let Some(v) = self.nb.vif_mut(BAD_ID) {
                    let _ = v.deliver_rx(&mut self.hv, &vec![0x33; len]);
                }
                self.victim_receive(len)?;
            }
            5 => {
                let n = usize::from(inp.byte().unwrap_or(0) % 8);
                if inp.byte().unwrap_or(0) & 1 == 0 {
                    self.bad.post_rx(&mut self.hv, n);
                } else {
                    for _ in 0..n {
                        let mut slot: [u8; RX_SLOT] = inp.arr();
                        let raw = u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]);
                        let gref = self.pick_gref(inp.byte().unwrap_or(0), raw);
                        slot[4..].copy_from_slice(&gref.to_le_bytes());
                        self.bad.push_rx_slot(&slot);
                    }
                    self.bad.publish_rx();
                }
            }
            6 => self.bad.set_rx_req_prod(inp.u32()),
            7 => {
                match inp.byte().unwrap_or(0) % 7 {
                    0 => self.bad.set_state(&mut self.hv, XenbusState::Initialising),
                    1 => self.bad.set_state(&mut self.hv, XenbusState::Closing),
                    2 => self.bad.set_state(&mut self.hv, XenbusState::Closed),
                    3 => self.bad.connect(&mut self.hv),
                    4 => self.bad.write_key(&mut self.hv, "event-channel", "99999"),
                    5 => {
                        let victim_ring = self.victim.ring_refs().map_or(0, |r| r.0);
                        self.bad
                            .write_key(&mut self.hv, "tx-ring-ref", &format!("{victim_ring}"));
                        self.bad.set_state(&mut self.hv, XenbusState::Initialised);
                    }
                    _ => self.bad.set_state(
                        &mut self.hv,
                        XenbusState::from_raw(u32::from(inp.byte().unwrap_or(0))),
                    ),
                }
                self.settle();
            }
            8 => self.victim_send(usize::from(inp.u16() % 1600))?,
            _ => {
                let n = inp.byte().unwrap_or(0) % 4;
                for _ in 0..n {
                    let gref = self.hv.grant_page(ATTACKER, BE, true).ok_or("grant")?;
                    if let Some(p) = self.hv.granted_page(ATTACKER, gref) {
                        p.fill(ATTACKER_FILL);
                    }
                    self.bad_pages.push(gref);
                }
            }
        }
        Ok(())
    }

    /// The offload moves: see [`OFFLOAD_OPS`].
    fn step_offload(&mut self, op: u8, inp: &mut Input<'_>) -> Result<(), String> {
        match op % 4 {
            0 => {
                // A frame with a GSO extra (any size and type), maybe TCP,
                // maybe more extras chained after it.
                let len = usize::from(inp.u16());
                let size = inp.u16();
                let kind = inp.byte().unwrap_or(0) % 4;
                let shape = inp.byte().unwrap_or(0);
                let frame = if shape & 1 != 0 {
                    tcp_frame(shape & 2 != 0, len.min(65_000), ATTACKER_FILL)
                } else {
                    vec![ATTACKER_FILL; len]
                };
                let mut extras = vec![ExtraInfo::new_gso(size, kind)];
                for _ in 0..(shape >> 2) % 4 {
                    let raw: [u8; TX_SLOT] = inp.arr();
                    extras.push(ExtraInfo::parse(&raw));
                }
                let extras = if shape & 0x40 != 0 {
                    FakeFrontend::chain(&extras)
                } else {
                    extras
                };
                let slot = if shape & 0x80 != 0 { 4096 } else { 1000 };
                self.bad.tx_flags = u16::from(inp.byte().unwrap_or(0) & 0x03);
                self.bad
                    .send_with_extras(&mut self.hv, &frame, slot, 0, &extras);
            }
            1 => {
                // Reconnect with other queues, channels, features.
                let b = inp.byte().unwrap_or(0);
                self.bad.num_queues = usize::from(b % 6);
                self.bad.split = b & 0x08 != 0;
                self.bad.gso = b & 0x10 != 0;
                self.bad.no_csum = b & 0x20 != 0;
                self.bad.connect(&mut self.hv);
                self.settle();
                if b & 0x40 != 0 {
                    let n = self.bad.queue_count();
                    self.bad.use_queue(usize::from(b >> 7) % n.max(1));
                }
            }
            2 => {
                // Offload delivery: to the attacker anything, to the
                // victim a GSO frame it must get whole.
                let len = usize::from(inp.u16() % 64_000);
                let size = inp.u16();
                let v6 = inp.byte().unwrap_or(0) & 1 != 0;
                let kind = if v6 { GsoKind::TcpV6 } else { GsoKind::TcpV4 };
                let off = Offload {
                    gso: Some(Gso { size, kind }),
                    csum: Csum::Partial {
                        start: inp.u16(),
                        offset: inp.u16(),
                    },
                };
                if let Some(v) = self.nb.vif_mut(BAD_ID) {
                    // Both in one batch: staged, copied and answered together.
                    let mut batch = v.rx_batch(&mut self.hv);
                    let _ = batch.push(&tcp_frame(v6, len, 0x33), off);
                    let _ = batch.push(&vec![0x33; len], off);
                    batch.finish();
                }
                self.victim_receive_gso(len)?;
            }
            _ => self.victim_send_gso(usize::from(inp.u16()))?,
        }
        Ok(())
    }

    /// The victim sends a GSO frame; it must come out as its segments.
    fn victim_send_gso(&mut self, payload: usize) -> Result<(), String> {
        let frame = tcp_frame(false, payload.min(60_000), SECRET);
        let gso = Gso {
            size: 1448,
            kind: GsoKind::TcpV4,
        };
        let plan = Plan::new(&frame, gso, Config::ALL_FEATURES.max_frame_len)
            .map_err(|e| format!("victim GSO frame refused: {e:?}"))?;
        for i in 0..plan.count() {
            let mut seg = vec![0u8; plan.max_len()];
            let n = plan.write(&frame, i, &mut seg, true);
            seg.truncate(n);
            self.victim_expected.push_back(seg);
        }
        self.victim.send_gso(&mut self.hv, &frame, 1448, 1);
        self.poll_victim()
    }

    /// The victim, which takes GSO, receives a GSO frame whole.
    fn victim_receive_gso(&mut self, payload: usize) -> Result<(), String> {
        let mut frame = tcp_frame(false, payload, VICTIM_RX);
        let gso = Gso {
            size: 1448,
            kind: GsoKind::TcpV4,
        };
        let plan = Plan::new(&frame, gso, Config::ALL_FEATURES.max_frame_len)
            .map_err(|e| format!("{e:?}"))?;
        plan.normalise(&mut frame);
        self.victim_grefs.extend(
            self.victim
                .post_rx(&mut self.hv, frame.len().div_ceil(4096) + 1),
        );
        let v = self.nb.vif_mut(VICTIM_ID).ok_or("victim vif vanished")?;
        let off = Offload {
            gso: Some(gso),
            csum: plan.csum(),
        };
        v.deliver_rx_offload(&mut self.hv, &frame, off)
            .map_err(|e| format!("victim GSO rx: {e}"))?;
        match self.victim.rx_frames().as_slice() {
            [Ok(got)] if *got == frame => Ok(()),
            _ => Err("victim received another GSO frame".into()),
        }
    }

    fn check_victim(&mut self) -> Result<(), String> {
        self.poll_victim()?;
        let v = self.nb.vif(VICTIM_ID).ok_or("victim vif vanished")?;
        let c = v.counters();
        if !v.is_connected()
            || c.fatal_total() != 0
            || c.tx_drops_total() != 0
            || c.rx_drops_total() != 0
        {
            return Err(format!(
                "victim harmed: connected {}, {c:?}",
                v.is_connected()
            ));
        }
        for page in self.victim.rx_pages() {
            // A GSO frame the victim received starts with its TCP/IPv4
            // headers (54 bytes); everything else is the victim's fill.
            let bytes = page.snapshot();
            let skip = if bytes[12..14] == [0x08, 0x00] { 54 } else { 0 };
            // Branch-free, so that it vectorises: under the fuzzer a
            // compare per byte is a traced call, and the victim's pages
            // add up to most of a run's bytes.
            let foreign = bytes[skip..].iter().fold(0u8, |acc, b| {
                acc | (u8::from(*b != 0) & u8::from(*b != VICTIM_RX))
            });
            if foreign != 0 {
                return Err("foreign bytes in a victim receive buffer".into());
            }
        }
        Ok(())
    }
}

/// Runs the byte-driven attack; `Err` says which invariant broke.
pub fn run(data: &[u8]) -> Result<(), String> {
    let mut hv = FakeHypervisor::new(BE);
    let nb = Netback::new(&mut hv, Config::ALL_FEATURES).map_err(|e| format!("netback: {e}"))?;
    let victim = create_vif(&mut hv, BE, VICTIM, 0, "00:16:3e:00:00:02", "10.0.0.2");
    let bad = create_vif(&mut hv, BE, ATTACKER, 0, "00:16:3e:00:00:03", "10.0.0.3");
    let mut run = Run {
        hv,
        nb,
        victim,
        bad,
        victim_expected: VecDeque::new(),
        victim_grefs: Vec::new(),
        bad_pages: Vec::new(),
    };
    run.settle();
    run.victim.tx_fill = SECRET;
    run.victim.gso = true;
    run.bad.tx_fill = ATTACKER_FILL;
    run.victim.connect(&mut run.hv);
    run.bad.connect(&mut run.hv);
    run.settle();
    run.victim_grefs = run.victim.post_rx(&mut run.hv, 4);
    if let Some((t, r)) = run.victim.ring_refs() {
        run.victim_grefs.extend([t, r]);
    }
    run.victim_send(60)?;

    let mut inp = Input(data);
    let mut steps = 0;
    while let Some(op) = inp.byte() {
        run.step(op, &mut inp)?;
        steps += 1;
        if steps % 16 == 0 {
            run.check_victim()?;
        }
    }
    run.settle();
    run.poll_attacker()?;
    run.victim_send(1514)?;
    run.victim_receive(1514)?;
    run.check_victim()
}
