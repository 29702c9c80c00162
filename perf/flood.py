# SPDX-License-Identifier: BSD-3-Clause
"""Floods of bad ESP mixed into valid inbound traffic.

The question (issue 6): ESP with unknown SPIs or bad ICVs, mixed into valid
traffic, must not cut valid throughput by more than the share of the port
those packets take. The harness saturates the worker (net_pcap with
infinite_rx, as in the rest of the lab), so the port's packet rate is what
the worker can take; a junk share s then leaves valid traffic at most
(1 - s) of its rate alone. The figure of merit is

    valid Mpps with junk / ((1 - s) x valid Mpps without junk)

which is >= 1 when a junk packet costs the gateway no more than a valid
one. An unknown SPI costs a SAD miss; a bad ICV costs a full decryption
(the ICV is only known after it), so ~1 is the best it can do.

Captures: inbound AES-GCM-128 tunnel traffic for NSA SAs (traffic.py), with
every 1/s-th frame replaced by junk: the same frame with its SPI changed to
one no SA has (unknown SPI), or with its last ICV byte flipped (bad ICV).
Every run also checks the drop counters: exactly the junk share must be
counted, under the counter that explains it, and nothing else dropped.
"""
import os

import traffic
import xfrmgw_lab

SIZE = 512
NSA = 1000
MIXES = (("none", 0, 0), ("unknown SPI", 4, 0), ("bad ICV", 0, 4),
         ("both", 4, 4))          # (name, every n-th is unknown SPI, ... bad ICV)
COUNTER = {"unknown SPI": "XfrmInNoStates", "bad ICV": "XfrmInStateProtoError"}
UNKNOWN_SPI = 0x7fff0000
SETUP = ("perf/flood.py, one worker lcore, net_pcap (infinite_rx) to net_null: inbound "
         "AES-GCM-128 tunnel traffic, %d B frames, %d SAs, every 4th frame replaced by ESP with "
         "an unknown SPI, or a bad ICV, or both kinds (half the frames). A ratio >= 1 means the "
         "junk cut valid throughput by no more than its share of the port." % (SIZE, NSA))


def junk_unknown(fr):
    off = traffic.ETH_LEN + traffic.IP_LEN
    return fr[:off] + UNKNOWN_SPI.to_bytes(4, "big") + fr[off + 4:]


def junk_bad_icv(fr):
    return fr[:-1] + bytes([fr[-1] ^ 1])


def frames(scratch, every_unknown, every_bad, size=SIZE, nsa=NSA):
    """The capture for one mix, generated once (cached in scratch)."""
    name = os.path.join(scratch, "flood-%s-%d-u%d-b%d.pcap" % (size, nsa, every_unknown,
                                                               every_bad))
    if os.path.exists(name):
        return name
    base = traffic.read_pcap(traffic.capture(scratch, "in", size, "gcm", nsa))
    out = []
    for j, fr in enumerate(base):
        if every_unknown and j % every_unknown == 1:
            fr = junk_unknown(fr)
        elif every_bad and j % every_bad == 3:
            fr = junk_bad_icv(fr)
        out.append(fr)
    return traffic.write_pcap(name, out)


def share(every_unknown, every_bad):
    return (1 / every_unknown if every_unknown else 0) + (1 / every_bad if every_bad else 0)


def once(binary, scratch, mix, seconds, warmup):
    name, eu, eb = mix
    cap = frames(scratch, eu, eb)
    r = xfrmgw_lab.run(binary, scratch, "in", "gcm", NSA, cap, seconds, warmup,
                       prefix="xgp-flood")
    s = share(eu, eb)
    want = {}
    if eu:
        want["XfrmInNoStates"] = 1 / eu
    if eb:
        want["XfrmInStateProtoError"] = 1 / eb
    got = {k: v / r["rx_packets"] for k, v in r["drops"].items()}
    if set(got) != set(want) or any(abs(got[k] - want[k]) > 0.01 for k in want):
        raise RuntimeError("%s: drops %s, expected shares %s of %d received"
                           % (name, r["drops"], want, r["rx_packets"]))
    return dict(rx=r["pps_rx"], valid=r["pps_tx"], share=s)


def run(binary, scratch, rounds=3, seconds=2.0, warmup=1.0):
    """{mix name: [per-round results]}, mixes alternating within each round."""
    res = {m[0]: [] for m in MIXES}
    for _ in range(rounds):
        for m in MIXES:
            res[m[0]].append(once(binary, scratch, m, seconds, warmup))
    return res


def _med(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def table(res):
    base = _med([r["valid"] for r in res["none"]])
    lines = ["| junk | share of port | port Mpps | junk Mpps | valid Mpps | "
             "valid / ((1-share) x valid alone) |", "|---|---|---|---|---|---|"]
    for name, rs in res.items():
        s = rs[0]["share"]
        rx, valid = _med([r["rx"] for r in rs]), _med([r["valid"] for r in rs])
        ratios = [r["valid"] / ((1 - s) * base) for r in rs]
        lines.append("| %s | %.0f%% | %.2f | %.2f | %.2f | %.2f (%.2f-%.2f) |"
                     % (name, 100 * s, rx / 1e6, rx * s / 1e6, valid / 1e6, _med(ratios),
                        min(ratios), max(ratios)))
    return "\n".join(lines)
