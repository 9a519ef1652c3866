"""Shared code of `make test-xen` (run-test-xen.py) and `make soak-xen` (soak-xen.py).

The pure helpers at the top (crash-line scan, ping gaps, `xen` output parsing, classification of the final
line) import nothing from the rig and are unit-tested on the host (test_xentest.py, run by
`cargo test -p aggdom-xen-test`). `XenTest` drives the shared rig (../shared/xen-rig, xenrig.py): it boots
Xen + dom0 + aggdom, starts guests (retrying an `xl create` that dom0's userland botched), records every
check, and at the end prints RESULTS, TIMINGS and a final line that says whether a FAIL is the rig's
(dom0 userland crashed) or aggdom's.
"""
import hashlib, os, re, shlex, subprocess, sys, time, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RIG_DIR = os.environ.get("XEN_RIG", os.path.abspath(os.path.join(ROOT, "..", "shared", "xen-rig")))
sys.path.insert(0, RIG_DIR)
try:
    from xenrig import Rig, Nic, RigError  # noqa: E402
except ImportError:  # host unit tests without the rig: only the pure helpers are used
    Rig, Nic = object, None

    class RigError(RuntimeError):
        pass

DOM0_IP, AGG_IP = "10.0.0.1", "10.0.0.2"
XENCTX = "/usr/lib/xen-4.17/bin/xenctx"                  # in the rig's dom0 (xen-utils)
AGGDOM_MAP = "/share/aggdom.map"                        # `nm -n` of aggdom's ELF, for xenctx -s
SERIAL = "/var/log/xen/console/aggdom-serial.log"     # aggdom's COM1 (serial= in aggdom.cfg)
PVCON = "/var/log/xen/console/guest-aggdom.log"       # aggdom's PV console (xenconsoled)
PROMPT = "aggdom> "
ELF = os.path.join(ROOT, "target/x86_64-unknown-none/release/aggdom32")

# ------------------------------------------------------------------------------------------ pure helpers

# What the rig's PV userland faults look like (xen-rig README, "Seen 2026-12-02" and "Known flakiness"):
# the kernel's lines for a crashed process, libxenguest failing to decompress a guest kernel, ld.so and
# libxl's reports of a dead child.
CRASH_RE = re.compile(r"segfault at|general protection|traps:|Invalid kernel|"
                      r"Inconsistency detected by ld\.so|died due to fatal signal")


def crash_lines(text):
    """The lines of `text` that report a userland crash in a PV domain. Xen's own lines ("(XEN) ...":
    debug keys, a guest's exception) are not userland and are left out."""
    out = []
    for line in text.replace("\r", "").splitlines():
        if CRASH_RE.search(line) and not line.lstrip().startswith("(XEN)"):
            out.append(_unprompt(line))
    return out


def _unprompt(line):
    """A dom0 kernel line printed after the shell's prompt: without the prompt."""
    line = line.strip()
    return line[2:] if line.startswith("# ") else line


def crash_lines_at(text, base=0):
    """crash_lines with each line's offset in text (plus base): [(offset, line)]."""
    out, pos = [], 0
    for line in text.replace("\r", "\n").split("\n"):
        if CRASH_RE.search(line) and not line.lstrip().startswith("(XEN)"):
            out.append((base + pos, _unprompt(line)))
        pos += len(line) + 1
    return out


def failure_window(marks, fail_at):
    """(start, end] of the serial log in which the run failed. marks = [(offset, ok)] of the checks in
    order; fail_at = the offset at which a step gave up (exception), or None. The window runs from the
    last check that passed before the first failure up to that failure; None for a PASS."""
    end, last_ok = None, 0
    for off, ok in marks:
        if not ok:
            end = off
            break
        last_ok = off
    if end is None:
        if fail_at is None:
            return None
        end = fail_at
    return (last_ok, end)


def split_faults(found, window):
    """found = [(offset, crash line)], window = failure_window(...). Returns (at the failing step, elsewhere):
    on a PASS (window None) every line is in the first list; on a FAIL only those inside the window are,
    the ones before it and after it (the run went on without them, or they came after the failure) are
    in the second. Each line once."""
    seen, at, elsewhere = set(), [], []
    for pos, l in sorted(found):
        if l in seen:
            continue
        seen.add(l)
        (at if window is None or window[0] < pos <= window[1] else elsewhere).append(l)
    return at, elsewhere


def ping_stats(text):
    """Parses busybox ping output (`64 bytes from ...: seq=N ...` lines and the `N packets transmitted`
    summary). Returns dict(transmitted, received, max_gap, gap_from, loss_pct, first, last): max_gap is the
    longest run of consecutive sequence numbers without a reply among the transmitted ones (the tail
    included: requests sent but never answered before ping stopped), gap_from its first sequence number
    (None without a gap). transmitted is None without a summary (ping did not finish); then only gaps
    between replies count."""
    seqs = {int(s) for s in re.findall(r"seq=(\d+)", text)}
    for a, b in re.findall(r"seqs=(\d+)\.\.(\d+)", text):      # runs, as bg_ping_stop reports them
        seqs.update(range(int(a), int(b) + 1))
    seqs = sorted(seqs)
    m = re.search(r"(\d+) packets transmitted", text)
    tx = int(m.group(1)) if m else None
    m = re.search(r"(\d+) packets received", text)
    ping_rx = int(m.group(1)) if m else None
    max_gap, gap_from, prev = 0, None, -1
    for s in seqs + ([tx] if tx is not None else []):
        if s - prev - 1 > max_gap:
            max_gap, gap_from = s - prev - 1, prev + 1
        prev = s
    if tx is None and not seqs:
        max_gap = None
    rx = len([s for s in seqs if tx is None or s < tx])
    loss = (100.0 * (tx - rx) / tx) if tx else None
    return {"transmitted": tx, "received": rx, "max_gap": max_gap, "gap_from": gap_from, "loss_pct": loss,
            "first": seqs[0] if seqs else None, "last": seqs[-1] if seqs else None, "ping_received": ping_rx}


