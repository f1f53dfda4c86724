#!/usr/bin/env python3
"""Datagrams sent straight at a tunnel's underlay port (not through the tunnel), for the
netns suites. Run it inside the sending namespace (`ip netns exec NS python3 packets.py ...`).

  packets.py blast DST COUNT
      COUNT 1000-byte UDP datagrams to DST:9 as fast as possible; prints how many the kernel
      took (the rest: ENOBUFS from a full queue). faults.sh, case 5.
  packets.py junk KIND COUNT HOST PORT
      COUNT datagrams to HOST:PORT. KIND data: well-formed data messages (type 4, zero reserved
      bytes, counter and 16+ bytes) with random receiver indices; malformed: what a WireGuard
      parser must reject by its header alone; initiation: 148-byte initiations with garbage
      MACs. xdp.sh, case 8.
  packets.py replay PCAP SRC HOST PORT
      The WireGuard data messages (type 4, whitepaper 5.4.6) of the IPv4 frames in PCAP
      (tcpdump -w), resent from SRC (any port) to HOST:PORT; prints how many. interop.sh, case 10.
"""
import argparse
import os
import random
import socket
import struct


def blast(dst, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    for _ in range(count):
        try:
            s.sendto(b"x" * 1000, (dst, 9))
            sent += 1
        except OSError:
            pass
    print(sent)


MALFORMED = [
    b"",                                      # no header at all
    b"\x04\x00\x00",                          # shorter than a header
    b"\x05\x00\x00\x00" + os.urandom(40),     # unknown type
    b"\x00\x00\x00\x00" + os.urandom(40),     # type 0
    b"\x04\x01\x00\x00" + os.urandom(40),     # reserved byte set
    b"\x04\x00\x00\x00" + os.urandom(20),     # data, shorter than header + counter + tag
    b"\x01\x00\x00\x00" + os.urandom(100),    # initiation of the wrong size
    b"\x02\x00\x00\x00" + os.urandom(91),     # response of the wrong size
    b"\x03\x00\x00\x00" + os.urandom(10),     # cookie reply of the wrong size
    b"\xff" * 64,
]


def junk(kind, count, host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        if kind == "data":
            msg = struct.pack("<I", 4) + struct.pack("<I", random.getrandbits(32)) + os.urandom(8 + 16 + 16 * (i % 5))
        elif kind == "initiation":
            msg = struct.pack("<I", 1) + os.urandom(144)
        else:
            msg = MALFORMED[i % len(MALFORMED)]
        s.sendto(msg, (host, port))


def replay(pcap, src, host, port):
    with open(pcap, "rb") as f:
        data = f.read()
    off, msgs = 24, []  # pcap: global header, then (ts_sec, ts_usec, incl_len, orig_len) + frame
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0xF) * 4
        payload = frame[14 + ihl + 8:]
        if payload[:1] == b"\x04":  # transport data (whitepaper 5.4.6)
            msgs.append(payload)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    for m in msgs:
        s.sendto(m, (host, port))
    print(len(msgs))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("blast")
    s.add_argument("dst")
    s.add_argument("count", type=int)
    s = sub.add_parser("junk")
    s.add_argument("kind", choices=["data", "malformed", "initiation"])
    s.add_argument("count", type=int)
    s.add_argument("host")
    s.add_argument("port", type=int)
    s = sub.add_parser("replay")
    s.add_argument("pcap")
    s.add_argument("src")
    s.add_argument("host")
    s.add_argument("port", type=int)
    a = p.parse_args()
    if a.cmd == "blast":
        blast(a.dst, a.count)
    elif a.cmd == "junk":
        junk(a.kind, a.count, a.host, a.port)
    else:
        replay(a.pcap, a.src, a.host, a.port)


if __name__ == "__main__":
    main()
