# SPDX-License-Identifier: BSD-3-Clause
"""DPDK's own examples/ipsec-secgw (22.11) as the reference gateway.

It is built at run time from dpdk-doc's sources into a caller's scratch
directory (never in the repository) and run on the lab topology of
traffic.py: port 0 net_pcap rx, port 1 net_null tx, worker lcore 1.

Quirks of ipsec-secgw 22.11 on virtual ports, and how this module copes:
* It requires RX checksum offload (0xe) on every port, though its data path
  never reads the flags: secgw_shim.c (LD_PRELOAD) adds the bits to
  rte_eth_dev_info_get(); run() checks the log for "rx_offloads=0xe".
* It sets up one TX queue per enabled lcore (2 with -l 0,1) on every port,
  and lcore 1 transmits on queue 1.  net_pcap makes one TX queue per rx_pcap
  (a drop queue) or per tx_pcap, so each file argument is given twice; with
  tx_pcap the second one (queue 1) is the one written.
* Only port 0 is listed in --config: polling net_null's RX would inject its
  dummy packets, and secgw drops the packets of the second port of an lcore's
  list anyway ("Unsupported packet type").
* -u (unprotected ports) is refused without inbound SAs, so outbound runs
  mark no port unprotected; inbound runs mark port 0 (ESP arrives there).
* net_pcap's infinite_rx keeps a copy of the whole capture in mbufs of
  secgw's pool (8192 by default), so -s raises the pool for big captures.
* SA/SP counts: no compile-time cap applies to the lab.  The parser's SA
  arrays grow by realloc (SA_INIT_NB 128 is only the first size), SP rules
  go into a growing ACL, the SA/SP cross-checks use bsearch, the session
  pool is sized from the SA count; only routes are capped (RT_IPV4_MAX_RULES
  1024) and the lab needs one.  SPIs are parsed with atoi(), so only
  1..INT_MAX work (0x10000+k is fine).  1000 and 100000 SAs were run and
  verified (100000: ~10 s start-up, -m grows with the SA count below).
"""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import traffic  # noqa: E402
from telemetry import Telemetry, remove_stale, socket_path  # noqa: E402

SRC = "/usr/share/dpdk/examples/ipsec-secgw"
SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "secgw_shim.c")
WORKER_LCORE = 1
DEFAULT_MBUFS = 8192


def _pkgconf(*args):
    return subprocess.check_output(("pkg-config",) + args + ("libdpdk",),
                                   text=True).split()


def build(scratch):
    """Build ipsec-secgw and the offload shim in scratch; reuse if built."""
    src = os.path.join(scratch, "ipsec-secgw")
    binary = os.path.join(src, "build", "ipsec-secgw-shared")
    shim = os.path.join(scratch, "secgw_shim.so")
    if not os.path.exists(binary):
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(SRC, src)
        subprocess.run(["make", "-j%d" % os.cpu_count(), "-C", src],
                       check=True, stdout=subprocess.DEVNULL)
    if (not os.path.exists(shim) or
            os.path.getmtime(shim) < os.path.getmtime(SHIM)):
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim, SHIM,
                        "-ldl"] + _pkgconf("--cflags"), check=True)
    return dict(binary=binary, shim=shim)


# --- configuration --------------------------------------------------------
def _hexkey(key):
    return ":".join("%02x" % b for b in key)


def _sa_algo(alg):
    if alg == "gcm":
        return "aead_algo aes-128-gcm aead_key %s" % _hexkey(
            traffic.GCM_KEY + traffic.GCM_SALT)
    if alg == "cbc":
        return ("cipher_algo aes-128-cbc cipher_key %s "
                "auth_algo sha256-hmac auth_key %s"
                % (_hexkey(traffic.CBC_KEY), _hexkey(traffic.HMAC_KEY)))
    raise ValueError(alg)


def config_lines(direction, alg, nsa, cpu_crypto):
    """SP, SA and route rules of the lab topology (SPIs are decimal)."""
    algo = _sa_algo(alg)
    typ = " type cpu-crypto" if cpu_crypto else ""
    ports = "sport 0:65535 dport 0:65535"
    if direction == "out":
        tun = "src %s dst %s" % (traffic.TUN_LOCAL, traffic.TUN_REMOTE)
        yield "rt ipv4 dst %s/32 port %d" % (traffic.TUN_REMOTE,
                                            traffic.PORT_NULL)
    elif direction == "in":
        tun = "src %s dst %s" % (traffic.TUN_REMOTE, traffic.TUN_LOCAL)
        yield "rt ipv4 dst %s port %d" % (traffic.PT_NET, traffic.PORT_NULL)
    else:
        raise ValueError(direction)
    for k in range(nsa):
        spi = traffic.spi(k)
        if direction == "out":
            sel = "src %s dst %s/32" % (traffic.PT_NET, traffic.sa_dst(k))
        else:
            sel = "src %s/32 dst %s" % (traffic.sa_dst(k), traffic.PT_NET)
        yield "sp ipv4 %s esp protect %d pri 1 %s %s" % (direction, spi,
                                                         sel, ports)
        yield "sa %s %d %s mode ipv4-tunnel %s%s" % (direction, spi, algo,
                                                     tun, typ)


