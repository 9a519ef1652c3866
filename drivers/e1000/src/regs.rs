//! Register offsets and bits of the 8254x, named as in the Intel "PCI/PCI-X
//! Family of Gigabit Ethernet Controllers Software Developer's Manual"
//! (8254x SDM, chapter 13 "Register Descriptions"), and the pure functions
//! that compute register values.
use nic::MacAddr;

// 13.3 General register descriptions.
/// Device Control.
pub const CTRL: u32 = 0x0000;
/// Device Status.
pub const STATUS: u32 = 0x0008;
/// EEPROM Read.
pub const EERD: u32 = 0x0014;
/// MDI Control (PHY register access).
pub const MDIC: u32 = 0x0020;
/// Flow Control Address Low / High, Flow Control Type.
pub const FCAL: u32 = 0x0028;
pub const FCAH: u32 = 0x002c;
pub const FCT: u32 = 0x0030;
/// Flow Control Transmit Timer Value.
pub const FCTTV: u32 = 0x0170;

// 13.4 Interrupt registers. aggdom polls, and under QEMU sleeps until the
// INTx line says a frame or a link change came (`arm_interrupt`).
/// Interrupt Cause Read (clears on read, and so deasserts the line).
pub const ICR: u32 = 0x00c0;
/// Interrupt Throttling (13.4.18): the least time between interrupts, in
/// 256 ns units.
pub const ITR: u32 = 0x00c4;
/// 500 × 256 ns = 128 µs, at most 7813 interrupts/s: the floor QEMU's
/// model applies anyway with mitigation on (hw/net/e1000.c
/// set_interrupt_cause), kept on devices that would otherwise interrupt
/// per frame. The first interrupt after a quiet spell is not delayed.
pub const ITR_INTERVAL: u32 = 500;
/// Interrupt Mask Set/Read.
pub const IMS: u32 = 0x00d0;
/// Interrupt Mask Clear.
pub const IMC: u32 = 0x00d8;
/// Interrupt causes (13.4.17): link status change, receive descriptor
/// minimum threshold, receiver overrun, receiver timer (a frame written back).
pub const ICR_LSC: u32 = 1 << 2;
pub const ICR_RXDMT0: u32 = 1 << 4;
pub const ICR_RXO: u32 = 1 << 6;
pub const ICR_RXT0: u32 = 1 << 7;
/// The causes `arm_interrupt` enables: received frames and link changes.
pub const IMS_WAKE: u32 = ICR_LSC | ICR_RXDMT0 | ICR_RXO | ICR_RXT0;

// 13.4.22 ff. Receive registers.
/// Receive Control.
pub const RCTL: u32 = 0x0100;
/// Receive Descriptor Base Address Low / High, Length, Head, Tail.
pub const RDBAL: u32 = 0x2800;
pub const RDBAH: u32 = 0x2804;
pub const RDLEN: u32 = 0x2808;
pub const RDH: u32 = 0x2810;
pub const RDT: u32 = 0x2818;
/// Receive Delay Timer.
pub const RDTR: u32 = 0x2820;
/// Multicast Table Array, 128 dwords.
pub const MTA: u32 = 0x5200;
pub const MTA_LEN: u32 = 128;
/// Receive Address Low / High, slot n at + 8n, 16 slots.
pub const RAL0: u32 = 0x5400;
pub const RAH0: u32 = 0x5404;
pub const RAR_SLOTS: usize = 16;

// Transmit registers.
/// Transmit Control.
pub const TCTL: u32 = 0x0400;
/// Transmit Inter Packet Gap.
pub const TIPG: u32 = 0x0410;
/// Transmit Descriptor Base Address Low / High, Length, Head, Tail.
pub const TDBAL: u32 = 0x3800;
pub const TDBAH: u32 = 0x3804;
pub const TDLEN: u32 = 0x3808;
pub const TDH: u32 = 0x3810;
pub const TDT: u32 = 0x3818;

// 13.7 Statistics registers (clear on read, per the manual).
pub const CRCERRS: u32 = 0x4000;
pub const ALGNERRC: u32 = 0x4004;
pub const SYMERRS: u32 = 0x4008;
pub const RXERRC: u32 = 0x400c;
pub const MPC: u32 = 0x4010;
pub const ECOL: u32 = 0x4018;
pub const LATECOL: u32 = 0x4020;
pub const GPRC: u32 = 0x4074;
pub const GPTC: u32 = 0x4080;
pub const RUC: u32 = 0x40a4;
pub const ROC: u32 = 0x40ac;

