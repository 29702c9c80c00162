# SPDX-License-Identifier: BSD-3-Clause
"""The crypto-only ceiling: dpdk-test-crypto-perf's throughput test on the
crypto_aesni_mb PMD, one worker lcore (1), for the lab's two algorithms.

Buffer sizes are the ESP cipher payload a gateway encrypts for a frame of
the lab (traffic.py sizes): the inner IP packet (frame - 14) plus ESP
trailer, padded to 4 bytes (GCM) or 16 bytes (CBC): 64 B -> 52 / 64,
512 B -> 500 / 512, 570 B -> 560 / 560, 1420 B -> 1408 / 1408.  GCM also
authenticates an 8-byte AAD (SPI, sequence number) as ESP does.  For CBC,
crypto-perf authenticates the same buffer it encrypts, so the HMAC input is
24 bytes (ESP header + IV) shorter than in real ESP: a slightly optimistic
ceiling.  The imix figure is computed from the per-size cycles (7:4:1),
not measured.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import traffic  # noqa: E402

BINARY = "dpdk-test-crypto-perf"
EAL = ["-l", "0,1", "-m", "512", "--no-pci", "--vdev", "crypto_aesni_mb0"]
# Set by the harness once it has hugepages mounted (as for the gateways).
HUGEPAGES = False
ALG_ARGS = {
    "gcm": ["--optype", "aead", "--aead-algo", "aes-gcm", "--aead-op",
            "encrypt", "--aead-key-sz", "16", "--aead-iv-sz", "12",
            "--aead-aad-sz", "8", "--digest-sz", "16"],
    "cbc": ["--optype", "cipher-then-auth", "--cipher-algo", "aes-cbc",
            "--cipher-op", "encrypt", "--cipher-key-sz", "16",
            "--cipher-iv-sz", "16", "--auth-algo", "sha2-256-hmac",
            "--auth-op", "generate", "--auth-key-sz", "32",
            "--digest-sz", "16"],
}


def cipher_len(frame_len, alg):
    """Bytes of ESP payload encrypted for a plaintext frame (tunnel mode:
    the inner IP packet, padding, pad length and next header)."""
    block = 4 if alg == "gcm" else 16
    return -(-(frame_len - traffic.ETH_LEN + 2) // block) * block


def run(alg, frame_sizes=(64, 512, 570, 1420), total_ops=3000000,
        burst=32, prefix="xgp-ceiling"):
    """{frame size: dict(buffer=, mops=, cycles=)} for one algorithm."""
    bufs = [cipher_len(f, alg) for f in frame_sizes]
    eal = EAL if HUGEPAGES else EAL + ["--no-huge"]
    cmd = ([BINARY] + eal + ["--file-prefix", prefix, "--",
                             "--devtype", "crypto_aesni_mb",
                             "--ptest", "throughput", "--silent",
                             "--csv-friendly",
                             "--total-ops", str(total_ops),
                             "--burst-sz", str(burst),
                             "--buffer-sz", ",".join(map(str, bufs))]
           + ALG_ARGS[alg])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError("crypto-perf failed:\n" + out.stdout[-2000:]
                           + out.stderr[-2000:])
    rows = _parse(out.stdout)
    res = {}
    for f, b in zip(frame_sizes, bufs):
        res[f] = dict(buffer=b, mops=rows[b][0], cycles=rows[b][1])
    return res


def _parse(text):
    """{buffer size: (Mops, cycles/buf)} from the --csv-friendly table:
    lcore,Buffer Size,Burst Size,Enqueued,Dequeued,Failed Enq,Failed Deq,
    Ops(Millions),Throughput(Gbps),Cycles/Buf."""
    rows = {}
    for line in text.splitlines():
        f = line.strip().split(",")
        if len(f) == 10 and f[0].isdigit():
            if int(f[5]) or int(f[6]):
                raise RuntimeError("crypto-perf failed ops: " + line)
            rows[int(f[1])] = (float(f[7]), float(f[9]))
    if not rows:
        raise RuntimeError("no crypto-perf results in:\n" + text[-2000:])
    return rows


def imix(res, hz=None):
    """Imix (7:4:1 of 64/570/1420) cycles/op and Mops from per-size cycles;
    Mops are scaled from the 64-byte row's cycles-to-Mops ratio when the
    TSC rate is not given."""
    cyc = sum(res[f]["cycles"] for f in traffic.IMIX) / len(traffic.IMIX)
    hz = hz or res[64]["mops"] * 1e6 * res[64]["cycles"]
    return dict(cycles=cyc, mops=hz / cyc / 1e6)


if __name__ == "__main__":
    for alg in ("gcm", "cbc"):
        r = run(alg)
        for f, v in r.items():
            print("%s frame %4d B (buffer %4d B): %6.3f Mops %7.1f cycles/op"
                  % (alg, f, v["buffer"], v["mops"], v["cycles"]))
        m = imix(r)
        print("%s imix (derived): %6.3f Mops %7.1f cycles/op"
              % (alg, m["mops"], m["cycles"]))
