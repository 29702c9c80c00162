# SPDX-License-Identifier: BSD-3-Clause
"""Logging: one INFO line per SAD/SPD change (logtype xfrmgw.xfrm) with
the fields an operator needs and never a key; refused changes at INFO
with their errno; requests at DEBUG; levels changed at run time through
/xfrmgw/log; every module's logtype listed."""
import os
import re
import subprocess
import time

import conftest
from test_gateway import telemetry

KEY = "0x6b1f2e3d4c5b6a79887766554433221100aabbcc"
AUTH = "0x0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def start(tmp_path, level="*:info"):
    sock = str(tmp_path / "x.sock")
    log = open(tmp_path / "gw.log", "w+")
    p = subprocess.Popen([conftest.XFRMGW, "-l", "0,1", "--no-huge", "-m", "256", "--no-pci",
                          "--file-prefix", "xgt%d" % os.getpid(), "--vdev", "net_null0",
                          "--log-level", level, "--", "--xfrm-socket", sock],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while not os.path.exists(sock):
        assert p.poll() is None and time.time() < deadline, open(log.name).read()
        time.sleep(0.05)
    return p, log, dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=sock)


def ip(env, cmd, ok=True):
    r = subprocess.run("ip " + cmd, shell=True, env=env, capture_output=True, text=True)
    assert (r.returncode == 0) == ok, r.stderr
    return r


def output(log):
    log.flush()
    time.sleep(0.3)
    return open(log.name).read()


def stop(p, log):
    p.terminate()
    p.wait(timeout=30)
    subprocess.run(["rm", "-rf", "/var/run/dpdk/xgt%d" % os.getpid()], check=False)
    text = open(log.name).read()
    conftest.assert_clean_exit(text)
    return text


