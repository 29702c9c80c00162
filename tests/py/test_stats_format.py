# SPDX-License-Identifier: BSD-3-Clause
"""The counter list and its text form are Linux 6.1's /proc/net/xfrm_stat."""
import os
import re
import subprocess

import conftest
import uml

TOOL = os.path.join(conftest.BUILD, "tests", "xfrm_stat_zero")


def test_same_names_order_and_format_as_linux():
    rc, kernel, err = uml.run(["cat /proc/net/xfrm_stat"])[0]
    assert rc == 0 and "XfrmInNoStates" in kernel, err
    ours = subprocess.run([TOOL], capture_output=True, text=True, check=True).stdout
    # Same lines byte for byte once the kernel's values are zeroed.
    assert re.sub(r"\t\d+\n", "\t0\n", kernel) == ours


def test_extended_list_keeps_the_mib_first():
    mib = subprocess.run([TOOL], capture_output=True, text=True, check=True).stdout
    ext = subprocess.run([TOOL, "-x"], capture_output=True, text=True, check=True).stdout
    assert ext.startswith(mib) and len(ext.splitlines()) > len(mib.splitlines())
    names = [line.split()[0] for line in ext.splitlines()]
    assert len(names) == len(set(names))
