#!/bin/sh
# The whole test suite: installs what is missing, builds with -Werror, runs
# the C unit tests (meson test) and the pytest suites (which need root for
# user-mode-linux, network namespaces and the daemon's socket).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh -Dwerror=true
meson test -C build --print-errorlogs
# Debian's python3 has scapy/pytest; the first python3 on PATH may not.
/usr/bin/python3 -m pytest -p no:cacheprovider -v tests/py "$@"
sh tests/fuzz/run.sh 60
