#!/usr/bin/env bash
# Underlays that XDP mode must carry like socket mode does, against wireguard-go (Debian), in
# network namespaces. Usage (as root): tests/netns/underlay.sh /path/to/xsktun   (CASES="1 5")
#
#   ns x "xsktun"             ns b "bridge"                       ns g "wireguard-go"
#   ux0 ----------------- ub0 [ br0 ] ub1 ------------------------ ug0
#   192.168.250.1/24                                               192.168.250.2/24
#   fd00:250::1/64            every link MTU 1280                   fd00:250::2/64
#   tunnel 10.250.0.1 fd00:f::1 (MTU 1420)                         tunnel 10.250.0.2 fd00:f::2
#
# The underlay MTU (1280, as on a PPPoE, mobile or IPv6-tunnelled line) is below the tunnel's
# (1420), so full-size tunnel packets travel as IP fragments: wireguard-go's arrive fragmented
# (the XDP program passes them to the stack, which reassembles them for the kernel socket), and
# xsktun's longer frames must leave through the kernel socket, which fragments them. The peer
# is on the far side of a Linux bridge.
#
# 1-4 full-size pings (-M do -s 1392) and TCP both ways: XDP mode over IPv4 and IPv6 outer, then
# socket mode over both; the counters say which path carried what. 5 the AF_XDP statistics and
# the NIC MTU in `show --json`, an MTU change followed at run time. 6 70,000 peers x 2 prefixes
# (past the old map sizes): the maps equal `wg show`; a change past the limits is refused whole.
#
# Exit codes: 0 pass, 1 fail, 77 skip (not root / tools missing).
set -eEu -o pipefail

XSKTUN_BIN=${1:-${XSKTUN:-$(command -v xsktun || true)}}
XSKTUN_BIN=$(realpath "$XSKTUN_BIN" 2>/dev/null || true)
export XSKTUN_TEST_MODE=xdp  # the tools XDP mode needs; socket-mode cases pass --mode themselves
HERE=$(dirname "$(realpath "$0")")
# shellcheck source=tests/netns/lib.sh
source "$HERE/lib.sh"
netns_require
netns_init

NSX=$(ns_name x)
NSB=$(ns_name b)
NSG=$(ns_name g)
XS_PORT=51201
GO_PORT=51202
OUT4_X=192.168.250.1 OUT4_G=192.168.250.2 OUT6_X=fd00:250::1 OUT6_G=fd00:250::2
IN4_X=10.250.0.1 IN4_G=10.250.0.2 IN6_X=fd00:f::1 IN6_G=fd00:f::2
UNDERLAY_MTU=1280
XS_IF="" GO_IF=""

setup_underlay() {
  netns_new "$NSX"
  netns_new "$NSB"
  netns_new "$NSG"
  veth_new "$NSX" ux0 "$NSB" ub0
  veth_new "$NSG" ug0 "$NSB" ub1
  ip -n "$NSB" link add br0 type bridge forward_delay 0
  ip -n "$NSB" link set ub0 master br0
  ip -n "$NSB" link set ub1 master br0
  n "$NSB" sysctl -qw net.ipv6.conf.br0.disable_ipv6=1
  local d
  for d in ub0 ub1 br0; do ip -n "$NSB" link set "$d" mtu $UNDERLAY_MTU up; done
  ip -n "$NSX" link set ux0 mtu $UNDERLAY_MTU
  ip -n "$NSG" link set ug0 mtu $UNDERLAY_MTU
  addr_add "$NSX" ux0 $OUT4_X/24 $OUT6_X/64
  addr_add "$NSG" ug0 $OUT4_G/24 $OUT6_G/64
  genkey xs
  genkey go
}

