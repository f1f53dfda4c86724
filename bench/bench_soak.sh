# shellcheck shell=bash
# Soak mode of bench/bench.sh (`--soak SECONDS`); sourced by it, uses its helpers and variables
# and those of tests/netns/lib.sh (setup_topology, start_system, nsx, log, die, bg_register,
# TUN_PIDS, TEST_TMP, OUT, PY, REPORT_PY...).
# One tunnel, xsktun XDP mode on side A and socket mode on side B, so both modes soak at once, under
#   - mixed traffic: an iperf3 TCP stream B->A capped at SOAK_TCP_RATE, iperf3 UDP A->B at
#     SOAK_UDP_RATE, a ping B->A every 0.2 s (its loss is a criterion);
#   - rekeys: none forced; the initiator rekeys by itself after REKEY_AFTER_TIME = 120 s
#     (WireGuard whitepaper section 6.2; kernel drivers/net/wireguard/messages.h), counted through
#     the handshakes_completed counter of `xsktun show --json`;
#   - peer churn through `wg set` on both sides: a dummy peer added every SOAK_CHURN_EVERY s, the
#     oldest removed beyond SOAK_MAX_DUMMIES; every SOAK_ALLOWED_EVERY s the real peer gets an extra
#     allowed-ips prefix, removed again one churn tick later (its /32 always stays);
#   - a sample of each daemon every SOAK_INTERVAL s (RSS, fds, threads, CPU, counters, BPF map
#     entries) into OUT/soak.jsonl.
# `bench_report.py soak` then judges the samples (bench/README.md, "Soak mode").

SOAK_INTERVAL=10
SOAK_REKEY_AFTER=120
SOAK_TCP_RATE=300M
SOAK_UDP_RATE=50M
SOAK_PING_INTERVAL=0.2
SOAK_CHURN_EVERY=5
SOAK_ALLOWED_EVERY=30
SOAK_MAX_DUMMIES=50
SOAK_LOOP_PIDS=()

soak_now_us() { echo "${EPOCHREALTIME/./}"; }
soak_sleep_until() {  # UNIX-MICROSECONDS
  local d=$(($1 - $(soak_now_us)))
  [ $d -le 0 ] || sleep "$((d / 1000000)).$(printf %06d $((d % 1000000)))"
}
soak_running() { [ ! -e "$TEST_TMP/soak.stop" ] && [ "$(date +%s)" -lt "$SOAK_END" ]; }

# soak_side a|b: S_NS S_IF S_PID S_MODE, and the real peer on that side (S_PEER key, S_PEER_IN /32)
soak_side() {
  if [ "$1" = a ]; then
    S_NS=$NA S_IF=$IFA S_PID=${TUN_PIDS[0]} S_MODE=xdp S_PEER=$SOAK_PUB_B S_PEER_IN=$IN_B
  else
    S_NS=$NB S_IF=$IFB S_PID=${TUN_PIDS[1]} S_MODE=socket S_PEER=$SOAK_PUB_A S_PEER_IN=$IN_A
  fi
}

# ------------------------------------------------------------------------------ background loops
# These run as background subshells: no errexit / ERR trap there (a failed command is logged and
# the loop goes on); bench.sh's cleanup kills them (bg_register).

# soak_traffic NAME PORT IPERF3-ARGS...: keeps one iperf3 client (in B) running until the end; a
# client that ends early (tunnel stall, server hiccup) is restarted and logged in traffic.log.
soak_traffic() {
  local name=$1 port=$2 n=0 left rc
  shift 2
  set +eE
  trap - ERR
  while soak_running; do
    left=$((SOAK_END - $(date +%s)))
    [ $left -ge 3 ] || break
    n=$((n + 1))
    timeout $((left + 30)) nsenter --net="/var/run/netns/$NB" iperf3 -c "$TA" -p "$port" -t "$left" -i 10 \
      --connect-timeout 3000 -J "$@" >"$CELL/$name.$n.json" 2>"$CELL/$name.$n.err" &
    echo $! >"$TEST_TMP/traffic.$name.pid"
    wait $!
    rc=$?
    echo "$(date +%s) $name run $n exit $rc left $left" >>"$CELL/traffic.log"
    [ $rc = 0 ] || sleep 1
  done
}

soak_wg() {  # SIDE OP WG-SET-ARGS...: one `wg set` on that side, logged in churn.log
  local side=$1 op=$2 out rc
  shift 2
  soak_side "$side"
  out=$(timeout 10 nsenter --net="/var/run/netns/$S_NS" wg set "$S_IF" "$@" 2>&1)
  rc=$?
  echo "$(date +%s.%N | cut -c1-14) $side $op $rc${out:+ $(tr '\n' ' ' <<<"$out")}" >>"$CELL/churn.log"
  return $rc
}

