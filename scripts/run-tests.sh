#!/bin/sh
# The whole test suite: installs what is missing, builds with -Werror, runs
# the C unit tests (meson test) and the pytest suites (which need root for
# user-mode-linux, network namespaces and the daemon's socket), then the
# sanitizer stage (tests/san/run.sh).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh -Dwerror=true
meson test -C build --print-errorlogs
# Debian's python3 has scapy/pytest; the first python3 on PATH may not.
# Tests marked fault_injection need -Dfault_injection=true: they fail
# against this build; tests/san/run.sh builds that way and runs them.
rc=0
/usr/bin/python3 -m pytest -p no:cacheprovider -v -m "not fault_injection" tests/py "$@" || rc=$?
# Then the unit tests and a subset of tests/py again, under ASan, UBSan
# and LeakSanitizer (build-asan); either stage failing fails the run.
sh tests/san/run.sh || rc=$?
sh tests/fuzz/run.sh 60 || rc=$?
exit $rc
