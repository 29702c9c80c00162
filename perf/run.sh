#!/bin/sh
# The perf lab in one command (see perf/README.md): what it needs beyond the
# build, then perf/run.py with the arguments given (--smoke, --out, ...).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
if ! dpkg-query -W -f='${Status}' python3-matplotlib 2>/dev/null | grep -q "install ok installed"; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-matplotlib
fi
[ -x build/app/xfrmgw ] || sh scripts/build.sh
exec /usr/bin/python3 perf/run.py "$@"
