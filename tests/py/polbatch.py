# SPDX-License-Identifier: BSD-3-Clause
"""Install N allow policies in datagrams of B XFRM_MSG_NEWPOLICY messages
each, every one ACKed (run through the preload library, as charon's
batched requests are). Half out, half fwd, /32 selectors in 172.16/172.17.

Usage: polbatch.py N B   (prints the number of ACKs with error 0)
"""
import sys

import nl


def main():
    n, b = int(sys.argv[1]), int(sys.argv[2])
    s = nl.XfrmSocket(rcvbuf=1 << 16)
    good = 0
    for start in range(0, n, b):
        data = b""
        for k in range(start, min(n, start + b)):
            sel = nl.selector("172.16.%d.%d" % (k >> 8, k & 255),
                              "172.17.%d.%d" % (k >> 8, k & 255), 32, 32)
            s.seq += 1
            data += nl.msg(nl.XFRM_MSG_NEWPOLICY, nl.policy_info(sel, k % 2 * 2, 100 + k),
                           nl.NLM_F_REQUEST | nl.NLM_F_ACK, s.seq, s.portid)
        s.send(data)
        want = min(n, start + b) - start
        while want:
            for m in s.recv_msgs(30):
                assert m[0] == nl.NLMSG_ERROR, m
                err = nl.error_of(m[4])
                assert err == 0, err
                good += 1
                want -= 1
    print(good)


if __name__ == "__main__":
    main()
