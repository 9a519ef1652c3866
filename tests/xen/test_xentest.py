"""Host checks of the Xen tests' pure helpers (xentest.py) and shell snippets; no rig needed.

Run by `cargo test -p aggdom-xen-test`, or: python3 -m unittest discover -s tests/xen -p 'test_*.py'.
The `xen` parser is checked against output built from aggdom's own format strings
(kernel/src/xen_net.rs), so a change of what aggdom prints breaks this test, not a rig run.
"""
import ast, contextlib, io, itertools, os, re, subprocess, sys, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import xentest as xt  # noqa: E402


def rust_strings(path, start_marker=None):
    """The format strings of the println! calls in a Rust file (from start_marker on), unescaped."""
    with open(os.path.join(ROOT, path)) as f:
        src = f.read()
    if start_marker:
        src = src[src.index(start_marker):]
    return [s.replace('\\"', '"') for s in re.findall(r'println!\(\s*"((?:[^"\\]|\\.)*)"', src)]


def fill(fmt, numbers):
    """Replaces each {...} placeholder with the next number; returns (text, values used)."""
    used = []

    def sub(_):
        used.append(next(numbers))
        return str(used[-1])
    return re.sub(r"\{[^}]*\}", sub, fmt), used


class CrashLines(unittest.TestCase):
    # What the rig's README reports, as the kernel / tools print it.
    SERIAL = "\n".join([
        "# qemu-system-x86_64 -accel tcg ...",
        "(XEN) d0v1: general protection fault in the debug dump, not userland",
        "[  123.456789] xenstore-read[2345]: segfault at 7f12 ip 00007f34 sp 00007ffd error 4 in libxenstore.so.4",
        "[  124.000000] traps: sh[2400] general protection fault ip:7f00 sp:7ffc error:0 in libc.so.6[7f00+155000]",
        "Inconsistency detected by ld.so: dl-lookup.c: 111: check_match: Assertion failed!",
        "libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: domain monitoring daemonizing child [99] "
        "died due to fatal signal Segmentation fault",
        "xc: error: panic: xc_dom_bzimageloader.c:766: xc_dom_probe_bzimage_kernel unable to XZ decompress "
        "kernel: Invalid kernel",
        "@@DONE12@@ rc=0",
        "xen: vif 3/0 attached as guest 0 (vif3.0, mac 00:16:3e:00:00:11, ip 10.0.0.11)",
    ])

    def test_finds_every_kind_and_skips_xen_lines(self):
        lines = xt.crash_lines(self.SERIAL)
        self.assertEqual(len(lines), 5)
        self.assertFalse(any(l.startswith("(XEN)") for l in lines))
        self.assertEqual(xt.crash_lines("all well\r\nxen: domid 1\n"), [])


class PingStats(unittest.TestCase):
    def out(self, seqs, tx):
        lines = [f"64 bytes from 10.0.0.1: seq={s} ttl=64 time=1.2 ms" for s in seqs]
        if tx is not None:
            lines += ["", "--- 10.0.0.1 ping statistics ---",
                      f"{tx} packets transmitted, {len(seqs)} packets received, 0% packet loss"]
        return "\n".join(lines)

    def test_no_loss(self):
        s = xt.ping_stats(self.out(range(10), 10))
        self.assertEqual((s["transmitted"], s["received"], s["max_gap"], s["loss_pct"]), (10, 10, 0, 0.0))
        self.assertIsNone(s["gap_from"])

    def test_largest_gap_inside_and_at_both_ends(self):
        s = xt.ping_stats(self.out([0, 1, 2, 9, 10], 11))
        self.assertEqual((s["max_gap"], s["gap_from"]), (6, 3))
        # the same replies as bg_ping_stop reports them: runs of consecutive sequence numbers
        s = xt.ping_stats("seqs=0..2 seqs=9..10 11 packets transmitted")
        self.assertEqual((s["max_gap"], s["gap_from"], s["received"], s["transmitted"]), (6, 3, 5, 11))
        s = xt.ping_stats("seqs=0..465 466 packets transmitted")
        self.assertEqual((s["max_gap"], s["received"]), (0, 466))
        s = xt.ping_stats(self.out([3, 4], 5))
        self.assertEqual((s["max_gap"], s["gap_from"]), (3, 0))     # the first three lost
        self.assertEqual(xt.ping_stats(self.out([0, 1], 9))["max_gap"], 7)      # ping stopped, replies did not come
        s = xt.ping_stats(self.out([0, 2, 4], 5))
        self.assertEqual((s["max_gap"], s["received"], round(s["loss_pct"])), (1, 3, 40))

    def test_duplicates_and_the_one_line_form_the_soak_reads(self):
        line = "seq=0 seq=1 seq=1 seq=2 3 packets transmitted "
        s = xt.ping_stats(line)
        self.assertEqual((s["transmitted"], s["received"], s["max_gap"]), (3, 3, 0))

    def test_without_summary_or_replies(self):
        self.assertEqual(xt.ping_stats(self.out([0, 5], None))["max_gap"], 4)
        self.assertIsNone(xt.ping_stats("ping: sendto: Network unreachable")["max_gap"])
        s = xt.ping_stats(self.out([], 20))
        self.assertEqual((s["received"], s["max_gap"]), (0, 20))


