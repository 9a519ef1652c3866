#!/usr/bin/env python3
"""make restart-xen: guests keep their network across a restart of aggdom (`aggctl restart`, issue 14).

Same rig and aggdom as `make test-xen` (xentest.py). Two busybox guests (guest1, guest2: 10.0.0.11-12) are
started behind aggdom and checked as in test-xen (vif Connected on both sides, attached, pings dom0
10.0.0.1). Each then runs two loops in the background:

  * a probe: one `ping -c 1 -W 1` to dom0 every 0.2 s, each logged with the guest's uptime and ok/no;
  * a stand-in for the guest's hotplug networking (udev + ifupdown's allow-hotplug, networkd, ...): when
    eth0 exists and is down it brings it up and adds the address the guest booted with. This is what a
    guest needs after the restart: the re-attached vif is a new netfront device (same MAC, same name eth0),
    down and unconfigured. The loop logs eth0's state changes (gone, down, up). It reads sysfs with shell
    builtins (a fork only to configure), so that it costs the emulated guest little.

Then dom0 runs `aggctl restart --config <aggdom's cfg>` (it destroys aggdom, creates it again, waits until it
answers, and detaches and attaches every vif with its mac/ip/rate/mtu), each step timed. Checks: aggctl
exits 0; the new aggdom (a new domid) prints 'aggdom ready' and has the old config node; each guest's vif is
Connected on both sides under the new aggdom and attached to its datapath; each guest pings dom0 again;
the new aggdom's `xen` lists both vifs Connected. Prints the outage per guest (OUTAGE lines: its last reply
before, its first reply after, on the guest's clock, and the probes lost; the probe spacing, 0.2 s plus the
ping, up to 1.2 s while replies are lost, bounds the precision). Ends with `shutdown`, TIMINGS and PASS or
FAIL <why> (rig or aggdom, as in test-xen).
"""
import argparse, os, re, shlex, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from xentest import (DOM0_IP, SERIAL, PVCON, XenTest, Fail, common_args,  # noqa: E402
                     refuse_if_other_rig, attached_re, output_after)

GUESTS = [("guest1", "10.0.0.11", "00:16:3e:00:00:11"), ("guest2", "10.0.0.12", "00:16:3e:00:00:12")]
CONFIG = "bind=10.0.0.11:0 bind=10.0.0.12:1"
LOG = "/tmp/probe.log"          # in each guest: the probe's and the hotplug loop's lines

# ------------------------------------------------------------------------------------------ pure helpers

# Typed into a guest's console (keep them short). `read u x </proc/uptime`: the guest's clock, 10 ms steps.
PROBE_SH = ("(while :; do read u x </proc/uptime; ping -c 1 -W 1 {ip} >/dev/null 2>&1; r=$?; if [ $r = 0 ]; then "
            "echo \"$u ok\"; elif [ $r -lt 128 ]; then echo \"$u no\"; else echo \"$u crashed\"; fi; "
            "sleep {interval} 2>/dev/null || sleep 1; done) >>" + LOG + " 2>&1 & echo $! >/tmp/probe.pid")
HOTPLUG_SH = ("(s=; while :; do if [ -e /sys/class/net/eth0 ]; then read f 2>/dev/null </sys/class/net/eth0/flags; "
              "[ $(( ${{f:-0}} & 1 )) = 1 ] && n=up || n=down; else n=gone; fi; if [ \"$n\" != \"$s\" ]; then "
              "read u x </proc/uptime; echo \"$u eth0 $n\"; s=$n; fi; if [ $n = down ]; then ip link set eth0 up && "
              "ip addr add {ip}/24 dev eth0; fi; sleep 0.2 2>/dev/null || sleep 1; done) >>" + LOG +
              " 2>&1 & echo $! >/tmp/hotplug.pid")
