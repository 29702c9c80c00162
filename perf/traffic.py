# SPDX-License-Identifier: BSD-3-Clause
"""Test traffic for the perf lab: pcap files for net_pcap's rx side.

Both gateways (xfrmgw and DPDK's ipsec-secgw) see the same fixed topology,
described by the constants below: port 0 is net_pcap (rx from a capture,
usually with infinite_rx=1), port 1 is net_null (tx); one direction per run.

* Outbound: plaintext Ether/IPv4(10.1.0.1 -> 100.64.0.0+k)/UDP(1024->1024)/
  zeros for SA k; SA k is a tunnel 192.0.2.1 -> 192.0.2.2, SPI 0x10000+k,
  policy k is "src 10.1.0.0/16 dst 100.64.0.0+k/32 out".
* Inbound: Ether/IPv4(192.0.2.2 -> 192.0.2.1)/ESP(SPI 0x10000+k), inner
  IPv4(100.64.0.0+k -> 10.1.0.1)/UDP(1024->1024)/zeros, routed to
  10.1.0.0/16 out of port 1.

A "size" is the length of the plaintext Ethernet frame without FCS: 64, 512,
1420, or "imix" (7:4:1 of 64/570/1420 bytes).  Packet j belongs to SA
j % nsa.

ESP packets are assembled as bytes and encrypted with `cryptography`
directly (scapy per packet is a hundred times slower); `self_check` then
decrypts the first packets with scapy's SecurityAssociation, an independent
implementation, so a generator bug cannot hide behind a gateway bug.
"""
import hashlib
import hmac
import ipaddress
import os
import struct


# --- topology -------------------------------------------------------------
PORT_PCAP = 0              # net_pcap: rx from the capture
PORT_NULL = 1              # net_null: tx sink
MAC_SRC = bytes.fromhex("020000000001")
MAC_DST = bytes.fromhex("020000000010")
PT_SRC = "10.1.0.1"        # protected host (outbound source, inbound dest)
PT_NET = "10.1.0.0/16"     # protected network (policy source, inbound route)
PT_DST_BASE = "100.64.0.0"  # remote host of SA k: PT_DST_BASE + k
TUN_LOCAL = "192.0.2.1"    # this gateway's tunnel endpoint
TUN_REMOTE = "192.0.2.2"   # the peer's tunnel endpoint
SPI_BASE = 0x10000         # SPI of SA k: SPI_BASE + k
UDP_PORT = 1024
TTL = 64
IP_MTU = 1500

# --- algorithms -----------------------------------------------------------
GCM_KEY = bytes(range(16))
GCM_SALT = bytes.fromhex("a0a1a2a3")      # XFRM key = GCM_KEY + GCM_SALT
CBC_KEY = bytes(range(16))
HMAC_KEY = bytes(range(32, 64))           # HMAC-SHA256, ICV truncated to 128
ICV_LEN = 16
ALGS = ("gcm", "cbc")

SIZES = (64, 512, 1420, "imix")
IMIX = (64, 570, 64, 570, 64, 1420, 64, 570, 64, 570, 64, 64)   # 7:4:1
MAX_CAPTURE = 8192
REPLAY_PKTS = 1 << 20

ETH_LEN, IP_LEN, UDP_LEN, ESP_HDR = 14, 20, 8, 8
ETHERTYPE_IPV4 = b"\x08\x00"
PROTO_UDP, PROTO_ESP, NH_IPV4 = 17, 50, 4


def ip4(addr):
    return ipaddress.IPv4Address(addr).packed


def sa_dst(k):
    """Inner remote address of SA k (100.64.0.0 + k)."""
    return str(ipaddress.IPv4Address(PT_DST_BASE) + k)


def spi(k):
    return SPI_BASE + k


def pattern(size):
    """The repeating list of frame lengths of a size name."""
    if size == "imix":
        return IMIX
    size = int(size)
    if size < ETH_LEN + IP_LEN + UDP_LEN:
        raise ValueError("frame too short: %d" % size)
    return (size,)


def default_npkts(nsa, size=64):
    """Packets in a looping capture: max(nsa, 256), a multiple of nsa (each
    SA appears equally often) and of the imix period where that fits, capped
    at MAX_CAPTURE.  Beyond the cap (e.g. 100000 SAs) the capture touches only
    npkts distinct SAs (0..npkts-1) while the gateway's tables hold all nsa:
    the lookup structures are full-size but the working set is npkts SAs."""
    per = len(pattern(size))
    unit = nsa * per // _gcd(nsa, per)
    if unit > MAX_CAPTURE:
        unit = nsa
    if unit > MAX_CAPTURE:
        return MAX_CAPTURE
    n = max(unit, 256)
    n = -(-n // unit) * unit
    while n > MAX_CAPTURE and n > unit:
        n -= unit
    return n


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


# --- header builders ------------------------------------------------------
def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4_header(src, dst, proto, payload_len):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, IP_LEN + payload_len, 0, 0,
                      TTL, proto, 0, ip4(src), ip4(dst))
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]


