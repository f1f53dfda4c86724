#!/usr/bin/env bash
# xsktun as a system service, where systemd is not PID 1 (as in CI): the unit files pass
# `systemd-analyze verify`, and the unit's own ExecStart / ExecReload / stop are run the way
# systemd runs them (EnvironmentFile, $NOTIFY_SOCKET, SIGTERM), in a network namespace.
# Usage (as root): tests/netns/service.sh /path/to/xsktun
#
# 1 units: verify (binary paths pointed at the build), the sandbox's exposure level
#   (`systemd-analyze security --offline`), `xsktun --version`;
# 2 Type=notify: READY=1 arrives once the tunnel is up, ExecReload (wg syncconf of the file)
#   applies a changed config, SIGTERM sends STOPPING=1 and leaves nothing behind;
# 3 metrics: GET /metrics (--metrics-listen, loopback by default) and `show --format
#   prometheus` pass `promtool check metrics`.
#
# Exit codes: 0 pass, 1 fail, 77 skip (not root / tools missing).
set -eEu -o pipefail

XSKTUN_BIN=${1:-${XSKTUN:-$(command -v xsktun || true)}}
XSKTUN_BIN=$(realpath "$XSKTUN_BIN" 2>/dev/null || true)
HERE=$(dirname "$(realpath "$0")")
# SERVICE_UNITS=/lib/systemd/system checks the installed units instead (scripts/package.sh).
UNITS=${SERVICE_UNITS:-$HERE/../../packaging/systemd}
# shellcheck source=tests/netns/lib.sh
source "$HERE/lib.sh"
netns_require
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze missing (package systemd)"; exit 77; }
netns_init

NS=$(ns_name s)
IFN=""

# The unit with its absolute paths pointed at this build and at a scratch /etc/xsktun.
local_unit() {
  sed -e "s|/usr/bin/xsktun|$XSKTUN_BIN|g" -e "s|/usr/bin/wg |$(command -v wg) |g" \
    -e "s|/etc/xsktun/|$TEST_TMP/etc/|g" "$UNITS/xsktun@.service"
}

case_units() {
  local d=$TEST_TMP/units out exposure
  mkdir -p "$d"
  local_unit >"$d/xsktun@wg7.service"
  out=$(systemd-analyze verify --man=no "$d/xsktun@wg7.service" 2>&1) || die "systemd-analyze verify: $out"
  [[ -z $out ]] || die "systemd-analyze verify complained: $out"
  exposure=$(systemd-analyze security --offline=true "$d/xsktun@wg7.service" 2>&1 |
    awk '/Overall exposure level/ { print $(NF - 2) }')
  info "systemd-analyze security: exposure level $exposure (0 = locked down, 10 = unprotected)"
  awk -v e="$exposure" 'BEGIN { exit !(e + 0 > 0 && e + 0 <= 4.0) }' || die "exposure level '$exposure', want <= 4.0"
  grep -q '^Environment=WG_QUICK_USERSPACE_IMPLEMENTATION=xsktun$' "$UNITS/wg-quick@.service.d/xsktun.conf" ||
    die "the wg-quick drop-in does not select xsktun"
  out=$("$XSKTUN_BIN" --version)
  [[ $out =~ ^xsktun\ [0-9]+\.[0-9]+\.[0-9]+ ]] || die "xsktun --version: '$out'"
  [[ $out == "xsktun $(cat "$HERE/../../VERSION")"* ]] || die "xsktun --version does not print VERSION: '$out'"
  info "$out"
}

# notify_listener FILE: a datagram socket at $TEST_TMP/notify that appends what it receives.
notify_listener() {
  python3 "$HERE/service.py" notify-listen "$TEST_TMP/notify" "$1" &
  bg_register $!
  local i
  for i in $(seq 50); do [[ -S $TEST_TMP/notify ]] && return 0; sleep 0.05; done
  die "notify socket did not appear"
}

