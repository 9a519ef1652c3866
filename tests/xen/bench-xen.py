#!/usr/bin/env python3
"""make bench-xen: the same guests and the same traffic through aggdom and through a Linux driver domain.

One rig boot (../shared/xen-rig, Xen 4.17 + dom0 in QEMU, TCG), the network of make test-xen: QEMU hub 0
joins NIC0 + NIC1 (passed through to the driver domain) and NIC2 (dom0's eth0, 10.0.0.1). Two phases,
one after the other, each with two iperf3 guests (10.0.0.11, 10.0.0.12; ramdisk guest-iperf3.cpio.gz):

  aggdom  -- aggdom as the driver domain (tests/xen/aggdom.cfg), its NICs as uplinks, identity mode;
  linux   -- the rig's Linux PV driver domain bonding the same two NICs (Linux bonding, --bond, miimon 100)
             under a bridge at 10.0.0.2: the classic aggregating driver domain. --bond takes a list of
             modes: each gets a fresh driver domain until one carries guest 1's pings to dom0; the ones
             that did not are named, with why, above the table (and their bond/bridge view is printed).
  linux:MODE -- the same with bonding MODE; several give one column each (--phases aggdom,linux:balance-alb,
             linux:balance-tlb), each on a fresh driver domain.

Which bonding mode (see BOND_WHY): balance-alb, the classic aggregating mode; bench-4's failure was not
the mode but a bonding module that did not load (see drv_ramdisk). The rig's outside network is a QEMU hub
that repeats every frame to every other port; balance-alb/-tlb keep only the active NIC promiscuous, so
the bridge sees each frame once, while balance-rr/-xor (made for a trunking switch) would take dom0's
frames in twice and the bond's own frames back in on the other NIC.

In each phase, with dom0 running iperf3 servers (ports 5201, 5202):
  tcp g->d0, tcp d0->g   iperf3 TCP for --seconds, guest 1 to dom0 and back (-R);
  udp g->d0, udp d0->g   iperf3 UDP at --udp-rate offered, the receiver's rate and loss;
  tcp 2g->d0             both guests at once (guest 2 in the background), the sum;
  ping idle, ping load   guest 1 pings dom0 20 times, idle and while guest 2 sends TCP;
  rate 10M               guest 1's vif gets rate=10Mb/s@20ms (its backend `rate` key, as xl writes it,
                         written live) and sends TCP: the rate must hold within 5 %.
and for every row the driver domain's CPU seconds over it (`xl list`'s Time(s)), per GB carried; first,
its CPU over --seconds with the guests up and no traffic (what it burns idle).

Prints one table (markdown) per run, both driver domains side by side; never fails on a number: it
fails only when a phase cannot be set up or a measurement gives no answer (then FAIL <why>).

Where aggdom's time goes (issue 10): around aggdom's tcp d0->g row the bench types `profile reset` and then
`profile` on aggdom's console, and prints the reply after the table under `PROFILE tcp d0->g` (busy vs asleep,
each main-loop phase, each hypercall kind; README, console commands), with per-frame figures from guest 1's vif
counters (`xen` before and after): busy time and cycles, hypercalls, grant copies and notifies per frame. A
missing or garbled reply prints "profile unavailable" and never fails the bench.
"""
import argparse, os, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xentest import (DOM0_IP, HERE, PROFILE_FIRST, PROFILE_ZEROED, XenTest, Fail, common_args,  # noqa: E402
                     crash_lines, output_after, parse_iperf, parse_ping, parse_profile, parse_xen,
                     profile_per_frame, refuse_if_other_rig)

