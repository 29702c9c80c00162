# SPDX-License-Identifier: BSD-3-Clause
"""The perf lab's smoke mode (perf/run.py --smoke), in the test run.

DPDK's ipsec-secgw is built from dpdk-doc's source into a scratch
directory, then it and xfrmgw run on the lab's vdevs (net_pcap rx with
infinite_rx, net_null tx), 64-byte AES-GCM-128 tunnel traffic, each way,
with hugepages the harness reserves and gives back. Asserted: each of the
three gateway set-ups (xfrmgw, ipsec-secgw lookaside, ipsec-secgw
cpu-crypto) forwarded packets in both directions with none of xfrmgw's
drop counters moving, and what xfrmgw sent decrypts with scapy to what
went in. The rates themselves are the benchmark's business, not a test's.
"""
import os
import sys

import conftest

sys.path.insert(0, os.path.join(conftest.ROOT, "perf"))
import run as lab  # noqa: E402


def test_perf_smoke(tmp_path):
    with lab.Hugepages():
        rows, checked = lab.smoke(str(tmp_path), conftest.XFRMGW)
    assert [(r["direction"], r["alg"]) for r in rows] == [("out", "gcm"), ("in", "gcm")]
    for row in rows:
        for gw in lab.GATEWAYS:
            assert row["pps"][gw][0] > 10000, (gw, row)
    assert checked == 8
