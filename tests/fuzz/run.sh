#!/bin/sh
# Bounded libFuzzer runs of the targets in tests/fuzz (see README.md there):
#   sh tests/fuzz/run.sh [SECONDS per target, default 60]
# Builds build-fuzz (clang-14, ASan+UBSan, -Dfuzz=true, -Werror) if needed,
# fuzzes a scratch copy of each committed corpus (the corpus itself is never
# written), prints executions and coverage per target, and fails on any
# crash, leak, timeout or sanitizer report, keeping the artifacts.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-60}
targets="fuzz_xfrm fuzz_esp_in fuzz_conf"

if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang-14 meson setup build-fuzz -Db_sanitize=address,undefined -Db_lundef=false \
		-Dfuzz=true -Dwerror=true
fi
ninja -C build-fuzz $(for t in $targets; do echo tests/fuzz/$t; done)

scratch=$(mktemp -d /tmp/xg-fuzz.XXXXXX)
# A sanitizer report is a failure, not a message: stop at the first one.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
fail=0
summary="$scratch/summary"
printf '%-12s %6s %10s %8s %6s %7s %7s  %s\n' target secs execs exec/s cov ft corpus result \
	> "$summary"
for t in $targets; do
	dir="$scratch/$t"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp tests/fuzz/corpus/$t/* "$dir/corpus/"
	dict=""
	[ -f tests/fuzz/${t#fuzz_}.dict ] && dict="-dict=tests/fuzz/${t#fuzz_}.dict"
	rc=0
	# shellcheck disable=SC2086
	build-fuzz/tests/fuzz/$t -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$dir/artifacts/" $dict "$dir/corpus" \
		> "$dir/log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
	last=$(grep -E '^#[0-9]+.*cov: ' "$dir/log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(ls "$dir/corpus" | wc -l)
	result=ok
	if [ "$rc" -ne 0 ] || [ -n "$(ls "$dir/artifacts")" ]; then
		result="FAILED (rc $rc): $dir/artifacts, log $dir/log"
		fail=1
		tail -n 40 "$dir/log" >&2
	fi
	printf '%-12s %6s %10s %8s %6s %7s %7s  %s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" \
		"${cov:-?}" "${ft:-?}" "$corp" "$result" >> "$summary"
done
cat "$summary"
if [ "$fail" -ne 0 ]; then
	echo "fuzz: FAILED; artifacts and logs kept in $scratch" >&2
	exit 1
fi
rm -rf "$scratch"
