# SPDX-License-Identifier: BSD-3-Clause
"""The gateway end to end: LAN netns <-veth-> xfrmgw (net_af_packet) <-veth->
WAN netns. SAs and policies come from `ip xfrm` through the preload
library; scapy sends plaintext on the LAN side and decrypts what leaves on
the WAN side, sends ESP on the WAN side and checks the plaintext that
leaves on the LAN side. Drops are checked in the counters the daemon logs.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from scapy.all import Ether, IP, ICMP, UDP, Raw, rdpcap, wrpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

import conftest

HERE = os.path.dirname(os.path.abspath(__file__))
IO = os.path.join(HERE, "netns_io.py")
KEY = "0x00112233445566778899aabbccddeeffa0a1a2a3"
KEY_B = bytes.fromhex(KEY[2:])
GW_LAN, GW_WAN, PEER, LANHOST = "10.1.0.254", "192.0.2.1", "192.0.2.2", "10.1.0.1"


def sh(cmd, check=True):
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True)


def mac(ns, ifname):
    pre = "ip netns exec %s " % ns if ns else ""
    return sh(pre + "cat /sys/class/net/%s/address" % ifname).stdout.strip()


@pytest.fixture
def topo(tmp_path):
    tag = str(os.getpid() % 10000)
    names = {"lan": "xgl" + tag, "wan": "xgw" + tag}
    created = []
    try:
        for side, ns in names.items():
            sh("ip netns add " + ns)
            created.append(ns)
            g, t = side[0] + "g" + tag, side[0] + "t" + tag
            sh("ip link add %s type veth peer name %s" % (g, t))
            sh("ip link set %s netns %s" % (t, ns))
            for cmd in ("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1" % g,
                        "ip link set %s up" % g):
                sh(cmd)
            sh("ip netns exec %s sysctl -qw net.ipv6.conf.%s.disable_ipv6=1" % (ns, t))
            sh("ip netns exec %s ip link set %s up" % (ns, t))
            sh("ip netns exec %s ip link set lo up" % ns)
        yield {
            "lan_ns": names["lan"], "wan_ns": names["wan"],
            "lan_g": "lg" + tag, "wan_g": "wg" + tag, "lan_t": "lt" + tag, "wan_t": "wt" + tag,
        }
    finally:
        for ns in created:
            sh("ip netns del " + ns, check=False)
        for g in ("lg" + tag, "wg" + tag):
            sh("ip link del " + g, check=False)


NO_HUGE = ("--no-huge", "-m", "512", "--no-pci", "--no-shconf")


def start_gateway(tmp_path, t, extra_conf=None, lcores="0,1", qpairs=1, netns=None, mem=NO_HUGE):
    """Start xfrmgw between the two netns (itself in @p netns if given);
    @p extra_conf replaces the default configuration (%(lan)s and %(wan)s
    stand for the test hosts' MACs); @p mem: EAL's memory options."""
    conf = tmp_path / "gw.conf"
    if extra_conf:
        macs = {"lan": mac(t["lan_ns"], t["lan_t"])}
        if t.get("wan_ns"):
            macs["wan"] = mac(t["wan_ns"], t["wan_t"])
        conf.write_text(extra_conf % macs)
    else:
        conf.write_text(
        "[port 0]\nipv4 = %s/24\n[port 1]\nipv4 = %s/24\n"
        "[route remote]\nprefix = 10.2.0.0/16\nvia = %s\nport = 1\n"
        "[neighbour peer]\naddress = %s\nmac = %s\nport = 1\n"
        "[neighbour lanhost]\naddress = %s\nmac = %s\nport = 0\n"
        % (GW_LAN, GW_WAN, PEER, PEER, mac(t["wan_ns"], t["wan_t"]), LANHOST,
           mac(t["lan_ns"], t["lan_t"])))
    sock = str(tmp_path / "x.sock")
    log = open(tmp_path / "gw.log", "w+")
    cmd = [conftest.XFRMGW, "--lcores", lcores] + list(mem) + [
           "--file-prefix", "xgt%d" % os.getpid(),
           "--vdev", "net_af_packet0,iface=%s,qpairs=%d" % (t["lan_g"], qpairs),
           "--vdev", "net_af_packet1,iface=%s,qpairs=%d" % (t["wan_g"], qpairs),
           "--log-level", "*:info", "--log-level", "lib.*:warning",
           "--", "--xfrm-socket", sock, "--config", str(conf)]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while not os.path.exists(sock):
        assert p.poll() is None and time.time() < deadline, open(tmp_path / "gw.log").read()
        time.sleep(0.05)
    env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=sock)
    return p, log, env


def telemetry(cmd, path=None):
    """Ask the running gateway's rte_telemetry socket (dpdk-telemetry.py's):
    start_gateway's unless @p path says which."""
    import json
    import socket
    path = path or "/var/run/dpdk/xgt%d/dpdk_telemetry.v2" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.recv(16384)   # the greeting
    s.send(cmd.encode())
    reply = json.loads(s.recv(65536).decode())
    s.close()
    return reply[cmd.split(",")[0]]   # the reply names the command, not its parameters


