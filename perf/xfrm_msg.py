# SPDX-License-Identifier: BSD-3-Clause
"""NETLINK_XFRM messages for the perf lab's SAs and policies, and a client
of xfrmgw's control socket that sends them batched (many messages per
datagram, several datagrams in flight) and checks every ACK.

Layouts are those of include/uapi/linux/xfrm.h on x86-64; the wire framing
is xfrmgw's (lib/xfrm/xg_wire.h, what libxfrmgw-preload.so speaks).
"""
import os
import select
import socket
import struct

import traffic

NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
XFRM_MSG_NEWSA, XFRM_MSG_NEWPOLICY = 0x10, 0x13
XFRMA_ALG_AUTH_TRUNC, XFRMA_ALG_CRYPT, XFRMA_TMPL, XFRMA_ALG_AEAD = 20, 2, 5, 18
XG_WIRE_CTL, XG_WIRE_CTL_MAGIC, XG_WIRE_HDR_MAGIC = 0x0e, 0x58474331, 0x58474831
INF = 0xffffffffffffffff
AF_INET, IPPROTO_ESP, MODE_TUNNEL = 2, 50, 1
DIR_OUT, DIR_FWD = 1, 2

SELECTOR = struct.Struct("=16s16sHHHHHBBB3xiI")   # 56
LFT_CFG = struct.Struct("=8Q")                     # 64
LFT_CUR = struct.Struct("=4Q")                     # 32
TMPL = struct.Struct("=16sIB3xH2x16sIBBBxIII")     # 64
LFT = LFT_CFG.pack(INF, INF, INF, INF, 0, 0, 0, 0) + LFT_CUR.pack(0, 0, 0, 0)


def a4(s):
    return socket.inet_aton(s) + b"\0" * 12


def attr(atype, payload):
    ln = 4 + len(payload)
    return struct.pack("=HH", ln, atype) + payload + b"\0" * ((4 - ln % 4) % 4)


def nlmsg(mtype, payload, flags, seq, pid):
    ln = 16 + len(payload)
    return struct.pack("=IHHII", ln, mtype, flags, seq, pid) + payload + \
        b"\0" * ((4 - ln % 4) % 4)


def _algo(name, key):
    return name.ljust(64, b"\0") + struct.pack("=I", len(key) * 8)


ALG_ATTRS = {
    "gcm": attr(XFRMA_ALG_AEAD, _algo(b"rfc4106(gcm(aes))", traffic.GCM_KEY + traffic.GCM_SALT) +
                struct.pack("=I", 128) + traffic.GCM_KEY + traffic.GCM_SALT),
    "cbc": attr(XFRMA_ALG_CRYPT, _algo(b"cbc(aes)", traffic.CBC_KEY) + traffic.CBC_KEY) +
    attr(XFRMA_ALG_AUTH_TRUNC, _algo(b"hmac(sha256)", traffic.HMAC_KEY) +
         struct.pack("=I", traffic.ICV_LEN * 8) + traffic.HMAC_KEY),
}


def _ends(direction):
    """(source, destination) of the lab's SAs in a direction."""
    if direction == "out":
        return traffic.TUN_LOCAL, traffic.TUN_REMOTE
    return traffic.TUN_REMOTE, traffic.TUN_LOCAL


def sa_payload(k, direction="out", alg="gcm", window=0):
    """xfrm_usersa_info (224 bytes) + algorithms of the lab's SA k."""
    src, dst = _ends(direction)
    xid = a4(dst) + struct.pack("!I", traffic.spi(k)) + struct.pack("=B3x", IPPROTO_ESP)
    body = b"\0" * SELECTOR.size + xid + a4(src) + LFT + b"\0" * 12   # stats
    body += struct.pack("=IIHBBB", 0, k + 1, AF_INET, MODE_TUNNEL, window, 0)
    return body + b"\0" * (224 - len(body)) + ALG_ATTRS[alg]


def policy_payload(k, direction="out"):
    """xfrm_userpolicy_info (168 bytes) + the tunnel template of SA k: an
    out policy from the protected network to host k, or the fwd policy of
    the way back."""
    src, dst = _ends(direction)
    host, net = a4(traffic.sa_dst(k)), a4(traffic.PT_NET.split("/")[0])
    if direction == "out":
        sel = SELECTOR.pack(host, net, 0, 0, 0, 0, AF_INET, 32, 16, 0, 0, 0)
    else:
        sel = SELECTOR.pack(net, host, 0, 0, 0, 0, AF_INET, 16, 32, 0, 0, 0)
    body = sel + LFT + struct.pack("=IIBBBB", 0, 0, DIR_OUT if direction == "out" else DIR_FWD,
                                   0, 0, 0)
    body += b"\0" * (168 - len(body))
    t = TMPL.pack(a4(dst), 0, IPPROTO_ESP, AF_INET, a4(src), k + 1, MODE_TUNNEL, 0, 0,
                  0xffffffff, 0xffffffff, 0xffffffff)
    return body + attr(XFRMA_TMPL, t)


class Client:
    """A raw client of the xfrmgw socket (the preload's wire protocol)."""

    def __init__(self, path, portid=0x7000):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.connect(path)
        self.portid = portid
        ctl = struct.pack("=IIIII", XG_WIRE_CTL_MAGIC, portid, 0, os.getpid(), 0)
        self.s.send(nlmsg(XG_WIRE_CTL, ctl, 0, 0, 0))
        self.seq = 0

    def _datagrams(self, payloads, mtype, batch):
        out = []
        for i in range(0, len(payloads), batch):
            part = []
            for p in payloads[i:i + batch]:
                self.seq += 1
                part.append(nlmsg(mtype, p, NLM_F_REQUEST | NLM_F_ACK, self.seq, self.portid))
            out.append(b"".join(part))
        return out

    def _acks(self, errors):
        """Read every answer waiting; the number of ACKs among them."""
        n = 0
        while True:
            try:
                data = self.s.recv(65536)
            except BlockingIOError:
                return n
            magic, _group = struct.unpack_from("=II", data, 0)
            assert magic == XG_WIRE_HDR_MAGIC
            off = 8
            while off + 16 <= len(data):
                ln, t = struct.unpack_from("=IH", data, off)
                if t == NLMSG_ERROR:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        errors.append(err)
                    n += 1
                off += (ln + 3) & ~3

    def install(self, payloads, mtype, batch, window):
        """Send every payload as mtype with NLM_F_ACK, `batch` a datagram,
        at most `window` datagrams unanswered; the errors of the ACKs
        that were not 0 (every message is answered)."""
        dgrams, errors = self._datagrams(payloads, mtype, batch), []
        total, sent, acked = len(payloads), 0, 0
        self.s.setblocking(False)
        while acked < total:
            room = sent < len(dgrams) and min(sent * batch, total) - acked < window * batch
            while room:
                try:
                    self.s.send(dgrams[sent])
                except BlockingIOError:
                    break
                sent += 1
                room = sent < len(dgrams) and min(sent * batch, total) - acked < window * batch
            r, w, _ = select.select([self.s], [self.s] if room else [], [], 30)
            if not r and not w:
                raise TimeoutError("no ACK in 30 s (%d of %d)" % (acked, total))
            acked += self._acks(errors)
        self.s.setblocking(True)
        return errors

    def close(self):
        self.s.close()
