# SPDX-License-Identifier: BSD-3-Clause
"""Differential tests: `ip xfrm` against Linux 6.1 (user-mode-linux) and xfrmgw.

Every scenario runs in the same order against both, after flushing both tables.
Outputs, error messages and exit codes must match after normalising
timestamps only. One UML boot serves the whole module.
"""
import os
import re

import pytest

import conftest
import uml

K16 = "0x00112233445566778899aabbccddeeff"
K20 = K16 + "a0a1a2a3"
K32 = K16 + "0123456789abcdef0123456789abcdef"
K36 = K32 + "c0c1c2c3"
K64 = K32 + K32[2:]
GCM = "aead 'rfc4106(gcm(aes))'"
V4 = "src 10.0.0.1 dst 10.0.0.2"
V6 = "src 2001:db8::1 dst 2001:db8::2"
ST = "ip xfrm state"
POL = "ip xfrm policy"
TMPL = "tmpl src 10.0.0.1 dst 10.0.0.2 proto esp reqid 1 mode tunnel"

SHOW = [ST + " list", "ip -s xfrm state list", "ip -d xfrm state list", ST + " count"]
PSHOW = [POL + " list", "ip -s xfrm policy list", "ip -d xfrm policy list", POL + " count"]


def sa(spi, rest, addrs=V4, op="add"):
    return "%s %s %s proto esp spi %s %s" % (ST, op, addrs, spi, rest)


ALLOC = ST + " allocspi src 10.0.0.1 dst 10.0.0.2 proto esp mode tunnel reqid 7"
ACQ = "/proc/sys/net/core/xfrm_acq_expires"


def monitored(cmds, seconds):
    """Run @p cmds while `ip xfrm monitor` listens; print what it saw."""
    return ("ip xfrm monitor > /tmp/xg-mon.$$ & M=$!; sleep 0.5; %s; sleep %s; kill $M; "
            "cat /tmp/xg-mon.$$; rm -f /tmp/xg-mon.$$" % (cmds, seconds))


TUTORIAL = os.path.join(conftest.BUILD, "tests", "xfrm_tutorial")