def stop_gateway(p, log):
    """SIGTERM; fails on any sanitizer report or an mbuf not back in its
    pool (see conftest.assert_clean_exit), else (status, output, counters)."""
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    subprocess.run(["rm", "-rf", "/var/run/dpdk/xgt%d" % os.getpid()], check=False)
    log.seek(0)
    text = log.read()
    conftest.assert_clean_exit(text)
    counters = {m.group(1): int(m.group(2))
                for m in re.finditer(r"counter (\w+)\s+(\d+)", text)}
    return p.returncode, text, counters


def ipx(env, cmd):
    r = subprocess.run("ip " + cmd, shell=True, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def install_tunnel(env, out_extra="", in_extra="", window=32):
    """The tests' tunnel: GCM SAs 0x100 out (reqid 1) and 0x200 in (reqid 2,
    replay window @p window) between GW_WAN and PEER, out and fwd policies
    for 10.1.0.0/16 <-> 10.2.0.0/16; @p out_extra / @p in_extra end the SAs."""
    ipx(env, "xfrm state add src %s dst %s proto esp spi 0x100 reqid 1 mode tunnel "
        "aead 'rfc4106(gcm(aes))' %s 128%s" % (GW_WAN, PEER, KEY, out_extra))
    ipx(env, "xfrm state add src %s dst %s proto esp spi 0x200 reqid 2 mode tunnel "
        "replay-window %d aead 'rfc4106(gcm(aes))' %s 128%s" % (PEER, GW_WAN, window, KEY,
                                                                 in_extra))
    ipx(env, "xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
        "tmpl src %s dst %s proto esp reqid 1 mode tunnel" % (GW_WAN, PEER))
    ipx(env, "xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/16 dir fwd "
        "tmpl src %s dst %s proto esp reqid 2 mode tunnel" % (PEER, GW_WAN))


def forwarded(pkt):
    """The bytes the gateway should emit for IP packet @p pkt after one hop."""
    p = pkt.__class__(bytes(pkt))
    if p.version == 4:
        p.ttl -= 1
        del p.chksum
    else:
        p.hlim -= 1
    return bytes(p.__class__(bytes(p)))


def exchange(t, tmp_path, send_side, frames, wait=3.0, rx_side=None):
    """Send frames from one netns, capture on the other (or @p rx_side)."""
    rx_side = rx_side or ("wan" if send_side == "lan" else "lan")
    out = str(tmp_path / ("%s_rx.pcap" % rx_side))
    inp = str(tmp_path / ("%s_tx.pcap" % send_side))
    wrpcap(inp, frames)
    sniffer = subprocess.Popen(["ip", "netns", "exec", t[rx_side + "_ns"], sys.executable, IO,
                                "sniff", t[rx_side + "_t"], str(wait), out])
    time.sleep(1.0)
    subprocess.run(["ip", "netns", "exec", t[send_side + "_ns"], sys.executable, IO, "send",
                    t[send_side + "_t"], inp], check=True, timeout=30)
    sniffer.wait(timeout=wait + 30)
    return rdpcap(out) if os.path.exists(out) else []


def test_tunnel_both_ways(topo, tmp_path):
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    try:
        install_tunnel(env)
        ipx(env, "xfrm policy add src 10.1.0.0/16 dst 10.3.0.0/16 dir out action block")
        time.sleep(0.3)
        gw_lan_mac, gw_wan_mac = mac(None, t["lan_g"]), mac(None, t["wan_g"])
        lan_mac, wan_mac = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])

        # Outbound: plaintext in on the LAN, ESP out on the WAN.
        inner = [IP(src=LANHOST, dst="10.2.0.5", ttl=64) / ICMP(id=1, seq=i) / Raw(b"p" * i * 10)
                 for i in range(1, 6)]
        blocked = IP(src=LANHOST, dst="10.3.0.5") / UDP(sport=1, dport=2)
        frames = [Ether(src=lan_mac, dst=gw_lan_mac) / pk for pk in inner + [blocked]]
        got = [f for f in exchange(t, tmp_path, "lan", frames)
               if f.haslayer(ESP) and f[IP].src == GW_WAN]
        assert len(got) == len(inner), [f.summary() for f in got]
        sa_out = SecurityAssociation(ESP, spi=0x100, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                     tunnel_header=IP(src=GW_WAN, dst=PEER))
        for f, orig in zip(got, inner):
            assert f[Ether].dst == wan_mac and f[Ether].src == gw_wan_mac
            assert bytes(sa_out.decrypt(f[IP])) == forwarded(orig)

        # Inbound: ESP in on the WAN, plaintext out on the LAN; one replay,
        # one plain packet that the fwd policy says must have been protected.
        sa_in = SecurityAssociation(ESP, spi=0x200, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                    tunnel_header=IP(src=PEER, dst=GW_WAN))
        back = [IP(src="10.2.0.5", dst=LANHOST, ttl=30) / UDP(sport=7, dport=9) / Raw(b"r" * i)
                for i in range(4)]
        enc = [sa_in.encrypt(pk, seq_num=i + 1) for i, pk in enumerate(back)]
        plain_cheat = IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=9) / b"cheat"
        frames = [Ether(src=wan_mac, dst=gw_wan_mac) / e for e in enc + [enc[0], plain_cheat]]
        got = [f for f in exchange(t, tmp_path, "wan", frames)
               if f.haslayer(UDP) and f[IP].dst == LANHOST]
        assert len(got) == len(back), [f.summary() for f in got]
        for f, orig in zip(got, back):
            assert f[Ether].dst == lan_mac and f[Ether].src == gw_lan_mac
            assert bytes(f[IP]) == forwarded(orig)

        # The counters can be read while the gateway runs.
        live = telemetry("/xfrmgw/stats")
        assert live["XgOutEncrypted"] == 5 and live["XfrmInStateSeqError"] == 1, live
        assert live["XfrmOutPolBlock"] == 1 and live["XfrmInTmplMismatch"] == 1, live

        # The workers' counts reach GETSA, as ip -s shows them on Linux.
        out = ipx(env, "-s xfrm state get src %s dst %s proto esp spi 0x100" % (GW_WAN, PEER))
        assert re.search(r"\b5\(packets\)", out), out
        # Bytes as Linux counts them: outbound the packet with the headers
        # ESP puts in front (outer IPv4 20, ESP 8, IV 8), no trailer.
        assert re.search(r"\b470\(bytes\)", out), out
        assert re.search(r"oseq 0x5\b", out), out
        out = ipx(env, "-s xfrm state get src %s dst %s proto esp spi 0x200" % (PEER, GW_WAN))
        assert re.search(r"\b4\(packets\)", out) and "replay 1 " in out, out
        # ... inbound the ESP packet from its header to the ICV.
        assert re.search(r"\b260\(bytes\)", out), out
        assert re.search(r"use \d{4}-", out), out

        # Changing the SAD rebuilds the tables; the outbound SA must carry
        # on with its sequence numbers (a GCM nonce is never used twice).
        ipx(env, "xfrm state add src %s dst %s proto esp spi 0x300 mode tunnel "
            "aead 'rfc4106(gcm(aes))' %s 128" % (GW_WAN, "192.0.2.9", KEY))
        time.sleep(0.3)
        frames = [Ether(src=lan_mac, dst=gw_lan_mac) / pk for pk in inner[:2]]
        got = [f for f in exchange(t, tmp_path, "lan", frames) if f.haslayer(ESP)]
        assert [f[ESP].seq for f in got] == [6, 7]
        # ... and the inbound SA its replay window.
        got = exchange(t, tmp_path, "wan", [Ether(src=wan_mac, dst=gw_wan_mac) / enc[1]])
        assert not [f for f in got if f.haslayer(UDP) and f[IP].dst == LANHOST]
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XgOutEncrypted") == 7, text
    assert counters.get("XfrmOutPolBlock") == 1, text
    assert counters.get("XgInDecrypted") == 4, text
    assert counters.get("XfrmInStateSeqError") == 2, text
    assert counters.get("XfrmInTmplMismatch") == 1, text