# The probe log as runs of ok/no ("ok FIRST LAST COUNT"), eth0's changes as "eth0 T STATE", and the probes
# whose ping died of a signal ("crashed N": the rig's PV userland faults reach the guests; such a probe says
# nothing about the network and does not cut a run): a few lines, however long the log (the rig reads a
# guest command's output from its console log).
SUMMARY_AWK = ("awk '$2==\"eth0\"{print \"eth0\",$1,$3;next} $2==\"crashed\"{n++;next} $2!=\"ok\"&&$2!=\"no\"{next} "
               "$2!=k{if(k!=\"\")print k,f,l,c;k=$2;f=$1;c=0} {l=$1;c++} END{if(k!=\"\")print k,f,l,c; print \"crashed\",n+0}' "
               + LOG)

RUN_RE = re.compile(r"^(ok|no) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+)\s*$", re.M)
ETH0_RE = re.compile(r"^eth0 (\d+(?:\.\d+)?) (gone|down|up)\s*$", re.M)
CRASHED_RE = re.compile(r"^crashed (\d+)\s*$", re.M)


def probe_log(text):
    """SUMMARY_AWK's output: (runs, eth0 events, crashed probes), runs = [(kind, first t, last t, probes)] in
    the log's order, events = [(t, state)]; times are the guest's uptime in seconds."""
    runs = [(m.group(1), float(m.group(2)), float(m.group(3)), int(m.group(4))) for m in RUN_RE.finditer(text)]
    events = [(float(m.group(1)), m.group(2)) for m in ETH0_RE.finditer(text)]
    crashed = CRASHED_RE.search(text)
    return runs, events, int(crashed.group(1)) if crashed else 0


def outage(runs, events=()):
    """The longest time a guest's probe went without a reply: between the last reply of one ok run and the
    first of the next. Returns {before, after, secs, lost, replies_before, replies_after, eth0} (lost: the
    probes unanswered in between; replies_*: the ok probes before and after; eth0: the state changes in
    between, as (seconds after `before`, state)), or None without two ok runs (no reply after a loss, or no
    loss at all)."""
    oks = [i for i, r in enumerate(runs) if r[0] == "ok"]
    best = None
    for i, j in zip(oks, oks[1:]):
        secs = runs[j][1] - runs[i][2]
        if best is None or secs > best[2]:
            best = (i, j, secs)
    if best is None:
        return None
    i, j, secs = best
    before, after = runs[i][2], runs[j][1]
    return {"before": before, "after": after, "secs": round(secs, 2),
            "lost": sum(r[3] for r in runs[i + 1:j] if r[0] == "no"),
            "replies_before": sum(r[3] for r in runs[:i + 1] if r[0] == "ok"),
            "replies_after": sum(r[3] for r in runs[j:] if r[0] == "ok"),
            "eth0": [(round(t - before, 2), s) for t, s in events if before <= t <= after]}


def outage_line(name, o):
    """One OUTAGE line for the log and the notes."""
    if o is None:
        return f"OUTAGE {name}: none measured (no reply after a lost one)"
    eth0 = ", ".join(f"{s} +{t:.1f}s" for t, s in o["eth0"]) or "no change seen"
    return (f"OUTAGE {name}: {o['secs']:.1f}s without a reply to its probes (last reply at {o['before']:.2f}s, "
            f"first after at {o['after']:.2f}s of its uptime; {o['lost']} probes unanswered, {o['replies_before']} "
            f"answered before, {o['replies_after']} after); eth0: {eth0}")


STEP_RE = re.compile(r"^(\d+\.\d+)(?: (.*))?$", re.M)


def step_times(text):
    """dom0's timestamped aggctl output ("<epoch s> <line>" per line, the first line the start): [(seconds
    since the start, line)] for every line after the first."""
    lines = [(float(m.group(1)), (m.group(2) or "").strip()) for m in STEP_RE.finditer(text)]
    if not lines:
        return []
    t0 = lines[0][0]
    return [(round(t - t0, 1), l) for t, l in lines[1:]]


