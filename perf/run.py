#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The perf lab: xfrmgw against DPDK's ipsec-secgw and the IPsec-MB ceiling,
in one run on one machine.

Both gateways get the same lcores (main 0, worker 1), the same vdevs
(net_pcap rx with infinite_rx, net_null tx), the same SAs and the same
captures (traffic.py); they run alternately, A B A B, for several rounds,
and every figure is a median over rounds with its spread (min-max). The
rate is the null port's opackets per second over a fixed interval after
warm-up, per worker lcore. ipsec-secgw runs both with lookaside crypto
and with cpu-crypto SAs; the table compares against its better median.
The crypto-only ceiling is dpdk-test-crypto-perf on the same lcore.

Run as root from the checkout (build first: sh scripts/build.sh):
    /usr/bin/python3 perf/run.py            # the full lab, ~13 min
    /usr/bin/python3 perf/run.py --smoke    # seconds: both forward, output decrypts
    /usr/bin/python3 perf/run.py --flood    # only the bad-ESP flood figures, ~2 min
Results: perf/results/ (results.md, results.json, throughput.png) unless
--out says otherwise.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ceiling  # noqa: E402
import ctl_bench  # noqa: E402
import flood  # noqa: E402
import secgw  # noqa: E402
import traffic  # noqa: E402
import xfrmgw_lab  # noqa: E402

ROOT = os.path.dirname(HERE)
GATEWAYS = ("xfrmgw", "secgw-lookaside", "secgw-cpu")
HUGEPAGES_2M = 2048           # 4 GiB: ipsec-secgw with 100000 SAs takes ~2.5


