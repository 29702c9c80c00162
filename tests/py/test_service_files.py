# SPDX-License-Identifier: BSD-3-Clause
"""What `meson install` ships for systemd: the units pass systemd-analyze
verify (with the paths of the installed tree), the unit's ExecStart line
with its environment starts the installed daemon, which reports READY=1
on $NOTIFY_SOCKET only once its XFRM socket serves, and the strongSwan
drop-in's environment makes an unmodified `ip xfrm` talk to it. The man
page renders without warnings and documents exactly the daemon's options."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time

import pytest

import conftest

PREFIX = "/usr/local"


@pytest.fixture(scope="module")
def dest(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("destdir"))
    subprocess.run(["meson", "install", "-C", conftest.BUILD, "--quiet", "--destdir", d],
                   check=True, capture_output=True, timeout=300)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def unit_text(dest, name):
    return open(os.path.join(dest + PREFIX, "lib/systemd/system", name)).read()


def test_installed_files(dest):
    root = dest + PREFIX
    for f in ("sbin/xfrmgw", "bin/xfrmgw-stat", "bin/xfrmgw-exporter",
              "lib/systemd/system/xfrmgw.service", "lib/systemd/system/xfrmgw@.service",
              "share/man/man8/xfrmgw.8",
              "share/doc/xfrmgw/examples/systemd/strongswan.service.d/xfrmgw.conf",
              "share/doc/xfrmgw/examples/systemd/xfrmgw.default",
              "share/doc/xfrmgw/examples/systemd/xfrmgw-hugepages.conf",
              "share/doc/xfrmgw/examples/site-to-site/swanctl.conf"):
        assert os.path.exists(os.path.join(root, f)), f
    assert glob_one(root, "lib/*/libxfrmgw-preload.so")
    for unit in ("xfrmgw.service", "xfrmgw@.service"):
        assert "@" not in unit_text(dest, unit).replace("xfrmgw@", "").replace("%i", ""), unit


def glob_one(root, pattern):
    import glob
    got = glob.glob(os.path.join(root, pattern))
    return got[0] if len(got) == 1 else None


@pytest.mark.parametrize("unit", ["xfrmgw.service", "xfrmgw@.service"])
def test_systemd_analyze_verify(dest, tmp_path, unit):
    # The installed unit, its absolute paths pointed into the install tree.
    text = unit_text(dest, unit).replace(PREFIX + "/", dest + PREFIX + "/")
    path = tmp_path / unit
    path.write_text(text)
    # --man=no: the page is in the install tree, not where man(1) looks
    # (test_installed_files checks it is there).
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                       capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                if unit.split(".")[0] in ln or "xfrmgw" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
    # A broken one is caught: the check can fail.
    bad = tmp_path / ("bad-" + unit)
    bad.write_text(text.replace("/sbin/xfrmgw", "/sbin/xfrmgw-missing"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "is not executable" in r.stdout + r.stderr


def expand(words, env):
    """systemd's ExecStart expansion: $VAR splits into words, ${VAR} does not."""
    out = []
    for w in words:
        m = re.fullmatch(r"\$(\w+)", w)
        if m:
            out.extend(env.get(m.group(1), "").split())
        else:
            out.append(re.sub(r"\$\{(\w+)\}", lambda x: env.get(x.group(1), ""), w))
    return out


