# SPDX-License-Identifier: BSD-3-Clause
"""Every xfrmgw configuration in conf/ starts (with the net_null ports its
"; Check:" line names) and serves its socket; the two-instances example
runs both instances at once, each with its own SAD, socket and telemetry;
charon loads the road-warrior swanctl.conf through xfrmgw; the bench-lab
script installs its tunnel. (The site-to-site files carry a tunnel in
test_strongswan.py::test_site_to_site_example.)"""
import glob
import os
import re
import shlex
import subprocess
import time

import pytest

import conftest
from test_gateway import telemetry
from test_strongswan import PLUGINS, Charon, make_certs

CONF = os.path.join(conftest.ROOT, "conf")
STAT = os.path.join(conftest.BUILD, "app", "xfrmgw-stat")


def xfrmgw_configs():
    out = []
    for path in sorted(glob.glob(os.path.join(CONF, "*.conf")) +
                       glob.glob(os.path.join(CONF, "*", "*.conf"))):
        text = open(path).read()
        if re.search(r"^\[(port \d+|control)\]", text, re.M):
            out.append(os.path.relpath(path, CONF))
    return out


def check_args(path):
    m = re.search(r"^; Check: (.*)$", open(path).read(), re.M)
    assert m, "%s has no '; Check:' line" % path
    return shlex.split(m.group(1))


@pytest.fixture
def netns():
    name = "xgc%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Gw:
    def __init__(self, ns, conf, prefix, tmp_path, sock=None):
        self.prefix, self.log = prefix, open(tmp_path / ("%s.log" % prefix), "w+")
        opts = ["--config", os.path.join(CONF, conf)] + (["--xfrm-socket", sock] if sock else [])
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, conftest.XFRMGW] +
                                  check_args(os.path.join(CONF, conf)) +
                                  ["--file-prefix", prefix, "--"] + opts,
                                  stdout=self.log, stderr=subprocess.STDOUT)
        self.sock = sock or re.search(r"^socket = (\S+)", open(os.path.join(CONF, conf)).read(),
                                      re.M).group(1)
        deadline = time.time() + 30
        while "XFRM socket" not in self.text():
            assert self.p.poll() is None and time.time() < deadline, self.text()
            time.sleep(0.1)
        self.env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=self.sock)

    def text(self):
        self.log.flush()
        return open(self.log.name).read()

    def ip(self, cmd):
        r = subprocess.run("ip " + cmd, shell=True, env=self.env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def telemetry(self, cmd):
        return telemetry(cmd, "/var/run/dpdk/%s/dpdk_telemetry.v2" % self.prefix)

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30)
        subprocess.run(["rm", "-rf", "/var/run/dpdk/" + self.prefix], check=False)
        text = self.text()
        conftest.assert_clean_exit(text)
        assert self.p.returncode == 0, text
        return text


def test_every_example_has_a_check_line():
    confs = xfrmgw_configs()
    assert {"xfrmgw.conf", "site-to-site/xfrmgw.conf", "road-warrior/xfrmgw.conf",
            "bench-lab/xfrmgw.conf", "two-instances/a.conf", "two-instances/b.conf"} <= set(confs)
    for c in confs:
        check_args(os.path.join(CONF, c))


@pytest.mark.parametrize("conf", [c for c in xfrmgw_configs() if not c.startswith("two-")])
def test_example_starts_and_serves(conf, netns, tmp_path):
    gw = Gw(netns, conf, "xgc%d" % os.getpid(), tmp_path, sock=str(tmp_path / "x.sock"))
    try:
        text = gw.text()
        assert re.search(r"\d+ port\(s\), \d+ worker\(s\)", text), text
        gw.ip("xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x77 mode tunnel "
              "aead 'rfc4106(gcm(aes))' 0x%s 128" % ("ab" * 20))
        assert "spi 0x00000077" in gw.ip("xfrm state")
        ports = gw.telemetry("/xfrmgw/port")
        assert len([p for p in ports.values() if p["driver"] == "net_null"]) == 2, ports
    finally:
        gw.stop()


def test_two_instances(netns, tmp_path):
    tag = os.getpid()
    a = Gw(netns, "two-instances/a.conf", "xfrmgw-a%d" % tag, tmp_path)
    b = None
    try:
        b = Gw(netns, "two-instances/b.conf", "xfrmgw-b%d" % tag, tmp_path)
        assert (a.sock, b.sock) == ("/run/xfrmgw/a.sock", "/run/xfrmgw/b.sock")
        a.ip("xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0xa1 mode tunnel "
             "aead 'rfc4106(gcm(aes))' 0x%s 128" % ("cd" * 20))
        assert "spi 0x000000a1" in a.ip("xfrm state") and b.ip("xfrm state") == ""
        assert a.telemetry("/xfrmgw/sa")["count"] == 1 and b.telemetry("/xfrmgw/sa")["count"] == 0
        assert a.telemetry("/xfrmgw/port")["port1"]["addrs"] == "192.0.2.1/24"
        assert b.telemetry("/xfrmgw/port")["port1"]["addrs"] == "198.51.100.1/24"
        for gw in (a, b):
            r = subprocess.run([STAT, "--file-prefix", gw.prefix], capture_output=True,
                               text=True, check=True)
            assert r.stdout.startswith("XfrmInError")
    finally:
        if b:
            b.stop()
        a.stop()
    assert not os.path.exists("/run/xfrmgw/a.sock") and not os.path.exists("/run/xfrmgw/b.sock")


def test_road_warrior_swanctl_loads(netns, tmp_path):
    gw = Gw(netns, "road-warrior/xfrmgw.conf", "xgc%d" % os.getpid(), tmp_path,
            sock=str(tmp_path / "x.sock"))
    charon = None
    try:
        certs = make_certs()["gw"]
        charon = Charon(netns, str(tmp_path / "charon"), PLUGINS + " kernel-netlink",
                        env={"LD_PRELOAD": conftest.PRELOAD, "XFRMGW_SOCKET": gw.sock},
                        creds=certs,
                        swanctl_text=open(os.path.join(CONF, "road-warrior/swanctl.conf")).read())
        r = charon.swanctl("--load-all --noprompt")
        out = r.stdout + r.stderr
        assert "loaded connection 'rw'" in out and "loaded pool 'rw_pool'" in out, out
        assert "successfully loaded 1 connections, 0 unloaded" in out, out
        assert re.search(r"loaded certificate from '.*/x509/gw\.pem'", out), out
        assert not re.search(r"^(loading|loaded) .*failed", r.stdout, re.M), r.stdout
    finally:
        if charon:
            charon.stop()
        gw.stop()


def test_bench_lab_script(netns, tmp_path):
    gw = Gw(netns, "bench-lab/xfrmgw.conf", "xgc%d" % os.getpid(), tmp_path,
            sock=str(tmp_path / "x.sock"))
    try:
        r = subprocess.run(["sh", os.path.join(CONF, "bench-lab", "sas.sh"), conftest.PRELOAD],
                           env=dict(os.environ, XFRMGW_SOCKET=gw.sock), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert gw.telemetry("/xfrmgw/sa")["sas"] == ["0x00000100", "0x00000200"]
        assert gw.telemetry("/xfrmgw/policy")["count"] == 2
    finally:
        gw.stop()
