# SPDX-License-Identifier: BSD-3-Clause
"""Faults under traffic: nothing good is lost.

The gateway runs on net_pcap ports whose rx files are FIFOs (as in
test_gateway_pcap.py): a FIFO never drops, so every frame written is a
frame the gateway received, and what it sent is in the tx files once it
stopped. One writer thread feeds both ports in lockstep at a steady pace
while the test changes SAs and policies through the preload library.
Every packet that left is decrypted with the cryptography module's
AES-GCM (an oracle independent of the gateway's IPsec-MB) and matched to
what was sent; packets of an SA that stayed valid are counted exactly.

Tests marked fault_injection need a binary built with
-Dfault_injection=true; they fail (never skip) against any other.
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.all import Ether, IP, UDP, Raw, fragment, raw, rdpcap

import conftest

HERE = os.path.dirname(os.path.abspath(__file__))
from test_gateway import forwarded, topo  # noqa: F401 (topo: the netns fixture)
from test_gateway_pcap import pcap_header, pcap_record

KEYS = {spi: bytes([spi & 0xff] * 16) + bytes([0xca, 0xfe, spi & 0xff, 0x01])
        for spi in (0x100, 0x101, 0x200, 0x201, 0x300, 0x400)}
GW_MAC = {0: "02:00:00:00:00:10", 1: "02:00:00:00:00:11"}
HOST_MAC, PEER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
GW_WAN, PEER = "192.0.2.1", "192.0.2.2"
CONF = ("[port 0]\nipv4 = 10.1.0.254/24\n[port 1]\nipv4 = 192.0.2.1/24\n"
        "[route r]\nprefix = 10.2.0.0/15\nvia = 192.0.2.2\nport = 1\n"
        "[neighbour p]\naddress = 192.0.2.2\nmac = %s\nport = 1\n"
        "[neighbour h]\naddress = 10.1.0.1\nmac = %s\nport = 0\n" % (PEER_MAC, HOST_MAC))


def hexkey(spi):
    return "0x" + KEYS[spi].hex()


# ---------------------------------------------------------------- ESP oracle
def esp_encrypt(spi, seq, inner):
    """The peer's ESP tunnel packet (RFC 4106 GCM, 16-byte ICV) for @p inner."""
    body = raw(inner)
    pad = (-(len(body) + 2)) % 4
    plain = body + bytes(range(1, pad + 1)) + bytes([pad, 4])
    iv = struct.pack("!Q", seq)
    hdr = struct.pack("!II", spi, seq)
    key = KEYS[spi]
    ct = AESGCM(key[:16]).encrypt(key[16:] + iv, plain, hdr)
    return Ether(src=PEER_MAC, dst=GW_MAC[1]) / IP(src=PEER, dst=GW_WAN, proto=50) / \
        Raw(hdr + iv + ct)


def esp_decrypt(frame):
    """(spi, seq, inner IP bytes) of an ESP tunnel frame the gateway sent;
    raises if the ICV, padding or next header is wrong."""
    ip = frame[IP]
    assert ip.proto == 50 and ip.src == GW_WAN and ip.dst == PEER
    esp = raw(ip.payload)
    spi, seq = struct.unpack("!II", esp[:8])
    key = KEYS[spi]
    plain = AESGCM(key[:16]).decrypt(key[16:] + esp[8:16], esp[16:], esp[:8])
    pad, nh = plain[-2], plain[-1]
    assert nh == 4 and plain[-2 - pad:-2] == bytes(range(1, pad + 1))
    return spi, seq, plain[:-2 - pad]


def lan_frame(dst, i):
    return Ether(src=HOST_MAC, dst=GW_MAC[0]) / IP(src="10.1.0.1", dst=dst) / \
        UDP(sport=1000 + i % 50000, dport=7) / Raw(struct.pack("!I", i) + b"o" * 20)


def back_inner(src, i):
    return IP(src=src, dst="10.1.0.1") / UDP(sport=7, dport=1000 + i % 50000) / \
        Raw(struct.pack("!I", i) + b"i" * 20)


# ---------------------------------------------------------------- the gateway
class Stream(threading.Thread):
    """Feeds both FIFOs in lockstep: for i in 0.., gen(i) gives (lan frame or
    None, wan frame or None); one pair every @p pace seconds. net_pcap reads
    a whole burst from one port before the other: never more than a pipe's
    worth ahead on either, so neither write blocks for long."""

    def __init__(self, paths, pace=0.002):
        super().__init__(daemon=True)
        self.paths, self.pace, self.gen, self.count = paths, pace, None, 0
        self.go, self.done, self.stop_at = threading.Event(), threading.Event(), None
        self.sent = {0: 0, 1: 0}
        self.error = None

    def run(self):
        try:
            files = [None, None]

            def opener(k):   # the gateway opens its rx FIFOs one by one
                files[k] = open(self.paths[k], "wb", buffering=0)
                files[k].write(pcap_header())
            openers = [threading.Thread(target=opener, args=(k,), daemon=True)
                       for k in (0, 1)]
            for t in openers:
                t.start()
            for t in openers:
                t.join()
            self.go.wait(60)
            i = 0
            while self.gen and (self.stop_at is None or i < self.stop_at):
                pair = self.gen(i)
                if pair is None:
                    break
                for port, fr in enumerate(pair):
                    if fr is not None:
                        files[port].write(pcap_record(fr))
                        self.sent[port] += 1
                i += 1
                self.count = i
                if self.pace:
                    time.sleep(self.pace)
            for f in files:
                f.close()
        except BrokenPipeError as e:   # the gateway stopped reading
            self.error = e
        self.done.set()

    def wait_index(self, i, timeout=60):
        deadline = time.time() + timeout
        while self.count < i:
            assert time.time() < deadline and not self.done.is_set(), "stream stalled"
            time.sleep(0.005)


