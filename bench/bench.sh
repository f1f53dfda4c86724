#!/usr/bin/env bash
# Benchmark: xsktun (XDP mode, socket mode) side by side with Debian's wireguard-go and a plain
# veth (the ceiling), each between two network namespaces joined by a veth pair. Both tunnel ends
# run the system under test. Interleaved rounds (A B C A B C ...); per metric the report gives
# median, min-max and the ratio to wireguard-go. What each number means: bench/README.md.
# Builds nothing: pass --xsktun PATH (default build/xsktun). Needs root. ^C cleans up.
# --soak SECONDS runs the soak test instead (bench/bench_soak.sh; bench/README.md, "Soak mode").
# --scale PEERS runs the many-peers run instead (tests/netns/scale.sh in report mode).
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPORT_PY=$ROOT/bench/bench_report.py
CMDLINE=$0
for a in "$@"; do  # shell-quoted only where needed, so it can be pasted back
  if [[ $a =~ ^[A-Za-z0-9_./,=:+@%-]+$ ]]; then CMDLINE+=" $a"; else CMDLINE+=" $(printf %q "$a")"; fi
done

XSKTUN=$ROOT/build/xsktun
PEER_IMPL=
SYSTEMS=
PROFILES=default,nogso
ROUNDS=3
DURATION=5
UDP_DURATION=3
UDP_SIZE=1392
UDP64_RCVBUF=4194304
BISECT_STEPS=3
NIC_QUEUES=1
TESTS=ping,tcp,udp,bisect,udp64,flood
TESTS2=tcp,udp,udp64
OUT=
QUICK=0
SOAK=
SCALE=
SET=""  # options given explicitly

usage() {
  cat <<EOF
Usage: sudo $0 [options]
  --xsktun PATH        xsktun binary (default: build/xsktun; this script builds nothing)
  --peer-impl PATH     also measure another implementation, started like wireguard-go
                       (WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 PATH IFNAME); system "peer-impl"
  --systems LIST       from xsktun-xdp,xsktun-socket,xsktun-mixed,wireguard-go,peer-impl,veth (default:
                       all available; xsktun-mixed: side A in XDP mode, side B in socket mode)
  --profiles LIST      underlay profiles: default (veth as created), nogso (tx-udp-segmentation
                       off on both veth ends); default: default,nogso
  --rounds N           interleaved rounds (default $ROUNDS)
  --duration S         seconds per TCP test (default $DURATION)
  --udp-duration S     seconds per UDP and flood test (default $UDP_DURATION)
  --udp-size B         large UDP payload (default $UDP_SIZE = 1420 MTU - 28: the largest that
                       crosses the tunnel without IP fragmentation)
  --udp64-rcvbuf B      socket buffer (iperf3 -w) of the UDP 64 B test (default $UDP64_RCVBUF, capped
                       at net.core.rmem_max; 0 = iperf3's default): the receiving iperf3 must not be
                       what overflows (see bench/README.md)
  --bisect-steps N     probes (1 s each) of the <1%-loss rate search (default $BISECT_STEPS; 0 = off)
  --nic-queues N       RX and TX queues of each veth end (default $NIC_QUEUES): XDP mode runs a worker
                       per queue (at most the CPUs), socket mode a worker per CPU either way
  --tests LIST         tests in the first profile, from ping,tcp,udp,bisect,udp64,flood
                       (default: all)
  --tests2 LIST        tests in the other profiles (default: $TESTS2; 'same': as --tests)
  --out DIR            output directory (default: bench-results/DATE in the repository)
  --quick              smoke run: 1 round, 3 s, first profile only, no bisection (options
                       given explicitly override these)
  --soak SECONDS       instead of the matrix: one xsktun tunnel (XDP mode on side A, socket mode
                       on side B) under mixed traffic, rekeys and peer churn for SECONDS (reference
                       run: 3600); samples RSS/fds every 10 s; PASS/FAIL verdict, exit 1 on FAIL
  --scale PEERS        instead of the matrix: load PEERS peers x 10 /32 prefixes in 10 chunks of
                       'wg addconf' into xsktun (socket, then XDP mode) while wireguard-go pings
                       through it; reports chunk times, RSS, CPU with every peer idle, dump times
                       and the real peer's TCP before/after (reference run: 100000)
  -h, --help
EOF
}

while [ $# -gt 0 ]; do
  case $1 in
    --quick | -h | --help) ;;
    *) [ $# -ge 2 ] || { echo "bench.sh: $1 needs a value" >&2; exit 2; } ;;
  esac
  case $1 in
    --xsktun) XSKTUN=$2; shift 2 ;;
    --peer-impl) PEER_IMPL=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    --profiles) PROFILES=$2 SET+=" PROFILES"; shift 2 ;;
    --rounds) ROUNDS=$2 SET+=" ROUNDS"; shift 2 ;;
    --duration) DURATION=$2 SET+=" DURATION"; shift 2 ;;
    --udp-duration) UDP_DURATION=$2 SET+=" UDP_DURATION"; shift 2 ;;
    --udp-size) UDP_SIZE=$2; shift 2 ;;
    --udp64-rcvbuf) UDP64_RCVBUF=$2; shift 2 ;;
    --bisect-steps) BISECT_STEPS=$2 SET+=" BISECT_STEPS"; shift 2 ;;
    --nic-queues) NIC_QUEUES=$2; shift 2 ;;
    --tests) TESTS=$2; shift 2 ;;
    --tests2) TESTS2=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --soak) SOAK=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