class BystanderVerdict(unittest.TestCase):
    """The soak's check on a guest that kept pinging: aggdom's part is what reached the guest's ICMP layer."""

    def st(self, text):
        return xt.ping_stats(text)

    def test_reads_pings_own_summary_count(self):
        s = self.st("seqs=0..9 seqs=140..478 479 packets transmitted, 479 packets received")
        self.assertEqual((s["received"], s["ping_received"], s["max_gap"]), (349, 479, 130))

    def test_short_gap_passes_whatever_the_counters(self):
        ok, why = xt.bystander_verdict(self.st("seqs=0..3 seqs=6..9 10 packets transmitted"), None, None, 5)
        self.assertTrue(ok)
        self.assertIn("largest gap 2", why)

    def test_long_gap_that_reached_the_icmp_layer_is_the_guests(self):
        st = self.st("seqs=0..9 seqs=140..478 479 packets transmitted, 479 packets received")
        ok, why = xt.bystander_verdict(st, 479, 479, 5)
        self.assertTrue(ok)
        self.assertIn("inside the guest", why)
        self.assertTrue(xt.bystander_verdict(st, 479, 474, 5)[0])     # in flight at the ends: within the bound

    def test_long_gap_that_never_reached_the_guest_fails(self):
        st = self.st("seqs=0..9 seqs=140..478 479 packets transmitted, 349 packets received")
        ok, why = xt.bystander_verdict(st, 479, 349, 5)
        self.assertFalse(ok)
        self.assertIn("took 349 of 479", why)
        self.assertFalse(xt.bystander_verdict(st, 479, 473, 5)[0])    # one more than the bound
        self.assertFalse(xt.bystander_verdict(st, None, None, 5)[0])  # counters unread: cannot clear it

    def test_reply_lines_all_gone_with_every_reply_counted_is_the_guests(self):
        # run w-1: the file had no reply line, ping's summary and the ICMP layer had all 217
        st = self.st("217 packets transmitted, 217 packets received")
        ok, why = xt.bystander_verdict(st, 217, 217, 5)
        self.assertTrue(ok, why)
        self.assertIn("ping's summary 217 received of 217", why)
        self.assertFalse(xt.bystander_verdict(st, 217, 0, 5)[0])

    def test_echo_deltas_are_the_guests_icmp_counters_between_two_readings(self):
        before = {"guest": {"Icmp.OutEchos": 10, "Icmp.InEchoReps": 9}}
        now = {"guest": {"Icmp.OutEchos": 227, "Icmp.InEchoReps": 226}}
        self.assertEqual(xt.echo_deltas(before, now), (217, 217))
        self.assertEqual(xt.echo_deltas({"guest": {}}, now), (None, None))

    def test_no_ping_fails(self):
        self.assertFalse(xt.bystander_verdict(None, 10, 10, 5)[0])
        self.assertFalse(xt.bystander_verdict(self.st("20 packets transmitted, 0 packets received"), 20, 20, 5)[0])


