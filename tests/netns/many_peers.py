#!/usr/bin/env python3
"""Writes a wg(8) config fragment ([Peer] sections only, for `wg addconf`) with COUNT peers and
PREFIXES IPv4 /32 allowed IPs each, numbered from FIRST. Public keys are derived from the peer
number (any 32 bytes are a valid X25519 public key for wg and xsktun), so runs are repeatable.

  many_peers.py FIRST COUNT PREFIXES > peers.conf
"""
import base64, hashlib, sys

first, count, prefixes = (int(a) for a in sys.argv[1:4])
out = []
for n in range(first, first + count):
    key = base64.b64encode(hashlib.sha256(b"xsktun-peer-%d" % n).digest()).decode()
    ips = []
    for j in range(prefixes):
        a = n * prefixes + j  # distinct /32s in 10.128.0.0/9 and up
        ips.append("10.%d.%d.%d/32" % (128 + (a >> 16) % 128, (a >> 8) & 255, a & 255))
    out.append("[Peer]\nPublicKey = %s\nAllowedIPs = %s\n" % (key, ", ".join(ips)))
sys.stdout.write("\n".join(out))