SCENARIOS = {
    # ALLOCSPI: larval states, SPI exhaustion, UPDSA filling one in, NEWSA
    # on a taken SPI, range checks.
    "allocspi_larval": [
        "echo 30 > %s" % ACQ,
        ALLOC + " min 0x5000 max 0x5000",
        ST + " list", "ip -s xfrm state list", ST + " count",
        ALLOC + " min 0x5000 max 0x5000",   # taken: ENOENT, a larval state without SPI stays
        ST + " list", ST + " count",
        ALLOC + " min 0x5001 max 0x5001",   # gives that larval state an SPI
        ST + " list",
        ALLOC + " min 0x6000 max 0x5000",
        ST + " allocspi src 10.0.0.1 dst 10.0.0.2 proto comp min 1 max 0x10000",
        sa("0x5000", "reqid 7 mode tunnel %s %s 128" % (GCM, K20), op="update"),
        sa("0x5001", "reqid 7 mode tunnel %s %s 128" % (GCM, K20)),
        ST + " list", ST + " count",
        ST + " allocspi src 10.0.0.1 dst 10.0.0.3 proto esp mode transport min 0x7000 "
        "max 0x7fff > /dev/null; " + ST + " count; " + ST + " deleteall src 10.0.0.1 "
        "dst 10.0.0.3",
        ST + " allocspi %s proto esp mode tunnel reqid 9 min 0x8000 max 0x8000" % V6,
        sa("0x8888", "reqid 9 mode tunnel %s %s 128" % (GCM, K20), V6),
        ST + " list " + V6,
        ST + " get src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x5001",
        ST + " delete src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x5001",
        ST + " get src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x5001",
        ST + " list", ST + " count",
    ],
    # XFRMA_OFFLOAD_DEV: a device without IPsec offload means software, as
    # here; what can never be offloaded is refused.
    "offload_dev": [
        sa("0xa000", "mode tunnel %s %s 128 offload dev lo dir out" % (GCM, K20)),
        sa("0xa001", "mode tunnel %s %s 128 offload dev lo dir in" % (GCM, K20)),
        sa("0xa002", "mode tunnel %s %s 128 encap espinudp 4500 4500 0.0.0.0 offload dev lo "
           "dir out" % (GCM, K20)),
        sa("0xa003", "mode tunnel %s %s 128 tfcpad 100 offload dev lo dir out" % (GCM, K20)),
        ST + " list", ST + " count",
    ],
    # Default actions for packets no policy matches, and their event.
    "default_actions": [
        POL + " getdefault",
        monitored(POL + " setdefault in block fwd block", 0.5),
        POL + " getdefault",
        POL + " setdefault out block",
        POL + " getdefault",
        POL + " setdefault in accept fwd accept out accept",
        POL + " getdefault",
    ],
    # Lifetimes: soft then hard EXPIRE by add time (the hard one deletes the
    # SA), a larval state timing out after xfrm_acq_expires.
    "expire_events": [
        "echo 2 > %s" % ACQ,
        # Soft and hard two seconds apart: the reference under a loaded
        # host can run its first check late, and a check past the hard
        # limit sends only the hard event.
        monitored(sa("0x9000", "reqid 3 mode tunnel %s %s 128 limit time-soft 1 limit time-hard 3"
                      % (GCM, K20)) + "; " +
                  sa("0x9001", "reqid 3 mode tunnel %s %s 128 limit time-hard 2 "
                     "limit time-use-soft 1 limit byte-soft 1000 limit packet-hard 5"
                     % (GCM, K20)), 4.5),
        ST + " list", ST + " count",
        monitored(ALLOC + " min 0x9100 max 0x9100 > /dev/null", 3.5),
        ST + " count",
        # Policies: soft then hard POLEXPIRE by add time; the hard one deletes.
        monitored(POL + " add src 10.9.0.0/16 dst 10.8.0.0/16 dir out priority 7 "
                  "limit time-soft 1 limit time-hard 3 " + TMPL + "; " +
                  POL + " add src 10.9.0.0/16 dst 10.8.0.0/16 dir in "
                  "limit time-use-hard 4", 5.5),
        POL + " list", POL + " count",
    ],
    # The XFRM tutorial's raw-socket program, then what ip shows of its policy.
    "tutorial_program": [TUTORIAL, POL + " list", "ip -s xfrm policy list", TUTORIAL],
    "gcm_modes_families": [
        sa("0x1000", "reqid 1 mode tunnel %s %s 128" % (GCM, K20)),
        sa("0x1001", "mode transport %s %s 128 sel src 2001:db8::1 dst 2001:db8::2 proto tcp "
           "dport 443" % (GCM, K36), V6),
        sa("0x1002", "mode tunnel %s %s 96" % (GCM, K20), V6),
        sa("0x1003", "mode tunnel %s %s 64 sel src 192.168.1.0/24 dst 192.168.2.0/24"
           % (GCM, K20), V6),
        sa("0x1004", "mode tunnel %s %s 128 sel src 2001:db8:1::/64 dst 2001:db8:2::/64"
           % (GCM, K20)),
        sa("0x1005", "mode tunnel %s 0x0011223344556677889900112233445566778899aabbccdd 128"
           % GCM),
    ] + SHOW + [ST + " get %s proto esp spi 0x1001" % V6, ST + " get %s proto esp spi 0x1000" % V4],
    "cbc_ctr_null_chacha": [
        sa("0x2000", "mode tunnel enc 'cbc(aes)' %s auth-trunc 'hmac(sha1)' %s 96" % (K16, K20)),
        sa("0x2001", "mode tunnel enc aes %s auth sha256 %s" % (K32, K32)),
        sa("0x2002", "mode transport enc 'cbc(aes)' %s auth-trunc 'hmac(sha256)' %s 128"
           % (K16, K32)),
        sa("0x2003", "mode tunnel enc 'cbc(aes)' %s auth-trunc 'hmac(sha512)' %s 256"
           % (K32, K64)),
        sa("0x2004", "mode tunnel enc 'rfc3686(ctr(aes))' %s auth-trunc 'hmac(sha256)' %s 128"
           % (K20, K32)),
        sa("0x2005", "mode tunnel enc 'ecb(cipher_null)' '' auth-trunc 'hmac(sha1)' %s 96"
           % K20),
        sa("0x2006", "mode tunnel aead 'rfc7539esp(chacha20,poly1305)' %s 128" % K36),
        sa("0x2007", "mode tunnel enc cipher_null '' auth sha1 %s" % K20),
        sa("0x2008", "mode tunnel enc 'cbc(aes)' %s auth-trunc 'hmac(sha384)' %s 192"
           % (K32, K32 + K16[2:])),
    ] + SHOW,
    "esn_replay": [
        sa("0x3000", "mode tunnel replay-window 32 %s %s 128" % (GCM, K20)),
        sa("0x3001", "mode tunnel replay-window 64 %s %s 128" % (GCM, K20)),
        sa("0x3002", "mode tunnel replay-window 128 flag esn %s %s 128" % (GCM, K20)),
        sa("0x3003", "mode tunnel replay-window 4096 flag esn %s %s 128" % (GCM, K20)),
        sa("0x3004", "mode tunnel replay-seq 5 replay-oseq 7 replay-window 16 %s %s 128"
           % (GCM, K20)),
        sa("0x3005", "mode tunnel flag esn replay-window 1 replay-seq-hi 1 replay-oseq-hi 2 "
           "%s %s 128" % (GCM, K20)),
        sa("0x3006", "mode tunnel flag esn replay-window 0 %s %s 128" % (GCM, K20)),
        sa("0x3007", "mode tunnel replay-window 255 %s %s 128" % (GCM, K20)),
    ] + SHOW,
    "lifetimes_flags_marks": [
        sa("0x4000", "mode tunnel %s %s 128 limit time-soft 100 limit time-hard 200 "
           "limit time-use-soft 30 limit time-use-hard 60 limit byte-soft 1000 "
           "limit byte-hard 2000 limit packet-soft 10 limit packet-hard 20"
           % (GCM, K20)),
        sa("0x4001", "mode tunnel reqid 7 seq 9 flag noecn flag decap-dscp flag nopmtudisc "
           "flag wildrecv flag icmp flag align4 %s %s 128" % (GCM, K20)),
        sa("0x4002", "mode tunnel flag af-unspec %s %s 128" % (GCM, K20)),
        sa("0x4003", "mode tunnel mark 0x10 mask 0xff if_id 5 output-mark 0x20 mask 0xf0 "
           "%s %s 128" % (GCM, K20)),
        sa("0x4004", "mode tunnel extra-flag dont-encap-dscp extra-flag oseq-may-wrap "
           "tfcpad 64 %s %s 128" % (GCM, K20)),
        sa("0x4005", "mode tunnel encap espinudp 4500 4500 0.0.0.0 %s %s 128" % (GCM, K20)),
        sa("0x4007", "mode tunnel output-mark 0x7 %s %s 128" % (GCM, K20)),
    ] + SHOW + [ST + " get %s proto esp spi 0x4003 mark 0x10 mask 0xff" % V4,
                ST + " get %s proto esp spi 0x4003" % V4],
    "state_errors": [
        sa("0x5000", "mode tunnel %s %s 128" % (GCM, K20)),
        sa("0x5000", "mode tunnel %s %s 128" % (GCM, K20)),
        sa("0x5001", "mode tunnel %s 0x001122 128" % GCM),
        sa("0x5002", "mode tunnel enc 'cbc(aes)' 0x0011 auth sha1 %s" % K20),
        sa("0x5003", "mode tunnel auth sha1 %s" % K20),
        sa("0x5004", "mode transport %s %s 128 sel src 2001:db8::1 dst 2001:db8::2"
           % (GCM, K20)),
        sa("0x5006", "mode transport tfcpad 8 %s %s 128" % (GCM, K20)),
        sa("0x5007", "mode tunnel enc 'cbc(aes)' %s auth-trunc 'hmac(sha1)' %s 200"
           % (K16, K20)),
        sa("0x5008", "mode tunnel flag esn %s %s 128" % (GCM, K20)),
        sa("0x5009", "mode tunnel enc 'cbc(foo)' %s auth sha1 %s" % (K16, K20)),
        sa("0x500a", "mode tunnel aead 'rfc4106(gcm(foo))' %s 128" % K20),
        sa("0x500b", "mode tunnel enc aes %s auth-trunc 'hmac(foo)' %s 96" % (K16, K20)),
        sa("0x500c", "mode tunnel aead 'rfc4106(gcm(aes))' %s 32" % K20),
        sa("0x500d", "mode tunnel aead 'rfc7539esp(chacha20,poly1305)' %s 128" % K20),
        sa("0x500e", "mode tunnel enc 'rfc3686(ctr(aes))' %s auth sha1 %s" % (K16, K20)),
        sa("0x0", "mode tunnel %s %s 128" % (GCM, K20)),
        sa("0x500f", "mode tunnel %s %s 128 sel src 10.0.0.0/8 dst 0.0.0.0/0 proto udp "
           "sport 500 dport 4500" % (GCM, K20)),
        ST + " delete %s proto esp spi 0x5999" % V4,
        ST + " get %s proto esp spi 0x5999" % V4,
        ST + " delete %s proto esp spi 0x5000" % V6,
        ST + " list",
    ],
    "update_delete_flush": [
        sa("0x6000", "reqid 3 mode tunnel %s %s 128" % (GCM, K20)),
        sa("0x6001", "mode tunnel %s %s 128" % (GCM, K20)),
        sa("0x6000", "reqid 3 mode tunnel %s %s 128 limit time-hard 500" % (GCM, K20),
           op="update"),
        sa("0x6002", "mode tunnel %s %s 128" % (GCM, K20), op="update"),
        sa("0x6001", "mode tunnel %s %s 128 encap espinudp 4500 4500 0.0.0.0" % (GCM, K20),
           op="update"),
        "ip -s xfrm state list",
        ST + " delete %s proto esp spi 0x6001" % V4,
        ST + " list", ST + " count",
        ST + " deleteall", ST + " list", ST + " count",
        sa("0x6003", "mode tunnel %s %s 128" % (GCM, K20)),
        sa("0x6004", "mode tunnel %s %s 128" % (GCM, K20), V6),
        ST + " flush proto esp", ST + " list", ST + " flush", ST + " count",
    ],
    "policies": [
        POL + " add src 10.0.0.0/24 dst 10.0.1.0/24 dir out " + TMPL,
        POL + " add src 10.0.1.0/24 dst 10.0.0.0/24 dir in " + TMPL,
        POL + " add src 10.0.1.0/24 dst 10.0.0.0/24 dir fwd priority 7 " + TMPL,
        POL + " add src 10.0.2.0/24 dst 10.0.3.0/24 proto tcp sport 80 dport 443 dir out "
        "action block",
        POL + " add src 10.0.2.0/24 dst 10.0.3.0/24 proto icmp type 8 code 0 dir out "
        "priority 100 " + TMPL,
        POL + " add src 2001:db8::/64 dst 2001:db8:1::/64 dir out ptype sub "
        "tmpl src 2001:db8::1 dst 2001:db8::2 proto esp mode tunnel reqid 4",
        POL + " add src 10.0.4.0/24 dst 10.0.5.0/24 dir out mark 0x3 mask 0xff if_id 9 " + TMPL,
        POL + " add src 10.0.6.0/24 dst 10.0.7.0/24 dir in flag localok flag icmp "
        "limit time-soft 10 limit time-hard 20 limit byte-soft 30 limit byte-hard 40 " + TMPL + " level use",
        POL + " add src 10.0.8.0/24 dst 10.0.9.0/24 dir out "
        "tmpl proto esp mode transport reqid 2 tmpl src 10.0.0.1 dst 10.0.0.2 proto esp "
        "mode tunnel reqid 3",
        POL + " add src 10.1.0.0/16 dst 10.2.0.0/16 dir out index 0x1001 " + TMPL,
        POL + " add src 10.3.0.0/16 dst 10.4.0.0/16 dir in index 0x1001 " + TMPL,
        POL + " add src 2001:db8:5::/48 dst ::/0 dir in "
        "tmpl src 10.0.0.1 dst 10.0.0.2 proto esp mode tunnel reqid 5",
    ] + PSHOW + [
        POL + " get src 10.0.0.0/24 dst 10.0.1.0/24 dir out",
        POL + " get src 10.0.4.0/24 dst 10.0.5.0/24 dir out mark 0x3 mask 0xff if_id 9",
        POL + " get src 10.0.4.0/24 dst 10.0.5.0/24 dir out",
        POL + " get dir out index 0x1001",
        POL + " get dir in index 0x1001",
    ],
    "policy_errors_updates": [
        POL + " add src 10.0.0.0/24 dst 10.0.1.0/24 dir out " + TMPL,
        POL + " add src 10.0.0.0/24 dst 10.0.1.0/24 dir out " + TMPL,
        POL + " update src 10.0.0.0/24 dst 10.0.1.0/24 dir out priority 5 " + TMPL,
        POL + " update src 10.5.0.0/24 dst 10.6.0.0/24 dir in " + TMPL,
        POL + " add src 10.7.0.0/24 dst 10.8.0.0/24 dir out "
        "tmpl src 10.0.0.1 dst 10.0.0.2 proto esp mode tunnel level use",
        POL + " add src 10.7.0.0/24 dst 10.8.0.0/24 dir in "
        "tmpl src 2001:db8::1 dst 2001:db8::2 proto esp mode transport",
        POL + " get src 10.9.0.0/24 dst 10.9.1.0/24 dir out",
        POL + " delete src 10.9.0.0/24 dst 10.9.1.0/24 dir out",
        POL + " delete dir out index 0x999",
        POL + " get dir in index 0x9",
    ] + PSHOW + [
        POL + " delete src 10.0.0.0/24 dst 10.0.1.0/24 dir out",
        POL + " list",
        POL + " add src 10.11.0.0/24 dst 10.12.0.0/24 dir fwd " + TMPL,
        POL + " add src 10.13.0.0/24 dst 10.14.0.0/24 dir out ptype sub " + TMPL,
        POL + " deleteall dir fwd", POL + " list",
        POL + " flush ptype sub", POL + " list",
        POL + " flush", POL + " list", POL + " count",
    ],
}

TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def normalise(text):
    return TIME.sub("<time>", text)


def flat_commands():
    cmds = []
    for name, steps in SCENARIOS.items():
        cmds.append((None, ST + " flush; " + POL + " flush; " + POL + " flush ptype sub"))
        cmds.extend((name, c) for c in steps)
    return cmds


@pytest.fixture(scope="module")
def kernel_results():
    if not uml.available():
        pytest.fail("user-mode-linux is not installed (scripts/install-deps.sh)")
    cmds = flat_commands()
    return dict(zip(range(len(cmds)), uml.run([c for _, c in cmds])))


@pytest.fixture(scope="module")
def gateway_results(tmp_path_factory):
    # Scenarios set the host's xfrm_acq_expires (xfrmgw reads it): put it back.
    with open(ACQ) as f:
        acq = f.read()
    d = conftest.Daemon(str(tmp_path_factory.mktemp("gw") / "x.sock"))
    try:
        out = {i: d.sh(c) for i, (_, c) in enumerate(flat_commands())}
        assert d.alive(), "xfrmgw died: " + d.output()
    finally:
        d.stop()
        with open(ACQ, "w") as f:
            f.write(acq)
    return out


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_as_kernel(scenario, kernel_results, gateway_results):
    diffs = []
    for i, (name, cmd) in enumerate(flat_commands()):
        if name != scenario:
            continue
        k = tuple(normalise(x) if isinstance(x, str) else x for x in kernel_results[i])
        g = tuple(normalise(x) if isinstance(x, str) else x for x in gateway_results[i])
        if k != g:
            diffs.append("$ %s\n--- kernel rc=%s\n%s%s--- xfrmgw rc=%s\n%s%s"
                         % (cmd, k[0], k[1], k[2], g[0], g[1], g[2]))
    assert not diffs, "\n".join(diffs)


