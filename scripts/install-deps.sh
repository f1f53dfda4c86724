#!/usr/bin/env bash
# Installs every Debian 12 package that the build, the tests, the demo and the benchmark need.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang llvm clang-format
  libsodium-dev libb2-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libbpf-dev libxdp-dev xdp-tools bpftool libssl-dev nlohmann-json3-dev libsystemd-dev systemd
  libmicrohttpd-dev prometheus libcap-ng-dev libmnl-dev lintian man-db
  iproute2 iputils-ping iperf3 tcpdump ethtool procps psmisc python3 python3-matplotlib
  wireguard-go wireguard-tools
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (sudo) to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: wireguard-tools recommends a kernel image we neither need nor want.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
