# SPDX-License-Identifier: BSD-3-Clause
"""Interop with the Linux kernel's ESP: Linux 6.1 under user-mode-linux on a
TAP link to xfrmgw, the same SAs and policies on both sides by `ip xfrm`,
ping and a TCP transfer through the tunnel between a host in UML and a
host in a LAN netns behind xfrmgw, for GCM-128, CBC+SHA256 and
ChaCha20-Poly1305, in tunnel and transport mode.
"""
import os
import subprocess
import sys
import textwrap
import time

import pytest

import conftest
import uml
from test_gateway import ipx, mac, sh, start_gateway, stop_gateway

UML_MAC = "02:00:00:00:00:02"
SUITES = [
    "aead 'rfc4106(gcm(aes))' 0x00112233445566778899aabbccddeeffa0a1a2a3 128",
    "enc 'cbc(aes)' 0x000102030405060708090a0b0c0d0e0f "
    "auth-trunc 'hmac(sha256)' 0x" + "11" * 32 + " 128",
    "aead 'rfc7539esp(chacha20,poly1305)' 0x" + "22" * 36 + " 128",
]
BYTES = 300000

SERVER = textwrap.dedent("""
    import hashlib, socket, sys
    data = hashlib.sha256(b"seed").digest() * (%d // 32)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 5001))
    srv.listen(8)
    srv.settimeout(120)
    for _ in range(int(sys.argv[1])):
        c, _ = srv.accept()
        c.sendall(data)
        c.close()
""") % BYTES

CLIENT = textwrap.dedent("""
    import hashlib, socket, sys
    s = socket.create_connection((sys.argv[1], 5001), timeout=30, source_address=(sys.argv[2], 0))
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    want = hashlib.sha256(b"seed").digest() * (%d // 32)
    print("tcp-ok" if got == want else "tcp-bad %%d" %% len(got))
""") % BYTES


def pairs():
    # (k, mode, UML-side address, LAN-side address)
    for k in range(len(SUITES)):
        yield k, "tunnel", "10.2.%d.5" % k, "10.1.0.%d" % (10 + k)
        yield k, "transport", "192.0.2.2", "10.1.0.%d" % (20 + k)


def gateway_side(env):
    for k, m, far, near in pairs():
        spi_o, spi_i = 0x1000 + 16 * k + (m == "transport"), 0x2000 + 16 * k + (m == "transport")
        if m == "tunnel":
            o, d = "192.0.2.1", "192.0.2.2"
            lan, rem = near + "/32", far + "/32"
        else:
            o, d = near, far
            lan, rem = near + "/32", far + "/32"
        ipx(env, "xfrm state add src %s dst %s proto esp spi %d reqid %d mode %s %s"
            % (o, d, spi_o, spi_o, m, SUITES[k]))
        ipx(env, "xfrm state add src %s dst %s proto esp spi %d reqid %d mode %s replay-window 64 %s"
            % (d, o, spi_i, spi_i, m, SUITES[k]))
        ipx(env, "xfrm policy add src %s dst %s dir out tmpl src %s dst %s proto esp reqid %d mode %s"
            % (lan, rem, o, d, spi_o, m))
        ipx(env, "xfrm policy add src %s dst %s dir fwd tmpl src %s dst %s proto esp reqid %d mode %s"
            % (rem, lan, d, o, spi_i, m))


def uml_side():
    cmds = ["ip link set vec0 address %s" % UML_MAC, "ip link set vec0 up",
            "ip addr add 192.0.2.2/24 dev vec0", "ip link set lo up"]
    for k, m, far, near in pairs():
        spi_o, spi_i = 0x2000 + 16 * k + (m == "transport"), 0x1000 + 16 * k + (m == "transport")
        if m == "tunnel":
            cmds.append("ip addr add %s/32 dev lo" % far)
            o, d = "192.0.2.2", "192.0.2.1"
        else:
            o, d = far, near
        cmds += [
            "ip route add %s/32 via 192.0.2.1" % near,
            "ip xfrm state add src %s dst %s proto esp spi %d reqid %d mode %s %s"
            % (o, d, spi_o, spi_o, m, SUITES[k]),
            "ip xfrm state add src %s dst %s proto esp spi %d reqid %d mode %s replay-window 64 %s"
            % (d, o, spi_i, spi_i, m, SUITES[k]),
            "ip xfrm policy add src %s/32 dst %s/32 dir out tmpl src %s dst %s proto esp reqid %d "
            "mode %s" % (far, near, o, d, spi_o, m),
            "ip xfrm policy add src %s/32 dst %s/32 dir in tmpl src %s dst %s proto esp reqid %d "
            "mode %s" % (near, far, d, o, spi_i, m),
        ]
    return cmds