class XenOutput(unittest.TestCase):
    """parse_xen and the COM1 regexes against what kernel/src/xen_net.rs prints."""

    def xen_reply(self, vifs):
        fmts = rust_strings("kernel/src/xen_net.rs", "pub fn command")
        head = [f for f in fmts if f.startswith(("xen {", "grants ", "config "))]
        vif = [f for f in fmts if f.startswith("vif {}/{} state")]
        ctr = [f for f in fmts if f.lstrip().startswith("tx_frames")]
        off = [f for f in fmts if f.lstrip().startswith("offload ")]
        self.assertEqual((len(head), len(vif), len(ctr), len(off)), (3, 1, 1, 1), fmts)
        n = itertools.count(1)
        text, vals = [], {}
        for f in head:
            line, used = fill(f, n)
            text.append(line)
            vals[f.split()[0]] = used
        for fe in vifs:
            # the vif line's numbers; the domid first, handle 0
            line, used = fill(vif[0], iter([fe, 0] + [next(n) for _ in range(10)]))
            text.append(line)
            line, cused = fill(ctr[0], n)
            text.append(line)
            line, oused = fill(off[0], n)
            text.append(line)
            vals[fe] = (used, cused, oused)
        return "aggdom> xen\n" + "\n".join(text) + "\n" + xt.PROMPT, vals

    def test_parse_xen_reads_aggdoms_own_format(self):
        reply, vals = self.xen_reply([5, 7])
        log = "old noise\nxen 4.17 domid 1 xenstore requests 1 errors 0 timeouts 0 watch_events 0 resyncs 0 " \
              "in_flight 0 max_in_flight 0 unknown_replies 0 noent 0\n" + xt.PROMPT + reply + "xen: vif 9/0 detached (guest 1)\n"
        x = xt.parse_xen(log)
        self.assertIsNotNone(x)
        self.assertEqual(list(x["xenstore"].values()), vals["xen"][3:])   # after major, minor, domid
        self.assertEqual(list(x["grants"].values()), vals["grants"][:6])
        self.assertEqual(sorted(x["vifs"]), [(5, 0), (7, 0)])
        for fe in (5, 7):
            v, (used, cused, oused) = x["vifs"][(fe, 0)], vals[fe]
            self.assertEqual(v["state"], used[2])
            self.assertEqual([v[k] for k in xt.VIF_KEYS[7:]], cused)
            self.assertEqual(list(v["offload"].values()), oused)
        self.assertIsNone(xt.parse_xen("no xen reply here"))

    def test_parse_xen_reads_a_build_before_rx_batches(self):
        reply, _ = self.xen_reply([5])
        old = re.sub(r" rx_batches \d+", "", reply)
        self.assertNotEqual(old, reply)
        v = xt.parse_xen(old)["vifs"][(5, 0)]
        self.assertIsNone(v["rx_batches"])
        self.assertEqual(xt.parse_xen(reply)["vifs"][(5, 0)]["xenstore_errors"], v["xenstore_errors"])

    def test_parse_xen_reads_the_last_xenstore_error(self):
        fmts = rust_strings("kernel/src/xen_net.rs", "pub fn command")
        last = [f for f in fmts if f.startswith("xenstore last error ")]
        self.assertEqual(last, ["xenstore last error {:?} on {} {}"])
        reply, _ = self.xen_reply([5])
        self.assertNotIn("last_error", xt.parse_xen(reply)["xenstore"])
        head, rest = reply.split("\ngrants ", 1)
        line = last[0].replace("{:?}", "Acces").replace("{}", "WRITE", 1).replace("{}", "/local/domain/1/backend/vif/5/0/state")
        x = xt.parse_xen(head + "\n" + line + "\ngrants " + rest)
        self.assertEqual(x["xenstore"]["last_error"], "Acces on WRITE /local/domain/1/backend/vif/5/0/state")
        self.assertEqual(x["vifs"][(5, 0)]["frontend"], 5)

    def test_com1_lines_the_tests_wait_for(self):
        fmts = rust_strings("kernel/src/xen_net.rs") + rust_strings("kernel/src/main.rs")
        att = [f for f in fmts if "attached as guest" in f]
        det = [f for f in fmts if f.endswith("detached (guest {})")]
        self.assertTrue(att and det)
        line = fill(att[0], iter([12, 0, 3, 4, 5, 6, 7]))[0]
        self.assertRegex(line, xt.attached_re(12))
        self.assertNotRegex(line, xt.attached_re(1))
        self.assertRegex(fill(det[0], iter([12, 0, 3]))[0], xt.detached_re(12))
        for s in ("aggdom ready", "xen: domid {}", "xen: netback serving", "PV console {}", "xen: bind {ip} applied"):
            self.assertTrue(any(s in f for f in fmts), s)