def test_arp_and_nd(topo, tmp_path):
    from scapy.all import ARP, IPv6, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptSrcLLAddr, \
        ICMPv6NDOptDstLLAddr, in6_getnsma, in6_getnsmac, inet_pton
    import socket as sk
    t = topo
    p, log, env = start_gateway(tmp_path, t, extra_conf=(
        "[port 0]\nipv4 = 10.1.0.254/24\nipv6 = 2001:db8:1::fe/64\n[port 1]\n"
        "ipv4 = 192.0.2.1/24\n"))
    try:
        gw = mac(None, t["lan_g"])
        me = mac(t["lan_ns"], t["lan_t"])
        nsma = sk.inet_ntop(sk.AF_INET6, in6_getnsma(inet_pton(sk.AF_INET6, "2001:db8:1::fe")))
        frames = [
            Ether(src=me, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=me, psrc="10.1.0.1",
                                                         pdst="10.1.0.254"),
            Ether(src=me, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=me, psrc="10.1.0.1",
                                                         pdst="10.1.0.253"),
            Ether(src=me, dst=in6_getnsmac(inet_pton(sk.AF_INET6, nsma))) /
            IPv6(src="2001:db8:1::1", dst=nsma, hlim=255) /
            ICMPv6ND_NS(tgt="2001:db8:1::fe") / ICMPv6NDOptSrcLLAddr(lladdr=me),
            # A unicast NUD probe: no source link-layer option, 8 bytes
            # shorter than the advertisement that answers it.
            Ether(src=me, dst=gw) / IPv6(src="2001:db8:1::1", dst="2001:db8:1::fe", hlim=255) /
            ICMPv6ND_NS(tgt="2001:db8:1::fe"),
        ]
        got = [f for f in exchange(t, tmp_path, "lan", frames, rx_side="lan")
               if f[Ether].src == gw]
        arp = [f for f in got if f.haslayer(ARP)]
        assert len(arp) == 1 and arp[0][ARP].op == 2 and arp[0][ARP].hwsrc == gw
        assert arp[0][ARP].psrc == "10.1.0.254" and arp[0][ARP].pdst == "10.1.0.1"
        assert arp[0][Ether].dst == me
        na = [f for f in got if f.haslayer(ICMPv6ND_NA)]
        assert len(na) == 2, [f.summary() for f in got]
        for f in na:
            assert f[Ether].dst == me and f[IPv6].dst == "2001:db8:1::1" and f[IPv6].hlim == 255
            assert f[ICMPv6ND_NA].tgt == "2001:db8:1::fe" and f[ICMPv6ND_NA].S == 1
            assert f[ICMPv6NDOptDstLLAddr].lladdr == gw
            # Whole: the payload length is what the frame holds.
            assert f[IPv6].plen == 32 == len(bytes(f[IPv6].payload)), f.show(dump=True)
            # The checksum the gateway computed is the one scapy computes.
            cs = f[ICMPv6ND_NA].cksum
            del f[ICMPv6ND_NA].cksum
            assert IPv6(bytes(f[IPv6]))[ICMPv6ND_NA].cksum == cs
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XgArpReplied") == 1 and counters.get("XgNdReplied") == 2, text


