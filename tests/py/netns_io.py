# SPDX-License-Identifier: BSD-3-Clause
"""Send or capture frames on an interface (run inside a test netns).

  netns_io.py send IFACE IN.pcap
  netns_io.py sniff IFACE SECONDS OUT.pcap
"""
import sys

from scapy.all import conf, rdpcap, sendp, sniff, wrpcap

conf.verb = 0


def main():
    if sys.argv[1] == "send":
        sendp(rdpcap(sys.argv[3]), iface=sys.argv[2], inter=0.01)
    else:
        pkts = sniff(iface=sys.argv[2], timeout=float(sys.argv[3]))
        wrpcap(sys.argv[4], pkts)


if __name__ == "__main__":
    main()