def bystander_verdict(st, sent, took, max_lost):
    """(ok, why) for a guest that pinged dom0 through aggdom while another guest came and went. st is
    ping_stats of its ping; sent/took are its kernel's Icmp.OutEchos/InEchoReps deltas over the same time
    (None if unread). The loss that counts is aggdom's: replies that never reached the guest kernel's
    ICMP layer, at most max_lost (a bound on the total bounds every gap). A longer gap in ping's reply
    lines while the ICMP layer took every reply was lost inside the guest, above its kernel: the soaks
    s7-1 and s8-1 lost 266 and 129 such lines in a row in guests whose busybox the rig's PV userland faults
    hit; it passes, and `why` says so, with ping's own summary count beside the lines it wrote."""
    # ping's own count says it ran and got replies even when its reply lines are gone (test-xen run w-1:
    # none of 217 in its file, "217 packets received" in its summary, malloc corruption in the guest).
    if not st or not st["transmitted"] or not (st["received"] or st["ping_received"]):
        return False, "ping did not run or got no reply"
    if st["max_gap"] <= max_lost:
        return True, f"largest gap {st['max_gap']}"
    lines = f"largest gap {st['max_gap']} in ping's reply lines (from seq {st['gap_from']}), " \
            f"{st['received']} lines, ping's summary {st['ping_received']} received of {st['transmitted']}"
    if sent is None or took is None or not sent:
        return False, lines + "; the guest's ICMP counters unread"
    if sent - took <= max_lost:
        return True, (lines + f"; its ICMP layer took {took} of {sent} echo replies: lost inside the guest, "
                      f"above its kernel (rig), not on aggdom's path")
    return False, lines + f"; its ICMP layer took {took} of {sent} echo replies"


XS_RE = re.compile(r"xenstore requests (\d+) errors (\d+) timeouts (\d+) watch_events (\d+) resyncs (\d+) "
                   r"in_flight (\d+) max_in_flight (\d+) unknown_replies (\d+) noent (\d+)")
XS_KEYS = ["requests", "errors", "timeouts", "watch_events", "resyncs", "in_flight", "max_in_flight",
           "unknown_replies", "noent"]
# Printed after the counters when a request failed other than with ENOENT (kernel/src/xen_net.rs).
XS_LAST_ERROR_RE = re.compile(r"^xenstore last error (\S+) on (\S+) ?(.*)$", re.M)
GRANTS_RE = re.compile(r"grants copy_ops (\d+) copy_hypercalls (\d+) copy_failures (\d+) maps (\d+) "
                       r"unmaps (\d+) map_failures (\d+)")
GRANT_KEYS = ["copy_ops", "copy_hypercalls", "copy_failures", "maps", "unmaps", "map_failures"]
VIF_RE = re.compile(r"^vif (\d+)/(\d+) state (\d+) (\w+) guest (\S+) mac (\S+) ip (\S+)[^\n]*\n"
                    r"\s+tx_frames (\d+) tx_bytes (\d+) rx_frames (\d+) rx_bytes (\d+) tx_drops (\d+) "
                    r"rx_drops (\d+) fatal (\d+) connects (\d+) disconnects (\d+) connect_failures (\d+) "
                    r"notifies (\d+)(?: rx_batches (\d+))? refusals (\d+) xenstore_errors (\d+)", re.M)
VIF_KEYS = ["frontend", "handle", "state", "conn", "guest", "mac", "ip", "tx_frames", "tx_bytes", "rx_frames",
            "rx_bytes", "tx_drops", "rx_drops", "fatal", "connects", "disconnects", "connect_failures",
            "notifies", "rx_batches", "refusals", "xenstore_errors"]
OFFLOAD_RE = re.compile(r"\s+offload tx_gso (\d+) tx_segments (\d+) rx_gso (\d+) rx_segmented (\d+) "
                        r"tx_rate_limited (\d+) rate_errors (\d+)(?: rx_coalesced (\d+))?")
OFFLOAD_KEYS = ["tx_gso", "tx_segments", "rx_gso", "rx_segmented", "tx_rate_limited", "rate_errors",
                "rx_coalesced"]


def write_symbol_map(elf, dst):
    """`nm -n elf` into dst (System.map's format, which xenctx -s reads); False if nm fails."""
    try:
        out = subprocess.run(["nm", "-n", elf], capture_output=True, text=True, timeout=120)
        if out.returncode or not out.stdout:
            return False
        with open(dst, "w") as f:
            f.write(out.stdout)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def proc_net_counts(text, dev="eth0"):
    """Counters from `cat /proc/net/dev /proc/net/snmp` inside a Linux guest or dom0: the device's rx/tx
    packets and drops, and every `Ip:`/`Icmp:` field (as "Icmp.InEchoReps"), ints; {} if none found."""
    res = {}
    m = re.search(rf"^\s*{re.escape(dev)}:\s*((?:\d+\s+){{15}}\d+)", text, re.M)
    if m:
        f = [int(x) for x in m.group(1).split()]
        res.update({"rx_packets": f[1], "rx_drop": f[3], "tx_packets": f[9], "tx_drop": f[11]})
    lines = text.splitlines()
    for head, vals in zip(lines, lines[1:]):
        h, v = head.split(), vals.split()
        if len(h) > 1 and h[0] in ("Ip:", "Icmp:") and v and v[0] == h[0] and len(h) == len(v) and \
                not h[1].lstrip("-").isdigit():
            for k, x in zip(h[1:], v[1:]):
                if x.lstrip("-").isdigit():
                    res[f"{h[0][:-1]}.{k}"] = int(x)
    return res


def echo_deltas(before, now):
    """(sent, took): the guest's Icmp.OutEchos and Icmp.InEchoReps between two XenTest.path_counts, each
    None if either reading lacks it (for bystander_verdict)."""
    def d(key):
        a, b = now["guest"].get(key), before["guest"].get(key)
        return None if a is None or b is None else a - b
    return d("Icmp.OutEchos"), d("Icmp.InEchoReps")


def path_report(name, before, after, pinged):
    """One line: how many echo requests and replies each point of a guest's path to dom0 counted between
    two XenTest.path_counts (deltas). A reply lost inside aggdom shows as dom0 sending more than aggdom's
    vif delivered; one lost in the guest as the vif delivering more than the guest's eth0 or ICMP layer
    took (test-xen run j-7). dom0's counters are the whole host's: with other guests pinging they count
    theirs too."""
    def d(where, key):
        a, b = after[where].get(key), before[where].get(key)
        return b if b is None else (a - b if a is not None else None)
    return (f"requests: {name} ICMP out {d('guest', 'Icmp.OutEchos')} -> aggdom vif tx {d('vif', 'tx_frames')} "
            f"-> dom0 eth0 rx {d('dom0', 'rx_packets')} (ICMP echos in {d('dom0', 'Icmp.InEchos')}); "
            f"replies: dom0 ICMP out {d('dom0', 'Icmp.OutEchoReps')} eth0 tx {d('dom0', 'tx_packets')} "
            f"-> aggdom vif rx {d('vif', 'rx_frames')} (drops {d('vif', 'rx_drops')}) -> {name} eth0 rx "
            f"{d('guest', 'rx_packets')} (drop {d('guest', 'rx_drop')}) -> ICMP echo replies "
            f"{d('guest', 'Icmp.InEchoReps')} (csum errors {d('guest', 'Icmp.InCsumErrors')}, IP header errors "
            f"{d('guest', 'Ip.InHdrErrors')}, address errors {d('guest', 'Ip.InAddrErrors')}) -> ping counted {pinged}")


