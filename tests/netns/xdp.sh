#!/usr/bin/env bash
# XDP-mode test of xsktun against wireguard-go (Debian), in network namespaces.
# Usage (as root): tests/netns/xdp.sh /path/to/xsktun          (CASES="2 6" to run a subset)
#
# Case 1 reruns interop.sh's cases 1 and 3-7 (ping v4/v6 inner and outer with either side
# initiating, PSK and mismatch, roaming, allowed-IPs source filter, live `wg set`, xsktun <->
# xsktun) with XSKTUN_TEST_MODE=xdp: every xsktun there runs in XDP mode on its veth. Cases 2-8
# are about XDP itself, on this topology (IPv4-only underlay: no IPv6 chatter in the counters;
# the IPv6 outer cases are case 1's):
#
#   ns x "xsktun side"                               ns g "wireguard-go side"
#   vx0 192.168.242.1/24 (1 queue)         <---->   vg0 192.168.242.2/24
#   vx1 192.168.243.1/24 (2 queues)        <---->   vg1 192.168.243.2/24 (2 queues)
#   xsktun tunnel 10.242.0.1/24 fd00:b::1/64         wireguard-go tunnel 10.242.0.2/24 fd00:b::2/64
#   UDP port 51101                                   UDP port 51102
#
# 2 the program is attached (ip link, xdp-loader, show --json), native and generic; 3 iperf3
# TCP and UDP both ways bypass the kernel UDP socket (/proc/net/snmp vs xsk_* counters) with
# consistent transfer counters; 4 the pinned allowed-IPs/peers/sessions maps follow live `wg set`
# changes; 5 a 2-queue veth; 6 a stale program of a SIGKILLed daemon, --force; 7 teardown by
# `down`, SIGTERM and UAPI socket removal leaves nothing; 8 junk datagrams are dropped and
# counted by the XDP program. xsktun bugs that are reported but not fixed yet are flagged
# "KNOWN BUG" and skip only their assertion.
#
# Exit codes: 0 pass, 1 fail, 77 skip (not root / tools missing).
set -eEu -o pipefail

XSKTUN_BIN=${1:-${XSKTUN:-$(command -v xsktun || true)}}
XSKTUN_BIN=$(realpath "$XSKTUN_BIN" 2>/dev/null || true)
export XSKTUN_TEST_MODE=xdp
HERE=$(dirname "$(realpath "$0")")
# shellcheck source=tests/netns/lib.sh
source "$HERE/lib.sh"
netns_require
netns_init

NSX=$(ns_name x)
NSG=$(ns_name g)
XS_PORT=51101
GO_PORT=51102
IN4_X=10.242.0.1 IN4_G=10.242.0.2 IN6_X=fd00:b::1 IN6_G=fd00:b::2
XS_IF="" GO_IF="" XS_NIC="" XS_OUT="" GO_OUT=""
MAX_WIRE=1500  # bytes per dropped datagram, at most: 1420 inner MTU + 32 WireGuard + 28 IPv4/UDP <= 1500

# --- topology --------------------------------------------------------------------------------

setup_underlay() {
  netns_new "$NSX"
  netns_new "$NSG"
  veth_new "$NSX" vx0 "$NSG" vg0
  veth_new "$NSX" vx1 "$NSG" vg1 2
  local d
  for d in vx0 vx1; do n "$NSX" sysctl -qw "net.ipv6.conf.$d.disable_ipv6=1"; done
  for d in vg0 vg1; do n "$NSG" sysctl -qw "net.ipv6.conf.$d.disable_ipv6=1"; done
  addr_add "$NSX" vx0 192.168.242.1/24
  addr_add "$NSX" vx1 192.168.243.1/24
  addr_add "$NSG" vg0 192.168.242.2/24
  addr_add "$NSG" vg1 192.168.243.2/24
  genkey xs
  genkey go
}

# pair_up VETH_INDEX [extra `xsktun up` args]: xsktun in XDP mode on vx<i> and wireguard-go on
# vg<i>, configured with wg(8); no handshake yet.
pair_up() {
  local i=$1
  shift
  XS_NIC=vx$i XS_OUT=192.168.24$((2 + i)).1 GO_OUT=192.168.24$((2 + i)).2
  new_ifname XS_IF xd
  new_ifname GO_IF gd
  xsktun_start "$NSX" "$XS_IF" --nic "$XS_NIC" "$@"
  wggo_start "$NSG" "$GO_IF"
  wg set "$XS_IF" private-key "$(key xs)" listen-port $XS_PORT \
    peer "$(pub go)" allowed-ips $IN4_G/32,$IN6_G/128 endpoint "$GO_OUT:$GO_PORT"
  wg set "$GO_IF" private-key "$(key go)" listen-port $GO_PORT \
    peer "$(pub xs)" allowed-ips $IN4_X/32,$IN6_X/128 endpoint "$XS_OUT:$XS_PORT"
  tun_addr "$NSX" "$XS_IF" $IN4_X/24 $IN6_X/64
  tun_addr "$NSG" "$GO_IF" $IN4_G/24 $IN6_G/64
}

