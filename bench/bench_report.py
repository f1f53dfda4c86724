#!/usr/bin/env python3
"""Helpers for bench/bench.sh: parse iperf3/ping output into samples, flood a WireGuard port,
and turn the samples into results.json, results.md and results.png.

Subcommands (bench.sh is the only intended caller; see bench/README.md):
  sample   parse one measurement (iperf3 -J file, ping output, flooder stats) and append one JSON
           line to the samples file; print a one-line summary
  loss     print "<loss percent> <offered bit/s> <delivered bit/s>" of a UDP iperf3 -J file
  flood    send junk WireGuard messages to HOST:PORT in a tight loop until SIGTERM
  report   aggregate the samples: median and min-max per metric, ratio to wireguard-go
  soak-sample  (bench.sh --soak) one sample of a tunnel daemon: RSS, fds, threads, CPU, counters
  soak     (bench.sh --soak) judge the soak samples: PASS/FAIL per criterion (exit 1 on FAIL),
           soak.md, soak.json and soak.png

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
import subprocess
import sys
import time

# (test, metric, label, better) rows of the table, in order. `better` is "high" or "low".
ROWS = [
    ("tcp1", "gbps", "TCP, 1 stream (Gbit/s)", "high"),
    ("tcp1r", "gbps", "TCP, 1 stream, the other way (iperf3 -R) (Gbit/s)", "high"),
    ("tcp4", "gbps", "TCP, 4 streams (Gbit/s)", "high"),
    ("udp_large", "gbps", "UDP {udp_size} B, offered -b 0: delivered (Gbit/s)", "high"),
    ("udp_large", "loss_pct", "UDP {udp_size} B, offered -b 0: loss (%)", "low"),
    ("udp_bisect", "clean_gbps", "UDP {udp_size} B: highest offered rate with <1% loss (Gbit/s)", "high"),
    ("udp64", "kpps", "UDP 64 B, offered -b 0, receiver buffer {udp64_rcvbuf}: delivered (kpackets/s)", "high"),
    ("udp64", "reached_kpps", "UDP 64 B: delivered + dropped by the receiver's full socket (kpackets/s)", "high"),
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
        m = rec["metrics"]
        if "app_socket_drops" in m and "kpps" in m:
            # what the tunnel handed to the receiving namespace, whether or not iperf3 kept up
            m["reached_kpps"] = m["kpps"] + m["app_socket_drops"] / max(m["seconds"], 1e-9) / 1e3
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
    rb = str(meta.get("udp64_rcvbuf", ""))
    # runs from before --udp64-rcvbuf used iperf3's default buffer
    rcvbuf = "default" if rb in ("", "0") else ("%g MiB" % (int(rb) / 2**20) if rb.isdigit() else rb)
    lines = ["# xsktun benchmark %s" % meta.get("date", ""), "",
             "Command: `%s`  " % meta.get("command", ""),
             "Host: %s, %s CPUs, kernel %s, %s%% busy before the start; %s round(s); %s s per TCP test, "
             "%s s per UDP and flood test; %s queue(s) per veth end." %
             (meta.get("host", "?"), meta.get("cpus", "?"), meta.get("kernel", "?"),
              meta.get("idle_cpu_busy_pct", "?"), meta.get("rounds", "?"), meta.get("duration", "?"),
              meta.get("udp_duration", "?"), meta.get("nic_queues", "1")) + "  ",
             "xsktun: %s (repository at %s); wireguard-go: %s%s." %
             (meta.get("xsktun", "?"), meta.get("repo_git", "?"), meta.get("wireguard_go") or "none",
              "; peer-impl: " + meta["peer_impl"] if meta.get("peer_impl") else ""),
             "", "Cells: median (min-max over rounds); `x` = median / %s median. "
             "Meaning of each row: bench/README.md." % REFERENCE, ""]
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
            lines.append("| %s | %s | %s |" % (label.format(udp_size=udp_size, udp64_rcvbuf=rcvbuf), better, " | ".join(cells)))
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


# ------------------------------------------------------------------------------------------- soak

SOAK_BPF_MAPS = ("peers", "sessions", "allowed_ips_v4", "allowed_ips_v6")


def proc_stats(pid):
    """RSS, peak RSS (kB), threads, open fds and CPU seconds of a live process, or None."""
    try:
        st = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    st[k] = int(v.split()[0])
        kinds = {}
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue  # closed meanwhile
            # "socket:[123]" -> socket, "anon_inode:bpf-map" -> bpf-map, "anon_inode:[eventfd]" ->
            # eventfd, "/dev/net/tun" -> file
            if target.startswith("anon_inode:"):
                kind = target[len("anon_inode:"):].strip("[]")
            else:
                kind = target.split(":[", 1)[0] if ":[" in target else "file"
            kinds[kind] = kinds.get(kind, 0) + 1
        fds = sum(kinds.values())
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return None
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return {"rss_kb": st.get("VmRSS"), "hwm_kb": st.get("VmHWM"), "threads": st.get("Threads"),
            "fds": fds, "fd_kinds": kinds, "cpu_s": cpu}


def bpf_entries(pin_dir):
    """Entry count of each pinned map that grows with state (bpftool map dump), -1 if unreadable."""
    out = {}
    for name in SOAK_BPF_MAPS:
        try:
            r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", os.path.join(pin_dir, name)],
                               capture_output=True, timeout=10, check=True)
            out[name] = len(json.loads(r.stdout or b"[]"))
        except (OSError, ValueError, subprocess.SubprocessError):
            out[name] = -1
    return out


def cmd_soak_sample(a):
    rec = {"t": a.t, "time": time.time(), "side": a.side, "mode": a.mode, "ifname": a.ifname, "pid": a.pid}
    ps = proc_stats(a.pid)
    rec["alive"] = ps is not None
    rec.update(ps or {})
    try:
        with open(a.show) as f:
            show = json.load(f)
        rec["counters"] = show.get("counters", {})
        rec["peers"] = len(show.get("peers", []))
        rec["allowed_ips"] = sum(len(p.get("allowed_ips", [])) for p in show.get("peers", []))
    except (OSError, ValueError):
        rec["counters"] = None  # the daemon did not answer `show` in time
    if a.ping:
        try:
            with open(a.ping) as f:
                rec["ping_replies"] = sum(1 for line in f if "bytes from" in line and "DUP!" not in line)
        except OSError:
            pass
    if a.pin_dir and rec["alive"]:
        rec["bpf_entries"] = bpf_entries(a.pin_dir)
    with open(a.out, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    if not rec["alive"]:
        print("%s/%s: pid %d GONE" % (a.side, a.mode, a.pid))
        return 1
    c = rec["counters"] or {}
    print("%s/%s rss %.1fM fd %d thr %d hs %s peers %s" %
          (a.side, a.mode, rec["rss_kb"] / 1024.0, rec["fds"], rec["threads"],
           c.get("handshakes_completed", "?"), rec.get("peers", "?")))
    return 0


def ping_summary(path, interval):
    """Loss of a `ping -D -i INTERVAL -w S` run and the times (s from its start) of lost probes."""
    seqs, tx = set(), None
    try:
        with open(path) as f:
            for line in f:
                m = re.search(r"icmp_seq=(\d+) .*time=", line)
                if m and "DUP!" not in line:
                    seqs.add(int(m.group(1)))
                m = re.search(r"(\d+) packets transmitted", line)
                if m:
                    tx = int(m.group(1))
    except OSError:
        return {"transmitted": 0, "received": 0, "loss_pct": 100.0, "lost_at_s": [], "summary": False}
    summary = tx is not None
    if tx is None:  # killed before its summary: what it must have sent at least
        tx = max(seqs) if seqs else 0
    lost = sorted(set(range(1, tx + 1)) - seqs)
    got = len(seqs & set(range(1, tx + 1)))
    return {"transmitted": tx, "received": got, "loss_pct": 100.0 * (tx - got) / tx if tx else 100.0,
            "lost_at_s": [round((q - 1) * interval, 1) for q in lost], "summary": summary}


def iperf_totals(raw_dir, name):
    """Sum over the (re)started iperf3 clients NAME.N.json of one soak traffic loop."""
    runs, nbytes, secs, lost, pkts = 0, 0, 0.0, 0, 0
    for fn in sorted(os.listdir(raw_dir) if os.path.isdir(raw_dir) else []):
        if not re.fullmatch(re.escape(name) + r"\.\d+\.json", fn):
            continue
        runs += 1
        try:
            end = load_iperf(os.path.join(raw_dir, fn))["end"]
            recv = end.get("sum_received") or end["sum"]
            nbytes += recv["bytes"]
            secs += (end.get("sum_sent") or end["sum"])["seconds"]
            if "lost_packets" in end.get("sum", {}):
                lost += end["sum"]["lost_packets"]
                pkts += end["sum"]["packets"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return {"runs": runs, "restarts": max(0, runs - 1), "gbytes": nbytes / 1e9,
            "mbps": nbytes * 8 / secs / 1e6 if secs else 0.0,
            "loss_pct": 100.0 * lost / pkts if pkts else None}


def churn_totals(path):
    ops, fails = {}, []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split(None, 4)
                if len(parts) < 4:
                    continue
                key = parts[1] + "." + parts[2]
                ops[key] = ops.get(key, 0) + 1
                if parts[3] != "0":
                    fails.append(line.strip())
    except OSError:
        pass
    return {"ops": ops, "total": sum(ops.values()), "failed": len(fails), "failures": fails[:10]}


def slope_per_hour(ts, ys):
    """Least-squares slope, in units of ys per hour."""
    if len(ts) < 2:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return 3600.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else 0.0


def soak_daemon(recs, rekey_after, alive_at_end):
    """Statistics and criteria of one daemon's samples (in time order)."""
    live = [r for r in recs if r["alive"]]
    warm = len(recs) // 10  # the first 10% of the samples are warm-up
    steady = [r for r in live[warm:]] or live
    d = {"mode": recs[0]["mode"], "ifname": recs[0]["ifname"], "samples": len(recs), "warmup_samples": warm,
         "alive": all(r["alive"] for r in recs) and alive_at_end is not False}
    if not live:
        return d, {}
    rss = [r["rss_kb"] for r in steady]
    fds = [r["fds"] for r in steady]
    d.update({
        "rss_first_kb": live[0]["rss_kb"], "rss_steady_first_kb": rss[0], "rss_last_kb": live[-1]["rss_kb"],
        "rss_min_kb": min(rss), "rss_max_kb": max(rss), "hwm_last_kb": live[-1]["hwm_kb"],
        "rss_slope_mib_per_h": slope_per_hour([r["t"] for r in steady], [v / 1024.0 for v in rss]),
        "fds_first": live[0]["fds"], "fds_min": min(fds), "fds_max": max(fds), "fds_last": live[-1]["fds"],
        "threads_min": min(r["threads"] for r in steady), "threads_max": max(r["threads"] for r in steady),
        "cpu_s": live[-1]["cpu_s"] - live[0]["cpu_s"],
        "peers_max": max((r.get("peers", 0) for r in live), default=0)})
    hs = [(r["t"], r["counters"]["handshakes_completed"]) for r in live
          if r.get("counters") and "handshakes_completed" in r["counters"]]
    if hs:
        d["handshakes_first"], d["handshakes_last"] = hs[0][1], hs[-1][1]
        d["handshakes"] = hs[-1][1] - hs[0][1]
        d["handshakes_span_s"] = hs[-1][0] - hs[0][0]
        d["handshakes_needed"] = d["handshakes_span_s"] / rekey_after - 1
    bpf = [r["bpf_entries"] for r in steady if r.get("bpf_entries")]
    if bpf:
        d["bpf_entries"] = {k: {"first": bpf[0][k], "last": bpf[-1][k], "max": max(b[k] for b in bpf)}
                            for k in bpf[0]}
    rss_limit = max(8 * 1024, 0.10 * rss[0])
    crit = {
        "alive": (d["alive"], "alive in every sample" + ("" if alive_at_end is None else " and at the end")),
        "rss_flat": (max(rss) - min(rss) <= rss_limit,
                     "RSS max-min after warm-up %.1f MiB <= %.1f MiB" %
                     ((max(rss) - min(rss)) / 1024.0, rss_limit / 1024.0)),
        "fds_flat": (max(fds) - min(fds) <= 2, "fds max-min after warm-up %d <= 2" % (max(fds) - min(fds))),
        "rekeys": (bool(hs) and d["handshakes"] >= d["handshakes_needed"],
                   "handshakes completed %s >= %.1f (%s s / %s s - 1)" %
                   (d.get("handshakes"), d.get("handshakes_needed"), d.get("handshakes_span_s"), rekey_after)
                   if hs else "no handshakes_completed counter in the samples"),
    }
    return d, crit


