# SPDX-License-Identifier: BSD-3-Clause
"""Byte-level differential tests: hand-made NETLINK_XFRM datagrams, good and
malformed, sent to Linux 6.1 (user-mode-linux) and to xfrmgw. Every answer
(type, flags, sequence, port id, errno, extended-ack text and the whole
payload, timestamps masked) must be identical.
"""
import json
import os
import struct
import subprocess
import sys

import pytest

import nl
import uml

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "rawprobe.py")

SEL = nl.selector("10.0.0.0", "10.0.1.0", 24, 24)
SEL6 = nl.selector("2001:db8::", "2001:db8:1::", 64, 64, family=10)
TMPL = struct.pack("=16sI B3x H2x 16s I BBBx III", nl.addr("10.0.0.2"), 0x01000000, 50, 2,
                   nl.addr("10.0.0.1"), 1, 1, 0, 0, 0xffffffff, 0xffffffff, 0xffffffff)
ACK = nl.NLM_F_REQUEST | nl.NLM_F_ACK


def m(mtype, payload, flags=ACK, seq=1):
    return nl.msg(mtype, payload, flags, seq)


def pol(direction=1, sel=SEL, **kw):
    return nl.policy_info(sel, direction, **kw)


def sa(spi, extra=b""):
    return nl.sa_info("10.0.0.1", "10.0.0.2", spi) + nl.aead_gcm() + extra


def sa_id(spi, proto=50):
    return nl.addr("10.0.0.2") + struct.pack("!I", spi) + struct.pack("=HB", 2, proto) + b"\0"


def ae_id(spi, flags=0, reqid=0):
    return sa_id(spi) + nl.addr("10.0.0.1") + struct.pack("=II", flags, reqid)


REPLAY = struct.pack("=III", 7, 0x30, 0xff)                  # oseq, seq, bitmap
LTIME = struct.pack("=QQQQ", 1000, 10, 1700000000, 1700000100)
ESN = struct.pack("=6I", 1, 5, 0, 9, 0, 32) + b"\x1f\0\0\0"


def mig(od, os_, nd, ns_, reqid=1):
    """xfrm_user_migrate: old and new tunnel endpoints of ESP tunnel SAs."""
    return struct.pack("=16s16s16s16sBBHIHH", nl.addr(od), nl.addr(os_), nl.addr(nd),
                       nl.addr(ns_), 50, 1, 0, reqid, 2, 2)


def sa_id_at(daddr, spi):
    return nl.addr(daddr) + struct.pack("!I", spi) + struct.pack("=HB", 2, 50) + b"\0"


def bad_len(data, ln):
    return struct.pack("=I", ln) + data[4:]