def tsc_hz():
    """The TSC rate, which is what DPDK counts cycles in (the VM's nominal
    clock as /proc/cpuinfo gives it)."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1e6
    raise RuntimeError("no cpu MHz in /proc/cpuinfo")


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    flags = open("/proc/cpuinfo").read()
    isa = [x for x in ("vaes", "avx512f", "sha_ni") if " %s" % x in flags]
    return "%s, %d CPUs, %.0f MHz TSC, %s, kernel %s" % (
        model, os.cpu_count(), tsc_hz() / 1e6, "+".join(isa), platform.release())


class Hugepages:
    """2 MiB hugepages for the run, mounted and reserved here and given
    back afterwards, whatever happens."""

    NR = "/proc/sys/vm/nr_hugepages"

    def __enter__(self):
        self.old = int(open(self.NR).read())
        self.mounted = False
        if "hugetlbfs" not in open("/proc/mounts").read():
            os.makedirs("/dev/hugepages", exist_ok=True)
            subprocess.run(["mount", "-t", "hugetlbfs", "nodev", "/dev/hugepages"], check=True)
            self.mounted = True
        if self.old < HUGEPAGES_2M:
            with open(self.NR, "w") as f:
                f.write(str(HUGEPAGES_2M))
        got = int(open(self.NR).read())
        if got < 512:
            raise RuntimeError("only %d hugepages could be reserved" % got)
        for mod in (secgw, ceiling, xfrmgw_lab):
            mod.HUGEPAGES = True
        return self

    def __exit__(self, *exc):
        for mod in (secgw, ceiling, xfrmgw_lab):
            mod.HUGEPAGES = False
        if self.old < HUGEPAGES_2M:
            with open(self.NR, "w") as f:
                f.write(str(self.old))
        if self.mounted:
            subprocess.run(["umount", "/dev/hugepages"], check=False)


class Lab:
    def __init__(self, scratch, xfrmgw, seconds, warmup, rounds):
        self.scratch, self.xfrmgw = scratch, xfrmgw
        self.seconds, self.warmup, self.rounds = seconds, warmup, rounds
        self.secgw = secgw.build(scratch)
        self.rows = []

    def once(self, gw, direction, alg, size, nsa):
        cap = traffic.capture(self.scratch, direction, size, alg, nsa)
        if gw == "xfrmgw":
            r = xfrmgw_lab.run(self.xfrmgw, self.scratch, direction, alg, nsa, cap,
                               self.seconds, self.warmup)
            if r["drops"]:
                raise RuntimeError("xfrmgw dropped packets while measured: %s" % r["drops"])
            return r["pps_tx"]
        cfg = os.path.join(self.scratch, "secgw-%s-%s-%d-%s.cfg" % (direction, alg, nsa, gw))
        secgw.write_config(cfg, direction, alg, nsa, cpu_crypto=gw == "secgw-cpu")
        return secgw.run(self.secgw, cfg, cap, self.seconds, self.warmup)["pps_tx"]

    def case(self, direction, alg, size, nsa, gateways=GATEWAYS, ceil=True):
        """Every gateway once per round, in turn, and the crypto ceiling
        for the same frames right after them: A B C D A B C D ... (the
        machine's speed drifts; a ceiling taken apart would too)."""
        pps = {g: [] for g in gateways}
        mops = []
        for _ in range(self.rounds):
            for g in gateways:
                pps[g].append(self.once(g, direction, alg, size, nsa))
            if ceil:
                mops.append(ceiling_pps(alg, size))
        row = dict(direction=direction, alg=alg, size=size, nsa=nsa, pps=pps, ceiling=mops)
        self.rows.append(row)
        print(summary(row), flush=True)
        return row


def mean_frame(size):
    pat = traffic.pattern(size)
    return sum(pat) / len(pat)


def med(v):
    return statistics.median(v) if v else 0.0


def best_secgw(row):
    c = [(med(row["pps"][g]), g) for g in row["pps"] if g.startswith("secgw")]
    return max(c) if c else (0.0, None)


def summary(row):
    x = med(row["pps"]["xfrmgw"])
    s, g = best_secgw(row)
    return "%s %s %s B, %d SA: xfrmgw %.2f Mpps, %s %.2f Mpps, ratio %.2f" % (
        row["direction"], row["alg"], row["size"], row["nsa"], x / 1e6, g, s / 1e6,
        x / s if s else 0)


def spread(v):
    return "%.2f-%.2f" % (min(v) / 1e6, max(v) / 1e6) if v else "-"


def ceiling_pps(alg, size):
    """Crypto-only operations per second for a frame size, measured now
    (imix: from its sizes' cycles)."""
    sizes = sorted(set(traffic.pattern(size)))
    res = ceiling.run(alg, frame_sizes=sizes, total_ops=2000000)
    if size == "imix":
        return ceiling.imix(res, tsc_hz())["mops"] * 1e6
    return res[size]["mops"] * 1e6


def ceiling_of(row):
    return med(row.get("ceiling") or [])


def table(rows):
    hz = tsc_hz()
    out = ["| dir | alg | frame B | SAs | xfrmgw Mpps (spread) | Gbps | cycles/pkt | "
           "ipsec-secgw best Mpps (spread, mode) | cycles/pkt | xfrmgw / secgw | "
           "crypto ceiling Mops (cycles) | xfrmgw % of ceiling |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        x = med(r["pps"]["xfrmgw"])
        s, g = best_secgw(r)
        c = ceiling_of(r)
        out.append("| %s | %s | %s | %d | %.2f (%s) | %.1f | %.0f | %s | %s | %s | %s | %s |" % (
            r["direction"], r["alg"], r["size"], r["nsa"], x / 1e6, spread(r["pps"]["xfrmgw"]),
            x * mean_frame(r["size"]) * 8 / 1e9, hz / x if x else 0,
            "%.2f (%s, %s)" % (s / 1e6, spread(r["pps"][g]), g[6:]) if g else "-",
            "%.0f" % (hz / s) if s else "-", "%.2f" % (x / s) if s else "-",
            "%.2f (%.0f)" % (c / 1e6, hz / c) if c else "-",
            "%.0f %%" % (100 * x / c) if c else "-"))
    return "\n".join(out)


def replay_cost(scratch, binary, nsa=1000):
    """One pass of >= 1M inbound packets with increasing sequence numbers:
    window 0 (no check) against window 64."""
    cap = traffic.replay_capture(scratch, nsa)
    res = {}
    for w in (0, 64):
        r = xfrmgw_lab.run(binary, scratch, "in", "gcm", nsa, cap, window=w, one_pass=True)
        if r["drops"]:
            raise RuntimeError("drops with replay window %d: %s" % (w, r["drops"]))
        res[w] = r
        print("replay window %d: %d packets in one pass, %.2f Mpps" % (
            w, r["total_tx"], r["pps_tx"] / 1e6), flush=True)
    return res


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    sizes = [s for s in traffic.SIZES if s != "imix"]
    for (i, direction) in enumerate(("out", "in")):
        for (j, alg) in enumerate(traffic.ALGS):
            ax = axes[i][j]
            sel = {r["size"]: r for r in rows if r["direction"] == direction and
                   r["alg"] == alg and r["nsa"] == 1 and r["size"] != "imix"}
            xs = [s for s in sizes if s in sel]
            if not xs:
                continue
            lines = [("xfrmgw", [med(sel[s]["pps"]["xfrmgw"]) for s in xs]),
                     ("ipsec-secgw (best)", [best_secgw(sel[s])[0] for s in xs])]
            lines.append(("crypto ceiling", [ceiling_of(sel[s]) for s in xs]))
            ax2 = ax.twinx()
            for name, v in lines:
                ax.plot(xs, [p / 1e6 for p in v], marker="o", label=name + " Mpps")
                ax2.plot(xs, [p * s * 8 / 1e9 for p, s in zip(v, xs)], linestyle="--",
                         marker="x", label=name + " Gbps")
            ax.set_title("%s, %s, 1 SA, per worker lcore" % (
                "outbound" if direction == "out" else "inbound",
                "AES-GCM-128" if alg == "gcm" else "AES-CBC-128 + HMAC-SHA-256-128"))
            ax.set_xlabel("frame bytes")
            ax.set_ylabel("Mpps (solid)")
            ax2.set_ylabel("Gbps (dashed)")
            ax.legend(loc="upper left", fontsize=7)
            ax2.legend(loc="upper right", fontsize=7)
    fig.suptitle(machine(), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def write_results(out, res):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    md = ["# xfrmgw performance lab results", "",
          "Machine: %s." % res["machine"], "",
          "Date: %s. Command: `%s` (%s). Commit %s." % (
              res["date"], res["command"], res["duration"], res["commit"]), "",
          "Per worker lcore (lcore 1; lcore 0 is the main lcore), net_pcap rx with "
          "infinite_rx to net_null, 2 MiB hugepages, tunnel mode IPv4. Median over %d rounds "
          "(A B A B), spread min-max. Frame bytes: the plaintext Ethernet frame without FCS "
          "(imix 7:4:1 of 64/570/1420). Gbps: plaintext frames. cycles/pkt: TSC cycles "
          "per packet on the worker. Ceiling: dpdk-test-crypto-perf, crypto_aesni_mb, same "
          "lcore, buffer = the ESP payload of the frame, measured in every round right after "
          "the gateways (median)." % res["rounds"], "",
          table(res["rows"]), ""]
    if res.get("forwarding"):
        md += ["Plain forwarding through xfrmgw (no SA, no policy): the harness's own I/O "
               "cost on this machine.", "",
               "| frame B | Mpps | cycles/pkt |", "|---|---|---|"]
        md += ["| %s | %.2f | %.0f |" % (s, v / 1e6, tsc_hz() / v)
               for s, v in res["forwarding"].items()]
        md.append("")
    if res.get("replay"):
        md += ["Inbound AES-GCM-128 64 B, 1000 SAs, one pass of a %d-packet capture with "
               "increasing sequence numbers (no infinite_rx; libpcap reads the file):" %
               res["replay"][0]["total_tx"], "",
               "| replay window | Mpps | packets out |", "|---|---|---|"]
        md += ["| %s | %.2f | %d |" % (w, r["pps_tx"] / 1e6, r["total_tx"])
               for w, r in res["replay"].items()]
        md.append("")
    if res.get("flood"):
        md += ["Floods: " + flood.SETUP, "", flood.table(res["flood"]), ""]
    if res.get("control"):
        md += ["Control plane (perf/ctl_bench.py, while the worker forwards):", "",
               ctl_bench.table(res["control"]), ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md))
    if res["rows"]:
        plot(res["rows"], os.path.join(out, "throughput.png"))
    return "\n".join(md)


def forwarding(scratch, binary, seconds, warmup):
    """xfrmgw forwarding in the clear: the pcap/null harness cost."""
    res = {}
    conf = "[route cgn]\nprefix = 100.64.0.0/10\nvia = %s\nport = 1\n" % traffic.TUN_REMOTE
    for size in (64, 1420):
        cap = traffic.capture(scratch, "out", size, "gcm", 1)
        gw = xfrmgw_lab.Gateway(binary, scratch, "out", cap, extra_conf=conf)
        try:
            time.sleep(warmup)
            a = gw.sample()
            time.sleep(seconds)
            res[size] = xfrmgw_lab.rates(a, gw.sample())["pps_tx"]
        finally:
            gw.stop()
    return res


def smoke(scratch, binary):
    """Both gateways forward both ways; xfrmgw's output decrypts (scapy)."""
    lab = Lab(scratch, binary, seconds=1, warmup=0.5, rounds=1)
    for direction in ("out", "in"):
        row = lab.case(direction, "gcm", 64, 1, ceil=False)
        for g, v in row["pps"].items():
            if not v[0] > 0:
                raise AssertionError("%s forwarded nothing %s" % (g, direction))
    # Junk mixed in: exactly its share counted under the right counter
    # (flood.once checks), valid traffic still decrypted and forwarded.
    for mix in flood.MIXES:
        if not flood.once(binary, scratch, mix, 0.5, 0.5)["valid"] > 0:
            raise AssertionError("no valid traffic forwarded with junk: %s" % mix[0])
    return lab.rows, xfrmgw_lab.verify_output(binary, scratch, "out", "gcm", nsa=4)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xfrmgw", default=os.path.join(ROOT, "build", "app", "xfrmgw"))
    ap.add_argument("--scratch", default="/var/tmp/xfrmgw-perf",
                    help="where ipsec-secgw is built and captures are kept")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--flood", action="store_true", help="only the flood figures")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (hugepages, DPDK)")
    t0 = time.time()
    with Hugepages():
        if a.smoke:
            rows, checked = smoke(a.scratch, a.xfrmgw)
            print("smoke: ok, %d xfrmgw ESP packets decrypted by scapy" % checked)
            return
        if a.flood:
            res = flood.run(a.xfrmgw, a.scratch, a.rounds, a.seconds, a.warmup)
            print(flood.table(res))
            with open(os.path.join(a.out, "flood.md"), "w") as f:
                f.write("# Floods of bad ESP (perf/run.py --flood)\n\nMachine: %s. Date: %s. "
                        "Median over %d rounds (min-max).\n\n%s\n\n%s\n"
                        % (machine(), datetime.date.today().isoformat(), a.rounds,
                           flood.SETUP, flood.table(res)))
            return
        lab = Lab(a.scratch, a.xfrmgw, a.seconds, a.warmup, a.rounds)
        for direction in ("out", "in"):
            for alg in traffic.ALGS:
                for size in traffic.SIZES:
                    lab.case(direction, alg, size, 1)
        for nsa in (1000, 100000):
            lab.case("out", "gcm", 64, nsa)
            lab.case("in", "gcm", 64, nsa)
        res = dict(machine=machine(), date=datetime.date.today().isoformat(),
                   command="/usr/bin/python3 perf/run.py", rounds=a.rounds,
                   commit=subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                         capture_output=True, text=True).stdout.strip(),
                   rows=lab.rows)
        res["forwarding"] = forwarding(a.scratch, a.xfrmgw, a.seconds, a.warmup)
        res["replay"] = replay_cost(a.scratch, a.xfrmgw)
        res["flood"] = flood.run(a.xfrmgw, a.scratch, a.rounds, a.seconds, a.warmup)
        res["control"] = ctl_bench.run(a.xfrmgw, 100000)
        res["duration"] = "%.1f min" % ((time.time() - t0) / 60)
    print(write_results(a.out, res))


if __name__ == "__main__":
    main()
