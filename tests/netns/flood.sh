#!/usr/bin/env bash
# Handshake-flood (DoS) test of xsktun against wireguard-go, in network namespaces, socket mode
# then XDP mode. Usage (as root): tests/netns/flood.sh /path/to/xsktun   (MODES=xdp for one mode)
# The flood generator xsktun-flood (tests/tools/flood.cpp) must sit next to the xsktun binary.
#
#   ns1 "xsktun side"                               ns2 "wireguard-go side + attacker"
#   vf1 192.168.244.1/24                   <---->  vf2 192.168.244.2/24 (wireguard-go)
#                                                       192.168.244.10-17/24 (the flooder)
#   xsktun tunnel 10.244.0.1/24, UDP 51201          wireguard-go tunnel 10.244.0.2/24, UDP 51202
#
# Per mode, with the tunnel up, xsktun-flood sends initiations with a VALID mac1 for xsktun's key
# from 8 source addresses at full rate (a responder not under load pays an X25519 for each one):
#   1. for 8 s, ping over the tunnel from ns2 every 50 ms: loss must stay < 20%;
#   2. still under the flood, wireguard-go's peer is removed and re-added, so wireguard-go has to
#      make a new handshake, which must complete (latest handshake set on both sides, ping works).
#      In socket mode xsktun is under load (whitepaper 5.3) and answers the flood with cookie
#      replies (cookie_replies_tx); wireguard-go's first initiation gets one too, and its retry
#      (REKEY_TIMEOUT later) carries mac2 and is accepted under load (handshake_mac2_ok), unless
#      it happened to arrive in a moment without load (then no cookie is needed; reported).
#      Under load the receive thread screens handshakes (cookie replies there, only mac2-valid
#      messages queued; a source over its budget dropped before any MAC is computed), so neither
#      the handshake queue nor, at the rates measured here, the kernel socket queue drops the real
#      peer's messages. Should the socket queue still overflow (a faster flooder, many sources),
#      it drops wireguard-go's messages with the flood's: if 5 attempts were not enough, the test
#      says so (KNOWN BUG, drop counts printed) and checks that the handshake completes once the
#      flood stops.
#      In XDP mode the XDP program's per-source handshake budget (20/s, burst 5,
#      bpf/xsktun_shared.h) drops the flood before userspace: xdp_drop_handshake_ratelimited
#      takes most of it, xdp_pass_handshake stays within the budget, no cookie is ever needed.
# Always: the daemon survives and its RSS grows by less than 64 MB. One summary line per mode
# prints the numbers (flood pps, ping loss, cookie replies, handshake time, RSS).
#
# Exit codes: 0 pass, 1 fail, 77 skip (not root / tools or xsktun-flood missing).
set -eEu -o pipefail

XSKTUN_BIN=${1:-${XSKTUN:-$(command -v xsktun || true)}}
XSKTUN_BIN=$(realpath "$XSKTUN_BIN" 2>/dev/null || true)
# shellcheck source=tests/netns/lib.sh
source "$(dirname "$(realpath "$0")")/lib.sh"
netns_require
FLOOD_BIN=$(dirname "$XSKTUN_BIN")/xsktun-flood
if [[ ! -x $FLOOD_BIN ]]; then
  echo "SKIP: flood generator $FLOOD_BIN not found (cmake --build BUILD --target xsktun-flood)"
  exit 77
fi
netns_init
# An AddressSanitizer build keeps 256 MB of freed memory in quarantine by default, which the RSS
# check would take for a leak: cap it (ignored by other builds).
[[ ${ASAN_OPTIONS:-} == *quarantine_size_mb* ]] || export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8

NS1=$(ns_name 1)
NS2=$(ns_name 2)
XS_PORT=51201
GO_PORT=51202
XS_OUT=192.168.244.1 GO_OUT=192.168.244.2
IN4_1=10.244.0.1 IN4_2=10.244.0.2
FLOOD_SRCS=192.168.244.10,192.168.244.11,192.168.244.12,192.168.244.13,192.168.244.14,192.168.244.15,192.168.244.16,192.168.244.17
PING_SECS=8             # phase 1: ping under the flood this long, one request per 50 ms
HANDSHAKE_WAIT=22       # phase 2: wireguard-go tries every REKEY_TIMEOUT (5 s + <= 1/3 s): 5 attempts
POST_FLOOD_WAIT=12      # (known bug) then without the flood: its next retry, or the one after a cookie
MAX_LOSS_PCT=20
MAX_RSS_GROWTH_KB=$((64 * 1024))
MIN_FLOOD_PPS=20000     # below this the test proves nothing (the machine may be shared)
XS_IF="" GO_IF=""

