# SPDX-License-Identifier: BSD-3-Clause
"""Keys never leak: not to the log (at debug level), not to telemetry, and
not in the daemon's memory once their SA is deleted, flushed or rekeyed.
GETSA to the authorised client does return them, as the kernel does."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

import conftest

GCM_KEY = bytes.fromhex("c3a9517e0d46b2f8e17a6c5590b4d23f")          # AES-128
GCM_SALT = bytes.fromhex("5ac0ffee")
CBC_KEY = bytes.fromhex("9e2b71d40c58a3f6e01d7b29c4a85f63")
HMAC_KEY = bytes.fromhex("d1f04b7ae3925c680fa17e3cb4d2968e51c7a03bf9e8264dd0b5c31a7e6f9428")
NEW_KEY = bytes.fromhex("7be1c4092fd35a6e8c10b47d93a2e55f")          # the UPDSA's


def keys():
    return {"gcm": GCM_KEY, "cbc": CBC_KEY, "hmac": HMAC_KEY[:16]}


def leaks(text_or_bytes, which=None):
    """Names of the keys found in @p text_or_bytes, raw or as hex."""
    data = text_or_bytes if isinstance(text_or_bytes, bytes) else text_or_bytes.encode()
    low = data.lower()
    found = []
    for name, k in (which or keys()).items():
        if k in data or k.hex().encode() in low:
            found.append(name)
    return found


class Gw:
    def __init__(self, tmp):
        self.prefix = "xgkey%d" % os.getpid()
        self.sock = str(tmp / "x.sock")
        eal = [a if a != "*:warning" else "*:debug" for a in conftest.EAL]
        self.proc = subprocess.Popen([conftest.XFRMGW] + eal + ["--file-prefix", self.prefix,
                                                                "--", "--xfrm-socket", self.sock],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None and time.time() < deadline
            time.sleep(0.02)
        self.env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=self.sock,
                        LC_ALL="C")

    def ip(self, cmd):
        r = subprocess.run("ip " + cmd, shell=True, env=self.env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stderr)
        return r.stdout

    def telemetry_all(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % self.prefix)
        s.recv(16384)
        s.send(b"/")
        cmds = [c for c in json.loads(s.recv(1 << 20).decode())["/"] if c.startswith("/xfrmgw/")]
        out = {}
        for c in cmds:
            s.send(c.encode())
            out[c] = s.recv(1 << 20).decode()
        s.close()
        return out

    def memory(self):
        """Every readable private mapping of the live daemon (threads'
        stacks are anonymous mappings; the main thread's is [stack])."""
        chunks = []
        with open("/proc/%d/maps" % self.proc.pid) as maps, \
                open("/proc/%d/mem" % self.proc.pid, "rb", 0) as mem:
            for line in maps:
                f = line.split()
                lo, hi = (int(x, 16) for x in f[0].split("-"))
                path = f[5] if len(f) > 5 else ""
                if "r" not in f[1] or path in ("[vvar]", "[vsyscall]") or \
                        (path.startswith("/") and "w" not in f[1]):
                    continue
                try:
                    mem.seek(lo)
                    chunks.append(mem.read(hi - lo))
                except OSError:
                    continue
        return b"".join(chunks)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, out.decode(errors="replace")


@pytest.fixture
def gw(tmp_path):
    g = Gw(tmp_path)
    try:
        yield g
    finally:
        g.stop()
        subprocess.run(["rm", "-rf", "/var/run/dpdk/" + g.prefix], check=False)


def add_sas(gw):
    gw.ip("xfrm state add src 192.0.2.1 dst 198.51.100.1 proto esp spi 0x501 mode tunnel "
          "aead 'rfc4106(gcm(aes))' 0x%s 128" % (GCM_KEY + GCM_SALT).hex())
    gw.ip("xfrm state add src 192.0.2.1 dst 198.51.100.1 proto esp spi 0x502 mode tunnel "
          "enc 'cbc(aes)' 0x%s auth-trunc 'hmac(sha256)' 0x%s 128"
          % (CBC_KEY.hex(), HMAC_KEY.hex()))
    gw.ip("xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out tmpl src 192.0.2.1 "
          "dst 198.51.100.1 proto esp mode tunnel")


def test_keys_only_to_the_authorised_client(gw):
    add_sas(gw)
    # GETSA and the dump do return them (kernel behaviour): the search works.
    assert sorted(leaks(gw.ip("xfrm state get src 192.0.2.1 dst 198.51.100.1 proto esp "
                              "spi 0x501"))) == ["gcm"]
    assert sorted(leaks(gw.ip("xfrm state list"))) == ["cbc", "gcm", "hmac"]
    tel = gw.telemetry_all()
    assert "/xfrmgw/stats" in tel and len(tel) >= 4, list(tel)
    for cmd, text in tel.items():
        assert not leaks(text), cmd
    gw.ip("xfrm state delete src 192.0.2.1 dst 198.51.100.1 proto esp spi 0x501")
    gw.ip("xfrm state flush")
    rc, out = gw.stop()
    assert rc == 0, out
    assert "xfrmgw" in out or "EAL" in out, out[:500]     # the debug log was captured
    assert not leaks(out), out


def rekey_delete_flush(gw):
    # Rekey the GCM SA in place: like the kernel's xfrm_state_update(), a
    # valid SA keeps its keys, and the request's new key must not linger.
    gw.ip("xfrm state update src 192.0.2.1 dst 198.51.100.1 proto esp spi 0x501 mode tunnel "
          "aead 'rfc4106(gcm(aes))' 0x%s 128" % (NEW_KEY + GCM_SALT).hex())
    time.sleep(0.5)
    assert leaks(gw.memory(), {"new": NEW_KEY}) == []
    assert leaks(gw.ip("xfrm state get src 192.0.2.1 dst 198.51.100.1 proto esp spi 0x501"),
                 {"gcm": GCM_KEY}) == ["gcm"]
    gw.ip("xfrm state delete src 192.0.2.1 dst 198.51.100.1 proto esp spi 0x501")
    gw.ip("xfrm state flush")
    gw.ip("xfrm policy flush")
    time.sleep(0.5)                  # RCU-deferred frees run on the next poll rounds


def test_no_key_left_in_memory(gw):
    # The scan sees live keys: the control and the check are the same code.
    # It covers the main thread's stack too: with lazy binding, the dynamic
    # linker's PLT trampoline saved the vector registers there, a key that
    # memcpy() had just moved included (fixed by linking with -z now).
    add_sas(gw)
    assert sorted(leaks(gw.memory())) == ["cbc", "gcm", "hmac"]
    rekey_delete_flush(gw)
    assert leaks(gw.memory(), dict(keys(), new=NEW_KEY)) == []