# Dummy peers: fresh key, allowed-ips in 10.251.0.0-10.254.255.255 and fd51::/16 (never the real
# 10.250.0.0/24), an endpoint in the underlay /24 where nothing answers. Every other one has a
# persistent keepalive, so handshake initiations keep going out to it and are retried and given up
# on: the timer and staging paths run the whole time, not just the configuration code.
soak_churn() {
  local tick=0 side pub n t0 ka ips
  # shellcheck disable=SC2034  # used through the nameref below
  local -a dummies_a=() dummies_b=()
  set +eE
  trap - ERR
  t0=$(soak_now_us)
  while soak_running; do
    tick=$((tick + 1))
    soak_sleep_until $((t0 + tick * SOAK_CHURN_EVERY * 1000000))
    soak_running || break
    for side in a b; do
      local -n dummies=dummies_$side
      pub=$(wg genkey | wg pubkey)
      ka=()
      [ $((tick % 2)) = 0 ] || ka=(persistent-keepalive 25)
      ips="10.$((251 + RANDOM % 4)).$((RANDOM % 256)).$((RANDOM % 256))/32"
      ips+=",10.$((251 + RANDOM % 4)).$((RANDOM % 256)).0/24"
      ips+=",fd51:$(printf %x $RANDOM):$(printf %x $RANDOM)::/64"
      soak_wg "$side" add peer "$pub" allowed-ips "$ips" \
        endpoint "192.168.250.$((10 + RANDOM % 240)):$((1024 + RANDOM % 60000))" "${ka[@]}" &&
        dummies+=("$pub")
      if [ ${#dummies[@]} -gt $SOAK_MAX_DUMMIES ]; then
        soak_wg "$side" remove peer "${dummies[0]}" remove
        dummies=("${dummies[@]:1}")
      fi
      soak_side "$side"
      n=$(((tick / (SOAK_ALLOWED_EVERY / SOAK_CHURN_EVERY)) % 256))
      if [ $((tick % (SOAK_ALLOWED_EVERY / SOAK_CHURN_EVERY))) = 0 ]; then
        soak_wg "$side" allowed-add peer "$S_PEER" allowed-ips "$S_PEER_IN/32,10.249.$n.0/24"
      elif [ $((tick % (SOAK_ALLOWED_EVERY / SOAK_CHURN_EVERY))) = 1 ] && [ $tick -gt 1 ]; then
        soak_wg "$side" allowed-del peer "$S_PEER" allowed-ips "$S_PEER_IN/32"
      fi
      unset -n dummies
    done
  done
}

# Stops the loops. WAIT=1: give iperf3 time to end by itself (its -t ends at SOAK_END, and a
# killed client writes no results); WAIT=0 (a daemon died): stop everything now.
soak_stop_loops() {
  local wait=$1 i p f alive
  touch "$TEST_TMP/soak.stop"
  if [ "$wait" = 0 ]; then
    for f in "$TEST_TMP"/traffic.*.pid; do [ ! -f "$f" ] || kill -TERM "$(cat "$f")" 2>/dev/null || true; done
  fi
  for i in $(seq 450); do
    alive=0
    for p in "${SOAK_LOOP_PIDS[@]}"; do ! kill -0 "$p" 2>/dev/null || alive=1; done
    [ $alive = 1 ] || break
    [ "$i" != 300 ] || for f in "$TEST_TMP"/traffic.*.pid; do kill -TERM "$(cat "$f")" 2>/dev/null || true; done
    sleep 0.1
  done
  for p in "${SOAK_LOOP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for i in $(seq 50); do kill -0 "$SOAK_PING_PID" 2>/dev/null || break; sleep 0.1; done
  kill -INT "$SOAK_PING_PID" 2>/dev/null || true  # ping prints its summary on SIGINT
  wait "$SOAK_PING_PID" 2>/dev/null || true
}

# ------------------------------------------------------------------------------ sampling
soak_sample() {  # T: one line per daemon into soak.jsonl; returns 1 when a daemon is gone
  local t=$1 side dead=0 line shown='' bpf
  for side in a b; do
    soak_side "$side"
    bpf=()
    [ "$S_MODE" != xdp ] || ! command -v bpftool >/dev/null || bpf=(--pin-dir "/sys/fs/bpf/xsktun/$S_IF")
    timeout 5 nsenter --net="/var/run/netns/$S_NS" "$XSKTUN" show "$S_IF" --json \
      >"$TEST_TMP/show.json" 2>/dev/null || : >"$TEST_TMP/show.json"
    line=$("$PY" "$REPORT_PY" soak-sample --out "$SOAK_SAMPLES" --t "$t" --side "$side" --mode "$S_MODE" \
      --ifname "$S_IF" --pid "$S_PID" --show "$TEST_TMP/show.json" --ping "$CELL/ping.txt" "${bpf[@]}") || dead=1
    shown+="${shown:+ | }$line"
  done
  if [ $((t % 60)) = 0 ] || [ $dead = 1 ]; then log "t=${t}s $shown"; fi
  return $dead
}

soak_main() {
  local k t0 alive=() rc early=0 i side
  # shellcheck disable=SC2034  # read by bench.sh's setup_topology / start_system / snapshot_counters
  SYS=xsktun-mixed PROF=default ROUND=1 CELLNO=1
  CELL=$OUT/raw/soak
  # shellcheck disable=SC2034  # read by lib.sh (the daemons' logs)
  NETNS_LOG_DIR=$CELL
  SOAK_SAMPLES=$OUT/soak.jsonl
  mkdir -p "$CELL"
  rm -f "$SAMPLES"  # the matrix's samples file: not used here
  : >"$SOAK_SAMPLES"
  "$PY" "$REPORT_PY" meta --out "$OUT/meta.json" "mode=soak" "command=$CMDLINE" "date=$(date -Is)" \
    "host=$(hostname)" "cpus=$(nproc)" "kernel=$(uname -r)" "soak_seconds=$SOAK" "interval=$SOAK_INTERVAL" \
    "rekey_after=$SOAK_REKEY_AFTER" "tcp_rate=$SOAK_TCP_RATE" "udp_rate=$SOAK_UDP_RATE" "udp_size=$UDP_SIZE" \
    "ping_interval=$SOAK_PING_INTERVAL" "churn_every=$SOAK_CHURN_EVERY" "allowed_every=$SOAK_ALLOWED_EVERY" \
    "max_dummies=$SOAK_MAX_DUMMIES" "systems=xsktun-xdp,xsktun-socket" "xsktun=$XSKTUN" "repo_git=$XSK_REV" \
    "iperf3=$(iperf3 --version | head -n1)" "idle_cpu_busy_pct=$BUSY_PCT"
  log "command: $CMDLINE"
  log "soak for $SOAK s: xsktun XDP mode (side A) <-> socket mode (side B); TCP $SOAK_TCP_RATE B->A," \
    "UDP $SOAK_UDP_RATE A->B, ping every $SOAK_PING_INTERVAL s, peer churn every $SOAK_CHURN_EVERY s;" \
    "output: $OUT"
  setup_topology
  start_system
  SOAK_PUB_A=$(pub a) SOAK_PUB_B=$(pub b)
  for k in 5201 5202; do
    nsenter --net="/var/run/netns/$NA" iperf3 -s -B "$TA" -p $k >"$CELL/iperf3-server-$k.log" 2>&1 &
    bg_register $!
  done
  for i in $(seq 60); do
    [ "$(nsx "$NA" ss -Hltn 'sport = :5201 or sport = :5202' | wc -l)" -lt 2 ] || break
    sleep 0.05
  done

  t0=$(soak_now_us)
  SOAK_END=$((t0 / 1000000 + SOAK))
  nsenter --net="/var/run/netns/$NB" ping -D -i "$SOAK_PING_INTERVAL" -W 1 -w "$SOAK" "$TA" \
    >"$CELL/ping.txt" 2>&1 &
  SOAK_PING_PID=$!
  bg_register $!
  soak_traffic tcp 5201 -b "$SOAK_TCP_RATE" &
  SOAK_LOOP_PIDS+=($!)
  soak_traffic udp 5202 -u -R -b "$SOAK_UDP_RATE" -l "$UDP_SIZE" &
  SOAK_LOOP_PIDS+=($!)
  soak_churn &
  SOAK_LOOP_PIDS+=($!)
  for k in "${SOAK_LOOP_PIDS[@]}"; do bg_register "$k"; done

  for ((k = 0; k * SOAK_INTERVAL <= SOAK; k++)); do
    soak_sleep_until $((t0 + k * SOAK_INTERVAL * 1000000))
    if ! soak_sample $((k * SOAK_INTERVAL)); then
      echo "bench.sh: FAIL: a daemon exited at t=$((k * SOAK_INTERVAL)) s; stopping the soak" >&2
      tail -n 15 "$CELL/$IFA.log" "$CELL/$IFB.log" >&2 2>/dev/null || true
      early=1
      break
    fi
  done
  log "stopping traffic and churn"
  soak_stop_loops $((1 - early))
  for side in a b; do
    soak_side $side
    if kill -0 "$S_PID" 2>/dev/null; then i=yes; else i=no; fi
    alive+=(--alive-at-end "$side=$i")
  done
  snapshot_counters
  find "$CELL" -type f -empty -delete
  if "$PY" "$REPORT_PY" soak --dir "$OUT" "${alive[@]}"; then rc=0; else rc=$?; fi
  echo
  [ ! -f "$OUT/soak.md" ] || cat "$OUT/soak.md"
  echo "Command line: $CMDLINE"
  echo "Results: $OUT/soak.md, $OUT/soak.json$([ -f "$OUT/soak.png" ] && echo ", $OUT/soak.png"); samples:" \
    "$OUT/soak.jsonl; raw: $CELL"
  exit $rc
}