def test_policy_check_edges(topo, tmp_path):
    """Transport-mode ESP needs no fwd policy, tunnel-mode ESP does; an
    optional ("level use") out template without an SA sends in the clear."""
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    try:
        ipx(env, "xfrm state add src 10.2.0.5 dst %s proto esp spi 0x300 mode transport "
            "aead 'rfc4106(gcm(aes))' %s 128" % (LANHOST, KEY))
        ipx(env, "xfrm state add src %s dst %s proto esp spi 0x400 mode tunnel "
            "aead 'rfc4106(gcm(aes))' %s 128" % (PEER, GW_WAN, KEY))
        # (The kernel allows optional templates out only in transport mode.)
        ipx(env, "xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
            "tmpl proto esp reqid 9 mode transport level use")
        time.sleep(0.3)
        gw_lan, gw_wan = mac(None, t["lan_g"]), mac(None, t["wan_g"])
        lan, wan = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])
        inner = IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=9) / b"t"
        trs = SecurityAssociation(ESP, spi=0x300, crypt_algo="AES-GCM", crypt_key=KEY_B)
        tun = SecurityAssociation(ESP, spi=0x400, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                  tunnel_header=IP(src=PEER, dst=GW_WAN))
        frames = [Ether(src=wan, dst=gw_wan) / trs.encrypt(inner, seq_num=1),
                  Ether(src=wan, dst=gw_wan) / tun.encrypt(inner, seq_num=1)]
        got = [f for f in exchange(t, tmp_path, "wan", frames)
               if f.haslayer(UDP) and f[IP].dst == LANHOST]
        assert len(got) == 1 and got[0][UDP].dport == 9
        out = Ether(src=lan, dst=gw_lan) / IP(src=LANHOST, dst="10.2.0.5") / UDP(sport=9, dport=7)
        got = [f for f in exchange(t, tmp_path, "lan", [out]) if f.haslayer(UDP)]
        assert len(got) == 1 and not got[0].haslayer(ESP)
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XfrmInNoPols") == 1 and counters.get("XgInDecrypted") == 2, text


def test_lifetime_packet_limits(topo, tmp_path):
    """A hard packet limit stops the SA in the data plane at once; the
    control plane sends one soft and one hard EXPIRE and deletes it."""
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    mon = None
    try:
        mon_out = open(tmp_path / "monitor.txt", "w+")
        mon = subprocess.Popen(["ip", "xfrm", "monitor", "expire"], env=env, stdout=mon_out,
                               stderr=subprocess.STDOUT)
        ipx(env, "xfrm state add src %s dst %s proto esp spi 0x100 reqid 1 mode tunnel "
            "aead 'rfc4106(gcm(aes))' %s 128 limit packet-soft 3 limit packet-hard 5"
            % (GW_WAN, PEER, KEY))
        ipx(env, "xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
            "tmpl src %s dst %s proto esp reqid 1 mode tunnel" % (GW_WAN, PEER))
        time.sleep(0.3)
        gw_lan_mac, lan_mac = mac(None, t["lan_g"]), mac(t["lan_ns"], t["lan_t"])
        inner = [IP(src=LANHOST, dst="10.2.0.5") / ICMP(id=2, seq=i) for i in range(8)]
        got = [f for f in exchange(t, tmp_path, "lan",
                                   [Ether(src=lan_mac, dst=gw_lan_mac) / pk for pk in inner])
               if f.haslayer(ESP)]
        assert [f[ESP].seq for f in got] == [1, 2, 3, 4, 5]
        deadline = time.time() + 5
        while "hard 1" not in open(tmp_path / "monitor.txt").read() and time.time() < deadline:
            time.sleep(0.2)
        text = open(tmp_path / "monitor.txt").read()
        assert text.count("Expired") == 2, text
        assert text.index("hard 0") < text.index("hard 1") and "spi 0x00000100" in text, text
        assert "SAD count 0" in ipx(env, "xfrm state count")
    finally:
        if mon:
            mon.terminate()
            mon.wait()
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XgOutEncrypted") == 5, text
    assert counters.get("XfrmOutStateExpired") == 3, text