def test_exec_start_and_strongswan_dropin(dest, tmp_path):
    text = unit_text(dest, "xfrmgw.service")
    assert re.search(r"^Type=notify$", text, re.M)
    env = dict(re.findall(r'^Environment="?(\w+)=(.*?)"?$', text, re.M))
    # /etc/default/xfrmgw for a machine without NICs; the gateway's file.
    env["XFRMGW_EAL"] = "-l 0,1 --no-huge -m 512 --no-pci --vdev net_null0 --vdev net_null1"
    conf = tmp_path / "xfrmgw.conf"
    shutil.copy(os.path.join(conftest.ROOT, "conf", "bench-lab", "xfrmgw.conf"), conf)
    argv = expand(shlex.split(re.search(r"^ExecStart=(.*)$", text, re.M).group(1)), env)
    argv = [a.replace(PREFIX + "/", dest + PREFIX + "/").replace("/etc/xfrmgw/xfrmgw.conf",
                                                                  str(conf)) for a in argv]
    assert argv[0] == dest + PREFIX + "/sbin/xfrmgw" and "--file-prefix" in argv
    prefix = argv[argv.index("--file-prefix") + 1]

    dropin = open(os.path.join(dest + PREFIX, "share/doc/xfrmgw/examples/systemd",
                               "strongswan.service.d/xfrmgw.conf")).read()
    assert re.search(r"^After=xfrmgw\.service$", dropin, re.M)
    client = dict(re.findall(r'^Environment="?(\w+)=(.*?)"?$', dropin, re.M))
    assert set(client) == {"LD_PRELOAD", "XFRMGW_SOCKET"}
    client["LD_PRELOAD"] = client["LD_PRELOAD"].replace(PREFIX + "/", dest + PREFIX + "/")
    assert os.path.exists(client["LD_PRELOAD"]), client
    sock = client["XFRMGW_SOCKET"]
    assert not os.path.exists(sock), "another xfrmgw serves %s" % sock

    notify_path = str(tmp_path / "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    ns.settimeout(30)
    log = open(tmp_path / "gw.log", "w+")
    p = subprocess.Popen(argv, env=dict(os.environ, NOTIFY_SOCKET=notify_path), stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        assert ns.recv(100) == b"READY=1"
        # Ready means serving: the drop-in's environment reaches it at once.
        ce = dict(os.environ, **client)
        r = subprocess.run("ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x31 "
                           "mode tunnel aead 'rfc4106(gcm(aes))' 0x%s 128" % ("ef" * 20),
                           shell=True, env=ce, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out = subprocess.run(["ip", "xfrm", "state"], env=ce, capture_output=True, text=True)
        assert "spi 0x00000031" in out.stdout
        # ... and the host's kernel has nothing.
        assert "0x00000031" not in subprocess.run(["ip", "xfrm", "state"], capture_output=True,
                                                   text=True).stdout
        p.send_signal(signal.SIGTERM)
        assert ns.recv(100) == b"STOPPING=1"
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        ns.close()
        subprocess.run(["rm", "-rf", "/var/run/dpdk/" + prefix], check=False)
    log.seek(0)
    conftest.assert_clean_exit(log.read())
    assert not os.path.exists(sock)


def test_man_page(dest):
    page = os.path.join(dest + PREFIX, "share/man/man8/xfrmgw.8")
    r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # Broken roff is reported: the check can fail.
    r = subprocess.run(["groff", "-man", "-ww", "-z"], input=".TH X 8\n.SH\n.BI\n.xx\n",
                       capture_output=True, text=True)
    assert r.stderr
    helptext = subprocess.run([conftest.XFRMGW, "--no-huge", "-m", "64", "--no-pci",
                               "--no-shconf", "-l", "0", "--", "--help"],
                              capture_output=True, text=True).stdout
    opts = set(re.findall(r"--[a-z][a-z-]+", helptext))
    roff = open(page).read()
    man_opts = set(re.findall(r"\\-\\-([a-z][a-z\\-]+)", roff))
    man_opts = {"--" + o.replace("\\-", "-") for o in man_opts}
    assert opts <= man_opts, opts - man_opts
    # Every daemon option the page documents (after "--") exists.
    daemon_part = roff[roff.index("Options after"):roff.index(".SH SIGNALS")]
    documented = {"--" + o.replace("\\-", "-")
                  for o in re.findall(r"^\.(?:BI|BR|TP)\s+\\-\\-([a-z\\-]+)", daemon_part, re.M)}
    assert documented and documented <= opts, documented - opts
