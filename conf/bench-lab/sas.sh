#!/bin/sh
# The bench-lab tunnel: one AES-GCM-128 SA each way between 192.0.2.1 and
# 192.0.2.2, policies for 10.1.0.0/16 <-> 10.2.0.0/16. Usage:
#   XFRMGW_SOCKET=/run/xfrmgw/xfrm.sock sh conf/bench-lab/sas.sh [PRELOAD]
# PRELOAD: libxfrmgw-preload.so (default: the build tree's, else installed).
set -eu
here=$(dirname "$0")
lib=${1:-}
[ -n "$lib" ] || for c in "$here/../../build/lib/libxfrmgw-preload.so" \
		/usr/local/lib/x86_64-linux-gnu/libxfrmgw-preload.so; do
	[ -e "$c" ] && lib=$c && break
done
[ -n "$lib" ] || { echo "sas.sh: libxfrmgw-preload.so not found" >&2; exit 1; }
key=0x00112233445566778899aabbccddeeffa0a1a2a3   # lab only: never a real key
x() { LD_PRELOAD=$lib ip "$@"; }
x xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 mode tunnel \
	aead 'rfc4106(gcm(aes))' $key 128
x xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x200 reqid 2 mode tunnel \
	replay-window 128 aead 'rfc4106(gcm(aes))' $key 128
x xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir out \
	tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
x xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/16 dir fwd \
	tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel
x -s xfrm state
