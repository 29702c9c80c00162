# SPDX-License-Identifier: BSD-3-Clause
"""xfrmgw in the perf lab: the same topology, ports, SAs and captures as
ipsec-secgw gets (traffic.py), with the SAs and policies installed the way
a key manager does it, through the XFRM socket in batched netlink messages.

Port 0 is net_pcap (rx), port 1 net_null (tx); worker lcore 1 polls port 0
only (polling net_null's rx would feed it dummy frames). The rate is port
1's opackets over a fixed interval after warm-up, read through DPDK
telemetry as for ipsec-secgw; every xfrmgw drop counter must stay still
during the interval, so a misconfiguration cannot pass for a rate.
"""
import os
import signal
import subprocess
import threading
import time

import traffic
from telemetry import Telemetry, remove_stale, socket_path
from xfrm_msg import Client, XFRM_MSG_NEWPOLICY, XFRM_MSG_NEWSA, policy_payload, sa_payload

WORKER_LCORE = 1
PEER_MAC = "02:00:00:00:00:02"
HOST_MAC = "02:00:00:00:00:01"
# Counters that move with good traffic; any other counter moving during a
# measurement is a drop, and the run fails.
GOOD = {"XgRxPackets", "XgTxPackets", "XgOutEncrypted", "XgInDecrypted"}
# Set by the harness once it has hugepages mounted (as for ipsec-secgw).
HUGEPAGES = False


def config(direction):
    """The gateway's configuration for one direction (port addresses, the
    route and neighbour on the null side, the worker polling port 0)."""
    if direction == "out":
        p0, p1, nb = "%s/24" % "10.1.0.254", "%s/24" % traffic.TUN_LOCAL, traffic.TUN_REMOTE
    else:
        p0, p1, nb = "%s/24" % traffic.TUN_LOCAL, "10.1.0.254/24", traffic.PT_SRC
    return ("[port 0]\nipv4 = %s\n[port 1]\nipv4 = %s\n"
            "[neighbour peer]\naddress = %s\nmac = %s\nport = 1\n"
            "[worker %d]\nrx = 0:0\n" % (p0, p1, nb, PEER_MAC if direction == "out"
                                         else HOST_MAC, WORKER_LCORE))