def test_default_actions(topo, tmp_path):
    """SETDEFAULT: packets that no policy matches are blocked per direction
    (out: XgOutDefaultBlock, fwd: XfrmInNoPols) and flow again on accept."""
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    try:
        gw_lan_mac, gw_wan_mac = mac(None, t["lan_g"]), mac(None, t["wan_g"])
        lan_mac, wan_mac = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])
        out = Ether(src=lan_mac, dst=gw_lan_mac) / IP(src=LANHOST, dst="10.2.0.5") / \
            UDP(sport=5, dport=6) / b"out"
        back = Ether(src=wan_mac, dst=gw_wan_mac) / IP(src="10.2.0.5", dst=LANHOST) / \
            UDP(sport=6, dport=5) / b"back"

        def udp(frames):
            return [f for f in frames if f.haslayer(UDP) and f[UDP].sport in (5, 6)]

        # Forwarded packets meet the fwd and then the out policies (as in
        # the kernel): a default block in either direction stops all of them.
        ipx(env, "xfrm policy setdefault out block")
        time.sleep(0.3)
        assert udp(exchange(t, tmp_path, "lan", [out], wait=1.5)) == []
        assert udp(exchange(t, tmp_path, "wan", [back], wait=1.5)) == []
        ipx(env, "xfrm policy setdefault fwd block out accept")
        time.sleep(0.3)
        assert udp(exchange(t, tmp_path, "lan", [out], wait=1.5)) == []
        assert udp(exchange(t, tmp_path, "wan", [back], wait=1.5)) == []
        # A matching policy overrides the default.
        ipx(env, "xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/16 dir fwd")
        time.sleep(0.3)
        assert len(udp(exchange(t, tmp_path, "wan", [back], wait=1.5))) == 1
        assert udp(exchange(t, tmp_path, "lan", [out], wait=1.5)) == []
        ipx(env, "xfrm policy setdefault fwd accept")
        time.sleep(0.3)
        assert len(udp(exchange(t, tmp_path, "lan", [out], wait=1.5))) == 1
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XgOutDefaultBlock") == 2, text
    assert counters.get("XfrmInNoPols") == 3, text


def netlink(env, tmp_path, msgs):
    """Send raw XFRM messages through the preload library; their answers."""
    import json
    inp, out = str(tmp_path / "nl.in"), str(tmp_path / "nl.out")
    with open(inp, "w") as f:
        json.dump([[m.hex() for m in msgs]], f)
    subprocess.run([sys.executable, os.path.join(HERE, "rawprobe.py"), inp, out], env=env,
                   check=True, timeout=60)
    with open(out) as f:
        return json.load(f)[0]


def test_replay_state_and_newae(topo, tmp_path):
    """The receiver's window reaches GETSA (seq and bitmap as Linux shows
    them); NEWAE (charon's HA sync) moves the sender's counter and the
    receiver's window in the data plane."""
    import struct
    import nl
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    try:
        install_tunnel(env)
        time.sleep(0.3)
        gw_lan_mac, gw_wan_mac = mac(None, t["lan_g"]), mac(None, t["wan_g"])
        lan_mac, wan_mac = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])
        sa_in = SecurityAssociation(ESP, spi=0x200, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                    tunnel_header=IP(src=PEER, dst=GW_WAN))

        def inbound(seqs):
            frames = [Ether(src=wan_mac, dst=gw_wan_mac) /
                      sa_in.encrypt(IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=s),
                                    seq_num=s) for s in seqs]
            return sorted(f[UDP].dport for f in exchange(t, tmp_path, "wan", frames, wait=1.5)
                          if f.haslayer(UDP) and f[IP].dst == LANHOST)

        assert inbound([1, 2, 4, 5]) == [1, 2, 4, 5]
        time.sleep(1.5)   # the once-a-second report
        out = ipx(env, "xfrm state get src %s dst %s proto esp spi 0x200" % (PEER, GW_WAN))
        assert "seq 0x5, oseq 0x0, bitmap 0x0000001b" in out, out
        # The fwd policy's use time (charon's DPD/inactivity read it), not yet the out one's.
        out = ipx(env, "-s xfrm policy list")
        assert re.search(r"dir fwd .*\n(.*\n)*?.*use \d{4}-", out), out
        assert re.search(r"dir out .*\n(.*\n)*?.*add \S+ \S+ use -", out), out

        # NEWAE: receiver at 100, sender at 1000.
        def newae(spi, src, dst, replay):
            aid = nl.addr(dst) + struct.pack("!I", spi) + struct.pack("=HB", 2, 50) + b"\0" + \
                nl.addr(src) + struct.pack("=II", 0, 0)
            return nl.msg(nl.XFRM_MSG_NEWAE, aid + nl.attr(nl.XFRMA_REPLAY_VAL, replay),
                          nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_REPLACE)
        answers = netlink(env, tmp_path, [
            newae(0x200, PEER, GW_WAN, struct.pack("=III", 0, 100, 0)),
            newae(0x100, GW_WAN, PEER, struct.pack("=III", 1000, 0, 0))])
        assert [a[0][4] for a in answers] == [0, 0], answers
        time.sleep(0.3)
        # 60 is left of the window, 90 inside but counted as seen, 101 new.
        assert inbound([60, 90, 101]) == [101]
        got = [f for f in exchange(t, tmp_path, "lan", [
            Ether(src=lan_mac, dst=gw_lan_mac) / IP(src=LANHOST, dst="10.2.0.5") / ICMP()])
            if f.haslayer(ESP)]
        assert [f[ESP].seq for f in got] == [1001]
        time.sleep(1.5)
        out = ipx(env, "-s xfrm policy get src 10.1.0.0/16 dst 10.2.0.0/16 dir out")
        assert re.search(r"use \d{4}-", out), out
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XfrmInStateSeqError") == 2, text


