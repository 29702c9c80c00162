# SPDX-License-Identifier: BSD-3-Clause
"""Requests whose 64-bit fields sit at 4-byte offsets.

Netlink keeps messages and attributes 4-byte aligned only; struct
xfrm_usersa_info and struct xfrm_lifetime_cur hold 64-bit fields. One
datagram here puts a NEWSA and a NEWAE at an offset of 4 mod 8 and each
XFRMA_LTIME_VAL at 4 mod 8 inside its message: the answers must be right,
and under tests/san/run.sh UBSan aborts the daemon on any misaligned load.
"""
import socket
import struct

import nl

XFRMA_MARK = 21
LTIME = struct.Struct("=4Q")   # bytes, packets, add_time, use_time
CURLFT_OFF = 56 + 24 + 16 + 64  # in xfrm_usersa_info: selector, id, saddr, lft


def aevent_id(src, dst, spi, reqid):
    sa_id = nl.addr(dst) + struct.pack("!I", spi) + struct.pack("=HB1x", socket.AF_INET, 50)
    return sa_id + nl.addr(src) + struct.pack("=II", 0, reqid)


def usersa_id(dst, spi):
    return nl.addr(dst) + struct.pack("!I", spi) + struct.pack("=HB1x", socket.AF_INET, 50)


def test_newsa_newae_at_4_mod_8(daemon):
    pol = nl.msg(nl.XFRM_MSG_NEWPOLICY,
                 nl.policy_info(nl.selector("10.1.0.0", "10.2.0.0", 16, 16), 1) +
                 nl.attr(XFRMA_MARK, struct.pack("=II", 7, 0xff)),
                 nl.NLM_F_REQUEST | nl.NLM_F_ACK, 1)
    assert len(pol) % 8 == 4
    sa_body = nl.sa_info("192.0.2.1", "192.0.2.2", 0x4242, reqid=9) + nl.aead_gcm()
    assert (16 + len(sa_body) + 4) % 8 == 4          # LTIME_VAL's payload
    sa = nl.msg(nl.XFRM_MSG_NEWSA, sa_body + nl.attr(nl.XFRMA_LTIME_VAL,
                                                     LTIME.pack(1000, 10, 0, 0)),
                nl.NLM_F_REQUEST | nl.NLM_F_ACK, 2)
    # 20 bytes between: the NEWAE starts at 4 mod 8 as well.
    info = nl.msg(nl.XFRM_MSG_GETSPDINFO, bytes(4), nl.NLM_F_REQUEST, 5)
    ae_body = aevent_id("192.0.2.1", "192.0.2.2", 0x4242, 9)
    assert (len(pol) + len(sa) + len(info)) % 8 == 4 and (16 + len(ae_body) + 4) % 8 == 4
    ae = nl.msg(nl.XFRM_MSG_NEWAE, ae_body + nl.attr(nl.XFRMA_LTIME_VAL,
                                                     LTIME.pack(5000, 50, 0, 0)),
                nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_REPLACE, 3)
    get = nl.msg(nl.XFRM_MSG_GETSA, usersa_id("192.0.2.2", 0x4242), nl.NLM_F_REQUEST, 4)
    rc, out, err = daemon.sh("/usr/bin/python3 -c %s" % _shq(_CLIENT % (
        nl.__file__.rsplit("/", 1)[0], (pol + sa + info + ae + get).hex())))
    assert rc == 0, err
    acks, sa_reply = eval(out.strip().splitlines()[-1])   # noqa: S307 (our own repr)
    assert acks == {1: 0, 2: 0, 3: 0}, acks
    body = bytes.fromhex(sa_reply)
    assert LTIME.unpack_from(body, CURLFT_OFF)[:2] == (5000, 50)
    # The policy's mark came from a misaligned attribute too.
    rc, out, err = daemon.sh("ip xfrm policy list")
    assert rc == 0 and "mark 0x7/0xff" in out, out + err


_CLIENT = """
import sys
sys.path.insert(0, %r)
import nl
s = nl.XfrmSocket(rcvbuf=65536)
s.send(bytes.fromhex(%r))
acks, reply = {}, None
while len(acks) < 3 or reply is None:
    for m in s.recv_msgs():
        if m[0] == nl.NLMSG_ERROR:
            acks[m[2]] = nl.error_of(m[4])
        elif m[0] == nl.XFRM_MSG_NEWSA and m[2] == 4:
            reply = m[4].hex()
print(repr((acks, reply)))
"""


def _shq(s):
    return "'" + s.replace("'", "'\\''") + "'"
