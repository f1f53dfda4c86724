#!/usr/bin/env python3
"""UDP flows with sequence numbers, for tests/netns/workers.sh.

  flows.py recv PORT SECONDS OUT.json
      Counts, per flow (source address and port), the datagrams received, those that arrived
      after a higher sequence number of the same flow (reordered) and repeats (duplicates).
  flows.py send SECONDS SIZE PPS DST:DPORT:SPORT...
      Sends from each source port to its destination in turn, PPS datagrams per second in all
      (0: as fast as it can), each carrying its flow's next sequence number; prints
      {"sent": {"DST:DPORT:SPORT": n}}.
  flows.py check SENT_JSON RECV.json...
      The verdict: every flow that `send` reports arrived (at least 1000 datagrams), none
      reordered or duplicated; prints a line per flow, exits 1 otherwise.
  flows.py pick XSKTUN IFNAME WORKERS WANT DST:DPORT...
      Picks WANT flows (source ports) over the destinations in turn such that every worker of
      xsktun IFNAME transmits at least one: each candidate sends a few datagrams and the
      worker whose tx_packets moved is its worker (`xsktun show --json`, "worker"). Prints the
      flows as DST:DPORT:SPORT, one per line.
"""
import json
import socket
import struct
import subprocess
import sys
import time


def recv(port, seconds, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.2)
    flows = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, src = s.recvfrom(65535)
        except socket.timeout:
            continue
        if len(data) < 8:
            continue
        (seq,) = struct.unpack("!Q", data[:8])
        f = flows.setdefault(f"{src[0]}:{src[1]}", {"received": 0, "reordered": 0, "duplicates": 0, "max": -1, "seen": set()})
        f["received"] += 1
        if seq in f["seen"]:
            f["duplicates"] += 1
        elif seq < f["max"]:
            f["reordered"] += 1
        f["seen"].add(seq)
        f["max"] = max(f["max"], seq)
    for f in flows.values():
        del f["seen"]
    with open(out, "w") as fh:
        json.dump(flows, fh)


def parse_flow(spec):
    dst, dport, sport = spec.rsplit(":", 2)
    return dst, int(dport), int(sport)


def send(seconds, size, pps, specs):
    socks = []
    for spec in specs:
        dst, dport, sport = parse_flow(spec)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", sport))
        s.connect((dst, dport))
        socks.append([spec, s, 0])
    pad = b"\0" * max(0, size - 8)
    start = time.monotonic()
    end = start + seconds
    rounds = 0
    while time.monotonic() < end:
        if pps:  # paced: round r starts at r * len(socks) / pps
            wait = start + rounds * len(socks) / pps - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        rounds += 1
        for f in socks:
            try:
                f[1].send(struct.pack("!Q", f[2]) + pad)
                f[2] += 1
            except OSError:  # ENOBUFS under load: the sequence number is not spent
                pass
    print(json.dumps({"sent": {f[0]: f[2] for f in socks}}))


def check(sent_json, recv_files):
    sent = json.loads(sent_json)["sent"]
    got = {}
    for path in recv_files:
        with open(path) as fh:
            got.update(json.load(fh))
    bad = False
    for spec, n in sent.items():
        dst, _, sport = spec.rsplit(":", 2)
        f = next((v for k, v in got.items() if k.endswith(":" + sport)), None)
        line = f"flow {sport} -> {dst}: sent {n}, "
        line += (f"received {f['received']}, reordered {f['reordered']}, duplicates {f['duplicates']}"
                 if f else "received nothing")
        print("    " + line, file=sys.stderr)
        if not f or f["reordered"] or f["duplicates"] or f["received"] < 1000:
            bad = True
    sys.exit(1 if bad else 0)


def worker_tx(xsktun, ifname):
    out = subprocess.run([xsktun, "show", ifname, "--json"], check=True, capture_output=True, text=True).stdout
    return [w["tx_packets"] for w in json.loads(out)["worker"]]


def pick(xsktun, ifname, workers, want, dsts):
    chosen, covered, sport = [], set(), 40000
    while len(chosen) < want and sport < 40400:
        dst, dport = dsts[len(chosen) % len(dsts)].rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", sport))
        before = worker_tx(xsktun, ifname)
        for i in range(20):
            s.sendto(struct.pack("!Q", 1 << 62) + b"probe", (dst, int(dport)))
        time.sleep(0.05)
        after = worker_tx(xsktun, ifname)
        s.close()
        delta = [a - b for a, b in zip(after, before)]
        w = max(range(len(delta)), key=lambda i: delta[i])
        # Until every worker has a flow, take only flows of workers without one.
        if delta[w] >= 20 and (w not in covered or len(covered) == workers):
            chosen.append(f"{dst}:{dport}:{sport}")
            covered.add(w)
        sport += 1
    if len(chosen) < want or len(covered) < workers:
        sys.exit(f"pick: {len(chosen)} flows over workers {sorted(covered)} after trying up to port {sport}")
    print("\n".join(chosen))


def main():
    cmd = sys.argv[1]
    if cmd == "recv":
        recv(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    elif cmd == "send":
        send(float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3:])
    elif cmd == "pick":
        pick(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
