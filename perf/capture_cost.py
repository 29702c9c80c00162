# SPDX-License-Identifier: BSD-3-Clause
"""What a running capture costs the data path.

One xfrmgw in the lab topology (perf/README.md: net_pcap rx on port 0,
net_null tx on port 1, one worker), outbound AES-GCM-128 with one SA, and
dpdk-dumpcap attached to port 1 (after encryption). In every round the same
gateway is measured three times in turn: with no capture, with a capture
whose filter matches nothing (the BPF runs in the worker on every packet,
nothing is copied) and with a full capture (every packet copied into the
ring dumpcap empties; written to /dev/null so the disk is not measured).
The figures are ratios against the no-capture runs of the same invocation.

    /usr/bin/python3 perf/capture_cost.py [--sizes 64,1420] [--rounds 3]

Run as root after scripts/build.sh; hugepages are set up and given back as
for perf/run.py (rte_pdump's secondary process needs them).
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import traffic  # noqa: E402
import xfrmgw_lab  # noqa: E402
from run import ROOT, Hugepages, machine, med, spread  # noqa: E402

MODES = ("none", "filter", "full")
NOTHING = "udp port 9"      # outbound ESP on port 1 never matches


def dumpcap(prefix, mode):
    """dpdk-dumpcap on port 1, started and attached; None for no capture."""
    if mode == "none":
        return None
    # -q: its running count would fill the pipe nobody reads, and a
    # dumpcap blocked on that write captures nothing more.
    cmd = ["dpdk-dumpcap", "--file-prefix=%s" % prefix, "-q", "-i", str(traffic.PORT_NULL),
           "-w", "/dev/null"]
    if mode == "filter":
        cmd += ["-f", NOTHING]
    dc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in dc.stdout:
        seen.append(line)
        if line.startswith("File: "):
            return dc
    dc.wait()
    raise RuntimeError("dpdk-dumpcap did not start (exit %s): %s" % (dc.returncode,
                                                                      "".join(seen)))


def stop(dc):
    """Stop dumpcap; @return (received, dropped) it reports."""
    if dc is None:
        return None
    dc.send_signal(2)
    out = dc.communicate(timeout=30)[0]
    rec = re.search(r"Packets received/dropped on interface '[^']*': (\d+)/(\d+)", out)
    return (int(rec.group(1)), int(rec.group(2))) if rec else None


def measure(gw, prefix, mode, seconds, warmup):
    dc = dumpcap(prefix, mode)
    try:
        time.sleep(warmup)
        first = gw.sample()
        time.sleep(seconds)
        r = xfrmgw_lab.rates(first, gw.sample())
    finally:
        counts = stop(dc)
    if r["drops"]:
        raise RuntimeError("xfrmgw dropped packets while measured: %s" % r["drops"])
    return r["pps_tx"], counts


def case(binary, scratch, size, rounds, seconds, warmup):
    prefix = "xgp-capcost"
    cap = traffic.capture(scratch, "out", size, "gcm", 1)
    # dpdk-dumpcap (22.11) dies with SIGSEGV in net_pcap's argument parser
    # when the vdev's arguments are 65 characters long, as they are for the
    # 1420-byte capture's path: a link of another length.
    short = "/tmp/xgcc%d.pcap" % size
    if os.path.lexists(short):
        os.unlink(short)
    os.symlink(cap, short)
    cap = short
    gw = xfrmgw_lab.Gateway(binary, scratch, "out", cap, prefix=prefix,
                            mbufs=max(16384, traffic.count_pcap(cap) + 8192))
    pps = {m: [] for m in MODES}
    seen = {}
    try:
        gw.install("out", "gcm", 1)
        for _ in range(rounds):
            for m in MODES:
                rate, counts = measure(gw, prefix, m, seconds, warmup)
                pps[m].append(rate)
                if counts:
                    seen[m] = counts
    finally:
        gw.stop()
        os.unlink(short)
    return pps, seen


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xfrmgw", default=os.path.join(ROOT, "build", "app", "xfrmgw"))
    ap.add_argument("--scratch", default="/var/tmp/xfrmgw-perf")
    ap.add_argument("--sizes", default="64,1420")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (hugepages, DPDK)")
    os.makedirs(a.scratch, exist_ok=True)
    print("machine: %s" % machine())
    print("| frame | no capture Mpps | filter (matches nothing) | full capture | "
          "dumpcap received/dropped (full, last run) |")
    print("|---|---|---|---|---|")
    with Hugepages():
        for size in [int(s) for s in a.sizes.split(",")]:
            pps, seen = case(a.xfrmgw, a.scratch, size, a.rounds, a.seconds, a.warmup)
            base = med(pps["none"])

            def cell(m):
                return "%.2f (%s) = %.0f %%" % (med(pps[m]) / 1e6, spread(pps[m]),
                                                100 * med(pps[m]) / base)
            full = seen.get("full")
            print("| %d B | %.2f (%s) | %s | %s | %s |" % (
                size, base / 1e6, spread(pps["none"]), cell("filter"), cell("full"),
                "%d / %d" % full if full else "?"), flush=True)


if __name__ == "__main__":
    main()