def udp_packet(src, dst, frame_len):
    """IPv4/UDP/zeros whose Ethernet frame would be frame_len bytes."""
    plen = frame_len - ETH_LEN - IP_LEN - UDP_LEN
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, PROTO_UDP,
                                               UDP_LEN + plen)
    udp = struct.pack("!HHHH", UDP_PORT, UDP_PORT, UDP_LEN + plen, 0)
    ck = csum(pseudo + udp + bytes(plen)) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", ck)
    return ipv4_header(src, dst, PROTO_UDP, UDP_LEN + plen) + udp + bytes(plen)


def ether(payload):
    return MAC_DST + MAC_SRC + ETHERTYPE_IPV4 + payload


def outbound_frame(k, frame_len):
    return ether(udp_packet(PT_SRC, sa_dst(k), frame_len))


def inner_packet(k, frame_len):
    """The plaintext inner IP packet of an inbound ESP packet of SA k."""
    return udp_packet(sa_dst(k), PT_SRC, frame_len)


# --- ESP ------------------------------------------------------------------
class _EvpCipher:
    """A reused OpenSSL EVP context from cryptography's own binding.  The
    high-level AESGCM/Cipher objects build a fresh context per call (about
    20 us here); re-keying only the IV of one context is ~8x faster, which
    makes the 1M-packet replay capture take seconds."""

    GET_TAG = 0x10     # EVP_CTRL_AEAD_GET_TAG

    def __init__(self, name, key):
        from cryptography.hazmat.bindings.openssl.binding import Binding
        lib, ffi = Binding.lib, Binding.ffi
        self.lib, self.ffi = lib, ffi
        self.ctx = ffi.gc(lib.EVP_CIPHER_CTX_new(), lib.EVP_CIPHER_CTX_free)
        cipher = lib.EVP_get_cipherbyname(name.encode())
        if cipher == ffi.NULL or lib.EVP_CipherInit_ex(
                self.ctx, cipher, ffi.NULL, key, ffi.NULL, 1) != 1:
            raise RuntimeError("EVP init failed for %s" % name)
        lib.EVP_CIPHER_CTX_set_padding(self.ctx, 0)   # ESP pads itself
        self.buf = ffi.new("unsigned char[]", 4096)
        self.outl = ffi.new("int *")

    def encrypt(self, iv, data, aad=None):
        """Ciphertext (plus the 16-byte tag when aad is given: GCM)."""
        lib, ffi, ctx, buf, outl = (self.lib, self.ffi, self.ctx, self.buf,
                                    self.outl)
        ok = lib.EVP_CipherInit_ex(ctx, ffi.NULL, ffi.NULL, ffi.NULL, iv, 1)
        if aad is not None:
            ok &= lib.EVP_CipherUpdate(ctx, ffi.NULL, outl, aad, len(aad))
        ok &= lib.EVP_CipherUpdate(ctx, buf, outl, data, len(data))
        n = outl[0]
        ok &= lib.EVP_CipherFinal_ex(ctx, buf + n, outl)
        if aad is not None:
            ok &= lib.EVP_CIPHER_CTX_ctrl(ctx, self.GET_TAG, ICV_LEN, buf + n)
            n += ICV_LEN
        if ok != 1:
            raise RuntimeError("EVP encrypt failed")
        return ffi.buffer(buf, n)[:]