# pair_up MODE OUTER_FAMILY: xsktun (MODE xdp|socket) and wireguard-go, endpoints over IPv4 or
# IPv6 outer addresses; no handshake yet.
pair_up() {
  local mode=$1 fam=$2 xs_out go_out
  if [[ $fam == 4 ]]; then xs_out=$OUT4_X go_out=$OUT4_G; else xs_out="[$OUT6_X]" go_out="[$OUT6_G]"; fi
  new_ifname XS_IF ud
  new_ifname GO_IF ug
  XSKTUN_UP_MODE=$mode
  xsktun_start "$NSX" "$XS_IF" --nic ux0
  wggo_start "$NSG" "$GO_IF"
  wg set "$XS_IF" private-key "$(key xs)" listen-port $XS_PORT \
    peer "$(pub go)" allowed-ips $IN4_G/32,$IN6_G/128 endpoint "$go_out:$GO_PORT"
  wg set "$GO_IF" private-key "$(key go)" listen-port $GO_PORT \
    peer "$(pub xs)" allowed-ips $IN4_X/32,$IN6_X/128 endpoint "$xs_out:$XS_PORT"
  tun_addr "$NSX" "$XS_IF" $IN4_X/24 $IN6_X/64
  tun_addr "$NSG" "$GO_IF" $IN4_G/24 $IN6_G/64
}

pair_down() {
  xsktun_stop "$XS_IF"
  wggo_stop "$GO_IF"
}

# full_size_both_ways: pings whose inner packets fill the tunnel MTU (1392 + 28 = 1420 bytes,
# DF set), small ones first so xsktun has learned the AF_XDP return path, then TCP both ways.
full_size_both_ways() {
  ping_ok "$NSX" $IN4_G
  ping_ok "$NSG" $IN4_X
  ping_ok "$NSX" $IN4_G -M do -s 1392
  ping_ok "$NSG" $IN4_X -M do -s 1392
  ping_ok "$NSX" $IN6_G -M do -s 1372  # 1372 + 48 = 1420
  ping_ok "$NSG" $IN6_X -M do -s 1372
  local up down
  iperf_run up "$NSG" $IN4_G "$NSX" -t 2
  iperf_run down "$NSG" $IN4_G "$NSX" -t 2 -R
  info "TCP over the 1280-byte underlay: xsktun sent $up bytes, received $down bytes in 2 s each"
  expect_ge "TCP bytes xsktun -> wireguard-go" "$up" 1000000
  expect_ge "TCP bytes wireguard-go -> xsktun" "$down" 1000000
}

case_xdp() {
  local fam=$1
  local -A c
  pair_up xdp "$fam"
  full_size_both_ways
  xs_counters c "$XS_IF" slowpath_tx_too_big slowpath_rx_packets xsk_tx_packets xsk_rx_packets \
    xdp_pass_fragment drop_xsk_tx_full drop_xsk_too_big drop_xsk_unparsed drop_decrypt drop_udp_send
  info "IPv$fam outer: too big for AF_XDP ${c[slowpath_tx_too_big]}, kernel socket rx ${c[slowpath_rx_packets]}," \
    "AF_XDP tx ${c[xsk_tx_packets]} rx ${c[xsk_rx_packets]}, fragments passed ${c[xdp_pass_fragment]}"
  # 6 full-size pings + TCP segments left through the kernel socket; the replies' fragments were
  # passed to the stack and read from the kernel socket; small packets took AF_XDP.
  expect_ge "slowpath_tx_too_big (full-size packets sent by the kernel, fragmented)" "${c[slowpath_tx_too_big]}" 6
  expect_ge "xdp_pass_fragment (wireguard-go's fragmented packets)" "${c[xdp_pass_fragment]}" 12
  expect_ge "slowpath_rx_packets (reassembled by the kernel)" "${c[slowpath_rx_packets]}" 6
  expect_ge "xsk_tx_packets (small packets through AF_XDP)" "${c[xsk_tx_packets]}" 3
  expect_ge "xsk_rx_packets" "${c[xsk_rx_packets]}" 3
  local k
  for k in drop_xsk_tx_full drop_xsk_too_big drop_xsk_unparsed drop_decrypt drop_udp_send; do
    expect_eq "$k" "${c[$k]}" 0
  done
  pair_down
}

case_socket() {
  local fam=$1
  pair_up socket "$fam"
  full_size_both_ways
  expect_eq "drop_udp_send in socket mode" "$(xsktun_counter "$XS_IF" drop_udp_send)" 0
  pair_down
}

