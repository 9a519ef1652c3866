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
     connects (ring frames reused) and pings;
  9. `shutdown` on the console powers aggdom off.

Network (QEMU hub 0): NIC0 + NIC1 (0000:00:03.0, 00:04.0, aggdom's uplinks) and NIC2 (dom0's eth0,
10.0.0.1/24). aggdom's own IP is 10.0.0.2, guests 10.0.0.11 and 10.0.0.12.

Rig faults: an `xl create` of a guest that fails with "Invalid kernel" is retried (at most 3 attempts);
at the end the rig's serial log and dom0's command outputs are scanned for userland crashes, and a FAIL
says "dom0 userland crashed (rig)" when there were any, "aggdom (no rig crash seen)" otherwise.

Prints one line per check and, at the end, TIMINGS and PASS or FAIL <why> (exit 0 / 1).
"""
import argparse, os, re, shlex, sys, time, traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xentest import (DOM0_IP, XenTest, Fail, RigError, common_args, refuse_if_other_rig,  # noqa: E402
                     attached_re, detached_re)

ap = common_args(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
ap.add_argument("--guests", type=int, default=2, choices=(1, 2))
a = ap.parse_args()

GUESTS = [("guest1", "10.0.0.11", "00:16:3e:00:00:11"), ("guest2", "10.0.0.12", "00:16:3e:00:00:12")]
refuse_if_other_rig(a)
t = XenTest(a)
rig = t.rig
raw = None
try:
    config = f"bind={GUESTS[0][1]}:0 bind={GUESTS[1][1]}:1"
    aggid = t.boot_aggdom(config)

    feids = []
    for name, ip, mac in GUESTS[:a.guests]:
        feid = t.start_guest(name, ip, mac)
        feids.append(feid)
        w = t.wait_serial(attached_re(feid), 30)
        t.check(f"{name} vif attached to the datapath", w is not None)
        ok, out = t.ping_from(name, DOM0_IP)
        t.check(f"{name} pings dom0 {DOM0_IP} through aggdom's uplinks", ok, str(out))
        x = t.xen_state()
        c = (x or {}).get("vifs", {}).get((feid, 0))
        t.say(f"aggdom xen: vif {feid}/0 {c}")
        t.check(f"aggdom counters show {name}'s frames", bool(c) and c["tx_frames"] > 0 and c["rx_frames"] > 0, str(c))

    if a.guests == 2:
        ok, out = t.ping_from(GUESTS[1][0], GUESTS[0][1], tries=2)
        t.check("guest2 pings guest1 (switched inside aggdom)", ok, str(out))

    # Run-time rebinding through xenstore.
    new = f"bind={GUESTS[0][1]}:1 bind={GUESTS[1][1]}:0"
    rig.run(f"xenstore-write /local/domain/{aggid}/aggdom/config {shlex.quote(new)}", check=True)
    w = t.wait_serial(rf"bind {re.escape(GUESTS[0][1])} applied", 60)
    t.check("run-time bind= change from xenstore applied", w is not None)
    ok, out = t.ping_from(GUESTS[0][0], DOM0_IP, tries=2)
    t.check("guest1 still pings after the rebind", ok, str(out))

    # The datapath's own view: the vifs are guests, their frames left on the uplinks.
    log = t.aggdom_cmd("stats", r"^guest +name", 60)
    if log:
        print("=== aggdom PV console (tail):\n" + log[-3500:], flush=True)
        stats = log[log.rfind("uplink kind"):]
        up_tx = sum(int(m.group(1)) for m in re.finditer(
            r"^\d+\s+\S+\s+[0-9a-f:]{17}\s+(?:up|down)\s+\S*\s+(\d+)", stats, re.M))
        names = [f"vif{f}.0" for f in feids]
        t.check("datapath stats list the vifs as guests and count uplink frames",
                all(n in stats for n in names) and up_tx > 0, f"uplink tx_frames total {up_tx}, guests {names}")
    else:
        t.check("datapath stats readable on the PV console", False)
    # A vif going away detaches its guest; a new guest reuses the frames.
    if a.guests == 2:
        rig.run("xl destroy guest2", timeout=120)
        w = t.wait_serial(detached_re(feids[1]), 60)
        t.check("guest2 destroyed: its vif detached from the datapath", w is not None)
        x = t.xen_state()
        g = (x or {}).get("grants")
        t.check("its rings were unmapped (GNTTABOP_unmap_grant_ref)", bool(g) and g["unmaps"] >= 2, str(g))
        # A new guest with the same address: its rings are mapped onto the frames just unmapped.
        name, ip, mac = "guest3", GUESTS[1][1], GUESTS[1][2]
        feid = t.start_guest(name, ip, mac)
        w = t.wait_serial(attached_re(feid), 30)
        ok, out = t.ping_from(name, DOM0_IP)
        t.check("guest3 (guest2's MAC and IP, frames reused) attaches and pings dom0", w is not None and ok, str(out))

    t0 = time.time()
    rig.run("id=$(xl domid aggdom) && printf 'shutdown\\n' > $(xenstore-read /local/domain/$id/console/tty)",
            quiet=True)
    rc, out = rig.run("i=0; while xl domid aggdom >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 120 ] && exit 1; "
                      "sleep 0.5; done", timeout=180, quiet=True)
    t.tm["aggdom shutdown"] = time.time() - t0
    t.check("shutdown powers aggdom off (SCHEDOP_shutdown)", rc == 0)
    raw = t.raw_verdict()
except (Fail, RigError) as e:
    raw = t.on_error(e)
except KeyboardInterrupt:
    raw = "FAIL interrupted"
except Exception as e:                                   # a bug in this script: say so, not aggdom's
    traceback.print_exc()
    raw = f"FAIL test script error: {type(e).__name__}: {e}"
finally:
    t.close()
t.report(raw)
