#!/usr/bin/env bash
# Builds the Debian package from a configured build directory (default build/), checks it with
# lintian (no errors allowed), installs it, checks what a user relies on (the binary on PATH for
# WG_QUICK_USERSPACE_IMPLEMENTATION=xsktun, the units verified by systemd-analyze with the
# installed man page, --version, the installed unit run as systemd would with a /metrics
# scrape: tests/netns/service.sh), and removes it again. Needs root (dpkg -i). Used by
# scripts/test.sh; run alone: sudo scripts/package.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=$BUILD/pkg
rm -rf "$OUT"
mkdir -p "$OUT"
cmake --build "$BUILD" --target xsktun xsktun_docs >/dev/null
(cd "$BUILD" && cpack -G DEB -B "$PWD/pkg" >/dev/null)
DEB=$(ls "$OUT"/xsktun_*.deb)
echo "package: $DEB ($(du -h "$DEB" | cut -f1))"
dpkg-deb -f "$DEB" Depends
LINT=$(lintian --tag-display-limit 0 "$DEB" 2>&1 || true)
echo "$LINT" | sed 's/^/  lintian: /'
if grep -q '^E:' <<<"$LINT"; then
  echo "package.sh: lintian reports errors" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "package.sh: not root: built and linted, not installed"
  exit 0
fi
if dpkg-query -W -f='${Status}' xsktun 2>/dev/null | grep -q "install ok installed"; then
  echo "package.sh: xsktun is installed on this machine already; not touching it" >&2
  exit 0
fi
trap 'dpkg -r xsktun >/dev/null 2>&1 || true' EXIT
dpkg -i "$DEB" >/dev/null
[[ $(command -v xsktun) == /usr/bin/xsktun ]] || { echo "xsktun is not /usr/bin/xsktun on PATH" >&2; exit 1; }
xsktun --version
systemd-analyze verify /lib/systemd/system/xsktun@wg0.service
man -w xsktun >/dev/null
[[ -f /lib/systemd/system/wg-quick@.service.d/xsktun.conf ]]
# The installed binary under the installed unit, as systemd would run it (systemd is not PID 1
# here): READY=1, ExecReload, stop, and a /metrics scrape through promtool.
SERVICE_UNITS=/lib/systemd/system CASES="1 2 3" bash tests/netns/service.sh /usr/bin/xsktun
dpkg -r xsktun >/dev/null
trap - EXIT
[[ ! -e /usr/bin/xsktun ]] || { echo "dpkg -r left /usr/bin/xsktun" >&2; exit 1; }
echo "package.sh: built, lintian clean of errors, installed, checked, removed"
