"""Host checks of restart-xen.py's pure helpers and guest snippets; no rig needed.

Run by `cargo test -p aggdom-xen-test`, or: python3 -m unittest discover -s tests/xen -p 'test_*.py'.
The awk summary is run on a probe log as the guests write it, so the parser is checked against what the
snippet really prints.
"""
import importlib.util, os, subprocess, sys, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
_spec = importlib.util.spec_from_file_location("restart_xen", os.path.join(HERE, "restart-xen.py"))
rx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rx)

# A guest's probe log around a restart, as PROBE_SH and HOTPLUG_SH append to it: replies every ~0.25 s,
# eth0 gone at the detach (a shell's complaint in the log too), back down at the attach and configured,
# replies again.
LOG = "\n".join(
    ["100.00 eth0 up"] +
    [f"{100 + 0.25 * i:.2f} ok" for i in range(8)] +          # 100.00 .. 101.75
    [f"{101.9:.2f} crashed"] +                                 # its ping died of a signal (rig)
    [f"{102 + 0.2 * i:.2f} no" for i in range(5)] +           # 102.00 .. 102.80: unreachable at once
    ["103.05 eth0 gone", "sh: can't open /sys/class/net/eth0/flags: no such file"] +
    [f"{103 + 1.2 * i:.2f} no" for i in range(20)] +          # 103.00 .. 125.80
    ["126.45 eth0 down", "126.85 eth0 up"] +
    [f"{127 + 1.2 * i:.2f} no" for i in range(2)] +           # 127.00, 128.20
    [f"{129.5 + 0.25 * i:.2f} ok" for i in range(3)] + ["130.30 crashed"] +
    [f"{130.25 + 0.25 * i:.2f} ok" for i in range(3)]) + "\n"  # 129.50 .. 130.75, a crash inside


def summarize(log):
    """SUMMARY_AWK run on `log` written where the snippet reads it."""
    awk = rx.SUMMARY_AWK.replace(rx.LOG, "-")
    return subprocess.run(["sh", "-c", awk], input=log, capture_output=True, text=True, check=True).stdout


class ProbeSummary(unittest.TestCase):
    def test_the_awk_summary_is_runs_and_eth0_changes(self):
        out = summarize(LOG)
        runs, events, crashed = rx.probe_log(out)
        self.assertEqual(crashed, 2)
        # eth0's lines are printed as they come and, as crashed probes, do not cut a run
        self.assertEqual(runs, [("ok", 100.0, 101.75, 8), ("no", 102.0, 128.2, 27), ("ok", 129.5, 130.75, 6)])
        self.assertEqual(events, [(100.0, "up"), (103.05, "gone"), (126.45, "down"), (126.85, "up")])

    def test_the_outage_is_the_longest_time_without_a_reply(self):
        runs, events, _ = rx.probe_log(summarize(LOG))
        o = rx.outage(runs, events)
        self.assertEqual((o["before"], o["after"], o["secs"], o["lost"]), (101.75, 129.5, 27.75, 27))
        self.assertEqual((o["replies_before"], o["replies_after"]), (8, 6))
        self.assertEqual(o["eth0"], [(1.3, "gone"), (24.7, "down"), (25.1, "up")])
        line = rx.outage_line("guest1", o)
        self.assertIn("OUTAGE guest1: 27.8s without a reply", line)
        self.assertIn("27 probes unanswered", line)
        self.assertIn("gone +1.3s, down +24.7s, up +25.1s", line)

    def test_the_longest_of_several_gaps(self):
        runs = [("ok", 1, 2, 3), ("no", 2.2, 2.2, 1), ("ok", 2.5, 9, 20), ("no", 9.2, 19, 9), ("ok", 20, 21, 4),
                ("no", 21.2, 22, 2), ("ok", 23, 24, 5)]
        o = rx.outage(runs)
        self.assertEqual((o["before"], o["after"], o["lost"], o["replies_before"], o["replies_after"]),
                         (9, 20, 9, 23, 9))

    def test_no_recovery_or_no_loss_is_none(self):
        self.assertIsNone(rx.outage([("ok", 1, 5, 10), ("no", 5.2, 50, 80)]))
        self.assertIsNone(rx.outage([("ok", 1, 50, 200)]))
        self.assertIsNone(rx.outage([]))
        self.assertEqual(rx.outage_line("g", None), "OUTAGE g: none measured (no reply after a lost one)")

    def test_an_echoed_command_line_is_not_read_as_a_run(self):
        out = rx.probe_log("# kill $(cat /tmp/probe.pid); awk '$2==\"eth0\"{print ...}'\nok 1.00 2.00 3\ncrashed 0\n")
        self.assertEqual(out, ([("ok", 1.0, 2.0, 3)], [], 0))


class Snippets(unittest.TestCase):
    def test_the_guest_loops_parse_as_shell(self):
        for script in (rx.PROBE_SH.format(ip="10.0.0.1", interval=0.2), rx.HOTPLUG_SH.format(ip="10.0.0.11"),
                       rx.SUMMARY_AWK):
            r = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"{script}\n{r.stderr}")

    def test_the_hotplug_loop_configures_the_address_it_is_given(self):
        s = rx.HOTPLUG_SH.format(ip="10.0.0.12")
        self.assertIn("ip addr add 10.0.0.12/24 dev eth0", s)
        self.assertIn("ip link set eth0 up", s)


class StepTimes(unittest.TestCase):
    def test_seconds_since_the_start(self):
        out = ("1765100000.100000000\n1765100000.200000000 xl destroy aggdom\n"
               "1765100004.200000000 xl create -p /share/cfg/aggdom.cfg\n"
               "1765100040.000000000 xl network-detach guest1 0\n1765100041.000000000 rc=0\n")
        self.assertEqual(rx.step_times(out), [(0.1, "xl destroy aggdom"), (4.1, "xl create -p /share/cfg/aggdom.cfg"),
                                              (39.9, "xl network-detach guest1 0"), (40.9, "rc=0")])
        self.assertEqual(rx.step_times("nothing timed\n"), [])


if __name__ == "__main__":
    unittest.main()
