#!/bin/sh
# Install the Debian 12 packages xfrmgw needs to build and test. Idempotent.
set -eu
PKGS="build-essential pkg-config libmnl-dev meson ninja-build dpdk-dev libdpdk-dev libipsec-mb-dev
      iproute2 kmod user-mode-linux python3 python3-pytest python3-scapy python3-cryptography python3-prometheus-client
      strace strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libcharon-extra-plugins iputils-ping ethtool procps
      dpdk-doc clang-14 libclang-rt-14-dev llvm-14 libssl-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