UML_ACQUIRE = [
    # The larval state's lifetime is the host's xfrm_acq_expires for xfrmgw.
    "echo ACQ > /proc/sys/net/core/xfrm_acq_expires; "
    "modprobe dummy; ip link add d0 type dummy && ip link set d0 up && "
    "ip addr add %s/16 dev d0 && ip addr add %s/24 dev d0 && ip route add 10.2.0.0/16 dev d0"
    % (LANHOST, GW_WAN),
    "ip xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
    "tmpl src %s dst %s proto esp reqid 5 mode tunnel" % (GW_WAN, PEER),
    "ip xfrm monitor acquire > /tmp/xg-acq.$$ & M=$!; sleep 0.5; /usr/bin/python3 -c \""
    "import socket; s = socket.socket(2, 2); s.bind(('%s', 5000))\n"
    "for i in range(3):\n try: s.sendto(b'x', ('10.2.0.5', 6000))\n except OSError: pass\"; "
    "sleep 1; kill $M; cat /tmp/xg-acq.$$; rm -f /tmp/xg-acq.$$" % LANHOST,
    "ip -s xfrm state list",
]


def acquire_text(text):
    """What may differ from the kernel: timestamps, and the interface a
    local socket's flow names (the gateway's ports are not netdevs)."""
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<time>", text).replace(" dev d0 ", " ")


def test_acquire(topo, tmp_path):
    """An out policy without SA: packets are dropped (XfrmOutNoStates); with
    a key manager listening, one ACQUIRE per template goes out and a larval
    state holds its place, both as Linux 6.1 shows them for the same flow;
    the answer (ALLOCSPI by the acquire's seq, then UPDSA) lets traffic
    through."""
    import uml
    with open("/proc/sys/net/core/xfrm_acq_expires") as f:
        acq = f.read().strip()
    kernel = uml.run([UML_ACQUIRE[0].replace("ACQ", acq)] + UML_ACQUIRE[1:])
    assert kernel[0][0] == 0 and "acquire proto esp" in kernel[2][1], kernel
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    mon = None
    try:
        gw_lan_mac, lan_mac = mac(None, t["lan_g"]), mac(t["lan_ns"], t["lan_t"])
        ipx(env, "xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
            "tmpl src %s dst %s proto esp reqid 5 mode tunnel" % (GW_WAN, PEER))
        time.sleep(0.3)
        ping = [Ether(src=lan_mac, dst=gw_lan_mac) / IP(src=LANHOST, dst="10.2.0.5") /
                UDP(sport=5000, dport=6000) / b"x" for i in range(3)]
        # Nobody listens: no larval state (the kernel's km_is_alive()).
        assert not [f for f in exchange(t, tmp_path, "lan", ping[:1], wait=1.5)
                    if f.haslayer(ESP)]
        assert "SAD count 0" in ipx(env, "xfrm state count")

        mon_out = open(tmp_path / "monitor.txt", "w+")
        mon = subprocess.Popen(["ip", "xfrm", "monitor", "acquire"], env=env, stdout=mon_out,
                               stderr=subprocess.STDOUT)
        time.sleep(1.2)   # past the workers' once-a-second limit per policy
        assert not [f for f in exchange(t, tmp_path, "lan", ping, wait=1.5) if f.haslayer(ESP)]
        time.sleep(1.2)
        text = open(tmp_path / "monitor.txt").read()
        assert acquire_text(text) == acquire_text(kernel[2][1].split("loss")[-1]), text
        larval = ipx(env, "-s xfrm state list")
        assert acquire_text(larval) == acquire_text(kernel[3][1]), larval
        seq = int(re.search(r"seq (0x[0-9a-f]+)", larval).group(1), 16)
        assert seq != 0, larval

        # The key manager's answer.
        out = ipx(env, "xfrm state allocspi src %s dst %s proto esp mode tunnel reqid 5 seq %d "
                  "min 0x4242 max 0x4242" % (GW_WAN, PEER, seq))
        assert "spi 0x00004242" in out, out
        ipx(env, "xfrm state update src %s dst %s proto esp spi 0x4242 reqid 5 mode tunnel "
            "aead 'rfc4106(gcm(aes))' %s 128" % (GW_WAN, PEER, KEY))
        assert "SAD count 1" in ipx(env, "xfrm state count")
        time.sleep(1.0)   # the tables are rebuilt with the SA
        got = [f for f in exchange(t, tmp_path, "lan", ping, wait=1.5) if f.haslayer(ESP)]
        assert [f[ESP].spi for f in got] == [0x4242] * 3
    finally:
        if mon:
            mon.terminate()
            mon.wait()
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XfrmOutNoStates") == 4, text
    assert counters.get("XgOutEncrypted") == 3, text


@pytest.fixture
def gw_netns(topo):
    """The topology with the gateway's two ports in a namespace of their
    own, where its exception interfaces appear."""
    ns = "xgg" + str(os.getpid() % 10000)
    sh("ip netns add " + ns)
    try:
        for g in (topo["lan_g"], topo["wan_g"]):
            sh("ip link set %s netns %s" % (g, ns))
            sh("ip netns exec %s ip link set %s up" % (ns, g))
        sh("ip netns exec %s ip link set lo up" % ns)
        # The hosts' stacks hand their veths UDP/TCP with the checksum left
        # to the "hardware"; af_packet would pass that on unfinished.
        for side in ("lan", "wan"):
            sh("ip netns exec %s ethtool -K %s tx off" % (topo[side + "_ns"], topo[side + "_t"]))
        yield dict(topo, gw_ns=ns)
    finally:
        sh("ip netns del " + ns, check=False)


