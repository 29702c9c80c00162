# SPDX-License-Identifier: BSD-3-Clause
"""Every algorithm x every mode through the whole gateway.

One gateway run per mode (tunnel 4in4, 6in6, 4in6, 6in4, transport v4/v6):
eight SA pairs, one per algorithm suite, each behind its own remote subnet,
all programmed with `ip xfrm` through the preload library. scapy sends
plaintext from the LAN netns and decrypts what leaves towards the WAN, then
sends ESP from the WAN netns and compares what reaches the LAN. Negative
cases (unknown SPI, truncated ESP, too old, outside the SA selector) are
checked in the counters.
"""
import ipaddress

import pytest
from scapy.all import Ether, IP, IPv6, UDP, Raw
from scapy.layers.ipsec import ESP, SecurityAssociation

from test_gateway import (exchange, forwarded, ipx, mac, start_gateway, stop_gateway,  # noqa: F401
                          topo)

K16 = bytes(range(1, 17))
K32 = bytes(range(1, 33))
K64 = K32 * 2
SALT = bytes.fromhex("a0a1a2a3")


def h(b):
    return "0x" + b.hex()


# suite: (ip xfrm algorithm arguments, scapy crypt algo/key, scapy auth algo/key)
SUITES = [
    ("aead 'rfc4106(gcm(aes))' %s 128" % h(K16 + SALT), "AES-GCM", K16 + SALT, None, None),
    ("aead 'rfc4106(gcm(aes))' %s 128" % h(K32 + SALT), "AES-GCM", K32 + SALT, None, None),
    ("aead 'rfc7539esp(chacha20,poly1305)' %s 128" % h(K32 + SALT), "CHACHA20-POLY1305",
     K32 + SALT, None, None),
    ("enc 'cbc(aes)' %s auth-trunc 'hmac(sha1)' %s 96" % (h(K16), h(K32[:20])), "AES-CBC", K16,
     "HMAC-SHA1-96", K32[:20]),
    ("enc 'cbc(aes)' %s auth-trunc 'hmac(sha256)' %s 128" % (h(K32), h(K32)), "AES-CBC", K32,
     "SHA2-256-128", K32),
    ("enc 'cbc(aes)' %s auth-trunc 'hmac(sha512)' %s 256" % (h(K16), h(K64)), "AES-CBC", K16,
     "SHA2-512-256", K64),
    ("enc 'rfc3686(ctr(aes))' %s auth-trunc 'hmac(sha256)' %s 128" % (h(K16 + SALT), h(K32)),
     "AES-CTR", K16 + SALT, "SHA2-256-128", K32),
    ("enc 'ecb(cipher_null)' '' auth-trunc 'hmac(sha256)' %s 128" % h(K32), "NULL", None,
     "SHA2-256-128", K32),
]

V4 = {"lan": "10.1.0.0/16", "host": "10.1.0.1", "remote": "10.2.%d.0/24", "rhost": "10.2.%d.5",
      "gw": "192.0.2.1", "peer": "192.0.2.2", "ip": IP}
V6 = {"lan": "2001:db8:1::/48", "host": "2001:db8:1::1", "remote": "2001:db8:2:%d::/64",
      "rhost": "2001:db8:2:%d::5", "gw": "2001:db8:ff::1", "peer": "2001:db8:ff::2", "ip": IPv6}
# mode name: (inner family, outer family, XFRM mode)
MODES = {
    "tunnel4in4": (V4, V4, "tunnel"),
    "tunnel6in6": (V6, V6, "tunnel"),
    "tunnel4in6": (V4, V6, "tunnel"),
    "tunnel6in4": (V6, V4, "tunnel"),
    "transport4": (V4, V4, "transport"),
    "transport6": (V6, V6, "transport"),
}


def endpoints(mode, k):
    inner, outer, m = MODES[mode]
    if m == "tunnel":
        return outer["gw"], outer["peer"], outer["peer"], outer["gw"]
    # Transport: the SAs run between the end hosts, the gateway does the ESP.
    return inner["host"], inner["rhost"] % k, inner["rhost"] % k, inner["host"]


def program(env, mode):
    inner, outer, m = MODES[mode]
    for k, suite in enumerate(SUITES):
        os_, od, is_, id_ = endpoints(mode, k)
        ipx(env, "xfrm state add src %s dst %s proto esp spi %d reqid %d mode %s %s "
            "sel src %s dst %s" % (os_, od, 0x100 + k, 100 + k, m, suite[0], inner["lan"],
                                   inner["remote"] % k))
        ipx(env, "xfrm state add src %s dst %s proto esp spi %d reqid %d mode %s "
            "replay-window 32 %s sel src %s dst %s"
            % (is_, id_, 0x200 + k, 200 + k, m, suite[0], inner["remote"] % k, inner["lan"]))
        ipx(env, "xfrm policy add src %s dst %s dir out tmpl src %s dst %s proto esp reqid %d "
            "mode %s" % (inner["lan"], inner["remote"] % k, os_, od, 100 + k, m))
        ipx(env, "xfrm policy add src %s dst %s dir fwd tmpl src %s dst %s proto esp reqid %d "
            "mode %s" % (inner["remote"] % k, inner["lan"], is_, id_, 200 + k, m))


def sa_for(mode, k, spi, src, dst):
    _, calgo, ckey, aalgo, akey = SUITES[k]
    inner, outer, m = MODES[mode]
    tunnel = outer["ip"](src=src, dst=dst) if m == "tunnel" else None
    return SecurityAssociation(ESP, spi=spi, crypt_algo=calgo, crypt_key=ckey, auth_algo=aalgo,
                               auth_key=akey, tunnel_header=tunnel)


