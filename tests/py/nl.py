# SPDX-License-Identifier: BSD-3-Clause
"""Minimal NETLINK_XFRM message builder/parser for raw-socket tests.

Layouts are those of include/uapi/linux/xfrm.h on x86_64 (checked against
the sizes the kernel's xfrm_msg_min table uses).
"""
import socket
import struct

NETLINK_XFRM = 6
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_EXT_ACK = 11

NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 1, 2, 4
NLM_F_DUMP = 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200

XFRM_MSG_NEWSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA = 0x10, 0x11, 0x12
XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_GETPOLICY = 0x13, 0x14, 0x15
XFRM_MSG_UPDPOLICY, XFRM_MSG_UPDSA = 0x19, 0x1a
XFRM_MSG_FLUSHSA, XFRM_MSG_FLUSHPOLICY = 0x1c, 0x1d
XFRM_MSG_GETSADINFO, XFRM_MSG_NEWSADINFO = 0x23, 0x22
XFRM_MSG_GETSPDINFO, XFRM_MSG_NEWSPDINFO = 0x25, 0x24
XFRM_MSG_ALLOCSPI, XFRM_MSG_NEWAE, XFRM_MSG_GETAE = 0x16, 0x1e, 0x1f
XFRM_MSG_SETDEFAULT, XFRM_MSG_GETDEFAULT = 0x27, 0x28
NLM_F_REPLACE = 0x100
XFRMA_REPLAY_VAL, XFRMA_LTIME_VAL, XFRMA_REPLAY_THRESH, XFRMA_ETIMER_THRESH = 10, 9, 11, 12
XFRMA_REPLAY_ESN_VAL = 23
XFRM_MSG_MIGRATE = 0x21
XFRM_MSG_EXPIRE, XFRM_MSG_POLEXPIRE = 0x18, 0x1b
XFRMA_MIGRATE = 17
XFRMNLGRP_SA, XFRMNLGRP_POLICY = 3, 4

XFRMA_ALG_AEAD = 18
XFRMA_TMPL = 5
NLMSGERR_ATTR_MSG = 1

SELECTOR = struct.Struct("=16s16sHHHHHBBB3xiI")          # 56
LFT_CFG = struct.Struct("=8Q")                            # 64
LFT_CUR = struct.Struct("=4Q")                            # 32
POLICY_INFO_LEN = 168
POLICY_ID_LEN = 64
SA_INFO_LEN = 224

INF = 0xffffffffffffffff


def addr(a):
    if ":" in a:
        return socket.inet_pton(socket.AF_INET6, a)
    return socket.inet_pton(socket.AF_INET, a) + b"\0" * 12


def selector(src="0.0.0.0", dst="0.0.0.0", splen=0, dplen=0, family=socket.AF_INET, proto=0):
    return SELECTOR.pack(addr(dst), addr(src), 0, 0, 0, 0, family, dplen, splen, proto, 0, 0)


def policy_info(sel, direction, priority=0, index=0, action=0, flags=0):
    body = sel + LFT_CFG.pack(INF, INF, INF, INF, 0, 0, 0, 0) + LFT_CUR.pack(0, 0, 0, 0)
    body += struct.pack("=IIBBBB", priority, index, direction, action, flags, 0)
    return body + b"\0" * (POLICY_INFO_LEN - len(body))


def policy_id(sel, direction, index=0):
    body = sel + struct.pack("=IB", index, direction)
    return body + b"\0" * (POLICY_ID_LEN - len(body))


def sa_info(src, dst, spi, family=socket.AF_INET, mode=1, reqid=0, flags=0):
    sel = b"\0" * SELECTOR.size
    xid = addr(dst) + struct.pack("!I", spi) + struct.pack("=B3x", 50)
    body = sel + xid + addr(src) + LFT_CFG.pack(INF, INF, INF, INF, 0, 0, 0, 0)
    body += LFT_CUR.pack(0, 0, 0, 0) + b"\0" * 12
    body += struct.pack("=IIHBBB", 0, reqid, family, mode, 0, flags)
    return body + b"\0" * (SA_INFO_LEN - len(body))


def attr(atype, payload):
    ln = 4 + len(payload)
    return struct.pack("=HH", ln, atype) + payload + b"\0" * ((4 - ln % 4) % 4)


def aead_gcm(key=bytes(range(20)), icv=128):
    return attr(XFRMA_ALG_AEAD, b"rfc4106(gcm(aes))".ljust(64, b"\0") +
                struct.pack("=II", len(key) * 8, icv) + key)


def msg(mtype, payload, flags=NLM_F_REQUEST, seq=1, pid=0):
    ln = 16 + len(payload)
    return struct.pack("=IHHII", ln, mtype, flags, seq, pid) + payload + \
        b"\0" * ((4 - ln % 4) % 4)


def parse(data):
    """Split a datagram into (type, flags, seq, pid, payload) tuples."""
    out = []
    off = 0
    while off + 16 <= len(data):
        ln, mtype, flags, seq, pid = struct.unpack_from("=IHHII", data, off)
        if ln < 16 or off + ln > len(data):
            break
        out.append((mtype, flags, seq, pid, data[off + 16:off + ln]))
        off += (ln + 3) & ~3
    return out


def error_of(payload):
    return struct.unpack_from("=i", payload)[0]


def ext_ack_msg(flags, payload, echoed_len):
    """The NLMSGERR_ATTR_MSG text of an error message, or None."""
    if not flags & NLM_F_ACK_TLVS:
        return None
    off = 4 + 16 + (0 if flags & NLM_F_CAPPED else echoed_len)
    while off + 4 <= len(payload):
        ln, atype = struct.unpack_from("=HH", payload, off)
        if ln < 4:
            break
        if atype == NLMSGERR_ATTR_MSG:
            return payload[off + 4:off + ln].rstrip(b"\0").decode()
        off += (ln + 3) & ~3
    return None


class XfrmSocket:
    """A NETLINK_XFRM socket (redirected to xfrmgw when the preload is active)."""

    def __init__(self, groups=0, rcvbuf=4096):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        self.s.bind((0, groups))
        self.portid = self.s.getsockname()[0]
        self.rcvbuf = rcvbuf
        self.seq = 100

    def send(self, data):
        self.s.send(data)

    def request(self, mtype, payload, flags=NLM_F_REQUEST | NLM_F_ACK):
        self.seq += 1
        self.s.send(msg(mtype, payload, flags, self.seq, self.portid))
        return self.seq

    def recv(self, timeout=5.0):
        self.s.settimeout(timeout)
        data, src = self.s.recvfrom(self.rcvbuf)
        return data, src

    def recv_msgs(self, timeout=5.0):
        data, _ = self.recv(timeout)
        return parse(data)

    def dump(self, mtype, payload=b""):
        """Run a dump; returns (parts, datagrams read)."""
        seq = self.request(mtype, payload, NLM_F_REQUEST | NLM_F_DUMP)
        parts, reads = [], 0
        while True:
            msgs = self.recv_msgs()
            reads += 1
            for m in msgs:
                assert m[2] == seq and m[3] == self.portid
                if m[0] == NLMSG_DONE:
                    return parts, reads
                assert m[1] & NLM_F_MULTI
                parts.append(m)

    def close(self):
        self.s.close()
