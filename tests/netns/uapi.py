#!/usr/bin/env python3
"""WireGuard cross-platform UAPI clients (https://www.wireguard.com/xplatform/) that wg(8) is
too well-behaved to be: for tests/netns/faults.sh, case 6.

  uapi.py peers COUNT > set.uapi
      A `set=1` request adding COUNT peers (made-up keys), each with one /24.
  uapi.py set-get SOCK FILE
      Sends FILE as one request (it must answer errno=0), then a complete `get=1`: prints the
      size of the get reply in bytes.
  uapi.py hangup SOCK MODE
      A client that hangs up mid-command. MODE half-set: "set=1\\nlisten_port=40000\\n" without
      the blank line that ends a command, then close; get-noread: "get=1\\n\\n", close without
      reading; get-stall: the same, but keep the connection open, unread, until `wg show` (run
      meanwhile) has answered: a client that does not read its reply must not block the others.
"""
import argparse
import socket
import subprocess
import sys
import time


def peers(count):
    print("set=1")
    for i in range(count):
        print("public_key=" + (b"\x01" * 28 + i.to_bytes(4, "big")).hex())
        print("allowed_ip=10.%d.%d.0/24" % (100 + i // 256, i % 256))
    print()


def call(path, req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(req)
    r = b""
    while not r.endswith(b"\n\n"):
        d = s.recv(65536)
        if not d:
            break
        r += d
    return r


def set_get(path, req_file):
    with open(req_file, "rb") as f:
        req = f.read()
    r = call(path, req)
    if r != b"errno=0\n\n":
        sys.exit("set of %d peers: %r" % (req.count(b"public_key="), r))
    print(len(call(path, b"get=1\n\n")))


def hangup(path, mode):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    if mode == "half-set":
        s.sendall(b"set=1\nlisten_port=40000\n")
    elif mode == "get-noread":
        s.sendall(b"get=1\n\n")
    else:
        s.sendall(b"get=1\n\n")
        time.sleep(0.2)
        ifn = path.rsplit("/", 1)[1][:-5]
        try:
            r = subprocess.run(["wg", "show", ifn, "listen-port"], capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            sys.exit("wg show blocked for 10 s by a client that does not read its get reply")
        if r.returncode != 0:
            sys.exit("wg show with a client that does not read its get reply: " + r.stderr)
    s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("peers").add_argument("count", type=int)
    s = sub.add_parser("set-get")
    s.add_argument("sock")
    s.add_argument("file")
    s = sub.add_parser("hangup")
    s.add_argument("sock")
    s.add_argument("mode", choices=["half-set", "get-noread", "get-stall"])
    a = p.parse_args()
    if a.cmd == "peers":
        peers(a.count)
    elif a.cmd == "set-get":
        set_get(a.sock, a.file)
    else:
        hangup(a.sock, a.mode)


if __name__ == "__main__":
    main()
