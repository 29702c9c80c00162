#!/bin/sh
# The sanitizer stage of the test suite: builds build-asan (gcc,
# AddressSanitizer + UndefinedBehaviorSanitizer, fault hooks compiled in),
# runs the C unit tests in it, then a subset of tests/py against the
# sanitized daemon, then a few with the sanitized preload library. Any
# ASan, UBSan or LeakSanitizer report, or at the daemon's exit an mbuf or
# crypto session not back in its pool or a memzone of its own left, fails
# the test that caused it (tests/py/conftest.py: assert_clean_exit). Extra
# arguments go to the first pytest run.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$PWD

# The preload library is LD_PRELOADed into ip and charon, which are not
# built with ASan: it comes from the normal build.
sh scripts/build.sh
OPTS="-Db_sanitize=address,undefined -Db_lundef=false -Dfault_injection=true"
OPTS="$OPTS -Dbuildtype=debugoptimized -Dc_args=-fno-omit-frame-pointer"
if [ -f build-asan/build.ninja ]; then
	meson configure build-asan $OPTS
else
	meson setup build-asan $OPTS
fi
ninja -C build-asan

# UBSan: gcc's checks are recoverable; halt_on_error makes the first one
# fatal (exit status 1) as well as reported. LeakSanitizer runs at exit
# and then exits with 23; lsan.supp hides DPDK's own allocations only.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:print_summary=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:print_summary=1"
export LSAN_OPTIONS="suppressions=$ROOT/tests/san/lsan.supp:print_suppressions=0"

meson test -C build-asan --print-errorlogs

export XFRMGW_BUILD="$ROOT/build-asan"
PYTEST="/usr/bin/python3 -m pytest -p no:cacheprovider -v"
rc=0
for f in tests/py/test_hostile_*.py tests/py/test_faults.py; do
	if [ -e "$f" ]; then
		set -- "$f" "$@"
	fi
done
XFRMGW_PRELOAD="$ROOT/build/lib/libxfrmgw-preload.so" $PYTEST \
	tests/py/test_xfrm_socket.py tests/py/test_xfrm_raw_diff.py tests/py/test_refusals.py \
	tests/py/test_daemon.py tests/py/test_gateway_pcap.py tests/py/test_esp_engine.py \
	tests/py/test_teardown.py tests/py/test_unaligned.py tests/py/test_telemetry.py \
	tests/py/test_logging.py "$@" || rc=$?

# The preload library itself under ASan and UBSan, in ip, sh and python
# (the ASan runtime first in LD_PRELOAD): a fault makes the client exit
# non-zero. Their own leaks at exit are not ours: no leak check there.
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:print_summary=1" \
XFRMGW_PRELOAD="$(gcc -print-file-name=libasan.so) $ROOT/build-asan/lib/libxfrmgw-preload.so" \
	$PYTEST tests/py/test_preload.py tests/py/test_xfrm_socket.py tests/py/test_refusals.py || rc=$?
exit $rc
