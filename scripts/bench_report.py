#!/usr/bin/env python3
"""Helpers for scripts/bench.sh: parse iperf3/ping output into samples, flood a WireGuard port,
and turn the samples into results.json, results.md and results.png.

Subcommands (bench.sh is the only intended caller; see docs/benchmark.md):
  sample   parse one measurement (iperf3 -J file, ping output, flooder stats) and append one JSON
           line to the samples file; print a one-line summary
  loss     print "<loss percent> <offered bit/s> <delivered bit/s>" of a UDP iperf3 -J file
  flood    send junk WireGuard messages to HOST:PORT in a tight loop until SIGTERM
  report   aggregate the samples: median and min-max per metric, ratio to wireguard-go

Python standard library only; matplotlib is used for the PNG when it can be imported.
"""

import argparse
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import sys
import time

# (test, metric, label, better) rows of the table, in order. `better` is "high" or "low".
ROWS = [
    ("tcp1", "gbps", "TCP, 1 stream (Gbit/s)", "high"),
    ("tcp4", "gbps", "TCP, 4 streams (Gbit/s)", "high"),
    ("udp_large", "gbps", "UDP {udp_size} B, offered -b 0: delivered (Gbit/s)", "high"),
    ("udp_large", "loss_pct", "UDP {udp_size} B, offered -b 0: loss (%)", "low"),
    ("udp_bisect", "clean_gbps", "UDP {udp_size} B: highest offered rate with <1% loss (Gbit/s)", "high"),
    ("udp64", "kpps", "UDP 64 B, offered -b 0: delivered (kpackets/s)", "high"),
    ("ping_idle", "p50_ms", "ping RTT idle, p50 (ms)", "low"),
    ("ping_idle", "p99_ms", "ping RTT idle, p99 (ms)", "low"),
    ("ping_load", "p50_ms", "ping RTT under TCP load, p50 (ms)", "low"),
    ("ping_load", "p99_ms", "ping RTT under TCP load, p99 (ms)", "low"),
    ("flood_junk", "kept", "TCP kept under junk data flood (fraction)", "high"),
    ("flood_init", "kept", "TCP kept under initiation flood (fraction)", "high"),
    ("tcp1", "cpu_tunnel_s_per_gb", "CPU s/GB, tunnel processes (TCP 1 stream)", "low"),
    ("tcp1", "cpu_total_s_per_gb", "CPU s/GB, whole machine (TCP 1 stream)", "low"),
    ("udp_large", "cpu_tunnel_s_per_gb", "CPU s/GB, tunnel processes (UDP {udp_size} B)", "low"),
]
REFERENCE = "wireguard-go"


# ---------------------------------------------------------------------------------------- parsing

def load_iperf(path):
    with open(path) as f:
        d = json.load(f)
    if "error" in d and "end" not in d:
        raise ValueError("iperf3: " + d["error"])
    return d


def iperf_metrics(d, cpu_tunnel, cpu_total):
    """Metrics of one iperf3 -J run. UDP numbers come from the receiver's view (sum_received),
    which is what the server reported back: bytes that arrived, datagrams lost by sequence gaps."""
    end = d["end"]
    udp = d["start"]["test_start"]["protocol"] == "UDP"
    sent, recv = end["sum_sent"], end["sum_received"]
    m = {"gbps": recv["bits_per_second"] / 1e9, "bytes": recv["bytes"],
         "offered_gbps": sent["bits_per_second"] / 1e9, "seconds": sent["seconds"],
         "receiver_seconds": recv["seconds"]}
    if udp:
        # The receiver's clock stops only when the end-of-test message, sent over a TCP control
        # connection through the same saturated tunnel, gets through: seconds later on a lossy
        # path, so its own bits_per_second understates the rate. Divide by the sending time.
        secs = max(sent["seconds"], 1e-9)
        delivered = recv["packets"] - recv["lost_packets"]
        m["gbps"] = recv["bytes"] * 8 / secs / 1e9
        m["loss_pct"] = recv["lost_percent"]
        m["kpps"] = delivered / secs / 1e3
        m["packets_sent"] = sent["packets"]
    else:
        m["retransmits"] = sent.get("retransmits")
    gb = recv["bytes"] / 1e9
    if cpu_tunnel is not None and gb > 0:
        m["cpu_tunnel_s"] = cpu_tunnel
        m["cpu_tunnel_s_per_gb"] = cpu_tunnel / gb
    if cpu_total is not None and gb > 0:
        m["cpu_total_s"] = cpu_total
        m["cpu_total_s_per_gb"] = cpu_total / gb
    raw = {"sum_sent": sent, "sum_received": recv,
           "cpu_utilization_percent": end.get("cpu_utilization_percent")}
    return m, raw


