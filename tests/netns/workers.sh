#!/usr/bin/env bash
# Workers: more of them than CPUs, several peers and flows at once, in network namespaces.
# Usage (as root): tests/netns/workers.sh /path/to/xsktun   (CASES="1")
#
#   ns x "xsktun, XDP mode, --queues 4"       ns b "bridge"        ns 1, 2 "xsktun" (socket mode)
#   wx0 (4 RX/TX queues) ---------------- wb0 [ br0 ] wb1..3 ---- ns 3 "wireguard-go"
#   192.168.252.1/24                                              192.168.252.11-13/24
#   tunnel 10.252.0.1                                             tunnel 10.252.0.11-13
#
# 1. Four workers on a 4-queue veth on (typically) 2 CPUs, three peers: 8 UDP flows from x to
#    the peers at once for 3 s, picked (tests/netns/flows.py pick) so that every worker
#    transmits at least one. The peers' sequence checkers count reordering per flow: 0. The
#    xsktun peers count no replay drops (one keypair's counters are used by four workers out
#    of order; the 8192-message window absorbs it), every flow delivers (the sender offers more
#    than 2 CPUs carry: loss is expected, reordering is not).
#    `show --json` has "workers": 4 and a "worker" array whose every entry carried traffic;
#    bpftool lists the TUN programs by name. 2. The same in socket mode (an SO_REUSEPORT group
#    of 4 sockets, the kernel's flow hash picking the TUN queue). 3. XDP mode with 6 workers on
#    the 4-queue veth: workers 4 and 5 transmit through sockets sharing queues 0 and 1 (their
#    UMEM and completion ring); the same checks, every one of the 6 workers transmitting.
#
# Exit codes: 0 pass, 1 fail, 77 skip (not root / tools missing).
set -eEu -o pipefail

XSKTUN_BIN=${1:-${XSKTUN:-$(command -v xsktun || true)}}
XSKTUN_BIN=$(realpath "$XSKTUN_BIN" 2>/dev/null || true)
export XSKTUN_TEST_MODE=xdp  # the tools XDP mode needs; each case sets its own mode
HERE=$(dirname "$(realpath "$0")")
# shellcheck source=tests/netns/lib.sh
source "$HERE/lib.sh"
netns_require
netns_init

NSX=$(ns_name x)
NSB=$(ns_name b)
NSP=("" "$(ns_name 1)" "$(ns_name 2)" "$(ns_name 3)")
PORT_X=51401
FLOW_PORT=7000
SECONDS_PER_RUN=3
XS_IF="" PEER_IF=("" "" "" "")

setup_underlay() {
  netns_new "$NSX"
  netns_new "$NSB"
  veth_new "$NSX" wx0 "$NSB" wb0 4
  ip -n "$NSB" link add br0 type bridge forward_delay 0
  ip -n "$NSB" link set wb0 master br0
  local i
  for i in 1 2 3; do
    netns_new "${NSP[$i]}"
    veth_new "${NSP[$i]}" "pe$i" "$NSB" "wb$i"
    ip -n "$NSB" link set "wb$i" master br0
    addr_add "${NSP[$i]}" "pe$i" "192.168.252.1$i/24"
    genkey "p$i"
  done
  ip -n "$NSB" link set br0 up
  addr_add "$NSX" wx0 192.168.252.1/24
  genkey xs
}

# up MODE [WORKERS]: xsktun (MODE) with WORKERS (4) workers and its three peers; a handshake
# with each.
WORKERS=4
up() {
  local mode=$1 i
  WORKERS=${2:-4}
  new_ifname XS_IF wx
  XSKTUN_UP_MODE=$mode
  xsktun_start "$NSX" "$XS_IF" --nic wx0 --queues "$WORKERS"
  wg set "$XS_IF" private-key "$(key xs)" listen-port $PORT_X
  for i in 1 2 3; do
    new_ifname "PEER_IF[$i]" "p$i"
    if ((i < 3)); then
      XSKTUN_UP_MODE=socket
      xsktun_start "${NSP[$i]}" "${PEER_IF[$i]}" --queues 1
    else
      wggo_start "${NSP[$i]}" "${PEER_IF[$i]}"
    fi
    wg set "${PEER_IF[$i]}" private-key "$(key "p$i")" listen-port $((PORT_X + i)) \
      peer "$(pub xs)" allowed-ips 10.252.0.1/32 endpoint "192.168.252.1:$PORT_X"
    wg set "$XS_IF" peer "$(pub "p$i")" allowed-ips "10.252.0.1$i/32" endpoint "192.168.252.1$i:$((PORT_X + i))"
    tun_addr "${NSP[$i]}" "${PEER_IF[$i]}" "10.252.0.1$i/24"
  done
  XSKTUN_UP_MODE=$mode
  tun_addr "$NSX" "$XS_IF" 10.252.0.1/24
  for i in 1 2 3; do ping_ok "$NSX" "10.252.0.1$i"; done
}