pair_down() {
  xsktun_stop "$XS_IF"
  wggo_stop "$GO_IF"
}

# Both ways, xsktun first: after the reply xsktun knows wireguard-go's return path from an
# authenticated AF_XDP frame, so its data no longer takes the kernel socket.
pair_ping() {
  ping_ok "$NSX" $IN4_G
  ping_ok "$NSG" $IN4_X
  ping_ok "$NSX" $IN6_G
}


# --- status helpers --------------------------------------------------------------------------



# snmp_udp NS: "InDatagrams OutDatagrams" of the namespace's IPv4 UDP stack (/proc/net/snmp).
snmp_udp() {
  n "$1" cat /proc/net/snmp | awk '$1 == "Udp:" && $2 == "InDatagrams" { for (i = 2; i <= NF; i++) h[i] = $i; next }
    $1 == "Udp:" { for (i = 2; i <= NF; i++) v[h[i]] = $i; print v["InDatagrams"], v["OutDatagrams"]; exit }'
}

# veth_drops NS DEV: "rx_dropped tx_dropped" of a veth end.
veth_drops() {
  n "$1" cat "/sys/class/net/$2/statistics/rx_dropped" "/sys/class/net/$2/statistics/tx_dropped" | paste -sd ' '
}


# iperf_field JSON PYEXPR: PYEXPR on the parsed iperf3 -J output (as d), e.g. received bytes.
# UDP_DELIVERED: the datagrams an iperf3 -u receiver got (sequence numbers sent minus gaps).
UDP_DELIVERED='d["end"]["sum_received"]["packets"] - d["end"]["sum_received"]["lost_packets"]'
iperf_field() { python3 "$HERE/jsonq.py" int "$1" "$2"; }

# --- 1. interop.sh in XDP mode ---------------------------------------------------------------

# interop.sh's own namespaces, daemons and cleanup; case 2 (iperf3 and transfer counters) and
# the socket-mode-only cases 8-9 are left to case 3 here and to interop.sh itself.
case_interop() {
  local log=$TEST_TMP/interop-xdp.log rc=0
  XSKTUN_TEST_MODE=xdp CASES="1 3 4 5 6 7 10" bash "$HERE/interop.sh" "$XSKTUN_BIN" 2>&1 | tee "$log" >&2 ||
    rc=$?
  (( rc == 0 )) || die "interop.sh cases in XDP mode failed (exit $rc), see above"
  local kb
  kb=$(grep -c 'KNOWN BUG' "$log" || true)
  KNOWN_BUGS=$((KNOWN_BUGS + kb))
}

# --- 2. the program is attached -------------------------------------------------------------

# assert_attached IF NIC MODE QUEUES: ip link, xdp-loader and `xsktun show --json` agree that
# xsktun_xdp is on NIC in MODE (native | generic); xsktun has QUEUES AF_XDP sockets, copy mode.
assert_attached() {
  local ifn=$1 nic=$2 mode=$3 queues=$4 link want_flag want_loader
  if [[ $mode == native ]]; then want_flag=xdp want_loader=native
  else want_flag=xdpgeneric want_loader=skb; fi
  # iproute2 flags the mode after the MTU ("mtu 1500 xdpgeneric") and names the program on a
  # "prog/xdp" line (newer versions say prog/xdpgeneric there).
  link=$(ip -n "$NSX" link show "$nic")
  [[ $link =~ \ mtu\ [0-9]+\ $want_flag\  && $link =~ prog/xdp(generic)?\ id\ [0-9]+\ name\ xsktun_xdp\  ]] ||
    die "ip link show $nic: no '$want_flag' flag and 'prog/xdp ... name xsktun_xdp':
$link"
  nsx "$NSX" xdp-loader status "$nic" | awk -v d="$nic" -v m="$want_loader" '
      $1 == d && $2 == "xsktun_xdp" && $3 == m { f = 1 } END { exit !f }' ||
    die "xdp-loader status $nic does not list xsktun_xdp in $want_loader mode:
$(nsx "$NSX" xdp-loader status "$nic")"
  local st
  read -r -a st <<<"$(xs_json "$ifn" 'd["mode"]' 'd["xdp"]["nic"]' 'd["xdp"]["attach_mode"]' \
    'd["xdp"]["zerocopy"]' 'd["xdp"]["queues"]')"
  expect_eq "show --json: mode" "${st[0]}" xdp
  expect_eq "show --json: xdp.nic" "${st[1]}" "$nic"
  expect_eq "show --json: xdp.attach_mode" "${st[2]}" "$mode"
  # PLATFORM.md: veth has no AF_XDP zero-copy, so xsktun must have fallen back to copy mode.
  expect_eq "show --json: xdp.zerocopy on a veth" "${st[3]}" false
  expect_eq "show --json: xdp.queues" "${st[4]}" "$queues"
  local m
  for m in allowed_ips_v4 allowed_ips_v6 peers sessions xsks stats config ratelimit; do
    [[ -e $XSKTUN_PIN_ROOT/$ifn/$m ]] || die "map $m is not pinned under $XSKTUN_PIN_ROOT/$ifn"
  done
}