@pytest.mark.parametrize("lcores", ["0,1", "0,1,2@0"], ids=["1worker", "2workers"])
def test_exception_path(gw_netns, tmp_path, lcores):
    """Traffic for the gateway itself that is not ESP goes to the kernel
    through the port's exception TAP (which carries the port's MAC and
    address) and the kernel's answers leave by the port: ping, a UDP
    service on port 500 as IKE uses it, and the kernel's own ARP."""
    t = gw_netns
    ns = t["gw_ns"]
    wan = "ip netns exec %s " % t["wan_ns"]
    conf = ("[port 0]\nipv4 = %s/24\n[port 1]\nipv4 = %s/24\nexception = xgexc1\n"
            % (GW_LAN, GW_WAN))
    if lcores.count(",") == 2:   # each worker its queue of both ports (and of the TAP)
        conf += "[worker 1]\nrx = 0:0 1:0\n[worker 2]\nrx = 0:1 1:1\n"
    p, log, env = start_gateway(tmp_path, t, extra_conf=conf, netns=ns, lcores=lcores,
                                qpairs=lcores.count(","))
    echo = None
    try:
        deadline = time.time() + 10
        while True:   # the addresses come once the data plane is up
            addrs = sh("ip netns exec %s ip -o addr show xgexc1" % ns).stdout
            if "inet %s/24" % GW_WAN in addrs or time.time() > deadline:
                break
            time.sleep(0.1)
        assert "inet %s/24" % GW_WAN in addrs, addrs
        # The TAP carries the port's MAC address.
        port_mac = sh("ip netns exec %s cat /sys/class/net/%s/address" % (ns, t["wan_g"]))
        assert port_mac.stdout.strip() in sh("ip netns exec %s ip -o link show xgexc1"
                                              % ns).stdout
        # af_packet leaves the veth in the namespace's IP stack: with the
        # exception TAP's address in the same namespace, the kernel would
        # take frames for the port's MAC straight from the veth. A NIC
        # bound to DPDK has no such twin; here the veths get other MACs
        # (DPDK read the port's at start) so that the stack ignores them.
        for i, g in enumerate((t["lan_g"], t["wan_g"])):
            sh("ip netns exec %s ip link set %s address 02:00:00:00:0e:0%d" % (ns, g, i))
        sh(wan + "ip addr add %s/24 dev %s" % (PEER, t["wan_t"]))
        # The kernel answers ping (and resolves the peer by ARP itself).
        r = sh(wan + "ping -c 3 -i 0.3 -W 2 " + GW_WAN, check=False)
        assert r.returncode == 0 and "3 received" in r.stdout, r.stdout + r.stderr
        # A UDP service bound in the gateway's namespace, as charon's IKE socket.
        echo = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                 "import socket\n"
                                 "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                 "s.bind(('%s', 500))\n"
                                 "d, a = s.recvfrom(100)\n"
                                 "s.sendto(b'ike:' + d, a)\n" % GW_WAN])
        time.sleep(0.5)
        r = sh(wan + sys.executable + " -c \"import socket; s = socket.socket(2, 2); "
               "s.settimeout(3); s.bind(('%s', 500)); s.sendto(b'hello', ('%s', 500)); "
               "print(s.recvfrom(100)[0])\"" % (PEER, GW_WAN), check=False)
        assert "b'ike:hello'" in r.stdout, r.stdout + r.stderr
        live = telemetry("/xfrmgw/stats")
        assert live["XgExceptionIn"] >= 4 and live["XgExceptionOut"] >= 4, {k: v for k, v in live.items() if v}
        assert live.get("XgLocalIn", 0) == 0, live
    finally:
        if echo:
            echo.kill()
            echo.wait()
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    # The interface goes with the gateway.
    assert sh("ip netns exec %s ip link show xgexc1" % ns, check=False).returncode != 0


MAPPING_LISTENER = """
import socket, struct, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6)
s.bind((0, 1 << 7))   # XFRMNLGRP_MAPPING
s.settimeout(8)
print('ready', flush=True)
d = s.recv(4096)
ln, t = struct.unpack_from('=IH', d)
um = d[16:ln]
# xfrm_user_mapping: id (daddr 16, spi 4, family 2, proto 1, pad 1), reqid,
# old_saddr, new_saddr, old_sport, new_sport
spi, = struct.unpack_from('!I', um, 16)
reqid, = struct.unpack_from('=I', um, 24)
old = socket.inet_ntoa(um[28:32]); new = socket.inet_ntoa(um[44:48])
osp, nsp = struct.unpack_from('!HH', um, 60)
print(t, hex(spi), reqid, old, osp, new, nsp, flush=True)
"""