# AF_XDP statistics (XDP_STATISTICS) and the NIC MTU are in show --json; an MTU change is
# followed within the daemon's 200 ms check.
case_xsk_stats() {
  pair_up xdp 4
  ping_ok "$NSX" $IN4_G
  local out
  out=$(xs_json_keys "$XS_IF") || die "show --json: $out"
  info "AF_XDP statistics: $out"
  expect_eq "xdp.nic_mtu" "$(xs_json "$XS_IF" 'd["xdp"]["nic_mtu"]')" $UNDERLAY_MTU
  ip -n "$NSX" link set ux0 mtu 1400
  local i mtu=""
  for i in $(seq 20); do
    mtu=$(xs_json "$XS_IF" 'd["xdp"]["nic_mtu"]')
    [[ $mtu == 1400 ]] && break
    sleep 0.1
  done
  expect_eq "xdp.nic_mtu after ip link set mtu 1400" "$mtu" 1400
  ip -n "$NSX" link set ux0 mtu $UNDERLAY_MTU
  ping_ok "$NSX" $IN4_G -M do -s 1392
  pair_down
}


# xs_json_keys IF: the xsk_* statistics as "name=value ...", failing unless all six are numbers.
xs_json_keys() {
  "$XSKTUN_BIN" show "$1" --json | python3 "$HERE/jsonq.py" numbers xsk_rx_dropped xsk_rx_invalid_descs \
    xsk_tx_invalid_descs xsk_rx_ring_full xsk_fill_ring_empty xsk_tx_ring_empty xdp_pass_too_big \
    map_update_errors udp_socket_drops slowpath_rx_packets drop_xsk_tx_full
}

# Past the old map sizes (65,536 peers, 131,072 prefixes): 70,000 peers x 2 /32s, in one
# `wg addconf`. Then a change that would pass the peer limit is refused whole.
case_capacity() {
  pair_up xdp 4
  local conf=$TEST_TMP/many.conf over=$TEST_TMP/over.conf t0 out
  python3 "$HERE/many_peers.py" 0 70000 2 >"$conf"
  t0=$SECONDS
  wg addconf "$XS_IF" "$conf"
  info "wg addconf of 70,000 peers x 2 prefixes: $((SECONDS - t0)) s"
  expect_eq "peers after addconf" "$(wg show "$XS_IF" peers | wc -l)" 70001
  out=$(python3 "$HERE/maps.py" "$NSX" "$XS_IF" "$XSKTUN_PIN_ROOT/$XS_IF" allowed 2>&1) || die "maps vs wg show: $out"
  expect_eq "prefixes in the allowed-IPs maps (= wg show)" "$out" 140002
  # 131,072 peers is the limit: 61,072 more (with one more prefix for the real peer) is one too many.
  python3 "$HERE/many_peers.py" 70000 61072 0 | sed '/^AllowedIPs = $/d' >"$over"
  printf '\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.250.9.9/32\n' "$(pub go)" >>"$over"
  out=$(wg addconf "$XS_IF" "$over" 2>&1) && die "wg addconf past the peer limit succeeded"
  info "wg addconf past the limit: $out"
  [[ $out == *"No space left on device"* ]] || die "wg addconf past the limit: unexpected error: $out"
  expect_eq "peers after the refused change" "$(wg show "$XS_IF" peers | wc -l)" 70001
  wg show "$XS_IF" allowed-ips | grep -q 10.250.9.9 && die "a prefix of the refused change was applied"
  grep -q "the limit is 131072" "$TEST_TMP/$XS_IF.log" || die "the daemon log does not say which limit"
  expect_eq "map_update_errors" "$(xsktun_counter "$XS_IF" map_update_errors)" 0
  ping_ok "$NSX" $IN4_G
  pair_down
}

CASES_ALL="1 2 3 4 5 6"
declare -A CASE_FN=([1]="case_xdp 4" [2]="case_xdp 6" [3]="case_socket 4" [4]="case_socket 6"
  [5]=case_xsk_stats [6]=case_capacity)
declare -A CASE_NAME=(
  [1]="XDP mode, IPv4 outer, 1280-byte underlay through a bridge: full-size pings and TCP both ways"
  [2]="XDP mode, IPv6 outer, 1280-byte underlay through a bridge: full-size pings and TCP both ways"
  [3]="socket mode, IPv4 outer, 1280-byte underlay through a bridge: full-size pings and TCP both ways"
  [4]="socket mode, IPv6 outer, 1280-byte underlay through a bridge: full-size pings and TCP both ways"
  [5]="AF_XDP statistics and the NIC MTU in show --json; an MTU change followed"
  [6]="70,000 peers x 2 prefixes: maps equal wg show; a change past the peer limit refused whole")

setup_underlay
run_cases
passed_summary "all underlay cases"