def test_kernel_reference_ran(kernel_results):
    # The reference must have really stored things, or every comparison is vacuous.
    i = next(i for i, (n, c) in enumerate(flat_commands()) if n == "policies" and
             c == POL + " list")
    assert "dir out" in kernel_results[i][1]
    i = next(i for i, (n, c) in enumerate(flat_commands()) if n == "gcm_modes_families" and
             c == ST + " list")
    assert "rfc4106(gcm(aes))" in kernel_results[i][1]
    # Lifetimes really expired in the reference: soft and hard, SA and larval.
    mons = [kernel_results[i][1] for i, (n, c) in enumerate(flat_commands())
            if n == "expire_events" and c.startswith("ip xfrm monitor")]
    assert len(mons) == 3
    assert mons[0].count("Expired") == 3 and "hard 1" in mons[0] and "hard 0" in mons[0]
    assert "spi 0x00009100" in mons[1] and "hard 1" in mons[1]
    assert mons[2].count("Expired") == 3 and "dir out" in mons[2] and "dir in" in mons[2]
    outs = [kernel_results[i][1] for i, (n, c) in enumerate(flat_commands())
            if n == "default_actions"]
    assert "block" not in outs[0] and "block" in outs[2] and "block" not in outs[-1], outs
    i = next(i for i, (n, c) in enumerate(flat_commands()) if n == "allocspi_larval" and
             c.startswith(ALLOC))
    assert "spi 0x00005000" in kernel_results[i][1]