# The namespaces, veths and daemons: the netns suites' helpers (netns_new, veth_new, xsktun_start,
# wggo_start, netns_teardown...), with the bench's settings below (no debug logging, time limits).
# shellcheck source=tests/netns/lib.sh
source "$ROOT/tests/netns/lib.sh"
trap 'echo "bench.sh: ERROR: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR
# Also what lib.sh's helpers call on failure: with a tunnel up, its diagnostics (wg show, the
# daemons' logs, addresses and sockets) follow.
die() {
  echo "bench.sh: ERROR: $*" >&2
  [[ $BASHPID != "$$" || ${#_IF_LIST[@]} -eq 0 ]] || diag_dump
  exit 1
}
log() { echo "[$(date +%H:%M:%S)] $*"; }
has() { [[ ",$1," == *",$2,"* ]]; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

if [ "$QUICK" = 1 ]; then  # defaults of the smoke run; options given explicitly still win
  [[ $SET == *" ROUNDS"* ]] || ROUNDS=1
  [[ $SET == *" DURATION"* ]] || DURATION=3
  [[ $SET == *" UDP_DURATION"* ]] || UDP_DURATION=3
  [[ $SET == *" BISECT_STEPS"* ]] || BISECT_STEPS=0
  [[ $SET == *" PROFILES"* ]] || PROFILES=${PROFILES%%,*}
fi
for v in ROUNDS DURATION UDP_DURATION UDP_SIZE UDP64_RCVBUF BISECT_STEPS NIC_QUEUES; do
  is_uint "${!v}" || die "--$(tr 'A-Z_' 'a-z-' <<<"$v") needs a whole number, got '${!v}'"
done
if [ "$ROUNDS" -lt 1 ] || [ "$DURATION" -lt 2 ] || [ "$UDP_DURATION" -lt 1 ] || [ "$NIC_QUEUES" -lt 1 ]; then
  die "need --rounds >= 1, --duration >= 2, --udp-duration >= 1, --nic-queues >= 1"
fi
[ "$UDP_SIZE" -ge 64 ] || die "--udp-size must be at least 64"
RMEM_MAX=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo 0)
if [ "$UDP64_RCVBUF" -gt "$RMEM_MAX" ]; then  # the kernel would cap it silently; say so instead
  echo "bench.sh: note: --udp64-rcvbuf $UDP64_RCVBUF is above net.core.rmem_max; using $RMEM_MAX" >&2
  UDP64_RCVBUF=$RMEM_MAX
fi
if [ -n "$SOAK" ]; then
  if ! is_uint "$SOAK" || [ "$SOAK" -lt 60 ]; then
    die "--soak needs a whole number of seconds >= 60 (reference run: 3600), got '$SOAK'"
  fi
fi
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP); run with sudo"
if [ -n "$SCALE" ]; then  # the many-peers run is its own program: the netns suite in report mode
  { is_uint "$SCALE" && [ "$SCALE" -ge 10 ]; } || die "--scale needs a number of peers >= 10, got '$SCALE'"
  SCALE_CHUNKS=10 SCALE_CHUNK_PEERS=$((SCALE / 10)) SCALE_PREFIXES=10 SCALE_REPORT=1 \
    exec bash "$ROOT/tests/netns/scale.sh" "$(realpath -m "$XSKTUN")"
fi
[ "$TESTS2" != same ] || TESTS2=$TESTS
for t in ${TESTS//,/ } ${TESTS2//,/ }; do has ping,tcp,udp,bisect,udp64,flood "$t" || die "unknown test '$t'"; done
for l in "$TESTS" "$TESTS2"; do
  ! has "$l" flood || has "$l" tcp || die "the flood tests need the tcp test in the same list (their baseline)"
done
for p in ${PROFILES//,/ }; do has default,nogso "$p" || die "unknown profile '$p' (default, nogso)"; done
for c in ip nsenter iperf3 ping wg ethtool ss timeout python3; do
  command -v "$c" >/dev/null || die "'$c' not found (sudo scripts/install-deps.sh installs it)"
done
# The interpreter itself, not a wrapper such as a pyenv shim (it runs a dozen times per cell).
PY=$(python3 -c 'import sys; print(sys.executable)')
# matplotlib may be installed for the system python only (e.g. when python3 on PATH is a pyenv).
if ! "$PY" -c 'import matplotlib' 2>/dev/null && [ -x /usr/bin/python3 ] &&
  /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  PY=/usr/bin/python3
fi

XSKTUN=$(realpath -m "$XSKTUN")
XSKTUN_BIN=$XSKTUN
WGGO=$(command -v wireguard-go || true)
[ -z "$PEER_IMPL" ] || PEER_IMPL=$(realpath -m "$PEER_IMPL")
available() {
  case $1 in
    xsktun-xdp | xsktun-socket | xsktun-mixed) [ -x "$XSKTUN" ] ;;
    wireguard-go) [ -n "$WGGO" ] ;;
    peer-impl) [ -n "$PEER_IMPL" ] && [ -x "$PEER_IMPL" ] ;;
    veth) true ;;
    *) return 2 ;;
  esac
}
if [ -n "$SOAK" ]; then  # one fixed topology: both xsktun modes at once
  available xsktun-xdp || die "--soak: no xsktun binary at $XSKTUN. Build it with: cmake -S . -B build" \
    "-DCMAKE_BUILD_TYPE=Release && cmake --build build --target xsktun"
  command -v bpftool >/dev/null || echo "bench.sh: bpftool not found: no BPF map entry counts in the soak samples" >&2
  SYSTEMS=xsktun-xdp,xsktun-socket