CASES = {
    "policy_add_get_dump": [
        m(nl.XFRM_MSG_NEWPOLICY, pol() + nl.attr(nl.XFRMA_TMPL, TMPL)),
        m(nl.XFRM_MSG_GETPOLICY, nl.policy_id(SEL, 1), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_GETPOLICY, b"", nl.NLM_F_REQUEST | nl.NLM_F_DUMP),
        m(nl.XFRM_MSG_GETSPDINFO, b"\x07\0\0\0", nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_DELPOLICY, nl.policy_id(SEL, 1)),
        m(nl.XFRM_MSG_DELPOLICY, nl.policy_id(SEL, 1)),
    ],
    "tutorial_bare_newpolicy": [
        # The XFRM tutorial's program: only xfrm_userpolicy_info, no ACK.
        nl.msg(nl.XFRM_MSG_NEWPOLICY, pol(0), nl.NLM_F_REQUEST | 0x200 | 0x400, 1),
        m(nl.XFRM_MSG_GETPOLICY, b"", nl.NLM_F_REQUEST | nl.NLM_F_DUMP),
    ],
    "sa_add_get_dump": [
        m(nl.XFRM_MSG_NEWSA, sa(0x100)),
        m(nl.XFRM_MSG_GETSA, sa_id(0x100), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_GETSA, b"", nl.NLM_F_REQUEST | nl.NLM_F_DUMP),
        m(nl.XFRM_MSG_GETSADINFO, b"\x05\0\0\0", nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_NEWSA, sa(0x100)),
        m(nl.XFRM_MSG_DELSA, sa_id(0x100)),
        m(nl.XFRM_MSG_GETSA, sa_id(0x100), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_GETSA, sa_id(0x100, proto=0), nl.NLM_F_REQUEST),
    ],
    # GETAE/NEWAE (charon's HA plugin): replay state, current lifetime,
    # thresholds; NEWAE needs an attribute and NLM_F_REPLACE.
    "aevents": [
        m(nl.XFRM_MSG_NEWSA, sa(0x900)),
        m(nl.XFRM_MSG_GETAE, ae_id(0x900, flags=1 | 8), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_GETAE, ae_id(0x901), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_NEWAE, ae_id(0x900), ACK | nl.NLM_F_REPLACE),
        m(nl.XFRM_MSG_NEWAE, ae_id(0x900) + nl.attr(nl.XFRMA_REPLAY_VAL, REPLAY)),
        m(nl.XFRM_MSG_NEWAE, ae_id(0x901) + nl.attr(nl.XFRMA_REPLAY_VAL, REPLAY),
          ACK | nl.NLM_F_REPLACE),
        m(nl.XFRM_MSG_NEWAE, ae_id(0x900) + nl.attr(nl.XFRMA_REPLAY_VAL, REPLAY) +
          nl.attr(nl.XFRMA_LTIME_VAL, LTIME) + nl.attr(nl.XFRMA_REPLAY_THRESH, b"\x09\0\0\0") +
          nl.attr(nl.XFRMA_ETIMER_THRESH, b"\x05\0\0\0"), ACK | nl.NLM_F_REPLACE),
        m(nl.XFRM_MSG_GETAE, ae_id(0x900, flags=1 | 8), nl.NLM_F_REQUEST, seq=9),
        m(nl.XFRM_MSG_GETSA, sa_id(0x900), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_NEWSA, nl.sa_info("10.0.0.1", "10.0.0.2", 0x902, flags=128) +
          nl.aead_gcm() + nl.attr(nl.XFRMA_REPLAY_ESN_VAL, ESN)),   # XFRM_STATE_ESN
        m(nl.XFRM_MSG_NEWAE, ae_id(0x902) + nl.attr(nl.XFRMA_REPLAY_ESN_VAL,
                                                     struct.pack("=6I", 2, 6, 0, 11, 1, 32) +
                                                     b"\x3f\0\0\0"), ACK | nl.NLM_F_REPLACE),
        m(nl.XFRM_MSG_NEWAE, ae_id(0x902) + nl.attr(nl.XFRMA_REPLAY_ESN_VAL,
                                                     struct.pack("=6I", 2, 1, 0, 0, 0, 32)),
          ACK | nl.NLM_F_REPLACE),                                 # bitmap longer than SA's
        m(nl.XFRM_MSG_GETAE, ae_id(0x902), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_FLUSHSA, b"\0"),
    ],
    # MIGRATE (MOBIKE): the SA is cloned to the new endpoints and the old one
    # removed, the policy's template rewritten; the errors of xfrm_migrate().
    "migrate": [
        m(nl.XFRM_MSG_NEWSA, nl.sa_info("10.0.0.1", "10.0.0.2", 0x300, reqid=1) + nl.aead_gcm()),
        m(nl.XFRM_MSG_NEWPOLICY, pol() + nl.attr(nl.XFRMA_TMPL, TMPL)),
        m(nl.XFRM_MSG_MIGRATE, nl.policy_id(SEL, 1)),                       # no MIGRATE attribute
        m(nl.XFRM_MSG_MIGRATE, nl.policy_id(SEL, 1) +
          nl.attr(nl.XFRMA_MIGRATE, mig("10.0.0.2", "10.0.0.1", "10.0.0.6", "10.0.0.5"))),
        m(nl.XFRM_MSG_GETSA, sa_id(0x300), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_GETSA, sa_id_at("10.0.0.6", 0x300), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_GETPOLICY, nl.policy_id(SEL, 1), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_MIGRATE, nl.policy_id(SEL, 2) +                       # no such policy
          nl.attr(nl.XFRMA_MIGRATE, mig("10.0.0.6", "10.0.0.5", "10.0.0.8", "10.0.0.7"))),
        m(nl.XFRM_MSG_MIGRATE, nl.policy_id(SEL, 1) +                       # new address 0
          nl.attr(nl.XFRMA_MIGRATE, mig("10.0.0.6", "10.0.0.5", "0.0.0.0", "10.0.0.7"))),
        m(nl.XFRM_MSG_MIGRATE, nl.policy_id(SEL, 1) +                       # no template matches
          nl.attr(nl.XFRMA_MIGRATE, mig("10.9.9.9", "10.9.9.8", "10.0.0.8", "10.0.0.7"))),
        m(nl.XFRM_MSG_MIGRATE, nl.policy_id(SEL, 1) +                       # the same one twice
          nl.attr(nl.XFRMA_MIGRATE, mig("10.0.0.6", "10.0.0.5", "10.0.0.8", "10.0.0.7") * 2)),
        m(nl.XFRM_MSG_MIGRATE, nl.policy_id(SEL, 1) + nl.attr(nl.XFRMA_MIGRATE, b"short")),
        m(nl.XFRM_MSG_GETSA, b"", nl.NLM_F_REQUEST | nl.NLM_F_DUMP),
        m(nl.XFRM_MSG_FLUSHSA, b"\0"),
        m(nl.XFRM_MSG_FLUSHPOLICY, b""),
    ],
    # EXPIRE and POLEXPIRE sent by a key manager: soft ones only announce,
    # hard ones delete.
    "expire_requests": [
        m(nl.XFRM_MSG_NEWSA, sa(0x400)),
        m(nl.XFRM_MSG_EXPIRE, nl.sa_info("10.0.0.1", "10.0.0.2", 0x400) + b"\0" * 8),
        m(nl.XFRM_MSG_GETSA, sa_id(0x400), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_EXPIRE, nl.sa_info("10.0.0.1", "10.0.0.2", 0x400) + b"\1" + b"\0" * 7),
        m(nl.XFRM_MSG_GETSA, sa_id(0x400), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_EXPIRE, nl.sa_info("10.0.0.1", "10.0.0.2", 0x400) + b"\1" + b"\0" * 7),
        m(nl.XFRM_MSG_NEWPOLICY, pol()),
        m(nl.XFRM_MSG_POLEXPIRE, pol() + b"\0" * 8),
        m(nl.XFRM_MSG_GETPOLICY, nl.policy_id(SEL, 1), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_POLEXPIRE, pol(5) + b"\1" + b"\0" * 7),             # bad direction
        m(nl.XFRM_MSG_POLEXPIRE, pol() + b"\1" + b"\0" * 7),
        m(nl.XFRM_MSG_GETPOLICY, nl.policy_id(SEL, 1), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_POLEXPIRE, pol() + b"\1" + b"\0" * 7),
    ],
    # ACQUIRE sent by a key manager: validated like a new policy, then
    # announced (to nobody here): the answer is the ack.
    "acquire_request": [
        m(0x17, nl.addr("10.0.0.2") + struct.pack("=IB3x", 0, 50) + nl.addr("10.0.0.1") + SEL +
          pol() + struct.pack("=IIII", 0xff, 0xff, 0xff, 0) + nl.attr(nl.XFRMA_TMPL, TMPL)),
        m(0x17, nl.addr("10.0.0.2") + struct.pack("=IB3x", 0, 50) + nl.addr("10.0.0.1") + SEL +
          pol(5) + struct.pack("=IIII", 0, 0, 0, 0)),                     # bad direction
        m(0x17, b"\0" * 100),                                              # too short
    ],
    "framing": [
        b"\x01\x02\x03",                                          # shorter than a header
        bad_len(m(nl.XFRM_MSG_GETSPDINFO, b"\0" * 4), 12),        # nlmsg_len < 16
        bad_len(m(nl.XFRM_MSG_GETSPDINFO, b"\0" * 4), 200),       # longer than datagram
        m(nl.XFRM_MSG_GETSPDINFO, b"\0" * 4, 0),                  # no NLM_F_REQUEST
        m(1, b"", ACK),                                           # NLMSG_NOOP with ACK
        m(0x0f, b"\0" * 8, ACK),                                  # below XFRM_MSG_BASE
        m(0x29, b"\0" * 8, ACK),                                  # above XFRM_MSG_MAX
        m(0x20, b"\0" * 64, ACK),                                 # REPORT: no doit
        m(nl.XFRM_MSG_GETSPDINFO, b"\0\0", nl.NLM_F_REQUEST),     # short fixed part
        # Three requests in one datagram, answered in order.
        m(nl.XFRM_MSG_NEWPOLICY, pol(0), ACK, 5) + m(nl.XFRM_MSG_NEWPOLICY, pol(0), ACK, 6) +
        m(nl.XFRM_MSG_FLUSHPOLICY, b"", ACK, 7),
        # A good message followed by one whose length lies: the second is dropped.
        m(nl.XFRM_MSG_GETSPDINFO, b"\0" * 4, nl.NLM_F_REQUEST, 8) +
        bad_len(m(nl.XFRM_MSG_GETSPDINFO, b"\0" * 4, nl.NLM_F_REQUEST, 9), 64),
    ],
    "attribute_rules": [
        m(nl.XFRM_MSG_NEWPOLICY, pol() + nl.attr(31, b"\1\0")),           # IF_ID short
        m(nl.XFRM_MSG_NEWPOLICY, pol() + nl.attr(nl.XFRMA_TMPL, TMPL[:40])),
        m(nl.XFRM_MSG_NEWPOLICY, pol() + nl.attr(99, b"junk")),           # unknown: ignored
        m(nl.XFRM_MSG_NEWPOLICY, pol(sel=SEL6) + nl.attr(31, b"\1\0\0\0") +
          nl.attr(31, b"\2\0\0\0")),                                       # last wins
        m(nl.XFRM_MSG_GETPOLICY, nl.policy_id(SEL6, 1) + nl.attr(31, b"\2\0\0\0"),
          nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_NEWPOLICY, pol() + struct.pack("=HH", 40, 31) + b"\0" * 4),  # nla_len lies
        m(nl.XFRM_MSG_NEWPOLICY, pol() + nl.attr(16, b"\x07" + b"\0" * 5)),  # bad ptype
        m(nl.XFRM_MSG_NEWSA, sa(0x200, nl.attr(nl.XFRMA_ALG_AEAD, b"x" * 20))),
        m(nl.XFRM_MSG_NEWSA, nl.sa_info("10.0.0.1", "10.0.0.2", 0x201) +
          nl.attr(nl.XFRMA_ALG_AEAD, b"rfc4106(gcm(aes))".ljust(64, b"\0") +
                  struct.pack("=II", 4000, 128) + bytes(20))),             # key longer than attr
        m(nl.XFRM_MSG_NEWSA, sa(0x202, nl.attr(23, struct.pack("=6I", 129, 0, 0, 0, 0, 32)))),
        m(nl.XFRM_MSG_NEWSA, sa(0x203, nl.attr(23, struct.pack("=6I", 1, 0, 0, 0, 0, 64) +
                                               b"\0" * 4))),               # window > bitmap
        m(nl.XFRM_MSG_NEWSA, sa(0x204, nl.attr(23, struct.pack("=6I", 4, 0, 0, 0, 0, 32)))),
        m(nl.XFRM_MSG_GETSA, b"", nl.NLM_F_REQUEST | nl.NLM_F_DUMP),
    ],
    "policy_checks": [
        m(nl.XFRM_MSG_NEWPOLICY, pol(3)),                                  # socket dir
        m(nl.XFRM_MSG_NEWPOLICY, pol(1, action=2)),
        m(nl.XFRM_MSG_NEWPOLICY, pol(1, sel=nl.selector("1.0.0.0", "2.0.0.0", 33, 0))),
        m(nl.XFRM_MSG_NEWPOLICY, pol(1, sel=nl.selector(family=99))),
        m(nl.XFRM_MSG_NEWPOLICY, pol(1, index=0x12)),
        m(nl.XFRM_MSG_NEWPOLICY, pol(2, index=0x12)),
        m(nl.XFRM_MSG_NEWPOLICY, pol(2, index=0x12)),
        m(nl.XFRM_MSG_GETPOLICY, nl.policy_id(SEL, 2, index=0x12), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_GETPOLICY, nl.policy_id(SEL, 1, index=0x12), nl.NLM_F_REQUEST),
        m(nl.XFRM_MSG_DELPOLICY, nl.policy_id(SEL, 5)),
        m(nl.XFRM_MSG_NEWPOLICY, pol(1) + nl.attr(nl.XFRMA_TMPL, TMPL * 7)),
        m(nl.XFRM_MSG_FLUSHPOLICY, b""),
        m(nl.XFRM_MSG_FLUSHPOLICY, b""),
        m(nl.XFRM_MSG_FLUSHSA, b"\0"),
    ],
}