case_attach() {
  local mode c
  declare -A c0 c1
  for mode in native generic; do
    pair_up 0 --xdp-mode $mode
    assert_attached "$XS_IF" vx0 $mode 1
    assert_capeff "$XS_IF" xdp
    xs_counters c0 "$XS_IF" xdp_redirect_data xdp_pass_handshake xsk_rx_packets
    pair_ping
    xs_counters c1 "$XS_IF" xdp_redirect_data xdp_pass_handshake xsk_rx_packets
    # The handshake response went up the stack to the kernel socket; the ping replies (and the
    # wireguard-go-initiated echo requests) to the AF_XDP socket.
    expect_ge "$mode: xdp_pass_handshake after the handshake" \
      $((c1[xdp_pass_handshake] - c0[xdp_pass_handshake])) 1
    expect_ge "$mode: xdp_redirect_data after 9 pings" $((c1[xdp_redirect_data] - c0[xdp_redirect_data])) 9
    expect_ge "$mode: xsk_rx_packets after 9 pings" $((c1[xsk_rx_packets] - c0[xsk_rx_packets])) 9
    pair_down
  done
  # --mode auto (README, "Benchmark"): veth has no AF_XDP zero-copy and segments UDP itself, so
  # auto with --nic runs socket mode, says why, and leaves no program or pins; with
  # tx-udp-segmentation off it picks XDP.
  local ifn out
  new_ifname ifn xa
  _register_if "$ifn" "$NSX" xsktun
  nsx "$NSX" "$XSKTUN_BIN" up "$ifn" --mode auto --nic vx0 --log-file "$TEST_TMP/$ifn.log" ||
    die "xsktun up --mode auto --nic vx0 failed"
  out=$("$XSKTUN_BIN" show "$ifn" --json)
  [[ $out == *'"mode": "socket"'* ]] || die "--mode auto on veth did not pick socket mode: $out"
  grep -q 'mode auto: not XDP on vx0: .*tx-udp-segmentation.*no zero-copy' "$TEST_TMP/$ifn.log" ||
    die "--mode auto did not log why: $(cat "$TEST_TMP/$ifn.log")"
  ! ip -n "$NSX" link show vx0 | grep -q 'prog/xdp' || die "--mode auto left an XDP program on vx0"
  [[ ! -e $XSKTUN_PIN_ROOT/$ifn ]] || die "--mode auto left pins in $XSKTUN_PIN_ROOT/$ifn"
  "$XSKTUN_BIN" down "$ifn"
  assert_xsktun_gone "$ifn"
  info "--mode auto --nic vx0: socket mode ($(grep -o 'mode auto: .*' "$TEST_TMP/$ifn.log"))"
  n "$NSX" ethtool -K vx0 tx-udp-segmentation off
  nsx "$NSX" "$XSKTUN_BIN" up "$ifn" --mode auto --nic vx0 --log-file "$TEST_TMP/$ifn.log" ||
    die "xsktun up --mode auto --nic vx0 (tx-udp-segmentation off) failed"
  out=$("$XSKTUN_BIN" show "$ifn" --json)
  n "$NSX" ethtool -K vx0 tx-udp-segmentation on
  [[ $out == *'"mode": "xdp"'* ]] || die "--mode auto, tx-udp-segmentation off: not XDP mode: $out"
  "$XSKTUN_BIN" down "$ifn"
  assert_xsktun_gone "$ifn"
}

# --- 3. bulk traffic bypasses the kernel UDP socket -------------------------------------------