def soak_chart(path, by_side, warm_t):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench_report: matplotlib is not installed (Debian: python3-matplotlib); no PNG chart")
        return False
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), sharex=True)
    panels = [("RSS (MiB)", lambda r: r["rss_kb"] / 1024.0), ("open fds", lambda r: r["fds"]),
              ("handshakes completed", lambda r: (r.get("counters") or {}).get("handshakes_completed")),
              ("peers configured", lambda r: r.get("peers"))]
    for ax, (title, fn) in zip(axes.flat, panels):
        for side, recs in sorted(by_side.items()):
            pts = [(r["t"] / 60.0, fn(r)) for r in recs if r["alive"] and fn(r) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", markersize=3,
                        label="%s (%s mode)" % (side.upper(), recs[0]["mode"]))
        if warm_t:
            ax.axvspan(0, warm_t / 60.0, color="grey", alpha=0.15)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if title.startswith("RSS"):
            ax.set_ylim(bottom=0)
        else:
            ax.yaxis.get_major_locator().set_params(integer=True)  # counts
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    axes.flat[0].legend()
    fig.suptitle("xsktun soak (grey: warm-up, not judged)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def soak_markdown(meta, daemons, crits, ping, traffic, churn, verdict):
    mib = lambda kb: "%.1f" % (kb / 1024.0)
    lines = ["# xsktun soak %s: %s" % (meta.get("date", ""), "PASS" if verdict else "FAIL"), "",
             "Command: `%s`  " % meta.get("command", ""),
             "Host: %s, %s CPUs, kernel %s, %s%% busy before the start. xsktun: %s (repository at %s).  " %
             (meta.get("host", "?"), meta.get("cpus", "?"), meta.get("kernel", "?"),
              meta.get("idle_cpu_busy_pct", "?"), meta.get("xsktun", "?"), meta.get("repo_git", "?")),
             "Side A: XDP mode, side B: socket mode. %s s; TCP %s B->A, UDP %s x %s B A->B, ping every %s s; "
             "a dummy peer added every %s s per side (at most %s), real peer's allowed-ips changed "
             "every %s s; "
             "a sample every %s s, the first 10%% of them are warm-up." %
             (meta.get("soak_seconds"), meta.get("tcp_rate"), meta.get("udp_rate"), meta.get("udp_size"),
              meta.get("ping_interval"), meta.get("churn_every"), meta.get("max_dummies"),
              meta.get("allowed_every"), meta.get("interval")), "",
             "## Verdict", "", "| criterion | result | detail |", "|---|---|---|"]
    for name, (ok, detail) in crits:
        lines.append("| %s | %s | %s |" % (name, "PASS" if ok else "**FAIL**", detail))
    heads = " | ".join("%s (%s)" % (s.upper(), d["mode"]) for s, d in daemons)
    lines += ["", "## Daemons", "", "| | " + heads + " |", "|---|" + "---|" * len(daemons)]
    rows = [("samples (warm-up)", lambda d: "%d (%d)" % (d["samples"], d["warmup_samples"])),
            ("RSS first / last (MiB)", lambda d: "%s / %s" % (mib(d["rss_first_kb"]), mib(d["rss_last_kb"]))),
            ("RSS after warm-up min / max (MiB)",
             lambda d: "%s / %s" % (mib(d["rss_min_kb"]), mib(d["rss_max_kb"]))),
            ("RSS slope after warm-up (MiB/h)", lambda d: "%.2f" % d["rss_slope_mib_per_h"]),
            ("peak RSS, VmHWM (MiB)", lambda d: mib(d["hwm_last_kb"])),
            ("fds first / after warm-up min-max / last",
             lambda d: "%d / %d-%d / %d" % (d["fds_first"], d["fds_min"], d["fds_max"], d["fds_last"])),
            ("threads", lambda d: "%d-%d" % (d["threads_min"], d["threads_max"])),
            ("CPU seconds", lambda d: "%.0f" % d["cpu_s"]),
            ("handshakes completed (counter first -> last)",
             lambda d: "%d (%d -> %d)" % (d["handshakes"], d["handshakes_first"], d["handshakes_last"])),
            ("peers configured, max", lambda d: str(d["peers_max"]))]
    for label, fn in rows:
        cells = []
        for _, d in daemons:
            try:
                cells.append(fn(d))
            except (KeyError, TypeError):
                cells.append("n/a")
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    for s, d in daemons:
        for k, v in sorted(d.get("bpf_entries", {}).items()):
            lines.append("| BPF map `%s` entries after warm-up first / last / max (%s) | %s |" %
                         (k, s.upper(), " | ".join("%d / %d / %d" % (v["first"], v["last"], v["max"])
                                                    if x == s else "" for x, _ in daemons)))
    lost = ping["lost_at_s"]
    lines += ["", "## Traffic and churn", "",
              "- ping: %d sent, %d answered, loss %.2f%%%s%s" %
              (ping["transmitted"], ping["received"], ping["loss_pct"],
               "" if ping["summary"] else " (no summary line: ping was cut short)",
               "; lost at s " + ", ".join("%g" % x for x in lost[:30]) + (" ..." if len(lost) > 30 else "")
               if lost else ""),
              "- TCP B->A: %.0f Mbit/s average, %.2f GB, %d client restart(s)" %
              (traffic["tcp"]["mbps"], traffic["tcp"]["gbytes"], traffic["tcp"]["restarts"]),
              "- UDP A->B: %.0f Mbit/s average delivered, %.2f GB, loss %s, %d client restart(s)" %
              (traffic["udp"]["mbps"], traffic["udp"]["gbytes"],
               "n/a" if traffic["udp"]["loss_pct"] is None else "%.2f%%" % traffic["udp"]["loss_pct"],
               traffic["udp"]["restarts"]),
              "- `wg set` churn: %d commands (%s), %d failed" %
              (churn["total"], ", ".join("%s %d" % kv for kv in sorted(churn["ops"].items())),
               churn["failed"])]
    lines += ["  - " + f for f in churn["failures"]]
    lines.append("")
    return "\n".join(lines)


def cmd_soak(a):
    with open(os.path.join(a.dir, "meta.json")) as f:
        meta = json.load(f)
    raw = os.path.join(a.dir, "raw", "soak")
    samples = read_samples(os.path.join(a.dir, "soak.jsonl"))
    rekey_after = float(meta.get("rekey_after", 120))
    by_side = {}
    for r in samples:
        by_side.setdefault(r["side"], []).append(r)
    for recs in by_side.values():
        recs.sort(key=lambda r: r["t"])
    # SIDE=yes|no from bench.sh, checked after the traffic stopped; a side not given: not known
    alive_at_end = {}
    for kv in a.alive_at_end or []:
        side, _, v = kv.partition("=")
        alive_at_end[side] = v == "yes"
    daemons, crits = [], []
    for side in sorted(by_side):
        d, c = soak_daemon(by_side[side], rekey_after, alive_at_end.get(side))
        daemons.append((side, d))
        if not c:
            c = {"alive": (False, "no sample with a live process")}
        crits += [("%s %s (%s)" % (k, side.upper(), d["mode"]), v) for k, v in c.items()]
    if len(by_side) < 2:
        crits.append(("samples", (False, "samples of %d daemon(s), expected 2" % len(by_side))))
    ping = ping_summary(os.path.join(raw, "ping.txt"), float(meta.get("ping_interval", 0.2)))
    crits.append(("ping loss", (ping["transmitted"] > 0 and ping["loss_pct"] < 1.0,
                                "%.2f%% of %d < 1%%" % (ping["loss_pct"], ping["transmitted"]))))
    churn = churn_totals(os.path.join(raw, "churn.log"))
    crits.append(("peer churn", (churn["total"] > 0 and churn["failed"] == 0,
                                 "%d `wg set` commands, %d failed" % (churn["total"], churn["failed"]))))
    traffic = {n: iperf_totals(raw, n) for n in ("tcp", "udp")}
    verdict = all(ok for _, (ok, _) in crits)
    for name, (ok, detail) in crits:
        print("%-4s %-22s %s" % ("PASS" if ok else "FAIL", name, detail))
    print("soak: %s" % ("PASS" if verdict else "FAIL"))
    md = soak_markdown(meta, daemons, crits, ping, traffic, churn, verdict)
    with open(os.path.join(a.dir, "soak.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(a.dir, "soak.json"), "w") as f:
        json.dump({"meta": meta, "pass": verdict, "criteria": {n: {"pass": ok, "detail": det}
                                                               for n, (ok, det) in crits},
                   "daemons": dict(daemons), "ping": ping, "traffic": traffic, "churn": churn},
                  f, indent=1, sort_keys=True)
    warm_t = max((d["warmup_samples"] for _, d in daemons), default=0) * float(meta.get("interval", 10))
    soak_chart(os.path.join(a.dir, "soak.png"), by_side, warm_t)
    return 0 if verdict else 1


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
    s = sub.add_parser("soak-sample")
    s.add_argument("--out", required=True)
    s.add_argument("--t", type=int, required=True, help="seconds since the soak started")
    for k in ("side", "mode", "ifname", "show"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--ping", help="the running ping's output: replies so far")
    s.add_argument("--pin-dir", help="XDP mode: the daemon's map pins, for entry counts")
    s.set_defaults(fn=cmd_soak_sample)
    s = sub.add_parser("soak")
    s.add_argument("--dir", required=True, help="bench.sh --soak output directory")
    s.add_argument("--alive-at-end", action="append", metavar="SIDE=yes|no",
                   help="whether that side's daemon was alive after the traffic stopped (repeatable)")
    s.set_defaults(fn=cmd_soak)
    a = p.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
