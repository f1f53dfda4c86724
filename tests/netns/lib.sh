#!/usr/bin/env bash
# Shared helpers for the root-only network-namespace tests of xsktun (sourced, not run).
# Style follows the Linux kernel's tools/testing/selftests/wireguard/netns.sh: every helper is
# small, the caller runs under `set -e`, and one EXIT trap tears everything down even on failure.
#
# Everything the helpers create is registered (namespaces, daemons, interface names, temp dir)
# so that `netns_cleanup` can remove exactly that and nothing else. Interface names carry a
# per-run suffix because the UAPI sockets in /var/run/wireguard are not separated by netns.
#
# The caller sets XSKTUN_BIN (absolute path of the xsktun binary) before calling netns_init.
#
# XSKTUN_TEST_MODE=xdp (environment) runs every xsktun started through xsktun_start in XDP mode
# on the first veth end created in its namespace (veth_new), unless the caller passes --nic; the
# teardown checks then also cover the XDP program and the pinned maps (tests/netns/xdp.sh).
#
# bench/bench.sh uses these helpers too, with netns_prepare instead of netns_init (it keeps its own
# traps), netns_teardown after each cell, and these knobs (the suites keep the defaults):
NETNS_LOG_DIR=""            # daemon logs: DIR/IFNAME.log (default: $TEST_TMP)
NETNS_XSKTUN_LOG_LEVEL=debug  # xsktun up --log-level ('': the daemon's own default)
NETNS_UP_TIMEOUT=""         # seconds `xsktun up` and a daemonizing wireguard-go may take ('': no limit)
NETNS_WGGO_LOG_LEVEL=debug  # wireguard-go's LOG_LEVEL ('': not set)
NETNS_WGGO_FOREGROUND=1     # 0: wireguard-go (or a stand-in) started as `IMPL IFNAME`, daemonizing

NETNS_LIB_DIR=$(dirname "$(realpath "${BASH_SOURCE[0]}")")  # this file's folder: the Python helpers
XSKTUN_RUN_DIR=/var/run/xsktun
WG_RUN_DIR=/var/run/wireguard
XSKTUN_PIN_ROOT=/sys/fs/bpf/xsktun   # bpf/xsktun_shared.h XSKTUN_PIN_ROOT

declare -a _NS_LIST=()       # namespaces created by this run
declare -a _IF_LIST=()       # tunnel interface names used by this run (xsktun and wireguard-go)
declare -A _WGGO_PID=()      # wireguard-go interface -> pid
declare -A _IF_NS=()         # tunnel interface -> namespace
declare -A _IF_KIND=()       # tunnel interface -> xsktun | wggo
declare -A _IF_NIC=()        # xsktun interface in XDP mode -> underlay NIC it attached to
declare -A _NS_NIC=()        # namespace -> its first veth end (the default --nic in XDP mode)
declare -a _BG_PIDS=()       # other background helpers (iperf3 servers, ...)
_IF_SEQ=0
_DIAG_DONE=0
_CLEANED=0
TEST_TMP=""
SUF=""

pretty() { echo -e "\x1b[32m\x1b[1m[+] $*\x1b[0m" >&2; }
info() { echo "    $*" >&2; }

# --- setup / teardown ----------------------------------------------------------------------

# Exits 77 (ctest SKIP_RETURN_CODE) when the environment cannot run the test at all.
netns_require() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: needs root"
    exit 77
  fi
  local t
  for t in ip wg wg-quick wireguard-go ping iperf3 nsenter ss sysctl pgrep diff; do
    if ! command -v "$t" >/dev/null 2>&1; then
      echo "SKIP: missing tool '$t' (scripts/install-deps.sh installs it)"
      exit 77
    fi
  done
  if [[ $XSKTUN_UP_MODE == xdp ]]; then
    for t in bpftool xdp-loader python3; do
      if ! command -v "$t" >/dev/null 2>&1; then
        echo "SKIP: missing tool '$t' for XDP mode (scripts/install-deps.sh installs it)"
        exit 77
      fi
    done
  fi
  if [[ -z ${XSKTUN_BIN:-} || ! -x $XSKTUN_BIN ]]; then
    echo "FAIL: xsktun binary '${XSKTUN_BIN:-}' is not executable" >&2
    exit 1
  fi
}