ap = common_args(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
ap.add_argument("--seconds", type=int, default=10, help="each iperf3 run's length")
ap.add_argument("--udp-rate", default="100M", help="UDP offered rate (iperf3 -b)")
ap.add_argument("--phases", default="aggdom,linux",
                help="which driver domains, in order: aggdom (first), linux (bonding --bond), linux:MODE "
                     "(bonding MODE; several give one column each, e.g. aggdom,linux:balance-alb,linux:balance-tlb)")
ap.add_argument("--bond", default="balance-alb",
                help="the Linux driver domain's bonding mode, or modes (comma list) to try in order: "
                     "the first whose guests can ping dom0 is measured")
a = ap.parse_args()
refuse_if_other_rig(a)

GUESTS = [("guest1", "10.0.0.11", "00:16:3e:00:00:11"), ("guest2", "10.0.0.12", "00:16:3e:00:00:12")]
RATE_MBIT, RATE_WINDOW_MS = 10, 20
DRV_IP = "10.0.0.2/24"          # the Linux driver domain's bridge: aggdom's own IP, so the guests see the same net
BOND_WHY = ("balance-alb spreads the guests' transmit over both NICs by load; their receive comes in on the "
            "active NIC (its receive balancing rewrites only the driver domain's own ARP replies, not bridged "
            "ones), as in balance-tlb. Neither needs switch support, and only the active NIC is promiscuous, so "
            "on the rig's QEMU hub (every frame repeated to every other port) the bridge sees each frame once. "
            "Not used: balance-rr and balance-xor (they want a trunking switch; on the hub both NICs would be "
            "promiscuous, dom0's frames would reach the bridge twice and the bond's own frames come back on the "
            "other NIC), active-backup (does not aggregate)")

class Bench:
    def __init__(self, t):
        self.t, self.rig = t, t.rig
        self.rows = {}          # (row, phase) -> cell text
        self.cpu = {}           # phase -> (cpu seconds, bytes) over the iperf rows
        self.last_cpu, self.last_bytes = None, 0   # the last iperf row's driver-domain CPU s and bytes
        self.profiles = []      # PROFILE blocks, printed after the table

    def cpu_seconds(self, dom):
        rc, out = self.rig.run(f"xl list {dom} | awk 'NR==2{{print $6}}'", quiet=True)
        try:
            return float(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None

    def guest(self, name, cmd, timeout):
        """A guest command's own output (output_after a tag it echoes first). The timeouts are generous:
        under load the rig's waits count their own polls, which slow down with dom0."""
        self.n = getattr(self, "n", 0) + 1
        rc, out = self.t.guest_run_twice(name, f"echo BENCH-$((0+{self.n})); {cmd}", timeout=timeout + 120)
        return output_after(out or "", f"BENCH-{self.n}")

    def iperf(self, phase, dom, row, name, args, port=5201):
        c0 = self.cpu_seconds(dom)
        out = self.guest(name, f"iperf3 -c {DOM0_IP} -p {port} -t {a.seconds} -f m {args} 2>&1 | tail -5",
                         timeout=a.seconds * 4 + 90)
        c1 = self.cpu_seconds(dom)
        r = parse_iperf(out)
        if r is None:
            self.t.say(f"{phase} {row}: no iperf3 summary: {out.strip()[-300:]}")
            self.rows[(row, phase)] = "no answer"
            return None
        mbit, nbytes, loss = r
        cpu = (c1 - c0) if c0 is not None and c1 is not None else None
        self.account(phase, cpu, nbytes)
        cell = f"{mbit:.1f} Mbit/s" + (f", {loss:.1f} % lost" if loss is not None else "")
        if cpu is not None and nbytes:
            cell += f", {cpu / (nbytes / 1e9):.0f} CPU s/GB"
        self.rows[(row, phase)] = cell
        self.t.say(f"{phase} {row}: {cell} (cpu {cpu} s, {nbytes / 1e6:.1f} MB)")
        self.last_cpu, self.last_bytes = cpu, nbytes
        return mbit

    def xen_reply(self):
        return parse_xen(self.t.aggdom_cmd("xen", r"grants copy_ops", 60) or "")

    def profile_begin(self):
        """Before an aggdom row: its `xen` counters, then `profile reset`. Never raises: what went wrong is kept
        for profile_end to print."""
        try:
            x0 = self.xen_reply()
            if self.t.aggdom_cmd("profile reset", PROFILE_ZEROED, 30) is None:
                return {"why": "no reply to `profile reset`"}
            return {"xen": x0}
        except Exception as e:      # noqa: BLE001 -- a profile never fails the bench
            return {"why": f"before the row: {type(e).__name__}: {e}"}

    def profile_end(self, row, begin):
        """After the row: aggdom's `profile` and `xen`; the PROFILE block (the reply's lines, then per-frame
        figures from guest 1's vif) kept for after the table, or "profile unavailable (why)"."""
        head = f"PROFILE {row} (aggdom's `profile`, from `profile reset` just before the iperf3 run to just after it)"
        try:
            if "why" in begin:
                raise ValueError(begin["why"])
            prof = parse_profile(self.t.aggdom_cmd("profile", PROFILE_FIRST, 60) or "")
            if prof is None:
                raise ValueError("no reply to `profile`, or one cut short or garbled")
            lines = list(prof["lines"])
            x0, x1 = begin["xen"] or {}, self.xen_reply() or {}
            key = (self.feids[0], 0)
            v0, v1 = x0.get("vifs", {}).get(key), x1.get("vifs", {}).get(key)
            per = None
            if v0 and v1:
                rx, tx = v1["rx_frames"] - v0["rx_frames"], v1["tx_frames"] - v0["tx_frames"]
                g0, g1 = x0.get("grants"), x1.get("grants")
                copies = g1["copy_ops"] - g0["copy_ops"] if g0 and g1 else None
                if rx >= 0 and tx >= 0:
                    per = profile_per_frame(prof, rx, tx, copies)
            lines.append(per or "per frame: unavailable (guest 1's vif counters not read before and after, or reset between)")
            text = head + "\n" + "\n".join(lines)
        except Exception as e:      # noqa: BLE001 -- a profile never fails the bench
            why = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            text = f"{head}\nprofile unavailable ({why})"
        self.t.say(text.splitlines()[-1])
        self.profiles.append(text)

    def account(self, phase, cpu, nbytes):
        c, b = self.cpu.get(phase, (0.0, 0.0))
        self.cpu[phase] = (c + (cpu or 0.0), b + nbytes)

    def ping(self, phase, row, name, count=20):
        out = self.guest(name, f"ping -c {count} -i 0.2 -W 2 {DOM0_IP} | tail -3", timeout=count + 90)
        p = parse_ping(out)
        if p is None:
            self.rows[(row, phase)] = "no answer"
            return
        rx, tx, avg, mx = p
        self.rows[(row, phase)] = (f"{avg:.2f} ms avg, {mx:.2f} max, {rx}/{tx}" if avg is not None
                                   else f"{rx}/{tx} replies")
        self.t.say(f"{phase} {row}: {self.rows[(row, phase)]}")

    def run_phase(self, phase, dom, backend_path):
        """The measurements, with the guests up behind `dom` (whose backend dir is backend_path(feid))."""
        s = a.seconds
        # what the driver domain burns with nothing to carry: the floor under every row's CPU s/GB
        c0, t0 = self.cpu_seconds(dom), time.time()
        time.sleep(s)
        c1, t1 = self.cpu_seconds(dom), time.time()
        if c0 is not None and c1 is not None:
            self.rows[("CPU idle (guests up, no traffic)", phase)] = (
                f"{c1 - c0:.1f} s in {t1 - t0:.0f} s ({(c1 - c0) / (t1 - t0) * 100:.0f} % of a vCPU)")
            self.t.say(f"{phase} idle: {self.rows[('CPU idle (guests up, no traffic)', phase)]}")
        self.iperf(phase, dom, "tcp g->d0", "guest1", "")
        prof = self.profile_begin() if phase == "aggdom" else None
        self.iperf(phase, dom, "tcp d0->g", "guest1", "-R")
        if prof is not None:
            self.profile_end("tcp d0->g", prof)
        self.iperf(phase, dom, "udp g->d0", "guest1", f"-u -b {a.udp_rate}")
        self.iperf(phase, dom, "udp d0->g", "guest1", f"-u -b {a.udp_rate} -R")
        # both guests at once: guest 2 in the background, to the second server
        self.guest("guest2", f"iperf3 -c {DOM0_IP} -p 5202 -t {s} -f m > /tmp/ip2.out 2>&1 & echo started", 60)
        m1 = self.iperf(phase, dom, "tcp 2g->d0 (guest 1)", "guest1", "")
        out2 = self.guest("guest2", "sleep 3; tail -5 /tmp/ip2.out", 60)
        r2 = parse_iperf(out2)
        if r2:
            self.account(phase, None, r2[1])
        # the driver domain's CPU over guest 1's run carried guest 2's bytes too: per GB, the sum is the
        # honest figure (guest 1's cell divides by its own bytes only)
        cell = "no answer"
        if r2 and m1 is not None:
            cell = f"{m1 + r2[0]:.1f} Mbit/s"
            if self.last_cpu is not None:
                cell += f", {self.last_cpu / ((self.last_bytes + r2[1]) / 1e9):.0f} CPU s/GB"
        self.rows[("tcp 2g->d0 (sum)", phase)] = cell
        self.ping(phase, "ping idle", "guest1")
        self.guest("guest2", f"iperf3 -c {DOM0_IP} -p 5202 -t {s + 5} -f m > /tmp/ip2.out 2>&1 & echo started", 60)
        self.ping(phase, "ping under load", "guest1", count=min(20, s * 4))
        self.guest("guest2", "sleep 6; true", 60)
        # rate: Linux netback's `bytes,usec` credit, written live as xl would at create
        be = backend_path(self.feids[0])
        nbytes = RATE_MBIT * 1_000_000 // 8 * RATE_WINDOW_MS // 1000
        self.rig.run(f"xenstore-write {be}/rate {nbytes},{RATE_WINDOW_MS * 1000}", quiet=True)
        time.sleep(1)
        m = self.iperf(phase, dom, f"tcp g->d0, rate {RATE_MBIT}M", "guest1", "")
        if m is not None:
            self.rows[(f"tcp g->d0, rate {RATE_MBIT}M", phase)] += f" ({(m / RATE_MBIT - 1) * 100:+.0f} % of the rate)"
        self.rig.run(f"xenstore-rm {be}/rate", quiet=True)
        c, b = self.cpu.get(phase, (0.0, 0.0))
        self.rows[("CPU s per GB, all iperf rows", phase)] = f"{c / (b / 1e9):.0f} ({c:.1f} s, {b / 1e9:.2f} GB)" if b else "-"

    def start_guests(self, backend, vif_extra=""):
        """Each guest up and pinging dom0 before the next is created: a driver domain that cannot carry
        guest 1's pings costs one guest, not two."""
        self.feids = []
        for n, ip, mac in GUESTS:
            for attempt in (1, 2):
                feid = self.t.start_guest(n, ip, mac, backend=backend, vif_extra=vif_extra)
                ok, out = self.t.ping_from(n, DOM0_IP)
                crash = self.guest_crash(n)
                if ok or not crash:
                    break
                # benchB-1: guest 1's busybox init segfaulted right after GUEST-NET (the rig's PV userland
                # faults), its kernel panicked and every ping went unanswered: not the driver domain's doing
                self.t.retries.append(f"{n}: {crash}")
                self.t.say(f"*** {n} crashed (rig: {crash}); destroying it and creating it once more")
                self.rig.run(f"xl destroy {n} 2>&1", timeout=120)
                self.t._wait_gone([f"/local/domain/{feid}"])
            self.feids.append(feid)
            if not ok:
                raise Fail(f"{n} cannot ping dom0 through {backend}" + (f" ({n} crashed twice: rig)" if crash else "")
                           + f": {out}")

    def guest_crash(self, name):
        """The first line of a userland crash or kernel panic on the guest's console, or None."""
        text = self.rig.console(name)
        lines = crash_lines(text) + [l.strip() for l in text.splitlines() if "Kernel panic" in l]
        return lines[0] if lines else None

    def stop_guests(self):
        for n, _, _ in GUESTS:
            self.rig.run(f"xl destroy {n} 2>&1", timeout=120)
        for i in getattr(self, "feids", []):
            self.t._wait_gone([f"/local/domain/{i}"])

    def table(self, phases):
        order = []
        for (row, _) in self.rows:
            if row not in order:
                order.append(row)
        lines = ["| " + " | ".join(["row"] + phases) + " |", "|" + "---|" * (len(phases) + 1)]
        for row in order:
            lines.append("| " + " | ".join([row] + [self.rows.get((row, p), "-") for p in phases]) + " |")
        return "\n".join(lines)


with open(os.path.join(HERE, "guest.cfg")) as f:
    text = f.read()
iperf_cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
iperf_cfg.write(re.sub(r"^ramdisk\s*=.*$", 'ramdisk = "/share/guest-iperf3.cpio.gz"', text, flags=re.M))
iperf_cfg.close()

t = XenTest(a, guest_cfg=iperf_cfg.name)
rig = t.rig
b = Bench(t)
phases = [p for p in a.phases.split(",") if p]
IPERF_SERVERS = "iperf3 -s -D -p 5201; iperf3 -s -D -p 5202; sleep 1; pidof iperf3"


DRV_RAMDISK = None
bond_used, bond_failed = [], []     # the measured bonding modes; the ones tried and not carried, with why
columns = []                        # the table's columns: aggdom, linux <mode>, in the order run


DRV_VIEW = ("lsmod | grep -e bond -e tls; cat /proc/net/bonding/bond0; cat /sys/class/net/bond0/bonding/all_slaves_active; bridge link; "
            "bridge fdb show br xenbr0 | grep -v permanent | head -20; ip neigh; ip -br link; "
            "for d in eth0 eth1 bond0; do ip -s link show $d; done")


def drv_ramdisk():
    """The rig's drvdom.cpio.gz, with tls.ko and a fresh modules.dep appended as a second cpio archive (the
    kernel unpacks concatenated cpio archives in order, later files win) when the image lacks it:
    its bonding.ko needs tls_validate_xmit_skb from tls.ko, so `modprobe bonding` failed ("Unknown symbol"),
    no bond0 existed and the driver domain's NICs were never bridged (bench-4, benchB-1: the guests reached
    nothing). Returns the ramdisk's dom0 path. Rig images with tls.ko are used as they are."""
    img = os.path.join(a.cache, "images", "drvdom.cpio.gz")
    d = tempfile.mkdtemp(prefix="bench-drv-")
    try:
        subprocess.run(f"zcat {img} | cpio -id --quiet 'usr/lib/modules/*'", shell=True, cwd=d, check=True)
        kv = os.listdir(os.path.join(d, "usr/lib/modules"))[0]
        m = f"usr/lib/modules/{kv}"
        if os.path.exists(os.path.join(d, m, "kernel/net/tls")):
            return "/share/drvdom.cpio.gz"
        os.makedirs(os.path.join(d, m, "kernel/net/tls"))
        shutil.copy(os.path.join(a.cache, "pkgs/lib/modules", kv, "kernel/net/tls/tls.ko"),
                    os.path.join(d, m, "kernel/net/tls"))
        subprocess.run(["depmod", "-b", os.path.join(d, "usr"), kv], check=True)
        names = [f"{m}/kernel/net", f"{m}/kernel/net/tls", f"{m}/kernel/net/tls/tls.ko"] + sorted(
            f"{m}/{f}" for f in os.listdir(os.path.join(d, m)) if f.startswith("modules."))
        overlay = subprocess.run("cpio -o -H newc --quiet", shell=True, cwd=d, check=True,
                                 input="\n".join(names).encode(), stdout=subprocess.PIPE).stdout
        with open(os.path.join(d, "overlay.cpio"), "wb") as f:
            f.write(overlay)
        # one gzip stream, as the stock image: dom0's libxenguest gunzips a PV ramdisk itself and says
        # "xc_dom_do_gunzip: inflate failed" on two concatenated gzip members (benchB-2)
        subprocess.run(f"(zcat {img}; cat overlay.cpio) | nice -n 10 gzip -1 > {os.path.join(rig.share, 'drvdom-bench.cpio.gz')}",
                       shell=True, cwd=d, check=True)
        t.say(f"drv ramdisk: the rig's drvdom.cpio.gz has no tls.ko (bonding.ko needs it): appended tls.ko and "
              f"depmod's modules.* ({len(overlay)} bytes of cpio) -> /share/drvdom-bench.cpio.gz")
        return "/share/drvdom-bench.cpio.gz"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def linux_mode(mode):
    """A fresh Linux driver domain bonding NIC0+NIC1 in `mode`, guests behind it: None after the phase's
    measurements, else why its guests could not ping dom0 (the driver domain then destroyed with them)."""
    # dom0 still maps the guests' IPs to the MACs they had behind the last driver domain (bench-3: the
    # first pings through the Linux driver domain went to a MAC now on one of its bond's NICs, taken
    # locally, not bridged)
    rig.run("ip neigh flush dev eth0", quiet=True)
    # a driver domain created again under the same name gets a fresh console log: its READY line must
    # not be the last one's
    rig.run("f=/var/log/xen/console/guest-drv.log; [ ! -e $f ] || mv $f $f.$(date +%s%N)", quiet=True)
    pci = "[ " + ", ".join(f'"{n.bdf}"' for n in rig.nics[:2]) + " ]"
    global DRV_RAMDISK
    DRV_RAMDISK = DRV_RAMDISK or drv_ramdisk()
    drv = ['name="drv"', 'type="pv"', 'kernel="/share/vmlinuz"', f'ramdisk="{DRV_RAMDISK}"',
           f'extra="console=hvc0 xenrole=driver xenrig.brip={DRV_IP} xenrig.bond={mode}"',
           'memory=640', 'vcpus=1', 'driver_domain=1', 'on_crash="preserve"', f"pci={pci}"]
    cfg = rig.write_cfg("drv", "\n".join(drv))
    rc, out, secs = rig.xl_create(cfg, check=False, timeout=400)
    if rc:
        raise Fail(f"xl create drv ({mode}) rc={rc}")
    if rig.wait_console("drv", "XEN-DRIVERDOM-READY", 300) is None:
        print("=== drv console:\n" + rig.console("drv")[-2000:], flush=True)
        raise Fail(f"the Linux driver domain ({mode}) did not get ready")
    con = rig.console("drv")
    bonded = [l.strip() for l in con.splitlines() if "bonded" in l or "bridged" in l]
    t.say(f"drv up, bonding {mode}: " + " | ".join(bonded))
    drvid = rig.domid("drv")
    if not any("bridged bond0" in l for l in bonded):
        print("=== drv console (init):\n" + "\n".join(l for l in con.splitlines()[-80:] if "libxl" not in l),
              flush=True)
        raise Fail(f"the Linux driver domain did not bridge a bond0 in {mode} (its init's lines above)")
    try:
        b.start_guests("drv", ",bridge=xenbr0")
    except Fail as e:
        # bench-4: guests connected through it but no ping passed; keep the driver domain's view, and
        # dom0's (which MAC it answers, what reached its NIC)
        print(f"=== drv ({mode}): bond, bridge, neighbours:\n" + str(rig.guest_run("drv", DRV_VIEW, timeout=90)),
              flush=True)
        print("=== dom0:\n" + rig.run("ip neigh show dev eth0; ip -s link show eth0", quiet=True)[1], flush=True)
        b.stop_guests()
        rig.run("xl destroy drv 2>&1", timeout=120)
        t._wait_gone([f"/local/domain/{drvid}"])
        return str(e)
    bond_used.append(mode)
    label = f"linux {mode}"
    columns.append(label)
    b.run_phase(label, "drv", lambda fe: f"/local/domain/{drvid}/backend/vif/{fe}/0")
    print(f"=== drv ({mode}) after the Linux phase:\n" + str(rig.guest_run("drv", DRV_VIEW, timeout=90)),
          flush=True)
    b.stop_guests()
    # the NICs go back to pciback for the next phase's driver domain
    rig.run("xl destroy drv 2>&1", timeout=120)
    t._wait_gone([f"/local/domain/{drvid}"])
    return None


def body():
    rig_up = False
    for phase in phases:
        if phase == "aggdom":
            if rig_up:
                raise Fail("aggdom must be the first phase")
            columns.append("aggdom")
            t.boot_aggdom("")
            rig_up = True
            rig.run(IPERF_SERVERS, check=True)
            b.start_guests("aggdom")
            b.run_phase("aggdom", "aggdom", lambda fe: f"/local/domain/{t.aggid}/backend/vif/{fe}/0")
            log = t.aggdom_cmd("xen", r"grants copy_ops", 60)
            print("=== aggdom `xen` after the aggdom phase:\n" + (log or "")[-3000:], flush=True)
            # Did guest 1 send GSO super-frames (feature-gso-tcpv4 negotiated) and get them cut up?
            v = (parse_xen(log or "") or {}).get("vifs", {}).get((b.feids[0], 0), {})
            o = v.get("offload")
            b.rows[("guest 1 GSO frames sent / segments cut", "aggdom")] = (
                f"{o['tx_gso']} / {o['tx_segments']}" if o else "not shown by this build")
            # And did its segments from dom0 reach it coalesced (rx_gso super-frames holding rx_coalesced more)?
            b.rows[("guest 1 super-frames received / segments joined", "aggdom")] = (
                f"{o['rx_gso']} / {o['rx_coalesced']}" if o else "not shown by this build")
            b.stop_guests()
            rig.run("xl destroy aggdom", timeout=120)
        elif phase == "linux" or phase.startswith("linux:"):
            if not rig_up:
                t.start_rig()
                rig_up = True
                rig.run(IPERF_SERVERS, check=True)
            modes = [m for m in (phase[6:] if ":" in phase else a.bond).split(",") if m]
            for i, mode in enumerate(modes):
                why = linux_mode(mode)
                if why is None:
                    break
                bond_failed.append(f"{mode}: {why}")
                if i == len(modes) - 1:
                    raise Fail(f"no bonding mode of {modes} carried the guests' pings")
                t.say(f"bonding {mode} did not carry the guests: {why}; next: {modes[i + 1]}")
        else:
            raise Fail(f"unknown phase {phase}")
    return "PASS"


def _stop(signum, frame):
    raise KeyboardInterrupt


# Stopped by hand (kill -TERM, or -INT, which a shell's background job ignores): guarded's "FAIL interrupted",
# the rig closed and the rows measured so far still printed (benchB-1 died with its QEMU left running).
signal.signal(signal.SIGTERM, _stop)
signal.signal(signal.SIGINT, _stop)
final = t.guarded(body, "bench script")
os.unlink(iperf_cfg.name)
print(f"BENCH-XEN {time.strftime('%Y-%m-%d')} ({a.seconds} s per iperf3 run, UDP offered {a.udp_rate}bit/s)")
if any(p.startswith("linux") for p in phases):
    print(f"Linux driver domain: bonding {', '.join(bond_used) or 'none measured'} (NIC0+NIC1, miimon 100, "
          f"under a bridge). Why: {BOND_WHY}.")
    for f in bond_failed:
        print(f"  tried in this run, not measured: {f}")
print(b.table(columns))
for text in b.profiles:
    print(text)
print(final, flush=True)
sys.exit(0 if final == "PASS" else 1)
