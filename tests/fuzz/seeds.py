#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets in fuzz/corpus/
(tests/fuzz/src/<target>.rs says how each reads its input). Run it after
changing a target's input format; files named crash-* are inputs a target
once crashed on, kept as found, and are left alone."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def write(target, name, data):
    d = os.path.join(HERE, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- xs_wire -------------------------------------------------------------
READ, WATCH, WRITE, WATCH_EVENT, ERROR, DIRECTORY = 2, 4, 11, 15, 16, 1


def xs_msg(ty, req_id, payload, tx_id=0, length=None):
    n = len(payload) if length is None else length
    return struct.pack("<IIII", ty, req_id, tx_id, n) + payload


def pieces(stream, size):
    out = b""
    for i in range(0, len(stream), size):
        chunk = stream[i:i + size]
        out += bytes([len(chunk)]) + chunk
    return out


two = xs_msg(READ, 1, b"abc") + xs_msg(WATCH_EVENT, 0, b"/local/domain/1/backend\0tok\0")
write("xs_wire", "assemble-two-messages", b"\0" + pieces(two, 5))
write("xs_wire", "assemble-whole", b"\0" + pieces(two, 255))
replies = (xs_msg(ERROR, 2, b"ENOENT\0") + xs_msg(READ, 3, b"4294967295")
           + xs_msg(DIRECTORY, 4, b"0\x001\x00vif\x00") + xs_msg(ERROR, 5, b"EWHAT\0"))
write("xs_wire", "assemble-replies", b"\0" + pieces(replies, 7))
write("xs_wire", "assemble-bad-header",
      b"\0" + pieces(xs_msg(READ, 1, b"ok") + xs_msg(READ, 2, b"", length=5000), 40))
write("xs_wire", "assemble-transaction-id", b"\0" + pieces(xs_msg(READ, 1, b"x", tx_id=5), 40))


def text(s):
    return u16(len(s)) + s


def enc(kind, req_id, path, other):
    return bytes([kind]) + u32(req_id) + text(path) + text(other)


ops = b"".join(enc(k, k + 1, b"/local/domain/7/aggdom/config", b"aggdom/config") for k in range(7))
write("xs_wire", "encode-every-op", b"\1" + ops)
limits = (enc(0, 1, b"a" * 3072, b"") + enc(0, 2, b"a" * 3073, b"")
          + enc(1, 3, b"k", b"v" * 4094) + enc(1, 4, b"k", b"v" * 4095)
          + enc(5, 5, b"/w", b"") + enc(6, 6, b"", b"t") + enc(0, 7, b"a\0b", b"")
          # A read ignores the token field: together over 4096, still fine.
          + enc(0, 8, b"r" * 3000, b"t" * 2000))
write("xs_wire", "encode-limits", b"\1" + limits)


def produce(n):
    return b"\0" + u16(n)


def consume(n):
    return b"\1" + u16(n)


ring = b"\2" + bytes([4]) + u32(0xFFFFFFFA)
ring += produce(10) + consume(4) + produce(12) + consume(20) + produce(30) + consume(16)
write("xs_wire", "ring-wraps", ring)
write("xs_wire", "ring-corrupt-indices",
      b"\2" + bytes([10]) + u32(0) + produce(100) + b"\3" + u32(5000) + consume(10)
      + produce(1) + b"\2" + u32(7000) + consume(1) + b"\3" + u32(7000) + produce(1024))

# --- xs_client -----------------------------------------------------------
# Op codes as xs_client.rs numbers them. Paths index PATHS, tokens TOKENS.
def submit(kind, path, token):
    return bytes([0, kind, path, token])


def srv_read():
    return b"\1" + u16(1099)


def srv_reply(mode, *fields):
    return b"\2" + bytes([mode]) + b"".join(fields)


def short(b):
    return bytes([len(b)]) + b


def srv_event(path, token, nul=1):
    return bytes([3, path, token, nul])


def srv_write():
    return b"\6" + u16(1099)


def tamper(field, mode, value=b""):
    return bytes([7, field, mode]) + value


def pump(ns):
    return b"\x09" + u32(ns // 8)


def take(i):
    return b"\x0a" + u16(i)


def poll(private):
    return bytes([12, 0 if private else 1])


write("xs_client", "read-answered",
      b"\0" + submit(0, 0, 0) + pump(1000) + srv_read() + srv_reply(0, short(b"7"))
      + srv_write() + pump(1000) + take(0) + take(0) + b"\x0a" + u16(500) + u32(12345))
write("xs_client", "errors-and-wrong-ids",
      b"\0" + submit(0, 1, 0) + submit(4, 2, 0) + submit(1, 3, 1) + pump(1000) + srv_read()
      + srv_reply(1, b"\0") + srv_reply(2, u32(READ), u32(77), short(b"x"))
      + srv_reply(3, u32(99), short(b"late")) + srv_write() + pump(1000)
      + take(0) + take(1) + take(2))
write("xs_client", "watches-private-and-netback",
      b"\0" + submit(5, 1, 0) + submit(5, 2, 1) + pump(1000) + srv_read()
      + srv_reply(0, short(b"OK\0")) + srv_reply(0, short(b"OK\0"))
      + srv_event(1, 0) + srv_event(2, 1) + srv_event(2, 1, 0) + srv_write()
      + poll(True) + poll(False) + poll(False) + submit(6, 2, 1) + pump(1000))
write("xs_client", "corrupt-ring-resync",
      b"\0" + submit(5, 1, 0) + submit(0, 0, 0) + pump(1000)
      + tamper(3, 3, u32(0x10000)) + pump(1000) + srv_read() + tamper(0, 3, u32(0xFFFFFF00))
      + pump(1000) + take(1) + poll(True))
write("xs_client", "reconnection",
      b"\1" + submit(5, 1, 0) + pump(1000) + b"\4" + short(b"\xff" * 16) + srv_write()
      + pump(1000) + b"\x08" + pump(1000) + srv_read() + srv_reply(0, short(b"OK\0"))
      + srv_write() + pump(1000) + poll(True))
write("xs_client", "timeouts-and-bad-headers",
      b"\0" + submit(0, 0, 0) + b"\5" + bytes([2]) + u32(1) + b"\0" + u16(5000)
      + srv_write() + pump(1000) + submit(2, 4, 0) + pump(11_000_000_000) + take(0) + take(1))

# --- config --------------------------------------------------------------
def mac(*b):
    return bytes(b)


def v4(a, b, c, d, length):
    return b"\1" + u32((a << 24) | (b << 16) | (c << 8) | d) + bytes([length])


def cfg(cmdline, store, nics, slots, vif_mac, vif_ips, client):
    data = cmdline.encode() + (b"\n" + store.encode() if store is not None else b"")
    return data + b"\0" + bytes([nics, slots]) + vif_mac + bytes([len(vif_ips)]) + b"".join(vif_ips) + client


QEMU = ("uplinks=0,1,2,3 guest=4,52:54:00:00:01:01,10.0.0.11 "
        "guest=5,52:54:00:00:01:02,10.0.0.12 ip=10.0.0.2/24")
write("config", "make-run", cfg(QEMU, None, 6, 15, mac(0, 0x16, 0x3e, 0, 0, 0x11), [], v4(10, 0, 0, 5, 0)[:5]))
write("config", "xen-merge-and-vif",
      cfg("uplinks=0,1 mode=identity ip=10.0.0.2/24,fd00::2/64 gw=10.0.0.1 metrics_allow=10.0.0.0/24,fd00::/64",
          "mode=literal bind=10.0.0.50:0+1 bind=10.0.0.51:none bind=10.0.0.50:auto bind=fd00:1::/64:0",
          2, 15, mac(0, 0x16, 0x3e, 0, 0, 0x11), [v4(10, 0, 0, 50, 24), v4(10, 0, 0, 51, 32)],
          v4(10, 0, 0, 9, 0)[:5]))
write("config", "ipv6-guests",
      cfg("uplinks=0,1,2,3 guest=4,52:54:00:00:01:01,10.0.0.11+fd00::11+fd00::/64 "
          "guest=5,52:54:00:00:01:02,10.0.0.12+fd00::12+fd00::/64 ip=10.0.0.2/24,fd00::2/64 "
          "bind=fd00::11:0+1 bind=[fd00::12]:2 ip6_learn=16", "", 6, 4, mac(2, 0, 0, 0, 0, 1), [], b"\0" + u64(0xfd00 << 48) + u64(5)))
write("config", "tuning-and-roles",
      cfg("uplinks=00:03.0,00:04.0,2 pin=0 exclusive=1 capacity=1000,100,10 own=2 "
          "rebalance_ms=500 overload_pct=70 hysteresis_pct=10 dwell_s=5", "own=1 dwell_s=9", 4, 1,
          mac(2, 0, 0, 0, 0, 1), [], v4(10, 0, 0, 1, 0)[:5]))
write("config", "bad-items",
      cfg("uplinks=0,0 guest=9,zz bind=oops mode=fast ip6_learn=17 metrics_allow=10.0.0.5/24 noequals",
          "bind=[fd00::1]:0 rebalance_ms=0 bind=10.0.0.1:999", 3, 15, mac(1, 2, 3, 4, 5, 6),
          [b"\0" + u64(0xfd00 << 48) + u64(0) + bytes([64])], v4(0, 0, 0, 0, 0)[:5]))
write("config", "empty", b"")

# --- metrics_http ----------------------------------------------------------
def connect_v4(slot, last):
    return bytes([slot, 0, 0, last])


def send(slot, data):
    out = b""
    for i in range(0, len(data), 255):
        chunk = data[i:i + 255]
        out += bytes([slot, 1, len(chunk)]) + chunk
    return out


def close(slot):
    return bytes([slot, 2])


def wait(ms):
    return bytes([0, 3]) + u16(ms // 4)


def round_():
    return bytes([0, 4])


write("metrics_http", "scrape",
      short(b"") + connect_v4(0, 5) + send(0, b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n") + round_()
      + wait(100) + round_() + close(0) + round_())
write("metrics_http", "other-requests",
      short(b"10.0.0.0/24,fd00::/64") + connect_v4(0, 5) + send(0, b"POST /metrics HTTP/1.0\r\n\r\n")
      + connect_v4(1, 6) + send(1, b"GET / HTTP/1.0\n\n") + connect_v4(2, 7)
      + send(2, b"GET /metrics?name=x HTTP/1.1\r\n\r\n") + connect_v4(3, 8) + send(3, b"GET /metrics\n\n")
      + round_())
write("metrics_http", "slow-drip-and-too-large",
      short(b"") + connect_v4(0, 5) + b"".join(send(0, bytes([c])) + round_() + wait(400) for c in b"GET /met")
      + connect_v4(1, 6) + send(1, b"A" * 2100) + round_())
write("metrics_http", "refused-and-evicted",
      short(b"10.0.0.0/24") + bytes([0, 0, 1]) + u32(0xC0A80101) + round_()
      + connect_v4(1, 1) + connect_v4(2, 2) + connect_v4(3, 3) + connect_v4(0, 4) + round_()
      + wait(1000) + round_() + wait(6000) + round_())

# --- grant_split -------------------------------------------------------------
def split_case(local, length, foreign):
    return b"\1" + u64(local) + b"\1" + u16(length) + u16(foreign)


write("grant_split", "page-cases",
      split_case(0x1000, 100, 0) + split_case(0x1F00, 0x200, 0x10) + split_case(0x3001, 4096, 0)
      + split_case(0x1000, 4097, 0) + split_case(0x1000, 2, 4095) + split_case(0x1000, 1, 4095)
      + split_case(0x1000, 0, 0) + split_case(0x5FFF, 2, 0))

# --- e1000_rx ----------------------------------------------------------------
DD, EOP, CE, RXE = 1, 2, 1, 0x80


def desc(status, errors, length):
    return bytes([status, errors, 0]) + u16(length)


write("e1000_rx", "good-frames", b"\0" + desc(DD | EOP, 0, 60) + desc(DD | EOP, 0, 14) + desc(DD | EOP, 0, 1518)
      + desc(DD | EOP, 0x60, 60))
write("e1000_rx", "split-and-errors",
      b"\0" + desc(DD, 0, 2048) + desc(DD, 0, 2048) + desc(DD | EOP, 0, 100) + desc(DD | EOP, CE, 60)
      + desc(DD | EOP, RXE, 60) + desc(DD | EOP, 0, 13) + desc(DD | EOP, 0, 1519) + desc(EOP, 0, 60)
      + desc(0, 0, 0) + desc(DD | EOP, 0, 0xFFFF))

# --- virtio_net_rx -----------------------------------------------------------
def used(token, length, again):
    return bytes([0, token, 1]) + u32(length) + u16(again)


write("virtio_net_rx", "good-and-bad-lengths",
      b"\0" + used(5, 12 + 60, 5) + used(6, 12 + 14, 6) + used(7, 12 + 1518, 7) + used(8, 12 + 13, 8)
      + used(9, 12 + 1519, 9) + used(10, 11, 10) + used(11, 0xFFFFFFFF, 11) + used(12, 2049, 12))
write("virtio_net_rx", "stray-tokens",
      b"\1" + used(5, 70, 100) + bytes([2, 3, 1]) + u32(70) + u16(0) + used(5, 70, 0) + bytes([1]) + u16(0xFFFF) + b"\1" + u32(70) + u16(0))

# --- line_editor -------------------------------------------------------------
write("line_editor", "commands", b"help\rnics\nversion\r\nstats\r\n\rnic 0 mac 02:00:00:00:00:07\r")
write("line_editor", "editing", b"hep\x08lp\r\x7f\x7fab\x7f\x7f\x7fx\nve\x01r\xffs\xc3\xa9ion\r")
write("line_editor", "escapes", b"ni\x1b[Acs\x1b[1;5D\x1bO\r\x1b\x1b[\x03x\r")
write("line_editor", "ctrl-c", b"shutd\x03nics\r")
write("line_editor", "overlong-and-exact", b"x" * 300 + b"\x08\rversion\r" + b"y" * 256 + b"\n")

# --- start_info --------------------------------------------------------------
MAGIC = 0x336EC578


def start_info(version, rsdp, entries):
    raw = bytearray(56)
    raw[0:4] = u32(MAGIC)
    raw[4:8] = u32(version)
    raw[32:40] = u64(rsdp)
    raw[48:52] = u32(entries)
    return bytes(raw)


def memmap(regions):
    return b"".join(u64(a) + u64(s) + u32(k) + u32(0) for a, s, k in regions)


def si(flags, raw, cmdline, regions, checks=b"", floor=b"\0"):
    mm = memmap(regions)
    return (bytes([flags]) + raw + b"\2" + u32(0x2000) + b"\2" + u32(0x3000)
            + b"\0" + u16(len(cmdline)) + cmdline + b"\0" + u16(len(mm)) + mm + floor + checks)


QEMU_MAP = [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2), (0x100000, 0x7EE0000, 1),
            (0x7FE0000, 0x20000, 2), (0xFFFC0000, 0x40000, 2)]
CHECKS = (b"\1\0\0\x10" + b"\1\2\0\x24" + b"\1\4\x20\x14" + b"\2\x10\x08" + b"\0\1\0\x50\x40"
          + b"\1\5\x40\x40")
write("start_info", "qemu-pc", si(0x0F, start_info(1, 0xF5A40, len(QEMU_MAP)),
                                  b"uplinks=0,1 mode=literal\0", QEMU_MAP, CHECKS))
XEN_MAP = [(0, 0xA0000, 1), (0xF0000, 0x10000, 2), (0x100000, 0x3FF00000, 1),
           (0xFC000000, 0x4000000, 2), (0xFEC00000, 0x1000, 2), (0x100000000, 0x40000000, 1)]
write("start_info", "xen-hvm-map", si(0x0F, start_info(1, 0xFC009000, 6), b"\0", XEN_MAP, CHECKS,
                                      b"\1" + u32(0x600000)))
write("start_info", "version-0", si(0x0F, start_info(0, 0, 3), b"ip=10.0.0.2/24\0", QEMU_MAP[:3]))
write("start_info", "long-cmdline", si(0x0F, start_info(1, 0, 40), b"w" * 1100, QEMU_MAP * 7))
write("start_info", "no-magic", si(0x0D, bytes(56), b"x\0", QEMU_MAP))

# --- acpi_tables -------------------------------------------------------------
S5 = b"\x08_S5_\x12\x06\x04\x00\x00\x00\x00"


def laid_out(flags, rsdp_slot, revision, entries, facp_kind, pm1a, pm1b, aml,
             root=b"\1", facp=b"\1", dsdt=b"\1", x_dsdt=b"\1"):
    return (bytes([flags]) + u16(rsdp_slot) + bytes([revision]) + root + facp + dsdt
            + bytes([len(entries)]) + b"".join(entries) + b"\0" + bytes([facp_kind])
            + u32(pm1a) + u32(pm1b) + x_dsdt + b"\0" + u16(len(aml)) + aml + b"\0\0")


PIIX_AML = b"\x5b\x80PIRQ" + S5
write("acpi_tables", "qemu-piix-scan", laid_out(0x06, 0x1544, 0, [b"\1"], 0, 0x604, 0, PIIX_AML))
write("acpi_tables", "xsdt-hint-two-blocks",
      laid_out(0x07, 0x1000, 2, [b"\0\2" + u32(0x7FE3000), b"\1"], 1, 0xB004, 0xB008,
               b"\x10" * 5000 + b"\x08_S5_\x12\x08\x04\x0a\x05\x0a\x05\x00\x00"))
write("acpi_tables", "bad-checksums", laid_out(0x04, 0x1544, 0, [b"\1"], 0, 0x604, 0, PIIX_AML))
write("acpi_tables", "raw-bios-area",
      b"\0" + b"\2" + b"\1" + u16(0x7AA0) + b"\0" + u16(20) + b"RSD PTR " + bytes(12)
      + b"\2" + u32(0x7FE0000) + b"\1" + bytes([36]) + b"RSDT" + u32(36) + bytes(28))

# --- rx_coalesce -------------------------------------------------------------
# (netback/src/testkit/coalesce.rs) v6 flag, MSS - 1, last segment - 1; then per
# frame an op (flow in bit 0, edit in bits 1-3, "checksums fixed" in bit 7),
# u16 position, a byte, and the pages of room (a raw frame: op 14, length, bytes).
# The catches-* files are inputs found when checks were removed on purpose.


def flow(v6, mss, last):
    return bytes([1 if v6 else 0]) + u16(mss - 1) + u16(last - 1)


def seg(op, at=0, byte=0, room=200):
    return bytes([op]) + u16(at) + bytes([byte, room])


write("rx_coalesce", "one-flow-v4", flow(False, 1448, 1448) + b"".join(seg(0) for _ in range(24)))
write("rx_coalesce", "two-flows-v6",
      flow(True, 1000, 300) + b"".join(seg(i % 2 if i % 5 else 0, room=50) for i in range(40)))
write("rx_coalesce", "every-edit", flow(False, 536, 100) + b"".join(
    seg((what << 1) | fl | fix, at=700 + what * 13, byte=0x5A, room=3 if what == 5 else 200)
    for what in range(7) for fix in (0, 0x80) for fl in (0, 1))
    + bytes([7 << 1, 60]) + bytes(range(60)) + bytes([200]))
write("rx_coalesce", "tiny-mss-short-room", flow(False, 1, 1) + b"".join(seg(0, room=i % 4) for i in range(60)))