# bypass_run WHAT DIR JSON [iperf3 client args]: one iperf3 run from x to g (DIR up: xsktun
# encrypts the bulk; down: -R, xsktun decrypts it). The outer IPv4 UDP datagrams of the
# namespace may grow only by what the kernel socket still carries (handshakes, keepalives), far
# below the AF_XDP frames; inner UDP runs over inner IPv6 so that it counts in Udp6, not Udp.
bypass_run() {
  local what=$1 dir=$2 json=$3 dst=$4
  shift 4
  local s0 s1 din dout bulk dxrx dxtx dslow
  declare -A c0 c1
  local names=(xsk_rx_packets xsk_tx_packets slowpath_tx_packets xdp_pass_data_no_xsk)
  read -r -a s0 <<<"$(snmp_udp "$NSX")"
  xs_counters c0 "$XS_IF" "${names[@]}"
  iperf_json "$json" "$NSG" "$dst" "$NSX" "$@"
  xs_counters c1 "$XS_IF" "${names[@]}"
  read -r -a s1 <<<"$(snmp_udp "$NSX")"
  din=$((s1[0] - s0[0])) dout=$((s1[1] - s0[1]))
  dxrx=$((c1[xsk_rx_packets] - c0[xsk_rx_packets]))
  dxtx=$((c1[xsk_tx_packets] - c0[xsk_tx_packets]))
  dslow=$((c1[slowpath_tx_packets] - c0[slowpath_tx_packets]))
  if [[ " $* " == *" -u "* ]]; then
    bulk=$(iperf_field "$json" "$UDP_DELIVERED")
  else
    bulk=$(( $(iperf_field "$json" 'd["end"]["sum_received"]["bytes"]') / 1420 ))
  fi
  info "$what: kernel UDP in +$din out +$dout; AF_XDP rx +$dxrx tx +$dxtx; slow path tx +$dslow;" \
    "bulk data messages >= $bulk"
  expect_ge "$what: iperf3 data messages" "$bulk" 1000
  # Every bulk packet the far end got was one data message on the wire (a UDP datagram of at
  # most 1328 bytes in a 1420-byte MTU; TCP carries at most 1420 bytes per message).
  if [[ $dir == up ]]; then
    expect_ge "$what: xsk_tx_packets + slowpath_tx_packets vs bulk data messages" $((dxtx + dslow)) "$bulk"
  else
    expect_ge "$what: xsk_rx_packets vs bulk data messages" "$dxrx" "$bulk"
  fi
  (( din * 50 < dxrx )) || die "$what: kernel UDP InDatagrams +$din, not < 2% of xsk_rx_packets +$dxrx"
  (( dout * 50 < dxtx )) || die "$what: kernel UDP OutDatagrams +$dout, not < 2% of xsk_tx_packets +$dxtx"
  (( dslow * 50 < dxtx )) || die "$what: slowpath_tx_packets +$dslow, not < 2% of xsk_tx_packets +$dxtx"
  expect_eq "$what: xdp_pass_data_no_xsk" "${c1[xdp_pass_data_no_xsk]}" 0
}

# check_transfer WHAT SENDER_TX RECEIVER_RX EXPLAINED_BYTES: what the receiver authenticated
# is what the sender counted as sent, minus what the path dropped (receiver socket, veth).
check_transfer() {
  local what=$1 tx=$2 rx=$3 explained=$4 slack=4096
  local gap=$((tx - rx))
  info "$what: sender tx $tx, receiver rx $rx, gap $gap, explained by drops on the way: $explained"
  (( gap >= -slack )) || die "$what: receiver counted $((-gap)) bytes more than the sender sent"
  (( gap <= explained + slack )) ||
    die "$what: $gap bytes sent but not received, only $explained explained by drops on the way"
}

# veth_tx_msgs NS DEV: "bytes frames" of UDP payload DEV sent: every frame on this IPv4-only
# underlay is Ethernet (14) + IPv4 without options (20) + UDP (8) + message, or a 42-byte ARP
# frame (which thus adds nothing).
veth_tx_msgs() {
  local b p
  read -r b p <<<"$(n "$1" cat "/sys/class/net/$2/statistics/tx_bytes" "/sys/class/net/$2/statistics/tx_packets" |
    paste -sd ' ')"
  echo $((b - 42 * p)) "$p"
}