def percentile(values, p):
    """Nearest-rank percentile: the smallest sample with at least p% of samples at or below it."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def ping_metrics(path, count):
    rtts = []
    with open(path) as f:
        for line in f:
            mt = re.search(r"time=([0-9.]+) ms", line)
            if mt:
                rtts.append(float(mt.group(1)))
    if not rtts:
        raise ValueError("no ping replies in " + path)
    m = {"p50_ms": percentile(rtts, 50), "p99_ms": percentile(rtts, 99), "replies": len(rtts),
         "loss_pct": 100.0 * (count - len(rtts)) / count if count else 0.0}
    return m, {"rtt_ms": rtts}


def cmd_sample(a):
    rec = {"system": a.system, "profile": a.profile, "round": a.round, "test": a.test,
           "time": time.time(), "ok": True, "metrics": {}, "raw": {}}
    try:
        if a.iperf:
            rec["metrics"], rec["raw"] = iperf_metrics(load_iperf(a.iperf), a.cpu_tunnel, a.cpu_total)
        elif a.ping:
            rec["metrics"], rec["raw"] = ping_metrics(a.ping, a.ping_count)
        for kv in a.metric or []:
            k, v = kv.split("=", 1)
            rec["metrics"][k] = float(v)
        for kv in a.raw or []:
            k, v = kv.split("=", 1)
            rec["raw"][k] = json.loads(v) if v[:1] in "[{" else v
        if a.flood:
            with open(a.flood) as f:
                rec["raw"]["flooder"] = json.load(f)
    except (OSError, ValueError, KeyError, TypeError) as e:
        rec["ok"] = False
        rec["error"] = str(e)
    if a.error:
        rec["ok"] = False
        rec["error"] = a.error
    with open(a.out, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    m = rec["metrics"]
    shown = ", ".join("%s=%.4g" % (k, m[k]) for k in
                      ("gbps", "loss_pct", "kpps", "clean_gbps", "p50_ms", "p99_ms", "cpu_tunnel_s_per_gb")
                      if k in m)
    print("    %-11s %s" % (a.test, shown if rec["ok"] else "FAILED: " + rec["error"]))
    return 0 if rec["ok"] else 1


def cmd_loss(a):
    m, _ = iperf_metrics(load_iperf(a.file), None, None)
    print("%.4f %.0f %.0f" % (m["loss_pct"], m["offered_gbps"] * 1e9, m["gbps"] * 1e9))
    return 0


# ---------------------------------------------------------------------------------------- flooder

def flood_packets(kind, n):
    """WireGuard-shaped garbage (message layouts: WireGuard whitepaper, section 5.4):
    junk: type 4 transport data with a random receiver index, counter and "ciphertext",
          32..200 bytes in all (the 16-byte header plus at least an AEAD tag's worth);
    init: type 1 handshake initiation, 148 bytes, all random after the type (so MAC1 is wrong)."""
    rng = random.Random(os.urandom(8))
    pkts = []
    for _ in range(n):
        if kind == "junk":
            pkts.append(b"\x04\x00\x00\x00" + rng.randbytes(rng.randint(32, 200) - 4))
        else:
            pkts.append(b"\x01\x00\x00\x00" + rng.randbytes(144))
    return pkts


def cmd_flood(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    host, port = a.dst.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.src, 0))
    s.connect((host, int(port)))
    pkts = flood_packets(a.kind, 4096)
    send = s.send
    sent = errors = 0
    t0 = time.monotonic()
    deadline = t0 + a.max_seconds
    while not stop and time.monotonic() < deadline:
        for p in pkts:
            try:
                send(p)
            except OSError:  # ENOBUFS / ECONNREFUSED from an ICMP: keep going
                errors += 1
        sent += len(pkts)
    secs = time.monotonic() - t0
    sent -= errors
    with open(a.out, "w") as f:
        json.dump({"kind": a.kind, "sent": sent, "errors": errors, "seconds": secs,
                   "pps": sent / secs if secs else 0.0, "src": a.src, "dst": a.dst}, f)
    return 0


# ----------------------------------------------------------------------------------------- report

def read_samples(path):
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out


def add_derived(samples):
    """flood_* 'kept' = TCP 1-stream Gbit/s under flood / the same round's Gbit/s without it."""
    base = {(s["system"], s["profile"], s["round"]): s["metrics"].get("gbps")
            for s in samples if s["test"] == "tcp1" and s["ok"]}
    for s in samples:
        if s["test"].startswith("flood_") and s["ok"]:
            b = base.get((s["system"], s["profile"], s["round"]))
            if b:
                s["metrics"]["kept"] = s["metrics"]["gbps"] / b


def summarize(samples):
    acc = {}
    for s in samples:
        if not s["ok"]:
            continue
        for k, v in s["metrics"].items():
            if isinstance(v, (int, float)) and v is not None:
                acc.setdefault(s["profile"], {}).setdefault(s["system"], {}) \
                   .setdefault(s["test"] + "." + k, []).append(v)
    summary = {}
    for prof, systems in acc.items():
        for sysname, metrics in systems.items():
            for key, vals in metrics.items():
                summary.setdefault(prof, {}).setdefault(sysname, {})[key] = {
                    "median": statistics.median(vals), "min": min(vals), "max": max(vals),
                    "n": len(vals), "values": vals}
    return summary


def fmt(v):
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def markdown(meta, summary, systems, profiles, failures):
    udp_size = meta.get("udp_size", "?")
    lines = ["# xsktun benchmark %s" % meta.get("date", ""), "",
             "Command: `%s`  " % meta.get("command", ""),
             "Host: %s, %s CPUs, kernel %s, %s%% busy before the start; %s round(s); %s s per TCP test, "
             "%s s per UDP and flood test." %
             (meta.get("host", "?"), meta.get("cpus", "?"), meta.get("kernel", "?"),
              meta.get("idle_cpu_busy_pct", "?"), meta.get("rounds", "?"), meta.get("duration", "?"),
              meta.get("udp_duration", "?")) + "  ",
             "xsktun: %s (repository at %s); wireguard-go: %s%s." %
             (meta.get("xsktun", "?"), meta.get("repo_git", "?"), meta.get("wireguard_go") or "none",
              "; peer-impl: " + meta["peer_impl"] if meta.get("peer_impl") else ""),
             "", "Cells: median (min-max over rounds); `x` = median / %s median. "
             "Meaning of each row: docs/benchmark.md." % REFERENCE, ""]
    for prof in profiles:
        if prof not in summary:
            continue
        lines.append("## Profile `%s`" % prof)
        lines.append("")
        cols = [s for s in systems if s in summary[prof]]
        lines.append("| metric | better | " + " | ".join(cols) + " |")
        lines.append("|---|---|" + "---|" * len(cols))
        for test, metric, label, better in ROWS:
            key = test + "." + metric
            if not any(key in summary[prof][c] for c in cols):
                continue
            ref = summary[prof].get(REFERENCE, {}).get(key)
            cells = []
            for c in cols:
                st = summary[prof][c].get(key)
                if not st:
                    cells.append("n/a")
                    continue
                cell = fmt(st["median"])
                if st["n"] > 1:
                    cell += " (%s-%s)" % (fmt(st["min"]), fmt(st["max"]))
                if ref and ref["median"] and c != REFERENCE:
                    cell += " x%.2f" % (st["median"] / ref["median"])
                cells.append(cell)
            lines.append("| %s | %s | %s |" % (label.format(udp_size=udp_size), better, " | ".join(cells)))
        lines.append("")
    if failures:
        lines.append("## Failed measurements")
        lines.append("")
        for s in failures:
            lines.append("- %s / %s / round %s / %s: %s" %
                         (s["system"], s["profile"], s["round"], s["test"], s.get("error", "?")))
        lines.append("")
    return "\n".join(lines)


CHART = [("tcp1.gbps", "TCP 1 stream, Gbit/s", True), ("tcp4.gbps", "TCP 4 streams, Gbit/s", True),
         ("udp_large.gbps", "UDP large, delivered Gbit/s", True),
         ("udp64.kpps", "UDP 64 B, delivered kpps", True),
         ("ping_idle.p50_ms", "ping idle p50, ms", False), ("ping_load.p99_ms", "ping under load p99, ms", False),
         ("flood_junk.kept", "TCP kept, junk flood", False), ("flood_init.kept", "TCP kept, init flood", False),
         ("tcp1.cpu_tunnel_s_per_gb", "tunnel CPU s/GB (TCP 1)", False)]


def chart(path, summary, systems, profiles):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench_report: matplotlib is not installed (Debian: python3-matplotlib); no PNG chart")
        return False
    fig, axes = plt.subplots(3, 3, figsize=(15, 11))
    colors = {p: "C%d" % i for i, p in enumerate(profiles)}
    for ax, (key, title, logy) in zip(axes.flat, CHART):
        # Only the profiles that ran this test get a bar slot (later profiles run fewer tests).
        here = [p for p in profiles if any(key in m for m in summary.get(p, {}).values())]
        width = 0.8 / max(1, len(here))
        for i, prof in enumerate(here):
            xs, ys, lo, hi = [], [], [], []
            for j, sysname in enumerate(systems):
                st = summary.get(prof, {}).get(sysname, {}).get(key)
                if st:
                    xs.append(j + (i - (len(here) - 1) / 2) * width)
                    ys.append(st["median"])
                    lo.append(st["median"] - st["min"])
                    hi.append(st["max"] - st["median"])
            if xs:
                ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=prof, color=colors[prof])
        ax.set_title(title)
        ax.set_xticks(range(len(systems)))
        ax.set_xticklabels(systems, rotation=20, fontsize=8)
        if logy and ax.has_data():
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(title="profile")
    fig.suptitle("xsktun benchmark (bars: median; whiskers: min-max over rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def cmd_report(a):
    with open(a.meta) as f:
        meta = json.load(f)
    samples = read_samples(a.samples)
    add_derived(samples)
    summary = summarize(samples)
    systems = meta["systems"]
    profiles = meta["profiles"]
    failures = [s for s in samples if not s["ok"]]
    md = markdown(meta, summary, systems, profiles, failures)
    with open(os.path.join(a.dir, "results.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(a.dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "samples": samples}, f, indent=1, sort_keys=True)
    chart(os.path.join(a.dir, "results.png"), summary, systems, profiles)
    return 0


def cmd_meta(a):
    meta = {}
    for kv in a.kv:
        k, v = kv.split("=", 1)
        meta[k] = v.split(",") if k in ("systems", "profiles") else v
    with open(a.out, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--out", required=True)
    for k in ("system", "profile", "test"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--round", type=int, required=True)
    s.add_argument("--iperf")
    s.add_argument("--ping")
    s.add_argument("--ping-count", type=int, default=0)
    s.add_argument("--flood")
    s.add_argument("--cpu-tunnel", type=float)
    s.add_argument("--cpu-total", type=float)
    s.add_argument("--metric", action="append", help="NAME=NUMBER")
    s.add_argument("--raw", action="append", help="NAME=VALUE (JSON if it starts with [ or {)")
    s.add_argument("--error", help="record the measurement as failed with this message")
    s.set_defaults(fn=cmd_sample)
    s = sub.add_parser("loss")
    s.add_argument("file")
    s.set_defaults(fn=cmd_loss)
    s = sub.add_parser("flood")
    s.add_argument("--kind", choices=("junk", "init"), required=True)
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True, help="HOST:PORT")
    s.add_argument("--out", required=True)
    s.add_argument("--max-seconds", type=float, default=120)
    s.set_defaults(fn=cmd_flood)
    s = sub.add_parser("meta")
    s.add_argument("--out", required=True)
    s.add_argument("kv", nargs="*")
    s.set_defaults(fn=cmd_meta)
    s = sub.add_parser("report")
    s.add_argument("--dir", required=True)
    s.add_argument("--meta", required=True)
    s.add_argument("--samples", required=True)
    s.set_defaults(fn=cmd_report)
    a = p.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
