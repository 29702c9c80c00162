# SPDX-License-Identifier: BSD-3-Clause
"""The daemon stops cleanly with everything still in place: SAs of every
algorithm, larval states, policies, clients mid-dump, subscribed or never
reading; workers with published and retired snapshots and crypto sessions.

The checks run at exit: status 0, the socket removed, no mbuf or crypto
object missing from its pool. Under tests/san/run.sh the same runs also
put every allocation the teardown forgot in front of LeakSanitizer.
"""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import conftest
from test_gateway import telemetry

HERE = os.path.dirname(os.path.abspath(__file__))

K16, K20, K32, K36, K64 = ("0x" + "11" * n for n in (16, 20, 32, 36, 64))
ALGS = [
    "aead 'rfc4106(gcm(aes))' %s 128" % K20,
    "aead 'rfc7539esp(chacha20,poly1305)' %s 128" % K36,
    "enc 'cbc(aes)' %s auth-trunc 'hmac(sha1)' %s 96" % (K16, K20),
    "enc 'cbc(aes)' %s auth-trunc 'hmac(sha256)' %s 128" % (K32, K32),
    "enc 'cbc(aes)' %s auth-trunc 'hmac(sha512)' %s 256" % (K16, K64),
    "enc 'rfc3686(ctr(aes))' %s auth-trunc 'hmac(sha256)' %s 128" % (K20, K32),
    "enc 'ecb(cipher_null)' '' auth-trunc 'hmac(sha256)' %s 128" % K32,
]


