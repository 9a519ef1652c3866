#!/usr/bin/env python3
"""make soak-xen: guests come and go on aggdom for many cycles while the others keep pinging through it.

Same rig and aggdom as `make test-xen` (xentest.py). Three busybox guests (soak1-3, 10.0.0.11-13) are
started and each checked as in test-xen (vif Connected on both sides, attached to the datapath, pings
dom0 10.0.0.1 through aggdom's uplinks). Each then pings dom0 every 0.5 s in the background. Then, for
--cycles cycles, one guest in turn (soak1, soak2, soak3, soak1, ...) is destroyed and created again while
the other two keep pinging; every cycle checks:

  * destroy: the vif is detached from the datapath (COM1), its backend directory is gone, aggdom lists it
    no more and unmapped its two rings (`xen`: unmaps +2 or more);
  * create: the new vif is Connected on both sides, attached, and the new guest pings dom0;
  * the other two guests lost at most --max-lost replies during the cycle before their kernel's ICMP
    layer (Icmp.OutEchos - Icmp.InEchoReps): aggdom's part. ping's reply lines must show no longer gap,
    or else the ICMP layer must have taken the replies: a gap above it is inside the guest (the rig's PV
    userland faults hit busybox there; soaks s7-1, s8-1) and is printed as GUEST LOSSES, not failed.

An `xl create` failing with "Invalid kernel" is retried (rig fault, as in test-xen). The run stops at the
first cycle that cannot go on (a guest that does not come up, dom0 not answering); a failed check does
not stop it. Ends with the cycle times, aggdom's xenstore and heap counters before and after, `shutdown`,
TIMINGS, and PASS or FAIL <why> (rig or aggdom, as in test-xen).
"""
import argparse, os, re, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xentest import (DOM0_IP, XenTest, Fail, common_args, refuse_if_other_rig,  # noqa: E402
                     attached_re, detached_re, path_report, bystander_verdict, echo_deltas)

