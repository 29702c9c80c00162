# SPDX-License-Identifier: BSD-3-Clause
"""The gateway on net_pcap ports: rx and tx pcap files.

net_pcap reads its rx file from the start, so the rx "files" are FIFOs the
test writes into once the SAs and policies are in (one unroutable packet
first, then the traffic). The tx files are read after the daemon stopped.
Both directions, checked with scapy.
"""
import os
import signal
import struct
import subprocess
import threading
import time

from scapy.all import Ether, IP, UDP, Raw, rdpcap, raw
from scapy.layers.ipsec import ESP, SecurityAssociation

import conftest
from test_gateway import forwarded

KEY = "0x00112233445566778899aabbccddeeffa0a1a2a3"
KEY_B = bytes.fromhex(KEY[2:])
GW_MAC = {0: "02:00:00:00:00:10", 1: "02:00:00:00:00:11"}
HOST_MAC, PEER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


def pcap_header():
    return struct.pack("=IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)


def pcap_record(frame):
    b = raw(frame)
    return struct.pack("=IIII", 0, 0, len(b), len(b)) + b


class Feeder(threading.Thread):
    """Opens a FIFO for writing, writes the header, then frames on demand."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.frames, self.go, self.done = path, [], threading.Event(), \
            threading.Event()

    def run(self):
        with open(self.path, "wb", buffering=0) as f:
            f.write(pcap_header())
            self.go.wait(60)
            for i, fr in enumerate(self.frames):
                f.write(pcap_record(fr))
        self.done.set()


def test_pcap_ports(tmp_path):
    lan_in, wan_in = str(tmp_path / "lan_in.pcap"), str(tmp_path / "wan_in.pcap")
    lan_out, wan_out = str(tmp_path / "lan_out.pcap"), str(tmp_path / "wan_out.pcap")
    os.mkfifo(lan_in)
    os.mkfifo(wan_in)
    feeders = [Feeder(lan_in), Feeder(wan_in)]
    for f in feeders:
        f.start()
    conf = tmp_path / "gw.conf"
    conf.write_text("[port 0]\nipv4 = 10.1.0.254/24\n[port 1]\nipv4 = 192.0.2.1/24\n"
                    "[route r]\nprefix = 10.2.0.0/16\nvia = 192.0.2.2\nport = 1\n"
                    "[neighbour p]\naddress = 192.0.2.2\nmac = %s\nport = 1\n"
                    "[neighbour h]\naddress = 10.1.0.1\nmac = %s\nport = 0\n"
                    % (PEER_MAC, HOST_MAC))
    sock = str(tmp_path / "x.sock")
    log = open(tmp_path / "gw.log", "w+")
    gw = subprocess.Popen([conftest.XFRMGW, "-l", "0,1", "--no-huge", "-m", "512", "--no-pci",
                           "--no-shconf",
                           "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=%s" % (lan_in, lan_out),
                           "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (wan_in, wan_out),
                           "--log-level", "*:info", "--log-level", "lib.*:warning", "--",
                           "--xfrm-socket", sock, "--config", str(conf)],
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while not os.path.exists(sock):
            assert gw.poll() is None and time.time() < deadline, open(tmp_path / "gw.log").read()
            time.sleep(0.05)
        env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=sock)
        for cmd in ("xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 "
                    "mode tunnel aead 'rfc4106(gcm(aes))' %s 128" % KEY,
                    "xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x200 reqid 2 "
                    "mode tunnel aead 'rfc4106(gcm(aes))' %s 128" % KEY,
                    "xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
                    "tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel",
                    "xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/16 dir fwd "
                    "tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel"):
            r = subprocess.run("ip " + cmd, shell=True, env=env, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        sync = Ether(src=HOST_MAC, dst=GW_MAC[0]) / IP(src="10.1.0.1", dst="203.0.113.9") / \
            UDP(sport=1, dport=1)
        out = [IP(src="10.1.0.1", dst="10.2.0.5") / UDP(sport=10 + i, dport=20) / Raw(b"a" * i)
               for i in range(1, 6)]
        feeders[0].frames = [sync] + [Ether(src=HOST_MAC, dst=GW_MAC[0]) / p for p in out]
        sa_in = SecurityAssociation(ESP, spi=0x200, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                    tunnel_header=IP(src="192.0.2.2", dst="192.0.2.1"))
        back = [IP(src="10.2.0.5", dst="10.1.0.1") / UDP(sport=20, dport=10 + i) / Raw(b"b" * i)
                for i in range(1, 4)]
        feeders[1].frames = [Ether(src=PEER_MAC, dst=GW_MAC[1]) / sync[IP]] + \
            [Ether(src=PEER_MAC, dst=GW_MAC[1]) / sa_in.encrypt(p, seq_num=i + 1)
             for i, p in enumerate(back)]
        for f in feeders:
            f.go.set()
        for f in feeders:
            assert f.done.wait(30)
        time.sleep(1.0)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=30)
        for f in feeders:
            f.go.set()
    log.seek(0)
    text = log.read()
    conftest.assert_clean_exit(text)
    assert gw.returncode == 0, text
    sa_out = SecurityAssociation(ESP, spi=0x100, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                 tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"))
    esp = [f for f in rdpcap(wan_out) if f.haslayer(ESP)]
    assert len(esp) == len(out), text
    for f, orig in zip(esp, out):
        assert f[Ether].dst == PEER_MAC
        assert bytes(sa_out.decrypt(f[IP])) == forwarded(orig)
    plain = [f for f in rdpcap(lan_out) if f.haslayer(UDP) and f[IP].src == "10.2.0.5"]
    assert len(plain) == len(back), text
    for f, orig in zip(plain, back):
        assert f[Ether].dst == HOST_MAC
        assert bytes(f[IP]) == forwarded(orig)
    # The two sync packets had no route.
    assert "XgNoRoute               \t2" in text, text