elif [ -z "$SYSTEMS" ]; then
  for s in xsktun-xdp xsktun-socket xsktun-mixed wireguard-go peer-impl veth; do
    if available $s; then SYSTEMS+=${SYSTEMS:+,}$s
    elif [ $s != peer-impl ]; then echo "bench.sh: skipping $s (not available)" >&2; fi
  done
else
  for s in ${SYSTEMS//,/ }; do
    available "$s" && continue
    case $? in
      2) die "unknown system '$s'" ;;
      *) die "system '$s' is not available (xsktun binary: $XSKTUN; wireguard-go: ${WGGO:-missing};" \
        "--peer-impl: ${PEER_IMPL:-not given}). Build xsktun with: cmake -S . -B build && cmake --build build --target xsktun" ;;
    esac
  done
fi

OUT=${OUT:-$ROOT/bench-results/${SOAK:+soak-}$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
SAMPLES=$OUT/samples.jsonl
: >"$SAMPLES"
netns_prepare  # TEST_TMP, SUF; removes what killed runs (of the bench or the suites) left
NETNS_XSKTUN_LOG_LEVEL="" NETNS_WGGO_LOG_LEVEL=""  # the daemons' default logging, as users run them
NETNS_UP_TIMEOUT=20 NETNS_WGGO_FOREGROUND=0        # --peer-impl is started like wireguard-go: PATH IFNAME
HZ=$(getconf CLK_TCK)
PORT_A=51820 PORT_B=51821
UL_A=192.168.250.1 UL_B=192.168.250.2 UL_FLOOD=192.168.250.3
IN_A=10.250.0.1 IN_B=10.250.0.2

# ------------------------------------------------------------------------------ cleanup
# Helpers in the background are registered with bg_register, namespaces and daemons by lib.sh.
stop_cell() {
  local p
  for p in "${_BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # Anything else still inside our namespaces was started by us (the daemons, ping...).
  ns_kill "${_NS_LIST[@]}"
  for p in "${_BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  netns_teardown
}
on_exit() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop_cell
  rm -rf "$TEST_TMP"
  if [ $rc != 0 ] && [ -n "$SOAK" ] && [ -s "$OUT/soak.jsonl" ] && [ ! -s "$OUT/soak.md" ]; then
    echo "bench.sh: exit $rc; soak samples so far in $OUT/soak.jsonl; a partial report:" \
      "$PY $REPORT_PY soak --dir $OUT" >&2
  elif [ $rc != 0 ] && [ -s "$SAMPLES" ]; then
    echo "bench.sh: exit $rc; samples so far in $SAMPLES; a partial report:" \
      "$PY $REPORT_PY report --dir $OUT --meta $OUT/meta.json --samples $SAMPLES" >&2
  fi
  exit $rc
}
trap on_exit EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# ------------------------------------------------------------------------------ helpers
exit_text() { [ "$1" = 124 ] && echo "did not return within $2 s" || echo "failed (exit $1)"; }

