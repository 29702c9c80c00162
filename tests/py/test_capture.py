# SPDX-License-Identifier: BSD-3-Clause
"""Packet capture with DPDK's own tools on a gateway carrying ESP:
dpdk-dumpcap (pcapng, both ports at once, direction per packet) and
dpdk-pdump (pcap per direction). The capture points of docs/capture.md are
checked packet by packet: plaintext received on the LAN port (before
encryption), ESP sent on the WAN port (after encryption; decrypted here
with scapy), ESP received on the WAN port (before decryption), plaintext
sent on the LAN port (after decryption).

Secondary processes need hugepages and the shared configuration: the test
mounts hugetlbfs, reserves pages, and gives both back, even on failure."""
import os
import signal
import struct
import subprocess
import tempfile
import time

import pytest
from scapy.all import Ether, IP, ICMP, UDP, Raw, rdpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

from test_gateway import (GW_WAN, KEY_B, LANHOST, PEER, exchange, forwarded,  # noqa: F401
                          install_tunnel, mac, start_gateway, stop_gateway, topo)

PAGES = 256                     # 2 MiB pages: the daemon's 128 MiB and the tools'


@pytest.fixture
def hugepages():
    nr = "/proc/sys/vm/nr_hugepages"
    old = int(open(nr).read())
    mnt = tempfile.mkdtemp(prefix="xg-huge")
    mounted = False
    try:
        subprocess.run(["mount", "-t", "hugetlbfs", "nodev", mnt], check=True)
        mounted = True
        with open(nr, "w") as f:
            f.write(str(old + PAGES))
        got = int(open(nr).read())
        assert got >= old + PAGES, "only %d of %d hugepages" % (got - old, PAGES)
        yield mnt
    finally:
        for name in os.listdir(mnt):
            os.unlink(os.path.join(mnt, name))
        if mounted:
            subprocess.run(["umount", mnt], check=False)
        os.rmdir(mnt)
        with open(nr, "w") as f:
            f.write(str(old))


def read_pcapng(path):
    """[(interface name, 'in'|'out'|None, frame bytes)] from a pcapng file:
    interface descriptions (if_name) and enhanced packets with their
    epb_flags direction bits (pcapng spec), read here without scapy, which
    drops both."""
    data = open(path, "rb").read()
    names, out, off = [], [], 0
    endian = "<"
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(endian + "II", data, off)
        if btype == 0x0A0D0D0A:
            endian = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(endian + "II", data, off)
        body = data[off + 8:off + blen - 4]
        if btype == 1:                      # interface description
            opts, name = body[8:], None
            while len(opts) >= 4:
                code, olen = struct.unpack_from(endian + "HH", opts)
                if code == 0:
                    break
                if code == 2:
                    name = opts[4:4 + olen].decode()
                opts = opts[4 + (olen + 3) // 4 * 4:]
            names.append(name)
        elif btype == 6:                    # enhanced packet
            iface, _, _, caplen, _ = struct.unpack_from(endian + "IIIII", body)
            frame = body[20:20 + caplen]
            opts, direction = body[20 + (caplen + 3) // 4 * 4:], None
            while len(opts) >= 4:
                code, olen = struct.unpack_from(endian + "HH", opts)
                if code == 0:
                    break
                if code == 2:
                    flags = struct.unpack_from(endian + "I", opts, 4)[0]
                    direction = {1: "in", 2: "out"}.get(flags & 3)
                opts = opts[4 + (olen + 3) // 4 * 4:]
            out.append((names[iface], direction, frame))
        off += blen
    return out


def wait_line(proc, text, timeout=30):
    """Read @p proc's output (stdout and stderr together) until @p text."""
    import select
    deadline, seen = time.time() + timeout, ""
    fd = proc.stdout.fileno()
    while text not in seen:
        left = deadline - time.time()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError("no %r from %s: %s" % (text, proc.args[0], seen))
        chunk = os.read(fd, 4096).decode(errors="replace")
        if not chunk:
            raise AssertionError("%s ended: %s" % (proc.args[0], seen))
        seen += chunk


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def traffic(t, tmp_path, seq):
    """3 packets each way through the tunnel, the ESP ones numbered from
    @p seq; returns (plain frames out, ESP frames in, their inner packets)."""
    gw_lan_mac, gw_wan_mac = mac(None, t["lan_g"]), mac(None, t["wan_g"])
    lan_mac, wan_mac = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])
    out = [Ether(src=lan_mac, dst=gw_lan_mac) / IP(src=LANHOST, dst="10.2.0.5") /
           ICMP(id=7, seq=i) / Raw(b"c" * (20 + i)) for i in range(3)]
    assert len([f for f in exchange(t, tmp_path, "lan", out) if f.haslayer(ESP)]) == 3
    sa = SecurityAssociation(ESP, spi=0x200, crypt_algo="AES-GCM", crypt_key=KEY_B,
                             tunnel_header=IP(src=PEER, dst=GW_WAN))
    inner = [IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=5, dport=6) / Raw(b"d" * (30 + i))
             for i in range(3)]
    esp = [Ether(src=wan_mac, dst=gw_wan_mac) / sa.encrypt(x, seq_num=seq + i)
           for i, x in enumerate(inner)]
    got = [f for f in exchange(t, tmp_path, "wan", esp) if f.haslayer(UDP)]
    assert len(got) == 3
    return out, esp, inner


