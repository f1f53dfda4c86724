#!/usr/bin/env python3
"""What tests/netns/service.sh plays of systemd and of Prometheus.

  service.py notify-listen PATH OUT
      A datagram socket bound at PATH (systemd's $NOTIFY_SOCKET) that appends each message it
      receives to OUT, one line each (newlines inside a message become spaces). Runs until killed.
  service.py scrape URL
      GET URL (the daemon's /metrics; urllib, no curl needed): prints the body.
"""
import argparse
import socket
import urllib.request


def notify_listen(path, out):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    while True:
        msg = s.recv(4096).decode()
        with open(out, "a") as f:
            f.write(msg.replace("\n", " ") + "\n")


def scrape(url):
    print(urllib.request.urlopen(url, timeout=5).read().decode(), end="")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("notify-listen")
    s.add_argument("path")
    s.add_argument("out")
    sub.add_parser("scrape").add_argument("url")
    a = p.parse_args()
    if a.cmd == "notify-listen":
        notify_listen(a.path, a.out)
    else:
        scrape(a.url)


if __name__ == "__main__":
    main()
