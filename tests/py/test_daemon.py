# SPDX-License-Identifier: BSD-3-Clause
"""The daemon's life cycle and its socket file."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import conftest
import nl

HERE = os.path.dirname(os.path.abspath(__file__))


def start(*opts):
    return subprocess.Popen([conftest.XFRMGW] + conftest.EAL + ["--"] + list(opts),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_socket(path, proc, timeout=20):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.02)


def stop(proc, sig=signal.SIGTERM, check=True):
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    if check:
        conftest.assert_clean_exit(out)
    return proc.returncode, out


def test_default_socket_modes():
    path = "/run/xfrmgw/xfrm.sock"
    if os.path.exists(path):
        pytest.fail("a daemon already uses the default socket %s" % path)
    made_dir = not os.path.exists("/run/xfrmgw")
    p = start()
    try:
        wait_socket(path, p)
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        if made_dir:
            assert stat.S_IMODE(os.lstat("/run/xfrmgw").st_mode) == 0o700
        # The preload library finds it without XFRMGW_SOCKET.
        env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD)
        env.pop("XFRMGW_SOCKET", None)
        r = subprocess.run(["ip", "xfrm", "policy", "count"], env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0 and "SPD IN  0 OUT 0 FWD 0" in r.stdout
    finally:
        rc, out = stop(p, signal.SIGINT, check=False)
        left = os.path.exists(path)
        # A daemon that died leaves its socket: never block later runs.
        if made_dir and os.path.isdir("/run/xfrmgw"):
            if left:
                os.unlink(path)
            os.rmdir("/run/xfrmgw")
    conftest.assert_clean_exit(out)
    assert rc == 0, out
    assert not left


def test_refuses_writable_parent(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    p = start("--xfrm-socket", str(d / "x.sock"))
    out, _ = p.communicate(timeout=30)
    assert p.returncode != 0
    assert "Operation not permitted" in out
    conftest.assert_clean_exit(out)
    assert not os.path.exists(d / "x.sock")


def test_live_socket_kept_stale_socket_replaced(tmp_path):
    path = str(tmp_path / "x.sock")
    # A stale socket file: bound, never listened to, closed.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.close()
    first = start("--xfrm-socket", path)
    try:
        time.sleep(0.5)
        assert first.poll() is None, first.stdout.read()
        second = start("--xfrm-socket", path)
        out, _ = second.communicate(timeout=30)
        assert second.returncode != 0 and "Address already in use" in out
        conftest.assert_clean_exit(out)
        env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=path)
        r = subprocess.run(["ip", "xfrm", "state", "count"], env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0 and "SAD count 0" in r.stdout
    finally:
        rc, out = stop(first)
    assert rc == 0, out
    assert not os.path.exists(path)


def test_bad_option_exits_2():
    p = start("--no-such-option")
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 2
    conftest.assert_clean_exit(out)


def test_requester_that_never_reads(daemon):
    # A client floods requests and reads nothing: the daemon stops reading
    # it once its answers are queued, and keeps serving everyone else.
    flood = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        import nl
        s = nl.XfrmSocket()
        s.s.setblocking(False)
        sent = 0
        try:
            for i in range(200000):
                s.send(nl.msg(nl.XFRM_MSG_GETSPDINFO, bytes(4), nl.NLM_F_REQUEST, i, s.portid))
                sent += 1
        except BlockingIOError:
            pass
        print(sent, flush=True)
        time.sleep(30)
    """) % HERE], env=daemon.env(), stdout=subprocess.PIPE, text=True)
    rss0 = conftest.rss_kib(daemon.proc.pid)
    try:
        sent = int(flood.stdout.readline())
        assert sent > 100
        t0 = time.time()
        for i in range(50):
            rc, out, err = daemon.sh("ip xfrm policy add src 10.0.%d.0/24 dst 10.1.0.0/16 "
                                     "dir out" % i)
            assert rc == 0, err
        assert time.time() - t0 < 30
        rc, out, err = daemon.sh("ip xfrm policy count")
        assert "OUT 50" in out
        # The flooder offered up to 200000 requests: had the daemon read and
        # queued answers for all of them, that would be well over 16 MiB.
        grown = conftest.rss_kib(daemon.proc.pid) - rss0
        assert grown < 8 * 1024, "RSS grew by %d KiB" % grown
    finally:
        flood.kill()
        flood.wait()