class PcapGw:
    def __init__(self, tmp_path, mbufs=None, env=None, pace=0.002, lcores="0,1", sub=None,
                 sock=None):
        if sub:
            tmp_path = tmp_path / sub
            tmp_path.mkdir()
        self.tmp, self.prefix = tmp_path, "xgf%d_%d" % (os.getpid(), id(self) % 10000)
        rx = [str(tmp_path / n) for n in ("lan_in.pcap", "wan_in.pcap")]
        self.tx = [str(tmp_path / n) for n in ("lan_out.pcap", "wan_out.pcap")]
        for p in rx:
            os.mkfifo(p)
        self.stream = Stream(rx, pace)
        self.stream.start()
        conf = tmp_path / "gw.conf"
        conf.write_text(CONF)
        self.sock = sock or str(tmp_path / "x.sock")
        self.logf = open(tmp_path / "gw.log", "w+")
        cmd = [conftest.XFRMGW, "-l", lcores, "--no-huge", "-m", "512", "--no-pci",
               "--no-shconf", "--file-prefix", self.prefix,
               "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=%s" % (rx[0], self.tx[0]),
               "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (rx[1], self.tx[1]),
               "--log-level", "*:info", "--log-level", "lib.*:warning", "--",
               "--xfrm-socket", self.sock, "--config", str(conf)]
        if mbufs:
            cmd += ["--mbufs", str(mbufs)]
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        self.rc, self.text, self.counters = None, "", {}
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None and time.time() < deadline, self.log()
            time.sleep(0.05)
        self.env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=self.sock)

    def log(self):
        self.logf.flush()
        with open(self.tmp / "gw.log") as f:
            return f.read()

    def ip(self, cmd, check=True):
        r = subprocess.run("ip " + cmd, shell=True, env=self.env, capture_output=True,
                           text=True, timeout=120)
        assert not check or r.returncode == 0, (cmd, r.stderr)
        return r

    def telemetry(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % self.prefix)
        s.recv(16384)
        s.send(cmd.encode())
        reply = json.loads(s.recv(1 << 20).decode())
        s.close()
        return reply[cmd.split(",")[0]]

    def pool_free(self):
        info = self.telemetry("/xfrmgw/pool")
        return info["avail"], info["size"]

    def pool_check(self):
        """Every mbuf back in the pool (ASan cannot see mempool leaks)."""
        deadline = time.time() + 5
        while True:
            free, size = self.pool_free()
            if free == size:
                return
            assert time.time() < deadline, ("mbufs leaked", free, size)
            time.sleep(0.05)

    def run(self, gen, count=None):
        self.stream.gen, self.stream.stop_at = gen, count
        self.stream.go.set()

    def finish(self, timeout=120):
        """Wait for the stream's end and for the gateway to have read it
        all, then stop it; returns (lan frames out, wan frames out)."""
        assert self.stream.done.wait(timeout), "stream did not end"
        total = self.stream.sent[0] + self.stream.sent[1]
        deadline = time.time() + 30
        while self.telemetry("/xfrmgw/stats")["XgRxPackets"] < total:
            assert time.time() < deadline, (total, self.telemetry("/xfrmgw/stats"))
            time.sleep(0.05)
        time.sleep(0.3)   # the last burst through ESP and tx
        self.pool_check()
        self.stop()
        return [rdpcap(p) for p in self.tx]

    def stop(self, sig=signal.SIGTERM):
        if self.rc is not None:
            return
        self.stream.go.set()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.rc = self.proc.wait()
        subprocess.run(["rm", "-rf", "/var/run/dpdk/" + self.prefix], check=False)
        self.text = self.log()
        self.counters = {m.group(1): int(m.group(2))
                         for m in re.finditer(r"counter (\w+)\s+(\d+)", self.text)}
        # A FIFO nobody reads any more: unblock a writer still waiting on it.
        for p in self.stream.paths:
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pcapgw(tmp_path):
    made = []

    def make(**kw):
        g = PcapGw(tmp_path, **kw)
        made.append(g)
        return g
    yield make
    for g in made:
        g.stop()