down() {
  local i
  xsktun_stop "$XS_IF"
  for i in 1 2; do xsktun_stop "${PEER_IF[$i]}"; done
  wggo_stop "${PEER_IF[3]}"
}

# eight_flows PPS: the flows run (PPS datagrams per second in all, 0 = as fast as the sender can),
# the checkers' verdicts asserted. With PPS 0 the sender offers more than 2 CPUs carry: datagrams
# are lost (in socket buffers) and a worker that waits for a CPU holds counters it reserved while
# the others send on; its packets may then arrive more than 8192 counters late, and a receiver
# drops them as replays, as it would any packet that late. Reordering within a flow is never
# allowed; replay drops only at a rate the machine carries.
eight_flows() {
  local pps=$1 flows i f pids=() sent
  expect_eq "show --json: workers" "$(xs_json "$XS_IF" 'd["workers"]')" "$WORKERS"
  "$XSKTUN_BIN" show "$XS_IF" | grep -q "workers: $WORKERS (rx/tx packets: " ||
    die "xsktun show does not list the $WORKERS workers"
  mapfile -t flows < <(nsx "$NSX" python3 "$HERE/flows.py" pick "$XSKTUN_BIN" "$XS_IF" "$WORKERS" 8 \
    10.252.0.11:$FLOW_PORT 10.252.0.12:$FLOW_PORT 10.252.0.13:$FLOW_PORT)
  info "flows (each worker transmits at least one): ${flows[*]}"
  for i in 1 2 3; do
    n "${NSP[$i]}" python3 "$HERE/flows.py" recv $FLOW_PORT $((SECONDS_PER_RUN + 2)) "$TEST_TMP/recv$i.json" &
    pids+=($!)
    bg_register $!
  done
  sleep 0.5
  local -A r0 r1
  for i in 1 2; do r0[$i]=$(xsktun_counter "${PEER_IF[$i]}" drop_replay); done
  sent=$(n "$NSX" python3 "$HERE/flows.py" send $SECONDS_PER_RUN 256 "$pps" "${flows[@]}")
  for f in "${pids[@]}"; do wait "$f"; bg_done "$f"; done
  info "sent: $sent"
  python3 "$HERE/flows.py" check "$sent" "$TEST_TMP"/recv{1,2,3}.json ||
    die "a flow arrived out of order or not at all (above)"
  for i in 1 2; do
    r1[$i]=$(xsktun_counter "${PEER_IF[$i]}" drop_replay)
    info "replay drops at xsktun peer $i: $((r1[$i] - r0[$i])) (offered $pps datagrams/s, 0 = unpaced)"
    ((pps == 0)) || expect_eq "drop_replay at xsktun peer $i" "${r1[$i]}" "${r0[$i]}"
  done
  expect_eq "drop_replay at the $WORKERS-worker xsktun" "$(xsktun_counter "$XS_IF" drop_replay)" 0
  local w
  w=$(xs_json "$XS_IF" '" ".join(str(x["tx_packets"]) for x in d["worker"])')
  info "tx packets per worker: $w"
  for f in $w; do expect_ge "tx_packets of every worker" "$f" 100; done
}

case_xdp() {
  up xdp
  eight_flows 40000
  eight_flows 0
  # Every peer's return path was learned from its authenticated packets; the I/O objects' own
  # statistics are in show's counters too.
  expect_eq "show --json: xdp.known_paths" "$(xs_json "$XS_IF" 'd["xdp"]["known_paths"]')" 3
  expect_eq "show --json: TUN and UDP statistics" \
    "$(xs_json "$XS_IF" 'all(k in d["counters"] for k in ("tun_write_errors", "tun_split_packets", "udp_send_errors", "udp_gso_sends"))')" true
  local progs
  progs=$(bpftool prog show)
  [[ $progs == *xsktun_tun_steer* || $progs == *xsktun_tun_stee* ]] || die "bpftool prog show lists no xsktun_tun_steer"
  [[ $progs == *xsktun_tun_filter* || $progs == *xsktun_tun_filt* ]] || die "bpftool prog show lists no xsktun_tun_filter"
  down
}

case_socket() {
  up socket
  eight_flows 40000
  down
}

case_xdp_siblings() {
  up xdp 6
  grep -qF "4 queue(s), 2 transmit-only socket(s)" "$(daemon_log "$XS_IF")" ||
    die "the daemon log does not report the 2 transmit-only sockets"
  eight_flows 40000
  down
}

declare -A CASE_FN=([1]=case_xdp [2]=case_socket [3]=case_xdp_siblings)
declare -A CASE_NAME=(
  [1]="XDP mode, 4 workers on a 4-queue veth, 3 peers, 8 flows: in order, no replay drops, every worker sends"
  [2]="socket mode, 4 workers (SO_REUSEPORT group), 3 peers, 8 flows: in order, no replay drops, every worker sends"
  [3]="XDP mode, 6 workers on a 4-queue veth (2 transmit-only sockets), 3 peers, 8 flows: in order, no replay drops, every worker sends"
)
CASES_ALL="1 2 3"
setup_underlay
run_cases
passed_summary "workers"
