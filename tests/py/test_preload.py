# SPDX-License-Identifier: BSD-3-Clause
"""libxfrmgw-preload.so: redirects NETLINK_XFRM sockets and nothing else."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import nl

HERE = os.path.dirname(os.path.abspath(__file__))

# Run under the preload library inside a fresh netns: an XFRM socket (goes to
# xfrmgw) and a NETLINK_ROUTE socket (must still reach the netns's kernel).
MIXED = textwrap.dedent("""
    import json, socket, struct, sys
    sys.path.insert(0, %r)
    import nl
    x = nl.XfrmSocket()
    x.request(nl.XFRM_MSG_NEWPOLICY,
              nl.policy_info(nl.selector("10.9.0.0", "10.9.1.0", 24, 24), 1))
    ack = nl.error_of(x.recv_msgs()[0][4])
    r = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)   # NETLINK_ROUTE
    r.bind((0, 0))
    r.send(struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + bytes(16))   # RTM_GETLINK dump
    names = []
    done = False
    while not done:
        for t, f, seq, pid, p in nl.parse(r.recv(65536)):
            if t == 3:
                done = True
            elif t == 16:
                off = 16
                while off + 4 <= len(p):
                    ln, at = struct.unpack_from("=HH", p, off)
                    if ln < 4:
                        break
                    if at == 3:
                        names.append(p[off + 4:off + ln].rstrip(b"\\0").decode())
                    off += (ln + 3) & ~3
    print(json.dumps({"ack": ack, "links": names, "xfrm_port": x.portid}))
""") % HERE


@pytest.fixture
def netns():
    name = "xg-test-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def kernel_tables(ns):
    pol = subprocess.run(["ip", "netns", "exec", ns, "ip", "xfrm", "policy", "list"],
                         capture_output=True, text=True, check=True).stdout
    st = subprocess.run(["ip", "netns", "exec", ns, "ip", "xfrm", "state", "list"],
                        capture_output=True, text=True, check=True).stdout
    return pol, st


def test_only_xfrm_is_redirected(daemon, netns):
    script = os.path.join(daemon.sock + ".py")
    with open(script, "w") as f:
        f.write(MIXED)
    p = subprocess.run(["ip", "netns", "exec", netns, sys.executable, script],
                       env=daemon.env(), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["ack"] == 0
    assert "lo" in res["links"], "NETLINK_ROUTE did not reach the kernel: %s" % res
    # ip itself, through the library, in the same netns.
    rc, out, err = daemon.sh("ip netns exec %s ip xfrm policy add src 10.8.0.0/24 "
                             "dst 10.8.1.0/24 dir out" % netns)
    assert rc == 0, err
    rc, out, err = daemon.sh("ip netns exec %s ip link show lo" % netns)
    assert rc == 0 and "lo:" in out
    # The kernel of that netns saw none of it ...
    assert kernel_tables(netns) == ("", "")
    # ... xfrmgw has both policies.
    rc, out, err = daemon.sh("ip xfrm policy list")
    assert "src 10.9.0.0/24 dst 10.9.1.0/24" in out and "src 10.8.0.0/24 dst 10.8.1.0/24" in out


def test_no_daemon_fails_cleanly(tmp_path):
    import conftest
    env = dict(os.environ, LD_PRELOAD=conftest.PRELOAD, XFRMGW_SOCKET=str(tmp_path / "none"))
    p = subprocess.run(["ip", "xfrm", "policy", "list"], env=env, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode != 0
    # The kernel's answer when NETLINK_XFRM does not exist.
    assert "Protocol not supported" in p.stderr
    p = subprocess.run(["ip", "link", "show", "lo"], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and "lo:" in p.stdout


SOCKET_API = textwrap.dedent("""
    import json, os, select, socket, struct, sys
    sys.path.insert(0, %r)
    import nl
    res = {}
    a = nl.XfrmSocket()
    b = nl.XfrmSocket()
    res["port_a_is_pid"] = a.portid == os.getpid()
    res["ports_distinct"] = a.portid != b.portid and b.portid != 0
    a.s.setsockopt(nl.SOL_NETLINK, nl.NETLINK_EXT_ACK, 1)
    a.request(nl.XFRM_MSG_NEWPOLICY, nl.policy_info(nl.selector(), 7))
    # Probe the size the way ip does, then read it.
    n = len(a.s.recv(0, socket.MSG_PEEK | socket.MSG_TRUNC))
    res["peek_trunc_len"] = a.s.recv(1, socket.MSG_PEEK | socket.MSG_TRUNC).__len__()
    data, src = a.s.recvfrom(65536)
    res["src"] = list(src)
    t, flags, seq, pid, payload = nl.parse(data)[0]
    res["err"] = nl.error_of(payload)
    res["ext"] = nl.ext_ack_msg(flags, payload, 168)
    res["pid_is_port"] = pid == a.portid
    # dup: the copy is the same socket.
    d = socket.socket(fileno=os.dup(a.s.fileno()))
    d.send(nl.msg(nl.XFRM_MSG_GETSPDINFO, b"\\0" * 4, nl.NLM_F_REQUEST, 9, a.portid))
    r, _, _ = select.select([a.s], [], [], 5)
    res["select_ready"] = bool(r)
    res["spdinfo_type"] = nl.parse(a.s.recv(4096))[0][0]
    # A child process keeps using the inherited socket.
    pid = os.fork()
    if pid == 0:
        a.request(nl.XFRM_MSG_GETSPDINFO, b"\\0" * 4, nl.NLM_F_REQUEST)
        os._exit(0 if nl.parse(a.s.recv(4096))[0][0] == nl.XFRM_MSG_NEWSPDINFO else 1)
    res["child_ok"] = os.waitpid(pid, 0)[1] == 0
    print(json.dumps(res))
""") % HERE


def test_socket_api(daemon):
    script = daemon.sock + ".api.py"
    with open(script, "w") as f:
        f.write(SOCKET_API)
    p = subprocess.run([sys.executable, script], env=daemon.env(), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["port_a_is_pid"] and res["ports_distinct"]
    assert res["src"] == [0, 0], "reply source must be the kernel: pid 0, groups 0"
    assert res["err"] == -22 and res["ext"] == "Invalid policy direction"
    assert res["pid_is_port"]
    assert res["peek_trunc_len"] > 16
    assert res["select_ready"] and res["spdinfo_type"] == nl.XFRM_MSG_NEWSPDINFO
    assert res["child_ok"]
