#!/usr/bin/env python3
"""Compares xsktun's pinned BPF maps (bpftool -j, run through nsenter so the host's bpffs is
read) with what wg(8) shows. Used by tests/netns/xdp.sh and tests/netns/underlay.sh.

  maps.py NS IFNAME PIN_DIR allowed         -> prints the number of prefixes; exits non-zero
                                              unless peers and allowed-IPs maps equal wg show
  maps.py NS IFNAME PIN_DIR sessions PUB    -> "<session entries of PUB> <all entries>"
"""
import base64, ipaddress, json, subprocess, sys

ns, ifn, pins, what = sys.argv[1:5]

def dump(name):
    out = subprocess.run(["nsenter", "--net=/var/run/netns/" + ns, "bpftool", "-j", "map", "dump",
                          "pinned", pins + "/" + name], check=True, capture_output=True, text=True).stdout
    rows = []
    for e in json.loads(out):
        f = e.get("formatted")
        if f is None:
            sys.exit("map %s: no BTF-formatted entries (bpftool output %r)" % (name, e))
        rows.append((f["key"], f["value"]))
    return rows

def peer_ids():  # peers map: id -> base64 public key
    return {k: base64.b64encode(bytes(v["public_key"])).decode() for k, v in dump("peers")}

def wg(*args):
    return subprocess.run(["wg", "show", ifn] + list(args), check=True, capture_output=True,
                          text=True).stdout

if what == "allowed":
    ids = peer_ids()
    want_peers = set(wg("peers").split())
    if set(ids.values()) != want_peers or len(ids) != len(want_peers):
        sys.exit("peers map %s != wg show peers %s" % (sorted(ids.values()), sorted(want_peers)))
    got = set()
    for name, fam in (("allowed_ips_v4", 4), ("allowed_ips_v6", 6)):
        for k, v in dump(name):
            if v not in ids:
                sys.exit("%s: %s points to peer id %d, not in the peers map" % (name, k, v))
            addr = ipaddress.ip_address(bytes(k["addr"]))
            got.add((ids[v], "%s/%d" % (addr, k["prefixlen"])))
    want = set()
    for line in wg("allowed-ips").splitlines():
        key, *prefixes = line.split()
        want |= {(key, p) for p in prefixes if p != "(none)"}
    if got != want:
        sys.exit("allowed-IPs maps != wg show allowed-ips:\n  only in the maps: %s\n  only in wg: %s"
                 % (sorted(got - want), sorted(want - got)))
    print(len(got))
elif what == "sessions":  # sessions PUB: "<entries of PUB> <all entries>"
    ids = peer_ids()
    rows = dump("sessions")
    for k, v in rows:
        if v["peer_id"] not in ids:
            sys.exit("sessions: index %#x points to peer id %d, not in the peers map" % (k, v["peer_id"]))
    print(sum(1 for k, v in rows if ids[v["peer_id"]] == sys.argv[5]), len(rows))
