# SPDX-License-Identifier: BSD-3-Clause
"""Two workers, two queues per port (net_af_packet fans flows out like RSS):
outbound flows of one SA are spread over both workers, which must never
hand out a sequence number twice; inbound ESP of one SA stays on one queue.
"""
import re
import time

import pytest

from scapy.all import Ether, IP, UDP, Raw
from scapy.layers.ipsec import ESP, SecurityAssociation

from test_gateway import (GW_LAN, GW_WAN, KEY, KEY_B, LANHOST, PEER, exchange,  # noqa: F401
                          install_tunnel, mac, start_gateway, stop_gateway, telemetry, topo)

CONF = ("[port 0]\nipv4 = %s/24\n[port 1]\nipv4 = %s/24\n"
        "[route remote]\nprefix = 10.2.0.0/16\nvia = %s\nport = 1\n"
        "[neighbour peer]\naddress = %s\nmac = %%(wan)s\nport = 1\n"
        "[neighbour lanhost]\naddress = %s\nmac = %%(lan)s\nport = 0\n"
        "[worker 1]\nrx = 0:0 1:0\n[worker 2]\nrx = 0:1 1:1\n"
        % (GW_LAN, GW_WAN, PEER, PEER, LANHOST))


@pytest.mark.parametrize("crypto", ["aesni_mb", "openssl"])
def test_two_workers(topo, tmp_path, monkeypatch, crypto):  # noqa: F811
    # crypto_openssl has no CPU crypto: each worker then uses its own queue
    # pair of the device (lookaside).
    monkeypatch.setenv("XFRMGW_CRYPTO", crypto)
    t = topo
    p, log, env = start_gateway(tmp_path, t, extra_conf=CONF, lcores="0,1,2@1", qpairs=2)
    try:
        install_tunnel(env, window=64)
        time.sleep(0.3)
        gw_lan, gw_wan = mac(None, t["lan_g"]), mac(None, t["wan_g"])
        lan, wan = mac(t["lan_ns"], t["lan_t"]), mac(t["wan_ns"], t["wan_t"])
        flows = [IP(src=LANHOST, dst="10.2.0.%d" % (1 + i % 50)) /
                 UDP(sport=1000 + i, dport=2000 + i) / Raw(b"w" * 20) for i in range(60)]
        got = [f for f in exchange(t, tmp_path, "lan", [Ether(src=lan, dst=gw_lan) / x
                                                         for x in flows]) if f.haslayer(ESP)]
        seqs = sorted(f[ESP].seq for f in got)
        assert seqs == list(range(1, 61)), seqs
        sa = SecurityAssociation(ESP, spi=0x100, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                 tunnel_header=IP(src=GW_WAN, dst=PEER))
        dports = sorted(sa.decrypt(f[IP])[UDP].dport for f in got)
        assert dports == [2000 + i for i in range(60)]
        sa_in = SecurityAssociation(ESP, spi=0x200, crypt_algo="AES-GCM", crypt_key=KEY_B,
                                    tunnel_header=IP(src=PEER, dst=GW_WAN))
        back = [sa_in.encrypt(IP(src="10.2.0.5", dst=LANHOST) / UDP(sport=7, dport=3000 + i),
                              seq_num=i + 1) for i in range(30)]
        got = exchange(t, tmp_path, "wan", [Ether(src=wan, dst=gw_wan) / e for e in back])
        ports = sorted(f[UDP].dport for f in got if f.haslayer(UDP) and f[IP].dst == LANHOST)
        assert ports == [3000 + i for i in range(30)]
        live = telemetry("/xfrmgw/stats")
        assert live["XgOutEncrypted"] == 60 and live["XgInDecrypted"] == 30, live
    finally:
        rc, text, counters = stop_gateway(p, log)
    assert rc == 0, text
    assert "2 worker(s)" in text
    # Both workers had traffic to handle.
    per = [int(x) for x in re.findall(r"worker \d \(lcore \d\): (\d+) packets received", text)]
    assert len(per) == 2 and min(per) > 0, text
