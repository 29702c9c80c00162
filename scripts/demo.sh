#!/bin/sh
# The gateway's main job on a built-in topology: a site-to-site IPsec tunnel
# through xfrmgw to a Linux peer, on one machine (see scripts/demo.py).
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/demo.py
