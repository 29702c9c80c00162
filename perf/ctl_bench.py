# SPDX-License-Identifier: BSD-3-Clause
"""Control-plane benchmark: install N outbound SAs and N out policies through
the XFRM socket, batched as charon and `ip -batch` send them, while a worker
forwards a looping capture.

Reports objects/s until the last ACK, the time until the data plane holds
everything (telemetry /xfrmgw/dp), the snapshot build time, memory per SA and
per policy (RSS and DPDK heap) and the workers' longest stall (/xfrmgw/lcore,
"n/a" until the data path provides it).

Run as root:  /usr/bin/python3 perf/ctl_bench.py [--xfrmgw build/app/xfrmgw] [-n 100000]
              /usr/bin/python3 perf/ctl_bench.py --smoke
"""
import argparse
import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import traffic  # noqa: E402
from xfrmgw_lab import Gateway  # noqa: E402
from xfrm_msg import (Client, XFRM_MSG_NEWPOLICY, XFRM_MSG_NEWSA,  # noqa: E402
                      policy_payload, sa_payload)

PREFIX = "xgp-ctl"
# Traffic without a policy yet is routed in the clear, so that the workers
# forward all along.
ROUTE = "[route cgn]\nprefix = 100.64.0.0/10\nvia = %s\nport = 1\n" % traffic.TUN_REMOTE


def mem(gw):
    return {"rss": gw.rss(), "heap": gw.heap()}


def max_stall(gw):
    """The longest poll round of any worker so far (/xfrmgw/lcore)."""
    v = gw.tel.cmd("/xfrmgw/lcore") or {}
    return max((w["max_stall_us"] for w in v.values()), default=None)


def tx_packets(gw):
    s = gw.tel.cmd("/ethdev/stats,1") or {}
    return int(s.get("opackets", 0))


def phase(gw, client, name, payloads, mtype, nsa, npol, batch, window, res):
    before = mem(gw)
    tx0 = tx_packets(gw)
    t0 = time.monotonic()
    errors = client.install(payloads, mtype, batch, window)
    t_ack = time.monotonic() - t0
    if errors:
        raise RuntimeError("%s: %d NACKs, first %d" % (name, len(errors), errors[0]))
    d = gw.wait_dp(nsa, npol, timeout=600)
    t_dp = time.monotonic() - t0
    time.sleep(0.3)     # retired snapshots reclaimed
    after = mem(gw)
    res[name] = {
        "objects": len(payloads), "ack_s": t_ack, "obj_per_s": len(payloads) / t_ack,
        "dp_s": t_dp, "build_ms_last": d.get("last_build_us", 0) / 1000.0,
        "build_ms_max": d.get("max_build_us", 0) / 1000.0, "builds": d.get("builds"),
        "rss_per_obj": (after["rss"] - before["rss"]) / len(payloads),
        "heap_per_obj": (after["heap"] - before["heap"]) / len(payloads),
        "tx_packets": tx_packets(gw) - tx0,
    }


def run(xfrmgw=None, n=100000, batch=64, window=8, log_level="info"):
    """Run the benchmark; returns a dict of results (see table())."""
    xfrmgw = xfrmgw or os.environ.get("XFRMGW", "build/app/xfrmgw")
    res = {"n": n, "batch": batch, "window": window}
    with tempfile.TemporaryDirectory(prefix="xgctl") as wd:
        gw = Gateway(xfrmgw, wd, "out", traffic.capture(wd, "out", 64, "gcm", 8), PREFIX,
                     extra_conf=ROUTE, log_level=log_level)
        try:
            d0 = gw.wait_dp(0, 0, timeout=30)
            b0 = d0.get("builds", 0)
            time.sleep(0.5)
            c = Client(gw.sock)
            stall0 = max_stall(gw)
            gw.tel.cmd("/xfrmgw/lcore,reset")
            time.sleep(0.1)
            sas = [sa_payload(k, "out", "gcm", 32) for k in range(n)]
            pols = [policy_payload(k, "out") for k in range(n)]
            t0 = time.monotonic()
            phase(gw, c, "sa", sas, XFRM_MSG_NEWSA, n, 0, batch, window, res)
            phase(gw, c, "policy", pols, XFRM_MSG_NEWPOLICY, n, n, batch, window, res)
            total = time.monotonic() - t0
            res["total_obj_per_s"] = 2 * n / (res["sa"]["ack_s"] + res["policy"]["ack_s"])
            res["total_dp_s"] = total
            res["max_stall_us"] = max_stall(gw)
            res["stall_before_us"] = stall0
            d = gw.tel.cmd("/xfrmgw/dp") or {}
            res["builds"] = d.get("builds", 0) - b0
            res["max_build_ms"] = d.get("max_build_us", 0) / 1000.0
            res["rss_final"] = gw.rss()
            res["heap_final"] = gw.heap()
            c.close()
        finally:
            log = gw.stop()
        res["log_tail"] = log[-2000:]
    return res


def table(r):
    def f(v, fmt="%.0f"):
        return "n/a" if v is None else fmt % v
    rows = [
        ("objects (SAs + policies)", "%d + %d" % (r["n"], r["n"])),
        ("batch / window (datagrams)", "%d / %d" % (r["batch"], r["window"])),
        ("SAs/s until last ACK", f(r["sa"]["obj_per_s"])),
        ("policies/s until last ACK", f(r["policy"]["obj_per_s"])),
        ("objects/s until last ACK (both)", f(r["total_obj_per_s"])),
        ("SAs: last ACK / in data plane (s)", "%.2f / %.2f" % (r["sa"]["ack_s"],
                                                                r["sa"]["dp_s"])),
        ("policies: last ACK / in data plane (s)", "%.2f / %.2f" % (r["policy"]["ack_s"],
                                                                     r["policy"]["dp_s"])),
        ("snapshot builds during the run", f(r["builds"], "%d")),
        ("last build with all objects (ms)", f(r["policy"]["build_ms_last"], "%.1f")),
        ("longest build (ms)", f(r["max_build_ms"], "%.1f")),
        ("bytes per SA (RSS / DPDK heap)", "%s / %s" % (f(r["sa"]["rss_per_obj"]),
                                                        f(r["sa"]["heap_per_obj"]))),
        ("bytes per policy (RSS / DPDK heap)", "%s / %s" % (f(r["policy"]["rss_per_obj"]),
                                                            f(r["policy"]["heap_per_obj"]))),
        ("packets sent on port 1 during SAs / policies", "%d / %d" % (
            r["sa"]["tx_packets"], r["policy"]["tx_packets"])),
        ("longest worker stall (us)", f(r["max_stall_us"])),
    ]
    out = ["| metric | value |", "|---|---|"]
    out += ["| %s | %s |" % row for row in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xfrmgw", default=os.environ.get("XFRMGW", "build/app/xfrmgw"))
    ap.add_argument("-n", type=int, default=100000, help="SAs and policies (each)")
    ap.add_argument("--batch", type=int, default=64, help="messages per datagram")
    ap.add_argument("--window", type=int, default=8, help="datagrams unanswered")
    ap.add_argument("--smoke", action="store_true", help="1000 objects of each")
    ap.add_argument("--json", action="store_true", help="print the dict as JSON too")
    a = ap.parse_args()
    # timeout(1) and ^C: leave through run()'s finally, which stops the daemon.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    r = run(a.xfrmgw, 1000 if a.smoke else a.n, a.batch, a.window)
    print(table(r))
    if a.json:
        print(json.dumps({k: v for k, v in r.items() if k != "log_tail"}, indent=1))


if __name__ == "__main__":
    main()