cpu_ticks_pids() {  # utime+stime (fields 14, 15 of /proc/PID/stat) summed over the given pids
  local sum=0 p line rest f
  for p in "$@"; do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${line##*) }  # skip "pid (comm) ", comm may contain spaces
    read -r -a f <<<"$rest"
    sum=$((sum + f[11] + f[12]))
  done
  echo $sum
}
cpu_ticks_busy() {  # all non-idle jiffies of the machine
  local _c user nice sys _idle _iowait irq softirq steal _rest
  read -r _c user nice sys _idle _iowait irq softirq steal _rest </proc/stat
  echo $((user + nice + sys + irq + softirq + steal))
}
ticks_to_s() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.3f", t / hz }'; }

daemons_alive() {
  local p
  for p in "${TUN_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
}

# iperf3 NAME CLIENT-ARGS...: one-shot server in A, client in B, client -J output in CELL/NAME.json.
# Sets CPU_TUN_S / CPU_ALL_S (CPU seconds consumed during the client run). The client is stopped
# early if a tunnel daemon dies (a dead tunnel would otherwise stall it until the timeout).
IPERF_TIMEOUT=0
bench_iperf() {
  local name=$1 i spid cpid rc t0tun t0all
  shift
  IPERF_TIMEOUT=$((DURATION + UDP_DURATION + 20))
  nsenter --net="/var/run/netns/$NA" iperf3 -s -1 -B "$TA" -p 5201 >"$CELL/$name.server.log" 2>&1 &
  spid=$!
  bg_register "$spid"
  for i in $(seq 60); do
    [ -z "$(nsx "$NA" ss -Hltn 'sport = :5201')" ] || break
    sleep 0.05
  done
  t0tun=$(cpu_ticks_pids "${TUN_PIDS[@]}")
  t0all=$(cpu_ticks_busy)
  timeout $IPERF_TIMEOUT nsenter --net="/var/run/netns/$NB" iperf3 -c "$TA" -p 5201 -J --connect-timeout 3000 "$@" \
    >"$CELL/$name.json" 2>"$CELL/$name.err" &
  cpid=$!
  bg_register "$cpid"
  while kill -0 "$cpid" 2>/dev/null; do
    if ! daemons_alive; then
      echo "a tunnel daemon died during the run" >>"$CELL/$name.err"
      kill -TERM "$cpid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  if wait "$cpid"; then rc=0; else rc=$?; fi
  bg_done "$cpid"
  CPU_TUN_S=$(ticks_to_s $(($(cpu_ticks_pids "${TUN_PIDS[@]}") - t0tun)))
  CPU_ALL_S=$(ticks_to_s $(($(cpu_ticks_busy) - t0all)))
  for i in $(seq 30); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  bg_done "$spid"
  return $rc
}

# sample TEST [bench_report.py sample args...]: one JSON line into the samples file
sample() {
  local test=$1
  shift
  local cpu=()
  [ "$SYS" = veth ] || cpu=(--cpu-tunnel "$CPU_TUN_S")
  "$PY" "$REPORT_PY" sample --out "$SAMPLES" --system "$SYS" --profile "$PROF" --round "$ROUND" \
    --test "$test" "${cpu[@]}" --cpu-total "$CPU_ALL_S" "$@" || true
}

# An iperf3 measurement recorded as TEST; a failed run is recorded as failed, with its stderr.
measure_iperf() {
  local test=$1
  shift
  if bench_iperf "$test" "$@"; then
    sample "$test" --iperf "$CELL/$test.json"
  else
    sample "$test" --error "$(iperf_failure $? "$test")"
  fi
}

iperf_failure() {  # RC NAME: one line saying why an iperf3 run failed
  local why
  why=$(grep -o '"error":.*' "$CELL/$2.json" 2>/dev/null | head -n1) || true
  echo "iperf3 $(exit_text "$1" "$IPERF_TIMEOUT"): ${why:-no error in its output}; $(tail -n 3 "$CELL/$2.err" 2>/dev/null | tr '\n' ' ')"
}

ping_count_for() { local n=$((($1 * 100) - 150)); [ $n -le 200 ] || n=200; [ $n -ge 50 ] || n=50; echo $n; }

# ------------------------------------------------------------------------------ topology + systems
setup_topology() {
  NA=$(ns_name "c$CELLNO-a") NB=$(ns_name "c$CELLNO-b")
  VA=ul-a VB=ul-b
  netns_new "$NA"
  netns_new "$NB"
  veth_new "$NA" "$VA" "$NB" "$VB" "$NIC_QUEUES"
  local e ns dev
  for e in "$NA:$VA" "$NB:$VB"; do
    ns=${e%%:*} dev=${e##*:}
    # XDP mode needs IPv6 off on its NIC (router/MLD chatter); same for every system, for fairness.
    n "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    [ "$PROF" != nogso ] || nsx "$ns" ethtool -K "$dev" tx-udp-segmentation off
  done
  addr_add "$NA" "$VA" $UL_A/24
  addr_add "$NB" "$VB" $UL_B/24 $UL_FLOOD/24  # the second: the flooder's own source address
}

start_xsktun() {  # NS IFNAME MODE (in XDP mode on the namespace's veth end)
  local pid
  XSKTUN_UP_MODE=$3 xsktun_start "$1" "$2"
  pid=$(xsktun_pid "$2") || true
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    die "$SYS: xsktun $2 started but no live pid in $XSKTUN_RUN_DIR/$2.pid"
  fi
  TUN_PIDS+=("$pid")
}

start_wglike() {  # IMPL NS IFNAME: wireguard-go's calling convention; it daemonizes
  wggo_start "$2" "$3" "$1"
  TUN_PIDS+=("${_WGGO_PID[$3]}")
}

configure_side() {  # NS IFNAME OWN-KEY PORT PEER-PUB PEER-INNER PEER-ENDPOINT OWN-INNER
  local ns=$1 ifn=$2
  timeout 10 nsenter --net="/var/run/netns/$ns" wg set "$ifn" private-key "$3" listen-port "$4" peer "$5" allowed-ips "$6/32" \
    endpoint "$7" >"$CELL/$ifn.wgset.out" 2>&1 ||
    die "$SYS: 'wg set $ifn ...' $(exit_text $? 10): $(cat "$CELL/$ifn.wgset.out")"
  tun_addr "$ns" "$ifn" "$8/24"
}

start_system() {
  TUN_PIDS=()
  new_ifname IFA xb
  new_ifname IFB xb
  if [ "$SYS" = veth ]; then
    TA=$UL_A
    return
  fi
  case $SYS in
    xsktun-xdp) start_xsktun "$NA" "$IFA" xdp; start_xsktun "$NB" "$IFB" xdp ;;
    xsktun-socket) start_xsktun "$NA" "$IFA" socket; start_xsktun "$NB" "$IFB" socket ;;
    xsktun-mixed) start_xsktun "$NA" "$IFA" xdp; start_xsktun "$NB" "$IFB" socket ;;
    wireguard-go) start_wglike "$WGGO" "$NA" "$IFA"; start_wglike "$WGGO" "$NB" "$IFB" ;;
    peer-impl) start_wglike "$PEER_IMPL" "$NA" "$IFA"; start_wglike "$PEER_IMPL" "$NB" "$IFB" ;;
  esac
  genkey a
  genkey b
  local i
  configure_side "$NA" "$IFA" "$(key a)" $PORT_A "$(pub b)" $IN_B "$UL_B:$PORT_B" $IN_A
  configure_side "$NB" "$IFB" "$(key b)" $PORT_B "$(pub a)" $IN_A "$UL_A:$PORT_A" $IN_B
  TA=$IN_A
  for i in $(seq 20); do
    nsx "$NB" ping -c 1 -W 0.5 -q "$TA" >/dev/null 2>&1 && return 0
    daemons_alive || break
  done
  snapshot_counters
  die "$SYS: no ping reply through the tunnel ($IN_B -> $IN_A) within 10 s$(daemons_alive || echo '; a daemon exited')" \
    "(xsktun show: $CELL/$IFA.show.txt, $CELL/$IFB.show.txt)"
}

