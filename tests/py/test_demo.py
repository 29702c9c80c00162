# SPDX-License-Identifier: BSD-3-Clause
"""The README's first command ends in scripts/demo.sh: it must keep working."""
import os
import subprocess

import conftest


def test_demo_site_to_site():
    p = subprocess.run(["sh", os.path.join(conftest.ROOT, "scripts", "demo.sh")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "3 packets transmitted, 3 received" in p.stdout, p.stdout
    assert "host B fetched 1048576 bytes from host A over TCP" in p.stdout, p.stdout
    assert "XgOutEncrypted" in p.stdout and "XgInDecrypted" in p.stdout
    # It cleaned up after itself.
    assert "xgdemo" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout
    assert subprocess.run(["ip", "link", "show", "xgdemo-tap"], capture_output=True).returncode
