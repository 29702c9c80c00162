#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""A site-to-site IPsec tunnel on one machine, through xfrmgw.

  host A (netns xgdemo-a, 10.1.0.1) --veth-- xfrmgw --TAP, ESP-- Linux 6.1
  (user-mode-linux, 192.0.2.2, with host B at 10.2.0.5 behind it)

xfrmgw runs on net_af_packet ports with its configuration file; the SAs and
policies are loaded with the unmodified `ip xfrm`, through
libxfrmgw-preload.so for xfrmgw and natively inside the Linux peer. Host B
pings host A and fetches 1 MB from it over TCP through the tunnel; then the
per-SA counters are printed. Everything created is removed at the end, also
on Ctrl-C.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XFRMGW = os.path.join(ROOT, "build", "app", "xfrmgw")
PRELOAD = os.path.join(ROOT, "build", "lib", "libxfrmgw-preload.so")
SHIM = os.path.join(ROOT, "build", "tests", "uml_xstate.so")
NS, GW_LAN, A_IF, TAP = "xgdemo-a", "xgdemo-g", "xgdemo-t", "xgdemo-tap"
PEER_MAC = "02:00:00:00:00:02"
KEY = "0x00112233445566778899aabbccddeeffa0a1a2a3"
SA_OUT = "src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 reqid 1 mode tunnel"
SA_IN = "src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2000 reqid 2 mode tunnel"

SERVER = """
import socket
data = bytes(range(256)) * 4096
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.1.0.1", 5001))
s.listen(1)
c, _ = s.accept()
c.sendall(data)
c.close()
"""
CLIENT = """
import socket, time
t = time.time()
s = socket.create_connection(("10.1.0.1", 5001), timeout=30, source_address=("10.2.0.5", 0))
n = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    n += len(b)
print("host B fetched %d bytes from host A over TCP in %.2f s" % (n, time.time() - t))
"""


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, shell=True, check=check, text=True, **kw)


def quiet(cmd):
    run(cmd + " >/dev/null 2>&1", check=False)


def teardown():
    quiet("ip netns del " + NS)
    quiet("ip link del " + GW_LAN)
    quiet("ip link del " + TAP)


def topology():
    teardown()
    run("ip netns add " + NS)
    run("ip link add %s type veth peer name %s" % (GW_LAN, A_IF))
    run("ip link set %s netns %s" % (A_IF, NS))
    run("ip tuntap add dev %s mode tap" % TAP)
    for dev in (GW_LAN, TAP):
        quiet("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1" % dev)
        run("ip link set %s up" % dev)
    for cmd in ("ip link set lo up", "ip link set %s mtu 1400 up" % A_IF,
                "ethtool -K %s tx off" % A_IF, "ip addr add 10.1.0.1/24 dev %s" % A_IF,
                "ip route add default via 10.1.0.254"):
        run("ip netns exec %s %s" % (NS, cmd), stdout=subprocess.DEVNULL)
    return run("ip netns exec %s cat /sys/class/net/%s/address" % (NS, A_IF),
               capture_output=True).stdout.strip()


