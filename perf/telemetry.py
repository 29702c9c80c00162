# SPDX-License-Identifier: BSD-3-Clause
"""A client of DPDK's telemetry socket (the protocol of dpdk-telemetry.py),
shared by the perf harness for both gateways: port counters come from
/ethdev/stats, so xfrmgw and ipsec-secgw are measured the same way."""
import glob
import json
import os
import socket
import time


def socket_path(prefix):
    """The telemetry socket of the DPDK process started with --file-prefix."""
    return os.path.join("/var/run/dpdk", prefix, "dpdk_telemetry.v2")


class Telemetry:
    def __init__(self, path, timeout=30.0):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.s.settimeout(10)
        info = json.loads(self.s.recv(4096).decode())
        self.max_len = info.get("max_output_len", 16384)

    def cmd(self, c):
        """The value of command c, None for a command the process lacks."""
        self.s.send(c.encode())
        return json.loads(self.s.recv(self.max_len).decode()).get(c.split(",")[0])

    def port_stats(self, port):
        return self.cmd("/ethdev/stats,%d" % port)

    def close(self):
        self.s.close()


def remove_stale(prefix, names=("dpdk_telemetry.v2", "mp_socket")):
    """Remove the sockets a DPDK process of this prefix left behind (one
    that was killed leaves them, and the next would look like it)."""
    for path in glob.glob(os.path.join("/var/run/dpdk", prefix, "*")):
        if path.endswith(names):
            try:
                os.unlink(path)
            except OSError:
                pass
