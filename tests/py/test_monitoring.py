# SPDX-License-Identifier: BSD-3-Clause
"""xfrmgw-stat and xfrmgw-exporter against a gateway carrying real
traffic: the stat tool prints the live counters in the kernel's
/proc/net/xfrm_stat format (checked line by line against Linux 6.1's file
in test_stats_format.py, against the live /xfrmgw/stats here); the
exporter's text is parsed by prometheus_client's own parser and its
values must equal the telemetry's."""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import conftest
from test_gateway import (GW_WAN, install_tunnel, start_gateway, stop_gateway,  # noqa: F401
                          telemetry, topo)
from test_telemetry import esp_in_with_drops

STAT = os.path.join(conftest.BUILD, "app", "xfrmgw-stat")
EXPORTER = os.path.join(conftest.ROOT, "app", "xfrmgw-exporter")
ZERO = os.path.join(conftest.BUILD, "tests", "xfrm_stat_zero")


def prefix():
    return "xgt%d" % os.getpid()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=20) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} through prometheus_client's parser."""
    got = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            got[(s.name, frozenset(s.labels.items()))] = s.value
    return got


def start_exporter(port, *extra):
    p = subprocess.Popen([sys.executable, EXPORTER, "--listen", "127.0.0.1:%d" % port,
                          "--file-prefix", prefix()] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            assert p.poll() is None and time.time() < deadline, p.stdout.read()
            time.sleep(0.1)


def test_stat_tool_and_exporter(topo, tmp_path):
    t = topo
    port = free_port()
    # No gateway yet: the stat tool says so; the exporter says down.
    r = subprocess.run([STAT, "--file-prefix", prefix()], capture_output=True, text=True)
    assert r.returncode == 1 and "is xfrmgw running" in r.stderr and r.stdout == "", r
    exp = start_exporter(port)
    try:
        assert samples(scrape(port))[("xfrmgw_up", frozenset())] == 0
        p, log, env = start_gateway(tmp_path, t)
        try:
            install_tunnel(env)
            esp_in_with_drops(t, tmp_path)
            live = telemetry("/xfrmgw/stats")
            r = subprocess.run([STAT, "--file-prefix", prefix()], capture_output=True, text=True,
                               check=True)
            zero = subprocess.run([ZERO], capture_output=True, text=True, check=True).stdout
            lines = r.stdout.splitlines()
            # The kernel's layout (the zero form is compared with Linux's own
            # file in test_stats_format.py), the live values.
            assert re.sub(r"\t\d+\n", "\t0\n", r.stdout) == zero
            for line in lines:
                assert re.fullmatch(r"Xfrm\w+ +\t\d+", line) and len(line.split("\t")[0]) == 24
                name, value = line.split()
                assert int(value) == live[name], line
            vals = dict(line.split() for line in lines)
            assert vals["XfrmInStateSeqError"] == "1" and vals["XfrmInStateProtoError"] == "1"
            full = subprocess.run([STAT, "-a", "--socket",
                                   "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix()],
                                  capture_output=True, text=True, check=True).stdout
            assert full.startswith(r.stdout) and "XgInDecrypted           \t4\n" in full, full

            got = samples(scrape(port))
            if got[("xfrmgw_up", frozenset())] != 1:
                exp.terminate()
                pytest.fail(exp.communicate(timeout=10)[0])
            for name, v in live.items():
                assert got[("xfrmgw_stat_total", frozenset({("counter", name)}))] == v, name
            lab = {("spi", "0x00000200"), ("dst", GW_WAN), ("dir", "in")}
            assert got[("xfrmgw_sa_packets_total", frozenset(lab))] == 4
            assert got[("xfrmgw_sa_bytes_total", frozenset(lab))] == \
                telemetry("/xfrmgw/sa,0x200")["bytes"]
            assert got[("xfrmgw_sa_drops_total",
                        frozenset(lab | {("reason", "XfrmInStateSeqError")}))] == 1
            assert got[("xfrmgw_sa_drops_total",
                        frozenset(lab | {("reason", "XfrmInStateProtoError")}))] == 1
            assert got[("xfrmgw_sas", frozenset())] == 2
            assert got[("xfrmgw_sas_not_exported", frozenset())] == 0
            eth = telemetry("/ethdev/stats,1")
            prt = {("port", "1"), ("name", "net_af_packet1")}
            assert got[("xfrmgw_port_rx_packets_total", frozenset(prt))] >= 6
            assert got[("xfrmgw_port_rx_packets_total", frozenset(prt))] <= eth["ipackets"]
            assert got[("xfrmgw_port_link_up", frozenset(prt))] == 1
            pool = telemetry("/xfrmgw/pool")
            assert got[("xfrmgw_pool_mbufs_size", frozenset())] == pool["size"]
            busy = [v for (n, _), v in got.items() if n == "xfrmgw_lcore_busy_ratio"]
            assert busy and all(0 < b < 1 for b in busy), busy
            # Every family has HELP and TYPE.
            text = scrape(port)
            for fam in {n for (n, _) in got}:
                base = re.sub(r"_total$", "", fam)
                assert ("# TYPE %s " % fam in text or "# TYPE %s_total " % base in text), fam

            # --max-sas: the rest is counted as left out.
            port2 = free_port()
            exp2 = start_exporter(port2, "--max-sas", "1")
            try:
                got2 = samples(scrape(port2))
                assert got2[("xfrmgw_sas_not_exported", frozenset())] == 1
                assert len([k for k in got2 if k[0] == "xfrmgw_sa_packets_total"]) == 1
            finally:
                exp2.terminate()
                exp2.wait(timeout=10)
        finally:
            rc, text, _ = stop_gateway(p, log)
        assert rc == 0, text
        # Gateway gone: down again, the exporter still serves.
        assert samples(scrape(port))[("xfrmgw_up", frozenset())] == 0
    finally:
        exp.terminate()
        assert exp.wait(timeout=10) == 0


def test_exporter_refuses_remote_listen():
    r = subprocess.run([sys.executable, EXPORTER, "--listen", "0.0.0.0:9466"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "not a loopback address" in r.stderr, r
    r = subprocess.run([sys.executable, EXPORTER, "--listen", "nonsense"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "--listen" in r.stderr, r
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("http://127.0.0.1:1/metrics", timeout=2)


def test_stat_tool_usage_and_bad_socket(tmp_path):
    r = subprocess.run([STAT, "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "Usage" in r.stderr
    # Something that is not a telemetry socket answers.
    path = str(tmp_path / "fake.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    srv.listen(1)
    import threading

    def serve():
        c, _ = srv.accept()
        c.send(b'{"version": "x", "pid": 1, "max_output_len": 16384}')
        c.recv(100)
        c.send(b'{"/xfrmgw/stats": null}')
        c.close()
    th = threading.Thread(target=serve)
    th.start()
    r = subprocess.run([STAT, "--socket", path], capture_output=True, text=True, timeout=20)
    th.join()
    srv.close()
    assert r.returncode == 1 and "not an xfrmgw counter reply" in r.stderr, r