class Verdict(unittest.TestCase):
    def test_rig_faults_are_named_as_the_rigs(self):
        f = xt.classify("FAIL guest2 vif Connected", ["xl[1]: segfault at 0 ip 1"], [], [])
        self.assertTrue(f.startswith("FAIL dom0 userland crashed (rig): xl[1]: segfault"), f)
        self.assertIn("failing step: guest2 vif Connected", f)
        f = xt.classify("FAIL x", [], ["ping[3]: segfault at 8"], [])
        self.assertTrue(f.startswith("FAIL guest userland crashed (rig)"), f)

    def test_aggdom_failures_are_aggdoms(self):
        self.assertEqual(xt.classify("FAIL guest1 pings dom0", [], [], []),
                         "FAIL aggdom (no rig crash at the failing step): guest1 pings dom0")
        f = xt.classify("FAIL timeout", ["x: segfault at 1"], [], [], "triple fault")
        self.assertTrue(f.startswith("FAIL aggdom crashed (triple fault)"), f)
        self.assertEqual(xt.classify("FAIL test script error: KeyError: 1", [], [], []),
                         "FAIL test script error: KeyError: 1")

    def test_earlier_rig_crashes_do_not_take_the_blame(self):
        f = xt.classify("FAIL guest1 pings dom0", [], [], [], earlier=2)
        self.assertEqual(f, "FAIL aggdom (no rig crash at the failing step; 2 rig crash line(s) before or after "
                            "the failing step, not at it): guest1 pings dom0")

    def test_a_crash_after_the_failure_is_not_its_cause(self):
        # run c-2 (2026-12-07): xl network-detach failed at offset 300 (aggdom's bug); a xenstore-write
        # segfault printed at 350 was blamed for it
        window = xt.failure_window([(100, True), (200, True), (300, False)], None)
        found = [(50, "sh: segfault at 1"), (250, "ls: segfault at 2"), (350, "xenstore-write: segfault at 3")]
        self.assertEqual(xt.split_faults(found, window),
                         (["ls: segfault at 2"], ["sh: segfault at 1", "xenstore-write: segfault at 3"]))
        self.assertEqual(xt.split_faults(found + [(60, "sh: segfault at 1")], None),
                         (["sh: segfault at 1", "ls: segfault at 2", "xenstore-write: segfault at 3"], []))
        self.assertIn("2 userland crash line(s)", xt.classify("PASS", [], [], [], earlier=2))

    def test_failure_window(self):
        marks = [(10, True), (20, True), (30, False), (40, True), (50, False)]
        self.assertEqual(xt.failure_window(marks, None), (20, 30))
        self.assertEqual(xt.failure_window(marks, 45), (20, 30))      # the first failure counts
        self.assertEqual(xt.failure_window(marks[:2], 60), (20, 60))  # an abort after two passes
        self.assertEqual(xt.failure_window([], 5), (0, 5))
        self.assertIsNone(xt.failure_window(marks[:2], None))         # a PASS
        text = "ok\n(XEN) general protection\nsh[1]: segfault at 0\r\nmore\n"
        self.assertEqual(xt.crash_lines_at(text, 100), [(100 + text.index("sh[1]"), "sh[1]: segfault at 0")])

    def test_retries_are_counted_in_the_result_line(self):
        self.assertEqual(xt.classify("PASS", [], [], []), "PASS")
        f = xt.classify("PASS", [], [], ["guest1: Invalid kernel", "guest3: Invalid kernel"])
        self.assertTrue(f.startswith("PASS") and "retried 2x" in f, f)

    def test_first_error_line(self):
        out = "Parsing config\nlibxl: error: libxl_create.c:1: cannot (re-)build domain: -3\n" \
              "xc: error: ... unable to XZ decompress kernel: Invalid kernel\nlast\n"
        self.assertIn("Invalid kernel", xt.first_error_line(out))
        self.assertEqual(xt.first_error_line("a\nlibxl: error: x\nb"), "libxl: error: x")
        self.assertEqual(xt.first_error_line("a\nb\n"), "b")


