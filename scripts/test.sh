#!/usr/bin/env bash
# THE test command: installs dependencies, builds, runs the whole suite (ctest: unit, BPF test
# runs, netns suites), then the unit suite and a netns subset under AddressSanitizer +
# UndefinedBehaviorSanitizer, the threaded device test under ThreadSanitizer and a libFuzzer smoke
# run. Exits non-zero on any failure. Root-only tests (netns, BPF) skip with a message when not
# run as root. Each stage line shows the seconds since the start.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
START=$SECONDS
stage() { echo "== [$((SECONDS - START)) s] $* =="; }

"$ROOT/scripts/install-deps.sh"

stage "source format (scripts/check-format.sh)"
"$ROOT/scripts/check-format.sh"

# The builds are CMakePresets.json's: default (build/), asan, tsan and fuzz (build-NAME/).
stage "build (RelWithDebInfo)"
cmake --preset default >/dev/null
cmake --build --preset default -j"$JOBS"

# The sanitizer and fuzzer builds run at the lowest CPU priority while the suite runs: the
# network-namespace suites mostly wait (handshake timers, fixed-length iperf3 runs) and take
# the CPUs back whenever they need them. Saves about 3 of about 12 minutes on 2 CPUs.
SIDE_LOG="$ROOT/build/side-builds.log"
side_builds() {  # errexit (set -e above) stops it at the first failure
  cmake --preset asan
  cmake --build --preset asan -j"$JOBS"
  cmake --preset tsan
  cmake --build --preset tsan -j"$JOBS"  # the multi-threaded tests only
  cmake --preset fuzz
  cmake --build --preset fuzz -j"$JOBS"
}
set -m  # the builds get a process group of their own, so a failing suite can stop them all
(renice -n 19 -p $BASHPID >/dev/null || true; side_builds) >"$SIDE_LOG" 2>&1 &
SIDE_PID=$!
set +m
trap 'kill -- -$SIDE_PID 2>/dev/null || true' EXIT

stage "test suite (ASan, TSan and fuzzer builds alongside at nice 19)"
ctest --preset default -j"$JOBS"  # --output-on-failure --timeout 300

stage "Debian package: build, lintian, install, check, remove (scripts/package.sh)"
"$ROOT/scripts/package.sh" "$ROOT/build"

stage "waiting for the sanitizer and fuzzer builds"
if ! wait $SIDE_PID; then
  tail -60 "$SIDE_LOG" >&2
  echo "sanitizer/fuzzer builds failed (whole log: $SIDE_LOG)" >&2
  exit 1
fi
trap - EXIT

stage "unit tests under ASan + UBSan"
ctest --preset asan -j"$JOBS"  # the unit tests (^unit\.), --output-on-failure --timeout 300

stage "network-namespace tests against the ASan + UBSan daemon"
# A subset (the full suites ran above against the release build): handshakes and data both ways,
# daemon lifecycle, XDP teardown and junk. Any sanitizer report fails the run (tests/netns/lib.sh).
# Exit 77 = skipped (not root).
asan_netns() {
  local rc=0
  CASES="$2" bash "$ROOT/tests/netns/$1.sh" "$ROOT/build-asan/xsktun" || rc=$?
  if (( rc == 77 )); then echo "netns $1 (ASan): skipped"; elif (( rc != 0 )); then exit "$rc"; fi
}
asan_netns interop "1 9"
asan_netns xdp "7 8"

stage "multi-threaded device tests under ThreadSanitizer"
for t in device_threads_test sharded_map_test; do
  TSAN_OPTIONS="halt_on_error=1 suppressions=$ROOT/tests/tsan.supp" "$ROOT/build-tsan/$t"
done

stage "libFuzzer smoke run (${FUZZ_SECONDS:-5} s per target)"
for t in messages data aead uapi config offload frame; do
  mkdir -p "$ROOT/build-fuzz/corpus-$t"
  log="$ROOT/build-fuzz/fuzz_$t.log"
  if ! "$ROOT/build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="${FUZZ_SECONDS:-5}" -max_len=4096 \
      "$ROOT/build-fuzz/corpus-$t" "$ROOT/tests/fuzz/seeds" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz_$t found a crash (reproducer in $ROOT/build-fuzz, see above)" >&2
    exit 1
  fi
  echo "fuzz_$t: $(grep -E '^Done' "$log")"
done

stage "all tests passed"