class EspEncryptor:
    """Tunnel-mode ESP encapsulation of an inner IPv4 packet (RFC 4303)."""

    def __init__(self, alg):
        if alg not in ALGS:
            raise ValueError("alg must be one of %s" % (ALGS,))
        self.alg = alg
        self.block = 4 if alg == "gcm" else 16
        self.iv_len = 8 if alg == "gcm" else 16
        if alg == "gcm":
            self.evp = _EvpCipher("aes-128-gcm", GCM_KEY)
        else:
            self.evp = _EvpCipher("aes-128-cbc", CBC_KEY)
        self.hmac = hmac.new(HMAC_KEY, digestmod=hashlib.sha256)
        self._ivs = b""
        self._outer = {}
        self._trailer = {}

    def overhead(self, inner_len):
        body = -(-(inner_len + 2) // self.block) * self.block
        return IP_LEN + ESP_HDR + self.iv_len + body + ICV_LEN - inner_len

    def _random_iv(self):
        # One urandom call per 4096 IVs: per-packet syscalls would dominate.
        if not self._ivs:
            self._ivs = os.urandom(16 * 4096)
        iv, self._ivs = self._ivs[:16], self._ivs[16:]
        return iv

    def _pad(self, inner_len):
        """RFC 4303 padding (1, 2, 3, ...), pad length, next header."""
        t = self._trailer.get(inner_len)
        if t is None:
            padlen = -(inner_len + 2) % self.block
            t = self._trailer[inner_len] = (bytes(range(1, padlen + 1)) +
                                            bytes((padlen, NH_IPV4)))
        return t

    def payload(self, spi_, seq, inner):
        """ESP header + IV + ciphertext + ICV for the inner packet."""
        plain = inner + self._pad(len(inner))
        hdr = struct.pack("!II", spi_, seq)
        if self.alg == "gcm":
            iv = struct.pack("!Q", seq)      # sequential IV, as gateways do
            return hdr + iv + self.evp.encrypt(GCM_SALT + iv, plain, hdr)
        iv = self._random_iv()
        body = hdr + iv + self.evp.encrypt(iv, plain)
        mac = self.hmac.copy()
        mac.update(body)
        return body + mac.digest()[:ICV_LEN]

    def frame(self, spi_, seq, inner):
        esp = self.payload(spi_, seq, inner)
        outer = self._outer.get(len(esp))
        if outer is None:
            outer = self._outer[len(esp)] = ether(ipv4_header(
                TUN_REMOTE, TUN_LOCAL, PROTO_ESP, len(esp)))
        return outer + esp


# --- pcap files -----------------------------------------------------------
PCAP_HDR = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def write_pcap(path, frames):
    """Write frames atomically (a cache hit never sees a partial file)."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb", buffering=1 << 20) as f:
        f.write(PCAP_HDR)
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000,
                                len(fr), len(fr)))
            f.write(fr)
    os.replace(tmp, path)
    return path


def read_pcap(path, limit=None):
    """The frames of a classic (microsecond, little-endian) pcap file."""
    out = []
    with open(path, "rb") as f:
        hdr = f.read(24)
        if struct.unpack("<I", hdr[:4])[0] not in (0xA1B2C3D4, 0xA1B23C4D):
            raise ValueError("%s: not a little-endian pcap" % path)
        while limit is None or len(out) < limit:
            rec = f.read(16)
            if len(rec) < 16:
                break
            n = struct.unpack("<IIII", rec)[2]
            out.append(f.read(n))
    return out


def count_pcap(path):
    """Frames in a pcap file, walking record headers without reading data."""
    n, off = 0, 24
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while off + 16 <= size:
            f.seek(off + 8)
            off += 16 + struct.unpack("<I", f.read(4))[0]
            n += 1
    return n


# --- captures -------------------------------------------------------------
def outbound_frames(size, nsa, npkts):
    pat = pattern(size)
    cache = {}
    for j in range(npkts):
        key = (j % nsa, pat[j % len(pat)])
        fr = cache.get(key)
        if fr is None:
            fr = cache[key] = outbound_frame(*key)
        yield fr


def inbound_frames(size, alg, nsa, npkts, seq_start=1):
    """ESP frames; packet j is SA j % nsa with sequence number
    seq_start + j // nsa, so sequence numbers increase strictly per SA."""
    pat = pattern(size)
    esp = EspEncryptor(alg)
    inner = {}
    for j in range(npkts):
        k, flen = j % nsa, pat[j % len(pat)]
        pkt = inner.get((k, flen))
        if pkt is None:
            pkt = inner[(k, flen)] = inner_packet(k, flen)
        seq = seq_start + j // nsa
        if seq > 0xFFFFFFFF:
            raise ValueError("sequence number beyond 32 bits")
        yield esp.frame(spi(k), seq, pkt)


def check_mtu(size, alg):
    esp = EspEncryptor(alg)
    for flen in set(pattern(size)):
        ip_len = flen - ETH_LEN
        if ip_len + esp.overhead(ip_len) > IP_MTU:
            raise ValueError("%s frame %d exceeds the IP MTU after ESP"
                             % (alg, flen))


def capture(scratch, direction, size, alg, nsa, npkts=None, seq_start=1):
    """Path of a cached capture in scratch, generated and checked if new."""
    npkts = npkts or default_npkts(nsa, size)
    check_mtu(size, alg)
    os.makedirs(scratch, exist_ok=True)
    if direction == "out":
        name = "out-%s-%dsa-%dp.pcap" % (size, nsa, npkts)
        frames = outbound_frames(size, nsa, npkts)
    elif direction == "in":
        name = "in-%s-%s-%dsa-%dp-s%d.pcap" % (alg, size, nsa, npkts,
                                              seq_start)
        frames = inbound_frames(size, alg, nsa, npkts, seq_start)
    else:
        raise ValueError("direction must be 'in' or 'out'")
    path = os.path.join(scratch, name)
    if not os.path.exists(path):
        write_pcap(path, frames)
        if direction == "in":
            self_check(path, size, alg, nsa, seq_start)
    return path


def replay_capture(scratch, nsa, alg="gcm", size=64, npkts=REPLAY_PKTS,
                   seq_start=1):
    """A one-pass inbound capture (run without infinite_rx) whose sequence
    numbers increase strictly per SA, to measure the replay-check cost."""
    return capture(scratch, "in", size, alg, nsa, npkts, seq_start)


# --- independent check with scapy -----------------------------------------
def scapy_sa(alg, k, local_is_src):
    """scapy SecurityAssociation for SA k; local_is_src: outbound direction."""
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP, SecurityAssociation
    src, dst = (TUN_LOCAL, TUN_REMOTE) if local_is_src else (TUN_REMOTE,
                                                             TUN_LOCAL)
    if alg == "gcm":
        return SecurityAssociation(ESP, spi=spi(k), crypt_algo="AES-GCM",
                                   crypt_key=GCM_KEY + GCM_SALT,
                                   tunnel_header=IP(src=src, dst=dst))
    return SecurityAssociation(ESP, spi=spi(k), crypt_algo="AES-CBC",
                               crypt_key=CBC_KEY, auth_algo="SHA2-256-128",
                               auth_key=HMAC_KEY,
                               tunnel_header=IP(src=src, dst=dst))


def scapy_decrypt(frame, alg):
    """(SPI, seq, inner IP bytes) of an ESP frame, decrypted by scapy."""
    import scapy.layers.ipsec  # noqa: F401 (binds ESP to IP proto 50)
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    ip = Ether(frame)[IP]
    esp_spi, seq = struct.unpack("!II", bytes(ip.payload)[:8])
    k = esp_spi - SPI_BASE
    local_is_src = ip.src == TUN_LOCAL
    inner = scapy_sa(alg, k, local_is_src).decrypt(ip)
    return esp_spi, seq, bytes(inner)


def forwarded(frame, direction, alg, nsa, size=64):
    """(what a gateway sent, what went in) for a frame a gateway sent in
    the lab: outbound, the inner packet scapy decrypts and the plaintext of
    its SA; inbound, the plaintext and the inner packet of the ESP it came
    from. Both as IP packets; the SA index must be one of the nsa."""
    if direction == "out":
        esp_spi, seq, got = scapy_decrypt(frame, alg)
        k = esp_spi - SPI_BASE
        assert 0 <= k < nsa and seq >= 1, (esp_spi, seq)
        return got, outbound_frame(k, size)[ETH_LEN:]
    got = frame[ETH_LEN:]
    k = int.from_bytes(got[12:16], "big") - int.from_bytes(ip4(PT_DST_BASE), "big")
    assert 0 <= k < nsa, got.hex()
    return got, inner_packet(k, size)


def self_check(path, size, alg, nsa, seq_start=1, n=8):
    """Decrypt the first n frames of an inbound capture with scapy and
    compare with the plaintext the generator meant to encrypt."""
    pat = pattern(size)
    for j, fr in enumerate(read_pcap(path, n)):
        esp_spi, seq, inner = scapy_decrypt(fr, alg)
        k = j % nsa
        assert esp_spi == spi(k), (j, hex(esp_spi))
        assert seq == seq_start + j // nsa, (j, seq)
        assert inner == inner_packet(k, pat[j % len(pat)]), \
            "frame %d differs" % j
    return True


if __name__ == "__main__":
    import sys
    import time
    scratch = sys.argv[1] if len(sys.argv) > 1 else "/tmp/xgp"
    for size in SIZES:
        for alg in ALGS:
            check_mtu(size, alg)
    for alg in ALGS:
        for nsa in (1, 1000):
            t = time.time()
            p = capture(scratch, "in", "imix", alg, nsa, seq_start=5)
            print("%s %.2fs" % (p, time.time() - t))
    p = capture(scratch, "out", 64, "gcm", 1)
    from scapy.layers.l2 import Ether
    from scapy.layers.inet import UDP
    pkt = Ether(read_pcap(p, 1)[0])
    assert len(pkt) == 64 and pkt[UDP].dport == UDP_PORT
    print(p, "ok")
    for alg in ALGS:
        t = time.time()
        p = replay_capture(scratch, 1000, alg)
        print("%s %.2fs %d MB" % (p, time.time() - t,
                                  os.path.getsize(p) >> 20))