class ConsoleReads(unittest.TestCase):
    class FakeRig:
        """dom0 whose first `cat` dies in ld.so, as seen in run c-1 on 2026-12-07."""
        def __init__(self, replies):
            self.replies, self.history = list(replies), []

        def run(self, cmd, timeout=300, check=False, quiet=False):
            rc, out = self.replies.pop(0)
            self.history.append({"cmd": cmd, "rc": rc, "out": out, "handled": False, "pos": 0})
            return rc, out

        def say(self, msg):
            pass

    def test_a_read_that_dies_in_dom0_is_retried_and_its_crash_kept(self):
        crash = "Inconsistency detected by ld.so: dl-hwcaps.c: 136: compute_priorities: Assertion failed!"
        t = xt.XenTest.__new__(xt.XenTest)
        t.rig = self.FakeRig([(127, crash), (0, "aggdom ready\nxen: netback serving\n")])
        self.assertIn("netback serving", t.serial())
        # the failed read's output is scanned like any dom0 command's (console reads are not)
        scanned = [h for h in t.rig.history if "/var/log/xen/console/" not in h["cmd"]]
        self.assertEqual([xt.crash_lines(h["out"]) for h in scanned], [[crash]])


class GuestCommands(unittest.TestCase):
    class FakeRig:
        def __init__(self, replies):
            self.replies, self.calls = list(replies), 0

        def guest_run(self, name, cmd, timeout=120):
            self.calls += 1
            return self.replies.pop(0)

        def say(self, msg):
            pass

    def run_twice(self, replies):
        t = xt.XenTest.__new__(xt.XenTest)
        t.rig = self.FakeRig(replies)
        return t.guest_run_twice("soak3", "stop the ping"), t.rig.calls

    def test_a_segfault_inside_a_pipeline_is_run_again(self):
        # soak run s5, cycle 8: the guest's sort died, the pipeline's last grep said rc 0
        crashed = ("[  127.928118] exe[103]: segfault at 2cad0bd2 ip 0000000000433f4b sp 00007ffd0eeff8b0 error 4 "
                   "in busybox[401000+184000]\nSegmentation fault\n100 packets transmitted")
        good = "seqs=0..99 100 packets transmitted"
        self.assertEqual(self.run_twice([(0, crashed), (0, good)]), ((0, good), 2))
        self.assertEqual(self.run_twice([(139, ""), (0, good)]), ((0, good), 2))
        self.assertEqual(self.run_twice([(0, good)]), ((0, good), 1))
        self.assertEqual(self.run_twice([(1, "no such file")]), ((1, "no such file"), 1))


class ShellSnippets(unittest.TestCase):
    """The dom0 scripts run-test-xen.py sends are valid sh once filled in."""

    def test_snippets_parse(self):
        with open(os.path.join(HERE, "run-test-xen.py")) as f:
            tree = ast.parse(f.read())
        snippets = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                    for t in n.targets if isinstance(t, ast.Name) and t.id.endswith("_SH")}
        self.assertEqual(sorted(snippets), ["HOSTILE_SH", "NOMAC_SH"])
        filled = {"HOSTILE_SH": dict(g=5, agg=1, dur=25, name="guest3", mac="00:16:3e:00:00:13", ip="10.0.0.13"),
                  "NOMAC_SH": dict(agg=1, h=7, ip="10.0.0.14")}
        for k, text in snippets.items():
            script = text.format(**filled[k])
            r = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"{k}: {r.stderr}")