# Namespaces are named xsktun-t-<pid of the test>-<name>, so that a later run can tell the
# leftovers of a run that was killed outright (SIGKILL from a ctest timeout) and remove them. A
# namespace lives on while processes are inside it, so the daemons that run stopped (xsktun,
# wireguard-go, iperf3: `ip netns pids` of its own namespaces only) get SIGTERM first, which
# also makes them remove their sockets and pid files.
ns_name() { echo "xsktun-t-$$-$1"; }

reap_stale_netns() {
  local ns owner
  for ns in $(ip netns list | awk '{ print $1 }' | grep -E '^xsktun-t-[0-9]+-' || true); do
    owner=${ns#xsktun-t-}
    owner=${owner%%-*}
    kill -0 "$owner" 2>/dev/null && continue
    info "removing namespace $ns left by a killed run"
    ns_kill "$ns"
    ip netns del "$ns" || true
  done
  reap_stale_pins
  local d
  for d in /tmp/xsktun-netns.*; do
    [[ -d $d ]] || continue
    owner=${d#/tmp/xsktun-netns.}
    owner=${owner%%.*}
    [[ $owner =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null && rm -rf "$d"
  done
  return 0
}

# Pin directories of XDP-mode daemons that a killed run SIGKILLed (their programs went with the
# veths of the deleted namespaces). Only names of the new_ifname pattern, with no live daemon,
# untouched for a minute: never a pin directory another user's xsktun is just creating.
reap_stale_pins() {
  local d name pid
  for d in "$XSKTUN_PIN_ROOT"/*; do
    [[ -d $d ]] || continue
    name=${d##*/}
    [[ $name =~ ^[a-z]{2,4}[0-9a-f]{4}[0-9]+$ ]] || continue
    pid=$(cat "$XSKTUN_RUN_DIR/$name.pid" 2>/dev/null || true)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && continue
    [[ -n $(find "$d" -maxdepth 0 -mmin +1 2>/dev/null) ]] || continue
    info "removing pin directory $d (and $name's run files) left by a killed run"
    rm -rf "$d"
    rm -f "$XSKTUN_RUN_DIR/$name.pid" "$XSKTUN_RUN_DIR/$name.sock" "$XSKTUN_RUN_DIR/$name.lock"
    [[ -S $WG_RUN_DIR/$name.sock ]] && ! wg show "$name" >/dev/null 2>&1 && rm -f "$WG_RUN_DIR/$name.sock"
  done
  rmdir "$XSKTUN_PIN_ROOT" 2>/dev/null || true
}

# ns_kill NS...: SIGTERM to every process inside the namespaces, SIGKILL to those left 5 s later.
ns_kill() {
  local ns pids i
  for ns in "$@"; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] || kill -TERM $pids 2>/dev/null || true
  done
  for i in $(seq 50); do
    pids=""
    for ns in "$@"; do pids+=$(ip netns pids "$ns" 2>/dev/null || true); done
    [[ -n $pids ]] || return 0
    sleep 0.1
  done
  for ns in "$@"; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  done
}

# netns_init: netns_prepare, and the traps that tear everything down (netns_cleanup) on any exit.
netns_init() {
  netns_prepare
  trap netns_cleanup EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 141' PIPE
  trap 'exit 143' TERM
  trap 'netns_on_err $? $LINENO "$BASH_COMMAND"' ERR
}

# netns_prepare: removes what killed runs left, picks the run suffix, makes the temp dir.
netns_prepare() {
  reap_stale_netns
  SUF=$(printf '%04x' $(( (RANDOM ^ $$) & 0xffff )))
  TEST_TMP=$(mktemp -d "/tmp/xsktun-netns.$$.XXXXXX")
  # wg-quick runs "$WG_QUICK_USERSPACE_IMPLEMENTATION IFNAME": it must find a file named xsktun.
  mkdir -p "$TEST_TMP/bin"
  ln -s "$XSKTUN_BIN" "$TEST_TMP/bin/xsktun"
  # A sanitized build (XSKTUN_SANITIZE=ON) writes its reports to files; any report fails the
  # run in netns_cleanup (the daemons run detached, their stderr goes nowhere).
  if ldd "$XSKTUN_BIN" 2>/dev/null | grep -q libasan; then
    export ASAN_OPTIONS="log_path=$TEST_TMP/sanitizer:detect_leaks=1"
    export UBSAN_OPTIONS="log_path=$TEST_TMP/sanitizer:print_stacktrace=1"
    info "sanitized xsktun build: ASan/UBSan reports fail the run"
  fi
}

# new_ifname VAR PREFIX: VAR := a fresh interface name, PREFIX (<= 4 chars) + run suffix + sequence
# number (<= 15 chars). Not a $(...) helper: the sequence counter must survive the call.
new_ifname() {
  _IF_SEQ=$((_IF_SEQ + 1))
  printf -v "$1" '%s%s%d' "$2" "$SUF" "$_IF_SEQ"
}

n() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

netns_new() {
  local ns=$1
  ip netns add "$ns"
  _NS_LIST+=("$ns")
  ip -n "$ns" link set lo up
  # No DAD: addresses are usable at once instead of after ~1-2 s of tentative state.
  n "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  # Roaming tests delete the primary IPv4 address: keep the secondaries instead of flushing them.
  n "$ns" sysctl -qw net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf.default.promote_secondaries=1
}

netns_del() {
  local ns=$1 i
  ip netns del "$ns" 2>/dev/null || true
  for i in "${!_NS_LIST[@]}"; do [[ ${_NS_LIST[$i]} == "$ns" ]] && unset '_NS_LIST[i]'; done
  return 0
}

# veth_new NS1 IF1 NS2 IF2 [QUEUES]: a veth pair with its ends directly inside the two
# namespaces, with QUEUES (default 1) RX and TX queues on each end.
veth_new() {
  local q=${5:-1}
  ip -n "$1" link add "$2" numtxqueues "$q" numrxqueues "$q" type veth \
    peer name "$4" numtxqueues "$q" numrxqueues "$q" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
  [[ -n ${_NS_NIC[$1]:-} ]] || _NS_NIC[$1]=$2
  [[ -n ${_NS_NIC[$3]:-} ]] || _NS_NIC[$3]=$4
}

# nsx NS CMD...: CMD in the network namespace only (host mounts, so /sys/fs/bpf is the host's
# bpffs: what XDP-mode daemons pin to and bpftool must read; `ip netns exec` hides it).
nsx() { local ns=$1; shift; nsenter --net="/var/run/netns/$ns" "$@"; }

# addr_add NS IF ADDR/LEN...: IPv6 addresses get nodad.
addr_add() {
  local ns=$1 dev=$2 a
  shift 2
  for a in "$@"; do
    if [[ $a == *:* ]]; then ip -n "$ns" addr add "$a" dev "$dev" nodad
    else ip -n "$ns" addr add "$a" dev "$dev"; fi
  done
}

# bg_register PID: a background helper (started with `ip netns exec ... &`, not through n(), so
# that PID is the helper itself) that cleanup kills.
bg_register() { _BG_PIDS+=("$1"); }
bg_done() {  # bg_done PID: reaped, so cleanup must not signal that (possibly reused) pid
  local p keep=()
  for p in "${_BG_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  _BG_PIDS=("${keep[@]}")
}

netns_cleanup() {
  local rc=$?
  [[ $_CLEANED -eq 1 ]] && return
  _CLEANED=1
  set +e
  trap - ERR
  if [[ $rc -ne 0 && $rc -ne 77 ]]; then diag_dump; fi
  netns_teardown
  local reports=("$TEST_TMP"/sanitizer.*)
  if [[ -e ${reports[0]} ]]; then
    echo "FAIL: sanitizer reports from xsktun:" >&2
    head -n 40 "${reports[@]}" >&2
    [[ $rc -eq 0 || $rc -eq 77 ]] && rc=1
  fi
  [[ -n $TEST_TMP && -d $TEST_TMP ]] && rm -rf "$TEST_TMP"
  exit "$rc"
}

# netns_teardown: stops what this run started (background helpers, daemons), deletes its
# namespaces and run files, and forgets them, so that a run can start afresh (bench.sh: per cell).
# Never fails (errexit and the ERR trap do not apply inside: bench.sh runs with both).
netns_teardown() { _netns_teardown || true; }
_netns_teardown() {
  local p i
  for p in "${_BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for i in "${_IF_LIST[@]}"; do
    if [[ ${_IF_KIND[$i]} == xsktun ]]; then xsktun_kill "$i"; else wggo_kill "$i"; fi
  done
  # XDP programs of SIGKILLed daemons go with the veths when the namespaces are deleted below;
  # their pins would stay.
  for i in "${!_IF_NIC[@]}"; do
    [[ -n ${_IF_NS[$i]:-} ]] && nsx "${_IF_NS[$i]}" ip link set dev "${_IF_NIC[$i]}" xdp off 2>/dev/null
  done
  for i in "${_NS_LIST[@]}"; do ip netns del "$i" 2>/dev/null; done
  for i in "${_IF_LIST[@]}"; do
    rm -f "$WG_RUN_DIR/$i.sock" "$XSKTUN_RUN_DIR/$i.sock" "$XSKTUN_RUN_DIR/$i.pid" "$XSKTUN_RUN_DIR/$i.lock" \
      "$WG_RUN_DIR/$i.name"
    [[ ${_IF_KIND[$i]} == xsktun && -d $XSKTUN_PIN_ROOT/$i ]] && rm -rf "${XSKTUN_PIN_ROOT:?}/$i"
  done
  rmdir "$XSKTUN_PIN_ROOT" 2>/dev/null
  _NS_LIST=() _IF_LIST=() _BG_PIDS=()
  _WGGO_PID=() _IF_NS=() _IF_KIND=() _IF_NIC=() _NS_NIC=()
  return 0
}

# --- failure reporting -----------------------------------------------------------------------

diag_dump() {
  [[ $_DIAG_DONE -eq 1 ]] && return
  _DIAG_DONE=1
  local i ns
  echo "======== diagnostics ========" >&2
  for i in "${_IF_LIST[@]}"; do
    ns=${_IF_NS[$i]}
    [[ -S $WG_RUN_DIR/$i.sock ]] || continue
    echo "---- [$ns] wg show $i (${_IF_KIND[$i]})" >&2
    wg show "$i" >&2 2>&1
    if [[ ${_IF_KIND[$i]} == xsktun ]]; then
      echo "---- xsktun show $i --json" >&2
      "$XSKTUN_BIN" show "$i" --json >&2 2>&1
    fi
    if [[ -n ${_IF_NIC[$i]:-} ]]; then
      echo "---- [$ns] XDP on ${_IF_NIC[$i]}, pins of $i" >&2
      ip -d -n "$ns" link show "${_IF_NIC[$i]}" >&2 2>&1
      ls -l "$XSKTUN_PIN_ROOT/$i" >&2 2>&1
    fi
  done
  for i in "${_IF_LIST[@]}"; do
    [[ -s $(daemon_log "$i") ]] || continue
    echo "---- log of $i (${_IF_KIND[$i]}), last 60 lines" >&2
    grep -v -e 'Routine:' -e '^[│┌└]' "$(daemon_log "$i")" | tail -n 60 >&2
  done
  for ns in "${_NS_LIST[@]}"; do
    echo "---- [$ns] ip addr / ip route / udp sockets" >&2
    ip -n "$ns" -br addr >&2 2>&1
    ip -n "$ns" route >&2 2>&1
    ip -n "$ns" -6 route >&2 2>&1
    n "$ns" ss -uanp >&2 2>&1
  done
  echo "======== end of diagnostics ========" >&2
}

# In a $(...) subshell only the message is printed: the caller fails on the empty result, and
# the main shell dumps the diagnostics once.
netns_on_err() {
  echo "FAIL: command '$3' exited with $1 at line $2 (${BASH_SOURCE[1]:-?})" >&2
  [[ $BASHPID == "$$" ]] && diag_dump
  exit 1
}

# udp_sock_drops NS PORT: datagrams the kernel dropped on the UDP socket(s) bound to PORT.
udp_sock_drops() {
  n "$1" ss -Huanm "sport = :$2" | grep -o 'd[0-9]*)' | tr -dc '0-9\n' | awk '{ s += $1 } END { print s + 0 }'
}

# passed_summary WHAT: the closing line of a suite, with the KNOWN BUG assertions it skipped.
passed_summary() {
  if ((KNOWN_BUGS > 0)); then
    pretty "$1 passed in $SECONDS s, with $KNOWN_BUGS KNOWN BUG assertion(s) skipped (see above)"
  else
    pretty "$1 passed in $SECONDS s"
  fi
}

# run_cases: runs the cases in $CASES (default $CASES_ALL) through the CASE_FN / CASE_NAME maps
# the suite declares, one timed line per case.
run_cases() {
  local c t0
  for c in ${CASES:-$CASES_ALL}; do
    [[ -n ${CASE_FN[$c]:-} ]] || die "unknown case '$c' (known: $CASES_ALL)"
    t0=$SECONDS
    ${CASE_FN[$c]}
    pretty "$c. ${CASE_NAME[$c]} ($((SECONDS - t0)) s)"
  done
}

# known_bug MSG: an xsktun bug this test exposes but does not fail on (reported, to be fixed in
# xsktun); only the one assertion is skipped, the run continues.
KNOWN_BUGS=0
known_bug() {
  echo -e "\x1b[33m\x1b[1mKNOWN BUG (assertion skipped): $*\x1b[0m" >&2
  KNOWN_BUGS=$((KNOWN_BUGS + 1))
}

die() {
  echo -e "\x1b[31m\x1b[1mFAIL: $*\x1b[0m" >&2
  [[ $BASHPID == "$$" ]] && diag_dump
  exit 1
}

# --- assertions ------------------------------------------------------------------------------

expect_eq() {  # expect_eq WHAT GOT WANT
  [[ $2 == "$3" ]] || die "$1: got '$2', want '$3'"
}
expect_ge() {  # expect_ge WHAT GOT MIN
  [[ $2 =~ ^-?[0-9]+$ ]] || die "$1: got '$2', not a number"
  (( $2 >= $3 )) || die "$1: got $2, want >= $3"
}

# xs_counters VAR IF NAME...: VAR (an associative array) := the named counters, from one
# `xsktun show` (so they are one consistent snapshot).
xs_counters() {
  local -n _out=$1
  local ifn=$2 k v
  shift 2
  _out=()
  # shellcheck disable=SC2004  # an associative array's key, not arithmetic
  while read -r k v; do _out[$k]=$v; done < <("$XSKTUN_BIN" show "$ifn" --json |
    python3 "$NETNS_LIB_DIR/jsonq.py" counters "$@")
  (( ${#_out[@]} == $# )) || die "xsktun show $ifn: missing counters among: $*"
}

# --- daemons ---------------------------------------------------------------------------------

_register_if() { _IF_LIST+=("$1"); _IF_NS[$1]=$2; _IF_KIND[$1]=$3; }

daemon_log() { echo "${NETNS_LOG_DIR:-$TEST_TMP}/$1.log"; }  # daemon_log IF: its log file

# _up_limited CMD...: CMD, stopped after NETNS_UP_TIMEOUT seconds when that is set.
_up_limited() {
  if [[ -z $NETNS_UP_TIMEOUT ]]; then "$@"; else timeout "$NETNS_UP_TIMEOUT" "$@"; fi
}

# xsktun_start NS IF [extra `xsktun up` args...]: returns once the daemon reported ready, in
# mode $XSKTUN_UP_MODE (from XSKTUN_TEST_MODE; in xdp mode --nic defaults to the namespace's first
# veth end). nsenter enters only the network namespace, so the daemon keeps the host's
# /sys/fs/bpf (XDP mode pins there).
XSKTUN_UP_MODE=${XSKTUN_TEST_MODE:-socket}
case $XSKTUN_UP_MODE in
  socket | xdp) ;;
  *) echo "FAIL: XSKTUN_TEST_MODE must be socket or xdp, not '$XSKTUN_UP_MODE'" >&2; exit 1 ;;
esac
xsktun_start() {
  local ns=$1 ifn=$2
  shift 2
  local args=("$@") nic=""
  _register_if "$ifn" "$ns" xsktun
  if [[ $XSKTUN_UP_MODE == xdp ]]; then
    nic=$(_arg_after --nic "$@")
    if [[ -z $nic ]]; then
      nic=${_NS_NIC[$ns]:-}
      [[ -n $nic ]] || die "xsktun_start $ifn: XDP mode but no veth in $ns and no --nic"
      args+=(--nic "$nic")
    fi
    _IF_NIC[$ifn]=$nic
  fi
  [[ -z $NETNS_XSKTUN_LOG_LEVEL ]] || args=(--log-level "$NETNS_XSKTUN_LOG_LEVEL" "${args[@]}")
  _up_limited nsenter --net="/var/run/netns/$ns" "$XSKTUN_BIN" up "$ifn" --mode "$XSKTUN_UP_MODE" \
    --log-file "$(daemon_log "$ifn")" "${args[@]}" || die "xsktun up $ifn failed"
  [[ -S $WG_RUN_DIR/$ifn.sock ]] || die "xsktun up $ifn returned but $WG_RUN_DIR/$ifn.sock is missing"
}

_arg_after() {  # _arg_after OPT ARGS...: the value following OPT in ARGS, if any
  local opt=$1
  shift
  while (($# > 1)); do
    [[ $1 == "$opt" ]] && { echo "$2"; return 0; }
    shift
  done
  return 0
}

xsktun_pid() { cat "$XSKTUN_RUN_DIR/$1.pid" 2>/dev/null; }

# xsktun_stop IF: SIGTERM (what init systems send) and check it left nothing behind.
xsktun_stop() {
  local ifn=$1 pid
  pid=$(xsktun_pid "$ifn")
  [[ -n $pid ]] || die "xsktun_stop $ifn: no pid file"
  kill -TERM "$pid"
  wait_pid_gone "$pid" "xsktun $ifn after SIGTERM"
  assert_xsktun_gone "$ifn"
}

# xsktun_down IF...: `xsktun down` for each (in parallel), then check nothing is left behind.
# `down` waits until the daemon's pid stops answering kill(pid, 0), which a zombie still does;
# PID 1 on some machines reaps orphans only every ~2 s, so parallel downs keep the test short.
xsktun_down() {
  local ifn pids=() i=0
  for ifn in "$@"; do
    "$XSKTUN_BIN" down "$ifn" &
    pids+=($!)
  done
  for ifn in "$@"; do
    wait "${pids[$i]}" || die "xsktun down $ifn failed"
    i=$((i + 1))
  done
  for ifn in "$@"; do assert_xsktun_gone "$ifn"; done
}

# Cleanup path: never fails. (Only pids from the pid files of this run's interface names.)
xsktun_kill() {
  local ifn=$1 pid i
  pid=$(xsktun_pid "$ifn")
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do pid_alive "$pid" || return 0; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
}

# wggo_start NS IF [IMPL]: wireguard-go (or IMPL, started the same way) in the foreground (so its
# pid and log are ours), backgrounded. With NETNS_WGGO_FOREGROUND=0 it is started as `IMPL IF`
# and daemonizes: the daemon is then the process that holds the UAPI socket.
wggo_start() {
  local ns=$1 ifn=$2 impl=${3:-wireguard-go} i pid envs=(WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1)
  _register_if "$ifn" "$ns" wggo
  [[ -z $NETNS_WGGO_LOG_LEVEL ]] || envs+=(LOG_LEVEL="$NETNS_WGGO_LOG_LEVEL")
  if [[ $NETNS_WGGO_FOREGROUND == 0 ]]; then
    _up_limited env "${envs[@]}" nsenter --net="/var/run/netns/$ns" "$impl" "$ifn" >"$(daemon_log "$ifn")" 2>&1 ||
      die "'$impl $ifn' in $ns failed (exit $?)"
    for i in $(seq 100); do [[ -S $WG_RUN_DIR/$ifn.sock ]] && break; sleep 0.1; done
    [[ -S $WG_RUN_DIR/$ifn.sock ]] || die "$impl $ifn: no UAPI socket $WG_RUN_DIR/$ifn.sock after 10 s"
    pid=$(nsx "$ns" ss -Hxlp src "$WG_RUN_DIR/$ifn.sock" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2) || true
    [[ -n $pid ]] || die "cannot find the process that owns $WG_RUN_DIR/$ifn.sock"
    _WGGO_PID[$ifn]=$pid
    return 0
  fi
  env "${envs[@]}" nsenter --net="/var/run/netns/$ns" "$impl" -f "$ifn" >"$(daemon_log "$ifn")" 2>&1 &
  pid=$!
  _WGGO_PID[$ifn]=$pid
  for i in $(seq 100); do
    if [[ -S $WG_RUN_DIR/$ifn.sock ]] && wg show "$ifn" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$impl $ifn exited during startup"
    sleep 0.05
  done
  die "$impl $ifn: no UAPI socket after 5 s"
}

wggo_kill() {
  local ifn=$1 pid=${_WGGO_PID[$1]:-} i
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do pid_alive "$pid" || break; sleep 0.05; done
  if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  unset '_WGGO_PID[$ifn]'
  rm -f "$WG_RUN_DIR/$ifn.sock"
}

wggo_stop() { wggo_kill "$1"; }

# tun_addr NS IF ADDR...: assigns the inner addresses and brings the tunnel up.
tun_addr() {
  local ns=$1 ifn=$2
  shift 2
  addr_add "$ns" "$ifn" "$@"
  ip -n "$ns" link set "$ifn" up
}

# --- keys and wg(8) --------------------------------------------------------------------------

# genkey NAME: writes $TEST_TMP/NAME.key and .pub, prints nothing.
genkey() {
  (umask 077 && wg genkey >"$TEST_TMP/$1.key")
  wg pubkey <"$TEST_TMP/$1.key" >"$TEST_TMP/$1.pub"
}
key() { echo "$TEST_TMP/$1.key"; }
pub() { cat "$TEST_TMP/$1.pub"; }

# latest_handshake IF PUB: unix seconds, 0 = never.
latest_handshake() { wg show "$1" latest-handshakes | awk -v k="$2" '$1 == k { print $2 }'; }
peer_endpoint() { wg show "$1" endpoints | awk -v k="$2" '$1 == k { print $2 }'; }
# peer_transfer IF PUB: "rx tx"
peer_transfer() { wg show "$1" transfer | awk -v k="$2" '$1 == k { print $2, $3 }'; }

wait_handshake() {
  local ifn=$1 pk=$2 tries=${3:-50} i t
  for i in $(seq "$tries"); do
    t=$(latest_handshake "$ifn" "$pk")
    [[ -n $t && $t != 0 ]] && return 0
    sleep 0.1
  done
  die "no handshake on $ifn with peer $pk after $((tries / 10)) s"
}

# --- xsktun status ---------------------------------------------------------------------------

# xs_json IF PYEXPR...: each PYEXPR evaluated on the parsed `xsktun show IF --json` (as d), the
# results on one line, separated by spaces (JSON spelling for booleans).
xs_json() {
  local ifn=$1
  shift
  "$XSKTUN_BIN" show "$ifn" --json | python3 "$NETNS_LIB_DIR/jsonq.py" eval "$@"
}

# xsktun_counter IF NAME: a value of the "counters" object of `xsktun show --json`.
# (Parsed with awk so the test needs no jq; the JSON is pretty-printed one key per line.)
xsktun_counter() {
  local v
  v=$("$XSKTUN_BIN" show "$1" --json | awk -v k="\"$2\":" '
    /"counters": *\{/ { inside = 1; next }
    inside && /^ *\}/ { inside = 0 }
    inside && $1 == k { gsub(/[^0-9]/, "", $2); print $2 }')
  [[ -n $v ]] || die "xsktun show $1 --json has no counter '$2'"
  echo "$v"
}

# xsktun_json_field IF KEY: a top-level scalar (e.g. mode, listen_port).
xsktun_json_field() {
  "$XSKTUN_BIN" show "$1" --json | awk -v k="\"$2\":" '
    /^  "/ && $1 == k { v = $2; gsub(/[",]/, "", v); print v }'
}

# assert_capeff IF MODE: the daemon keeps only the capabilities of its running set
# (userspace/cli/privileges.cpp): CAP_NET_ADMIN (12) and CAP_NET_BIND_SERVICE (10), plus in XDP
# mode CAP_SYS_ADMIN (21) and CAP_BPF (39); its bounding set is the same.
CAPS_SOCKET=0000000000001400
CAPS_XDP=0000008000201400
assert_capeff() {  # assert_capeff IF MODE [user]: with --user, CAP_DAC_OVERRIDE (1) too
  local pid want eff bnd
  pid=$(xsktun_pid "$1")
  if [[ $2 == xdp ]]; then want=$CAPS_XDP; else want=$CAPS_SOCKET; fi
  [[ ${3:-} != user ]] || want=$(printf '%016x' $((16#$want | 2)))
  eff=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
  bnd=$(awk '/^CapBnd:/ { print $2 }' "/proc/$pid/status")
  [[ $eff == "$want" ]] || die "xsktun $1 ($2 mode): CapEff $eff, want $want"
  [[ $bnd == "$want" ]] || die "xsktun $1 ($2 mode): CapBnd $bnd, want $want"
  # Every thread: capabilities are per thread, and the daemon drops them before starting any.
  local t
  for t in /proc/"$pid"/task/*; do
    [[ $(awk '/^CapEff:/ { print $2 }' "$t/status") == "$want" ]] || die "xsktun $1: thread ${t##*/} has other capabilities"
  done
}

# Asserts that nothing of xsktun IF is left: no process, TUN, sockets or pid file.
assert_xsktun_gone() {
  local ifn=$1 ns=${_IF_NS[$1]:-} i
  for i in $(seq 50); do
    [[ -e $XSKTUN_RUN_DIR/$ifn.pid || -e $XSKTUN_RUN_DIR/$ifn.sock || -e $XSKTUN_RUN_DIR/$ifn.lock ||
      -e $WG_RUN_DIR/$ifn.sock ]] || break
    sleep 0.1
  done
  [[ ! -e $XSKTUN_RUN_DIR/$ifn.pid ]] || die "$XSKTUN_RUN_DIR/$ifn.pid left behind"
  [[ ! -e $XSKTUN_RUN_DIR/$ifn.sock ]] || die "$XSKTUN_RUN_DIR/$ifn.sock left behind"
  [[ ! -e $XSKTUN_RUN_DIR/$ifn.lock ]] || die "$XSKTUN_RUN_DIR/$ifn.lock left behind"
  [[ ! -e $WG_RUN_DIR/$ifn.sock ]] || die "$WG_RUN_DIR/$ifn.sock left behind"
  if [[ -n $ns ]] && ip -n "$ns" link show "$ifn" >/dev/null 2>&1; then die "TUN $ifn left behind in $ns"; fi
  if pgrep -f "xsktun.* $ifn( |$)" >/dev/null; then die "an xsktun process for $ifn is still running"; fi
  [[ ! -e $XSKTUN_PIN_ROOT/$ifn ]] || die "pinned maps $XSKTUN_PIN_ROOT/$ifn left behind"
  local nic=${_IF_NIC[$ifn]:-}
  if [[ -n $nic ]] && ip -n "$ns" link show "$nic" | grep -q 'prog/xdp'; then
    die "XDP program left on $nic: $(ip -n "$ns" link show "$nic")"
  fi
  return 0
}

# --- traffic ---------------------------------------------------------------------------------

# ping_ok NS DST [ping args...]: all 3 echo requests answered within 5 s.
ping_ok() {
  local ns=$1 dst=$2 out
  shift 2
  out=$(n "$ns" ping -n -c 3 -i 0.2 -w 5 "$@" "$dst" 2>&1) || die "ping $dst from $ns $* failed:
$out"
}

# ping_none NS DST COUNT [ping args...]: exactly COUNT echo requests, 0.3 s apart, and no reply
# at all (-W 1: the last one gets a second).
ping_none() {
  local ns=$1 dst=$2 count=$3 out
  shift 3
  out=$(n "$ns" ping -n -c "$count" -i 0.3 -W 1 "$@" "$dst" 2>&1) || true
  [[ $out == *"$count packets transmitted, 0 received"* ]] ||
    die "ping $dst from $ns $*: expected $count requests and no reply, got:
$out"
}

# ping_eventually NS DST SECS [ping args...]: one request a second until one is answered.
ping_eventually() {
  local ns=$1 dst=$2 secs=$3 out
  shift 3
  out=$(n "$ns" ping -n -c 1 -w "$secs" "$@" "$dst" 2>&1) || die "no reply from $dst ($ns $*) within $secs s:
$out"
}

# iperf_json OUT NS_SERVER SERVER_ADDR NS_CLIENT [client args...]: iperf3 -J of the client in OUT.
iperf_json() {
  local out=$1 nss=$2 addr=$3 nsc=$4 i srv
  shift 4
  ip netns exec "$nss" iperf3 -s -1 -B "$addr" -p 5201 >/dev/null 2>&1 &
  srv=$!
  bg_register $srv
  for i in $(seq 50); do
    [[ -n $(n "$nss" ss -Htln "sport = 5201") ]] && break
    sleep 0.05
  done
  n "$nsc" iperf3 -c "$addr" -p 5201 -J "$@" >"$out" || die "iperf3 -c $addr $* failed: $(cat "$out")"
  wait $srv || true
  bg_done $srv
}

# iperf_run VAR NS_SERVER SERVER_ADDR NS_CLIENT [client args...]: VAR := the bytes the server
# received (iperf3 -J "sum_received").
iperf_run() {
  local var=$1 out=$TEST_TMP/iperf.$RANDOM.json
  shift
  iperf_json "$out" "$@"
  printf -v "$var" '%s' "$(awk '/"sum_received"/ { f = 1 }
    f && /"bytes"/ { gsub(/[^0-9]/, ""); print; exit }' "$out")"
}

# pid_alive PID: running and not a zombie (an orphaned daemon that exited stays a zombie until
# PID 1 reaps it, which some init systems do lazily).
pid_alive() {
  local st
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

wait_pid_gone() {  # wait_pid_gone PID WHAT
  local i
  for i in $(seq 100); do pid_alive "$1" || return 0; sleep 0.05; done
  die "$2 (pid $1) still running 5 s later"
}
