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

use super::{create_vif, FakeFrontend};
use crate::wire::{NETIF_RSP_OKAY, RX_SLOT, TX_SLOT};
use crate::{Config, Netback, VifId};

const BE: DomId = 1;
const VICTIM: DomId = 2;
const ATTACKER: DomId = 3;
/// Every byte the victim sends. The attacker never writes it anywhere.
const SECRET: u8 = 0xee;
/// Every byte aggdom delivers to the victim.
const VICTIM_RX: u8 = 0xaa;
/// The attacker's own data pages.
const ATTACKER_FILL: u8 = 0x22;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

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
            v.poll_tx(&mut self.hv, |f| {
                // A completed checksum may hold two such bytes by chance.
                if f.iter().filter(|b| **b == SECRET).count() > 2 {
                    leak = Some(f.len());
                }
            });
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
        if self
            .victim
            .tx_responses()
            .iter()
            .any(|r| r.status != NETIF_RSP_OKAY)
        {
            return Err("victim got an error response".into());
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
            if page.snapshot().iter().any(|b| *b != 0 && *b != VICTIM_RX) {
                return Err("foreign bytes in a victim receive buffer".into());
            }
        }
        Ok(())
    }
}

/// Runs the byte-driven attack; `Err` says which invariant broke.
pub fn run(data: &[u8]) -> Result<(), String> {
    let mut hv = FakeHypervisor::new(BE);
    let nb = Netback::new(&mut hv, Config::DEFAULT).map_err(|e| format!("netback: {e}"))?;
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