class BenchParsers(unittest.TestCase):
    """bench-xen reads iperf3's (3.12) and busybox ping's summaries."""
    TCP = """[  5]   0.00-10.00  sec  56.2 MBytes  47.2 Mbits/sec    3             sender
[  5]   0.00-10.05  sec  55.9 MBytes  46.6 Mbits/sec                  receiver

iperf Done."""
    UDP = """[ ID] Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams
[  5]   0.00-10.00  sec   119 MBytes   100 Mbits/sec  0.000 ms  0/86306 (0%)  sender
[  5]   0.00-10.04  sec  62.5 MBytes  52.2 Mbits/sec  0.211 ms  40960/86306 (47%)  receiver"""

    def test_tcp_takes_the_receiver_line(self):
        mbit, nbytes, loss = xt.parse_iperf(self.TCP)
        self.assertAlmostEqual(mbit, 46.6)
        self.assertAlmostEqual(nbytes, 55.9 * 1024 * 1024)
        self.assertIsNone(loss)

    def test_udp_has_the_receivers_loss(self):
        mbit, nbytes, loss = xt.parse_iperf(self.UDP)
        self.assertAlmostEqual(mbit, 52.2)
        self.assertEqual(loss, 47.0)

    def test_the_last_summary_counts(self):
        # the rig's reader handed back the previous UDP run too (bench-1): its 19 % is not this run's
        self.assertEqual(xt.parse_iperf(self.UDP + "\n" + self.UDP.replace("40960/86306 (47%)", "69/1367 (5%)"))[2], 5.0)

    def test_output_after_the_tag(self):
        out = "old summary\n/ # echo B-$((0+7)); iperf3\nB-7\nnew summary\n"
        self.assertEqual(xt.output_after(out, "B-7"), "new summary\n")
        self.assertEqual(xt.output_after("no tag here", "B-7"), "no tag here")

    def test_kbits_and_no_summary(self):
        self.assertAlmostEqual(xt.parse_iperf("sec  600 KBytes  491 Kbits/sec  receiver")[0], 0.491)
        self.assertIsNone(xt.parse_iperf("iperf3: error - unable to connect to server"))

    def test_ping_summary(self):
        out = ("--- 10.0.0.1 ping statistics ---\n20 packets transmitted, 19 packets received, 5% packet loss\n"
               "round-trip min/avg/max = 0.812/1.503/4.100 ms")
        self.assertEqual(xt.parse_ping(out), (19, 20, 1.503, 4.1))
        self.assertEqual(xt.parse_ping("3 packets transmitted, 0 packets received, 100% packet loss"),
                         (0, 3, None, None))
        self.assertIsNone(xt.parse_ping("ping: sendto: Network unreachable"))


class ProcNet(unittest.TestCase):
    DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:   24500     255    0    3    0     0          0         0    25596     268    0    1    0     0       0          0
"""
    SNMP = """Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 2 64 251 0
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InEchos InEchoReps
Icmp: 230 0 2 0 0 228
IcmpMsg: InType0 OutType8
IcmpMsg: 228 230
"""

    def test_reads_the_device_and_icmp_counters(self):
        c = xt.proc_net_counts(self.DEV + self.SNMP)
        self.assertEqual((c["rx_packets"], c["rx_drop"], c["tx_packets"], c["tx_drop"]), (255, 3, 268, 1))
        self.assertEqual((c["Icmp.InEchoReps"], c["Icmp.InCsumErrors"], c["Ip.InReceives"]), (228, 2, 251))
        self.assertNotIn("IcmpMsg.InType0", c)
        self.assertEqual(xt.proc_net_counts("cat: can't open '/proc/net/dev'"), {})


class Guarded(unittest.TestCase):
    """XenTest.guarded turns every way a script's body can end into a verdict, and always closes."""

    class Fake:
        def __init__(self):
            self.closed = 0

        def on_error(self, e):
            return f"FAIL {e}"

        def close(self):
            self.closed += 1

    def verdict(self, body, **kw):
        f = self.Fake()
        with contextlib.redirect_stderr(io.StringIO()):
            v = xt.XenTest.guarded(f, body, **kw)
        self.assertEqual(f.closed, 1)
        return v

    def test_each_ending(self):
        self.assertEqual(self.verdict(lambda: "PASS"), "PASS")

        def fail():
            raise xt.Fail("guest1 did not boot")
        self.assertEqual(self.verdict(fail), "FAIL guest1 did not boot")

        def bug():
            raise KeyError("x")
        self.assertEqual(self.verdict(bug, what="bench script"), "FAIL bench script error: KeyError: 'x'")

        def interrupted():
            raise KeyboardInterrupt
        self.assertEqual(self.verdict(interrupted), "FAIL interrupted")

