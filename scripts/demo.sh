#!/bin/sh
# The gateway's main job on the built-in default: start xfrmgw on a net_null
# port with no config file, program an IPsec tunnel into it with the
# unmodified `ip xfrm` through libxfrmgw-preload.so, read it back, stop.
set -eu
cd "$(dirname "$0")/.."
SOCK=${XFRMGW_SOCKET:-/run/xfrmgw/demo.sock}
./build/app/xfrmgw -l 0 --no-huge -m 128 --no-pci --no-shconf --vdev net_null0 \
	--log-level '*:notice' -- --xfrm-socket "$SOCK" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT INT TERM
i=0
while [ ! -S "$SOCK" ]; do
	i=$((i + 1)); [ $i -lt 200 ] || { echo "xfrmgw did not start" >&2; exit 1; }
	sleep 0.05
done
x() { echo "\$ ip $*"; LD_PRELOAD=./build/lib/libxfrmgw-preload.so XFRMGW_SOCKET=$SOCK ip "$@"; }
x xfrm state add src 192.0.2.1 dst 198.51.100.1 proto esp spi 0x1000 reqid 1 mode tunnel \
	aead 'rfc4106(gcm(aes))' 0x00112233445566778899aabbccddeeff01020304 128
x xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out \
	tmpl src 192.0.2.1 dst 198.51.100.1 proto esp reqid 1 mode tunnel
x xfrm state list
x xfrm policy list
x xfrm state count
echo "\$ ip xfrm state list   # the host kernel, untouched"
ip xfrm state list