def tunnel(gw, nets=(("10.2.0.0/16", 0x100, 0x200, 1, 2),)):
    for net, out_spi, in_spi, rq_out, rq_in in nets:
        gw.ip("xfrm state add src %s dst %s proto esp spi %#x reqid %d mode tunnel "
              "aead 'rfc4106(gcm(aes))' %s 128" % (GW_WAN, PEER, out_spi, rq_out,
                                                   hexkey(out_spi)))
        gw.ip("xfrm state add src %s dst %s proto esp spi %#x reqid %d mode tunnel "
              "replay-window 64 aead 'rfc4106(gcm(aes))' %s 128"
              % (PEER, GW_WAN, in_spi, rq_in, hexkey(in_spi)))
        gw.ip("xfrm policy add src 10.1.0.0/16 dst %s dir out "
              "tmpl src %s dst %s proto esp reqid %d mode tunnel" % (net, GW_WAN, PEER, rq_out))
        gw.ip("xfrm policy add src %s dst 10.1.0.0/16 dir fwd "
              "tmpl src %s dst %s proto esp reqid %d mode tunnel" % (net, PEER, GW_WAN, rq_in))


def delete_pair(gw, out_spi, in_spi):
    """Delete the outbound SA @p out_spi and the inbound SA @p in_spi."""
    gw.ip("xfrm state delete src %s dst %s proto esp spi %#x" % (GW_WAN, PEER, out_spi))
    gw.ip("xfrm state delete src %s dst %s proto esp spi %#x" % (PEER, GW_WAN, in_spi))


def outbound(frames):
    """{spi: [(seq, inner bytes)]} of the ESP frames in wan_out, all decrypted."""
    got = {}
    for f in frames:
        if f.haslayer(IP) and f[IP].proto == 50:
            assert f[Ether].dst == PEER_MAC
            spi, seq, inner = esp_decrypt(f)
            got.setdefault(spi, []).append((seq, inner))
    return got


def inbound(frames, src):
    """Index field of each decrypted packet from @p src in lan_out, checked
    against what the peer put in."""
    idx = []
    for f in frames:
        if f.haslayer(UDP) and f[IP].src == src:
            assert f[Ether].dst == HOST_MAC
            i = struct.unpack("!I", raw(f[UDP].payload)[:4])[0]
            assert raw(f[IP]) == forwarded(back_inner(src, i))
            idx.append(i)
    return idx


def check_out(got, spi, dst, want_idx, first_seq=1):
    """SPI @p spi carried exactly packets @p want_idx to @p dst, in order,
    with sequence numbers first_seq, first_seq+1, ..."""
    pk = got.get(spi, [])
    idx = [struct.unpack("!I", raw(IP(p)[UDP].payload)[:4])[0] for _, p in pk]
    assert idx == list(want_idx), (hex(spi), len(idx), len(want_idx))
    for (seq, p), i in zip(pk, idx):
        assert p == forwarded(lan_frame(dst, i)[IP])
    assert [s for s, _ in pk] == list(range(first_seq, first_seq + len(pk))), hex(spi)


RESULTS = []


def record(case, sent, received, counters):
    RESULTS.append((case, sent, received, sent - received, counters))
    print("FAULTS %-28s sent %6d received %6d lost %d %s" % (case, sent, received,
                                                              sent - received, counters))


