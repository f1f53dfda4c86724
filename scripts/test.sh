#!/usr/bin/env bash
# THE test command: installs dependencies, builds, runs the whole suite (ctest), then the unit
# suite again under AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero on any failure.
# Root-only tests (netns, BPF) skip with a message when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}

"$ROOT/scripts/install-deps.sh"

echo "== build (RelWithDebInfo) =="
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$ROOT/build" -j"$JOBS"

echo "== test suite =="
ctest --test-dir "$ROOT/build" --output-on-failure -j"$JOBS" --timeout 300

echo "== unit tests under ASan + UBSan =="
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DXSKTUN_SANITIZE=ON >/dev/null
cmake --build "$ROOT/build-asan" -j"$JOBS"
ctest --test-dir "$ROOT/build-asan" --output-on-failure -j"$JOBS" -R '^unit\.' --timeout 300

echo "== all tests passed =="