class Gateway:
    """One xfrmgw process on the lab's ports."""

    def __init__(self, binary, workdir, direction, rx_pcap, prefix="xgp-xfrmgw", mbufs=16384,
                 extra_conf="", log_level="warning", tx_pcap=None):
        self.prefix, self.dir = prefix, workdir
        self.sock = os.path.join(workdir, "%s.sock" % prefix)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        conf = os.path.join(workdir, "%s.conf" % prefix)
        with open(conf, "w") as f:
            f.write(config(direction) + extra_conf)
        infinite = ",infinite_rx=1" if not rx_pcap.endswith(".fifo") else ""
        mem = [] if HUGEPAGES else ["--no-huge", "-m", "1024"]
        self.logf = open(os.path.join(workdir, "%s.log" % prefix), "w+")
        self.p = subprocess.Popen(
            [binary, "-l", "0,%d" % WORKER_LCORE] + mem +
            ["--no-pci", "--file-prefix", prefix,
             "--vdev", "net_pcap0,rx_pcap=%s%s" % (rx_pcap, infinite),
             "--vdev", "net_pcap1,tx_pcap=%s" % tx_pcap if tx_pcap else "net_null0",
             "--log-level", "*:%s" % log_level, "--log-level", "lib.*:warning", "--", "--xfrm-socket", self.sock, "--config", conf,
             "--mbufs", str(mbufs)],
            stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not os.path.exists(self.sock):
            if self.p.poll() is not None or time.time() > deadline:
                raise RuntimeError("xfrmgw did not start:\n" + self.log())
            time.sleep(0.05)
        self.tel = Telemetry(socket_path(prefix))

    def log(self):
        self.logf.flush()
        with open(self.logf.name, errors="replace") as f:
            return f.read()

    def install(self, direction, alg, nsa, window=0, batch=64):
        """SA k and its policy (out, or fwd for inbound) for every k, as
        NEWSA/NEWPOLICY with ACKs, `batch` messages a datagram; then wait
        until the published tables hold them all."""
        c = Client(self.sock)
        try:
            for mtype, msgs in ((XFRM_MSG_NEWSA, [sa_payload(k, direction, alg, window)
                                                  for k in range(nsa)]),
                                (XFRM_MSG_NEWPOLICY, [policy_payload(k, direction)
                                                      for k in range(nsa)])):
                errors = c.install(msgs, mtype, batch, 8)
                if errors:
                    raise RuntimeError("%d NACKs, first %d" % (len(errors), errors[0]))
        finally:
            c.close()
        self.wait_dp(nsa, nsa, 120 + nsa / 1000)

    def wait_dp(self, nsa, npol, timeout):
        """Until the published tables hold nsa SAs and npol policies."""
        deadline = time.time() + timeout
        while True:
            d = self.tel.cmd("/xfrmgw/dp")
            if d["sas"] == nsa and d["policies"] == npol and not d["pending"]:
                return d
            if time.time() > deadline:
                raise TimeoutError("tables not published: %s" % d)
            time.sleep(0.005)

    def rss(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def heap(self):
        """Bytes allocated from DPDK's heap (rte_malloc, mempools, tables)."""
        return int((self.tel.cmd("/eal/heap_info,0") or {}).get("Alloc_size", 0))

    def sample(self):
        return (time.monotonic(), self.tel.port_stats(traffic.PORT_PCAP)["ipackets"],
                self.tel.port_stats(traffic.PORT_NULL)["opackets"], self.tel.cmd("/xfrmgw/stats"))

    def stop(self):
        self.tel.close()
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        remove_stale(self.prefix)
        return self.log()


def drops(first, last):
    """{counter: increase} of every counter but the good-traffic ones."""
    return {k: last[k] - first.get(k, 0) for k in last
            if k not in GOOD and last[k] != first.get(k, 0)}


def rates(first, last):
    dt = last[0] - first[0]
    return dict(seconds=dt, pps_rx=(last[1] - first[1]) / dt, pps_tx=(last[2] - first[2]) / dt,
                rx_packets=last[1] - first[1], tx_packets=last[2] - first[2],
                drops=drops(first[3], last[3]))


class _Feeder(threading.Thread):
    """Writes a capture into the FIFO net_pcap reads, the pcap header at
    once (libpcap reads it on open) and the packets once released."""

    def __init__(self, fifo, capture):
        super().__init__(daemon=True)
        self.fifo, self.capture, self.go = fifo, capture, threading.Event()

    def run(self):
        with open(self.fifo, "wb") as out, open(self.capture, "rb") as src:
            out.write(src.read(24))
            out.flush()
            self.go.wait(600)
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                out.write(b)


def _one_pass(gw, feeder, total, idle=0.5):
    """Release the capture and time it from the first sample with packets
    received to the last one in which packets were still being sent."""
    feeder.go.set()
    first = moved = None
    while True:
        s = gw.sample()
        if first is None and s[1] > 0:
            first = s
        if moved is None or s[2] != moved[2]:
            moved = s
        if first and (s[2] >= total or s[0] - moved[0] > idle):
            break
        time.sleep(0.02)
    return rates(first, moved) | dict(total_tx=moved[2], total_rx=moved[1])


def run(binary, scratch, direction, alg, nsa, capture, seconds=5, warmup=2, window=0,
        one_pass=False, prefix="xgp-xfrmgw"):
    """Run xfrmgw on `capture` and measure as secgw.run() does. With
    one_pass the capture is read once (through a FIFO, so that it starts
    after the SAs are in) and the rate covers the whole pass."""
    rx = capture
    feeder = None
    if one_pass:
        rx = os.path.join(scratch, "%s.fifo" % prefix)
        if os.path.exists(rx):
            os.unlink(rx)
        os.mkfifo(rx)
        feeder = _Feeder(rx, capture)
        feeder.start()
    nbytes = (os.path.getsize(capture) - 24) if one_pass else 0
    gw = Gateway(binary, scratch, direction, rx, prefix,
                 mbufs=max(16384, traffic.count_pcap(capture) + 8192) if not one_pass
                 else 16384)
    try:
        gw.install(direction, alg, nsa, window)
        if one_pass:
            return _one_pass(gw, feeder, traffic.count_pcap(capture)) | dict(bytes=nbytes)
        time.sleep(warmup)
        first = gw.sample()
        time.sleep(seconds)
        return rates(first, gw.sample())
    finally:
        log = gw.stop()
        if feeder:
            feeder.go.set()
        if gw.p.returncode not in (0, None):
            raise RuntimeError("xfrmgw exited with %s:\n%s" % (gw.p.returncode, log[-3000:]))


def verify_output(binary, scratch, direction, alg, nsa=4, n=8):
    """Run with a net_pcap tx file instead of net_null and check what came
    out with scapy: outbound ESP decrypts to the frame we sent (TTL one
    less: xfrmgw forwards), inbound plaintext is the inner packet of the
    ESP we sent. @return the number of frames checked."""
    cap = traffic.capture(scratch, direction, 64, alg, nsa, npkts=min(4 * nsa, 256))
    out = os.path.join(scratch, "xfrmgw-verify-%s-%s.pcap" % (direction, alg))
    gw = Gateway(binary, scratch, direction, cap, prefix="xgp-xfrmgw-v", tx_pcap=out)
    try:
        gw.install(direction, alg, nsa)
        time.sleep(0.2)
    finally:
        gw.stop()
    frames = traffic.read_pcap(out, 4096)[-n:]
    assert len(frames) == n, "xfrmgw sent %d frames" % len(frames)
    for fr in frames:
        inner, want = traffic.forwarded(fr, direction, alg, nsa)
        assert inner[8] == want[8] - 1, "TTL %d, sent %d" % (inner[8], want[8])
        assert traffic.csum(inner[:20]) == 0, "bad header checksum " + inner[:20].hex()
        assert inner[:8] + inner[9:10] + inner[12:] == want[:8] + want[9:10] + want[12:], \
            (inner.hex(), want.hex())
    return n
