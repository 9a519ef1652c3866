#!/usr/bin/env python3
"""make test-xen: aggdom as a real Xen 4.17 network driver domain, end to end.

Boots the shared rig (../shared/xen-rig: Xen + a Linux dom0 inside QEMU, TCG), passes two emulated
e1000s through to aggdom (an HVM driver domain, direct kernel boot of aggdom32), starts busybox guests
whose vif has backend=aggdom, and checks:

  1. aggdom boots under Xen: platform up (domid, xenstore), netback serving, its config read from xenstore;
  2. guest 1's vif reaches Connected (state 4) on both sides;
  3. guest 1 pings dom0 (10.0.0.1, and fd00::1 over IPv6: its vif's ip= lists fd00::11 too) on the outside network: guest -> netback -> datapath -> an uplink
     (passed-through e1000) -> QEMU hub -> dom0's e1000, and back;
  4. aggdom's counters (console command `xen`, through the PV console) show the vif's frames;
  5. a second guest connects and pings too;
  6. guest 2 reaches guest 1 (switched inside aggdom);
  7. a run-time change of bind= in xenstore is applied, and the datapath's `stats` count uplink frames;
  8. destroying guest 2 detaches its vif and unmaps its rings; a guest 3 with guest 2's MAC and IP
     connects (ring frames reused) and pings;
  9. hot-plug: xl network-attach gives guest 3 a second vif, which connects and attaches; xl network-detach
     returns clean (no libxl timeout) and the vif is released;
 9b. hostile guest: while guest 1 pings dom0 every 0.2 s, dom0 (as the toolstack and as guest 3 itself)
     churns guest 3's vif for --churn seconds: its frontend `state` flapped 1/4/5/6 with junk
     `tx-ring-ref`, and a second vif hot-plugged and unplugged (xl network-attach/-detach) in a loop.
     Guest 1 must lose no more than 5 consecutive replies; aggdom must still answer and release every
     vif of guest 3 when it is destroyed;
 10. a vif without a `mac` key (backend and frontend nodes written by hand, dom0 as the frontend) goes to
     Closing (5) with `error` = "22 reading mac: missing or malformed", removed with the vif;
 11. `shutdown` on the console powers aggdom off.

Network (QEMU hub 0): NIC0 + NIC1 (0000:00:03.0, 00:04.0, aggdom's uplinks) and NIC2 (dom0's eth0,
10.0.0.1/24). aggdom's own IP is 10.0.0.2, guests 10.0.0.11 and 10.0.0.12.

Rig faults: an `xl create` of a guest that fails with "Invalid kernel" is retried (at most 3 attempts);
at the end the rig's serial log and dom0's command outputs are scanned for userland crashes, and a FAIL
says "dom0 userland crashed (rig)" when there were any, "aggdom (no rig crash seen)" otherwise.

Prints one line per check and, at the end, TIMINGS and PASS or FAIL <why> (exit 0 / 1).
"""
import argparse, os, re, shlex, struct, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xentest import (DOM0_IP, XenTest, common_args, refuse_if_other_rig,  # noqa: E402
                     attached_re, detached_re, path_report, bystander_verdict, echo_deltas)