@pytest.mark.parametrize("mode", list(MODES))
def test_all_suites(topo, tmp_path, mode):  # noqa: F811
    inner, outer, m = MODES[mode]
    t = topo
    fams = {"v4": V4, "v6": V6}
    p, log, env = start_gateway(tmp_path, t, extra_conf=(
        "[port 0]\nipv4 = 10.1.0.254/24\nipv6 = 2001:db8:1::fe/64\n"
        "[port 1]\nipv4 = 192.0.2.1/24\nipv6 = 2001:db8:ff::1/64\n"
        "[route r4]\nprefix = 10.2.0.0/16\nvia = 192.0.2.2\nport = 1\n"
        "[route r6]\nprefix = 2001:db8:2::/48\nvia = 2001:db8:ff::2\nport = 1\n"
        "[neighbour p4]\naddress = 192.0.2.2\nmac = %(wan)s\nport = 1\n"
        "[neighbour p6]\naddress = 2001:db8:ff::2\nmac = %(wan)s\nport = 1\n"
        "[neighbour h4]\naddress = 10.1.0.1\nmac = %(lan)s\nport = 0\n"
        "[neighbour h6]\naddress = 2001:db8:1::1\nmac = %(lan)s\nport = 0\n"))
    del fams
    try:
        program(env, mode)
        gw_lan, gw_wan = mac(None, t["lan_g"]), mac(None, t["wan_g"])
        lan, wan = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])
        ip = inner["ip"]
        out_pkts = [ip(src=inner["host"], dst=inner["rhost"] % k) /
                    UDP(sport=1000 + k, dport=7) / Raw(b"o" * (k * 7 + 1))
                    for k in range(len(SUITES))]
        got = exchange(t, tmp_path, "lan", [Ether(src=lan, dst=gw_lan) / x for x in out_pkts])
        esp = {f[ESP].spi: f for f in got if f.haslayer(ESP)}
        assert sorted(esp) == [0x100 + k for k in range(len(SUITES))], [f.summary() for f in got]
        for k, orig in enumerate(out_pkts):
            os_, od, _, _ = endpoints(mode, k)
            f = esp[0x100 + k]
            assert f[Ether].src == gw_wan and f[Ether].dst == wan
            outer_pkt = f.payload
            assert ipaddress.ip_address(outer_pkt.src) == ipaddress.ip_address(os_)
            assert ipaddress.ip_address(outer_pkt.dst) == ipaddress.ip_address(od)
            plain = sa_for(mode, k, 0x100 + k, os_, od).decrypt(outer_pkt)
            assert bytes(plain.__class__(bytes(plain))) == forwarded(orig), k

        back = [ip(src=inner["rhost"] % k, dst=inner["host"]) / UDP(sport=7, dport=2000 + k) /
                Raw(b"i" * (k * 5 + 3)) for k in range(len(SUITES))]
        frames = []
        for k, x in enumerate(back):
            _, _, is_, id_ = endpoints(mode, k)
            sa = sa_for(mode, k, 0x200 + k, is_, id_)
            frames.append(Ether(src=wan, dst=gw_wan) / sa.encrypt(x, seq_num=100))
        # Negative cases on suite 0: unknown SPI, truncated ESP, too old,
        # an inner packet outside the SA's selector.
        _, _, is0, id0 = endpoints(mode, 0)
        sa0 = sa_for(mode, 0, 0x200, is0, id0)
        oip = outer["ip"] if m == "tunnel" else inner["ip"]
        frames.append(Ether(src=wan, dst=gw_wan) /
                      sa_for(mode, 0, 0x999, is0, id0).encrypt(back[0], seq_num=1))
        trunc = bytes(sa0.encrypt(back[0], seq_num=101))
        hl = 20 if oip is IP else 40
        cut = oip(trunc[:hl + 6])
        if oip is IP:
            cut.len = hl + 6
            del cut.chksum
        else:
            cut.plen = 6
        frames.append(Ether(src=wan, dst=gw_wan) / oip(bytes(cut)))
        frames.append(Ether(src=wan, dst=gw_wan) / sa0.encrypt(back[0], seq_num=10))
        stray = ip(src=inner["rhost"] % 7, dst=inner["host"]) / UDP(sport=7, dport=9)
        frames.append(Ether(src=wan, dst=gw_wan) / sa0.encrypt(stray, seq_num=102))
        got = exchange(t, tmp_path, "wan", frames)
        rx = {f[UDP].dport: f for f in got if f.haslayer(UDP) and f[UDP].sport == 7 and
              f.payload.dst == inner["host"]}
        assert sorted(rx) == [2000 + k for k in range(len(SUITES))], [f.summary() for f in got]
        for k, orig in enumerate(back):
            f = rx[2000 + k]
            assert f[Ether].src == gw_lan and f[Ether].dst == lan
            assert bytes(f.payload) == forwarded(orig), k
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert counters.get("XgOutEncrypted") == len(SUITES), text
    assert counters.get("XgInDecrypted") == len(SUITES) + 1, text   # + the stray one
    # Unknown SPI: to our own address an XfrmInNoStates; in transport mode the
    # packet is for a host behind us, and the fwd policy wants it decrypted.
    if m == "tunnel":
        assert counters.get("XfrmInNoStates") == 1, text
    else:
        assert counters.get("XfrmInTmplMismatch") == 1, text
    assert counters.get("XfrmInHdrError") == 1, text
    assert counters.get("XfrmInStateSeqError") == 1, text
    assert counters.get("XfrmInStateMismatch") == 1, text