def dumpcap(prefix, port, path):
    """dpdk-dumpcap on one port (22.11's takes one -i), capturing."""
    dc = subprocess.Popen(["dpdk-dumpcap", prefix, "-q", "-i", str(port), "-w", path],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_line(dc, "File: ")
    except AssertionError:
        stop(dc)
        raise
    time.sleep(1.5)   # its "Capturing on" sits in a stdio buffer until exit
    return dc


def test_dumpcap_and_pdump_capture_points(topo, hugepages, tmp_path):
    t = topo
    mem = ("-m", "128", "--huge-dir", hugepages, "--no-pci")
    p, log, env = start_gateway(tmp_path, t, mem=mem)
    prefix = "--file-prefix=xgt%d" % os.getpid()
    tools, tmpfiles = [], []
    try:
        install_tunnel(env)
        # dumpcap names an interface as the kernel knows the port (af_packet: its iface).
        lan, wan = t["lan_g"], t["wan_g"]
        sa_out = SecurityAssociation(ESP, spi=0x100, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                     tunnel_header=IP(src=GW_WAN, dst=PEER))
        pk = {}
        for port, seq in ((0, 1), (1, 4)):
            cap = str(tmp_path / ("port%d.pcapng" % port))
            dc = dumpcap(prefix, port, cap)
            tools.append(dc)
            out, esp, inner = traffic(t, tmp_path, seq)
            time.sleep(0.5)
            stop(dc)
            pk[port] = read_pcapng(cap)
            assert {name for name, _, _ in pk[port]} == {(lan, wan)[port]}, pk[port][:3]

            def frames(direction, pred):
                return [f for _, d, f in pk[port] if d == direction and pred(Ether(f))]

            if port == 0:
                # Before encryption: the LAN port's receive side, byte for byte.
                assert frames("in", lambda e: e.haslayer(ICMP)) == [bytes(f) for f in out]
                # After decryption: the LAN port's transmit side.
                lan_out = [Ether(f)[IP] for f in frames("out", lambda e: e.haslayer(UDP))]
                assert [bytes(x) for x in lan_out] == [forwarded(x) for x in inner]
            else:
                # After encryption: the WAN port's transmit side, ESP of SA 0x100.
                wan_out = [Ether(f) for f in frames("out", lambda e: e.haslayer(ESP))]
                assert [e[ESP].seq for e in wan_out] == [4, 5, 6]
                for e, orig in zip(wan_out, out):
                    assert e[ESP].spi == 0x100
                    assert bytes(sa_out.decrypt(e[IP])) == forwarded(orig[IP])
                # Before decryption: the WAN port's receive side.
                assert frames("in", lambda e: e.haslayer(ESP)) == [bytes(f) for f in esp]

        # dpdk-pdump: one pcap per direction of the WAN port.
        # Short paths: dpdk-pdump truncates long ones in the devargs it builds.
        rx, tx = "/tmp/xgpd%d-rx.pcap" % os.getpid(), "/tmp/xgpd%d-tx.pcap" % os.getpid()
        tmpfiles.extend([rx, tx])
        pd = subprocess.Popen(["dpdk-pdump", prefix, "--", "--pdump",
                               "port=1,queue=*,rx-dev=%s,tx-dev=%s" % (rx, tx)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tools.append(pd)
        deadline = time.time() + 30
        while not (os.path.exists(rx) and os.path.exists(tx)):
            assert pd.poll() is None and time.time() < deadline, pd.stdout.read()
            time.sleep(0.1)
        time.sleep(1.0)
        out, esp, inner = traffic(t, tmp_path, 7)
        time.sleep(0.5)
        stop(pd)
        sent = [f for f in rdpcap(tx) if f.haslayer(ESP)]
        got = [f for f in rdpcap(rx) if f.haslayer(ESP)]
        assert [f[ESP].seq for f in sent] == [7, 8, 9], [f.summary() for f in sent]
        assert [bytes(f) for f in got] == [bytes(f) for f in esp]
    finally:
        for proc in tools:
            stop(proc)
        for f in tmpfiles:
            if os.path.exists(f):
                os.unlink(f)
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    # The capture cost nothing the counters see: every packet went through.
    assert counters.get("XgOutEncrypted") == 9 and counters.get("XgInDecrypted") == 9, text