/// The size of the register BAR (BAR0) of an 82540EM: 128 KiB.
pub const BAR0_SIZE: u64 = 0x2_0000;

// CTRL bits (13.4.1).
pub const CTRL_LRST: u32 = 1 << 3;
pub const CTRL_ASDE: u32 = 1 << 5;
pub const CTRL_SLU: u32 = 1 << 6;
pub const CTRL_ILOS: u32 = 1 << 7;
pub const CTRL_RST: u32 = 1 << 26;
pub const CTRL_VME: u32 = 1 << 30;
pub const CTRL_PHY_RST: u32 = 1 << 31;

// STATUS bits (13.4.2).
pub const STATUS_LU: u32 = 1 << 1;

// EERD (13.4.4, 82540EM layout: start bit 0, done bit 4, address 15:8,
// data 31:16).
pub const EERD_START: u32 = 1 << 0;
pub const EERD_DONE: u32 = 1 << 4;
pub const EERD_ADDR_SHIFT: u32 = 8;
pub const EERD_DATA_SHIFT: u32 = 16;

// MDIC (13.4.6): data 15:0, register 20:16, PHY address 25:21, op 27:26.
pub const MDIC_REG_SHIFT: u32 = 16;
pub const MDIC_PHY_SHIFT: u32 = 21;
pub const MDIC_OP_WRITE: u32 = 1 << 26;
pub const MDIC_READY: u32 = 1 << 28;
pub const MDIC_ERROR: u32 = 1 << 30;
/// The internal PHY's MDIO address.
pub const PHY_ADDR: u32 = 1;
/// PHY Control register (IEEE 802.3 clause 22 register 0) and its bits.
pub const PHY_CTRL: u32 = 0;
pub const PHY_CTRL_SPEED1000: u32 = 1 << 6;
pub const PHY_CTRL_FULL_DUPLEX: u32 = 1 << 8;
pub const PHY_CTRL_RESTART_AN: u32 = 1 << 9;
pub const PHY_CTRL_AUTONEG: u32 = 1 << 12;

// RCTL bits (13.4.22). BSIZE 00 with BSEX 0 is 2048-byte buffers.
pub const RCTL_EN: u32 = 1 << 1;
pub const RCTL_UPE: u32 = 1 << 3;
pub const RCTL_MPE: u32 = 1 << 4;
pub const RCTL_BAM: u32 = 1 << 15;
pub const RCTL_SECRC: u32 = 1 << 26;

// TCTL bits (13.4.33): collision threshold 15, collision distance 64
// (full duplex), as the manual recommends (14.5).
pub const TCTL_EN: u32 = 1 << 1;
pub const TCTL_PSP: u32 = 1 << 3;
pub const TCTL_CT_SHIFT: u32 = 4;
pub const TCTL_COLD_SHIFT: u32 = 12;
/// TIPG for the 82540EM with copper (13.4.34): IPGT 10, IPGR1 8, IPGR2 6.
pub const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20);

/// RAH Address Valid.
pub const RAH_AV: u32 = 1 << 31;

/// RAL of receive-address slot `n` (0..16).
pub const fn ral(n: usize) -> u32 {
    RAL0 + 8 * n as u32
}

/// RAH of receive-address slot `n` (0..16).
pub const fn rah(n: usize) -> u32 {
    RAH0 + 8 * n as u32
}

/// The (RAL, RAH) pair that makes a slot accept `mac` (13.4.27): the
/// address in wire order, little endian, RAH with Address Valid and Address
/// Select 00 (destination address).
pub const fn rar_encode(mac: MacAddr) -> (u32, u32) {
    let b = mac.0;
    let ral = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let rah = (b[4] as u32) | ((b[5] as u32) << 8) | RAH_AV;
    (ral, rah)
}

/// The address a slot accepts, `None` if its Address Valid bit is clear.
pub const fn rar_decode(ral: u32, rah: u32) -> Option<MacAddr> {
    if rah & RAH_AV == 0 {
        return None;
    }
    let l = ral.to_le_bytes();
    Some(MacAddr([
        l[0],
        l[1],
        l[2],
        l[3],
        rah as u8,
        (rah >> 8) as u8,
    ]))
}

/// The EERD value that starts reading EEPROM word `word`.
pub const fn eerd_request(word: u8) -> u32 {
    ((word as u32) << EERD_ADDR_SHIFT) | EERD_START
}