snapshot_counters() {
  local n ns ifn
  [ "$SYS" != veth ] || return 0
  for n in "$NA:$IFA" "$NB:$IFB"; do
    ns=${n%%:*} ifn=${n##*:}
    case $SYS in
      xsktun-*) timeout 5 nsenter --net="/var/run/netns/$ns" "$XSKTUN" show "$ifn" --json >"$CELL/$ifn.show.json" 2>&1 || true
        timeout 5 nsenter --net="/var/run/netns/$ns" "$XSKTUN" show "$ifn" >"$CELL/$ifn.show.txt" 2>&1 || true ;;
      *) timeout 5 wg show "$ifn" dump >"$CELL/$ifn.show.txt" 2>&1 || true ;;
    esac
  done
}

# ------------------------------------------------------------------------------ measurements
test_ping_idle() {
  local n=200
  CPU_TUN_S=0 CPU_ALL_S=0
  timeout 20 nsenter --net="/var/run/netns/$NB" ping -i 0.01 -c $n -W 1 "$TA" >"$CELL/ping_idle.txt" 2>&1 || true
  sample ping_idle --ping "$CELL/ping_idle.txt" --ping-count $n
}

test_tcp() {  # single stream with ping running alongside (RTT under load), the same the other way, then 4 streams
  local n ppid
  n=$(ping_count_for "$DURATION")
  if has "$CELL_TESTS" ping; then
    (sleep 1 && exec timeout 20 nsenter --net="/var/run/netns/$NB" ping -i 0.01 -c "$n" -W 1 "$TA") \
      >"$CELL/ping_load.txt" 2>&1 &
    ppid=$!
    bg_register "$ppid"
  fi
  measure_iperf tcp1 -t "$DURATION"
  if [ -n "${ppid:-}" ]; then
    wait "$ppid" 2>/dev/null || true
    bg_done "$ppid"
    daemons_alive || return 1
    CPU_TUN_S=0 CPU_ALL_S=0
    sample ping_load --ping "$CELL/ping_load.txt" --ping-count "$n"
  fi
  daemons_alive || return 1
  # A -> B: the same stream the other way (in xsktun-mixed, from the XDP end to the socket end).
  measure_iperf tcp1r -t "$DURATION" -R
  daemons_alive || return 1
  measure_iperf tcp4 -t "$DURATION" -P 4
}

