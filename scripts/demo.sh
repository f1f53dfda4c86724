#!/usr/bin/env bash
# The README's main command: installs what it needs, builds, runs xsktun in XDP mode in one
# network namespace and wireguard-go in another over a veth pair, pings, runs a short iperf3,
# prints `xsktun show` and the pinned allowed-IPs map, and tears everything down (also on ^C).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$(id -u)" -eq 0 ] || { echo "demo.sh needs root (network namespaces, XDP)" >&2; exit 1; }

"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$ROOT/build" --target xsktun -j"$(nproc)"
XSKTUN=$ROOT/build/xsktun

S=$$
NA=xdemo-a-$S NB=xdemo-b-$S
IFA=xsk$((S % 100000)) IFB=wgd$((S % 100000))
TMP=$(mktemp -d)
umask 077
cleanup() {
  set +e
  nsenter --net=/var/run/netns/$NA "$XSKTUN" down "$IFA" >/dev/null 2>&1
  pkill -f "wireguard-go $IFB" >/dev/null 2>&1
  pkill -f "iperf3 -s -B 10.77.0.1" >/dev/null 2>&1
  ip netns del "$NA" 2>/dev/null
  ip netns del "$NB" 2>/dev/null
  rm -f "/var/run/wireguard/$IFB.sock"
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

echo "== topology: $NA (xsktun, XDP on veth) <-> $NB (wireguard-go) =="
ip netns add "$NA"
ip netns add "$NB"
ip link add va netns "$NA" type veth peer name vb netns "$NB"
ip -n "$NA" addr add 192.168.77.1/24 dev va
ip -n "$NB" addr add 192.168.77.2/24 dev vb
for n in "$NA:va" "$NB:vb"; do
  ip -n "${n%%:*}" link set lo up
  ip -n "${n%%:*}" link set "${n##*:}" up
  ip netns exec "${n%%:*}" sysctl -qw "net.ipv6.conf.${n##*:}.disable_ipv6=1"
done
wg genkey >"$TMP/ka"
wg genkey >"$TMP/kb"
PA=$(wg pubkey <"$TMP/ka")
PB=$(wg pubkey <"$TMP/kb")

# nsenter keeps the host's /sys/fs/bpf visible (ip netns exec would hide it), so the pins show.
NSA="nsenter --net=/var/run/netns/$NA"
$NSA "$XSKTUN" up "$IFA" --mode xdp --nic va --log-file "$TMP/xsktun.log"
ip netns exec "$NB" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go "$IFB" >/dev/null 2>&1
$NSA wg set "$IFA" private-key "$TMP/ka" listen-port 51820 peer "$PB" allowed-ips 10.77.0.2/32 \
  endpoint 192.168.77.2:51821
ip netns exec "$NB" wg set "$IFB" private-key "$TMP/kb" listen-port 51821 peer "$PA" allowed-ips 10.77.0.1/32 \
  endpoint 192.168.77.1:51820
ip -n "$NA" addr add 10.77.0.1/24 dev "$IFA"
ip -n "$NB" addr add 10.77.0.2/24 dev "$IFB"
ip -n "$NA" link set "$IFA" up
ip -n "$NB" link set "$IFB" up

echo "== ping through the tunnel =="
$NSA ping -c 4 -i 0.2 10.77.0.2

echo "== iperf3 TCP, 5 s, wireguard-go -> xsktun =="
$NSA iperf3 -s -B 10.77.0.1 -1 -D
sleep 0.5
ip netns exec "$NB" iperf3 -c 10.77.0.1 -t 5 -J >"$TMP/iperf.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("throughput: %.2f Gbit/s" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' "$TMP/iperf.json"

echo "== xsktun show $IFA =="
$NSA "$XSKTUN" show "$IFA"
echo "== ip link: the XDP program on the veth =="
ip -n "$NA" link show va | grep -E "prog/xdp|xdp" || true
echo "== bpftool map dump pinned /sys/fs/bpf/xsktun/$IFA/allowed_ips_v4 =="
bpftool map dump pinned "/sys/fs/bpf/xsktun/$IFA/allowed_ips_v4"
echo "== teardown =="
