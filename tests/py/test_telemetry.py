# SPDX-License-Identifier: BSD-3-Clause
"""rte_telemetry endpoints against real traffic: /xfrmgw/sa (list and one
SA: packets, bytes, drops by reason, replay state, lcores), /xfrmgw/policy,
/xfrmgw/port and /xfrmgw/lcore. Every figure is checked against what was
sent, what `ip -s xfrm state` says and /xfrmgw/stats; one query goes
through DPDK's own dpdk-telemetry.py."""
import json
import os
import re
import socket
import subprocess

from scapy.all import Ether, IP, ICMP, UDP, Raw
from scapy.layers.ipsec import ESP, SecurityAssociation

from test_gateway import (GW_WAN, KEY, KEY_B, LANHOST, PEER, exchange, install_tunnel, ipx,  # noqa: F401
                          mac, start_gateway, stop_gateway, telemetry, topo)


def tel_raw(cmd):
    """The reply's value, or None where rte_telemetry answers null (an
    error from the handler)."""
    path = "/var/run/dpdk/xgt%d/dpdk_telemetry.v2" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.recv(16384)
    s.send(cmd.encode())
    text = s.recv(65536).decode()
    s.close()
    return text, json.loads(text)


def esp_in_with_drops(t, tmp_path, extra=()):
    """4 ESP packets on SA 0x200 (GCM), then the first again (a replay) and
    one with a bad ICV, then the IP packets @p extra; the 4 must arrive."""
    gw_wan_mac, wan_mac = mac(None, t["wan_g"]), mac(t["wan_ns"], t["wan_t"])
    sa = SecurityAssociation(ESP, spi=0x200, crypt_algo="AES-GCM", crypt_key=KEY_B,
                             tunnel_header=IP(src=PEER, dst=GW_WAN))
    back = [IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=9) / Raw(b"r" * i)
            for i in range(4)]
    enc = [sa.encrypt(x, seq_num=i + 1) for i, x in enumerate(back)]
    raw = bytearray(bytes(sa.encrypt(back[0], seq_num=9)))
    raw[-1] ^= 0xff
    frames = [Ether(src=wan_mac, dst=gw_wan_mac) / x
              for x in enc + [enc[0], IP(bytes(raw))] + list(extra)]
    got = [f for f in exchange(t, tmp_path, "wan", frames)
           if f.haslayer(UDP) and f[IP].dst == LANHOST]
    assert len(got) == 4