ap = common_args(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
ap.add_argument("--cycles", type=int, default=10)
ap.add_argument("--guests", type=int, default=3, help="guests (at least 3 for the soak to mean much)")
ap.add_argument("--max-lost", type=int, default=5, help="most consecutive ping replies a bystander may lose")
ap.add_argument("--ping-interval", type=float, default=0.5, help="seconds between a bystander's pings")
a = ap.parse_args()

SLOTS = [(f"soak{i + 1}", f"10.0.0.{11 + i}", f"00:16:3e:00:00:{0x11 + i:02x}") for i in range(a.guests)]


def mem(t):
    log = t.aggdom_cmd("mem", r"^heap used", 60)
    m = None
    for m in re.finditer(r"heap used (\d+) bytes, free (\d+) bytes, peak (\d+) bytes", log or ""):
        pass
    return {"used": int(m.group(1)), "free": int(m.group(2)), "peak": int(m.group(3))} if m else None


def bring_up(t, name, ip, mac, cycle):
    """Start a guest and check it as test-xen does; then start its background ping. Returns its domid."""
    tag = f"cycle {cycle}: " if cycle else ""
    feid = t.start_guest(name, ip, mac, tag)
    w = t.wait_serial(attached_re(feid), 30)
    t.check(f"{tag}{name} (dom {feid}) vif attached to the datapath", w is not None)
    ok, out = t.ping_from(name, DOM0_IP, tries=3)
    t.check(f"{tag}{name} pings dom0 through aggdom", ok, str(out))
    paths[name] = t.path_counts(name, feid)
    t.check(f"{tag}{name} background ping started", t.bg_ping_start(name, interval=a.ping_interval))
    return feid


refuse_if_other_rig(a)
t = XenTest(a)
rig = t.rig
cycle_times, counters = [], {}
guest_losses = []    # ping lines lost inside a guest, above its ICMP layer (rig): reported, not failed
paths = {}          # guest -> path_counts when its background ping last started


def body():
    if a.guests < 2:
        raise Fail("--guests must be at least 2")
    aggid = t.boot_aggdom("bind=10.0.0.11:0 bind=10.0.0.12:1")
    domids = {}
    for name, ip, mac in SLOTS:
        domids[name] = bring_up(t, name, ip, mac, 0)
    x = t.xen_state()
    counters["start"] = {"xenstore": x and x["xenstore"], "grants": x and x["grants"], "mem": mem(t)}
    unmaps = x["grants"]["unmaps"] if x and x["grants"] else None
    t.say(f"soak start: {counters['start']}")

    for cycle in range(1, a.cycles + 1):
        c0 = time.time()
        name, ip, mac = SLOTS[(cycle - 1) % len(SLOTS)]
        old = domids[name]
        t.say(f"===== cycle {cycle}/{a.cycles}: {name} (dom {old}) destroyed and created again")
        rig.run(f"xl destroy {name}", timeout=120)
        w = t.wait_serial(detached_re(old), 60)
        t.check(f"cycle {cycle}: {name} destroyed: vif {old}/0 detached from the datapath", w is not None)
        gone = t._wait_gone([f"/local/domain/{aggid}/backend/vif/{old}", f"/local/domain/{old}"], timeout=60)
        x = t.xen_state()
        g = (x or {}).get("grants")
        listed = [k for k in (x or {}).get("vifs", {}) if k[0] == old]
        t.check(f"cycle {cycle}: its backend dir is gone, aggdom lists it no more and unmapped its rings",
                gone and x is not None and not listed and bool(g) and unmaps is not None and g["unmaps"] >= unmaps + 2,
                f"gone {gone}, still listed {listed}, unmaps {unmaps} -> {g and g['unmaps']}")
        if g:
            unmaps = g["unmaps"]
        domids[name] = bring_up(t, name, ip, mac, cycle)
        for other, _, _ in SLOTS:
            if other == name:
                continue
            st = t.bg_ping_stop(other)
            # Where the replies went, from the guest's ICMP layer through aggdom's vif to dom0 and back
            # (cycle 5 of soak run s7-1 lost 266 in a row that aggdom's vif counted as delivered).
            now = t.path_counts(other, domids[other])
            sent, took = echo_deltas(paths[other], now)
            ok, why = bystander_verdict(st, sent, took, a.max_lost)
            t.check(f"cycle {cycle}: {other} kept pinging (at most {a.max_lost} replies lost before its ICMP layer)",
                    ok, why + f" ({a.ping_interval}s apart, the cycle began at seq 0)")
            if ok and st["max_gap"] > a.max_lost:
                guest_losses.append(f"cycle {cycle} {other}: {why}")
            t.say(f"cycle {cycle}: path of {other}'s pings: " +
                  path_report(other, paths[other], now, st["received"] if st else None))
            if st and (not ok or st["max_gap"] > a.max_lost):
                # Where frames went: the datapath's drop counters and aggdom's view of the vifs.
                log = t.aggdom_cmd("stats", r"lost: uplink full", 60) or ""
                t.say("aggdom `stats` after the gap:\n" + log[log.rfind("stats"):][-2500:])
                t.say(f"aggdom `xen` after the gap: {t.xen_state()}")
                # busybox's ip has no -s; /proc/net/raw's last column counts replies ping's raw socket dropped
                # (s8-1 cycle 5: the guest's ICMP layer took all 479 replies, ping counted 350).
                t.say(f"{other}'s view:\n" + str(t.rig.guest_run(
                    other, "ip neigh; cat /proc/net/raw; ps", timeout=60)))
            paths[other] = now
            t.bg_ping_start(other, interval=a.ping_interval)
        cycle_times.append(time.time() - c0)
        t.say(f"===== cycle {cycle} done in {cycle_times[-1]:.1f}s")

    x = t.xen_state()
    counters["end"] = {"xenstore": x and x["xenstore"], "grants": x and x["grants"], "mem": mem(t)}
    t.say(f"soak end: {counters['end']}")
    if x:
        vifs = {k: (v["state"], v["conn"], v["tx_frames"], v["rx_frames"], v["fatal"], v["xenstore_errors"])
                for k, v in x["vifs"].items()}
        t.check("after the soak aggdom serves exactly the live guests' vifs, all Connected",
                sorted(k[0] for k in x["vifs"]) == sorted(domids.values()) and
                all(v["state"] == 4 and v["conn"] == "connected" for v in x["vifs"].values()), str(vifs))
        xs = x["xenstore"]
        t.check("xenstore client healthy after the soak (no request timed out, no resync)",
                xs["timeouts"] == 0 and xs["resyncs"] == 0, str(xs))
    t.shutdown_aggdom()
    return t.raw_verdict()


raw = t.guarded(body)
print("CYCLES " + " ".join(f"{i + 1}={s:.0f}s" for i, s in enumerate(cycle_times)) +
      (f" (mean {sum(cycle_times) / len(cycle_times):.0f}s, {len(cycle_times)}/{a.cycles} done)" if cycle_times else
       f" (0/{a.cycles} done)"))
for k, v in counters.items():
    print(f"COUNTERS {k} {v}")
for line in guest_losses:
    print(f"GUEST LOSSES {line}")
extra = {"cycles_done": f"{len(cycle_times)}/{a.cycles}", "guest_internal_gaps": len(guest_losses)}
if cycle_times:
    extra.update(cycle_mean=f"{sum(cycle_times) / len(cycle_times):.1f}s", cycle_max=f"{max(cycle_times):.1f}s",
                 cycles=",".join(f"{s:.0f}" for s in cycle_times))
t.report(raw, extra)