/// The word an EERD read returned, once its Done bit is set.
pub const fn eerd_data(eerd: u32) -> Option<u16> {
    if eerd & EERD_DONE == 0 {
        None
    } else {
        Some((eerd >> EERD_DATA_SHIFT) as u16)
    }
}

/// The Ethernet address in EEPROM words 0..3, low byte first (5.6.1).
pub const fn mac_from_eeprom(words: [u16; 3]) -> MacAddr {
    let [a, b] = words[0].to_le_bytes();
    let [c, d] = words[1].to_le_bytes();
    let [e, f] = words[2].to_le_bytes();
    MacAddr([a, b, c, d, e, f])
}

/// The MDIC value that writes `value` to PHY register `reg`.
pub const fn mdic_write(reg: u32, value: u16) -> u32 {
    (value as u32) | (reg << MDIC_REG_SHIFT) | (PHY_ADDR << MDIC_PHY_SHIFT) | MDIC_OP_WRITE
}

/// The receive control value: receiver on, broadcasts accepted, CRC
/// stripped, 2048-byte buffers, and the two promiscuous bits.
pub const fn rctl(promiscuous: bool, all_multicast: bool) -> u32 {
    let mut v = RCTL_EN | RCTL_BAM | RCTL_SECRC;
    if promiscuous {
        v |= RCTL_UPE | RCTL_MPE;
    }
    if all_multicast {
        v |= RCTL_MPE;
    }
    v
}

/// The transmit control value: transmitter on, short frames padded.
pub const fn tctl() -> u32 {
    TCTL_EN | TCTL_PSP | (0x0f << TCTL_CT_SHIFT) | (0x40 << TCTL_COLD_SHIFT)
}

/// The device control value after reset: link up forced in the MAC, speed
/// detected automatically, link and PHY resets released, no VLAN mode.
pub const fn ctrl_after_reset(ctrl: u32) -> u32 {
    (ctrl | CTRL_SLU | CTRL_ASDE) & !(CTRL_LRST | CTRL_PHY_RST | CTRL_ILOS | CTRL_VME | CTRL_RST)
}

/// PHY Control with or without autonegotiation (1000 Mb/s full duplex
/// forced when without).
pub const fn phy_ctrl(autoneg: bool) -> u16 {
    let base = PHY_CTRL_SPEED1000 | PHY_CTRL_FULL_DUPLEX;
    if autoneg {
        (base | PHY_CTRL_AUTONEG | PHY_CTRL_RESTART_AN) as u16
    } else {
        base as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rar_pair_matches_the_manual_example_layout() {
        // 13.4.27: for 00:A0:C9:00:00:00 style addresses the first octet
        // is the low byte of RAL.
        let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(rar_encode(mac), (0x1200_5452, 0x8000_5634));
    }

    #[test]
    fn rar_round_trips_and_invalid_slots_decode_to_none() {
        for mac in [
            MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            MacAddr([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]),
            MacAddr([0x02, 0, 0, 0, 0, 1]),
        ] {
            let (l, h) = rar_encode(mac);
            assert_eq!(rar_decode(l, h), Some(mac));
        }
        assert_eq!(rar_decode(0x1200_5452, 0x0000_5634), None);
    }

    #[test]
    fn slot_offsets() {
        assert_eq!((ral(0), rah(0)), (0x5400, 0x5404));
        assert_eq!((ral(15), rah(15)), (0x5478, 0x547c));
    }

    #[test]
    fn eeprom_words_give_the_mac_low_byte_first() {
        assert_eq!(eerd_request(2), 0x0201);
        assert_eq!(eerd_data(0x5634_0211), Some(0x5634));
        assert_eq!(eerd_data(0x5634_0201), None);
        assert_eq!(
            mac_from_eeprom([0x5452, 0x1200, 0x5634]),
            MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
    }

    #[test]
    fn control_values() {
        assert_eq!(rctl(false, false), 0x0400_8002);
        assert_eq!(rctl(true, false), 0x0400_801a);
        assert_eq!(rctl(false, true), 0x0400_8012);
        assert_eq!(tctl(), 0x0004_00fa);
        assert_eq!(mdic_write(PHY_CTRL, phy_ctrl(false)), 0x0420_0140);
        assert_eq!(
            ctrl_after_reset(CTRL_RST | CTRL_LRST | CTRL_VME),
            CTRL_SLU | CTRL_ASDE
        );
    }
}