case_notify() {
  local log=$TEST_TMP/notify.log exec_start reload pid i
  netns_new "$NS"
  new_ifname IFN sv
  _register_if "$IFN" "$NS" xsktun
  mkdir -p "$TEST_TMP/etc"
  ensure_keys
  printf '[Interface]\nPrivateKey = %s\nListenPort = 51401\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.249.0.2/32\n' \
    "$(cat "$(key sv)")" "$(pub p1)" >"$TEST_TMP/etc/$IFN.conf"
  echo 'XSKTUN_ARGS="--mode socket --log-level debug"' >"$TEST_TMP/etc/$IFN.env"
  notify_listener "$log"
  # ExecStart as systemd runs it: %i expanded, $XSKTUN_ARGS split into words from the env file.
  exec_start=$(local_unit | sed -n 's/^ExecStart=//p' | sed "s/%i/$IFN/g")
  reload=$(local_unit | sed -n 's/^ExecReload=//p' | sed "s/%i/$IFN/g")
  # shellcheck disable=SC1090
  (set -a; source "$TEST_TMP/etc/$IFN.env"; set +a
   export NOTIFY_SOCKET=$TEST_TMP/notify
   eval "exec nsenter --net=/var/run/netns/$NS $exec_start --log-file $TEST_TMP/$IFN.log") &
  pid=$!
  bg_register $pid
  for i in $(seq 100); do grep -q READY=1 "$log" 2>/dev/null && break; sleep 0.05; done
  grep -q READY=1 "$log" || die "no READY=1 on \$NOTIFY_SOCKET within 5 s"
  info "notified: $(head -1 "$log")"
  [[ $(head -1 "$log") == *"MAINPID=$pid"* ]] || die "READY=1 names another MAINPID: $(head -1 "$log") (pid $pid)"
  [[ -S $WG_RUN_DIR/$IFN.sock ]] || die "READY=1 before the UAPI socket exists"
  expect_eq "peers from the config file" "$(wg show "$IFN" peers)" "$(pub p1)"
  # ExecReload: the changed file applied with syncconf semantics (p1 gone, p2 added).
  sed -i "s|$(pub p1)|$(pub p2)|" "$TEST_TMP/etc/$IFN.conf"
  $reload
  expect_eq "peers after ExecReload" "$(wg show "$IFN" peers)" "$(pub p2)"
  kill -TERM "$pid"
  wait "$pid" || die "xsktun exited with $? after SIGTERM"
  bg_done "$pid"
  grep -q STOPPING=1 "$log" || die "no STOPPING=1 on \$NOTIFY_SOCKET"
  assert_xsktun_gone "$IFN"
}

# GET /metrics in the namespace (urllib; no curl needed): prints the body.
scrape() {
  nsenter --net="/var/run/netns/$NS" python3 "$HERE/service.py" scrape "$1"
}

# Keys of the daemon and two peers (each case may run alone: CASES="3").
ensure_keys() {
  local k
  for k in sv p1 p2; do [[ -e $TEST_TMP/$k.key ]] || genkey $k; done
}