test_udp() {
  measure_iperf udp_large -u -b 0 -l "$UDP_SIZE" -t "$UDP_DURATION"
}

# Highest offered rate with under 1% loss: bisection between 0 and the -b 0 offered rate, first
# probe at the rate delivered under -b 0. Each probe lasts 1 s.
test_bisect() {
  local loss offered delivered lo=0 hi rate i probes='' ok
  CPU_TUN_S=0 CPU_ALL_S=0
  if ! [ -s "$CELL/udp_large.json" ] ||
    ! read -r loss offered delivered < <("$PY" "$REPORT_PY" loss "$CELL/udp_large.json" 2>/dev/null); then
    sample udp_bisect --error "no usable udp_large run to start from"
    return 0
  fi
  if awk -v l="$loss" 'BEGIN { exit !(l < 1) }'; then
    CPU_TUN_S=0 CPU_ALL_S=0
    sample udp_bisect --metric "clean_gbps=$(awk -v o="$offered" 'BEGIN { print o / 1e9 }')" --raw "probes=[]" \
      --raw "note=-b 0 already under 1% loss: the sender is the limit"
    return 0
  fi
  hi=$offered rate=$delivered
  for i in $(seq "$BISECT_STEPS"); do
    [ "$rate" -ge 1000000 ] || rate=1000000
    if bench_iperf "udp_probe$i" -u -b "$rate" -l "$UDP_SIZE" -t 1 &&
      read -r loss _ _ < <("$PY" "$REPORT_PY" loss "$CELL/udp_probe$i.json" 2>/dev/null); then
      if awk -v l="$loss" 'BEGIN { exit !(l < 1) }'; then ok=1 lo=$rate; else ok=0 hi=$rate; fi
    else
      ok=0 hi=$rate loss=null
    fi
    probes+="${probes:+,}[$rate,$loss,$ok]"
    rate=$(((lo + hi) / 2))
    daemons_alive || break
  done
  CPU_TUN_S=0 CPU_ALL_S=0
  sample udp_bisect --metric "clean_gbps=$(awk -v o="$lo" 'BEGIN { print o / 1e9 }')" --raw "probes=[$probes]"
}

