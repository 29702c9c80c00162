#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the seed corpora of tests/fuzz (run as root with Debian's python3:
`/usr/bin/python3 tests/fuzz/make_corpus.py`; it rewrites
tests/fuzz/corpus/<target>/ and needs strace, iproute2 and scapy).

fuzz_xfrm: what unmodified `ip xfrm` sends, captured with strace in a
throw-away network namespace (the kernel there answers; only the requests
are kept), plus hand-made requests ip never sends (NEWAE, GETAE, EXPIRE,
MIGRATE, ...), each converted to the harness's record format.
fuzz_esp_in: frames made with scapy for the harness's fixed SAs: ESP
encrypted by scapy (raw frames), and plaintexts for the harness to encrypt.
fuzz_conf: conf/*.conf and small variations.
"""
import glob
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")

# ---- fuzz_xfrm ----

XFRM_MSG_BASE = 0x10
F_NOREQ, F_ACK, F_HIGH, F_LIE, F_BATCH, F_RAW, F_RAWLEN, F_STEP = (1 << i for i in range(8))

# The kernel's xfrm_msg_min[] (also the harness's fixed_len()), by type.
FIXED = {0x10: 224, 0x11: 24, 0x12: 24, 0x13: 168, 0x14: 64, 0x15: 64, 0x16: 232,
         0x17: 280, 0x18: 232, 0x19: 168, 0x1a: 64, 0x1b: 1, 0x1c: 0, 0x1d: 168,
         0x1e: 56, 0x1f: 56, 0x20: 76, 0x21: 64, 0x23: 4, 0x24: 4, 0x25: 4,
         0x26: 4, 0x27: 64, 0x28: 3, 0x29: 3}

KEY20 = "0x4c80cdefbb5d10da906ac73c3613a6342e443b68"
KEY16 = "0x06a9214036b8a15b512e03d534120006"
KEY32 = "0x0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b1c1c1c1c1c1c1c1c1c1c1c1c"
KEY36 = "0x" + "42" * 36
S4 = "src 192.0.2.2 dst 192.0.2.1"
S6 = "src 2001:db8:1::2 dst 2001:db8:1::1"
GCM = "aead 'rfc4106(gcm(aes))' %s 128" % KEY20
CBC = "enc 'cbc(aes)' %s auth-trunc 'hmac(sha256)' %s 128" % (KEY16, KEY32)
SEL = "sel src 10.1.0.0/24 dst 10.2.0.0/16"
TMPL = "tmpl %s proto esp reqid 1 mode tunnel" % S4
P = "src 10.1.0.0/24 dst 10.2.0.0/16"

IP_COMMANDS = {
    "state-add-gcm": "state add %s proto esp spi 0x100 reqid 1 mode tunnel %s replay-window 32 %s"
                     % (S4, GCM, SEL),
    "state-add-cbc": "state add %s proto esp spi 0x101 reqid 2 mode tunnel %s" % (S4, CBC),
    "state-add-esn": "state add %s proto esp spi 0x102 reqid 3 mode tunnel %s flag esn "
                     "replay-window 128" % (S4, GCM),
    "state-add-natt": "state add %s proto esp spi 0x103 reqid 4 mode tunnel %s "
                      "encap espinudp 4500 4500 0.0.0.0" % (S4, GCM),
    "state-add-v6": "state add %s proto esp spi 0x104 mode tunnel %s" % (S6, GCM),
    "state-add-ctr-transport": "state add %s proto esp spi 0x105 mode transport "
                               "enc 'rfc3686(ctr(aes))' %s auth 'hmac(sha1)' "
                               "0x0102030405060708090a0b0c0d0e0f1011121314" % (S4, KEY20),
    "state-add-chacha": "state add %s proto esp spi 0x106 mode tunnel aead "
                        "'rfc7539esp(chacha20,poly1305)' %s 128" % (S4, KEY36),
    "state-add-limits": "state add %s proto esp spi 0x107 mode tunnel %s limit time-soft 10 "
                        "limit time-hard 20 limit byte-soft 1000 limit packet-hard 5 mark 7 "
                        "mask 0xff if_id 3 output-mark 9 extra-flag dont-encap-dscp "
                        "flag af-unspec flag noecn" % (S4, GCM),
    "state-add-null": "state add %s proto esp spi 0x108 mode tunnel enc 'ecb(cipher_null)' '' "
                      "auth 'digest_null' ''" % S4,
    "state-update": "state update %s proto esp spi 0x100 reqid 1 mode tunnel %s" % (S4, GCM),
    "state-get": "state get %s proto esp spi 0x100" % S4,
    "state-delete": "state delete %s proto esp spi 0x100" % S4,
    "state-list": "state list",
    "state-list-spi": "state list spi 0x100",
    "state-count": "state count",
    "state-deleteall": "state deleteall",
    "state-flush": "state flush",
    "state-flush-esp": "state flush proto esp",
    "state-allocspi": "state allocspi %s proto esp min 0x200 max 0x2ff mode tunnel reqid 7" % S4,
    "policy-add-fwd": "policy add %s dir fwd %s" % (P, TMPL),
    "policy-add-out": "policy add %s dir out priority 100 %s level use" % (P, TMPL),
    "policy-add-block": "policy add %s dir in action block" % P,
    "policy-add-index": "policy add %s dir out index 0x1001 %s" % (P, TMPL),
    "policy-add-ports": "policy add %s proto tcp sport 80 dport 443 dir out %s" % (P, TMPL),
    "policy-add-icmp": "policy add %s proto icmp type 8 code 0 dir in %s" % (P, TMPL),
    "policy-add-v6": "policy add src fd00:1::/64 dst fd00:2::/64 dir fwd tmpl %s proto esp "
                     "mode tunnel" % S6,
    "policy-add-mark": "policy add %s dir out mark 7 mask 0xff if_id 3 ptype main %s" % (P, TMPL),
    "policy-update": "policy update %s dir fwd %s" % (P, TMPL),
    "policy-get": "policy get %s dir fwd" % P,
    "policy-get-index": "policy get index 0x1001 dir out",
    "policy-delete": "policy delete %s dir fwd" % P,
    "policy-list": "policy list",
    "policy-deleteall": "policy deleteall",
    "policy-flush": "policy flush",
    "policy-count": "policy count",
    "policy-hthresh": "policy set hthresh4 24 16 hthresh6 64 64",
    "policy-setdefault": "policy setdefault in block out accept fwd block",
    "policy-getdefault": "policy getdefault",
}


def strace_datagrams(path):
    """The datagrams of every sendmsg/sendto in an strace -e write=all log."""
    out, cur = [], None
    for line in open(path):
        if re.match(r"^\d+ +send(msg|to)\(", line):
            cur = bytearray()
            out.append(cur)
        m = re.match(r"^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})", line)
        if m and cur is not None:
            cur += bytes.fromhex(m.group(1).replace(" ", ""))
    return [bytes(d) for d in out if len(d) >= 16]


def capture_ip(netns, cmd):
    with tempfile.NamedTemporaryFile(suffix=".strace") as log:
        subprocess.run(["ip", "netns", "exec", netns, "strace", "-qq", "-f", "-e",
                        "trace=sendmsg,sendto", "-e", "write=all", "-o", log.name,
                        "ip", "xfrm"] + cmd.split(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=20, check=False)
        # ip's own requests to NETLINK_XFRM only: not its rtnetlink probes.
        return [d for d in strace_datagrams(log.name)
                if XFRM_MSG_BASE <= struct.unpack_from("=H", d, 4)[0] < 0x30]


def nl_split(dgram):
    msgs, off = [], 0
    while off + 16 <= len(dgram):
        ln = struct.unpack_from("=I", dgram, off)[0]
        if ln < 16 or off + ln > len(dgram):
            break
        msgs.append(dgram[off:off + ln])
        off += (ln + 3) & ~3
    return msgs


def attrs_of(body):
    out, off = [], 0
    while off + 4 <= len(body):
        ln, typ = struct.unpack_from("=HH", body, off)
        if ln < 4 or off + ln > len(body):
            break
        out.append((typ & 0x3fff, body[off + 4:off + ln]))
        off += (ln + 3) & ~3
    return out


def record(msg, batch=False, step=True):
    """One netlink message as a harness record (real values: F_RAW)."""
    ln, typ, flags = struct.unpack_from("=IHH", msg, 0)
    fixed_len = FIXED.get(typ, 0)
    payload = msg[16:]
    rawlen = len(payload) < fixed_len
    flen = min(len(payload), 255) if rawlen else fixed_len
    fixed = payload[:flen]
    attrs = attrs_of(payload[(flen + 3) & ~3:])
    f = F_RAW | (F_STEP if step else 0) | (F_BATCH if batch else 0)
    f |= (0 if flags & 1 else F_NOREQ) | (F_ACK if flags & 4 else 0)
    f |= F_HIGH if flags >> 8 else 0
    f |= F_RAWLEN if rawlen else 0
    r = bytes([typ - XFRM_MSG_BASE, f, flen, len(attrs)])
    if flags >> 8:
        r += bytes([flags >> 8])
    r += fixed
    for t, data in attrs:
        if len(data) > 255:
            r += bytes([0x80 | t, len(data) & 0xff, len(data) >> 8]) + data
        else:
            r += bytes([t, len(data)]) + data
    return r


def records(dgrams):
    out = b""
    for d in dgrams:
        msgs = nl_split(d)
        for i, msg in enumerate(msgs):
            out += record(msg, batch=i + 1 < len(msgs))
    return out


def nlmsg(typ, payload, flags=0x5):
    return struct.pack("=IHHII", 16 + len(payload), typ, flags, 1, 0) + payload


def nlattr(typ, data):
    return struct.pack("=HH", 4 + len(data), typ) + data + b"\0" * (-len(data) % 4)


def handmade(sa_add):
    """Requests ip never sends; sa_add: the captured NEWSA records to start from."""
    sa_id = bytes.fromhex("c0000201") + b"\0" * 12 + struct.pack("!I", 0x102) + \
        struct.pack("=HB", 2, 50) + b"\0"
    ae_id = sa_id + bytes.fromhex("c0000202") + b"\0" * 12 + struct.pack("=II", 0, 3)
    esn = lambda bmp_len, win: struct.pack("=6I", bmp_len, 1, 5, 0, 0, win) + b"\xff" * 4 * bmp_len
    s = {}
    s["newae-esn"] = sa_add + record(nlmsg(0x1e, ae_id + nlattr(23, esn(4, 128)), 0x105))
    # CVE-2017-7184 shape: a window larger than the bitmap.
    s["newae-esn-window-gt-bitmap"] = sa_add + record(nlmsg(0x1e, ae_id +
                                                           nlattr(23, esn(1, 4096)), 0x105))
    # CVE-2023-3772 shape: a bitmap length change.
    s["newae-esn-bitmap-change"] = sa_add + record(nlmsg(0x1e, ae_id +
                                                        nlattr(23, esn(128, 4096)), 0x105))
    s["getae"] = sa_add + record(nlmsg(0x1f, ae_id, 0x1))
    s["expire-request"] = sa_add + record(nlmsg(0x18, b"\0" * 224 + b"\1" + b"\0" * 7))
    s["flushsa-event"] = sa_add + record(nlmsg(0x1c, b"\0"))   # the 20-byte FLUSHSA event
    s["getsadinfo"] = record(nlmsg(0x23, b"\0" * 4, 0x1))
    s["getspdinfo"] = record(nlmsg(0x25, b"\0" * 4, 0x1))
    return s


def write_seeds(d, seeds):
    """Write {name: bytes} into directory @p d; @return how many."""
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return len(seeds)


def fresh_dir(target):
    """The target's corpus directory, emptied of all but the regress-*
    seeds (inputs that once found a bug; they are kept as they were)."""
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith("regress-"):
            os.unlink(os.path.join(d, name))
    return d


def make_xfrm():
    d = fresh_dir("fuzz_xfrm")
    netns = "xgfz%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", netns], check=True)
    seeds, session = {}, b""
    try:
        for name, cmd in IP_COMMANDS.items():
            recs = records(capture_ip(netns, cmd))
            if not recs:
                print("no XFRM request captured for: ip xfrm %s" % cmd, file=sys.stderr)
                continue
            seeds["ip-" + name] = b"\x01" + recs      # mode: extended acks on
            session += recs
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    seeds["ip-session"] = b"\x05" + session            # all, in order, with listeners
    sa_add = seeds["ip-state-add-esn"][1:]
    for name, data in handmade(sa_add).items():
        seeds["hand-" + name] = b"\x01" + data
    return write_seeds(d, seeds)


# ---- fuzz_esp_in ----

def make_esp():
    from scapy.all import Ether, IP, IPv6, UDP, ICMP, TCP, ARP, Raw, fragment
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr
    from scapy.layers.ipsec import SecurityAssociation, ESP

    d = fresh_dir("fuzz_esp_in")
    gcm_key = bytes.fromhex(KEY20[2:])
    cbc_key, hmac_key = bytes.fromhex(KEY16[2:]), bytes.fromhex(KEY32[2:])
    eth = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")

    def raw(frame, lan=False):
        b = bytes(frame)
        return bytes([0x20 if lan else 0]) + struct.pack("<H", len(b)) + b

    def enc(k, seq, plaintext, align=True, bad_icv=False, new_burst=False, moved=False):
        kind = 1 | k << 1 | (0x10 if align else 0) | (0x20 if moved else 0) | \
            (0x40 if bad_icv else 0) | (0x80 if new_burst else 0)
        return bytes([kind]) + struct.pack("<QH", seq, len(plaintext)) + plaintext

    def trailer(inner, nh, block):
        pad = (-(len(inner) + 2)) % block
        return inner + bytes(range(1, pad + 1)) + bytes([pad, nh])

    def inner4(k, dst="10.2.0.9", n=32):
        return bytes(IP(src="10.1.%d.5" % k, dst=dst) / UDP(sport=1000, dport=2000) /
                     Raw(b"x" * n))

    inner6 = bytes(IPv6(src="fd00:1::5", dst="fd00:2::9") / UDP(sport=1000, dport=2000) /
                   Raw(b"y" * 32))
    s = {}
    # Plaintexts for the harness to encrypt: each SA, good and bad trailers.
    for k, block in ((0, 4), (1, 16), (2, 4), (3, 4)):
        s["enc-sa%d" % k] = enc(k, 1, trailer(inner4(k), 4, block))
    s["enc-sa4-v6"] = enc(4, 1, trailer(inner6, 41, 4))
    s["enc-esn-high"] = enc(2, (1 << 32) + 7, trailer(inner4(2), 4, 4))
    s["enc-replay"] = enc(0, 5, trailer(inner4(0), 4, 4)) * 2 + enc(0, 4, trailer(inner4(0), 4, 4))
    s["enc-replay-bursts"] = enc(0, 9, trailer(inner4(0), 4, 4), new_burst=True) + \
        enc(0, 9, trailer(inner4(0), 4, 4))
    s["enc-window-edge"] = enc(0, 200, trailer(inner4(0), 4, 4)) + \
        enc(0, 136, trailer(inner4(0), 4, 4)) + enc(0, 137, trailer(inner4(0), 4, 4))
    s["enc-padlen-too-big"] = enc(0, 1, inner4(0) + bytes([1, 2, 200, 4]))
    s["enc-pad-not-monotonic"] = enc(0, 1, inner4(0) + bytes([1, 3, 2, 4]))
    s["enc-nh-59"] = enc(0, 1, trailer(b"", 59, 4))
    s["enc-nh-unknown"] = enc(0, 1, trailer(inner4(0), 17, 4))
    s["enc-inner-mismatch"] = enc(0, 1, trailer(inner4(1), 4, 4))
    s["enc-blocked"] = enc(0, 1, trailer(inner4(0, dst="10.2.9.1"), 4, 4))
    s["enc-solicit"] = enc(0, 1, trailer(inner4(0, dst="10.2.0.77"), 4, 4))
    s["enc-cbc-ragged"] = enc(1, 1, trailer(inner4(1, n=30), 4, 4), align=False)
    s["enc-bad-icv"] = enc(0, 1, trailer(inner4(0), 4, 4), bad_icv=True)
    s["enc-natt-moved"] = enc(3, 1, trailer(inner4(3), 4, 4), moved=True)
    s["enc-empty"] = enc(0, 1, b"")
    s["enc-ttl1"] = enc(0, 1, trailer(bytes(IP(src="10.1.0.5", dst="10.2.0.9", ttl=1) /
                                             ICMP()), 4, 4))
    s["enc-burst"] = b"".join(enc(k % 4, 1 + k, trailer(inner4(k % 4), 4, 16)) for k in range(12))
    # Raw frames: ESP that scapy encrypted (its IPv4 and IPv6 ESP without
    # NAT-T are right; see TESTING.md), and what else arrives on a port.
    gcm = SecurityAssociation(ESP, spi=0x1000, crypt_algo="AES-GCM", crypt_key=gcm_key,
                              tunnel_header=IP(src="192.0.2.2", dst="192.0.2.1"))
    cbc = SecurityAssociation(ESP, spi=0x1001, crypt_algo="AES-CBC", crypt_key=cbc_key,
                              auth_algo="SHA2-256-128", auth_key=hmac_key,
                              tunnel_header=IP(src="192.0.2.2", dst="192.0.2.1"))
    gcm6 = SecurityAssociation(ESP, spi=0x1004, crypt_algo="AES-GCM", crypt_key=gcm_key,
                               tunnel_header=IPv6(src="2001:db8:1::2", dst="2001:db8:1::1"))
    s["raw-scapy-gcm"] = raw(eth / gcm.encrypt(IP(inner4(0)), seq_num=3, iv=b"\1" * 8))
    s["raw-scapy-cbc"] = raw(eth / cbc.encrypt(IP(inner4(1)), seq_num=3, iv=b"\2" * 16))
    s["raw-scapy-gcm6"] = raw(eth / gcm6.encrypt(IPv6(inner6), seq_num=3, iv=b"\3" * 8))
    # ESP in IPv4 fragments (reassembled before decryption), in order and not.
    frags = fragment(gcm.encrypt(IP(inner4(0, n=200)), seq_num=4, iv=b"\4" * 8), fragsize=96)
    s["raw-esp-fragments"] = b"".join(raw(eth / f) for f in frags)
    s["raw-esp-fragments-reversed"] = b"".join(raw(eth / f) for f in reversed(frags))
    s["raw-esp-unknown-spi"] = raw(eth / IP(src="192.0.2.2", dst="192.0.2.1", proto=50) /
                                   Raw(struct.pack("!II", 0x9999, 1) + b"z" * 40))
    s["raw-esp-short"] = raw(eth / IP(src="192.0.2.2", dst="192.0.2.1", proto=50) / Raw(b"\0\0"))
    s["raw-esp-transit"] = raw(eth / IP(src="192.0.2.2", dst="10.2.0.9", proto=50) /
                               Raw(struct.pack("!II", 0x1000, 1) + b"z" * 40))
    s["raw-natt-keepalive"] = raw(eth / IP(src="192.0.2.2", dst="192.0.2.1") /
                                  UDP(sport=4500, dport=4500) / Raw(b"\xff"))
    s["raw-ike"] = raw(eth / IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=4500, dport=4500) /
                       Raw(b"\0\0\0\0" + b"i" * 40))
    s["raw-natt-esp"] = raw(eth / IP(src="192.0.2.2", dst="192.0.2.1") /
                            UDP(sport=4500, dport=4500, chksum=0) /
                            Raw(struct.pack("!II", 0x1003, 1) + b"q" * 48))
    s["raw-arp"] = raw(Ether(src="02:00:00:00:00:02", dst="ff:ff:ff:ff:ff:ff") /
                       ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="192.0.2.2", pdst="192.0.2.1"))
    s["raw-nd-ns"] = raw(Ether(src="02:00:00:00:00:02", dst="33:33:ff:00:00:01") /
                         IPv6(src="2001:db8:1::2", dst="ff02::1:ff00:1", hlim=255) /
                         ICMPv6ND_NS(tgt="2001:db8:1::1") /
                         ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02"))
    # A unicast NUD probe: no option, answered by a longer advertisement.
    s["raw-nd-nud-probe"] = raw(eth / IPv6(src="2001:db8:1::2", dst="2001:db8:1::1", hlim=255) /
                                ICMPv6ND_NS(tgt="2001:db8:1::1"))
    # Ethernet padding after a short packet: cut, not forwarded.
    s["raw-padded"] = raw(bytes(eth / IP(src="192.0.2.2", dst="10.2.0.9") / UDP() /
                                Raw(b"p" * 10)) + b"\0" * 30)
    s["raw-lan-forward"] = raw(Ether(src="02:00:00:00:00:09", dst="02:00:00:00:00:01") /
                               IP(src="10.2.0.9", dst="10.1.0.5") / TCP(), lan=True)
    s["raw-ipv4-options"] = raw(eth / IP(src="192.0.2.2", dst="192.0.2.1", ihl=6,
                                         options=b"\x01\x01\x01\x00", proto=50) /
                                Raw(struct.pack("!II", 0x1000, 1) + b"o" * 40))
    s["raw-v6-short"] = raw(Ether(src="02:00:00:00:00:02", type=0x86dd) / Raw(b"\x60" + b"\0" * 21))
    s["raw-not-ip"] = raw(Ether(type=0x88b5) / Raw(b"n" * 50))
    return write_seeds(d, s)


# ---- fuzz_conf ----

def make_conf():
    d = fresh_dir("fuzz_conf")
    n = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "conf", "*.conf"))):
        shutil.copy(path, os.path.join(d, os.path.basename(path)))
        n += 1
    small = {
        "port-addrs": "[port 0]\nipv4 = 192.0.2.1/24\nipv6 = 2001:db8:1::1/64 fd00::1/64\n"
                      "mtu = 1500\n",
        "port-exception": "[port 1]\nipv4 = 10.0.0.1/24\nexception = xg-wan\n",
        "routes": "[route a]\nprefix = 10.9.0.0/16\nvia = 10.0.0.2\nport = 1\n"
                  "[route b]\nprefix = default6\nport = 0\n",
        "neigh": "[neighbour n]\naddress = 10.0.0.2\nmac = 02:00:00:00:00:02\nport = 1\n",
        "worker": "[worker 1]\nrx = 0:0 1:0\n[worker 2]\nrx = 0:1\n",
        "bad-section": "[port 99]\nipv4 = 1.2.3.4/33\n",
        "bad-line": "[port 0]\nipv4\n",
        "unterminated": "[port 0\n",
        "long-value": "[port 0]\nipv4 = " + "1" * 300 + "\n",
        "comments": "; comment\n# another\n[port 0] ; trailing\nipv4 = 192.0.2.1/24 # x\n",
    }
    for name, text in small.items():
        with open(os.path.join(d, name + ".conf"), "w") as f:
            f.write(text)
        n += 1
    return n


if __name__ == "__main__":
    print("fuzz_conf: %d seeds" % make_conf())
    print("fuzz_esp_in: %d seeds" % make_esp())
    print("fuzz_xfrm: %d seeds" % make_xfrm())