def run_probe(cases, out, env=None, prefix=()):
    inp = out + ".in"
    with open(inp, "w") as f:
        json.dump([[d.hex() for d in c] for c in cases], f)
    subprocess.run(list(prefix) + [sys.executable, PROBE, inp, out], env=env, check=True,
                   timeout=120)
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import conftest
    tmp = tmp_path_factory.mktemp("raw")
    cases = list(CASES.values())
    # The kernel side: flush, then the same probe under UML.
    inp = str(tmp / "k.json")
    with open(inp + ".in", "w") as f:
        json.dump([[d.hex() for d in c] for c in cases], f)
    rc, out, err = uml.run(["ip xfrm state flush; ip xfrm policy flush; %s %s %s.in %s"
                            % ("/usr/bin/python3", PROBE, inp, inp)])[0]
    assert rc == 0, err
    with open(inp) as f:
        kernel = json.load(f)
    d = conftest.Daemon(str(tmp / "x.sock"))
    try:
        gw = run_probe(cases, str(tmp / "g.json"), env=d.env())
        assert d.alive(), d.output()
    finally:
        d.stop_clean()
    return dict(zip(CASES, zip(kernel, gw)))


def test_migrate_really_moved(results):
    # The reference did migrate: ack, old SA gone, new one there.
    kernel, _ = results["migrate"]
    assert kernel[3][0][4] == 0, kernel[3]                # MIGRATE acked
    assert kernel[4][0][4] == -3, kernel[4]               # old: ESRCH
    assert kernel[5][0][0] == nl.XFRM_MSG_NEWSA, kernel[5]   # new: the state
    assert [a[0][4] for a in kernel[7:11]] == [-2, -22, -61, -22], kernel[7:11]
    kernel, _ = results["expire_requests"]
    assert [a[0][4] for a in kernel[1:6]] == [0, None, 0, -3, -2], kernel[1:6]
    assert [a[0][4] for a in kernel[7:13]] == [0, None, -22, 0, -2, -2], kernel[7:13]
    kernel, _ = results["acquire_request"]
    assert [a[0][4] for a in kernel] == [0, -22, -22], kernel


@pytest.mark.parametrize("case", list(CASES))
def test_same_bytes_as_kernel(case, results):
    kernel, gw = results[case]
    assert any(kernel), "the kernel answered nothing at all: the reference did not run"
    assert len(kernel) == len(gw) == len(CASES[case])
    diffs = []
    for i, (k, g) in enumerate(zip(kernel, gw)):
        if k != g:
            diffs.append("datagram %d:\n kernel %s\n xfrmgw %s" % (i, k, g))
    assert not diffs, "\n".join(diffs)