# UDP receive-buffer drops in namespace NS: the kernel's UDP RcvbufErrors (IPv4 and IPv6) minus
# the drops of the tunnel's own UDP sockets on PORT (socket-mode systems receive the outer
# datagrams there), i.e. datagrams the tunnel delivered that the application's full socket dropped.
app_socket_drops() {  # NS PORT
  local snmp own
  snmp=$(nsx "$1" awk '$1 == "Udp:" { if (!c) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i; next } s += $c }
                      $1 == "Udp6RcvbufErrors" { s += $2 } END { print s + 0 }' /proc/net/snmp /proc/net/snmp6 2>/dev/null) || snmp=0
  own=$(udp_sock_drops "$1" "$2" 2>/dev/null) || own=0
  echo $((snmp - own))
}

test_udp64() {
  # Small datagrams at full rate: on a small machine the receiving iperf3 itself can be the
  # bottleneck. With its 208 KB default socket buffer (~245 datagrams of this size) it overflowed
  # whenever iperf3 waited a scheduler slice for a CPU, so the test gives it UDP64_RCVBUF (-w,
  # the same for every system). Drops at that socket are still counted, so the report can tell
  # the tunnel's rate from the receiver's.
  local d0 d1 w=()
  [ "$UDP64_RCVBUF" -eq 0 ] || w=(-w "$UDP64_RCVBUF")
  d0=$(app_socket_drops "$NA" $PORT_A)
  if bench_iperf udp64 -u -b 0 -l 64 "${w[@]}" -t "$UDP_DURATION"; then
    d1=$(app_socket_drops "$NA" $PORT_A)
    sample udp64 --iperf "$CELL/udp64.json" --metric "app_socket_drops=$(((d1 - d0) > 0 ? d1 - d0 : 0))"
  else
    sample udp64 --error "$(iperf_failure $? udp64)"
  fi
}

# TCP single stream while a third address floods A's listen port. KIND: junk | init
test_flood() {
  local kind=$1 fpid i
  nsenter --net="/var/run/netns/$NB" "$PY" "$REPORT_PY" flood --kind "$kind" --src $UL_FLOOD --dst "$UL_A:$PORT_A" \
    --out "$CELL/flood_$kind.flooder.json" >"$CELL/flood_$kind.flooder.log" 2>&1 &
  fpid=$!
  bg_register "$fpid"
  sleep 0.3
  if bench_iperf "flood_$kind" -t "$UDP_DURATION"; then i=0; else i=$?; fi
  kill -TERM "$fpid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
  wait "$fpid" 2>/dev/null || true
  bg_done "$fpid"
  if [ $i = 0 ]; then
    sample "flood_$kind" --iperf "$CELL/flood_$kind.json" --flood "$CELL/flood_$kind.flooder.json"
  else
    sample "flood_$kind" --error "under $kind flood: $(iperf_failure $i "flood_$kind")"
  fi
}

run_cell() {
  local t0=$SECONDS step
  CELL=$OUT/raw/c$(printf %02d "$CELLNO")-$SYS-$PROF-r$ROUND
  NETNS_LOG_DIR=$CELL
  mkdir -p "$CELL"
  log "round $ROUND/$ROUNDS  profile $PROF  system $SYS"
  setup_topology
  start_system
  local steps=() t=$CELL_TESTS
  has "$t" ping && steps+=(test_ping_idle)
  has "$t" tcp && steps+=(test_tcp)
  has "$t" udp && steps+=(test_udp)
  has "$t" udp && has "$t" bisect && [ "$BISECT_STEPS" -gt 0 ] && steps+=(test_bisect)
  has "$t" udp64 && steps+=(test_udp64)
  has "$t" flood && [ "$SYS" != veth ] && steps+=("test_flood junk" "test_flood init")
  for step in "${steps[@]}"; do
    $step || true
    if ! daemons_alive; then
      CPU_TUN_S=0 CPU_ALL_S=0
      sample daemon_died --error "a $SYS daemon died during ${step#test_} (see $CELL/*.log)"
      echo "bench.sh: WARNING: $SYS daemon exited during ${step#test_}; skipping the rest of this cell" >&2
      tail -n 15 "$CELL"/*.log >&2 2>/dev/null || true
      break
    fi
  done
  snapshot_counters
  stop_cell
  find "$CELL" -type f -empty -delete
  log "  cell done in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------------------ main
# Other work on the machine skews everything: measure how busy it is before starting.
B0=$(cpu_ticks_busy) T0=$(awk '/^cpu /{ s = 0; for (i = 2; i <= NF; i++) s += $i; print s }' /proc/stat)
sleep 1
BUSY_PCT=$(awk -v b0="$B0" -v t0="$T0" -v b1="$(cpu_ticks_busy)" '/^cpu /{ s = 0; for (i = 2; i <= NF; i++) s += $i;
  printf "%.0f", 100 * (b1 - b0) / (s - t0 > 0 ? s - t0 : 1) }' /proc/stat)
[ "$BUSY_PCT" -lt 15 ] || echo "bench.sh: WARNING: the machine is already ${BUSY_PCT}% busy before the benchmark; numbers will be noisy" >&2
XSK_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || XSK_REV+="-dirty"
if [ -n "$SOAK" ]; then
  # shellcheck source=SCRIPTDIR/bench_soak.sh
  . "$ROOT/bench/bench_soak.sh"
  soak_main  # exits
fi
"$PY" "$REPORT_PY" meta --out "$OUT/meta.json" "command=$CMDLINE" "date=$(date -Is)" \
  "host=$(hostname)" "cpus=$(nproc)" "kernel=$(uname -r)" "rounds=$ROUNDS" "duration=$DURATION" \
  "udp_duration=$UDP_DURATION" "udp_size=$UDP_SIZE" "udp64_rcvbuf=$UDP64_RCVBUF" "bisect_steps=$BISECT_STEPS" "nic_queues=$NIC_QUEUES" "tests=$TESTS" "tests2=$TESTS2" \
  "systems=$SYSTEMS" "profiles=$PROFILES" "quick=$QUICK" "xsktun=$XSKTUN" "repo_git=$XSK_REV" \
  "wireguard_go=${WGGO:+$($WGGO --version 2>/dev/null | head -n1)}" "peer_impl=$PEER_IMPL" \
  "iperf3=$(iperf3 --version | head -n1)" "idle_cpu_busy_pct=$BUSY_PCT"

log "command: $CMDLINE"
log "systems: $SYSTEMS; profiles: $PROFILES; rounds: $ROUNDS; output: $OUT"
CELLNO=0
for ROUND in $(seq "$ROUNDS"); do
  for PROF in ${PROFILES//,/ }; do
    CELL_TESTS=$TESTS2
    [ "$PROF" != "${PROFILES%%,*}" ] || CELL_TESTS=$TESTS
    for SYS in ${SYSTEMS//,/ }; do
      CELLNO=$((CELLNO + 1))
      run_cell
    done
  done
done

"$PY" "$REPORT_PY" report --dir "$OUT" --meta "$OUT/meta.json" --samples "$SAMPLES"
echo
cat "$OUT/results.md"
echo "Command line: $CMDLINE"
echo "Results: $OUT/results.md, $OUT/results.json$([ -f "$OUT/results.png" ] && echo ", $OUT/results.png"); raw runs: $OUT/raw"