# iperf3's and busybox ping's summaries (bench-xen)
IPERF_LINE = re.compile(r"sec\s+([\d.]+)\s+([KMG]?)Bytes\s+([\d.]+)\s+([KMG]?)bits/sec.*?(sender|receiver)")
UDP_LOSS = re.compile(r"(\d+)/(\d+)\s+\(([\d.e+-]+)%\)\s+receiver")
SCALE = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}
BSCALE = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def parse_iperf(out):
    """(receiver Mbit/s, receiver bytes, UDP loss % or None) from iperf3's summary lines, or None."""
    rows = {m.group(5): m for m in IPERF_LINE.finditer(out)}
    m = rows.get("receiver") or rows.get("sender")
    if not m:
        return None
    mbit = float(m.group(3)) * SCALE[m.group(4)] / 1e6
    nbytes = float(m.group(1)) * BSCALE[m.group(2)]
    losses = UDP_LOSS.findall(out)
    return mbit, nbytes, (float(losses[-1][2]) if losses else None)


def output_after(out, tag):
    """What a guest command printed after `echo {tag}-$((0+N))`'s line "{tag}-N" (the last one): the rig's
    guest-command reader may hand back earlier commands' output too (when it cannot find the echoed
    command line, it keeps the console log's tail), and the arithmetic keeps the echoed command line
    itself from matching. The whole text when the line is not there."""
    at = out.rfind(tag + "\n")
    return out[at + len(tag) + 1:] if at >= 0 else out


def parse_ping(out):
    """(received, transmitted, avg ms, max ms) from busybox ping's summary, or None."""
    tx = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
    rtt = re.search(r"min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+)", out)
    if not tx:
        return None
    return int(tx.group(2)), int(tx.group(1)), float(rtt.group(2)) if rtt else None, float(rtt.group(3)) if rtt else None


def parse_xen(log):
    """The last `xen` reply in a console log: {"xenstore": {...}, "grants": {...}, "vifs": {(fe, h): {...}}}
    with int values (conn, guest, mac, ip stay strings; xenstore's "last_error", when printed, a string), or None
    if there is none."""
    log = log.replace("\r", "")
    last = None
    for last in XS_RE.finditer(log):
        pass
    if last is None:
        return None
    tail = log[last.start():]
    nxt = tail.find(PROMPT)          # the reply ends at the next prompt
    if nxt >= 0:
        tail = tail[:nxt]
    res = {"xenstore": dict(zip(XS_KEYS, map(int, last.groups()))), "grants": None, "vifs": {}}
    e = XS_LAST_ERROR_RE.search(tail)
    if e:
        # Which request failed and how: the `errors` count alone cannot say (the soak counts ~58 per cycle).
        res["xenstore"]["last_error"] = f"{e.group(1)} on {e.group(2)} {e.group(3)}".strip()
    g = GRANTS_RE.search(tail)
    if g:
        res["grants"] = dict(zip(GRANT_KEYS, map(int, g.groups())))
    for m in VIF_RE.finditer(tail):
        # rx_batches: None from a build before batched guest RX
        v = {k: (val if k in ("conn", "guest", "mac", "ip") or val is None else int(val))
             for k, val in zip(VIF_KEYS, m.groups())}
        o = OFFLOAD_RE.match(tail, m.end() + 1)      # the vif's offload line, if this build prints one
        if o:
            v["offload"] = dict(zip(OFFLOAD_KEYS, (int(g or 0) for g in o.groups())))
        res["vifs"][(v["frontend"], v["handle"])] = v
    return res


# aggdom's `profile` reply (drivers/profile/src/report.rs): `profile <section> <name>` then `key value` pairs;
# its first line, and the reply to `profile reset` (kernel/src/profile.rs), as aggdom_cmd's `expect`.
PROFILE_FIRST = r"profile total wall ms"
PROFILE_ZEROED = r"^profile zeroed at uptime"
PROFILE_LINE = re.compile(r"^profile (total|phase|hypercall|runstate) (\w+)((?: [a-z_]+ \d+(?:\.\d+)?)+)$")


def parse_profile(log):
    """The last `profile` reply in a console log: {"lines": [its lines], "total": {name: {key: float}},
    "phase": {...}, "hypercall": {...}, "runstate": {...} (under Xen only)}, or None when there is none or
    it is cut short (no wall, busy and asleep totals). Lines that are not profile lines are skipped."""
    log = log.replace("\r", "")
    at = log.rfind("profile total wall ")
    if at < 0:
        return None
    tail = log[log.rfind("\n", 0, at) + 1:]
    nxt = tail.find(PROMPT)          # the reply ends at the next prompt
    if nxt >= 0:
        tail = tail[:nxt]
    res = {"lines": [], "total": {}, "phase": {}, "hypercall": {}, "runstate": {}}
    for line in tail.splitlines():
        m = PROFILE_LINE.match(line.strip())
        if m:
            words = m.group(3).split()
            res[m.group(1)][m.group(2)] = {k: float(v) for k, v in zip(words[::2], words[1::2])}
            res["lines"].append(line.strip())
    if not all(k in res["total"] for k in ("wall", "busy", "asleep")):
        return None
    return res


def profile_per_frame(prof, rx_frames, tx_frames, copy_ops=None):
    """One line of per-frame figures from a parse_profile result and a vif's frame deltas over the same
    span (rx: to the guest, tx: from it; both cost aggdom work): busy time and cycles, Xen's running time
    when shown, hypercalls that do not sleep, grant copy and notify hypercalls, and grant copy operations
    (every vif's) if given. None without frames."""
    frames = (rx_frames or 0) + (tx_frames or 0)
    if frames <= 0:
        return None
    mhz = prof["total"]["wall"].get("tsc_mhz", 0)
    busy_us = prof["total"]["busy"]["ms"] * 1000 / frames
    hc = prof["total"].get("hypercalls", {})
    out = (f"per frame ({rx_frames} rx to the guest + {tx_frames} tx from it): busy {busy_us:.2f} us"
           + (f" = {busy_us * mhz:.0f} cycles" if mhz else "")
           + (f" (Xen: running {prof['runstate']['running']['ms'] * 1000 / frames:.2f} us)"
              if "running" in prof["runstate"] else "")
           + f", hypercalls {hc.get('calls', 0) / frames:.3f} ({hc.get('ms', 0) * 1000 / frames:.2f} us)")
    for kind in ("grant_copy", "evtchn_send"):
        h = prof["hypercall"].get(kind, {"calls": 0, "ms": 0})
        out += f", {kind} {h['calls'] / frames:.3f} calls ({h['ms'] * 1000 / frames:.2f} us)"
    if copy_ops is not None:
        out += f", grant copy ops {copy_ops / frames:.2f} (all vifs)"
    return out


