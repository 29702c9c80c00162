# SPDX-License-Identifier: BSD-3-Clause
"""Run shell commands inside Linux 6.1 under user-mode-linux.

The UML kernel (Debian's user-mode-linux package) boots with the host's
files as its root, loads the XFRM and ESP modules, runs each command with
its own stdout/stderr/exit status captured into a host directory, and powers
off. It is the reference for every XFRM answer: the host kernel here has no
ESP and cannot store states.
"""
import glob
import os
import shlex
import subprocess
import tempfile

MODULES = "xfrm_user xfrm_algo esp4 esp6 ah4 ah6 xfrm_ipcomp ipcomp ipcomp6 gcm ccm " \
          "seqiv echainiv authenc authencesn cbc ctr chacha20poly1305 sha1_generic " \
          "sha256_generic sha512_generic md5 cmac xcbc rmd160 des_generic " \
          "twofish_generic serpent_generic camellia_generic blowfish_generic cast5_generic " \
          "xfrm6_tunnel tunnel6 xfrm4_tunnel ipv6"


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Never the sanitized build's copy: linux.uml is not built with ASan.
XSTATE_SHIM = os.path.join(ROOT, "build", "tests", "uml_xstate.so")


def uml_env():
    """The environment for linux.uml: tests/tools/uml_xstate.c preloaded,
    without which UML 6.1 kills init on hosts with AMX."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if os.path.exists(XSTATE_SHIM):
        env["LD_PRELOAD"] = XSTATE_SHIM
    return env


def available():
    return os.path.exists("/usr/bin/linux.uml") and glob.glob("/usr/lib/uml/modules/*")


def run(commands, timeout=240, tap=None, netns=None):
    """Run each command (a shell string) in one UML boot.

    With @p tap, the UML kernel's vec0 is attached to that (existing) host
    TAP device, looked up in network namespace @p netns if given. Returns a
    list of (rc, stdout, stderr) in the same order.
    """
    work = tempfile.mkdtemp(prefix="xg-uml-", dir="/tmp")
    init = os.path.join(work, "init.sh")
    lines = [
        "#!/bin/sh",
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C",
        "mount -t proc proc /proc",
        "mount -t sysfs sys /sys",
        "mount -t tmpfs tmp /run",
        "V=$(uname -r)",
        "mount -t tmpfs tmp /lib/modules",
        "mkdir -p /lib/modules/$V",
        "mount --bind /usr/lib/uml/modules/$V /lib/modules/$V",
        "for m in %s; do modprobe $m 2>/dev/null; done" % MODULES,
        "ip link set lo up",
        "echo booted > %s/booted" % work,
    ]
    for i, cmd in enumerate(commands):
        out = os.path.join(work, "%d" % i)
        lines.append("sh -c %s > %s.out 2> %s.err; echo $? > %s.rc"
                     % (shlex.quote(cmd), out, out, out))
    lines.append("sync")
    lines.append("poweroff -f")
    with open(init, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(init, 0o755)
    console = os.path.join(work, "console")
    with open(console, "w") as con:
        subprocess.run((["ip", "netns", "exec", netns] if netns else []) +
                       ["linux.uml", "mem=256M", "rootfstype=hostfs", "rootflags=/", "rw",
                        "init=" + init, "con=null", "con0=fd:0,fd:1"] +
                       (["vec0:transport=tap,ifname=" + tap] if tap else []),
                       stdin=subprocess.DEVNULL, stdout=con, stderr=subprocess.STDOUT,
                       timeout=timeout, check=False, env=uml_env())
    if not os.path.exists(os.path.join(work, "booted")):
        raise RuntimeError("UML did not boot; console in " + console)
    results = []
    for i in range(len(commands)):
        base = os.path.join(work, "%d" % i)
        try:
            with open(base + ".rc") as f:
                rc = int(f.read().strip() or "-1")
            with open(base + ".out") as f:
                out = f.read()
            with open(base + ".err") as f:
                err = f.read()
        except FileNotFoundError:
            rc, out, err = -1, "", "<command did not run>"
        results.append((rc, out, err))
    subprocess.run(["rm", "-rf", work], check=False)
    return results