def test_sa_policy_port_lcore(topo, tmp_path):
    t = topo
    p, log, env = start_gateway(tmp_path, t)
    try:
        install_tunnel(env, window=32)
        # A tunnel SA whose selector the inbound packets will not fit.
        ipx(env, "xfrm state add src %s dst %s proto esp spi 0x201 reqid 3 mode tunnel "
            "sel src 10.9.0.0/16 dst 10.1.0.0/16 aead 'rfc4106(gcm(aes))' %s 128"
            % (PEER, GW_WAN, KEY))
        gw_lan_mac, lan_mac = mac(None, t["lan_g"]), mac(t["lan_ns"], t["lan_t"])

        lst = telemetry("/xfrmgw/sa")
        assert lst == {"count": 3, "truncated": 0,
                       "sas": ["0x00000100", "0x00000200", "0x00000201"]}, lst
        pols = telemetry("/xfrmgw/policy")
        assert pols["count"] == 2 and len(pols["policies"]) == 2, pols

        # Outbound: 5 packets encrypted on SA 0x100.
        inner = [IP(src=LANHOST, dst="10.2.0.5") / ICMP(id=1, seq=i) / Raw(b"p" * i * 10)
                 for i in range(1, 6)]
        got = [f for f in exchange(t, tmp_path, "lan",
                                   [Ether(src=lan_mac, dst=gw_lan_mac) / x for x in inner])
               if f.haslayer(ESP)]
        assert len(got) == 5
        # Inbound on 0x200: 4 good, 1 replay, 1 bad ICV; on 0x201: 2 whose
        # inner source is outside its selector.
        sa_sel = SecurityAssociation(ESP, spi=0x201, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                     tunnel_header=IP(src=PEER, dst=GW_WAN))
        inner = IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=9) / Raw(b"w")
        esp_in_with_drops(t, tmp_path, [sa_sel.encrypt(inner, seq_num=i + 1) for i in range(2)])

        out = telemetry("/xfrmgw/sa,0x100")
        assert out["dir"] == "out" and out["src"] == GW_WAN and out["dst"] == PEER, out
        assert out["mode"] == "tunnel" and out["reqid"] == 1 and out["proto"] == "esp", out
        assert out["alg"] == "rfc4106(gcm(aes))" and out["offload"] == "cpu", out
        assert out["packets"] == 5 and out["bytes"] == 470, out   # as GETSA counts them
        assert out["replay"]["seq"] == 5, out
        assert set(out["drops"]) >= {"XfrmOutStateSeqError", "XfrmOutStateProtoError",
                                     "XfrmOutStateExpired", "XgOutTooBig"}, out
        assert not any(out["drops"].values()), out
        lcores = {w["lcore"] for w in telemetry("/xfrmgw/lcore").values()}
        assert out["lcores"] and set(out["lcores"]) <= lcores, out

        # The same SA by SPI in decimal and with its destination.
        assert telemetry("/xfrmgw/sa,256,%s" % PEER)["packets"] == 5

        inb = telemetry("/xfrmgw/sa,0x200")
        assert inb["dir"] == "in" and inb["packets"] == 4 and inb["bytes"] == 260, inb
        assert inb["drops"]["XfrmInStateSeqError"] == 1, inb
        assert inb["drops"]["XfrmInStateProtoError"] == 1, inb
        assert inb["replay"] == {"window": 32, "seq": 4, "seq_hi": 0, "replay_dropped": 1}, inb
        sel = telemetry("/xfrmgw/sa,0x201")
        assert sel["drops"]["XfrmInStateMismatch"] == 2 and sel["packets"] == 2, sel

        # Per-SA drops add up to the global counters.
        stats = telemetry("/xfrmgw/stats")
        assert stats["XfrmInStateSeqError"] == 1 and stats["XfrmInStateProtoError"] == 1, stats
        assert stats["XfrmInStateMismatch"] == 2, stats

        # ... and agree with ip -s xfrm state.
        text = ipx(env, "-s xfrm state get src %s dst %s proto esp spi 0x200" % (PEER, GW_WAN))
        assert re.search(r"\b4\(packets\)", text) and "replay 1 failed 1" in text, text

        # Policies: the out policy uses SA 0x100.
        found = {}
        for idx in telemetry("/xfrmgw/policy")["policies"]:
            pol = telemetry("/xfrmgw/policy,%d" % idx)
            found[pol["dir"]] = pol
        assert found["out"]["src"] == "10.1.0.0/16" and found["out"]["dst"] == "10.2.0.0/16"
        assert found["out"]["sa"] == "0x00000100" and found["out"]["action"] == "allow"
        assert found["out"]["tmpl"] == "esp tunnel %s -> %s reqid 1" % (GW_WAN, PEER), found
        assert found["out"]["use_time"] > 0 and found["fwd"]["sa"] == "", found

        # Ports: configuration and ethdev agree.
        ports = telemetry("/xfrmgw/port")
        assert set(ports) == {"port0", "port1"}, ports
        assert ports["port1"]["addrs"] == GW_WAN + "/24" and ports["port1"]["link"] == 1, ports
        assert ports["port0"]["mac"].lower() == gw_lan_mac.lower(), ports
        eth = telemetry("/ethdev/stats,1")
        assert ports["port1"]["rx_packets"] <= eth["ipackets"], (ports, eth)
        assert ports["port1"]["rx_packets"] >= 8 and ports["port1"]["tx_packets"] >= 5, ports
        assert telemetry("/xfrmgw/port,0")["name"] == "net_af_packet0"

        w = next(iter(telemetry("/xfrmgw/lcore").values()))
        assert w["idle_rounds"] + w["busy_rounds"] == w["rounds"] and w["busy_rounds"] > 0, w
        assert w["busy_ratio_ppm"] == w["busy_rounds"] * 1000000 // w["rounds"], w

        # Bad or unknown parameters: an error (null), and the daemon serves on.
        for cmd in ("/xfrmgw/sa,0x999", "/xfrmgw/sa,zz", "/xfrmgw/sa,0x100,nohost",
                    "/xfrmgw/sa,0x", "/xfrmgw/sa,-1", "/xfrmgw/policy,77777",
                    "/xfrmgw/policy,x", "/xfrmgw/port,9", "/xfrmgw/port,70000"):
            assert tel_raw(cmd)[1][cmd.split(",")[0]] is None, cmd
        assert telemetry("/xfrmgw/sa")["count"] == 3

        # Two SAs with one SPI (other destinations): listed as SPI,DST, each
        # answering as itself; the SPI alone names the lowest destination.
        ipx(env, "xfrm state add src %s dst 198.51.100.7 proto esp spi 0x100 reqid 9 "
            "mode tunnel aead 'rfc4106(gcm(aes))' %s 128" % (GW_WAN, KEY))
        lst = telemetry("/xfrmgw/sa")["sas"]
        assert lst == ["0x00000100,%s" % PEER, "0x00000100,198.51.100.7", "0x00000200",
                       "0x00000201"], lst
        assert telemetry("/xfrmgw/sa,%s" % lst[1])["reqid"] == 9
        one = telemetry("/xfrmgw/sa,0x100")
        assert one["dst"] == PEER and one["same_spi"] == 2 and one["packets"] == 5, one
        ipx(env, "xfrm state delete src %s dst 198.51.100.7 proto esp spi 0x100" % GW_WAN)
        assert "same_spi" not in telemetry("/xfrmgw/sa,0x100")

        # No key in any reply.
        for cmd in ["/xfrmgw/sa", "/xfrmgw/sa,0x100", "/xfrmgw/sa,0x200", "/xfrmgw/policy",
                    "/xfrmgw/port"]:
            text = tel_raw(cmd)[0]
            assert KEY[2:18] not in text.lower() and "00112233" not in text, text

        # DPDK's own client.
        r = subprocess.run(["/usr/bin/dpdk-telemetry.py", "-f", "xgt%d" % os.getpid()],
                           input="/xfrmgw/sa,0x200\nquit\n", capture_output=True, text=True,
                           timeout=30)
        assert '"XfrmInStateSeqError": 1' in r.stdout, r.stdout + r.stderr
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