setup_underlay() {
  netns_new "$NS1"
  netns_new "$NS2"
  veth_new "$NS1" vf1 "$NS2" vf2
  # IPv4-only underlay: no IPv6 chatter.
  n "$NS1" sysctl -qw net.ipv6.conf.vf1.disable_ipv6=1
  n "$NS2" sysctl -qw net.ipv6.conf.vf2.disable_ipv6=1
  addr_add "$NS1" vf1 $XS_OUT/24
  addr_add "$NS2" vf2 $GO_OUT/24
  local a
  for a in ${FLOOD_SRCS//,/ }; do addr_add "$NS2" vf2 "$a/24"; done
  genkey xs
  genkey go
}

go_add_peer() {
  wg set "$GO_IF" peer "$(pub xs)" allowed-ips $IN4_1/32 endpoint $XS_OUT:$XS_PORT
}

pair_up() {
  new_ifname XS_IF fx
  new_ifname GO_IF fg
  xsktun_start "$NS1" "$XS_IF"
  wggo_start "$NS2" "$GO_IF"
  wg set "$XS_IF" private-key "$(key xs)" listen-port $XS_PORT \
    peer "$(pub go)" allowed-ips $IN4_2/32 endpoint $GO_OUT:$GO_PORT
  wg set "$GO_IF" private-key "$(key go)" listen-port $GO_PORT
  go_add_peer
  tun_addr "$NS1" "$XS_IF" $IN4_1/24
  tun_addr "$NS2" "$GO_IF" $IN4_2/24
}

pair_down() {
  xsktun_stop "$XS_IF"
  wggo_stop "$GO_IF"
}

# snap FILE: `xsktun show --json` of XS_IF, so a set of counters comes from one moment.
snap() { "$XSKTUN_BIN" show "$XS_IF" --json >"$1" || die "xsktun show $XS_IF failed"; }
# snap_get FILE NAME: a counter from a snapshot (as lib.sh's xsktun_counter).
snap_get() {
  local v
  v=$(awk -v k="\"$2\":" '/"counters": *\{/ { inside = 1; next }
    inside && /^ *\}/ { inside = 0 }
    inside && $1 == k { gsub(/[^0-9]/, "", $2); print $2 }' "$1")
  [[ -n $v ]] || die "xsktun show --json has no counter '$2'"
  echo "$v"
}
# delta NAME: the counter's growth from $TEST_TMP/c0.json to $TEST_TMP/c1.json.
delta() { echo $(($(snap_get "$TEST_TMP/c1.json" "$1") - $(snap_get "$TEST_TMP/c0.json" "$1"))); }

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# json_num FILE KEY: a number from the flooder's one-line JSON.
json_num() { grep -o "\"$2\": *[0-9.]*" "$1" | awk '{ print $2 }'; }

expect_le() {  # expect_le WHAT GOT MAX
  [[ $2 =~ ^-?[0-9]+$ ]] || die "$1: got '$2', not a number"
  (( $2 <= $3 )) || die "$1: got $2, want <= $3"
}

# wait_go_handshake SECS: polls wireguard-go's latest handshake with xsktun (go_hs) for up to
# SECS; hs_ms := milliseconds since $start. False if none by then.
wait_go_handshake() {
  local deadline=$(($(now_ms) + $1 * 1000))
  while :; do
    go_hs=$(latest_handshake "$GO_IF" "$(pub xs)")
    hs_ms=$(($(now_ms) - start))
    [[ $go_hs != 0 ]] && return 0
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
}
# go_log_counts: attempts, cookies := initiations wireguard-go sent and cookie replies it got
# since line log0 of its log.
go_log_counts() {
  attempts=$(tail -n +$((log0 + 1)) "$go_log" | grep -c "Sending handshake initiation" || true)
  cookies=$(tail -n +$((log0 + 1)) "$go_log" | grep -c "Receiving cookie response" || true)
}
fmt_ms() { echo "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"; }

# run_mode MODE: the whole scenario for one xsktun mode (socket | xdp).
run_mode() {
  local mode=$1 t0=$SECONDS pid rss0 rss1 fpid tpid out tx rx loss hs_ms=0 start go_hs=0 via_cookie=n/a
  XSKTUN_UP_MODE=$mode
  pair_up
  ping_ok "$NS2" $IN4_1
  ping_ok "$NS1" $IN4_2
  wait_handshake "$GO_IF" "$(pub xs)"
  wait_handshake "$XS_IF" "$(pub go)"
  local xs_hs0
  xs_hs0=$(latest_handshake "$XS_IF" "$(pub go)")
  pid=$(xsktun_pid "$XS_IF")
  rss0=$(rss_kb "$pid")
  snap "$TEST_TMP/c0.json"

  local fjson=$TEST_TMP/flood-$mode.json
  nsenter --net="/var/run/netns/$NS2" "$FLOOD_BIN" --dst $XS_OUT:$XS_PORT --kind init-mac1 \
    --peer-pub "$(pub xs)" --sources $FLOOD_SRCS --seconds 60 --out "$fjson" \
    >"$TEST_TMP/flood-$mode.log" 2>&1 &
  fpid=$!
  bg_register "$fpid"
  sleep 1  # the handshake queue fills, xsktun goes under load
  pid_alive "$fpid" || die "$mode: xsktun-flood exited at once: $(cat "$TEST_TMP/flood-$mode.log")"

  # Phase 1: the established session carries pings while the flood goes on.
  out=$(n "$NS2" ping -n -q -i 0.05 -c $((PING_SECS * 20)) -W 1 $IN4_1 2>&1) || true
  tx=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1/p' <<<"$out")
  rx=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2/p' <<<"$out")
  [[ -n $tx && -n $rx && $tx -gt 0 ]] || die "$mode: cannot parse the ping summary:
$out"
  loss=$(awk -v t="$tx" -v r="$rx" 'BEGIN { printf "%.1f", 100 * (t - r) / t }')
  info "$mode: ping under flood: $rx/$tx answered, loss $loss%"

  # Phase 2: wireguard-go forgets the peer; re-added, its next packet starts a new handshake,
  # retried every REKEY_TIMEOUT (5 s + jitter) until it completes.
  local go_log=$TEST_TMP/$GO_IF.log log0 under_flood=1 attempts cookies
  wg set "$GO_IF" peer "$(pub xs)" remove
  go_add_peer
  [[ $(latest_handshake "$GO_IF" "$(pub xs)") == 0 ]] || die "$mode: re-added peer still has a handshake"
  log0=$(wc -l <"$go_log")
  start=$(now_ms)
  ip netns exec "$NS2" ping -n -q -i 0.5 -w $((HANDSHAKE_WAIT + POST_FLOOD_WAIT + 5)) $IN4_1 >/dev/null 2>&1 &
  tpid=$!
  bg_register "$tpid"
  if ! wait_go_handshake $HANDSHAKE_WAIT; then
    under_flood=0
    pid_alive "$fpid" || die "$mode: xsktun-flood ended early: $(cat "$TEST_TMP/flood-$mode.log")"
    # (Reported: the UDP socket's receive queue drops a real peer's messages with the flood's.)
    known_bug "$mode: wireguard-go's new handshake did not complete within $HANDSHAKE_WAIT s under the flood" \
      "(its handshake messages were lost with the flood's: drop_handshake_queue_full" \
      "+$(($(xsktun_counter "$XS_IF" drop_handshake_queue_full) - $(snap_get "$TEST_TMP/c0.json" drop_handshake_queue_full))),"\
      "UDP socket drops $(udp_sock_drops "$NS1" $XS_PORT)); checking that it completes once the flood stops"
  fi
  go_log_counts
  if ((under_flood == 1)); then
    info "$mode: wireguard-go's new handshake completed under the flood after $(fmt_ms $hs_ms) s" \
      "($attempts initiation(s) sent, $cookies cookie reply(ies) received)"
    ping_ok "$NS2" $IN4_1  # the new session carries traffic, still under the flood
  fi
  pid_alive "$fpid" || die "$mode: xsktun-flood ended before the handshake phase did: $(cat "$TEST_TMP/flood-$mode.log")"

  # Stop the flood (SIGTERM: the flooder writes its summary).
  kill -TERM "$fpid" 2>/dev/null || true
  wait "$fpid" || die "$mode: xsktun-flood failed: $(cat "$TEST_TMP/flood-$mode.log")"
  bg_done "$fpid"
  [[ -s $fjson ]] || die "$mode: xsktun-flood wrote no $fjson"
  if ((under_flood == 0)); then
    wait_go_handshake $POST_FLOOD_WAIT ||
      die "$mode: wireguard-go's new handshake did not complete even $POST_FLOOD_WAIT s after the flood stopped"
    ping_ok "$NS2" $IN4_1
    go_log_counts
  fi
  kill "$tpid" 2>/dev/null || true
  wait "$tpid" 2>/dev/null || true
  bg_done "$tpid"
  pid_alive "$pid" || die "$mode: xsktun died under the flood"
  rss1=$(rss_kb "$pid")
  snap "$TEST_TMP/c1.json"

  local sent pps secs
  sent=$(json_num "$fjson" sent)
  pps=$(json_num "$fjson" pps)
  secs=$(json_num "$fjson" seconds)
  info "$mode: flooder: $(cat "$TEST_TMP/flood-$mode.log")"
  info "$mode: counters: handshake_initiations_rx +$(delta handshake_initiations_rx)," \
    "drop_handshake_failed +$(delta drop_handshake_failed), cookie_replies_tx +$(delta cookie_replies_tx)," \
    "drop_handshake_queue_full +$(delta drop_handshake_queue_full)," \
    "drop_handshake_ratelimited +$(delta drop_handshake_ratelimited), handshake_mac2_ok +$(delta handshake_mac2_ok);" \
    "UDP socket drops $(udp_sock_drops "$NS1" $XS_PORT) in all"

  # --- assertions ---
  expect_ge "$mode: flood rate (pps) actually achieved" "${pps%.*}" $MIN_FLOOD_PPS
  awk -v l="$loss" -v m=$MAX_LOSS_PCT 'BEGIN { exit !(l < m) }' ||
    die "$mode: ping loss under the flood $loss% ($rx/$tx answered), want < $MAX_LOSS_PCT%"
  expect_ge "$mode: xsktun's latest handshake with wireguard-go advanced" \
    "$(latest_handshake "$XS_IF" "$(pub go)")" $((xs_hs0 + 1))
  expect_le "$mode: RSS growth (kB) under the flood" $((rss1 - rss0)) $MAX_RSS_GROWTH_KB
  # Which side's initiation made the new session: wireguard-go's retries (xsktun responded), or
  # xsktun's own (it sent data that got no answer, so it initiates after KEEPALIVE +
  # REKEY_TIMEOUT = 15 s; then wireguard-go's response is what has to get through).
  local extra initiator="" rtx rrx
  rtx=$(delta handshake_responses_tx)
  rrx=$(delta handshake_responses_rx)
  if ((rtx >= 1)); then initiator=wireguard-go; fi
  if ((rrx >= 1)); then initiator="${initiator:+$initiator and }xsktun"; fi
  [[ -n $initiator ]] || die "$mode: a handshake completed, but xsktun neither sent nor received a response"
  if [[ $mode == socket ]]; then
    expect_ge "$mode: cookie_replies_tx (xsktun under load answered the flood with cookies)" \
      "$(delta cookie_replies_tx)" 1
    # Whether the accepted message needed the cookie depends on the moment it arrived: the load
    # flag drops 1 s after the queue was last 1/8 full, which happens when the flooder or
    # xsktun's receive thread is starved of CPU for a moment (this machine is shared). Either
    # way it must complete; when the cookie path was taken, the mac2 must come from a cookie
    # reply wireguard-go received.
    via_cookie=no
    if (($(delta handshake_mac2_ok) >= 1)); then via_cookie=yes; fi
    if [[ $via_cookie == yes ]]; then
      expect_ge "$mode: cookie replies wireguard-go received (its accepted message carried a mac2)" \
        "$cookies" 1
    elif ((under_flood == 1)); then
      info "$mode: NOTE: wireguard-go's message arrived while xsktun was not under load (the flood" \
        "rate dipped; xsktun paid a DH for +$(delta drop_handshake_failed) flood initiations): no cookie needed"
    fi
    extra="cookie replies +$(delta cookie_replies_tx), handshake via cookie: $via_cookie"
  else
    local dropped passed budget
    dropped=$(delta xdp_drop_handshake_ratelimited)
    passed=$(delta xdp_pass_handshake)
    # 8 flood sources + wireguard-go's, each 20/s after a burst of 5; twice that for slack.
    budget=$((2 * 9 * (20 * (${secs%.*} + 1) + 5)))
    expect_ge "$mode: xdp_drop_handshake_ratelimited vs half the flood ($sent sent)" "$dropped" $((sent / 2))
    expect_le "$mode: xdp_pass_handshake (within the per-source budget)" "$passed" $budget
    expect_eq "$mode: cookie_replies_tx (userspace never under load)" "$(delta cookie_replies_tx)" 0
    extra="cookie replies +$(delta cookie_replies_tx), XDP budget dropped $dropped and passed $passed"
  fi
  pair_down
  pretty "$mode: flood ${pps%.*} pps sent (init-mac1, 8 sources, ${secs%.*} s), ping loss $loss% ($rx/$tx)," \
    "$extra, new handshake $(fmt_ms $hs_ms) s$( ((under_flood == 1)) || echo " (AFTER the flood: known bug)")" \
    "(initiated by $initiator; wireguard-go sent $attempts initiations, got $cookies cookies)," \
    "RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MB ($((SECONDS - t0)) s)"
}

setup_underlay
for m in ${MODES:-socket xdp}; do
  case $m in socket | xdp) ;; *) die "unknown mode '$m' (socket, xdp)" ;; esac
  run_mode "$m"
done
passed_summary "flood test"
