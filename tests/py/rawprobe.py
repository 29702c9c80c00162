# SPDX-License-Identifier: BSD-3-Clause
"""Send raw NETLINK_XFRM datagrams and record every answer.

Usage: rawprobe.py CASES.json RESULT.json

CASES.json is a list of cases; each case is a list of hex datagrams sent in
order on one fresh socket (NETLINK_EXT_ACK on). For each datagram the
answers that arrive within a short time are recorded as
[type, flags, seq, pid_is_mine, error, ext_ack_text, payload_len, payload_hex].
Run inside Linux under user-mode-linux and through the preload library, the
two result files must be equal. A datagram written as "F:<hex>" is fenced:
an NLMSG_NOOP with NLM_F_ACK follows it on the same socket, and everything
that arrives before the fence's ack is its answer (no waiting on silence;
both the kernel and xfrmgw answer one socket's datagrams in order). Only the standard library is used, so the
script runs under any python3.
"""
import json
import select
import socket
import struct
import sys

NETLINK_XFRM, SOL_NETLINK, NETLINK_EXT_ACK = 6, 270, 11


def ext_msg(flags, payload):
    if not flags & 0x200:
        return None
    echoed = struct.unpack_from("=I", payload, 4)[0] - 16 if not flags & 0x100 else 0
    off = 4 + 16 + ((echoed + 3) & ~3)
    while off + 4 <= len(payload):
        ln, atype = struct.unpack_from("=HH", payload, off)
        if ln < 4:
            break
        if atype == 1:
            return payload[off + 4:off + ln].rstrip(b"\0").decode(errors="replace")
        off += (ln + 3) & ~3
    return None


def strip_policy_pad(flags, payload):
    # A kernel without efficient unaligned access (user-mode-linux) pads the
    # u64 values of NLMSGERR_ATTR_POLICY with NL_POLICY_TYPE_ATTR_PAD; x86-64
    # kernels do not. Compare without the pads.
    if not flags & 0x200:
        return payload
    echoed = struct.unpack_from("=I", payload, 4)[0] - 16 if not flags & 0x100 else 0
    off = 4 + 16 + ((echoed + 3) & ~3)
    out = bytearray(payload[:off])
    while off + 4 <= len(payload):
        ln, atype = struct.unpack_from("=HH", payload, off)
        if ln < 4:
            break
        body = payload[off + 4:off + ln]
        if atype == 0x8004:
            inner, i = bytearray(), 0
            while i + 4 <= len(body):
                iln, ityp = struct.unpack_from("=HH", body, i)
                if iln < 4:
                    break
                if not (ityp == 11 and iln == 4):
                    inner += body[i:i + ((iln + 3) & ~3)]
                i += (iln + 3) & ~3
            body = bytes(inner)
            ln = 4 + len(body)
        out += struct.pack("=HH", ln, atype) + body + bytes((4 - ln % 4) % 4)
        off += (struct.unpack_from("=H", payload, off)[0] + 3) & ~3
    return bytes(out)


def mask_time(mtype, payload):
    # curlft.add_time differs between runs: zero it in SA and policy bodies
    # and in the XFRMA_LTIME_VAL of NEWAE (after the 48-byte aevent id).
    if mtype == 0x1e:
        # Also drop XFRMA_PAD: nla_put_64bit() pads on kernels without
        # efficient unaligned access (user-mode-linux), not on x86-64, whose
        # layout xfrmgw follows.
        out, off = bytearray(payload[:48]), 48
        while off + 4 <= len(payload):
            ln, atype = struct.unpack_from("=HH", payload, off)
            if ln < 4:
                out += payload[off:]
                break
            a = bytearray(payload[off:off + ((ln + 3) & ~3)])
            if atype == 9 and ln >= 4 + 32:
                a[4 + 16:4 + 24] = bytes(8)
            if not (atype == 27 and ln == 4):
                out += a
            off += (ln + 3) & ~3
        return bytes(out)
    at = {0x10: 176, 0x1a: 176, 0x13: 136, 0x19: 136}.get(mtype)
    if at is None or len(payload) < at + 8:
        return payload
    return payload[:at] + bytes(8) + payload[at + 8:]


FENCE_SEQ = 0x0fe7ce00


def answers(s, portid, wait, fence=False):
    out = []
    while select.select([s], [], [], 5.0 if fence else wait)[0]:
        data = s.recv(65536)
        off = 0
        while off + 16 <= len(data):
            ln, mtype, flags, seq, pid = struct.unpack_from("=IHHII", data, off)
            if ln < 16 or off + ln > len(data):
                break
            if fence and mtype == 2 and seq == FENCE_SEQ:
                return out
            payload = data[off + 16:off + ln]
            err = struct.unpack_from("=i", payload)[0] if mtype == 2 else None
            text = ext_msg(flags, payload) if mtype == 2 else None
            if mtype == 2:
                payload = strip_policy_pad(flags, payload)
            body = mask_time(mtype, payload)
            out.append([mtype, flags, seq, pid == portid, err, text, len(body), body.hex()])
            off += (ln + 3) & ~3
        wait = 0.05
    return out


def is_dump(hexdata):
    # The kernel continues a dump on the reader's recvmsg(), after the
    # fence's ack: dumps are not fenced.
    data = bytes.fromhex(hexdata)
    return len(data) >= 8 and struct.unpack_from("=H", data, 6)[0] & 0x300 == 0x300


def main():
    cases = json.load(open(sys.argv[1]))
    results = []
    for case in cases:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        s.bind((0, 0))
        portid = s.getsockname()[0]
        res = []
        for dgram in case:
            dgram_hex = dgram[2:] if dgram.startswith("F:") else dgram
            if dgram.startswith("F:") and not is_dump(dgram[2:]):
                try:
                    s.send(bytes.fromhex(dgram[2:]))
                except OSError as e:
                    res.append([["send", e.errno]])
                    continue
                s.send(struct.pack("=IHHII", 16, 1, 5, FENCE_SEQ, 0))
                res.append(answers(s, portid, 0, True) + [["fence"]])
                continue
            s.send(bytes.fromhex(dgram_hex))
            res.append(answers(s, portid, 0.3))
        s.close()
        results.append(res)
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