def test_one_line_per_change_no_keys(tmp_path):
    p, log, env = start(tmp_path)
    try:
        ip(env, "xfrm state add src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x4001 reqid 9 "
           "mode tunnel aead 'rfc4106(gcm(aes))' %s 128" % KEY)
        ip(env, "xfrm state add src 192.0.2.1 dst 198.51.100.8 proto esp spi 0x4002 "
           "mode transport enc 'cbc(aes)' 0x00112233445566778899aabbccddeeff "
           "auth-trunc 'hmac(sha256)' %s 128" % (AUTH + AUTH[2:]))
        ip(env, "xfrm state update src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x4001 "
           "reqid 9 mode tunnel aead 'rfc4106(gcm(aes))' %s 128" % KEY)
        ip(env, "xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out priority 7 "
           "tmpl src 192.0.2.1 dst 198.51.100.7 proto esp reqid 9 mode tunnel")
        ip(env, "xfrm policy add src 10.3.0.0/16 dst 10.4.0.0/16 dir fwd action block")
        ip(env, "xfrm state add src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x4001 "
           "mode tunnel aead 'rfc4106(gcm(aes))' %s 128" % KEY, ok=False)   # EEXIST
        ip(env, "xfrm state get src 192.0.2.1 dst 198.51.100.7 proto esp spi 0x4001")
        ip(env, "xfrm state delete src 192.0.2.1 dst 198.51.100.8 proto esp spi 0x4002")
        ip(env, "xfrm policy delete src 10.3.0.0/16 dst 10.4.0.0/16 dir fwd")
        ip(env, "xfrm policy flush")
        ip(env, "xfrm state flush")
        text = output(log)
        lines = [ln for ln in text.splitlines() if ln.startswith("xfrm: ")]
        want = [
            r"added SA spi 0x00004001 proto 50 192\.0\.2\.1 -> 198\.51\.100\.7 tunnel reqid 9 "
            r"alg rfc4106\(gcm\(aes\)\) \(pid \d+\)",
            r"added SA spi 0x00004002 proto 50 192\.0\.2\.1 -> 198\.51\.100\.8 transport reqid 0 "
            r"alg (cbc\(aes\)\+hmac\(sha256\)|hmac\(sha256\)\+cbc\(aes\)) \(pid \d+\)",
            r"updated SA spi 0x00004001 .* reqid 9 alg rfc4106\(gcm\(aes\)\)",
            r"added policy index \d+ dir out 10\.1\.0\.0/16 -> 10\.2\.0\.0/16 proto 0 "
            r"action allow priority 7 \(pid \d+\)",
            r"added policy index \d+ dir fwd 10\.3\.0\.0/16 -> 10\.4\.0\.0/16 proto 0 "
            r"action block",
            r"NEWSA from pid \d+ refused: File exists",
            r"deleted SA spi 0x00004002 proto 50 dst 198\.51\.100\.8",
            r"deleted policy index \d+ dir fwd 10\.3\.0\.0/16 -> 10\.4\.0\.0/16",
            r"flushed policies",
            r"flushed SAs proto 0",
        ]
        assert len(lines) == len(want), "\n".join(lines)
        for line, pat in zip(lines, want):
            assert re.fullmatch("xfrm: " + pat, line) or re.match("xfrm: " + pat, line), \
                (line, pat)
        # The pid is the client's (ip's), not the daemon's.
        assert "(pid %d)" % p.pid not in text
        # GETSA is a read: DEBUG only.
        assert "GETSA" not in text
        # No key, in hex or as text, at any level.
        for k in (KEY[2:], AUTH[2:], "00112233445566778899aabbccddeeff"):
            assert k not in text.lower() and k[:16] not in text.lower()

        # Run-time levels: DEBUG brings requests, WARNING silences changes.
        def levels(cmd="/xfrmgw/log"):
            got = telemetry(cmd)
            return None if got is None else dict(e.split(":") for e in got)
        lv = levels()
        for t in ("xfrmgw.main", "xfrmgw.xfrm", "xfrmgw.port", "xfrmgw.dp", "xfrmgw.worker",
                  "xfrmgw.crypto", "xfrmgw.exception", "xfrmgw.offload", "xfrmgw.telemetry"):
            assert lv.get(t) == "info", (t, lv)
        assert levels("/xfrmgw/log,xfrmgw.xfrm:debug") == {"xfrmgw.xfrm": "debug"}
        ip(env, "xfrm state list")
        ip(env, "xfrm policy add src 10.5.0.0/16 dst 10.6.0.0/16 dir in")
        # A key at DEBUG too: requests are logged by type and size only.
        ip(env, "xfrm state add src 192.0.2.1 dst 198.51.100.9 proto esp spi 0x4003 "
           "mode tunnel aead 'rfc4106(gcm(aes))' %s 128" % KEY)
        text = output(log)
        assert re.search(r"request NEWSA \(16\) from pid \d+, \d+ bytes", text), text
        assert KEY[2:].lower() not in text.lower() and KEY[2:18] not in text.lower()
        assert re.search(r"request GETSA \(\d+\) from pid \d+", text), text
        assert "dir in 10.5.0.0/16 -> 10.6.0.0/16" in text
        assert re.search(r"log level of xfrmgw\.xfrm set to debug", text)
        assert levels("/xfrmgw/log,xfrmgw.x*:warning") == {"xfrmgw.xfrm": "warning"}
        before = output(log)
        ip(env, "xfrm policy add src 10.7.0.0/16 dst 10.8.0.0/16 dir in")
        assert "10.7.0.0/16" not in output(log)[len(before):]
        assert levels()["xfrmgw.main"] == "info"
        # Bad input: an error (null), nothing changed.
        for bad in ("/xfrmgw/log,xfrmgw.xfrm:loud", "/xfrmgw/log,nocolon",
                    "/xfrmgw/log,lib.eal:debug", "/xfrmgw/log,:info", "/xfrmgw/log,xfrmgw.*:9"):
            assert telemetry(bad) is None, bad
        assert levels()["xfrmgw.xfrm"] == "warning"
    finally:
        text = stop(p, log)
    assert re.search(r"worker 0: lcore 1 polls port:queue 0:0", text), text