def test_config_file_checked_against_eal(tmp_path):
    example = os.path.join(conftest.ROOT, "conf", "xfrmgw.conf")
    eal = ["--lcores", "0,1,2@0", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
           "--vdev", "net_null0", "--vdev", "net_null1"]
    sock = str(tmp_path / "x.sock")
    # In a namespace of its own: the example's exception TAP gets addresses.
    ns = "xgd%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        p = subprocess.run(["ip", "netns", "exec", ns, conftest.XFRMGW] + eal +
                           ["--", "--xfrm-socket", sock, "--config", example,
                            "--run-seconds", "1"],
                           capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    conftest.assert_clean_exit(p.stdout + p.stderr)
    assert "config: 2 route(s), 1 neighbour(s), 2 worker(s)" in p.stdout + p.stderr
    assert "exception interface xg-wan is port 2" in p.stdout + p.stderr
    # The example names port 1 and workers 1 and 2: with one port it must refuse.
    p = subprocess.run([conftest.XFRMGW] + conftest.EAL + ["--", "--xfrm-socket", sock,
                                                           "--config", example],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "[port 1]: no such port" in p.stdout + p.stderr
    conftest.assert_clean_exit(p.stdout + p.stderr)
    bad = tmp_path / "bad.conf"
    bad.write_text("[route x]\nprefix = 10.0.0.0/8\n")
    p = subprocess.run([conftest.XFRMGW] + conftest.EAL + ["--", "--xfrm-socket", sock,
                                                           "--config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "[route x]: 'prefix' and 'port' are required" in p.stdout + \
        p.stderr
    conftest.assert_clean_exit(p.stdout + p.stderr)
    assert not os.path.exists(sock)


PROBE_GETSPDINFO = """
import json, sys
sys.path.insert(0, %r)
import nl
s = nl.XfrmSocket()
s.request(nl.XFRM_MSG_GETSPDINFO, b"\\0" * 4, nl.NLM_F_REQUEST)
m = s.recv_msgs()[0]
print(json.dumps([m[0], nl.error_of(m[4]) if m[0] == nl.NLMSG_ERROR else None]))
""" % HERE


def as_user(sock, script, *ids):
    """GETSPDINFO through the preload library under setpriv @p ids."""
    env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=sock)
    r = subprocess.run(["setpriv"] + list(ids) + [sys.executable, script], env=env,
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout.strip(), r.stderr


@pytest.fixture
def open_dir():
    """A root-owned 0755 directory others can traverse (pytest's tmp is 0700)."""
    d = "/tmp/xg-nl-%d" % os.getpid()
    os.mkdir(d, 0o755)
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", d], check=False)


def test_socket_group_admits_members_only(open_dir):
    gid = 40000 + os.getpid() % 20000          # a group nobody else has
    sock = os.path.join(open_dir, "run", "x.sock")
    script = os.path.join(open_dir, "probe.py")
    with open(script, "w") as f:
        f.write(PROBE_GETSPDINFO)
    os.chmod(script, 0o644)
    p = start("--xfrm-socket", sock, "--xfrm-socket-group", str(gid))
    try:
        wait_socket(sock, p)
        st, dst = os.lstat(sock), os.lstat(os.path.dirname(sock))
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (0, gid)
        assert stat.S_IMODE(dst.st_mode) == 0o710 and (dst.st_uid, dst.st_gid) == (0, gid)
        real = [nl.XFRM_MSG_NEWSPDINFO, None]
        # Primary group, then a supplementary one: real answers.
        rc, out, err = as_user(sock, script, "--reuid", "65534", "--regid", str(gid),
                               "--clear-groups")
        assert rc == 0 and json.loads(out) == real, err
        rc, out, err = as_user(sock, script, "--reuid", "65534", "--regid", "65534",
                               "--groups", "%d" % gid)
        assert rc == 0 and json.loads(out) == real, err
        # Not in the group: the file modes keep it out...
        rc, out, err = as_user(sock, script, "--reuid", "65534", "--regid", "65534",
                               "--clear-groups")
        assert rc != 0
        # ...and with the modes opened, the daemon itself answers EPERM.
        os.chmod(os.path.dirname(sock), 0o711)
        os.chmod(sock, 0o666)
        rc, out, err = as_user(sock, script, "--reuid", "65534", "--regid", "65534",
                               "--clear-groups")
        assert rc == 0 and json.loads(out) == [nl.NLMSG_ERROR, -1], err
        rc, out, err = as_user(sock, script, "--reuid", "65534", "--regid", "65534",
                               "--groups", "%d" % (gid + 1))
        assert rc == 0 and json.loads(out) == [nl.NLMSG_ERROR, -1], err
    finally:
        rc, out = stop(p)
    assert rc == 0, out


def test_bad_socket_group_exits_2():
    p = start("--xfrm-socket-group", "no-such-group-xg")
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 2 and "no group" in out
    conftest.assert_clean_exit(out)


def test_links_and_files_at_the_socket_path_are_left_alone(open_dir):
    target = os.path.join(open_dir, "target")
    os.mkdir(target, 0o700)
    # A link as the socket: refused, nothing made or chmod'ed at its target.
    link = os.path.join(open_dir, "x.sock")
    os.symlink(os.path.join(target, "made"), link)
    # A link as the parent directory: refused, the target keeps its mode.
    parent_link = os.path.join(open_dir, "run")
    os.symlink(target, parent_link)
    # A regular file as the socket: refused and kept.
    regular = os.path.join(open_dir, "file.sock")
    with open(regular, "w") as f:
        f.write("keep me")
    for path, errtext in ((link, "File exists"), (os.path.join(parent_link, "x.sock"),
                                                  "Operation not permitted"),
                          (regular, "File exists")):
        p = start("--xfrm-socket", path, "--xfrm-socket-group", "0")
        out, _ = p.communicate(timeout=30)
        assert p.returncode != 0 and errtext in out, (path, out)
        conftest.assert_clean_exit(out)
    assert os.listdir(target) == []
    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o700 and os.lstat(target).st_gid == 0
    assert os.readlink(link) == os.path.join(target, "made")
    assert os.readlink(parent_link) == target
    with open(regular) as f:
        assert f.read() == "keep me"