case_bypass() {
  pair_up 0
  pair_ping
  local j=$TEST_TMP/iperf tcp_up tcp_down udp_up udp_down w0 w1 xs0 go0 fd0 fd1
  # The daemon checks every 200 ms that its program is still attached; that check once leaked
  # a program fd per call (libxdp's multiprog query): the fd count must not move.
  fd0=$(ls "/proc/$(xsktun_pid "$XS_IF")/fd" | wc -l)
  read -r -a xs0 <<<"$(peer_transfer "$XS_IF" "$(pub go)")"
  read -r -a go0 <<<"$(peer_transfer "$GO_IF" "$(pub xs)")"
  read -r -a w0 <<<"$(veth_tx_msgs "$NSX" vx0)"
  bypass_run "TCP xsktun -> wireguard-go" up "$j.1" $IN4_G -t 3
  bypass_run "TCP wireguard-go -> xsktun" down "$j.2" $IN4_G -t 3 -R
  bypass_run "UDP xsktun -> wireguard-go" up "$j.3" $IN6_G -u -b 0 -l 1300 -t 2
  bypass_run "UDP wireguard-go -> xsktun" down "$j.4" $IN6_G -u -b 0 -l 1300 -t 2 -R
  tcp_up=$(iperf_field "$j.1" 'd["end"]["sum_received"]["bytes"]')
  tcp_down=$(iperf_field "$j.2" 'd["end"]["sum_received"]["bytes"]')
  udp_up=$(( $(iperf_field "$j.3" "$UDP_DELIVERED") * 1300 ))
  udp_down=$(( $(iperf_field "$j.4" "$UDP_DELIVERED") * 1300 ))
  info "iperf3 bytes received: TCP up $tcp_up, down $tcp_down; UDP up $udp_up, down $udp_down"
  sleep 0.5  # the last ACKs and keepalives
  local xs go vx vg
  declare -A c
  read -r -a xs <<<"$(peer_transfer "$XS_IF" "$(pub go)")"
  read -r -a go <<<"$(peer_transfer "$GO_IF" "$(pub xs)")"
  read -r -a w1 <<<"$(veth_tx_msgs "$NSX" vx0)"
  read -r -a vx <<<"$(veth_drops "$NSX" vx0)"
  read -r -a vg <<<"$(veth_drops "$NSG" vg0)"
  xs_counters c "$XS_IF" drop_udp_send drop_decrypt drop_replay

  # xsktun's tx_bytes, like the kernel's (socket.c, wg_socket_send_skb_to_peer: only when the
  # send succeeded), are the messages that left: what vx0 transmitted as UDP payload.
  local counted=$((xs[1] - xs0[1])) wire=$((w1[0] - w0[0])) slack=4096
  info "xsktun tx_bytes +$counted; UDP payload sent on vx0 +$wire in $((w1[1] - w0[1])) frames;" \
    "drop_udp_send ${c[drop_udp_send]}; vx0 tx_dropped ${vx[1]}"
  (( counted <= wire + slack && wire <= counted + slack )) ||
    die "xsktun's peer tx_bytes +$counted, but vx0 sent +$wire bytes of UDP payload" \
      "(drop_udp_send ${c[drop_udp_send]})"
  # A veth drops only when the receiver's backlog is full; it counts that on either end.
  check_transfer "xsktun -> wireguard-go" "$wire" $((go[0] - go0[0])) \
    $(( (vx[1] + vg[0] + $(udp_sock_drops "$NSG" $GO_PORT)) * MAX_WIRE ))
  check_transfer "wireguard-go -> xsktun" "${go[1]}" "${xs[0]}" \
    $(( (vg[1] + vx[0] + $(udp_sock_drops "$NSX" $XS_PORT)) * MAX_WIRE ))
  expect_ge "wireguard-go rx bytes vs iperf3 payload" "${go[0]}" $((tcp_up + udp_up + 1))
  expect_ge "xsktun rx bytes vs iperf3 payload" "${xs[0]}" $((tcp_down + udp_down + 1))
  expect_eq "xsktun drop_decrypt after bulk traffic" "${c[drop_decrypt]}" 0
  expect_eq "xsktun drop_replay after bulk traffic" "${c[drop_replay]}" 0
  fd1=$(ls "/proc/$(xsktun_pid "$XS_IF")/fd" | wc -l)
  info "xsktun open fds: $fd0 before, $fd1 after ~12 s of traffic"
  (( fd1 <= fd0 + 2 )) || die "xsktun's open fds grew from $fd0 to $fd1 in XDP mode (a leak)"
  pair_down
}

# --- 4. pinned maps follow the configuration -------------------------------------------------

# check_maps WHAT: the allowed-IPs maps hold exactly `wg show allowed-ips`.
check_maps() {
  local out
  out=$(python3 "$HERE/maps.py" "$NSX" "$XS_IF" "$XSKTUN_PIN_ROOT/$XS_IF" allowed 2>&1) ||
    die "$1: $out"
  info "$1: maps agree with wg show ($out prefixes)"
}

# sessions_of PUB: "<session map entries of that peer> <all entries>"
sessions_of() {
  python3 "$HERE/maps.py" "$NSX" "$XS_IF" "$XSKTUN_PIN_ROOT/$XS_IF" sessions "$1"
}