@pytest.fixture
def lan_tap():
    tag = str(os.getpid() % 10000)
    ns, g, t, tap = "xgi" + tag, "ig" + tag, "it" + tag, "xgtap" + tag
    try:
        sh("ip netns add " + ns)
        sh("ip link add %s type veth peer name %s" % (g, t))
        sh("ip link set %s netns %s" % (t, ns))
        sh("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1" % g)
        sh("ip link set %s up" % g)
        sh("ip tuntap add dev %s mode tap" % tap)
        sh("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1" % tap)
        sh("ip link set %s up" % tap)
        # A veth leaves TCP checksums to "hardware"; af_packet hands such
        # frames to xfrmgw unfinished. A real NIC does not: compute them.
        for cmd in ("ip link set lo up", "ip link set %s mtu 1400 up" % t,
                    "ethtool -K %s tx off" % t):
            sh("ip netns exec %s %s" % (ns, cmd))
        for _, _, _, near in pairs():
            sh("ip netns exec %s ip addr add %s/24 dev %s" % (ns, near, t))
        sh("ip netns exec %s ip route add default via 10.1.0.254" % ns)
        yield {"lan_ns": ns, "lan_g": g, "lan_t": t, "tap": tap, "wan_ns": None}
    finally:
        sh("ip netns del " + ns, check=False)
        sh("ip link del " + g, check=False)
        sh("ip link del " + tap, check=False)


@pytest.mark.parametrize("neighbours", ["static", "learnt"])
def test_linux_peer(lan_tap, tmp_path, neighbours):
    """With static neighbours from the file, or none: then xfrmgw learns
    them from ARP and asks for the ones it misses."""
    if not uml.available():
        pytest.fail("user-mode-linux is not installed (scripts/install-deps.sh)")
    t = lan_tap
    conf = ("[port 0]\nipv4 = 10.1.0.254/24\n[port 1]\nipv4 = 192.0.2.1/24\n"
            "[route far]\nprefix = 10.2.0.0/16\nvia = 192.0.2.2\nport = 1\n")
    lan_mac = mac(t["lan_ns"], t["lan_t"])
    if neighbours == "static":
        conf += "[neighbour uml]\naddress = 192.0.2.2\nmac = %s\nport = 1\n" % UML_MAC
        for _, _, _, near in pairs():
            conf += "[neighbour %s]\naddress = %s\nmac = %s\nport = 0\n" % (near, near,
                                                                             lan_mac)
    t2 = dict(t, wan_g=t["tap"])
    p, log, env = start_gateway(tmp_path, t2, extra_conf=conf.replace("%", "%%"))
    server = client = None
    try:
        gateway_side(env)
        server_py, client_py = tmp_path / "srv.py", tmp_path / "cli.py"
        server_py.write_text(SERVER)
        client_py.write_text(CLIENT)
        n = len(list(pairs()))
        server = subprocess.Popen(["ip", "netns", "exec", t["lan_ns"], sys.executable,
                                   str(server_py), str(n)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 10
        while ":5001" not in sh("ip netns exec %s ss -ltn" % t["lan_ns"]).stdout:
            assert server.poll() is None and time.time() < deadline, server.stdout.read()
            time.sleep(0.1)
        cmds = uml_side()
        checks = []
        for k, m, far, near in pairs():
            if neighbours == "learnt":
                # The first packet to an unresolved host is dropped while
                # xfrmgw asks for it (counted as XgNoNeighbour).
                cmds.append("ping -c 1 -W 1 -I %s %s; true" % (far, near))
            checks.append(len(cmds))
            cmds.append("ping -c 3 -i 0.3 -W 3 -I %s %s" % (far, near))
            cmds.append("/usr/bin/python3 %s %s %s" % (client_py, near, far))
        cmds.append("ip -s xfrm state; cat /proc/net/xfrm_stat; ip -s link show vec0")
        res = uml.run(cmds, tap=t["tap"], timeout=300)
        for i, c in enumerate(cmds[:checks[0]]):
            assert res[i][0] == 0, (c, res[i])
        failures = []
        for (k, m, far, near), i in zip(pairs(), checks):
            ping, tcp = res[i], res[i + 1]
            if ping[0] != 0 or "3 received" not in ping[1]:
                failures.append("suite %d %s ping: %s %s" % (k, m, ping[1], ping[2]))
            if "tcp-ok" not in tcp[1]:
                failures.append("suite %d %s tcp: %s %s" % (k, m, tcp[1], tcp[2]))
        assert not failures, "\n".join(failures) + "\n" + res[-1][1][-3000:]
    finally:
        if server:
            server.kill()
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XgOutEncrypted", 0) > 6 * 3 and counters.get("XgInDecrypted", 0) > 6 * 3
    if neighbours == "learnt":
        assert counters.get("XgNeighSolicited", 0) >= 1, text