def batch(n_extra_policies=0):
    """ip -batch lines: each algorithm out and in (ESN with a 128-bit window
    on the inbound ones, lifetimes, one NAT-T pair), their policies, a
    larval state, default actions."""
    lines = []
    for i, alg in enumerate(ALGS):
        net = "10.%d" % (10 + i)
        lines.append("xfrm state add src 192.0.2.1 dst 192.0.2.%d proto esp spi 0x%x reqid %d "
                     "mode tunnel %s limit time-hard 3600 limit packet-soft 100000"
                     % (10 + i, 0x1000 + i, 100 + i, alg))
        lines.append("xfrm state add src 192.0.2.%d dst 192.0.2.1 proto esp spi 0x%x reqid %d "
                     "mode tunnel flag esn replay-window 128 %s"
                     % (10 + i, 0x2000 + i, 200 + i, alg))
        lines.append("xfrm policy add src 10.1.0.0/16 dst %s.0.0/16 dir out tmpl src 192.0.2.1 "
                     "dst 192.0.2.%d proto esp reqid %d mode tunnel" % (net, 10 + i, 100 + i))
        lines.append("xfrm policy add src %s.0.0/16 dst 10.1.0.0/16 dir fwd tmpl src 192.0.2.%d "
                     "dst 192.0.2.1 proto esp reqid %d mode tunnel" % (net, 10 + i, 200 + i))
    lines.append("xfrm state add src 192.0.2.1 dst 192.0.2.99 proto esp spi 0x3000 reqid 300 "
                 "mode tunnel %s encap espinudp 4500 4500 0.0.0.0" % ALGS[0])
    lines.append("xfrm state add src 2001:db8::1 dst 2001:db8::2 proto esp spi 0x3001 "
                 "reqid 301 mode transport %s" % ALGS[2])
    for i in range(n_extra_policies):
        lines.append("xfrm policy add src 172.%d.%d.0/24 dst 172.31.0.0/16 dir out"
                     % (16 + i // 256, i % 256))
    lines.append("xfrm policy setdefault fwd accept")
    return "\n".join(lines) + "\n"


# A client that stays connected while the daemon stops: subscribed to every
# group, a policy dump of which it reads one datagram only (with 1000
# policies more than its socket holds: the dump is still under way), then
# requests whose answers it never reads.
HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, %r)
    import nl
    s = nl.XfrmSocket(groups=0xffffffff, rcvbuf=4096)
    s.request(nl.XFRM_MSG_GETPOLICY, b"", nl.NLM_F_REQUEST | nl.NLM_F_DUMP)
    first = s.recv_msgs()
    deaf = nl.XfrmSocket()
    deaf.s.setblocking(False)
    try:
        for i in range(2000):
            deaf.send(nl.msg(nl.XFRM_MSG_GETSPDINFO, bytes(4), nl.NLM_F_REQUEST, i, deaf.portid))
    except BlockingIOError:
        pass
    print(len(first), flush=True)
    time.sleep(60)
""") % HERE


def hold_clients(env):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE,
                              text=True)
    line = holder.stdout.readline()
    assert line.strip().isdigit() and int(line) > 0, "holder: %r" % line
    return holder


def load(run, path, n_extra_policies=0):
    with open(path, "w") as f:
        f.write(batch(n_extra_policies))
    rc, out, err = run("ip -batch %s" % path)
    assert rc == 0, err
    rc, out, err = run("ip xfrm state allocspi src 192.0.2.1 dst 192.0.2.98 proto esp "
                       "mode tunnel reqid 400 min 0x4000 max 0x4fff")
    assert rc == 0 and "spi 0x00004" in out, out + err
    rc, out, err = run("ip xfrm state count; ip xfrm policy count")
    assert rc == 0, err
    n_sa = 2 * len(ALGS) + 3
    assert "SAD count %d" % n_sa in out, out
    return out


def test_stop_with_state_and_clients(daemon):
    out = load(daemon.sh, daemon.sock + ".batch", n_extra_policies=1000)
    assert "OUT %d" % (len(ALGS) + 1000) in out, out
    holder = hold_clients(daemon.env())
    try:
        assert daemon.alive(), daemon.output()
        daemon.stop_clean()
    finally:
        holder.kill()
        holder.wait()
        os.unlink(daemon.sock + ".batch")
    assert not os.path.exists(daemon.sock)


@pytest.mark.parametrize("crypto", ["aesni_mb", "openssl"])
def test_stop_gateway_with_sas(tmp_path, crypto):
    # Two workers on net_null ports: they receive (and drop) a stream of
    # empty frames the whole time, so mbufs circulate until the very end.
    sock = str(tmp_path / "x.sock")
    log = open(tmp_path / "gw.log", "w+")
    gw = subprocess.Popen([conftest.XFRMGW, "-l", "0,1", "--no-huge", "-m", "512", "--no-pci",
                           "--no-shconf", "--file-prefix", "xgtd%d" % os.getpid(),
                           "--vdev", "net_null0", "--vdev", "net_null1",
                           "--log-level", "*:info", "--log-level", "lib.*:warning",
                           "--", "--xfrm-socket", sock],
                          stdout=log, stderr=subprocess.STDOUT,
                          env=dict(os.environ, XFRMGW_CRYPTO=crypto))
    env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=sock, LC_ALL="C")

    def run(cmd):
        p = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout, p.stderr

    holder = None
    try:
        deadline = time.time() + 30
        while not os.path.exists(sock):
            assert gw.poll() is None and time.time() < deadline, open(tmp_path / "gw.log").read()
            time.sleep(0.05)
        load(run, str(tmp_path / "batch"))
        # Replacements just before the stop: snapshots retired, not yet freed.
        for i in range(3):
            rc, out, err = run("ip xfrm state update src 192.0.2.1 dst 192.0.2.10 proto esp "
                               "spi 0x1000 reqid 100 mode tunnel %s" % ALGS[i])
            assert rc == 0, err
        holder = hold_clients(env)
        time.sleep(0.5)
        assert gw.poll() is None, open(tmp_path / "gw.log").read()
        dp = telemetry("/xfrmgw/dp", "/var/run/dpdk/xgtd%d/dpdk_telemetry.v2" % os.getpid())
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(timeout=30)
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait()
            if holder:
                holder.kill()
                holder.wait()
            subprocess.run(["rm", "-rf", "/var/run/dpdk/xgtd%d" % os.getpid()], check=False)
    log.seek(0)
    text = log.read()
    conftest.assert_clean_exit(text)
    assert gw.returncode == 0, text
    # The workers did receive: the pool check saw mbufs in use.
    rx = [int(w) for line in text.splitlines() if "packets received" in line
          for w in line.split() if w.isdigit()]
    assert rx and max(rx) > 1000, text
    assert "stopping: %d SAs" % (2 * len(ALGS) + 3) in text, text
    # Every SA but the larval one is in the data plane, or, with a device
    # that cannot run ChaCha20-Poly1305 or NULL encryption, every other one
    # (an SA the device refuses must not keep the rest out).
    assert "tables not rebuilt" not in text, text
    refused = set(re.findall(r"SA spi (0x[0-9a-f]+): not in the data plane", text))
    assert refused == ({"0x00001001", "0x00002001", "0x00001006", "0x00002006"}
                       if crypto == "openssl" else set()), text
    assert dp["sas"] == 2 * len(ALGS) + 2 - len(refused), (dp, text)
    assert not os.path.exists(sock)