def attached_re(feid, handle=0):
    """aggdom's COM1 line when a vif joins the datapath (kernel/src/xen_net.rs)."""
    return rf"vif {feid}/{handle} attached as guest"


def detached_re(feid, handle=0):
    return rf"vif {feid}/{handle} detached"


def first_error_line(out):
    """The line of a failed xl command worth quoting: its first error, else its last line."""
    lines = [l.strip() for l in out.strip().splitlines() if l.strip()]
    for l in lines:
        if "Invalid kernel" in l:
            return l
    for l in lines:
        if "error" in l.lower():
            return l
    return lines[-1] if lines else ""


def classify(raw, dom0_faults, guest_faults, retries, aggdom_crashed=None, earlier=0):
    """The final line. raw is "PASS" or "FAIL <why>". A FAIL is put on the rig when dom0's userland crashed
    at the failing step (dom0_faults: the crash lines between the last passing check and the failure) or a
    guest's did; on aggdom otherwise, saying how many rig crashes came before it (the run went on after them)
    or after it (too late to cause it). Either way the failing step is kept."""
    note = f" [xl create retried {len(retries)}x after 'Invalid kernel' (rig)]" if retries else ""
    if raw == "PASS":
        n = len(dom0_faults) + len(guest_faults) + earlier
        return "PASS" + note + (f" [{n} userland crash line(s) from the rig, see RIG FAULTS]" if n else "")
    why = raw[5:] if raw.startswith("FAIL ") else raw
    if why == "interrupted" or why.startswith("test script error"):
        return f"FAIL {why}{note}"
    if aggdom_crashed:
        return f"FAIL aggdom crashed ({aggdom_crashed}): {why}{note}"
    for who, lines in (("dom0", dom0_faults), ("guest", guest_faults)):
        if lines:
            more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
            return f"FAIL {who} userland crashed (rig): {lines[0][:160]}{more}; failing step: {why}{note}"
    seen = f"; {earlier} rig crash line(s) before or after the failing step, not at it" if earlier else ""
    return f"FAIL aggdom (no rig crash at the failing step{seen}): {why}{note}"


def cfg_text(path, **subst):
    """An xl config from tests/xen with `key = value` lines replaced."""
    with open(path) as f:
        text = f.read()
    for k, v in subst.items():
        text = re.sub(rf"^{k}\s*=.*$", f"{k} = {v}", text, flags=re.M)
    return text