ap = common_args(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
ap.add_argument("--guests", type=int, default=2, choices=(1, 2))
ap.add_argument("--churn", type=int, default=25, help="seconds of hostile churn on guest 3's vif (0: skip)")
ap.add_argument("--max-lost", type=int, default=5, help="most consecutive ping replies guest 1 may lose")
ap.add_argument("--aggctl", help="a static build of aggctl for dom0 (the Makefile builds one): check 7b runs it")
a = ap.parse_args()

GUESTS = [("guest1", "10.0.0.11", "00:16:3e:00:00:11"), ("guest2", "10.0.0.12", "00:16:3e:00:00:12")]
DOM0_IP6, GUEST1_IP6 = "fd00::1", "fd00::11"            # guest 1 is dual-stack: its vif's ip= lists both
HOT_MAC, HOT_IP = "00:16:3e:00:00:13", "10.0.0.13"    # guest 3's hot-plugged second vif
NOMAC_HANDLE, NOMAC_IP = 7, "10.0.0.14"               # the hand-made vif without a mac (frontend dom0)

# dom0 churning guest 3's vif: the frontend's `state` flapped with junk ring refs (as a hostile guest, or
# a toolstack gone mad, could), and a second vif attached and detached in a loop (xl, as the toolstack).
HOSTILE_SH = """
G={g}; A={agg}; fe=/local/domain/$G/device/vif/0; end=$(( $(date +%s) + {dur} ))
( n=0; while [ $(date +%s) -lt $end ]; do
    xl network-attach {name} backend=aggdom mac={mac} ip={ip} >/tmp/na.log 2>&1; ra=$?
    sleep 1
    xl network-detach {name} {mac} >>/tmp/na.log 2>&1; rd=$?
    n=$((n+1)); echo "hot-plug $n: attach rc=$ra detach rc=$rd"
    [ $ra$rd = 00 ] || {{ grep -iE 'error|warn|fail|wanted|timed out|Unknown' /tmp/na.log | head -12
                         xenstore-ls -f /local/domain/$A/backend/vif/$G 2>&1 | grep -E '/1/(state|online|hotplug-status) '; }}
    sleep 0.5
  done ) &
w=0; bad=0
while [ $(date +%s) -lt $end ]; do
  for s in 1 4 5 6 4 1 4; do
    case $((w % 6)) in 0) j=junk;; 1) j=4294967295;; 2) j=;; 3) j=8;; 4) j=99999999999;; 5) j=-1;; esac
    xenstore-write -- $fe/tx-ring-ref "$j" $fe/state $s || bad=$((bad+1))
    w=$((w+1)); sleep 0.2
  done
done
wait
echo "hostile: $w xenstore rewrites of $fe ($bad failed)"
xenstore-ls -f /local/domain/$A/backend/vif/$G 2>&1 | grep -E '/(state|hotplug-status)'
xenstore-ls -f /local/domain/$A/error 2>&1 | tail -4
true
"""

# A vif netback cannot serve: backend and frontend nodes written by hand (dom0 is the frontend), no mac.
NOMAC_SH = """
A={agg}; H={h}; be=/local/domain/$A/backend/vif/0/$H; fe=/local/domain/0/device/vif/$H
xenstore-write $fe/backend $be $fe/backend-id $A $fe/handle $H $fe/state 1 $fe/tx-ring-ref 8 \
  $fe/rx-ring-ref 9 $fe/event-channel 5 $fe/request-rx-copy 1
xenstore-chmod -r $fe n0 r$A
xenstore-write $be/frontend $fe $be/frontend-id 0 $be/online 1 $be/state 1 $be/handle $H $be/type vif $be/ip {ip}
xenstore-chmod -r /local/domain/$A/backend/vif/0 n$A r0
xenstore-write $be/online 1
sleep 2
xenstore-write $fe/state 4
xenstore-ls -f $be
"""


def hotplug(t, aggid, g3):
    """Check 9a: a vif hot-plugged into a running guest (xl network-attach) connects and carries frames;
    xl network-detach of it returns at once and clean (aggdom closes and removes the backend directory
    itself, as xl devd does in a Linux driver domain; libxl waits 10 s and fails otherwise)."""
    rig = t.rig
    name, feid = g3
    be, fe = f"/local/domain/{aggid}/backend/vif/{feid}/1", f"/local/domain/{feid}/device/vif/1"
    t0 = time.time()
    rc, out = rig.run(f"xl network-attach {name} backend=aggdom mac={HOT_MAC} ip={HOT_IP}", timeout=120)
    ok, v, secs = rig.wait_xs({"backend": be + "/state", "frontend": fe + "/state"},
                              lambda v: v["backend"] == "4" and v["frontend"] == "4", timeout=a.timeout,
                              label=f"{name}'s hot-plugged vif Connected on both sides")
    w = t.wait_serial(attached_re(feid, 1), 30)
    t.tm["hotplug connected"] = time.time() - t0
    t.check("xl network-attach: a second vif of a running guest connects and attaches to the datapath",
            rc == 0 and ok and w is not None, f"attach rc={rc} {first_line(out)}; {v} after {secs:.1f}s")
    t0 = time.time()
    rc, out = rig.run(f"xl network-detach {name} {HOT_MAC}", timeout=120)
    secs = time.time() - t0
    gone = t._wait_gone([be], timeout=30)
    w = t.wait_serial(detached_re(feid, 1), 30)
    t.tm["hotplug detach"] = secs
    t.check("xl network-detach returns clean and the vif is released", rc == 0 and "error" not in out and gone and
            w is not None, f"detach rc={rc} in {secs:.1f}s {first_line(out)}; backend dir gone {gone}")


def first_line(out):
    return (out.strip().splitlines() or [""])[0][:160]


def pcap_records(path):
    """The number of records in a classic pcap file, or None if it is not one."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        return None
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    n, at = 0, 24
    while at + 16 <= len(data):
        incl = struct.unpack_from(order + "I", data, at + 8)[0]
        at += 16 + incl
        n += 1
    return n if at == len(data) else None


def aggctl_check(t, aggid):
    """Check 7b (issue 14): the dom0 tool aggctl drives aggdom through xenstore: status, guests, JSON
    stats, a refused command's error line and exit status, and a packet capture written as pcap."""
    rig = t.rig
    rig.add_file(a.aggctl, "aggctl")
    rig.run("cp /share/aggctl /root/aggctl && chmod +x /root/aggctl", check=True)
    rc, out = rig.run("/root/aggctl status", timeout=120)
    t.check("aggctl status answers through xenstore", rc == 0 and "identity" in out, out.strip()[:200])
    rc, out = rig.run("/root/aggctl guests", timeout=120)
    t.check("aggctl guests lists both vifs", rc == 0 and all(ip in out for _, ip, _ in GUESTS), out.strip()[:300])
    rc, out = rig.run("/root/aggctl stats --json | head -c 60", timeout=120)
    t.check("aggctl stats --json is JSON", out.strip().startswith("{"), out.strip()[:80])
    rc, out = rig.run("/root/aggctl bind 10.0.0.99 0; echo rc=$?", timeout=120)
    t.check("a refused aggctl command says why on one line and exits 1",
            "rc=1" in out and "aggctl: error:" in out, out.strip()[:200])
    if not t.bg_ping_start("guest1", interval=0.2, tag="c"):
        t.check("guest1's background ping started (capture)", False)
        return
    rc, out = rig.run("/root/aggctl --timeout 90 capture guest 0 5 ethertype=ipv4 -w /share/g0.pcap; echo rc=$?",
                      timeout=180)
    t.bg_ping_stop("guest1", tag="c")
    n = pcap_records(os.path.join(rig.share, "g0.pcap"))
    t.check("aggctl capture of guest 0 writes a pcap with its 5 frames", "rc=0" in out and n == 5,
            f"records {n}; {out.strip()[-200:]}")
    rc, out = rig.run(f"xenstore-list /local/domain/{aggid}/data/aggctl/request 2>&1; true", quiet=True)
    t.check("aggctl leaves no request behind", out.strip() == "", out.strip()[:200])


def hostile(t, aggid, g3, g1):
    """Check 9: guest 1 keeps its connectivity while guest 3's vif is churned."""
    rig = t.rig
    name, feid = g3
    before = t.path_counts("guest1", g1)
    if not t.bg_ping_start("guest1", interval=0.2, tag="h"):
        t.check("guest1's background ping started", False)
        return
    time.sleep(2)
    t0 = time.time()
    rc, out = rig.run(HOSTILE_SH.format(g=feid, agg=aggid, dur=a.churn, name=name, mac=HOT_MAC, ip=HOT_IP),
                      timeout=a.churn + 180)
    t.tm["hostile churn"] = time.time() - t0
    hot = len(re.findall(r"hot-plug \d+: attach rc=0 detach rc=0", out))
    time.sleep(3)
    st = t.bg_ping_stop("guest1", tag="h")
    t.tm["hostile ping"] = time.time() - t0 + 2
    expected = int((time.time() - t0) / 0.2 * 0.5)       # at least half the requests went out
    after = t.path_counts("guest1", g1)
    # The soak's rule (bystander_verdict): what counts is replies that never reached guest 1's ICMP layer.
    # Run w-1 (2026-12-07): ping's summary said 217 of 217 received and the ICMP layer took all 217, but
    # ping's reply lines were gone, with "malloc(): unsorted double linked list corrupted" from the guest's
    # shell: the rig's userland fault, which the old rule (ping's lines alone) failed as aggdom's.
    sent, took = echo_deltas(before, after)
    ok, why = bystander_verdict(st, sent, took, a.max_lost)
    ok = ok and (st["transmitted"] or 0) >= expected
    detail = (f"{why}; {st['received']}/{st['transmitted']} lines ({st['loss_pct']:.1f}% lost) over "
              f"{time.time() - t0:.0f}s" if st and st["transmitted"] else f"no ping summary from guest1: {st}")
    detail += f"; churn {a.churn}s: {out.count('hot-plug ')} hot-plug cycles, {hot} clean; " + \
        ((re.search(r"hostile: .*", out) or [""])[0])
    t.check(f"guest1 pings dom0 every 0.2s while guest3's vif is churned: at most {a.max_lost} replies lost "
            f"before its ICMP layer", ok, detail)
    if ok and st["max_gap"] > a.max_lost:
        print(f"GUEST LOSSES churn guest1: {why}", flush=True)
    t.say("path of guest1's pings during the churn: " +
          path_report("guest1", before, after, st["received"] if st else None))
    if not ok:
        # Run f-4 (2026-12-07) lost every reply here with nothing left to say why: keep aggdom's view.
        log = t.aggdom_cmd("stats", r"lost: uplink full", 60) or ""
        print("=== aggdom PV console after the failed churn check (tail):\n" + log[-6000:], flush=True)
        print("=== guest1's view:\n" + str(t.rig.guest_run("guest1", "ip neigh; ip -s link show eth0", timeout=60)),
              flush=True)
        # dom0's neighbour entry for guest 1 says which MAC its replies went to (an identity's, or one no
        # uplink accepts); a fresh ping says whether the loss outlived the churn; `xen` has the vif's
        # ring counters (frames the guest sent, frames delivered to it, its drops).
        t.rig.run("ip neigh; ip -s link show eth0", timeout=60)
        log = t.aggdom_cmd("xen", r"grants copy_ops", 60) or ""
        print("=== aggdom `xen` after the failed churn check (tail):\n" + log[-3000:], flush=True)
        print("=== guest1 pings again:\n" + str(t.ping_from("guest1", DOM0_IP, tries=2)), flush=True)

    x = t.xen_state()
    v = (x or {}).get("vifs", {})
    g3v = {k: {f: vv[f] for f in ("state", "conn", "connects", "disconnects", "connect_failures", "fatal",
                                 "refusals", "xenstore_errors")} for k, vv in v.items() if k[0] == feid}
    t.check("aggdom answers on its console after the churn", x is not None,
            f"xenstore {x['xenstore']}; guest3's vifs {g3v}" if x else "no `xen` reply")

    rig.run(f"xl destroy {name}", timeout=120)
    gone = t._wait_gone([f"/local/domain/{aggid}/backend/vif/{feid}"], timeout=60)
    x = t.xen_state()
    left = [k for k in (x or {}).get("vifs", {}) if k[0] == feid]
    t.check("guest3 destroyed after the churn: aggdom released all its vifs",
            gone and x is not None and not left, f"backend dir gone {gone}, vifs still listed {left}")


OFFLOAD_KEYS = ("feature-gso-tcpv4", "feature-gso-tcpv6", "feature-rx-notify", "feature-sg")


def offloads(t, aggid, feid):
    """Issue 10: what guest 1's netfront and aggdom agreed on. aggdom offers GSO (TCPv4/v6) and checksum
    offload; Linux netfront answers with its own feature-* keys and then sends 64 KiB GSO frames."""
    be = f"/local/domain/{aggid}/backend/vif/{feid}/0"
    fe = f"/local/domain/{feid}/device/vif/0"
    keys = {f"backend {k}": f"{be}/{k}" for k in OFFLOAD_KEYS[:2]}
    keys.update({f"frontend {k}": f"{fe}/{k}" for k in OFFLOAD_KEYS})
    v = {k: t.rig.xs_read(p) for k, p in keys.items()}
    t.check("guest1 and aggdom negotiate GSO and checksum offload (feature-gso-tcpv4/v6 = 1 on both sides)",
            all(v[f"{side} {k}"] == "1" for side in ("backend", "frontend") for k in OFFLOAD_KEYS[:2]), str(v))


def nomac(t, aggid):
    """Check 10: a vif without a mac goes to Closing with an error node, removed with the vif."""
    rig = t.rig
    be = f"/local/domain/{aggid}/backend/vif/0/{NOMAC_HANDLE}"
    fe = f"/local/domain/0/device/vif/{NOMAC_HANDLE}"
    err = f"/local/domain/{aggid}/error/backend/vif/0/{NOMAC_HANDLE}"
    rig.run(NOMAC_SH.format(agg=aggid, h=NOMAC_HANDLE, ip=NOMAC_IP), timeout=120)
    ok, v, secs = rig.wait_xs({"state": be + "/state", "error": err + "/error"},
                              lambda v: v["state"] == "5" and (v["error"] or "").startswith("22 "), timeout=60,
                              label="the mac-less vif at Closing with an error node")
    t.check("a vif without mac goes to Closing (5) with error '22 reading mac: missing or malformed'",
            ok and v["error"] == "22 reading mac: missing or malformed", f"{v} after {secs:.1f}s")
    rig.run(f"xenstore-rm {be}; xenstore-rm /local/domain/{aggid}/backend/vif/0; xenstore-rm {fe}", timeout=60)
    gone = t._wait_gone([err], timeout=30)
    if not gone:
        # r2-2: a write of aggdom's re-created the removed backend directory (fixed since; netback test
        # a_vif_removed_while_its_keys_are_read_does_not_come_back): show whether it is there again.
        rig.run(f"xenstore-ls -f /local/domain/{aggid}/backend/vif 2>&1 | head -30", timeout=60)
    t.check("removing the mac-less vif removes its error node", gone, err)


refuse_if_other_rig(a)
t = XenTest(a)
rig = t.rig


def body():
    config = f"bind={GUESTS[0][1]}:0 bind={GUESTS[1][1]}:1"
    aggid = t.boot_aggdom(config)

    rig.run(f"ip -6 addr add {DOM0_IP6}/64 dev eth0 nodad", check=True)
    feids = []
    for name, ip, mac in GUESTS[:a.guests]:
        feid = t.start_guest(name, ip, mac, ip6=GUEST1_IP6 if name == "guest1" else None)
        feids.append(feid)
        w = t.wait_serial(attached_re(feid), 30)
        t.check(f"{name} vif attached to the datapath", w is not None)
        if name == "guest1":
            offloads(t, aggid, feid)
        ok, out = t.ping_from(name, DOM0_IP)
        t.check(f"{name} pings dom0 {DOM0_IP} through aggdom's uplinks", ok, str(out))
        x = t.xen_state()
        c = (x or {}).get("vifs", {}).get((feid, 0))
        t.say(f"aggdom xen: vif {feid}/0 {c}")
        t.check(f"aggdom counters show {name}'s frames", bool(c) and c["tx_frames"] > 0 and c["rx_frames"] > 0, str(c))
        if name == "guest1":
            # IPv6: the guest's NS/NA go out and in with their link-layer options rewritten by aggdom.
            t.rig.guest_run(name, f"ip -6 addr add {GUEST1_IP6}/64 dev eth0", timeout=60)
            ok, out = t.ping_from(name, DOM0_IP6)
            t.check(f"guest1 pings dom0 over IPv6 ({DOM0_IP6}) through aggdom (NDP rewritten both ways)", ok,
                    str(out))

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

    if a.aggctl and a.guests == 2:
        aggctl_check(t, aggid)

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
        hotplug(t, aggid, (name, feid))
        if a.churn > 0:
            hostile(t, aggid, (name, feid), feids[0])
    nomac(t, aggid)

    t.shutdown_aggdom()
    return t.raw_verdict()


raw = t.guarded(body)
t.report(raw)