def write_config(path, direction, alg, nsa, cpu_crypto=False):
    with open(path, "w") as f:
        for line in config_lines(direction, alg, nsa, cpu_crypto):
            f.write(line + "\n")
    return path


def _direction_of(cfg_path):
    with open(cfg_path) as f:
        for line in f:
            if line.startswith("sa "):
                return line.split()[1]
    raise ValueError("%s: no SA" % cfg_path)


def _count_sa(cfg_path):
    with open(cfg_path) as f:
        return sum(1 for line in f if line.startswith("sa "))


# --- running --------------------------------------------------------------
# Set by the harness once it has hugepages mounted for both gateways.
HUGEPAGES = False


def command(build, cfg_path, rx_pcap, prefix, infinite=True, tx_pcap=None,
            mem_mb=None, window=0):
    """The ipsec-secgw command line (see the module docstring for why)."""
    rx = "rx_pcap=%s" % rx_pcap
    pcap0 = "net_pcap0,%s,%s" % (rx, rx)
    if infinite:
        pcap0 += ",infinite_rx=1"
    if tx_pcap:
        port1 = "net_pcap1,tx_pcap=%s.q0,tx_pcap=%s" % (tx_pcap, tx_pcap)
    else:
        port1 = "net_null0"
    nsa = _count_sa(cfg_path)
    mem_mb = mem_mb or (512 if nsa <= 1000 else 512 + nsa // 50)
    mbufs = DEFAULT_MBUFS
    if infinite:
        mbufs = max(mbufs, traffic.count_pcap(rx_pcap) + DEFAULT_MBUFS)
    app = ["-p", "0x3", "-l", "-w", str(window), "-s", str(mbufs), "-f", cfg_path,
           "--config", "(%d,0,%d)" % (traffic.PORT_PCAP, WORKER_LCORE)]
    if _direction_of(cfg_path) == "in":
        app[2:2] = ["-u", "0x%x" % (1 << traffic.PORT_PCAP)]
    # With hugepages EAL takes memory as it needs it (no -m), as xfrmgw does.
    mem = [] if HUGEPAGES else ["--no-huge", "-m", str(mem_mb)]
    return [build["binary"], "-l", "0,%d" % WORKER_LCORE] + mem + [
            "--no-pci", "--file-prefix", prefix,
            "--vdev", pcap0, "--vdev", port1,
            "--vdev", "crypto_aesni_mb0", "--"] + app


def _stop(proc, timeout=15):
    """SIGINT (secgw closes its ports and exits), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _log_tail(log_path, n=30):
    with open(log_path, errors="replace") as f:
        return "".join(f.readlines()[-n:])


def _wait_running(proc, tel, log_path, timeout):
    """Wait until the worker receives packets (telemetry answers early, but
    the port counters move only once the main loop runs)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("ipsec-secgw exited (%s):\n%s"
                               % (proc.returncode, _log_tail(log_path)))
        st = tel.port_stats(traffic.PORT_PCAP)
        if st and st.get("ipackets", 0) > 0:
            return
        time.sleep(0.1)
    raise RuntimeError("ipsec-secgw did not start:\n" + _log_tail(log_path))


def _check_log(log_path):
    with open(log_path, errors="replace") as f:
        log = f.read()
    if "rx_offloads=0xe" not in log:
        raise RuntimeError("offload shim not effective:\n" + log[-2000:])
    return log


def run(build, cfg_path, rx_pcap, seconds=5, warmup=2, prefix="xgp-secgw",
        infinite=True, tx_pcap=None, start_timeout=None, window=0):
    """Run ipsec-secgw and measure port counters over `seconds` after
    `warmup`: pps_tx is port 1's opackets rate, pps_rx port 0's ipackets.
    With infinite=False the capture is read once and the rates cover the
    whole pass (seconds and warmup are ignored); window is -w, the replay
    window (0: no replay check)."""
    log_path = cfg_path + ".%s.log" % prefix
    cmd = command(build, cfg_path, rx_pcap, prefix, infinite, tx_pcap,
                  window=window)
    env = dict(os.environ, LD_PRELOAD=build["shim"])
    start_timeout = start_timeout or 60 + _count_sa(cfg_path) // 100
    tel = None
    remove_stale(prefix, ("dpdk_telemetry.v2",))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + start_timeout
        while not os.path.exists(socket_path(prefix)):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("ipsec-secgw did not start (%s):\n%s"
                                   % (proc.returncode, _log_tail(log_path)))
            time.sleep(0.1)
        tel = Telemetry(socket_path(prefix), timeout=start_timeout)
        _wait_running(proc, tel, log_path, start_timeout)
        if not infinite:
            return _measure_one_pass(tel) | dict(log=log_path)
        time.sleep(warmup)
        return _measure(tel, seconds) | dict(log=log_path)
    finally:
        if tel:
            tel.close()
        _stop(proc)
        _check_log(log_path)
        remove_stale(prefix)


def _sample(tel):
    return (time.monotonic(), tel.port_stats(traffic.PORT_PCAP),
            tel.port_stats(traffic.PORT_NULL))


def _rates(first, last, **extra):
    (t0, rx0, tx0), (t1, rx1, tx1) = first, last
    dt = t1 - t0
    rxp = rx1["ipackets"] - rx0["ipackets"]
    txp = tx1["opackets"] - tx0["opackets"]
    return dict(pps_tx=txp / dt, pps_rx=rxp / dt, tx_packets=txp,
                rx_packets=rxp, seconds=dt, **extra)


def _measure_one_pass(tel, poll=0.02, idle=0.5):
    """Rates over a single pass of the capture: from the first sample with
    traffic to the last sample at which port 1's opackets still grew (the
    first samples' packets, already counted, are left out of both)."""
    first = last = _sample(tel)
    still = time.monotonic()
    while time.monotonic() - still < idle:
        time.sleep(poll)
        cur = _sample(tel)
        if cur[2]["opackets"] != last[2]["opackets"]:
            last, still = cur, time.monotonic()
    return _rates(first, last, total_rx=last[1]["ipackets"],
                  total_tx=last[2]["opackets"])


def _measure(tel, seconds):
    first = _sample(tel)
    time.sleep(seconds)
    last = _sample(tel)
    return _rates(first, last, rx_missed=last[1].get("imissed", 0),
                  tx_errors=last[2].get("oerrors", 0))


# --- self-test ------------------------------------------------------------
def verify_output(bld, scratch, direction, alg, nsa=4, cpu_crypto=False,
                  n=8):
    """Run with a net_pcap tx file and check secgw's output with scapy:
    outbound ESP decrypts to the plaintext we sent; inbound plaintext equals
    the inner packet of the ESP we sent."""
    cfg = write_config(os.path.join(scratch, "verify-%s-%s.cfg"
                                    % (direction, alg)),
                       direction, alg, nsa, cpu_crypto)
    pcap = traffic.capture(scratch, direction, 64, alg, nsa,
                           npkts=min(4 * nsa, traffic.MAX_CAPTURE))
    out = os.path.join(scratch, "verify-%s-%s-out.pcap" % (direction, alg))
    r = run(bld, cfg, pcap, seconds=0.5, warmup=0.5, prefix="xgp-secgw-v",
            tx_pcap=out)
    # the two ports are sampled one after the other: allow a few bursts
    if abs(r["rx_packets"] - r["tx_packets"]) > max(1024,
                                                    r["rx_packets"] // 100):
        raise AssertionError("secgw dropped packets: %s" % r)
    frames = traffic.read_pcap(out, n)
    assert len(frames) == n, "secgw sent %d frames" % len(frames)
    for fr in frames:
        _verify_frame(fr, direction, alg, nsa)
    return r


def _verify_frame(fr, direction, alg, nsa):
    got, want = traffic.forwarded(fr, direction, alg, nsa)
    # secgw decrements the inner TTL (a router), so compare without it
    assert _strip_ttl(got) == _strip_ttl(want), (got.hex(), want.hex())


def _strip_ttl(ip):
    """An IPv4 packet with TTL and header checksum zeroed."""
    return ip[:8] + b"\0" + ip[9:10] + b"\0\0" + ip[12:]


if __name__ == "__main__":
    scratch = sys.argv[1] if len(sys.argv) > 1 else "/tmp/xgp"
    os.makedirs(scratch, exist_ok=True)
    bld = build(scratch)
    print(bld)
    for direction in ("out", "in"):
        for alg in traffic.ALGS:
            verify_output(bld, scratch, direction, alg)
            print("verified", direction, alg)
    for direction in ("out", "in"):
        cfg = write_config(os.path.join(scratch, "st-%s.cfg" % direction),
                           direction, "gcm", 1)
        pcap = traffic.capture(scratch, direction, 64, "gcm", 1)
        r = run(bld, cfg, pcap, seconds=3, warmup=1)
        print("%s gcm 64B 1 SA: %.3f Mpps tx, %.3f Mpps rx"
              % (direction, r["pps_tx"] / 1e6, r["pps_rx"] / 1e6))
    # one pass of 1M inbound packets, 1000 SAs, with a replay window of 64
    cfg = write_config(os.path.join(scratch, "st-replay.cfg"), "in", "gcm",
                       1000)
    pcap = traffic.replay_capture(scratch, 1000)
    for window in (0, 64):
        r = run(bld, cfg, pcap, infinite=False, window=window)
        print("replay -w %d: %.3f Mpps over %.2fs, %d of %d sent"
              % (window, r["pps_tx"] / 1e6, r["seconds"], r["total_tx"],
                 r["total_rx"]))