def test_nat_traversal(topo, tmp_path):
    """RFC 3948 ESP-in-UDP: the out SA's packets leave in UDP with its ports
    (checksum 0), the in SA takes ESP-in-UDP and refuses bare ESP, keepalives
    and IKE on 4500 are not ESP, and a peer seen at a new port is reported
    with XFRM_MSG_MAPPING. scapy builds and opens the ESP; the UDP layer is
    done by hand (scapy 2.5 gets NAT-T wrong)."""
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    listener = None
    try:
        install_tunnel(env, out_extra=" encap espinudp 4500 4501 0.0.0.0",
                       in_extra=" encap espinudp 4501 4500 0.0.0.0")
        time.sleep(0.3)
        gw_lan_mac, gw_wan_mac = mac(None, t["lan_g"]), mac(None, t["wan_g"])
        lan_mac, wan_mac = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])

        # Outbound.
        inner = [IP(src=LANHOST, dst="10.2.0.5", ttl=64) / ICMP(id=3, seq=i) for i in range(3)]
        got = [f for f in exchange(t, tmp_path, "lan", [Ether(src=lan_mac, dst=gw_lan_mac) / pk
                                                        for pk in inner])
               if f.haslayer(UDP) and f[IP].src == GW_WAN]
        assert len(got) == 3, [f.summary() for f in got]
        sa_out = SecurityAssociation(ESP, spi=0x100, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                     tunnel_header=IP(src=GW_WAN, dst=PEER))
        for f, orig in zip(got, inner):
            u = f[UDP]
            assert (u.sport, u.dport, u.chksum) == (4500, 4501, 0)
            assert u.len == len(bytes(u)) == f[IP].len - 20
            esp = IP(src=GW_WAN, dst=PEER, proto=50) / Raw(bytes(u.payload))
            assert bytes(sa_out.decrypt(IP(bytes(esp)))) == forwarded(orig)

        # Inbound: ESP-in-UDP from the peer's port, then the same ESP bare.
        sa_in = SecurityAssociation(ESP, spi=0x200, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                    tunnel_header=IP(src=PEER, dst=GW_WAN))

        def natt(seq, sport=4501, data=b"in"):
            e = sa_in.encrypt(IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=9) / data,
                              seq_num=seq)
            return Ether(src=wan_mac, dst=gw_wan_mac) / IP(src=PEER, dst=GW_WAN) / \
                UDP(sport=sport, dport=4500) / Raw(bytes(e[ESP]))

        bare = Ether(src=wan_mac, dst=gw_wan_mac) / sa_in.encrypt(
            IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=9) / b"bare", seq_num=9)
        keepalive = Ether(src=wan_mac, dst=gw_wan_mac) / IP(src=PEER, dst=GW_WAN) / \
            UDP(sport=4501, dport=4500) / b"\xff"
        ike = Ether(src=wan_mac, dst=gw_wan_mac) / IP(src=PEER, dst=GW_WAN) / \
            UDP(sport=4501, dport=4500) / (b"\0\0\0\0" + b"ike" * 10)
        got = [f for f in exchange(t, tmp_path, "wan", [natt(1), natt(2), bare, keepalive, ike])
               if f.haslayer(UDP) and f[IP].dst == LANHOST]
        assert [bytes(f[UDP].payload) for f in got] == [b"in", b"in"]

        # The peer behind a NAT that changed its port: delivered, and reported.
        listener = subprocess.Popen([sys.executable, "-c", MAPPING_LISTENER], env=env,
                                    stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ready"
        got = [f for f in exchange(t, tmp_path, "wan", [natt(3, sport=4999, data=b"moved")])
               if f.haslayer(UDP) and f[IP].dst == LANHOST]
        assert [bytes(f[UDP].payload) for f in got] == [b"moved"]
        line = listener.stdout.readline().split()
        assert line == ["38", "0x200", "2", PEER, "4501", PEER, "4999"], line
        # The key manager follows the NAT (UPDSA of the ports, as charon does):
        # the reply traffic goes to the new port, and packets from it are no
        # longer news.
        ipx(env, "xfrm state update src %s dst %s proto esp spi 0x100 reqid 1 mode tunnel "
            "aead 'rfc4106(gcm(aes))' %s 128 encap espinudp 4500 4999 0.0.0.0"
            % (GW_WAN, PEER, KEY))
        ipx(env, "xfrm state update src %s dst %s proto esp spi 0x200 reqid 2 mode tunnel "
            "replay-window 32 aead 'rfc4106(gcm(aes))' %s 128 encap espinudp 4999 4500 0.0.0.0"
            % (PEER, GW_WAN, KEY))
        time.sleep(0.5)
        got = [f for f in exchange(t, tmp_path, "lan", [Ether(src=lan_mac, dst=gw_lan_mac) /
                                                        inner[0]])
               if f.haslayer(UDP) and f[IP].src == GW_WAN]
        assert [(f[UDP].sport, f[UDP].dport) for f in got] == [(4500, 4999)]
        got = [f for f in exchange(t, tmp_path, "wan", [natt(4, sport=4999, data=b"settled")])
               if f.haslayer(UDP) and f[IP].dst == LANHOST]
        assert [bytes(f[UDP].payload) for f in got] == [b"settled"]
    finally:
        if listener:
            listener.kill()
            listener.wait()
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XgInDecrypted") == 4, text
    assert counters.get("XfrmInStateMismatch") == 1, text
    # IKE is the gateway's own (no exception path here); the keepalive is
    # consumed, as xfrm4_udp_encap_rcv() does.
    assert counters.get("XgLocalIn") == 1, text
    assert counters.get("XgNattKeepalive") == 1, text