case_metrics() {
  local ifn out page=$TEST_TMP/metrics.txt
  ensure_keys
  command -v promtool >/dev/null || die "promtool missing (package prometheus; scripts/install-deps.sh installs it)"
  [[ -e /var/run/netns/$NS ]] || netns_new "$NS"
  new_ifname ifn sm
  XSKTUN_UP_MODE=socket
  xsktun_start "$NS" "$ifn" --metrics-listen 9587
  assert_capeff "$ifn" socket
  # The running set is enough for what a set does: a low listen port, a fwmark, peers.
  wg set "$ifn" private-key "$(key sv)" listen-port 853 fwmark 0x42 peer "$(pub p1)" allowed-ips 10.249.0.2/32
  expect_eq "listen port after wg set with dropped capabilities" "$(wg show "$ifn" listen-port)" 853
  expect_eq "fwmark after wg set with dropped capabilities" "$(wg show "$ifn" fwmark)" 0x42
  # Bound to loopback unless told otherwise.
  out=$(n "$NS" ss -Htln "sport = 9587")
  [[ $out == *"127.0.0.1:9587"* ]] || die "--metrics-listen 9587 is not on 127.0.0.1 only: $out"
  scrape http://127.0.0.1:9587/metrics >"$page"
  out=$(promtool check metrics <"$page" 2>&1) || die "promtool check metrics (/metrics): $out"
  grep -q "^xsktun_rx_packets_total{interface=\"$ifn\"} 0$" "$page" || die "no xsktun_rx_packets_total in /metrics"
  grep -q "^xsktun_peer_rx_bytes_total{interface=\"$ifn\",public_key=\"$(pub p1)\"} 0$" "$page" ||
    die "no per-peer rx bytes labelled by public key in /metrics"
  grep -q "^xsktun_peer_latest_handshake_seconds{" "$page" || die "no latest-handshake gauge in /metrics"
  grep -q "^xsktun_worker_tx_packets_total{interface=\"$ifn\",worker=\"0\"} " "$page" ||
    die "no per-worker tx packets in /metrics"
  "$XSKTUN_BIN" show "$ifn" --format prometheus >"$page"
  out=$(promtool check metrics <"$page" 2>&1) || die "promtool check metrics (show --format prometheus): $out"
  info "/metrics and show --format prometheus pass promtool ($(grep -c '^xsktun' "$page") samples)"
  xsktun_stop "$ifn"
}

# --user nobody in both modes: the daemon runs as nobody with the running set plus
# CAP_DAC_OVERRIDE, wg set still works (a low port, a fwmark; in XDP mode the maps follow), and
# `down` leaves nothing (run files, UAPI socket, program, pins).
case_user() {
  local ns2 ifn mode pid uid out
  ensure_keys
  ns2=$(ns_name u)
  [[ -e /var/run/netns/$NS ]] || netns_new "$NS"
  netns_new "$ns2"
  veth_new "$NS" su0 "$ns2" su1
  for mode in socket xdp; do
    new_ifname ifn su
    XSKTUN_UP_MODE=$mode
    xsktun_start "$NS" "$ifn" --nic su0 --user nobody
    pid=$(xsktun_pid "$ifn")
    uid=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
    expect_eq "$mode: uids of the daemon with --user nobody" "$uid" "65534 65534 65534 65534"
    assert_capeff "$ifn" $mode user
    wg set "$ifn" private-key "$(key sv)" listen-port 854 fwmark 0x43 peer "$(pub p1)" allowed-ips 10.249.0.2/32
    expect_eq "$mode: listen port set as nobody" "$(wg show "$ifn" listen-port)" 854
    if [[ $mode == xdp ]]; then
      out=$(python3 "$HERE/maps.py" "$NS" "$ifn" "$XSKTUN_PIN_ROOT/$ifn" allowed 2>&1) || die "maps as nobody: $out"
      expect_eq "$mode: prefixes in the maps written as nobody" "$out" 1
    fi
    xsktun_down "$ifn"
  done
  out=$(nsx "$NS" "$XSKTUN_BIN" up sunone0 --mode socket --user no-such-user-xsktun 2>&1) && die "--user of a missing user worked"
  [[ $out == *"no such user"* ]] || die "--user of a missing user: $out"
}

CASES_ALL="1 2 3 4"
declare -A CASE_FN=([1]=case_units [2]=case_notify [3]=case_metrics [4]=case_user)
declare -A CASE_NAME=(
  [1]="xsktun@.service passes systemd-analyze verify, sandbox exposure <= 4.0; --version; wg-quick drop-in"
  [2]="the unit's ExecStart: READY=1 once up, ExecReload applies the file (syncconf), SIGTERM: STOPPING=1, nothing left"
  [4]="--user nobody, socket and XDP mode: uid, capabilities, wg set and map updates as nobody, down leaves nothing"
  [3]="capabilities dropped to the running set, wg set of a low port and fwmark still works; --metrics-listen on loopback and show --format prometheus pass promtool check metrics")

run_cases
passed_summary "all service cases"