# ---------------------------------------------------------------- 1. SA/SPD changes
def test_sa_delete_under_traffic(pcapgw):
    """(a) SA pair B deleted while both pairs carry traffic: A loses nothing,
    every B packet either went through or is a counted drop."""
    gw = pcapgw()
    tunnel(gw, (("10.2.0.0/16", 0x100, 0x200, 1, 2), ("10.3.0.0/16", 0x300, 0x400, 3, 4)))
    n = 1200

    def gen(i):
        if i % 2 == 0:
            return lan_frame("10.2.0.5", i), esp_encrypt(0x200, i // 2 + 1,
                                                         back_inner("10.2.0.5", i))
        return lan_frame("10.3.0.5", i), esp_encrypt(0x400, i // 2 + 1,
                                                     back_inner("10.3.0.5", i))
    gw.run(gen, n)
    gw.stream.wait_index(n // 2)
    delete_pair(gw, 0x300, 0x400)
    lan, wan = gw.finish()
    assert gw.rc == 0, gw.text
    got = outbound(wan)
    a_idx = list(range(0, n, 2))
    check_out(got, 0x100, "10.2.0.5", a_idx)
    assert inbound(lan, "10.2.0.5") == a_idx
    b_out = len(got.get(0x300, []))
    check_out(got, 0x300, "10.3.0.5", list(range(1, n, 2))[:b_out])
    b_in = inbound(lan, "10.3.0.5")
    assert b_in == list(range(1, n, 2))[:len(b_in)]
    c = gw.counters
    # B went on until the delete, stopped after it; the rest are counted.
    assert 0 < b_out < n // 2 and 0 < len(b_in) < n // 2, (b_out, len(b_in))
    assert b_out + c.get("XfrmOutNoStates", 0) + c.get("XfrmOutStateInvalid", 0) == n // 2, c
    assert len(b_in) + c.get("XfrmInNoStates", 0) + c.get("XfrmInStateInvalid", 0) == n // 2, c
    record("1a SA deleted, A both ways", 2 * len(a_idx), len(got[0x100]) +
           len(inbound(lan, "10.2.0.5")),
           {k: c.get(k, 0) for k in ("XfrmOutNoStates", "XfrmInNoStates")})
    record("1a deleted SA B both ways", n, b_out + len(b_in),
           {k: c.get(k, 0) for k in ("XfrmOutNoStates", "XfrmInNoStates")})


def test_sa_update_under_traffic(pcapgw):
    """(b) UPDSA of both SAs (same SPI and key, new lifetimes) in use: no
    loss, sequence numbers go on, the replay window survives."""
    gw = pcapgw()
    tunnel(gw)
    n = 800
    replayed = []

    def gen(i):
        if i == n - 1:   # the peer's packet 10 again: must be refused
            replayed.append(i)
            return None, esp_encrypt(0x200, 10, back_inner("10.2.0.5", 9))
        return lan_frame("10.2.0.5", i), esp_encrypt(0x200, i + 1, back_inner("10.2.0.5", i))
    gw.run(gen, n)
    for k in (1, 2, 3):
        gw.stream.wait_index(k * n // 4)
        gw.ip("xfrm state update src %s dst %s proto esp spi 0x100 reqid 1 mode tunnel "
              "aead 'rfc4106(gcm(aes))' %s 128 limit time-hard %d limit time-soft %d"
              % (GW_WAN, PEER, hexkey(0x100), 3600 + k, 3000 + k))
        gw.ip("xfrm state update src %s dst %s proto esp spi 0x200 reqid 2 mode tunnel "
              "replay-window 64 aead 'rfc4106(gcm(aes))' %s 128 limit time-hard %d"
              % (PEER, GW_WAN, hexkey(0x200), 3600 + k))
    state = gw.ip("-s xfrm state get src %s dst %s proto esp spi 0x100" % (GW_WAN, PEER)).stdout
    assert "3603" in state, state
    lan, wan = gw.finish()
    assert gw.rc == 0, gw.text
    got = outbound(wan)
    check_out(got, 0x100, "10.2.0.5", range(n - 1))
    assert inbound(lan, "10.2.0.5") == list(range(n - 1))
    c = gw.counters
    assert c.get("XfrmInStateSeqError") == 1, c
    record("1b UPDSA x3 both ways", 2 * (n - 1), 2 * (n - 1), {"XfrmInStateSeqError": 1})


def test_rekey_under_traffic(pcapgw):
    """(c) charon's rekey order: new inbound SA, new outbound SA, policy
    update, old SAs deleted later. The peer moves to the new inbound SPI
    after it was installed. Both directions: no loss."""
    gw = pcapgw()
    tunnel(gw)
    n = 1200
    peer = {"spi": 0x200, "seq": 0}

    def gen(i):
        peer["seq"] += 1
        return lan_frame("10.2.0.5", i), esp_encrypt(peer["spi"], peer["seq"],
                                                     back_inner("10.2.0.5", i))
    gw.run(gen, n)
    gw.stream.wait_index(n // 4)
    gw.ip("xfrm state add src %s dst %s proto esp spi 0x201 reqid 2 mode tunnel "
          "replay-window 64 aead 'rfc4106(gcm(aes))' %s 128" % (PEER, GW_WAN, hexkey(0x201)))
    gw.ip("xfrm state add src %s dst %s proto esp spi 0x101 reqid 1 mode tunnel "
          "aead 'rfc4106(gcm(aes))' %s 128" % (GW_WAN, PEER, hexkey(0x101)))
    gw.ip("xfrm policy update src 10.1.0.0/16 dst 10.2.0.0/16 dir out "
          "tmpl src %s dst %s proto esp reqid 1 mode tunnel" % (GW_WAN, PEER))
    gw.ip("xfrm policy update src 10.2.0.0/16 dst 10.1.0.0/16 dir fwd "
          "tmpl src %s dst %s proto esp reqid 2 mode tunnel" % (PEER, GW_WAN))
    switch = gw.stream.count
    peer["spi"], peer["seq"] = 0x201, 0
    gw.stream.wait_index(n // 2)
    delete_pair(gw, 0x100, 0x200)
    lan, wan = gw.finish()
    assert gw.rc == 0, gw.text
    got = outbound(wan)
    old = len(got.get(0x100, []))
    assert 0 < old <= switch + 1 and set(got) == {0x100, 0x101}, (old, switch, list(got))
    check_out(got, 0x100, "10.2.0.5", range(old))
    check_out(got, 0x101, "10.2.0.5", range(old, n))
    assert inbound(lan, "10.2.0.5") == list(range(n))
    c = gw.counters
    assert c.get("XgOutEncrypted") == n and c.get("XgInDecrypted") == n, c
    record("1c rekey both ways", 2 * n, len(got[0x100]) + len(got[0x101]) + n,
           {"XgOutEncrypted": n, "XgInDecrypted": n})


def test_spd_rebuild_under_traffic(pcapgw, tmp_path):
    """(d) 10000 policies added in batches of 50 NEWPOLICY a datagram while traffic matching an
    unchanged policy flows both ways: no loss, and the rules are in."""
    gw = pcapgw()
    tunnel(gw)
    peer = {"seq": 0}

    def gen(i):
        if gw.stream.stop_at is None and peer.get("done"):
            return None
        peer["seq"] += 1
        return lan_frame("10.2.0.5", i), esp_encrypt(0x200, i + 1, back_inner("10.2.0.5", i))
    gw.run(gen)
    gw.stream.wait_index(100)
    builds = gw.telemetry("/xfrmgw/dp")["builds"]
    t0 = time.time()
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "polbatch.py"), "10000", "50"],
                       env=gw.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["10000"], r.stderr
    took = time.time() - t0
    deadline = time.time() + 60
    while gw.telemetry("/xfrmgw/dp")["policies"] < 10002:
        assert time.time() < deadline, gw.telemetry("/xfrmgw/dp")
        time.sleep(0.05)
    during = gw.telemetry("/xfrmgw/dp")["builds"] - builds
    gw.stream.wait_index(gw.stream.count + 100)
    peer["done"] = True
    lan, wan = gw.finish()
    n = gw.stream.count
    assert gw.rc == 0, gw.text
    got = outbound(wan)
    check_out(got, 0x100, "10.2.0.5", range(n))
    assert inbound(lan, "10.2.0.5") == list(range(n))
    assert during >= 1, during   # rebuilt while packets flowed
    record("1d 10000 policies (%.1fs, %d builds)" % (took, during), 2 * n, 2 * n, {})


# ---------------------------------------------------------------- 3. crypto failures
def fault_build():
    """The binary must have the fault hooks: a test that cannot inject its
    fault would pass without testing anything, so it fails instead."""
    r = subprocess.run([conftest.XFRMGW, "--no-huge", "-m", "64", "--no-pci", "--no-shconf",
                        "--file-prefix", "xgfh%d" % os.getpid(), "--log-level", "*:error",
                        "--", "--help"], capture_output=True, text=True, timeout=30)
    subprocess.run(["rm", "-rf", "/var/run/dpdk/xgfh%d" % os.getpid()], check=False)
    if "fault injection" not in r.stdout:
        pytest.fail("%s was built without -Dfault_injection=true: the fault_injection tests "
                    "need such a build (meson setup <dir> -Dfault_injection=true; "
                    "XFRMGW_BUILD=<dir>)" % conftest.XFRMGW, pytrace=False)


@pytest.mark.fault_injection
@pytest.mark.parametrize("every", [7, 1000])
def test_crypto_failures(pcapgw, every):
    """Every Nth crypto operation fails: counted as the kernel counts a
    failed esp_output/esp_input (XfrmOutStateProtoError,
    XfrmInStateProtoError), mbufs freed, the SA goes on. A failed outbound
    operation consumed its sequence number (as in the kernel, whose
    xfrm_output_one numbers the packet before ESP runs): a gap."""
    fault_build()
    gw = pcapgw(env={"XFRMGW_FAULT_CRYPTO": "every=%d" % every})
    tunnel(gw)
    n = 1500
    gw.run(lambda i: (lan_frame("10.2.0.5", i),
                      esp_encrypt(0x200, i + 1, back_inner("10.2.0.5", i))), n)
    lan, wan = gw.finish()
    assert gw.rc == 0, gw.text
    c = gw.counters
    got = outbound(wan)[0x100]
    seqs = [s for s, _ in got]
    out_fail, in_fail = c.get("XfrmOutStateProtoError", 0), c.get("XfrmInStateProtoError", 0)
    assert out_fail + in_fail == 2 * n // every, c
    assert len(got) + out_fail == n and out_fail > 0, (len(got), c)
    # Numbers of failed packets are skipped, never reused; order kept.
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[-1] <= n
    idx = [struct.unpack("!I", raw(IP(p)[UDP].payload)[:4])[0] for _, p in got]
    for (seq, p), i in zip(got, idx):
        assert seq == i + 1 and p == forwarded(lan_frame("10.2.0.5", i)[IP])
    back = inbound(lan, "10.2.0.5")
    assert len(back) + in_fail == n and in_fail > 0, (len(back), c)
    # The SA kept working to the end in both directions.
    assert idx[-1] >= n - every and back[-1] >= n - every, (idx[-1], back[-1])
    record("3 crypto every=%d" % every, 2 * n, len(got) + len(back),
           {"XfrmOutStateProtoError": out_fail, "XfrmInStateProtoError": in_fail})


# ---------------------------------------------------------------- 5. stop, restart
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_under_traffic_and_restart(pcapgw, tmp_path, sig):
    """A signal while traffic flows: the daemon finishes its bursts and
    exits 0 within a second, its socket file gone, every packet it sent
    whole. A new daemon on the same socket starts empty, as the kernel
    after a reboot (charon installs everything again), and serves."""
    sock = str(tmp_path / "x.sock")
    gw = pcapgw(pace=0, sub="first", sock=sock)
    tunnel(gw)
    gw.run(lambda i: (lan_frame("10.2.0.5", i),
                      esp_encrypt(0x200, i + 1, back_inner("10.2.0.5", i))))
    gw.stream.wait_index(2000)
    t0 = time.monotonic()
    gw.proc.send_signal(sig)
    gw.proc.wait(timeout=20)
    took = time.monotonic() - t0
    gw.stop()
    assert gw.rc == 0 and took < 1.0, (took, gw.text)
    assert not os.path.exists(sock)
    c = gw.counters
    got = outbound(rdpcap(gw.tx[1]))[0x100]
    back = inbound(rdpcap(gw.tx[0]), "10.2.0.5")
    # What the workers counted as sent is in the files, each packet whole.
    assert len(got) + len(back) == c["XgTxPackets"] > 2000, c
    assert [s for s, _ in got] == list(range(1, len(got) + 1))
    assert back == list(range(len(back)))
    gw2 = pcapgw(sub="second", sock=sock)
    assert gw2.ip("xfrm state list").stdout == "" and gw2.ip("xfrm policy list").stdout == ""
    tunnel(gw2)
    assert "spi 0x00000100" in gw2.ip("xfrm state list").stdout
    gw2.run(lambda i: (lan_frame("10.2.0.5", i),
                       esp_encrypt(0x200, i + 1, back_inner("10.2.0.5", i))), 50)
    lan, wan = gw2.finish()
    check_out(outbound(wan), 0x100, "10.2.0.5", range(50))
    assert inbound(lan, "10.2.0.5") == list(range(50))
    record("5 %s: stop %.3fs, restart" % (signal.Signals(sig).name, took),
           c["XgRxPackets"] + 100, c["XgTxPackets"] + 100,
           {"XgTxPackets": c["XgTxPackets"]})


def test_socket_file_removed(tmp_path):
    """The socket file removed under the daemon: a connected client goes on
    being served, the daemon recreates the file within a second or two and
    new clients connect; a file another process put there is left alone
    (and not removed at exit)."""
    import nl
    d = conftest.Daemon(str(tmp_path / "x.sock"))
    try:
        keep = subprocess.Popen(
            ["/usr/bin/python3", "-c",
             "import sys, nl, socket\n"
             "s = nl.XfrmSocket()\n"
             "sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.readline()\n"
             "s.request(nl.XFRM_MSG_GETSPDINFO, b'\\xff\\xff\\xff\\xff')\n"
             "m = s.recv_msgs()\n"
             "print(m[0][0])\n"],
            env=dict(d.env(), PYTHONPATH=HERE), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        assert keep.stdout.readline() == "up\n"
        ino = os.stat(d.sock).st_ino
        os.unlink(d.sock)
        deadline = time.time() + 5
        while not os.path.exists(d.sock):
            assert time.time() < deadline and d.alive(), d.output()
            time.sleep(0.05)
        assert os.stat(d.sock).st_ino != ino
        out, _ = keep.communicate("go\n", timeout=10)
        assert out.strip() == str(nl.XFRM_MSG_NEWSPDINFO), out
        rc, out, err = d.sh("ip xfrm state add src 1.1.1.1 dst 2.2.2.2 proto esp spi 0x9 "
                            "aead 'rfc4106(gcm(aes))' 0x%s 128 && ip xfrm state list" %
                            ("ab" * 20))
        assert rc == 0 and "spi 0x00000009" in out, err
        assert "XFRM socket file was removed: recreated" in d.output()
        # Someone else's file at the path: kept, also at exit.
        os.unlink(d.sock)
        with open(d.sock, "w") as f:
            f.write("not ours")
        time.sleep(1.5)
        assert d.alive()
    finally:
        rc = d.stop()
    assert rc == 0
    with open(d.sock) as f:
        assert f.read() == "not ours"


# ---------------------------------------------------------------- 4. link down/up, tx full
def _lan_burst(t, tmp_path, first, n, wait=2.5, sniff=True):
    """n UDP packets LAN -> 10.2.0.5 over the real veths; the ESP frames
    that reached the WAN netns, decrypted: [(seq, index)]."""
    import test_gateway as tg
    gw_lan = tg.mac(None, t["lan_g"])
    lan = tg.mac(t["lan_ns"], t["lan_t"])
    frames = [Ether(src=lan, dst=gw_lan) / IP(src=tg.LANHOST, dst="10.2.0.5") /
              UDP(sport=5000, dport=7) / Raw(struct.pack("!I", first + i) + b"L" * 16)
              for i in range(n)]
    key = bytes.fromhex(tg.KEY[2:])
    got = []
    if not sniff:
        inp = str(tmp_path / "lan_only.pcap")
        tg.wrpcap(inp, frames)
        subprocess.run(["ip", "netns", "exec", t["lan_ns"], "/usr/bin/python3", "-c",
                        "import sys; from scapy.all import rdpcap, sendp; "
                        "sendp(rdpcap(sys.argv[1]), iface=sys.argv[2], verbose=0)",
                        inp, t["lan_t"]], check=True, timeout=60)
        return got
    for f in tg.exchange(t, tmp_path, "lan", frames, wait=wait):
        if f.haslayer(IP) and f[IP].proto == 50 and f[IP].src == tg.GW_WAN:
            esp = raw(f[IP].payload)
            spi, seq = struct.unpack("!II", esp[:8])
            plain = AESGCM(key[:16]).decrypt(key[16:] + esp[8:16], esp[16:], esp[:8])
            inner = IP(plain[:-2 - plain[-2]])
            assert spi == 0x100 and inner.dst == "10.2.0.5"
            got.append((seq, struct.unpack("!I", raw(inner[UDP].payload)[:4])[0]))
    return got


def _wait_log(log, text, timeout=5):
    deadline = time.time() + timeout
    while True:
        log.flush()
        log.seek(0)
        if text in log.read():
            return
        assert time.time() < deadline, "no %r in the log" % text
        time.sleep(0.1)


def test_link_down_up_and_tx_full(topo, tmp_path):
    """af_packet ports between netns. (4) The peer's veth goes down: the
    gateway logs it, keeps running, and after it is up again every packet
    arrives. (2) The gateway's own veth down: af_packet's tx returns short,
    counted XgTxFull, the mbufs go back to the pool, and after up every
    packet arrives again."""
    import test_gateway as tg
    t = topo
    p, log, env = tg.start_gateway(tmp_path, t)
    rc = None
    try:
        tg.install_tunnel(env)
        time.sleep(0.3)
        got = _lan_burst(t, tmp_path, 0, 20)
        assert [i for _, i in got] == list(range(20)), got
        seq = got[-1][0]
        tg.sh("ip netns exec %s ip link set %s down" % (t["wan_ns"], t["wan_t"]))
        _wait_log(log, "port 1: link down")
        _lan_burst(t, tmp_path, 100, 20, sniff=False)   # onto a wire without carrier
        assert p.poll() is None
        tg.sh("ip netns exec %s ip link set %s up" % (t["wan_ns"], t["wan_t"]))
        _wait_log(log, "port 1: link up")
        time.sleep(0.5)
        got = _lan_burst(t, tmp_path, 200, 50)
        # The veth's queue may hand over what waited for the carrier first.
        late = [i for _, i in got if i < 200]
        assert set(late) <= set(range(100, 120)), got
        assert [i for _, i in got if i >= 200] == list(range(200, 250)), got
        seqs = [q for q, _ in got]
        assert seqs == sorted(seqs) and seqs[0] > seq, got   # numbers go on
        # Own side down: tx_burst comes back short.
        before = tg.telemetry("/xfrmgw/stats")["XgTxFull"]
        tg.sh("ip link set %s down" % t["wan_g"])
        _lan_burst(t, tmp_path, 1000, 700, sniff=False)   # more than the tx ring holds
        time.sleep(0.5)
        full = tg.telemetry("/xfrmgw/stats")["XgTxFull"] - before
        pool = tg.telemetry("/xfrmgw/pool")
        tg.sh("ip link set %s up" % t["wan_g"])
        _wait_log(log, "port 1: link up, ")   # logged again after the down
        time.sleep(1.0)
        # The first packet after up kicks out what af_packet's tx ring held
        # (more than a sniffer's socket buffer takes at once): not watched.
        _lan_burst(t, tmp_path, 350, 40, sniff=False)
        time.sleep(1.0)
        got = _lan_burst(t, tmp_path, 400, 50)
        assert [i for _, i in got if i < 1000] == list(range(400, 450)), got
        deadline = time.time() + 5
        while tg.telemetry("/xfrmgw/pool")["avail"] != pool["size"]:
            assert time.time() < deadline, tg.telemetry("/xfrmgw/pool")
            time.sleep(0.1)
    finally:
        rc, text, counters = tg.stop_gateway(p, log)
    assert rc == 0, text
    # Every packet encrypted was handed to the port or counted as refused.
    # (the first packets after up may still find the ring full)
    assert 0 < full < 700 and full <= counters["XgTxFull"] <= full + 40, (full, counters)
    assert counters["XgTxPackets"] + counters["XgTxFull"] == counters["XgOutEncrypted"] == 20 + 20 + 50 + 700 + \
        40 + 50, counters
    assert pool["avail"] == pool["size"], pool
    assert text.count("port 1: link down") == 2 and text.count("port 1: link up") == 3, text
    record("4 link: 20 before, 50 after up", 70, 70, {})
    record("2 tx ring full (own link down)", 700, 700 - full, {"XgTxFull": counters["XgTxFull"]})
    record("2 after tx full", 50, 50, {})


# ---------------------------------------------------------------- 2. small pool
def test_burst_larger_than_pool(pcapgw):
    """The smallest pool --mbufs takes (1024) and a burst three times its
    size both ways, written as fast as the FIFOs take it: the workers free
    each burst as they send it, so nothing is lost, no rx_nombuf, and every
    mbuf is back afterwards. Then traffic at a normal pace on the same
    daemon: all through."""
    gw = pcapgw(mbufs=1024, pace=0)
    tunnel(gw)
    n, slow = 3000, 200

    def gen(i):
        if i == n:
            gw.stream.pace = 0.002
        return lan_frame("10.2.0.5", i), esp_encrypt(0x200, i + 1, back_inner("10.2.0.5", i))
    gw.run(gen, n + slow)
    gw.stream.wait_index(n + slow)
    stats = [gw.telemetry("/ethdev/stats,%d" % p) for p in (0, 1)]
    assert gw.pool_free()[1] == 1024
    lan, wan = gw.finish()
    assert gw.rc == 0, gw.text
    assert [s["rx_nombuf"] for s in stats] == [0, 0], stats
    check_out(outbound(wan), 0x100, "10.2.0.5", range(n + slow))
    assert inbound(lan, "10.2.0.5") == list(range(n + slow))
    assert re.search(r"port 0: rx %d tx %d rx_nombuf 0 " % (n + slow, n + slow), gw.text), gw.text
    record("2 burst 3x pool (1024)", 2 * (n + slow), 2 * (n + slow), {"rx_nombuf": 0})


def test_fragments_never_completed_cannot_drain_the_pool(pcapgw):
    """ESP fragments for the gateway wait 30 s for the rest of their packet.
    Sets that are never completed (the first two pieces of three, each set
    its own IP id) as fast as the FIFO takes them, on the smallest pool:
    the reassembly table holds at most its budget (logged at start), every
    other fragment is dropped and counted, and valid traffic in both
    directions meanwhile loses nothing, finding buffers to receive into."""
    gw = pcapgw(mbufs=1024, pace=0)
    tunnel(gw)
    nsets, n = 600, 300
    budget = int(re.search(r"each worker reassembles up to (\d+) packets", gw.log()).group(1))
    assert budget * 2 < 1024 // 4, budget

    def pieces(k):
        big = esp_encrypt(0x200, 1000000 + k, back_inner("10.2.0.9", k) / Raw(b"f" * 1200))
        ip = big[IP]
        ip.id = k + 1
        return [Ether(src=PEER_MAC, dst=GW_MAC[1]) / f for f in fragment(ip, fragsize=480)][:2]
    flood = [fr for k in range(nsets) for fr in pieces(k)]

    # Both FIFOs in lockstep (the gateway reads each in turn): plaintext
    # out all along, the flood in, then valid ESP in.
    def gen(i):
        if i < len(flood):
            return lan_frame("10.2.0.5", i), flood[i]
        j = i - len(flood)
        if j == 0:
            gw.stream.pace = 0.002
        return lan_frame("10.2.0.5", i), esp_encrypt(0x200, j + 1, back_inner("10.2.0.5", j))
    gw.run(gen, len(flood) + n)
    assert gw.stream.done.wait(120), "stream did not end"
    total = gw.stream.sent[0] + gw.stream.sent[1]
    deadline = time.time() + 30
    while gw.telemetry("/xfrmgw/stats")["XgRxPackets"] < total:
        assert time.time() < deadline, (total, gw.telemetry("/xfrmgw/stats"))
        time.sleep(0.05)
    time.sleep(0.3)
    stats = [gw.telemetry("/ethdev/stats,%d" % p) for p in (0, 1)]
    counters = gw.telemetry("/xfrmgw/stats")
    gw.stop()
    assert gw.rc == 0, gw.text
    conftest.assert_clean_exit(gw.text)   # held fragments freed at exit
    lan, wan = [rdpcap(p) for p in gw.tx]
    assert [s["rx_nombuf"] for s in stats] == [0, 0], stats
    check_out(outbound(wan), 0x100, "10.2.0.5", range(len(flood) + n))
    assert inbound(lan, "10.2.0.5") == list(range(n))
    assert counters["XgInEspFragment"] == len(flood), counters
    assert counters["XgFragDrop"] == 2 * (nsets - budget), (budget, counters)
    record("2 fragment flood (1024 mbufs)", len(flood) + 2 * n, len(flood) + 2 * n,
           {"XgFragDrop": counters["XgFragDrop"], "held": 2 * budget, "rx_nombuf": 0})


def test_rekey_at_ack_with_big_spd(pcapgw):
    """The peer uses a new inbound SA the moment its NEWSA is ACKed (the
    kernel installs it before the ACK), while 10000 policies make every
    snapshot build slow: not one packet of the new SA may be lost."""
    gw = pcapgw()
    tunnel(gw)
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "polbatch.py"), "10000", "50"],
                       env=gw.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 60
    while gw.telemetry("/xfrmgw/dp")["policies"] < 10002:
        assert time.time() < deadline
        time.sleep(0.05)
    peer = {"spi": 0x200, "seq": 0}
    n = 600

    def gen(i):
        peer["seq"] += 1
        return lan_frame("10.2.0.5", i), esp_encrypt(peer["spi"], peer["seq"],
                                                     back_inner("10.2.0.5", i))
    gw.run(gen, n)
    gw.stream.wait_index(n // 4)
    # A policy change first: the next build is a slow one (rte_acl).
    gw.ip("xfrm policy add src 172.18.0.0/16 dst 172.19.0.0/16 dir out")
    gw.ip("xfrm state add src %s dst %s proto esp spi 0x201 reqid 2 mode tunnel "
          "replay-window 64 aead 'rfc4106(gcm(aes))' %s 128" % (PEER, GW_WAN, hexkey(0x201)))
    peer["spi"], peer["seq"] = 0x201, 0
    lan, wan = gw.finish()
    assert gw.rc == 0, gw.text
    c = gw.counters
    back = inbound(lan, "10.2.0.5")
    record("1e new SA used at its ACK", n, len(back),
           {k: c.get(k, 0) for k in ("XfrmInNoStates",)})
    assert back == list(range(n)), (len(back), c)
    check_out(outbound(wan), 0x100, "10.2.0.5", range(n))