class SymbolMap(unittest.TestCase):
    """xenctx -s reads `nm -n`'s lines (address, type, name), sorted by address."""

    def test_nm_of_an_elf_in_address_order(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            dst = os.path.join(d, "map")
            self.assertTrue(xt.write_symbol_map(sys.executable, dst) or
                            subprocess.run(["nm", "-n", sys.executable], capture_output=True).returncode != 0)
            if os.path.exists(dst):
                addrs = [int(l.split()[0], 16) for l in open(dst) if len(l.split()) == 3]
                self.assertEqual(addrs, sorted(addrs))
            self.assertFalse(xt.write_symbol_map(os.path.join(d, "no-such-elf"), os.path.join(d, "m2")))
            self.assertFalse(os.path.exists(os.path.join(d, "m2")))



class ProfileOutput(unittest.TestCase):
    """parse_profile against the reply aggdom-profile's own unit test pins (drivers/profile/src/report.rs),
    and the kernel's `profile reset` line bench-xen waits for (kernel/src/profile.rs)."""

    def reply(self):
        with open(os.path.join(ROOT, "drivers/profile/src/report.rs")) as f:
            src = f.read()
        src = src[src.index("fn the_reply_reads_as_documented"):]
        src = src[:src.index("#[test]")]
        lines = re.findall(r"(profile (?:total|phase|hypercall) [\w. ]+?)\\n", src)
        self.assertGreater(len(lines), 6, src[:500])
        return lines

    def test_reads_the_last_reply_of_aggdoms_format(self):
        lines = self.reply()
        older = [l.replace("calls 100 ", "calls 7 ") for l in lines]
        log = ("aggdom> profile\r\n" + "\r\n".join(older) + "\r\n" + xt.PROMPT + "profile reset\r\n"
               "profile zeroed at uptime 12.345 s\r\n" + xt.PROMPT + "profile\r\n" + "\r\n".join(lines) + "\r\n"
               + xt.PROMPT)
        p = xt.parse_profile(log)
        self.assertIsNotNone(p)
        self.assertEqual(p["lines"], lines)
        self.assertEqual(p["total"]["wall"], {"ms": 10000.0, "tsc_mhz": 1000.0})
        self.assertEqual(p["total"]["busy"]["share_wall"], 25.0)
        self.assertEqual(p["hypercall"]["grant_copy"],
                         {"calls": 100.0, "ms": 1234.5, "us_per_call": 12345.0, "share_busy": 49.4})
        self.assertIn("share_wall", p["hypercall"]["sched_poll"])
        self.assertNotIn("share_busy", p["phase"]["block"])
        self.assertEqual(p["phase"]["domain"]["share_busy"], 80.0)

    def test_no_reply_or_one_cut_short_is_none(self):
        lines = self.reply()
        self.assertIsNone(xt.parse_profile("aggdom> profile\nerror: unknown command 'profile' (try 'help')\n"))
        self.assertIsNone(xt.parse_profile("aggdom> profile\n" + lines[0] + "\n"))
        self.assertIsNone(xt.parse_profile("aggdom> profile\n" + lines[0] + "\nprofile total busy ms x\n"))

    def test_per_frame_figures(self):
        p = xt.parse_profile("\n".join(self.reply()) + "\n")
        self.assertIsNone(xt.profile_per_frame(p, 0, 0))
        self.assertIsNone(xt.profile_per_frame(p, None, None))
        line = xt.profile_per_frame(p, 900, 100, copy_ops=1500)
        # busy 2500 ms over 1000 frames at 1000 MHz; 101 hypercalls in 1234.5 ms; 100 grant copies
        self.assertIn("busy 2500.00 us = 2500000 cycles", line)
        self.assertIn("hypercalls 0.101 (1234.50 us)", line)
        self.assertIn("grant_copy 0.100 calls (1234.50 us)", line)
        self.assertIn("evtchn_send 0.000 calls (0.00 us)", line)
        self.assertIn("grant copy ops 1.50", line)
        self.assertNotIn("Xen:", line)
        # under Xen, the runstate lines follow (report.rs's xens_runstate_follows_in_its_own_lines)
        p = xt.parse_profile("\n".join(self.reply() + ["profile runstate running ms 2300.0 share_wall 23.0",
                                                         "profile runstate runnable ms 100.0 share_wall 1.0"]))
        self.assertEqual(p["runstate"]["runnable"], {"ms": 100.0, "share_wall": 1.0})
        self.assertIn("busy 2500.00 us = 2500000 cycles (Xen: running 2300.00 us)",
                      xt.profile_per_frame(p, 1000, 0))

    def test_the_reset_line_bench_xen_waits_for(self):
        fmts = rust_strings("kernel/src/profile.rs")
        self.assertTrue(any(re.search(xt.PROFILE_ZEROED, f) for f in fmts), fmts)
        self.assertNotRegex("aggdom> profile reset", xt.PROFILE_ZEROED)     # not the command's echo
        with open(os.path.join(ROOT, "drivers/profile/src/report.rs")) as f:
            self.assertIn('"profile total wall ms {} tsc_mhz {}"', f.read())


if __name__ == "__main__":
    unittest.main()
