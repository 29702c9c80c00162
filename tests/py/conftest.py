# SPDX-License-Identifier: BSD-3-Clause
"""Fixtures: a running xfrmgw daemon and commands run through the preload library."""
import os
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("XFRMGW_BUILD", os.path.join(ROOT, "build"))
XFRMGW = os.path.join(BUILD, "app", "xfrmgw")
PRELOAD = os.environ.get("XFRMGW_PRELOAD", os.path.join(BUILD, "lib", "libxfrmgw-preload.so"))
EAL = ["-l", "0", "--no-huge", "-m", "128", "--no-pci", "--no-shconf",
       "--vdev", "net_null0", "--log-level", "*:warning"]


class Daemon:
    def __init__(self, sock):
        self.sock = sock
        self.log = open(sock + ".log", "w+")
        self.proc = subprocess.Popen([XFRMGW] + EAL + ["--", "--xfrm-socket", sock],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("xfrmgw did not start: " + self.output())
            time.sleep(0.02)

    def env(self):
        env = dict(os.environ)
        env["LD_PRELOAD"] = PRELOAD
        env["XFRMGW_SOCKET"] = self.sock
        env["LC_ALL"] = "C"
        return env

    def sh(self, cmd, timeout=30):
        """Run a shell command with the preload library pointing at this daemon."""
        p = subprocess.run(["sh", "-c", cmd], env=self.env(), capture_output=True,
                           text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def daemon():
    d = Daemon(tempfile.mktemp(prefix="xg-", suffix=".sock", dir="/tmp"))
    yield d
    assert d.alive(), "xfrmgw died: " + d.output()
    rc = d.stop()
    assert rc == 0, "xfrmgw exit status %d" % rc
    assert not os.path.exists(d.sock), "socket not removed on SIGTERM"


def pytest_collection_modifyitems(config, items):
    missing = [p for p in (XFRMGW, PRELOAD) if not os.path.exists(p)]
    if missing:
        raise pytest.UsageError("build first (scripts/build.sh): missing " + ", ".join(missing))
