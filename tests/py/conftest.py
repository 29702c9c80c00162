# SPDX-License-Identifier: BSD-3-Clause
"""Fixtures: a running xfrmgw daemon and commands run through the preload library."""
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("XFRMGW_BUILD", os.path.join(ROOT, "build"))
XFRMGW = os.path.join(BUILD, "app", "xfrmgw")
# LD_PRELOAD's value: the library, or (tests/san/run.sh) the ASan runtime,
# then the sanitized library.
PRELOAD = os.environ.get("XFRMGW_PRELOAD", os.path.join(BUILD, "lib", "libxfrmgw-preload.so"))
# What a sanitized daemon (tests/san/run.sh) prints when it finds a bug, and
# what any daemon prints when an mbuf, crypto session or operation is not
# back in its pool, or a memzone of its own is left, at exit (Debian's DPDK
# is not instrumented for ASan).
_FAULTS = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                     r"WARNING: AddressSanitizer|not returned to pool|not freed at exit")


def sanitizer_faults(text):
    """The lines of @p text (a daemon's output) that report a memory or UB
    error, a leak, or an object missing from a pool: [] when clean."""
    return [line for line in text.splitlines() if _FAULTS.search(line)]


def assert_clean_exit(text):
    faults = sanitizer_faults(text)
    assert not faults, "xfrmgw reported:\n" + "\n".join(faults) + "\n\n" + text[-20000:]


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
        """SIGTERM, then the exit status; the output stays in self.text."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                # A sanitized daemon runs LeakSanitizer at exit: seconds.
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.text = self.output()
        self.log.close()
        return self.proc.returncode

    def stop_clean(self):
        """Stop; fail unless it exited with 0 and reported no sanitizer
        error, leak or object missing from a pool."""
        rc = self.stop()
        assert_clean_exit(self.text)
        assert rc == 0, "xfrmgw exit status %d: %s" % (rc, self.text[-20000:])
        os.unlink(self.sock + ".log")


def rss_kib(pid):
    """Resident memory of process @p pid, KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.fixture
def daemon():
    d = Daemon(tempfile.mktemp(prefix="xg-", suffix=".sock", dir="/tmp"))
    yield d
    if d.log.closed:
        return   # the test stopped it (stop_clean checks what is checked here)
    assert d.alive(), "xfrmgw died: " + d.output()
    d.stop_clean()
    assert not os.path.exists(d.sock), "socket not removed on SIGTERM"


def pytest_configure(config):
    config.addinivalue_line("markers", "fault_injection: needs a build with "
                            "-Dfault_injection=true (fails against any other)")


def pytest_collection_modifyitems(config, items):
    missing = [p for p in [XFRMGW] + PRELOAD.split() if not os.path.exists(p)]
    if missing:
        raise pytest.UsageError("build first (scripts/build.sh): missing " + ", ".join(missing))
