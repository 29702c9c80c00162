# SPDX-License-Identifier: BSD-3-Clause
"""An unmodified strongSwan charon programs xfrmgw through the preload library.

charon's bypass-lan plugin installs and removes pass policies for the local
subnets over NETLINK_XFRM at start and stop. In a netns with one veth subnet,
those policies must appear in xfrmgw (and not in the netns's kernel), and go
away when charon stops.
"""
import os
import signal
import subprocess
import time

import pytest

CHARON = "/usr/lib/ipsec/charon"

CONF = """
charon {
  install_routes = no
  routing_table = 0
  filelog {
    stderr { default = 1 knl = 2 }
  }
  plugins {
    kernel-netlink { timeout = 2000 retries = 3 }
    kernel-libipsec { load = no }
    vici { socket = unix://%(dir)s/charon.vici }
    stroke { load = no }
  }
}
"""


@pytest.fixture
def netns_lan():
    ns = "xg-charon-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in ("ip link add xga type veth peer name xgb",
                    "ip addr add 10.99.0.1/24 dev xga", "ip link set xga up",
                    "ip link set xgb up", "ip link set lo up"):
            subprocess.run(["ip", "netns", "exec", ns] + cmd.split(), check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def wait_for(pred, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_charon_bypass_policies(daemon, netns_lan, tmp_path):
    if not os.path.exists(CHARON):
        pytest.fail("strongSwan's charon is not installed (scripts/install-deps.sh)")
    conf = tmp_path / "strongswan.conf"
    conf.write_text(CONF % {"dir": tmp_path})
    env = daemon.env()
    env["STRONGSWAN_CONF"] = str(conf)
    log = open(tmp_path / "charon.log", "w+")
    charon = subprocess.Popen(["ip", "netns", "exec", netns_lan, CHARON], env=env,
                              stdout=log, stderr=subprocess.STDOUT)

    def policies():
        return daemon.sh("ip xfrm policy list")[1]

    try:
        assert wait_for(lambda: "10.99.0.0/24" in policies()), log.read()
        out = policies()
        # bypass-lan: pass policies in and fwd for the local subnet.
        assert "src 10.99.0.0/24 dst 10.99.0.0/24" in out
        assert "dir in" in out and "dir fwd" in out
        kernel = subprocess.run(["ip", "netns", "exec", netns_lan, "ip", "xfrm", "policy",
                                 "list"], capture_output=True, text=True, check=True).stdout
        # charon's per-socket IKE bypass (setsockopt IP_XFRM_POLICY) is the
        # kernel's business and stays there; the SPD entries do not.
        assert "10.99.0.0" not in kernel and "dir " not in kernel, kernel
    finally:
        charon.send_signal(signal.SIGTERM)
        try:
            charon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            charon.kill()
            charon.wait()
    assert wait_for(lambda: "10.99.0.0/24" not in policies())
    log.seek(0)
    text = log.read()
    assert "installed bypass policy for 10.99.0.0/24" in text
    assert "unable to" not in text, text