def other_rigs():
    """Command lines of Xen rigs (QEMU booting images/xen) running on this host."""
    try:
        out = subprocess.run(["pgrep", "-af", "qemu-system-x86_64.*xen"], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [l for l in out.splitlines() if l.strip() and "pgrep" not in l]


# ------------------------------------------------------------------------------------------ the rig


class Fail(Exception):
    pass


class TestRig(Rig):
    """xenrig's Rig that keeps every dom0 command's output, so a crash reported only on a command's stderr
    (libxenguest's "Invalid kernel", ld.so, libxl's "died due to fatal signal") is found at the end."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.history = []

    def run(self, cmd, timeout=300, check=False, quiet=False):
        try:
            rc, out = super().run(cmd, timeout=timeout, check=False, quiet=quiet)
        except RigError as e:
            if "@@DONE" not in str(e):
                raise
            one = " ".join(cmd.split())
            raise RigError(f"dom0 stopped answering: no reply in {timeout}s to `{one[:90]}`\n{e}") from None
        self.history.append({"cmd": cmd, "rc": rc, "out": out, "handled": False, "pos": len(self.buf)})
        if check and rc != 0:
            raise RigError(f"command failed rc={rc}: {cmd}\n{out}")
        return rc, out


class XenTest:
    """One rig run: aggdom booted as the driver domain, guests on top, checks recorded."""

    def __init__(self, args, guest_cfg=None):
        self.a = args
        self.tm, self.results, self.retries = {}, [], []
        self.image_checks, self.image_mismatches = 0, 0   # check_guest_images
        self.guest_cfg = guest_cfg or os.path.join(HERE, "guest.cfg")
        self.rig = TestRig(args.cache, nics=[Nic("e1000", hub=0), Nic("e1000", hub=0), Nic("e1000", hub=0, dom0=True)],
                           echo=args.echo)
        self.t_start = time.time()
        self.aggid = None
        self.aggdom_map = False    # aggdom's symbols are in the share (for xenctx)
        self.dom0_faults, self.guest_faults = [], []   # at the failing step (all of them on a PASS)
        self.earlier_faults = []                        # before or after it: not its cause
        self.marks, self.fail_at = [], None             # serial-log offsets of the checks / of an abort
        self.extra_files = []          # host files (in the share) whose crash lines count as dom0's

    # -------------------------------------------------------------- reporting
    def say(self, msg):
        self.rig.say(msg)

    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))
        self.marks.append((len(self.rig.buf), bool(ok)))
        self.say(f"CHECK {'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""))
        return bool(ok)

    def raw_verdict(self):
        failed = [r[0] for r in self.results if not r[1]]
        if self.aggdom_crash():
            failed.append(f"aggdom {self.aggdom_crash()} (see the Xen vCPU dump in the serial log)")
        return "PASS" if not failed else "FAIL " + "; ".join(failed)

    # -------------------------------------------------------------- aggdom's consoles
    def serial(self, timeout=300):
        return self.read_log(SERIAL, timeout)

    def read_log(self, path, timeout=300):
        """A console log's contents, read in dom0. A `cat` that dies there (the rig's userland faults:
        seen as ld.so's "Inconsistency detected" instead of the log) is retried once; its output is kept
        as a dom0 command's, so the crash is listed under RIG FAULTS (console reads are otherwise not
        scanned: a guest's log holds the guest's own crashes)."""
        for attempt in (1, 2):
            rc, out = self.rig.run(f"cat {path}", timeout=timeout, quiet=True)
            if rc == 0:
                break
            self.rig.history[-1]["cmd"] = f"(read of {os.path.basename(path)} that failed)"
            self.say(f"reading {path} failed in dom0 (rc={rc}), attempt {attempt}: {out.strip()[:200]}")
        return out

    def wait_file(self, path, regex, timeout):
        """Waits inside dom0 until `grep -E regex path` matches; seconds waited, or None on timeout. The
        rig's own wait_file counts its polls, and under load (each poll slower than its 0.5 s) outlived
        the harness's timeout, so a slow step read as "dom0 stopped answering" and the busy shell
        swallowed the dumps after it (restart-1, 2026-12-07): this one ends by dom0's clock."""
        rc, out = self.rig.run(
            f"t0=$(date +%s%N); end=$(( $(date +%s) + {int(timeout)} )); "
            f"while ! grep -qaE {shlex.quote(regex)} {path} 2>/dev/null; do "
            f"[ $(date +%s) -gt $end ] && exit 1; sleep 0.5; done; "
            f"echo $(( ($(date +%s%N) - t0) / 1000000 ))", timeout=timeout + 90, quiet=True)
        return int(out.strip().splitlines()[-1]) / 1000.0 if rc == 0 else None

    def aggdom_context(self):
        """aggdom's vCPU as Xen holds it, read by xenctx in dom0 (registers and a stack walk, symbols from
        aggdom's ELF): where a stuck aggdom waits. Xen's `q` key says only blocked or running."""
        if self.aggid is None:
            return
        sym = f"-s {AGGDOM_MAP} " if self.aggdom_map else ""
        try:
            rc, out = self.rig.run(f"{XENCTX} {sym}-S {self.aggid} 2>&1 | head -60", timeout=60, quiet=True)
            print(f"=== aggdom's vCPU (xenctx, rc={rc}):\n{out}", flush=True)
        except Exception as e:
            print(f"(xenctx failed: {e})", flush=True)

    def wait_serial(self, regex, timeout):
        """Waits for a line of aggdom's output on either console: COM1 has the boot log, and after boot
        under Xen only the PV console has the rest (COM1 goes quiet: every COM1 byte waits for dom0)."""
        t = self.wait_file(f"{SERIAL} {PVCON}", regex, timeout)
        if t is None:
            print("=== aggdom COM1 (tail):\n" + self.serial()[-3000:], flush=True)
        return t

    def aggdom_cmd(self, cmd, expect, timeout=60):
        """Types a command on aggdom's PV console (its console/tty pty, as `xl console -t pv` does) and
        returns the PV console log once one more line than before matches `expect` and the prompt came
        back (None on timeout)."""
        q, p = shlex.quote(expect), shlex.quote(PROMPT)
        for attempt in (1, 2):
            rc, out = self.rig.run(
                f"n=$(grep -caE {q} {PVCON}); np=$(grep -caF {p} {PVCON}); id=$(xl domid aggdom) && "
                f"tty=$(xenstore-read /local/domain/$id/console/tty) && "
                f"printf '%s\\n' {shlex.quote(cmd)} > $tty && end=$(( $(date +%s) + {timeout} )) && "
                f"while [ $(grep -caE {q} {PVCON}) -le $n ]; do [ $(date +%s) -gt $end ] && exit 9; "
                f"sleep 0.5; done; j=0; while [ $(grep -caF {p} {PVCON}) -le $np ] && [ $j -lt 10 ]; do "
                f"j=$((j+1)); sleep 0.3; done", timeout=timeout + 60, quiet=True)
            if rc in (0, 9):
                break
            # xl or xenstore-read died in dom0 (the rig's userland faults): the command was not typed
            self.say(f"typing '{cmd}' on aggdom's PV console failed in dom0 (rc={rc}), attempt {attempt}: {out.strip()}")
        if rc:
            self.say(f"no reply to '{cmd}' on aggdom's PV console (rc={rc}) {out.strip()}")
            return None
        time.sleep(0.3)
        return self.read_log(PVCON).replace("\r", "")

    def xen_state(self):
        """aggdom's `xen` reply, parsed (parse_xen), or None."""
        log = self.aggdom_cmd("xen", r"grants copy_ops", 60)
        return parse_xen(log) if log else None

    def xen_debug_dump(self):
        """Xen's own view when dom0 stops answering: Ctrl-A x3 moves the serial input to Xen, then debug
        keys q (domains, vCPUs, event channels), r (run queues) and a (each CPU's timer queue: a timer
        long past its expiry on an idle CPU means that CPU is not being woken); Ctrl-A x3 gives it back.
        Xen runs the key handlers in a tasklet, in the idle vCPU's context of the CPU that took the serial
        interrupt (CPU0): that CPU shows as idle with whatever it was running put back on its run queue,
        so `r` alone cannot tell a vCPU Xen forgot from one that was running. dom0's kernel is asked too
        (hvc0's SysRq, Ctrl-O then a key; the Makefile boots dom0 with sysrq_always_enabled): w (blocked
        tasks) and l (backtraces of the CPUs). An answer means dom0's kernel runs; none, that it does not."""
        rig = self.rig
        try:
            start = len(rig.buf)
            rig.send("\x01\x01\x01")
            time.sleep(0.5)
            for key in "qra":
                rig.send(key)
                time.sleep(2)
            rig.send("\x01\x01\x01")
            end = time.time() + 8
            while time.time() < end:
                rig._pump(0.5)
            print("=== Xen debug keys q, r, a:\n" + rig.buf[start:][-20000:], flush=True)
            start = len(rig.buf)
            for key in "9wl":
                rig.send("\x0f" + key)
                time.sleep(1)
            end = time.time() + 10
            while time.time() < end:
                rig._pump(0.5)
            out = rig.buf[start:]
            alive = "sysrq:" in out.lower()
            print(f"=== dom0 kernel, SysRq 9 w l ({'it answered' if alive else 'no answer: dom0 kernel not running'}):\n"
                  + out[-12000:], flush=True)
        except Exception as e:
            print(f"(Xen debug dump failed: {e})", flush=True)

    # -------------------------------------------------------------- boot
    def start_rig(self):
        """Rig up: dom0 running, NIC0 and NIC1 assignable, dom0's eth0 (NIC2) at 10.0.0.1."""
        rig = self.rig
        rig.start()
        rig.wait_dom0()
        self.tm["dom0 ready"] = rig.t()
        for n in rig.nics[:2]:
            rig.assignable(n.bdf)
        rc, _ = rig.run(f"modprobe e1000; i=0; until [ -e /sys/class/net/eth0 ]; do i=$((i+1)); [ $i -gt 60 ] && break; "
                        f"sleep 0.5; done; ip link set eth0 up && ip addr add {DOM0_IP}/24 dev eth0; ip -br addr show eth0")
        if rc:
            raise Fail("dom0 eth0 (NIC2) did not come up")

    def boot_aggdom(self, config):
        """Rig up, dom0's eth0 at 10.0.0.1, aggdom created paused with `config` in its xenstore node,
        unpaused; checks that it boots (5 checks). Returns aggdom's domid."""
        a, rig = self.a, self.rig
        if not os.path.exists(a.elf):
            raise Fail(f"{a.elf} missing: run make build")
        self.start_rig()
        # aggdom: created paused so its xenstore config is there before it boots.
        kpath = rig.add_file(a.elf, "aggdom32")
        self.aggdom_map = write_symbol_map(a.elf, os.path.join(rig.share, os.path.basename(AGGDOM_MAP)))
        pci = "[ " + ", ".join(f'"{n.bdf}"' for n in rig.nics[:2]) + " ]"
        text = cfg_text(os.path.join(HERE, "aggdom.cfg"), kernel=f'"{kpath}"', pci=pci)
        cfg = rig.write_cfg("aggdom", text)
        t = time.time()
        rc, out = rig.run(f"xl create -p {cfg}", timeout=400)
        if rc:
            raise Fail(f"xl create aggdom rc={rc}: {first_error_line(out)}")
        self.tm["xl create aggdom"] = time.time() - t
        aggid = self.aggid = rig.domid("aggdom")
        rig.run(f"xenstore-write /local/domain/{aggid}/aggdom/config {shlex.quote(config)} && xl unpause aggdom",
                check=True)
        t = time.time()
        # On COM1 itself: the boot checks below read COM1's log, which has the whole boot log once
        # this line is there (the PV console attaches during boot and misses its start).
        w = self.wait_file(SERIAL, "aggdom ready", a.timeout)
        if not self.check("aggdom boots under Xen", w is not None, f"'aggdom ready' {w}s after unpause"):
            # Where it stopped: its consoles (the main loop drains them, so a loop that never turns
            # leaves its last lines unwritten) and its vCPU.
            print("=== aggdom COM1 (tail):\n" + self.serial(timeout=30)[-3000:], flush=True)
            print("=== aggdom PV console (tail):\n" + (self.read_log(PVCON, timeout=30) or "")[-3000:], flush=True)
            self.aggdom_context()
            raise Fail("aggdom did not boot")
        self.tm["aggdom ready after unpause"] = time.time() - t
        log = self.serial()
        print("=== aggdom COM1 (boot):\n" + log[-2500:], flush=True)
        self.check("platform up (xenstore, domid)", f"xen: domid {aggid}" in log,
                   (re.search(r"xen: domid.*", log) or re.search(r"xen: .*", log) or [""])[0])
        self.check("config read from xenstore", config in log)
        if not self.check("netback serving", "xen: netback serving" in log):
            raise Fail("netback did not start")
        self.check("PV console attached", "PV console attached" in log)
        return aggid

    # -------------------------------------------------------------- guests
    def _wait_gone(self, paths, timeout=30):
        """Waits in dom0 until none of the xenstore paths exists (a torn-down domain's leftovers)."""
        # Ends by dom0's clock, not by counting polls: each xenstore-exists costs dom0 a process start,
        # and in test-xen run r2-2 60 of them (+ 0.5 s sleeps) outlived the harness's 90 s, which then
        # read the wait as "dom0 stopped answering" and never listed what was left.
        tests = " || ".join(f"xenstore-exists {p}" for p in paths)
        rc, _ = self.rig.run(f"end=$(( $(date +%s) + {timeout} )); while {tests}; do "
                             f"[ $(date +%s) -ge $end ] && exit 1; sleep 0.5; done", timeout=timeout + 60, quiet=True)
        if rc == 0:
            return True
        for p in paths:     # what is left, for the reader of a failed run
            self.rig.run(f"xenstore-read {p}; xenstore-ls -f {p} 2>&1 | head -20", timeout=60)
        return False

    def destroy_leftovers(self, name, out):
        """After a failed `xl create`: destroy what is left of the domain and wait until its xenstore
        directories (and its vif's backend directory in aggdom) are gone, so a retry does not race the
        teardown."""
        ids = set(re.findall(r"[Dd]omain (\d+)", out))
        d = self.rig.domid(name)
        if d is not None:
            ids.add(str(d))
        self.rig.run(f"xl destroy {name} 2>&1; xl list", timeout=120)
        paths = []
        for i in sorted(ids):
            paths += [f"/local/domain/{i}"] + ([f"/local/domain/{self.aggid}/backend/vif/{i}"] if self.aggid else [])
        if paths and not self._wait_gone(paths):
            self.say(f"leftovers of {name} still in xenstore: {paths}")

    def create_guest(self, name, ip, mac, attempts=3, ip6=None, backend="aggdom", vif_extra=""):
        """`xl create` of a busybox guest whose vif's backend is aggdom (its `ip=` lists ip6 too, if given:
        the guest configures only the IPv4 one itself). An `xl create` that fails with
        "Invalid kernel" (dom0's libxenguest botching the guest kernel's decompression: a rig fault, see
        the rig's README) is retried after its leftovers are destroyed, at most `attempts` times in all;
        retries are counted in self.retries. Returns the guest's domid."""
        text = cfg_text(self.guest_cfg, name=f'"{name}"', extra=f'"console=hvc0 ip={ip}"',
                        vif=f"[ \"backend={backend},mac={mac},ip={ip}{' ' + ip6 if ip6 else ''}{vif_extra}\" ]")
        for attempt in range(1, attempts + 1):
            self.check_guest_images()
            # A guest created again under the same name (soak-xen) gets a fresh console log: waits for
            # GUEST-NET must not be satisfied by the previous incarnation's lines.
            self.rig.run(f"f=/var/log/xen/console/guest-{name}.log; [ ! -e $f ] || mv $f $f.$(date +%s%N)",
                         quiet=True)
            rc, out, secs = self.rig.xl_create(text, name=name, check=False, timeout=400)
            if rc == 0:
                self.tm[f"xl create {name}"] = secs
                return self.rig.domid(name)
            line = first_error_line(out)
            if "Invalid kernel" not in out or attempt == attempts:
                raise Fail(f"xl create {name} rc={rc}: {line}" + (f" (attempt {attempt}/{attempts})" if attempt > 1 else ""))
            self.rig.history[-1]["handled"] = True   # a retried rig fault, not the verdict's business
            self.retries.append(f"{name}: {line}")
            self.say(f"*** xl create {name}: attempt {attempt}/{attempts} failed with 'Invalid kernel' (rig); "
                     f"destroying leftovers and retrying")
            self.destroy_leftovers(name, out)
        raise Fail("unreachable")

    def check_guest_images(self):
        """Evidence for the rig's "Invalid kernel": dom0 reads the guest kernel and ramdisk from the 9p
        share at every `xl create`. Their md5 as dom0 reads them now is compared with the host's copy; a
        mismatch is printed (and counted in self.image_mismatches), so a failed decompression can be told
        apart from a corrupt read."""
        with open(self.guest_cfg) as f:
            m = re.search(r'^ramdisk\s*=\s*"/share/([^"]+)"', f.read(), re.M)
        names = ("vmlinuz", m.group(1) if m else "guest.cpio.gz")
        want = {}
        for n in names:
            path = os.path.join(self.rig.share, n)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    want[n] = hashlib.md5(f.read()).hexdigest()
        if not want:
            return
        rc, out = self.rig.run("md5sum " + " ".join(f"/share/{n}" for n in want), quiet=True)
        got = dict((l.split()[1].rsplit("/", 1)[-1], l.split()[0]) for l in out.splitlines()
                   if len(l.split()) == 2)
        bad = [n for n in want if got.get(n) != want[n]]
        self.image_checks += 1
        if bad:
            self.image_mismatches += 1
            self.say(f"*** rig: dom0 read {bad} from the 9p share with the wrong md5 "
                     f"(host {[want[n] for n in bad]}, dom0 {[got.get(n) for n in bad]})")

    def start_guest(self, name, ip, mac, tag="", ip6=None, backend="aggdom", vif_extra=""):
        """create_guest, then checks that its vif reaches Connected on both sides and waits for the guest
        to configure eth0. Returns its domid. tag prefixes the check's name; backend names the driver
        domain serving the vif (aggdom, or bench-xen's Linux one, with vif_extra such as ",bridge=xenbr0")."""
        rig, a = self.rig, self.a
        t = time.time()
        feid = self.create_guest(name, ip, mac, ip6=ip6, backend=backend, vif_extra=vif_extra)
        beid = self.aggid if backend == "aggdom" else rig.domid(backend)
        be = f"/local/domain/{beid}/backend/vif/{feid}/0"
        fep = f"/local/domain/{feid}/device/vif/0"
        ok, v, secs = rig.wait_xs({"backend": be + "/state", "hotplug": be + "/hotplug-status",
                                   "frontend": fep + "/state"},
                                  lambda v: v["backend"] == "4" and v["frontend"] == "4", timeout=a.timeout,
                                  label=f"{name}'s vif Connected on both sides")
        self.tm[f"{name} vif connected"] = secs
        if not self.check(f"{tag}{name} vif Connected (backend and frontend state 4)", ok, f"{v} after {secs:.1f}s"):
            rig.run(f"xenstore-ls -f {be}; xenstore-ls -f {fep}; "
                    f"xenstore-read /local/domain/{beid}/error/backend/vif/{feid}/0/error")
            raise Fail(f"{name}'s vif did not connect: {v}")
        w = self.wait_file(f"/var/log/xen/console/guest-{name}.log", "GUEST-NET", a.timeout)
        if w is None:
            print(f"=== {name} console:\n" + rig.console(name)[-1500:], flush=True)
            raise Fail(f"{name} did not configure eth0")
        self.tm[f"{name} up"] = time.time() - t
        return feid

    def ping_from(self, name, ip, tries=4):
        t = time.time()
        out = ""
        for i in range(tries):
            rc, out = self.rig.guest_run(name, f"ping -c 3 -W 3 {ip}", timeout=90)
            if rc == 0:
                self.tm[f"ping {name}->{ip}"] = time.time() - t
                return True, out.strip().splitlines()[-2:] if out.strip() else ""
            self.say(f"{name}: ping {ip} attempt {i + 1} rc={rc}")
        return False, out[-400:] if out else ""

    # background pings inside a guest (busybox ash on its console; ping's output goes to a file there)
    def guest_run_twice(self, name, cmd, timeout=60):
        """guest_run, once more if the first gave no answer (typing into the guest's console goes through
        xl and xenstore-read in dom0, which the rig sometimes kills) or died of a signal in the guest (its
        busybox segfaulted: the rig's PV userland faults reach guests too; the crash stays in the guest's
        console log, where the final scan finds it). Only for commands safe to repeat."""
        rc, out = self.rig.guest_run(name, cmd, timeout=timeout)
        crashed = rc is not None and (rc >= 128 or bool(crash_lines(out)) or "Segmentation fault" in out)
        if rc is None or crashed:
            # (a pipeline's last command decides rc: a segfault earlier in it shows only in the output,
            # as in soak run s5's cycle 8, where the guest's sort died and the replies read as lost)
            self.say(f"{name}: {'no answer' if rc is None else f'a command died (rc={rc})'} in '{cmd}', once more")
            rc, out = self.rig.guest_run(name, cmd, timeout=timeout)
        return rc, out

    def path_counts(self, name, domid):
        """Where a guest's echo requests and dom0's replies are counted along the path, for path_report:
        the guest's ICMP layer and eth0, aggdom's vif (domid, 0), dom0's eth0 (each a dict; {} when
        unreadable)."""
        rc, out = self.guest_run_twice(name, "cat /proc/net/dev /proc/net/snmp")
        guest = proc_net_counts(out or "")
        x = self.xen_state() or {}
        vif = x.get("vifs", {}).get((domid, 0), {})
        rc, out = self.rig.run("cat /proc/net/dev /proc/net/snmp", quiet=True)
        return {"guest": guest, "vif": vif, "dom0": proc_net_counts(out)}

    def bg_ping_start(self, name, ip=DOM0_IP, interval=0.5, tag="bg"):
        rc, _ = self.guest_run_twice(name, f"kill -INT $(cat /tmp/{tag}.pid 2>/dev/null) 2>/dev/null; "
                                           f"ping -i {interval} {ip} > /tmp/{tag}.ping 2>&1 & echo $! > /tmp/{tag}.pid")
        return rc == 0

    def bg_ping_stop(self, name, tag="bg"):
        """Stops the guest's background ping (SIGINT: it prints its summary) and returns ping_stats of its
        output, or None if the guest did not answer."""
        # ping writes its file through a full stdio buffer, flushed only as it exits: wait for it (the
        # guest's console shell started it, so `wait` can), a plain 1 s sleep read an empty file in soak
        # run s2 when the guest was slow; sleep 1 if this shell cannot wait for it (not its child).
        # The replies come back as runs of consecutive sequence numbers ("seqs=A..B"), not one by one: the
        # rig reads a command's output from the guest's console log and, when it cannot find the echoed
        # command line there, keeps only the last 2000 characters, which cut a long cycle's list short
        # (soak run s3: "gap 218 from seq 0" where nothing was lost).
        rc, out = self.guest_run_twice(
            name, f"p=$(cat /tmp/{tag}.pid); kill -INT $p; wait $p 2>/dev/null || sleep 1; "
                  f"grep -oE 'seq=[0-9]+' /tmp/{tag}.ping | cut -d= -f2 | sort -n -u | awk 'NR==1{{s=$1}} "
                  f"NR>1&&$1!=q+1{{printf \"seqs=%d..%d \",s,q;s=$1}} {{q=$1}} END{{if(NR)printf \"seqs=%d..%d \",s,q}}'; "
                  f"grep -oE '[0-9]+ packets transmitted, [0-9]+ packets received' /tmp/{tag}.ping")
        if rc is None:
            return None
        return ping_stats(out)

    # -------------------------------------------------------------- the end
    def scan_faults(self):
        """Collects userland crash lines: dom0's (the rig's serial log: Xen console + dom0's kernel;
        every dom0 command's output except retried ones and reads of console logs; extra share files) and
        the guests' (their console logs, read in dom0 if it still answers). On a FAIL, dom0's are split
        into those at the failing step (after the last passing check, up to the failure) and the others."""
        rig = self.rig
        # a serial line counts where it ends, a command's output where the command returned
        found = [(p + len(l), l) for p, l in crash_lines_at(rig.buf)]
        for h in rig.history:
            if not h["handled"] and "/var/log/xen/console/" not in h["cmd"]:
                found += [(h["pos"], l) for l in crash_lines(h["out"])]
        for f in self.extra_files:
            try:
                with open(f, errors="replace") as fh:
                    found += [(len(rig.buf), l) for l in crash_lines(fh.read())]
            except OSError:
                pass
        guest = []
        if rig.proc is not None:
            try:
                rc, out = rig.run("cd /var/log/xen/console && for f in guest-*; do case $f in *aggdom*) continue;; "
                                  "esac; grep -aHE 'segfault at|general protection|traps:|Inconsistency detected by "
                                  "ld.so|died due to fatal signal' $f; done; true", timeout=30, quiet=True)
                rig.history[-1]["handled"] = True
                guest = crash_lines(out)
            except Exception:
                pass
        self.dom0_faults, self.earlier_faults = split_faults(found, failure_window(self.marks, self.fail_at))
        self.guest_faults = guest

    def aggdom_crash(self):
        if "Triple fault" in self.rig.buf:
            return "triple fault"
        return None

    def on_error(self, e):
        """A step could not go on (Fail or a rig timeout): dumps what explains it; returns the raw FAIL."""
        self.fail_at = len(self.rig.buf)
        final = f"FAIL {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        self.xen_debug_dump()
        self.aggdom_context()
        if "Triple fault" in self.rig.buf:
            m = re.search(r"Triple fault.*?\n((?:.*\n){12})", self.rig.buf)
            print("=== Xen on the triple fault:\n" + (m.group(0) if m else ""), flush=True)
        try:   # short timeouts: dom0 may be the one that stopped answering
            print("=== aggdom COM1 (tail):\n" + self.serial(timeout=30)[-3000:], flush=True)
            self.rig.run("xl list; xl dmesg | tail -30", timeout=30)
        except Exception:
            pass
        return final

    def shutdown_aggdom(self):
        """The last check of every rig script: `shutdown` typed on aggdom's PV console powers it off
        (SCHEDOP_shutdown), i.e. its domain goes within 60 s."""
        t0 = time.time()
        self.rig.run("id=$(xl domid aggdom) && printf 'shutdown\\n' > $(xenstore-read /local/domain/$id/console/tty)",
                     quiet=True)
        rc, out = self.rig.run("i=0; while xl domid aggdom >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 120 ] && exit 1; "
                               "sleep 0.5; done", timeout=180, quiet=True)
        self.tm["aggdom shutdown"] = time.time() - t0
        self.check("shutdown powers aggdom off (SCHEDOP_shutdown)", rc == 0)

    def guarded(self, body, what="test script"):
        """body(), whose return is the raw verdict; a step that cannot go on (Fail, a rig timeout) becomes
        on_error's FAIL, a bug in the script itself a FAIL that says so (not aggdom's). Closes the rig."""
        try:
            return body()
        except (Fail, RigError) as e:
            return self.on_error(e)
        except KeyboardInterrupt:
            return "FAIL interrupted"
        except Exception as e:
            traceback.print_exc()
            return f"FAIL {what} error: {type(e).__name__}: {e}"
        finally:
            self.close()

    def close(self):
        self.tm["total"] = time.time() - self.t_start
        try:
            self.scan_faults()
        finally:
            self.rig.close()

    def report(self, raw, extra_timings=None):
        """Prints RESULTS, the rig faults, TIMINGS and the final line; exits 0 on PASS."""
        print("RESULTS:")
        for name, ok, detail in self.results:
            print(f"  {'ok  ' if ok else 'FAIL'} {name}")
        if self.dom0_faults or self.guest_faults or self.retries or self.earlier_faults:
            print("RIG FAULTS (userland crashes in PV domains; not aggdom's):")
            for l in self.retries:
                print(f"  retried xl create  {l}")
            for l in self.earlier_faults:
                print(f"  dom0 (not at the failing step)  {l}")
            for l in self.dom0_faults:
                print(f"  dom0   {l}")
            for l in self.guest_faults:
                print(f"  guest  {l}")
        tm = dict(self.tm)
        items = [f"{k.replace(' ', '_')}={v:.1f}s" for k, v in tm.items()]
        items += [f"{k}={v}" for k, v in (extra_timings or {}).items()]
        items.append(f"xl_create_retries={len(self.retries)}")
        items.append(f"guest_image_md5_mismatches={self.image_mismatches}/{self.image_checks}")
        print("TIMINGS " + " ".join(items))
        final = classify(raw, self.dom0_faults, self.guest_faults, self.retries, self.aggdom_crash(),
                         len(self.earlier_faults))
        print(final, flush=True)
        sys.exit(0 if final.startswith("PASS") else 1)


def common_args(ap):
    ap.add_argument("--cache", default=os.environ.get("XEN_RIG_CACHE", "/tmp/xen-rig-cache"),
                    help="the rig's CACHE_DIR (setup.sh output)")
    ap.add_argument("--elf", default=ELF)
    ap.add_argument("--timeout", type=int, default=180, help="per-step timeout, seconds")
    ap.add_argument("--echo", action="store_true", help="copy the rig's serial console to stdout")
    ap.add_argument("--allow-other-rig", action="store_true",
                    help="start even if another Xen rig's QEMU runs on this host (2 cores: both would crawl)")
    return ap


def refuse_if_other_rig(a):
    """Two rigs on this 2-core host starve each other (every step times out): refuse to start."""
    others = other_rigs()
    if others and not a.allow_other_rig:
        print("another Xen rig is running on this host:\n  " + "\n  ".join(o[:200] for o in others))
        print("FAIL not started: another Xen rig is running (--allow-other-rig to start anyway)")
        sys.exit(1)
