# SPDX-License-Identifier: BSD-3-Clause
"""strongSwan end to end: an unmodified charon on the gateway programs
xfrmgw through the preload library and talks IKE through the exception
path; the peer is charon with kernel-libipsec (userspace ESP, always UDP
encapsulated) in a namespace of its own. Traffic between the host behind
the gateway and the peer's protected address crosses the DPDK data plane.

  host (10.1.0.1) -- lan -- [ gw: xfrmgw + charon ] -- wan -- peer (192.0.2.2,
                                                                 10.2.0.1 behind)
"""
import os
import re
import subprocess
import time

import pytest

import conftest

CHARON = "/usr/lib/ipsec/charon"
SWANCTL = "/usr/sbin/swanctl"
GW_LAN, GW_WAN, PEER, HOST, PEER_NET = "10.1.0.254", "192.0.2.1", "192.0.2.2", "10.1.0.1", "10.2.0.1"

PLUGINS = ("random nonce openssl aes sha1 sha2 hmac gcm kdf gmp curve25519 pem pkcs1 pkcs8 "
           "x509 pubkey constraints revocation socket-default vici updown")

STRONGSWAN_CONF = """
charon {
  load = %(plugins)s
  install_routes = %(routes)s
  routing_table = %(table)s
  retransmit_timeout = 1.0
  retransmit_tries = 3
  filelog {
    log {
      path = %(dir)s/charon.log
      default = 1
      ike = 2
      knl = 2
      time_format = %%T
    }
  }
  plugins {
    kernel-netlink {
      timeout = 1000
      retries = 3
      ignore_retransmit_errors = yes
    }
    vici {
      socket = unix://%(dir)s/vici
    }
  }
}
"""

SWANCTL_CONF = """
connections {
  net {
    local_addrs = %(me)s
    remote_addrs = %(them)s
    proposals = aes128-sha256-modp2048
    %(encap)s
    local {
      auth = psk
      id = %(me)s
    }
    remote {
      auth = psk
      id = %(them)s
    }
    children {
      net {
        local_ts = %(lts)s
        remote_ts = %(rts)s
        esp_proposals = %(esp)s
        start_action = %(start)s
        %(child_extra)s
      }
    }
  }
}
secrets {
  ike-1 {
    id-a = %(me)s
    id-b = %(them)s
    secret = "xfrmgw-test-psk"
  }
}
"""


def sh(cmd, check=True, timeout=60):
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True,
                          timeout=timeout)


def ns_sh(ns, cmd, check=True, timeout=60):
    return sh("ip netns exec %s %s" % (ns, cmd), check=check, timeout=timeout)


def wait_for(pred, timeout=20.0, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def net():
    """host, gw and peer namespaces, veth-linked."""
    tag = str(os.getpid() % 10000)
    ns = {"host": "xsh" + tag, "gw": "xsg" + tag, "peer": "xsp" + tag}
    created = []
    try:
        for n in ns.values():
            sh("ip netns add " + n)
            created.append(n)
            ns_sh(n, "ip link set lo up")
        for side, other in (("lan", "host"), ("wan", "peer")):
            g, t = side[0] + "g" + tag, side[0] + "t" + tag
            sh("ip link add %s type veth peer name %s" % (g, t))
            sh("ip link set %s netns %s" % (g, ns["gw"]))
            sh("ip link set %s netns %s" % (t, ns[other]))
            ns_sh(ns["gw"], "ip link set %s up" % g)
            ns_sh(ns[other], "ip link set %s up" % t)
            # Hosts finish their checksums: af_packet would pass partial ones on.
            ns_sh(ns[other], "ethtool -K %s tx off" % t)
        ns_sh(ns["host"], "ip addr add %s/24 dev lt%s" % (HOST, tag))
        ns_sh(ns["host"], "ip route add default via " + GW_LAN)
        ns_sh(ns["peer"], "ip addr add %s/24 dev wt%s" % (PEER, tag))
        ns_sh(ns["peer"], "ip addr add %s/32 dev lo" % PEER_NET)
        yield dict(ns, lan_g="lg" + tag, wan_g="wg" + tag, tag=tag)
    finally:
        for n in created:
            sh("ip netns del " + n, check=False)


class Charon:
    """A charon in a namespace, with a private /run (its pid file)."""

    def __init__(self, ns, workdir, plugins, env=None, routes="no", table="0", **conn):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "strongswan.conf"), "w") as f:
            f.write(STRONGSWAN_CONF % dict(plugins=plugins, dir=workdir, routes=routes,
                                           table=table))
        with open(os.path.join(workdir, "swanctl.conf"), "w") as f:
            f.write(SWANCTL_CONF % conn)
        self.ns = ns
        e = dict(os.environ, STRONGSWAN_CONF=os.path.join(workdir, "strongswan.conf"))
        e.update(env or {})
        self.env = e
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c",
             "mount -t tmpfs run /run && exec " + CHARON],
            env=e, stdout=open(os.path.join(workdir, "stdout"), "w"), stderr=subprocess.STDOUT)
        assert wait_for(lambda: os.path.exists(os.path.join(workdir, "vici"))), self.log()

    def swanctl(self, args, check=True, timeout=60):
        return subprocess.run(
            "ip netns exec %s %s %s --uri unix://%s/vici" % (self.ns, SWANCTL, args, self.dir),
            shell=True, capture_output=True, text=True, env=self.env, check=check,
            timeout=timeout)

    def load(self):
        r = self.swanctl("--load-all --noprompt --file %s/swanctl.conf" % self.dir)
        assert "loaded connection 'net'" in r.stdout, r.stdout + r.stderr

    def log(self):
        try:
            return open(os.path.join(self.dir, "charon.log")).read()[-6000:]
        except OSError:
            return "(no log)"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_gateway(net, tmp_path):
    conf = tmp_path / "gw.conf"
    conf.write_text("[port 0]\nipv4 = %s/24\n[port 1]\nipv4 = %s/24\nexception = xgwan\n"
                    % (GW_LAN, GW_WAN))
    sock = str(tmp_path / "x.sock")
    log = open(tmp_path / "gw.log", "w+")
    cmd = ["ip", "netns", "exec", net["gw"], conftest.XFRMGW, "--lcores", "0,1", "--no-huge",
           "-m", "512", "--no-pci", "--no-shconf", "--file-prefix", "xgs%s" % net["tag"],
           "--vdev", "net_af_packet0,iface=" + net["lan_g"],
           "--vdev", "net_af_packet1,iface=" + net["wan_g"],
           "--log-level", "*:info", "--log-level", "lib.*:warning",
           "--", "--xfrm-socket", sock, "--config", str(conf)]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    ok = wait_for(lambda: "inet %s/24" % GW_WAN in
                  ns_sh(net["gw"], "ip -o addr show xgwan", check=False).stdout, timeout=30)
    assert ok and p.poll() is None, open(tmp_path / "gw.log").read()
    # The veths under the af_packet ports must not answer for the port's
    # MAC in the gateway's stack (see docs/architecture.md).
    for i, g in enumerate((net["lan_g"], net["wan_g"])):
        ns_sh(net["gw"], "ip link set %s address 02:00:00:00:0f:0%d" % (g, i))
    return p, log, sock