case_maps() {
  genkey d1
  genkey d2
  pair_up 0
  wg set "$XS_IF" peer "$(pub d1)" allowed-ips 10.242.1.0/24,fd00:b:1::/48 \
    peer "$(pub d2)" allowed-ips 10.242.2.0/24,10.242.2.128/25,0.0.0.0/0
  check_maps "three peers"
  local s
  read -r -a s <<<"$(sessions_of "$(pub go)")"
  expect_eq "session map entries before any handshake" "${s[1]}" 0
  pair_ping
  read -r -a s <<<"$(sessions_of "$(pub go)")"
  expect_ge "session map entries of wireguard-go's peer after a handshake" "${s[0]}" 1
  expect_eq "session map entries of other peers" "${s[1]}" "${s[0]}"

  wg set "$XS_IF" peer "$(pub go)" allowed-ips $IN4_G/32,$IN6_G/128,10.242.9.0/24
  check_maps "a prefix added"
  wg set "$XS_IF" peer "$(pub go)" allowed-ips $IN4_G/32,10.242.9.0/24
  check_maps "a prefix removed"
  ping_none "$NSX" $IN6_G 2
  wg set "$XS_IF" peer "$(pub d1)" allowed-ips 10.242.3.0/24,fd00:b:3::/48,$IN6_G/128
  check_maps "a peer's set replaced"
  wg set "$XS_IF" peer "$(pub d2)" allowed-ips 10.242.2.0/24,10.242.9.0/24
  check_maps "a prefix moved to another peer"
  wg set "$XS_IF" peer "$(pub d1)" remove
  check_maps "a peer without sessions removed"
  wg set "$XS_IF" peer "$(pub go)" allowed-ips $IN4_G/32,$IN6_G/128
  check_maps "wireguard-go's prefixes restored"
  ping_ok "$NSX" $IN6_G
  ping_ok "$NSG" $IN4_X
  read -r -a s <<<"$(sessions_of "$(pub go)")"
  expect_ge "session map entries of wireguard-go's peer before its removal" "${s[0]}" 1
  wg set "$XS_IF" peer "$(pub go)" remove
  check_maps "the peer with sessions removed"
  read -r -a s <<<"$(sessions_of "$(pub go)")"
  expect_eq "session map entries after its peer was removed" "${s[1]}" 0
  ping_none "$NSG" $IN4_X 2
  pair_down
}

# --- 5. two queues ---------------------------------------------------------------------------

# veth hands a frame to the peer's RX queue of the sender's TX queue index (drivers/net/veth.c
# veth_xmit); XPS maps CPU 0 to vg1's TX queue 0 and CPU 1 to queue 1, and wireguard-go's
# unconnected UDP socket picks by XPS on every send, so pinned to CPU 1 it reaches vx1's queue 1.
pin_wggo_cpu1() {
  taskset -a -p -c 1 "${_WGGO_PID[$GO_IF]}" >/dev/null
}

case_multiqueue() {
  (( $(nproc) >= 2 )) || die "the 2-queue case needs 2 CPUs"
  n "$NSG" sh -c 'echo 1 >/sys/class/net/vg1/queues/tx-0/xps_cpus; echo 2 >/sys/class/net/vg1/queues/tx-1/xps_cpus'
  declare -A c0 c1
  # One worker: it still gets an AF_XDP socket on each NIC queue and serves both, so the frames
  # on queue 1 do not fall back to the kernel socket.
  pair_up 1 --queues 1
  pin_wggo_cpu1
  expect_eq "show --json: xdp.queues with --queues 1" "$(xs_json "$XS_IF" 'd["xdp"]["queues"]')" 2
  expect_eq "show --json: workers with --queues 1" "$(xs_json "$XS_IF" 'd["workers"]')" 1
  pair_ping
  expect_ge "one worker: xsk_rx_packets after pings from wireguard-go on CPU 1" \
    "$(xsktun_counter "$XS_IF" xsk_rx_packets)" 3
  expect_eq "one worker: xdp_pass_data_no_xsk" "$(xsktun_counter "$XS_IF" xdp_pass_data_no_xsk)" 0
  pair_down

  pair_up 1
  pin_wggo_cpu1
  assert_attached "$XS_IF" vx1 native 2
  pair_ping
  local j=$TEST_TMP/iperf-mq b
  xs_counters c0 "$XS_IF" xdp_redirect_data xsk_rx_packets xsk_tx_packets
  iperf_json "$j.1" "$NSG" $IN4_G "$NSX" -t 3 -P 4
  b=$(iperf_field "$j.1" 'd["end"]["sum_received"]["bytes"]')
  info "iperf3 -P 4 xsktun -> wireguard-go: $b bytes"
  expect_ge "iperf3 -P 4 bytes xsktun -> wireguard-go" "$b" 1000000
  iperf_json "$j.2" "$NSG" $IN4_G "$NSX" -t 3 -P 4 -R
  b=$(iperf_field "$j.2" 'd["end"]["sum_received"]["bytes"]')
  info "iperf3 -P 4 wireguard-go -> xsktun: $b bytes"
  expect_ge "iperf3 -P 4 bytes wireguard-go -> xsktun" "$b" 1000000
  xs_counters c1 "$XS_IF" xdp_redirect_data xsk_rx_packets xsk_tx_packets xdp_pass_data_no_xsk
  expect_ge "xsk_rx_packets during iperf3 -P 4 -R" $((c1[xsk_rx_packets] - c0[xsk_rx_packets])) $((b / 1420))
  expect_eq "xdp_pass_data_no_xsk with a socket on each queue" "${c1[xdp_pass_data_no_xsk]}" 0
  expect_eq "show --json: workers on a 2-queue NIC with 2 CPUs" "$(xs_json "$XS_IF" 'd["workers"]')" 2
  pair_down
}