# ------------------------------------------------------------------------------------------ the run

def start_loops(t, name, ip, interval):
    """The probe and the hotplug stand-in in the background of the guest's console shell."""
    rc1, _ = t.guest_run_twice(name, f"rm -f {LOG}; " + HOTPLUG_SH.format(ip=ip))
    rc2, _ = t.guest_run_twice(name, PROBE_SH.format(ip=DOM0_IP, interval=interval))
    return rc1 == 0 and rc2 == 0


def stop_loops(t, name):
    """Stops both loops and returns the guest's probe summary (probe_log), or None if it did not answer."""
    tag = f"RESTART-SUMMARY-{name}"
    rc, out = t.guest_run_twice(
        name, f"kill $(cat /tmp/probe.pid) $(cat /tmp/hotplug.pid); sleep 1; echo {tag}-$((0+1)); {SUMMARY_AWK}")
    if rc is None:
        return None
    return probe_log(output_after(out, f"{tag}-1"))


def main():
    ap = common_args(argparse.ArgumentParser(description=__doc__,
                                             formatter_class=argparse.RawDescriptionHelpFormatter))
    ap.add_argument("--aggctl", required=True, help="a static build of aggctl for dom0 (the Makefile builds one)")
    ap.add_argument("--probe-interval", type=float, default=0.2, help="seconds between a guest's probes")
    a = ap.parse_args()
    refuse_if_other_rig(a)
    t = XenTest(a)
    rig = t.rig
    outages, steps = {}, []

    def body():
        old = t.boot_aggdom(CONFIG)
        feids = {}
        for name, ip, mac in GUESTS:
            feids[name] = t.start_guest(name, ip, mac)
            w = t.wait_serial(attached_re(feids[name]), 30)
            t.check(f"{name} vif attached to the datapath", w is not None)
            ok, out = t.ping_from(name, DOM0_IP)
            t.check(f"{name} pings dom0 {DOM0_IP} through aggdom", ok, str(out))
        rig.add_file(a.aggctl, "aggctl")
        rig.run("cp /share/aggctl /root/aggctl && chmod +x /root/aggctl", check=True)
        rc, out = rig.run("/root/aggctl restart --config /share/cfg/aggdom.cfg --dry-run", timeout=120)
        t.check("aggctl restart --dry-run plans a detach and an attach per guest",
                rc == 0 and all(f"network-attach {n} " in out for n, _, _ in GUESTS), out.strip()[-300:])
        for name, ip, _ in GUESTS:
            t.check(f"{name}'s probe and hotplug loops started", start_loops(t, name, ip, a.probe_interval))
        time.sleep(5)      # some replies before

        # The old aggdom's console logs aside: the waits below must see the new one's lines only.
        rig.run(f"mv {SERIAL} {SERIAL}.old; mv {PVCON} {PVCON}.old; true", quiet=True)
        t0 = time.time()
        rc, out = rig.run("{ date +%s.%N; /root/aggctl --timeout 30 restart --config /share/cfg/aggdom.cfg; "
                          "echo \"rc=$?\"; } 2>&1 | while IFS= read -r l; do case $l in [0-9]*.[0-9]*) "
                          "echo \"$l\";; *) d=$(date +%s.%N) || d=$(date +%s.%N); echo \"$d $l\";; esac; done", timeout=900)
        t.tm["aggctl restart"] = time.time() - t0
        steps[:] = step_times(out)
        for secs, line in steps:
            t.say(f"  restart +{secs:6.1f}s  {line}")
        t.check("aggctl restart exits 0", "rc=0" in out, (re.findall(r"rc=\d+", out) or ["no rc"])[-1] + " " +
                " | ".join(l for _, l in steps if "aggctl:" in l or "detach:" in l)[:300])
        new = rig.domid("aggdom")
        t.aggid = new
        t.check("a new aggdom runs (a new domid)", new is not None and new != old, f"domid {old} -> {new}")
        if new is None:
            raise Fail("no aggdom after the restart")
        w = rig.wait_file(SERIAL, "aggdom ready", a.timeout)
        _, line = rig.run(f"grep -a 'aggdom ready' {SERIAL}", quiet=True)
        t.check("the new aggdom boots ('aggdom ready')", w is not None, line.strip()[:120])
        cfg = rig.xs_read(f"/local/domain/{new}/aggdom/config")
        t.check("the new aggdom has the old config node", cfg == CONFIG, repr(cfg))
        if "rc=0" not in out:
            for name, _, _ in GUESTS:
                rig.run(f"xl network-list {name}; xenstore-ls -f /local/domain/{feids[name]}/device/vif", timeout=60)
            raise Fail("aggctl restart failed")

        for name, ip, mac in GUESTS:
            fe = feids[name]
            rc, devs = rig.run(f"xenstore-list /local/domain/{fe}/device/vif", quiet=True)
            dev = (devs.split() or ["0"])[-1]
            be = f"/local/domain/{new}/backend/vif/{fe}/{dev}"
            ok, v, secs = rig.wait_xs({"backend": be + "/state", "frontend": f"/local/domain/{fe}/device/vif/{dev}/state"},
                                      lambda v: v["backend"] == "4" and v["frontend"] == "4", timeout=a.timeout,
                                      label=f"{name}'s vif Connected on both sides under the new aggdom")
            if not t.check(f"{name}'s vif (devid {dev}) Connected on both sides under the new aggdom", ok,
                           f"{v} {secs:.1f}s after aggctl returned" if ok else str(v)):
                rig.run(f"xl network-list {name}; xenstore-ls -f {be}; xenstore-ls -f /local/domain/{fe}/device/vif",
                        timeout=60)
                print(f"=== {name} console (tail):\n" + rig.console(name)[-2000:], flush=True)
            w = t.wait_serial(attached_re(fe, int(dev) if dev.isdigit() else 0), 60)
            t.check(f"{name}'s vif attached to the new aggdom's datapath", w is not None)
        for name, ip, mac in GUESTS:
            ok, out = t.ping_from(name, DOM0_IP, tries=6)
            if not t.check(f"{name} pings dom0 again after the restart", ok, str(out)):
                t.guest_run_twice(name, "ip addr; ip route; tail -5 " + LOG)
        time.sleep(3)      # some replies after
        for name, _, _ in GUESTS:
            summary = stop_loops(t, name)
            if summary is None:
                t.check(f"{name}'s probe log read", False, "no answer")
                continue
            runs, events, crashed = summary
            o = outages[name] = outage(runs, events)
            t.say(f"{name} probe runs: {runs}; eth0: {events}; {crashed} probes whose ping crashed (rig)")
            print(outage_line(name, o), flush=True)
            t.check(f"{name}'s probes answered again after the outage", o is not None and o["replies_after"] > 0,
                    outage_line(name, o))
        x = t.xen_state()
        vifs = (x or {}).get("vifs", {})
        t.check("the new aggdom's `xen` lists both guests' vifs, Connected",
                all(any(k[0] == feids[n] and v["state"] == 4 and v["conn"] == "connected" for k, v in vifs.items())
                    for n, _, _ in GUESTS), str({k: (v["state"], v["conn"], v["tx_frames"], v["rx_frames"])
                                                  for k, v in vifs.items()}))

        t.shutdown_aggdom()
        return t.raw_verdict()

    raw = t.guarded(body)
    for secs, line in steps:
        print(f"STEP +{secs:.1f}s {line}")
    for name, _, _ in GUESTS:
        if name in outages:
            print(outage_line(name, outages[name]))
    extra = {f"outage_{n}": (f"{o['secs']:.1f}s" if o else "none") for n, o in outages.items()}
    t.report(raw, extra)


if __name__ == "__main__":
    main()