def stop_gateway(p, log):
    p.terminate()
    p.wait(timeout=20)
    log.seek(0)
    text = log.read()
    return text, {m.group(1): int(m.group(2))
                  for m in re.finditer(r"counter (\w+)\s+(\d+)", text)}


def ping(net, count=5):
    return ns_sh(net["host"], "ping -c %d -i 0.2 -W 2 %s" % (count, PEER_NET), check=False)


@pytest.mark.parametrize("esp", ["aes128gcm16", "aes256gcm16", "aes128-sha256"])
def test_libipsec_peer_psk(net, tmp_path, esp):
    """IKEv2 with a pre-shared key; CHILD_SA with the ESP proposal; ping
    from the host behind the gateway to the peer's protected address and
    back, through the data plane (ESP in UDP, as kernel-libipsec sends)."""
    if not os.path.exists(CHARON) or not os.path.exists(SWANCTL):
        pytest.fail("strongSwan is not installed (scripts/install-deps.sh)")
    p, log, sock = start_gateway(net, tmp_path)
    gw = peer = None
    try:
        common = dict(esp=esp, child_extra="", encap="")
        gw = Charon(net["gw"], str(tmp_path / "gw-charon"), PLUGINS + " kernel-netlink",
                    env={"LD_PRELOAD": conftest.PRELOAD, "XFRMGW_SOCKET": sock},
                    me=GW_WAN, them=PEER, lts="10.1.0.0/16", rts="10.2.0.0/16",
                    start="none", **common)
        peer = Charon(net["peer"], str(tmp_path / "peer-charon"),
                      PLUGINS + " kernel-libipsec kernel-netlink", routes="yes", table="220",
                      me=PEER, them=GW_WAN, lts="10.2.0.0/16", rts="10.1.0.0/16",
                      start="none", **common)
        gw.load()
        peer.load()
        r = peer.swanctl("--initiate --child net --timeout 20", check=False, timeout=40)
        assert "initiate completed successfully" in r.stdout, \
            r.stdout + r.stderr + "\n--- gw charon\n" + gw.log()
        # The SAs are in xfrmgw, the host's kernel has none.
        env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=sock)
        sas = subprocess.run(["ip", "xfrm", "state"], env=env, capture_output=True,
                             text=True).stdout
        assert sas.count("encap type espinudp") == 2, sas
        assert ns_sh(net["gw"], "ip xfrm state", check=False).stdout.strip() == ""
        # Neighbours are learnt with the first packets: allow a loss or two.
        r = ping(net, 8)
        m = re.search(r"(\d+) received", r.stdout)
        assert m and int(m.group(1)) >= 6, r.stdout + r.stderr
        out = subprocess.run(["ip", "-s", "xfrm", "state"], env=env, capture_output=True,
                             text=True).stdout
        assert len(re.findall(r"\b([6-9]|\d\d+)\(packets\)", out)) == 2, out
    finally:
        for c in (peer, gw):
            if c:
                c.stop()
        text, counters = stop_gateway(p, log)
    assert counters.get("XgOutEncrypted", 0) >= 6 and counters.get("XgInDecrypted", 0) >= 6, text
    assert counters.get("XgExceptionIn", 0) >= 2, text