# --- 6. stale program of a killed daemon -----------------------------------------------------

# xsktun_up_refused IF WHY ARGS...: `xsktun up` fails naming --force, and leaves no TUN.
xsktun_up_refused() {
  local ifn=$1 why=$2 out
  shift 2
  if out=$(nsx "$NSX" "$XSKTUN_BIN" up "$ifn" --mode xdp --log-file "$TEST_TMP/$ifn.log" "$@" 2>&1); then
    die "xsktun up $ifn succeeded over $why"
  fi
  [[ $out == *--force* ]] || die "xsktun up over $why: the message does not mention --force: $out"
  info "refused as expected ($why): $out"
  echo "$out" >"$TEST_TMP/refused.out"
  if ip -n "$NSX" link show "$ifn" >/dev/null 2>&1; then die "a refused xsktun up left TUN $ifn"; fi
}

case_stale() {
  local pid id0 id1 ifn out
  pair_up 0
  pair_ping
  pid=$(xsktun_pid "$XS_IF")
  id0=$(ip -n "$NSX" link show vx0 | grep -o 'prog/xdp id [0-9]*' | awk '{ print $3 }')
  # While the owner lives, another xsktun on the same NIC is refused and told who owns it.
  new_ifname ifn xd
  _register_if "$ifn" "$NSX" xsktun
  xsktun_up_refused "$ifn" "the program of a running daemon" --nic vx0
  [[ $(cat "$TEST_TMP/refused.out") == *"$XS_IF (pid $pid)"* ]] ||
    die "the refusal does not name the owner $XS_IF (pid $pid): $(cat "$TEST_TMP/refused.out")"
  # SIGKILL leaves the program and the pins; `up` again at once takes them over without --force
  # (the dead owner's lock is free), as a Restart=on-failure must.
  kill -KILL "$pid"
  wait_pid_gone "$pid" "xsktun $XS_IF after SIGKILL"
  ip -n "$NSX" link show vx0 | grep -q "prog/xdp id $id0 name xsktun_xdp" ||
    die "the program of the SIGKILLed daemon is gone: $(ip -n "$NSX" link show vx0)"
  [[ -e $XSKTUN_PIN_ROOT/$XS_IF/sessions ]] || die "the pins of the SIGKILLed daemon are gone"
  xsktun_start "$NSX" "$XS_IF" --nic vx0
  id1=$(ip -n "$NSX" link show vx0 | grep -o 'prog/xdp id [0-9]*' | awk '{ print $3 }')
  [[ -n $id1 && $id1 != "$id0" ]] || die "after the takeover: program id '$id1', the stale one was $id0"
  grep -q "replacing the xsktun XDP program left" "$TEST_TMP/$XS_IF.log" || die "the takeover is not logged"
  assert_attached "$XS_IF" vx0 native 1
  wg set "$XS_IF" private-key "$(key xs)" listen-port $XS_PORT \
    peer "$(pub go)" allowed-ips $IN4_G/32,$IN6_G/128 endpoint "$GO_OUT:$GO_PORT"
  tun_addr "$NSX" "$XS_IF" $IN4_X/24 $IN6_X/64
  # wireguard-go still holds the killed daemon's session; xsktun's first packet starts a new one.
  pair_ping
  expect_ge "xdp_redirect_data after the takeover" "$(xsktun_counter "$XS_IF" xdp_redirect_data)" 6
  xsktun_down "$XS_IF"
  wggo_stop "$GO_IF"

  # A pin directory alone (its owner gone, its program detached by hand) is taken over too.
  new_ifname ifn xd
  _register_if "$ifn" "$NSX" xsktun
  _IF_NIC[$ifn]=vx0
  mkdir -p "$XSKTUN_PIN_ROOT/$ifn"
  xsktun_start "$NSX" "$ifn" --nic vx0
  assert_attached "$ifn" vx0 native 1
  xsktun_down "$ifn"
}