def peer_script(work, client):
    return "\n".join([
        "#!/bin/sh", "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "mount -t proc proc /proc", "mount -t sysfs sys /sys", "mount -t tmpfs tmp /run",
        "V=$(uname -r)", "mount -t tmpfs tmp /lib/modules", "mkdir -p /lib/modules/$V",
        "mount --bind /usr/lib/uml/modules/$V /lib/modules/$V",
        "modprobe -a xfrm_user esp4 gcm seqiv 2>/dev/null",
        "exec > %s/peer.log 2>&1" % work,
        "ip link set vec0 address %s" % PEER_MAC, "ip link set vec0 up", "ip link set lo up",
        "ip addr add 192.0.2.2/24 dev vec0", "ip addr add 10.2.0.5/32 dev lo",
        "ip route add 10.1.0.0/16 via 192.0.2.1",
        "ip xfrm state add %s aead 'rfc4106(gcm(aes))' %s 128" % (SA_IN, KEY),
        "ip xfrm state add %s replay-window 64 aead 'rfc4106(gcm(aes))' %s 128" % (SA_OUT, KEY),
        "ip xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/16 dir out "
        "tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel",
        "ip xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir in "
        "tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel",
        "echo '$ ping -c 3 -I 10.2.0.5 10.1.0.1   (host B -> host A, inside the tunnel)'",
        "ping -c 3 -i 0.3 -W 3 -I 10.2.0.5 10.1.0.1",
        "/usr/bin/python3 %s" % client, "poweroff -f", ""])


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    for path in (XFRMGW, PRELOAD, SHIM, "/usr/bin/linux.uml"):
        if not os.path.exists(path):
            sys.exit("missing %s: run scripts/install-deps.sh and scripts/build.sh" % path)
    work = tempfile.mkdtemp(prefix="xgdemo-")
    gw = server = None
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    try:
        a_mac = topology()
        conf = os.path.join(work, "gw.conf")
        with open(conf, "w") as f:
            f.write("[port 0]\nipv4 = 10.1.0.254/24\n[port 1]\nipv4 = 192.0.2.1/24\n"
                    "[route siteB]\nprefix = 10.2.0.0/16\nvia = 192.0.2.2\nport = 1\n"
                    "[neighbour peer]\naddress = 192.0.2.2\nmac = %s\nport = 1\n"
                    "[neighbour hostA]\naddress = 10.1.0.1\nmac = %s\nport = 0\n"
                    % (PEER_MAC, a_mac))
        sock = os.path.join(work, "xfrm.sock")
        gw_log = open(os.path.join(work, "xfrmgw.log"), "w+")
        gw = subprocess.Popen([XFRMGW, "-l", "0,1", "--no-huge", "-m", "512", "--no-pci",
                               "--no-shconf", "--vdev", "net_af_packet0,iface=" + GW_LAN,
                               "--vdev", "net_af_packet1,iface=" + TAP,
                               "--log-level", "*:info", "--log-level", "lib.*:warning", "--",
                               "--xfrm-socket", sock, "--config", conf],
                              stdout=gw_log, stderr=subprocess.STDOUT)
        while not os.path.exists(sock):
            if gw.poll() is not None:
                gw_log.seek(0)
                sys.exit("xfrmgw did not start:\n" + gw_log.read())
            time.sleep(0.05)
        env = dict(os.environ, LD_PRELOAD=PRELOAD, XFRMGW_SOCKET=sock)
        print("xfrmgw runs; loading its SAs and policies with ip xfrm through the preload "
              "library:")
        for cmd in ("xfrm state add %s aead 'rfc4106(gcm(aes))' %s 128" % (SA_OUT, KEY),
                    "xfrm state add %s replay-window 64 aead 'rfc4106(gcm(aes))' %s 128"
                    % (SA_IN, KEY),
                    "xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
                    "tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel",
                    "xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/16 dir fwd "
                    "tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel"):
            print("  $ ip " + cmd.replace(KEY, "0x..."))
            run("ip " + cmd, env=env)
        for name, text in (("srv.py", SERVER), ("cli.py", CLIENT)):
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
        server = subprocess.Popen(["ip", "netns", "exec", NS, "/usr/bin/python3",
                                   os.path.join(work, "srv.py")])
        init = os.path.join(work, "peer.sh")
        with open(init, "w") as f:
            f.write(peer_script(work, os.path.join(work, "cli.py")))
        os.chmod(init, 0o755)
        print("booting the Linux 6.1 peer (user-mode-linux) with host B behind it ...")
        # The shim lets UML 6.1 run on hosts with AMX (tests/tools/uml_xstate.c).
        run("LD_PRELOAD=%s linux.uml mem=256M rootfstype=hostfs rootflags=/ rw init=%s con=null "
            "con0=fd:0,fd:1 vec0:transport=tap,ifname=%s < /dev/null > %s/uml.console 2>&1"
            % (SHIM, init, TAP, work), check=False, timeout=180)
        print(open(os.path.join(work, "peer.log")).read().rstrip())
        print("\nper-SA counters in xfrmgw ($ ip -s xfrm state, through the preload library):")
        out = run("ip -s xfrm state", env=env, capture_output=True).stdout
        for line in out.splitlines():
            if line.startswith("src") or ("(packets)" in line and "limit" not in line) or \
               line.strip().startswith("replay-window 0 replay"):
                print("  " + line.strip())
    finally:
        if server:
            server.kill()
        if gw:
            gw.send_signal(signal.SIGTERM)
            gw.wait(timeout=20)
            gw_log.seek(0)
            lines = [x for x in gw_log.read().splitlines() if "counter " in x]
            print("\nxfrmgw counters at exit:\n  " + "\n  ".join(lines))
        teardown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
