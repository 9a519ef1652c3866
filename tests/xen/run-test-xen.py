#!/usr/bin/env python3
"""make test-xen: aggdom as a real Xen 4.17 network driver domain, end to end.

Boots the shared rig (../shared/xen-rig: Xen + a Linux dom0 inside QEMU, TCG), passes two emulated
e1000s through to aggdom (an HVM driver domain, direct kernel boot of aggdom32), starts busybox guests
whose vif has backend=aggdom, and checks:

  1. aggdom boots under Xen: platform up (domid, xenstore), netback serving, its config read from xenstore;
  2. guest 1's vif reaches Connected (state 4) on both sides;
  3. guest 1 pings dom0 (10.0.0.1) on the outside network: guest -> netback -> datapath -> an uplink
     (passed-through e1000) -> QEMU hub -> dom0's e1000, and back;
  4. aggdom's counters (console command `xen`, through the PV console) show the vif's frames;
  5. a second guest connects and pings too;
  6. guest 2 reaches guest 1 (switched inside aggdom);
  7. a run-time change of bind= in xenstore is applied, and the datapath's `stats` count uplink frames;
  8. destroying guest 2 detaches its vif and unmaps its rings; a guest 3 with guest 2's MAC and IP
     connects (ring frames reused) and pings; `shutdown` on the console powers aggdom off.

Network (QEMU hub 0): NIC0 + NIC1 (0000:00:03.0, 00:04.0, aggdom's uplinks) and NIC2 (dom0's eth0,
10.0.0.1/24). aggdom's own IP is 10.0.0.2, guests 10.0.0.11 and 10.0.0.12.

Prints one line per check and, at the end, TIMINGS and PASS or FAIL <why> (exit 0 / 1).
"""
import argparse, os, re, shlex, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RIG_DIR = os.environ.get("XEN_RIG", os.path.abspath(os.path.join(ROOT, "..", "shared", "xen-rig")))
sys.path.insert(0, RIG_DIR)
from xenrig import Rig, Nic, RigError  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--cache", default=os.environ.get("XEN_RIG_CACHE", "/tmp/xen-rig-cache"),
                help="the rig's CACHE_DIR (setup.sh output)")
ap.add_argument("--elf", default=os.path.join(ROOT, "target/x86_64-unknown-none/release/aggdom32"))
ap.add_argument("--timeout", type=int, default=180, help="per-step timeout, seconds")
ap.add_argument("--guests", type=int, default=2, choices=(1, 2))
ap.add_argument("--echo", action="store_true", help="copy the rig's serial console to stdout")
a = ap.parse_args()

DOM0_IP, AGG_IP = "10.0.0.1", "10.0.0.2"
GUESTS = [("guest1", "10.0.0.11", "00:16:3e:00:00:11"), ("guest2", "10.0.0.12", "00:16:3e:00:00:12")]
SERIAL = "/var/log/xen/console/aggdom-serial.log"
PVCON = "/var/log/xen/console/guest-aggdom.log"

tm, results = {}, []


class Fail(Exception):
    pass