# --- 7. teardown ------------------------------------------------------------------------------

case_teardown() {
  local how pid
  for how in down TERM socket; do
    if [[ $how == TERM ]]; then pair_up 0 --xdp-mode generic; else pair_up 0; fi
    pair_ping
    pid=$(xsktun_pid "$XS_IF")
    case $how in
      down) xsktun_down "$XS_IF" ;;
      TERM) xsktun_stop "$XS_IF" ;;
      socket)
        rm "$WG_RUN_DIR/$XS_IF.sock"
        wait_pid_gone "$pid" "xsktun $XS_IF after its UAPI socket was removed"
        assert_xsktun_gone "$XS_IF"
        ;;
    esac
    ! pid_alive "$pid" || die "teardown by $how: pid $pid alive"
    if ip -n "$NSX" link show vx0 | grep -q 'prog/xdp'; then die "teardown by $how left an XDP program"; fi
    [[ ! -e $XSKTUN_PIN_ROOT/$XS_IF ]] || die "teardown by $how left $XSKTUN_PIN_ROOT/$XS_IF"
    wggo_stop "$GO_IF"
  done
}

# --- 8. junk datagrams ------------------------------------------------------------------------

# send_junk KIND COUNT: from wireguard-go's namespace to xsktun's port. KIND data: well-formed
# data messages (type 4, zero reserved bytes, counter and 16+ bytes) with random receiver
# indices; malformed: what a WireGuard parser must reject by its header alone; initiation:
# 148-byte initiations with garbage MACs.
send_junk() {
  n "$NSG" python3 "$HERE/packets.py" junk "$1" "$2" 192.168.242.1 $XS_PORT
}

case_junk() {
  pair_up 0
  pair_ping
  local names=(xdp_drop_unknown_index xdp_drop_malformed xdp_pass_handshake drop_bad_mac drop_malformed
    drop_unknown_index xsk_rx_packets)
  declare -A c0 c1
  xs_counters c0 "$XS_IF" "${names[@]}"
  send_junk data 40
  send_junk malformed 30
  send_junk initiation 3
  sleep 0.3
  xs_counters c1 "$XS_IF" "${names[@]}"
  expect_eq "xdp_drop_unknown_index after 40 data messages with random indices" \
    $((c1[xdp_drop_unknown_index] - c0[xdp_drop_unknown_index])) 40
  expect_eq "xdp_drop_malformed after 30 malformed datagrams" \
    $((c1[xdp_drop_malformed] - c0[xdp_drop_malformed])) 30
  # Well-formed initiations are the control plane's to judge (within the rate limit's burst).
  expect_eq "xdp_pass_handshake after 3 bogus initiations" \
    $((c1[xdp_pass_handshake] - c0[xdp_pass_handshake])) 3
  expect_eq "drop_bad_mac after 3 bogus initiations" $((c1[drop_bad_mac] - c0[drop_bad_mac])) 3
  expect_eq "userspace drop_malformed (XDP dropped the junk)" "${c1[drop_malformed]}" "${c0[drop_malformed]}"
  expect_eq "userspace drop_unknown_index (XDP dropped the junk)" \
    "${c1[drop_unknown_index]}" "${c0[drop_unknown_index]}"
  expect_eq "xsk_rx_packets from junk" "${c1[xsk_rx_packets]}" "${c0[xsk_rx_packets]}"
  pair_ping
  ping_ok "$NSG" $IN6_X
  pair_down
}

CASES_ALL="1 2 3 4 5 6 7 8"
declare -A CASE_FN=([1]=case_interop [2]=case_attach [3]=case_bypass [4]=case_maps [5]=case_multiqueue
  [6]=case_stale [7]=case_teardown [8]=case_junk)
declare -A CASE_NAME=(
  [1]="interop.sh cases 1, 3-7, 10 with xsktun in XDP mode (ping v4/v6 inner and outer, PSK, roaming, source filter, wg set, xsktun <-> xsktun, replay)"
  [2]="xsktun_xdp attached (ip link, xdp-loader, show --json), native and generic"
  [3]="iperf3 TCP/UDP both ways bypass the kernel UDP socket; transfer counters consistent"
  [4]="pinned allowed-IPs, peers and sessions maps follow live wg set changes"
  [5]="2-queue veth: 2 AF_XDP sockets, iperf3 -P 4, no data passed for want of a socket"
  [6]="a running owner's program refused, named; a SIGKILLed daemon's program and pins taken over by up at once"
  [7]="teardown by down, SIGTERM (generic XDP) and UAPI socket removal leaves nothing"
  [8]="junk datagrams dropped and counted by the XDP program; the tunnel keeps working")

setup_underlay
run_cases
passed_summary "all XDP cases"
