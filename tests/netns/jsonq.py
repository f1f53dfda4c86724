#!/usr/bin/env python3
"""Reads the JSON the netns suites look at: `xsktun show --json` (on stdin) and iperf3 -J output.
Used by tests/netns/lib.sh (xs_counters, xs_json), underlay.sh and xdp.sh.

  jsonq.py counters NAME...  < show.json
      One "NAME VALUE" line per named entry of the "counters" object.
  jsonq.py numbers NAME...   < show.json
      "NAME=VALUE ..." on one line; exits 1 naming the counters that are missing or not numbers.
  jsonq.py eval EXPR...      < doc.json
      Each Python EXPR evaluated on the parsed document (as d), the results on one line,
      separated by spaces (booleans, objects and lists in JSON spelling: true, not True).
  jsonq.py int FILE EXPR
      int(EXPR) on the parsed FILE (as d), e.g. the bytes an iperf3 receiver got.
"""
import argparse
import json
import sys


def counters(names):
    c = json.load(sys.stdin)["counters"]
    for k in names:
        print(k, c[k])


def numbers(names):
    c = json.load(sys.stdin)["counters"]
    bad = [k for k in names if not isinstance(c.get(k), int)]
    if bad:
        sys.exit("missing or not a number: %s" % bad)
    print(" ".join("%s=%d" % (k, c[k]) for k in names))


def evaluate(exprs):
    env = {"d": json.load(sys.stdin)}  # globals, so that generator expressions see d too
    vals = [eval(e, env) for e in exprs]
    print(" ".join(json.dumps(v) if isinstance(v, (bool, dict, list)) else str(v) for v in vals))


def int_of(path, expr):
    with open(path) as f:
        env = {"d": json.load(f)}
    print(int(eval(expr, env)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("counters").add_argument("names", nargs="+")
    sub.add_parser("numbers").add_argument("names", nargs="+")
    sub.add_parser("eval").add_argument("exprs", nargs="+")
    s = sub.add_parser("int")
    s.add_argument("file")
    s.add_argument("expr")
    a = p.parse_args()
    if a.cmd == "counters":
        counters(a.names)
    elif a.cmd == "numbers":
        numbers(a.names)
    elif a.cmd == "eval":
        evaluate(a.exprs)
    else:
        int_of(a.file, a.expr)


if __name__ == "__main__":
    main()