def check(name, ok, detail=""):
    results.append((name, ok, detail))
    rig.say(f"CHECK {'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""))
    return ok


def cfg_text(path, **subst):
    text = open(path).read()
    for k, v in subst.items():
        text = re.sub(rf"^{k}\s*=.*$", f"{k} = {v}", text, flags=re.M)
    return text


def serial():
    return rig.run(f"cat {SERIAL}", quiet=True)[1]


def wait_serial(regex, timeout):
    t = rig.wait_file(SERIAL, regex, timeout)
    if t is None:
        print("=== aggdom COM1 (tail):\n" + serial()[-3000:], flush=True)
    return t


def aggdom_cmd(cmd, expect, timeout=60):
    """Types a command on aggdom's PV console (its console/tty pty, as `xl console -t pv` does) and
    returns the PV console log once one more line than before matches `expect` (None on timeout)."""
    q = shlex.quote(expect)
    rc, out = rig.run(f"n=$(grep -caE {q} {PVCON}); id=$(xl domid aggdom) && "
                      f"tty=$(xenstore-read /local/domain/$id/console/tty) && "
                      f"printf '%s\\n' {shlex.quote(cmd)} > $tty && i=0 && "
                      f"while [ $(grep -caE {q} {PVCON}) -le $n ]; do i=$((i+1)); [ $i -gt {timeout * 2} ] && exit 9; "
                      f"sleep 0.5; done", timeout=timeout + 60, quiet=True)
    if rc:
        rig.say(f"no reply to '{cmd}' on aggdom's PV console (rc={rc}) {out.strip()}")
        return None
    time.sleep(1)                                       # the rest of the reply
    return rig.run(f"cat {PVCON}", quiet=True)[1].replace("\r", "")


def vif_counters(log, fe):
    """The last `xen` output's counters for vif <fe>/0."""
    m = None
    for m in re.finditer(rf"vif {fe}/0 state (\d+) (\w+) guest (\S+).*\n\s+tx_frames (\d+) tx_bytes (\d+) "
                         rf"rx_frames (\d+) rx_bytes (\d+) tx_drops (\d+) rx_drops (\d+)", log):
        pass
    if not m:
        return None
    keys = ["state", "conn", "guest", "tx_frames", "tx_bytes", "rx_frames", "rx_bytes", "tx_drops", "rx_drops"]
    return dict(zip(keys, m.groups()))


def xen_debug_dump():
    """Xen's own view when dom0 stops answering: Ctrl-A x3 moves the serial input to Xen, then debug keys
    q (domains, vCPUs, event channels) and r (run queues); Ctrl-A x3 again gives the input back."""
    try:
        start = len(rig.buf)
        rig.send("\x01\x01\x01")
        time.sleep(0.5)
        for key in "qr":
            rig.send(key)
            time.sleep(2)
        rig.send("\x01\x01\x01")
        end = time.time() + 8
        while time.time() < end:
            rig._pump(0.5)
        print("=== Xen debug keys q, r:\n" + rig.buf[start:][-12000:], flush=True)
    except Exception as e:
        print(f"(Xen debug dump failed: {e})", flush=True)


def start_guest(name, ip, mac, aggid):
    text = cfg_text(os.path.join(HERE, "guest.cfg"), name=f'"{name}"', extra=f'"console=hvc0 ip={ip}"',
                    vif=f"[ \"backend=aggdom,mac={mac},ip={ip}\" ]")
    t = time.time()
    rc, out, secs = rig.xl_create(text, name=name, check=False, timeout=400)
    if rc:
        raise Fail(f"xl create {name} rc={rc}: {out.strip().splitlines()[-1] if out.strip() else ''}")
    tm[f"xl create {name}"] = secs
    feid = rig.domid(name)
    be = f"/local/domain/{aggid}/backend/vif/{feid}/0"
    fep = f"/local/domain/{feid}/device/vif/0"
    ok, v, secs = rig.wait_xs({"backend": be + "/state", "hotplug": be + "/hotplug-status",
                               "frontend": fep + "/state"},
                              lambda v: v["backend"] == "4" and v["frontend"] == "4", timeout=a.timeout,
                              label=f"{name}'s vif Connected on both sides")
    tm[f"{name} vif connected"] = secs
    if not check(f"{name} vif Connected (backend and frontend state 4)", ok, f"{v} after {secs:.1f}s"):
        rig.run(f"xenstore-ls -f {be}; xenstore-ls -f {fep}")
        raise Fail(f"{name}'s vif did not connect: {v}")
    w = rig.wait_console(name, "GUEST-NET", a.timeout)
    if w is None:
        print(f"=== {name} console:\n" + rig.console(name)[-1500:], flush=True)
        raise Fail(f"{name} did not configure eth0")
    tm[f"{name} up"] = time.time() - t
    return feid


def ping_from(name, ip, tries=4):
    t = time.time()
    for i in range(tries):
        rc, out = rig.guest_run(name, f"ping -c 3 -W 3 {ip}", timeout=90)
        if rc == 0:
            tm[f"ping {name}->{ip}"] = time.time() - t
            return True, out.strip().splitlines()[-2:] if out.strip() else ""
        rig.say(f"{name}: ping {ip} attempt {i + 1} rc={rc}")
    return False, out[-400:] if out else ""


rig = Rig(a.cache, nics=[Nic("e1000", hub=0), Nic("e1000", hub=0), Nic("e1000", hub=0, dom0=True)], echo=a.echo)
t_start = time.time()
final = None
try:
    if not os.path.exists(a.elf):
        raise Fail(f"{a.elf} missing: run make build")
    rig.start()
    rig.wait_dom0()
    tm["dom0 ready"] = rig.t()
    for n in rig.nics[:2]:
        rig.assignable(n.bdf)
    rc, _ = rig.run(f"modprobe e1000; i=0; until [ -e /sys/class/net/eth0 ]; do i=$((i+1)); [ $i -gt 60 ] && break; "
                    f"sleep 0.5; done; ip link set eth0 up && ip addr add {DOM0_IP}/24 dev eth0; ip -br addr show eth0")
    if rc:
        raise Fail("dom0 eth0 (NIC2) did not come up")

    # aggdom: created paused so its xenstore config is there before it boots.
    kpath = rig.add_file(a.elf, "aggdom32")
    pci = "[ " + ", ".join(f'"{n.bdf}"' for n in rig.nics[:2]) + " ]"
    text = cfg_text(os.path.join(HERE, "aggdom.cfg"), kernel=f'"{kpath}"', pci=pci)
    cfg = rig.write_cfg("aggdom", text)
    t = time.time()
    rc, out = rig.run(f"xl create -p {cfg}", timeout=400)
    if rc:
        raise Fail(f"xl create aggdom rc={rc}: {out.strip().splitlines()[-1] if out.strip() else ''}")
    tm["xl create aggdom"] = time.time() - t
    aggid = rig.domid("aggdom")
    config = f"bind={GUESTS[0][1]}:0 bind={GUESTS[1][1]}:1"
    rig.run(f"xenstore-write /local/domain/{aggid}/aggdom/config {shlex.quote(config)} && xl unpause aggdom",
            check=True)
    t = time.time()
    w = wait_serial("aggdom ready", a.timeout)
    if not check("aggdom boots under Xen", w is not None, f"'aggdom ready' {w}s after unpause"):
        raise Fail("aggdom did not boot")
    tm["aggdom ready after unpause"] = time.time() - t
    log = serial()
    print("=== aggdom COM1 (boot):\n" + log[-2500:], flush=True)
    check("platform up (xenstore, domid)", f"xen: domid {aggid}" in log,
          (re.search(r"xen: domid.*", log) or re.search(r"xen: .*", log) or [""])[0])
    check("config read from xenstore", config in log)
    if not check("netback serving", "xen: netback serving" in log):
        raise Fail("netback did not start")
    check("PV console attached", "PV console attached" in log)

    feids = []
    for name, ip, mac in GUESTS[:a.guests]:
        feid = start_guest(name, ip, mac, aggid)
        feids.append(feid)
        w = wait_serial(rf"vif {feid}/0 attached as guest", 30)
        check(f"{name} vif attached to the datapath", w is not None)
        ok, out = ping_from(name, DOM0_IP)
        check(f"{name} pings dom0 {DOM0_IP} through aggdom's uplinks", ok, str(out))
        log = aggdom_cmd("xen", rf"vif {feid}/0 state ", 60)
        c = vif_counters(log, feid) if log else None
        rig.say(f"aggdom xen: vif {feid}/0 {c}")
        check(f"aggdom counters show {name}'s frames",
              bool(c) and int(c["tx_frames"]) > 0 and int(c["rx_frames"]) > 0, str(c))

    if a.guests == 2:
        ok, out = ping_from(GUESTS[1][0], GUESTS[0][1], tries=2)
        check("guest2 pings guest1 (switched inside aggdom)", ok, str(out))

    # Run-time rebinding through xenstore.
    new = f"bind={GUESTS[0][1]}:1 bind={GUESTS[1][1]}:0"
    rig.run(f"xenstore-write /local/domain/{aggid}/aggdom/config {shlex.quote(new)}", check=True)
    w = wait_serial(rf"bind {re.escape(GUESTS[0][1])} applied", 60)
    check("run-time bind= change from xenstore applied", w is not None)
    if a.guests >= 1:
        ok, out = ping_from(GUESTS[0][0], DOM0_IP, tries=2)
        check("guest1 still pings after the rebind", ok, str(out))

    # The datapath's own view: the vifs are guests, their frames left on the uplinks.
    log = aggdom_cmd("stats", r"^guest +name", 60)
    if log:
        print("=== aggdom PV console (tail):\n" + log[-3500:], flush=True)
        stats = log[log.rfind("uplink kind"):]
        up_tx = sum(int(m.group(1)) for m in re.finditer(
            r"^\d+\s+\S+\s+[0-9a-f:]{17}\s+(?:up|down)\s+\S*\s+(\d+)", stats, re.M))
        names = [f"vif{f}.0" for f in feids]
        check("datapath stats list the vifs as guests and count uplink frames",
              all(n in stats for n in names) and up_tx > 0, f"uplink tx_frames total {up_tx}, guests {names}")
    else:
        check("datapath stats readable on the PV console", False)
    # A vif going away detaches its guest; shutdown powers the domain off.
    if a.guests == 2:
        rig.run("xl destroy guest2", timeout=120)
        w = wait_serial(rf"vif {feids[1]}/0 detached", 60)
        check("guest2 destroyed: its vif detached from the datapath", w is not None)
        log = aggdom_cmd("xen", r"grants copy_ops", 60)
        m = None
        for m in re.finditer(r"maps (\d+) unmaps (\d+) map_failures (\d+)", log or ""):
            pass
        check("its rings were unmapped (GNTTABOP_unmap_grant_ref)", bool(m) and int(m.group(2)) >= 2,
              m.group(0) if m else "no xen output")
        # A new guest with the same address: its rings are mapped onto the frames just unmapped.
        name, ip, mac = "guest3", GUESTS[1][1], GUESTS[1][2]
        feid = start_guest(name, ip, mac, aggid)
        w = wait_serial(rf"vif {feid}/0 attached as guest", 30)
        ok, out = ping_from(name, DOM0_IP)
        check("guest3 (guest2's MAC and IP, frames reused) attaches and pings dom0", w is not None and ok, str(out))
    t = time.time()
    rig.run("id=$(xl domid aggdom) && printf 'shutdown\\n' > $(xenstore-read /local/domain/$id/console/tty)",
            quiet=True)
    rc, out = rig.run("i=0; while xl domid aggdom >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 120 ] && exit 1; "
                      "sleep 0.5; done", timeout=180, quiet=True)
    tm["aggdom shutdown"] = time.time() - t
    check("shutdown powers aggdom off (SCHEDOP_shutdown)", rc == 0)

    failed = [r for r in results if not r[1]]
    final = "PASS" if not failed else "FAIL " + "; ".join(r[0] for r in failed)
    if "Triple fault" in rig.buf:
        final = "FAIL aggdom triple-faulted (see the Xen vCPU dump above)"
except (Fail, RigError) as e:
    final = f"FAIL {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    xen_debug_dump()
    if "Triple fault" in rig.buf:
        final += " - aggdom triple-faulted (Xen's vCPU dump is in the serial log)"
        m = re.search(r"Triple fault.*?\n((?:.*\n){12})", rig.buf)
        print("=== Xen on the triple fault:\n" + (m.group(0) if m else ""), flush=True)
    try:
        print("=== aggdom COM1 (tail):\n" + serial()[-3000:], flush=True)
        rig.run("xl list; xl dmesg | tail -30", timeout=60)
    except Exception:
        pass
except KeyboardInterrupt:
    final = "FAIL interrupted"
finally:
    tm["total"] = time.time() - t_start
    rig.close()
print("RESULTS:")
for name, ok, detail in results:
    print(f"  {'ok  ' if ok else 'FAIL'} {name}")
print("TIMINGS " + " ".join(f"{k.replace(' ', '_')}={v:.1f}s" for k, v in tm.items()))
print(final)
sys.exit(0 if final == "PASS" else 1)
