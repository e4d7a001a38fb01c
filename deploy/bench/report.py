"""Writes docs/benchmarks.md and its PNG plots from the results of bench.py."""
import datetime
import math
import os
import platform
import subprocess

import matplotlib

matplotlib.use("Agg")  # no display on a server
import matplotlib.pyplot as plt  # noqa: E402

TARGETS = {
    "added_p50_us": 150, "added_p99_us": 1000, "rr_ratio": 0.8, "bulk_ratio": 0.5,
    "stall_p99_ms": 1000, "log_pps": 100_000,
}
SECTIONS = ["Machine", "Targets", "Cost while nothing fails", "Where the time goes", "Failover", "Failover sweep", "Alternatives",
            "Checkpoints", "Limits of this run"]
PHASES = ["vipMs", "restoreMs", "replayMs", "openMs"]
# The sweep's breakdown of a stall, in order: three from the nodes' logs (crash_timeline in bench.py), the switch's
# four phases, and what is left of the client's stall.
SWEEP_PARTS = [("detection", "crash → a survivor marks it UNREACHABLE (Akka's failure detector)"),
               ("downing", "→ the cluster's leader removes it, or the app owner sees it removed, whichever is logged first "
                           "(the leader downs it once the lease it last got ran out, else the Split Brain Resolver after its stable-after)"),
               ("election", "→ the new primary starts its takeover (election, the order reaching it)"),
               ("vip", "VIP moved"), ("restore", "CRIU restore of the checkpoint"), ("replay", "log replayed"),
               ("open", "capture reopened, traffic released"),
               ("client", "rest of the client's stall: its TCP retransmission timer, backed off during the outage")]
SWEEP_COLORS = {"detection": "tab:red", "downing": "tab:orange", "election": "gold", "vip": "tab:olive", "restore": "tab:green",
                "replay": "tab:cyan", "open": "tab:blue", "client": "lightgrey"}


def pctl(values, p):
    """Nearest-rank percentile: with few samples, p99 is the worst one, not an interpolation."""
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine(root):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    debian = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "?"
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} logical CPUs (shared with other work on this machine)"),
        ("Memory", f"{mem} MiB"),
        ("Kernel", platform.release()),
        ("Debian", debian),
        ("CRIU", sh("criu", "--version").splitlines()[0] if sh("criu", "--version") else "?"),
        (".NET SDK", sh("dotnet", "--version")),
        ("Commit", sh("git", "-C", root, "rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if sh("git", "-C", root, "status", "--porcelain") else "")),
    ]


def fmt(x, digits=0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def write(r, out, fig_dir, root):
    os.makedirs(fig_dir, exist_ok=True)
    figs = {}
    L = []
    L.append("# Benchmarks")
    L.append("")
    crashes = r.get("crashes", len(r.get("failover", [])))
    option = "" if r["mode"] == "full" else " --" + r["mode"]
    if crashes != {"smoke": 1, "quick": 3, "full": 20}[r["mode"]]:
        option += f" --crashes {crashes}"
    L.append(f"Produced by `sudo deploy/bench.sh{option}` on "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC in {r.get('elapsed_s', 0)} s, on lab instance 1 "
             "(namespaces `ct1-*`, bridge `ct1br`, 198.18.1.0/24). Every ratio compares figures taken in this same run: the "
             "unprotected baseline is the same `ct-kv` started directly in the primary's network namespace (on the node's own "
             "address, no Continuity on its path), driven by the same client (`tests/testserver/ct-bench.c`) from the client "
             "namespace, alternated with the protected runs. Latencies are measured on the client, from `send()` of a request "
             "to the arrival of its reply, and every reply is verified (byte total and hash).")
    if r["mode"] != "full":
        L.append("")
        L.append(f"**This is a `--{r['mode']}` run**: short runs, {len(r.get('failover', []))} crash(es); its tails (p99.9, p99 "
                 "of stalls) rest on few samples. `sudo deploy/bench.sh` without options runs the full set (20 crashes, longer runs).")

    for note in r.get("notes") or []:
        L += ["", f"**Note**: {note}."]

    # ---------------------------------------------------------------- machine
    L += ["", "## Machine", "", "| | |", "|---|---|"]
    for k, v in machine(root):
        L.append(f"| {k} | {v} |")
    samples = [x if isinstance(x, dict) else {"load1": x} for x in (r.get("loadavg") or [])]
    loads = [x["load1"] for x in samples]
    psi = [x["cpu_some_avg10"] for x in samples if x.get("cpu_some_avg10") is not None]
    if r.get("state_dir"):
        L.append(f"| Lab state (journals, checkpoint images) | {r['state_dir']} |")
    if r.get("sync_write_ms") is not None:
        L.append(f"| Synchronous 4 KiB write on the journals' disk | {fmt(r['sync_write_ms'], 2)} ms (dd oflag=dsync, measured at the start) |")
    if loads:
        L.append(f"| 1-min load average during the runs | {fmt(min(loads), 2)} to {fmt(max(loads), 2)} (2 cores) |")
    if psi:
        L.append(f"| CPU pressure during the runs | {fmt(min(psi), 1)} % to {fmt(max(psi), 1)} % of the time some task waited for a CPU "
                 "(/proc/pressure/cpu, avg10) |")
    noisy = (bool(loads) and max(loads) > 2.5) or (bool(psi) and max(psi) > 25)
    if noisy:
        L += ["", f"**The run was noisy**: the load average reached {fmt(max(loads), 2)} on 2 cores"
                  + (f" and tasks waited for a CPU up to {fmt(max(psi), 0)} % of the time" if psi else "")
                  + ". The benchmark's own processes (three node processes, the load client, CRIU) want more than 2 cores "
                  "under load, and anything else running on the machine adds to them, so latencies, tails and throughput are "
                  "pessimistic, the protected side (whose path crosses the node processes) suffers more than the baseline, and "
                  "figures vary between runs."]

    # ---------------------------------------------------------------- targets
    cost = r.get("cost", {})
    rows = []
    two = cost.get("2") or cost.get(max(cost, default=None) or "")

    def rr_stats(c, side):
        runs = c["rr"][side]
        return (mean([x["rps"] for x in runs]), mean([x["p50_us"] for x in runs]), mean([x["p99_us"] for x in runs]),
                mean([x["p999_us"] for x in runs]))

    def bulk_stats(c, side):
        return mean([x["mbps"] for x in c["bulk"][side]])

    stalls = [f["stall_ms"] for f in r.get("failover", []) if f.get("stall_ms") is not None]
    no_switch = [f for f in r.get("failover", []) if f.get("stall_ms") is None]
    if two:
        u, p = rr_stats(two, "unprotected"), rr_stats(two, "protected")
        added50, added99 = p[1] - u[1], p[2] - u[2]
        rr_ratio = p[0] / u[0] if u[0] else float("nan")
        bulk_ratio = bulk_stats(two, "protected") / bulk_stats(two, "unprotected") if bulk_stats(two, "unprotected") else float("nan")
        pps = log_path_pps(cost)
        rows += [
            ("Added latency p50, 2 standbys", "≤ 150 µs", f"{fmt(added50)} µs", added50 <= TARGETS["added_p50_us"], f"{fmt(added50 / 150, 1)}× the target"),
            ("Added latency p99, 2 standbys", "≤ 1 ms", f"{fmt(added99)} µs", added99 <= TARGETS["added_p99_us"], f"{fmt(added99 / 1000, 1)}× the target"),
            ("Request/response throughput, protected ÷ unprotected", "≥ 0.8", fmt(rr_ratio, 2), rr_ratio >= TARGETS["rr_ratio"], f"{fmt(rr_ratio / 0.8 * 100)} % of the target"),
            ("Bulk upload throughput, protected ÷ unprotected", "≥ 0.5", fmt(bulk_ratio, 2), bulk_ratio >= TARGETS["bulk_ratio"], f"{fmt(bulk_ratio / 0.5 * 100)} % of the target"),
            ("Packets/s through the log path (highest seen, bulk uploads)", "≥ 100k", fmt(pps), pps >= TARGETS["log_pps"],
             f"{fmt(pps / TARGETS['log_pps'] * 100)} % of the target (see Limits)"
             if pps < TARGETS["log_pps"] else ""),
        ]
    if no_switch:
        rows.append((f"Longest client stall on a crash, p99", "≤ 1 s", f"no switch within {no_switch[0]['no_switch_within_s']} s "
                     f"of crash {no_switch[0]['crash']}", False, "not measurable: the takeover did not finish (see Failover)"))
    elif stalls:
        s99 = pctl(stalls, 99)
        rows.append((f"Longest client stall on a crash, p99 ({len(stalls)} crashes)", "≤ 1 s", f"{fmt(s99)} ms", s99 <= TARGETS["stall_p99_ms"],
                     f"{fmt(s99 / 1000, 1)}× the target"))
    target_pt = next((p for p in r.get("sweep") or [] if "target" in p.get("axes", [])), None)
    if target_pt:
        done = [c for c in target_pt["crashes"] if stalled(c)]
        name = f"Longest client stall, {target_pt['ballast_mb']} MB program, {target_pt['conns']} connections (sweep)"
        if done:
            s99 = pctl([c["stall_ms"] for c in done], 99)
            rows.append((f"{name}, p99 of {len(done)} crash(es)", "≤ 1 s", f"{fmt(s99)} ms", s99 <= TARGETS["stall_p99_ms"],
                         f"{fmt(s99 / 1000, 1)}× the target, {fmt(s99 - 1000)} ms over (see Failover sweep)"))
        elif any(c.get("stall_ms") is not None for c in target_pt["crashes"]):
            rows.append((name, "≤ 1 s", "no connection survived", False, "not measurable: every connection failed (see Failover sweep)"))
        elif target_pt["crashes"]:
            rows.append((name, "≤ 1 s", f"no switch within {target_pt['crashes'][0].get('no_switch_within_s')} s", False,
                         "not measurable: the takeover did not finish (see Failover sweep)"))
        elif target_pt.get("error"):
            rows.append((name, "≤ 1 s", "not measured", False, "the point could not run here (see Failover sweep)"))
    L += ["", "## Targets", "",
          "The targets of issue 5 and this run's figures. The stall target is stated for a 256 MB program with 1000 "
          f"connections; this run used a {r.get('ballast_mb', '?')} MB program with {r.get('fail_conns', '?')} connections.", "",
          "| target | goal | measured | met | miss |", "|---|---|---|---|---|"]
    for name, goal, got, ok, miss in rows:
        L.append(f"| {name} | {goal} | {got} | {'yes' if ok else '**no**'} | {'' if ok else miss} |")

    # ---------------------------------------------------------------- a. cost
    L += ["", "## Cost while nothing fails", "",
          f"The protected program is checkpointed every {r.get('checkpoint_interval', '2s')}. Closed loop: each connection sends its next "
          "request as soon as the reply is in, so the rate is what the path allows. Bulk: one connection uploading 16 KiB lines with 16 in flight; MB/s of bytes the server acknowledged.", "",
          "| standbys | path | requests/s | p50 µs | p99 µs | p99.9 µs | bulk MB/s | queue packets/s |",
          "|---|---|---|---|---|---|---|---|"]
    for s in sorted(cost):
        c = cost[s]
        for side in ("unprotected", "protected"):
            rps, p50, p99, p999 = rr_stats(c, side)
            pps = mean([x.get("queue_pps") for x in c["bulk"][side]]) if side == "protected" else None
            L.append(f"| {s} | {side} | {fmt(rps)} | {fmt(p50)} | {fmt(p99)} | {fmt(p999)} | {fmt(bulk_stats(c, side), 1)} | {fmt(pps)} |")
    L += ["", "| standbys | added p50 µs | added p99 µs | added p99.9 µs | request/response ratio | bulk ratio |", "|---|---|---|---|---|---|"]
    for s in sorted(cost):
        c = cost[s]
        u, p = rr_stats(c, "unprotected"), rr_stats(c, "protected")
        bu, bp = bulk_stats(c, "unprotected"), bulk_stats(c, "protected")
        L.append(f"| {s} | {fmt(p[1] - u[1])} | {fmt(p[2] - u[2])} | {fmt(p[3] - u[3])} | {fmt(p[0] / u[0] if u[0] else float('nan'), 2)} | "
                 f"{fmt(bp / bu if bu else float('nan'), 2)} |")
    wide = {s: c["bulk_wide"] for s, c in sorted(cost.items()) if c.get("bulk_wide")}
    if wide:
        L += ["", "The log path's ceiling: the same upload on 8 connections with 64 lines of 16 KiB in flight each (8 MiB), "
              "more than the path can hold, so the protected rate is what capture, replication and the standbys' journals "
              "sustain together.", "",
              "| standbys | unprotected MB/s | protected MB/s | ratio | queue packets/s |", "|---|---|---|---|---|"]
        for s, w in wide.items():
            u, p = mean([x["mbps"] for x in w["unprotected"]]), mean([x["mbps"] for x in w["protected"]])
            L.append(f"| {s} | {fmt(u, 1)} | {fmt(p, 1)} | {fmt(p / u if u else float('nan'), 2)} | "
                     f"{fmt(mean([x.get('queue_pps') for x in w['protected']]))} |")
    if cost:
        fig, ax = plt.subplots(figsize=(7, 4))
        for s in sorted(cost):
            for side, style in (("unprotected", "--"), ("protected", "-")):
                for run in cost[s]["rr"][side][:1]:
                    path = run.get("latencies_file")
                    if not path or not os.path.exists(path):
                        continue
                    with open(path) as f:
                        xs = sorted(int(x) for x in f if x.strip())
                    if not xs:
                        continue
                    ys = [(i + 1) / len(xs) for i in range(len(xs))]
                    ax.plot(xs, ys, style, label=f"{side}, {s} standby(s)" if side == "protected" else f"unprotected (lab with {s} standby(s))")
        ax.set_xscale("log")
        ax.set_xlabel("request/response latency on the client (µs, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title("Latency distribution, same client and program")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        figs["cost-latency.png"] = fig
        L += ["", "![Latency distribution](benchmarks/cost-latency.png)"]

    # ---------------------------------------------------------------- where the time goes
    L += ["", "## Where the time goes", ""]
    L += stages_section(cost)
    L += transport_section(r.get("transport"))

    # ---------------------------------------------------------------- b. failover
    fo_all = r.get("failover", [])
    fo = [f for f in fo_all if f.get("stall_ms") is not None]
    L += ["", "## Failover", "",
          f"A client keeps requests going on {r.get('fail_conns', '?')} connections (one every {r.get('fail_interval_ms', 50)} ms "
          f"each) to a {r.get('ballast_mb', '?')} MB program checkpointed every {r.get('checkpoint_interval', '2s')}; once they are all inside a checkpoint, "
          "the primary's node is crashed like a power loss (`continuity-lab crash`: links down, then SIGKILL). The stall is "
          "the longest time any surviving connection waited for a reply. Phases come from the new primary's switch report "
          "(`continuity-cmd app status --json`, `lastSwitch.phases`); *before the switch* is the stall minus the phases: the "
          "cluster's failure detection and downing (once the node's lease ran out), the election, and the client's "
          "own retransmission timer. Between crashes the crashed node is revived (`continuity-lab revive` clears its "
          "addresses, netfilter rules and switch links as a reboot would), and the next crash waits until it is a ready "
          "standby again.", ""]
    for f in fo_all:
        if f.get("stall_ms") is None and not fo:
            L += ["| crash | from → to | stall ms | connections survived |", "|---|---|---|---|",
                  f"| {f['crash']} | {f['from']} → none | **no switch within {f['no_switch_within_s']} s** | 0/{f['connections']} |"]
    if fo:
        L += ["| crash | from → to | stall ms | vip ms | restore ms | replay ms | open ms | before the switch ms | packets replayed | connections survived |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for f in fo:
            ph = f.get("phases") or {}
            sw = sum(ph.get(k, 0) for k in PHASES)
            L.append(f"| {f['crash']} | {f['from']} → {f['to']} | {fmt(f['stall_ms'])} | " + " | ".join(fmt(ph.get(k)) for k in PHASES) +
                     f" | {fmt(f['stall_ms'] - sw)} | {fmt(f.get('replayed'))} | {f['survived']}/{f['connections']} |")
        L += ["", "| | p50 | p99 |", "|---|---|---|",
              f"| longest stall ms | {fmt(pctl(stalls, 50))} | {fmt(pctl(stalls, 99))} |"]
        for k in PHASES:
            vals = [(f.get("phases") or {}).get(k, 0) for f in fo]
            L.append(f"| {k[:-2]} ms | {fmt(pctl(vals, 50))} | {fmt(pctl(vals, 99))} |")
        for f in fo_all:
            if f.get("stall_ms") is None:
                L.append(f"| {f['crash']} | {f['from']} → none | **no switch within {f['no_switch_within_s']} s** | | | | | | | "
                         f"0/{f['connections']} |")
        fig, ax = plt.subplots(figsize=(7, 4))
        bottom = [0.0] * len(fo)
        xs = [f["crash"] for f in fo]
        for k in PHASES:
            vals = [(f.get("phases") or {}).get(k, 0) / 1000 for f in fo]
            ax.bar(xs, vals, bottom=bottom, label=k[:-2])
            bottom = [b + v for b, v in zip(bottom, vals)]
        rest = [max(0, f["stall_ms"] / 1000 - b) for f, b in zip(fo, bottom)]
        ax.bar(xs, rest, bottom=bottom, label="before the switch (detection, election, client timers)", color="lightgrey")
        ax.set_xlabel("crash")
        ax.set_ylabel("seconds")
        ax.set_title("Longest client stall per crash, by phase")
        ax.legend(fontsize=8)
        figs["failover-phases.png"] = fig
        L += ["", "![Stall per crash by phase](benchmarks/failover-phases.png)"]

    # ---------------------------------------------------------------- b2. failover sweep
    L += ["", "## Failover sweep", ""]
    L += sweep_section(r, figs)

    # ---------------------------------------------------------------- c. alternatives
    alt = r.get("alternatives", {})
    L += ["", "## Alternatives", "",
          "How many client connections survive a crash of the machine running the program, measured the same way (a "
          f"connection survives if it never saw a reset, an end of file, a wrong reply or {r.get('alt_timeout_s', 30)} s without a "
          "reply; the client runs until every connection either failed or was answered after the switch):", "",
          "- **cold start**: the VIP moved to another node that starts the program afresh (what keepalived plus a service "
          "restart gives), done by hand in the lab: the old holder goes silent, the address moves, a gratuitous ARP;",
          "- **restore-only**: Continuity with `recovery = restore-only`: the checkpoint is restored, the log is not replayed "
          "(TCP sockets are restored closed, since their sequence numbers are behind what clients saw);",
          "- **Continuity**: `recovery = replay`, the crashes of the Failover section.", "",
          "| approach | rounds | connections survived | of | resets | ends of file | timeouts | wrong replies |", "|---|---|---|---|---|---|---|---|"]
    rows = [("cold start", alt.get("cold-start", [])), ("restore-only", alt.get("restore-only", [])),
            ("Continuity (replay)", [dict(survived=f["survived"], connections=f["connections"]) for f in fo_all])]
    for name, rs in rows:
        if not rs:
            L.append(f"| {name} | 0 | n/a | n/a | | | | |")
            continue
        L.append(f"| {name} | {len(rs)} | {sum(x['survived'] for x in rs)} | {sum(x['connections'] for x in rs)} | "
                 + " | ".join(fmt(sum(x.get(k, 0) for x in rs)) if any(k in x for x in rs) else "" for k in ("resets", "eofs", "timeouts", "mismatches")) + " |")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [n for n, rs in rows]
    shares = [100 * sum(x["survived"] for x in rs) / max(1, sum(x["connections"] for x in rs)) for n, rs in rows]
    ax.bar(names, shares, color=["tab:red", "tab:orange", "tab:green"])
    ax.set_ylabel("% of connections that survived")
    ax.set_ylim(0, 105)
    ax.set_title("Connections surviving a crash of the primary")
    figs["alternatives.png"] = fig
    L += ["", "![Surviving connections](benchmarks/alternatives.png)"]

    # ---------------------------------------------------------------- d. checkpoints
    cps = sorted(r.get("checkpoints", []), key=lambda c: (c["ballast_mb"], c["id"]))
    L += ["", "## Checkpoints", "",
          "One application per memory size (`ct-kv --ballast-mb N`: N MB of random, incompressible memory), checkpointed "
          "every 4 s with one standby. *Freeze* is how long CRIU kept the program frozen (CRIU's own statistics); *dump* is "
          "from the node's log line `frozen at mark, dumping` to `N MB, frozen, shipping` (dump, state-directory copy and "
          "archive); *shipped* is the archive sent to each standby; *resident* is the program's VmRSS.", "",
          "| ballast MB | checkpoint | resident MB | shipped MB | shipped ÷ resident | freeze ms | dump ms |", "|---|---|---|---|---|---|---|"]
    for c in cps:
        L.append(f"| {c['ballast_mb']} | {c['id']} | {fmt(c['rss_bytes'] / 1e6, 1)} | {fmt(c['bytes'] / 1e6, 1)} | "
                 f"{fmt(c['bytes'] / c['rss_bytes'] if c['rss_bytes'] else float('nan'), 2)} | {fmt(c['freeze_ms'])} | {fmt(c.get('dump_ms'))} |")
    if cps:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
        rss = [c["rss_bytes"] / 1e6 for c in cps]
        a1.scatter(rss, [c["bytes"] / 1e6 for c in cps])
        top = max(rss + [c["bytes"] / 1e6 for c in cps] + [1])
        a1.plot([0, top], [0, top], ":", color="grey", label="shipped = resident")
        a1.set_xlabel("resident memory (MB)")
        a1.set_ylabel("bytes shipped per checkpoint (MB)")
        a1.legend(fontsize=8)
        a2.scatter(rss, [c["freeze_ms"] for c in cps], label="freeze")
        a2.scatter(rss, [c.get("dump_ms") or 0 for c in cps], marker="x", label="dump")
        a2.set_xlabel("resident memory (MB)")
        a2.set_ylabel("ms")
        a2.legend(fontsize=8)
        fig.suptitle("Checkpoint cost by program size")
        fig.tight_layout()
        figs["checkpoints.png"] = fig
        L += ["", "![Checkpoint cost](benchmarks/checkpoints.png)"]

    # ---------------------------------------------------------------- limits
    L += ["", "## Limits of this run", ""]
    L += limits(r, fo, noisy)

    pngdir = os.path.join(fig_dir, "benchmarks")
    os.makedirs(pngdir, exist_ok=True)
    for name, fig in figs.items():
        fig.tight_layout()  # or the axis labels are cut off
        fig.savefig(os.path.join(pngdir, name), dpi=90)
        plt.close(fig)
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")


STAGE_ORDER = ["capture", "replicate", "journal", "release", "hold", "batch-packets"]
STAGE_TEXT = {
    "capture": "NFQUEUE read → Append sent (reader thread, capture actor's mailbox)",
    "replicate": "Append sent → that standby's Appended back (remoting both ways, its mailboxes, its journal)",
    "journal": "Append received by the standby's log → its journal write done",
    "release": "last standby's Appended → verdict ACCEPT (long only while a checkpoint holds verdicts)",
    "hold": "the whole hold: NFQUEUE read → verdict",
    "batch-packets": "packets per Append written (a size, not a time)",
}


def stages_section(cost):
    """The per-stage table: figures the nodes themselves measured (their /metrics histograms, read before and after
    each protected run and subtracted), so they cover exactly that run."""
    L = ["Each node times every batch of packets at each stage of its hold and exposes the histograms in `/metrics` "
         "(`continuity_path_stage_seconds`, `continuity_standby_batch_packets`; p50/p99 also in `GET /v1/mib`). The bench read "
         "every node's histograms before and after each protected run and subtracted them, so these figures are that run's "
         "alone; p50/p99 are interpolated inside the histogram's buckets (√2 apart: within about 20 %). One row per batch, "
         "not per packet or request:", ""]
    for st in STAGE_ORDER:
        L.append(f"- *{st}*: {STAGE_TEXT[st]};")
    L += ["", "| standbys | load | stage | node | standby | batches | p50 | p99 | mean |", "|---|---|---|---|---|---|---|---|---|"]
    any_rows = False
    dominant = None
    for s in sorted(cost):
        for load, key in (("request/response", "stages_rr"), ("bulk", "stages_bulk")):
            runs = cost[s].get(key) or []
            if not runs:
                continue
            rows = runs[0]  # the first repetition: a histogram diff per run, not averaged across runs
            rows = sorted(rows, key=lambda x: (STAGE_ORDER.index(x["stage"]) if x["stage"] in STAGE_ORDER else 99,
                                               x.get("standby") or "", x["node"]))
            for x in rows:
                any_rows = True
                unit = " packets" if x["unit"] == "packets" else " µs"
                L.append(f"| {s} | {load} | {x['stage']} | {x['node']} ({x['role']}) | {x.get('standby') or ''} | {fmt(x['count'])} | "
                         f"{fmt(x['p50'])}{unit} | {fmt(x['p99'])}{unit} | {fmt(x['mean'])}{unit} |")
            if load == "request/response":
                parts = [x for x in rows if x["stage"] in ("capture", "replicate", "release") and x.get("p50") is not None]
                if parts:
                    top = max(parts, key=lambda x: x["p50"])
                    hold = next((x for x in rows if x["stage"] == "hold"), None)
                    dominant = (s, top, hold, next((x for x in rows if x["stage"] == "journal" and x["node"] == top.get("standby")), None))
    if not any_rows:
        return ["No stage figures: the nodes' /metrics could not be read during the protected runs."]
    if dominant:
        s, top, hold, journal = dominant
        text = (f"With {s} standby(s) under request/response load the largest stage at p50 is *{top['stage']}*"
                + (f" to {top['standby']}" if top.get("standby") else "") + f" ({fmt(top['p50'])} µs")
        if hold:
            text += f" of a {fmt(hold['p50'])} µs hold"
        text += ")"
        if journal and top["stage"] == "replicate":
            text += (f"; of that, the standby's journal write took {fmt(journal['p50'])} µs at p50, the rest is remoting and "
                     "mailboxes both ways")
        L += ["", text + "."]
    return L


TRANSPORT_TEXT = {
    "tcp": "the kernel's TCP path alone (the baseline)",
    "tls": ".NET's SslStream over it, with the cluster certificate pinned both ways",
    "remoting": "Akka.Remote (DotNetty, batching off) without TLS, an actor answering an actor",
    "remoting-tls": "Akka.Remote with TLS, as the nodes run it: the replication round trip's transport",
}


def log_path_pps(cost):
    """The most packets/s any protected upload (one connection or the wide one) pushed through the primary's queue."""
    return max([x.get("queue_pps", 0) for c in cost.values() for kind in ("bulk", "bulk_wide")
                for x in c.get(kind, {}).get("protected", [])] or [0])


def transport_section(t):
    """`continuity-lab probe` between the primary's and a standby's namespaces: what the transport alone costs."""
    if not t:
        return []
    res = {m["Mode"]: m for m in t["results"]}
    base = res.get("tcp")
    L = ["", "### The transport alone", "",
         f"`continuity-lab probe {t['from']} {t['to']}` in the same run, between the primary's and a standby's namespaces while "
         f"the lab ran: a {t['requestBytes']}-byte request answered by a {t['replyBytes']}-byte reply, one at a time, each end "
         "its own process, the transports alternated round by round:", ""]
    for m in res:
        L.append(f"- *{m}*: {TRANSPORT_TEXT.get(m, m)};")
    L += ["", "| transport | round trips | p50 µs | p90 µs | p99 µs | p99.9 µs | mean µs | p50 ÷ tcp |",
          "|---|---|---|---|---|---|---|---|"]
    for m, x in res.items():
        ratio = f"{x['P50'] / max(1, base['P50']):.1f}" if base else ""
        L.append(f"| {m} | {fmt(x['RoundTrips'])} | {fmt(x['P50'])} | {fmt(x['P90'])} | {fmt(x['P99'])} | {fmt(x['P999'])} | "
                 f"{fmt(x['Mean'])} | {ratio} |")
    text = transport_bound(t)
    if text:
        L += ["", text]
    return L


def transport_bound(t):
    """One sentence: how much of a round trip Akka.Remote adds over the network and TLS themselves."""
    res = {m["Mode"]: m for m in (t or {}).get("results", [])}
    if "remoting-tls" not in res or "tls" not in res:
        return None
    a, b = res["remoting-tls"], res["tls"]
    return (f"Akka.Remote with TLS took {fmt(a['P50'])} µs at p50 and {fmt(a['P99'])} µs at p99 for a round trip that TLS over "
            f"a plain socket made in {fmt(b['P50'])} µs and {fmt(b['P99'])} µs ({a['P50'] / max(1, b['P50']):.1f}× at p50): the "
            "transport the packet log shares with the cluster's control messages costs more than the network and the "
            "encryption themselves; a replication channel of its own (a socket per standby) is the change that would remove "
            "that share.")


def limits(r, fo, noisy):
    L = []
    sw = [sum((f.get("phases") or {}).get(k, 0) for k in PHASES) for f in fo]
    before = [f["stall_ms"] - x for f, x in zip(fo, sw)]
    L.append("- **What bounds the added latency.** Every inbound packet is held in the kernel (NFQUEUE) until every standby "
             "has written it to its journal and acknowledged it over Akka remoting; a request/response therefore pays a round "
             "trip to the slowest standby plus a journal write, on two cores that also run the program, the client and three "
             "node processes. The unprotected path has none of that. *Where the time goes* splits it per stage."
             + (" " + transport_bound(r.get("transport")) if transport_bound(r.get("transport")) else ""))
    L.append("- **What bounds the stall.** A crash is acted on only after the cluster removed the node (failure detector "
             "heartbeat 500 ms, acceptable pause 2 s, then the rest of the node's 4 s lease: about 4-6 s, see README) and the "
             "clients' TCP retransmission timers have backed off meanwhile (a client that sent during the outage tries again "
             "3.0 s, 6.2 s and 12.6 s after its first attempt)" + (f"; here the time before the switch (stall minus "
             f"phases) was {fmt(pctl(before, 50))} ms at p50, and the switch itself (vip + restore + replay + open) took {fmt(pctl(sw, 50))} ms at p50 and "
                          f"{fmt(pctl(sw, 99))} ms at p99 here" if sw else "") + ". The 1 s target cannot be met with these "
             "cluster settings: failure detection alone takes about 3 s, and shorter pauses and leases got a busy new "
             "primary downed during its restore on this machine (README, Limits).")
    cost = r.get("cost", {})
    pps = log_path_pps(cost)
    kind = "bulk_wide" if any(c.get("bulk_wide") for c in cost.values()) else "bulk"
    ratios = []
    for n, c in sorted(cost.items()):
        unprotected = mean([x["mbps"] for x in c.get(kind, {}).get("unprotected", [])])
        if unprotected:
            ratios.append(f"{fmt(mean([x['mbps'] for x in c[kind]['protected']]) / unprotected, 2)} with {n} standby(s)")
    L.append(f"- **Log path packets/s.** The protected uploads pushed at most {fmt(pps)} packets/s through the queue"
             + (f"; the protected ÷ unprotected rate of the {'wide upload (8 MiB in flight)' if kind == 'bulk_wide' else 'upload'} "
                f"was {', '.join(ratios)}: the capture and replication path, not the program or the network, was the "
                "bottleneck. " if ratios else ". ")
             + "Each packet is released only once every standby logged it, and a standby writes a batch in one journal "
             "transaction whatever its size, so the path's rate grows with the packets in flight until the primary's "
             "capture, its remoting to the standbys or their journals saturate a core (*Where the time goes*).")
    if r.get("sync_write_ms") is not None:
        L.append(f"- **The journals' disk.** One synchronous 4 KiB write took {fmt(r['sync_write_ms'], 2)} ms on the disk holding "
                 "the standbys' SQLite journals; each batch of packets is one SQLite transaction on every standby before the "
                 "primary releases it (one synced append to the write-ahead log with `continuity.persistence.sqlite.journal-mode "
                 "= wal`, the default; several synced writes with SQLite's rollback journal, `delete`), so the added latency "
                 "cannot go below one of those on this disk.")
    L += sweep_limits(r)
    if noisy:
        L.append("- **Noise.** 2 cores for the benchmark's three node processes, its client and CRIU, and whatever else ran "
                 "on the machine (see Machine).")
    L.append(f"- Sizes: failover and alternatives used a {r.get('ballast_mb', '?')} MB program and {r.get('fail_conns', '?')} "
             "connections; the checkpoint section shows how freeze and dump grow with memory.")
    return L


def stalled(c):
    """A crash with a stall to report: the switch finished and some connection survived it."""
    return c.get("stall_ms") is not None and c.get("survived", 1) > 0


def sweep_parts(c):
    """A crash's stall split into SWEEP_PARTS (ms; None where a log line was not found), from its timeline and phases."""
    tl, ph = c.get("timeline") or {}, c.get("phases") or {}
    un, rm, to = tl.get("unreachable_ms"), tl.get("removed_ms"), tl.get("takeover_ms")
    out = {"detection": un, "downing": rm - un if None not in (rm, un) else None,
           "election": to - rm if None not in (to, rm) else None}
    for k in PHASES:
        out[k[:-2]] = ph.get(k)
    switch = sum(ph.get(k, 0) for k in PHASES)
    if c.get("stall_ms") is not None and c.get("survived", 1) > 0:  # no survivor, no stall to split
        out["client"] = c["stall_ms"] - switch - to if to is not None else None
        out["before_switch"] = c["stall_ms"] - switch
    return out


def interval_key(text):
    """'500ms', '2s', '1m' in seconds, to sort by."""
    t = text.strip()
    for unit, scale in (("ms", 0.001), ("s", 1), ("m", 60)):
        if t.endswith(unit):
            try:
                return float(t[:-len(unit)]) * scale
            except ValueError:
                return 0
    return 0


def sweep_label(p):
    return f"{p['ballast_mb']} MB, {p['conns']} conn., every {p['interval']}"


def sweep_section(r, figs):
    pts = r.get("sweep") or []
    if not pts:
        if r.get("sweep_skipped"):
            return [f"Not run: {r['sweep_skipped']}; `deploy/bench.sh --quick --only sweep` runs it alone."]
        return ["Not run in this run (`--only` left it out)."]
    L = ["How the longest client stall on a crash of the primary grows with the program's memory (`ct-kv --ballast-mb N`: "
         "N MB of random, incompressible memory), the number of open connections and the checkpoint interval: one axis "
         f"varied at a time around a base point (100 MB, 100 connections, a checkpoint every 5s), plus the stall target's "
         "point (256 MB, 1000 connections). Each point is its own 3-node lab (one primary, two standbys) in this run, crashed "
         "as in *Failover*; each connection sends one request every max(50, N) ms (N connections), so the offered load stays "
         "at or under 1000 requests/s and some connection sends within about 50 ms of the crash. The crash waits until every "
         "connection is established (`ss` in the client's namespace: a thousand take seconds to be accepted) and the "
         "primary's last checkpoint was taken after that and every standby stored it (at most 60 s more), so the takeover restores "
         "them and replays what came after. The stall is split into:", ""]
    for k, text in SWEEP_PARTS:
        L.append(f"- *{k}*: {text};")
    L += ["", "*detection*, *downing* and *election* come from the surviving nodes' logs (the first line of each kind after "
          "the crash; all nodes run on this machine's clock, the crash instant is when `continuity-lab crash` took the "
          "links down); *vip* to *open* are the new primary's `lastSwitch.phases`; *client* is the stall minus all of those. "
          "*resident* is the program's VmRSS before the crash, *checkpoint* its last checkpoint's size as shipped.", ""]
    L += ["| axis | memory MB | resident MB | checkpoint MB | connections | checkpoint every | crash | stall ms | "
          + " | ".join(k for k, _ in SWEEP_PARTS) + " | packets replayed | survived |",
          "|" + "---|" * (8 + len(SWEEP_PARTS) + 2)]
    failed = []
    axis_order = ["memory", "connections", "interval", "target", "chosen"]
    for p in sorted(pts, key=lambda p: (min(axis_order.index(a) for a in p["axes"]), p["ballast_mb"], p["conns"],
                                        interval_key(p["interval"]))):
        head = (f"| {', '.join(p['axes'])} | {p['ballast_mb']} | {fmt((p.get('rss_bytes') or 0) / 1e6) if p.get('rss_bytes') else 'n/a'} | "
                f"{fmt(p['checkpoint_bytes'] / 1e6) if p.get('checkpoint_bytes') else 'n/a'} | {p['conns']} | {p['interval']} |")
        if p.get("error") and not p["crashes"]:
            failed.append(p)
            L.append(head + " | **not measured** |" + " |" * (len(SWEEP_PARTS) + 2))
            continue
        if not p["crashes"]:  # the run was stopped while this point was being prepared
            L.append(head + " | **run stopped before its crash** |" + " |" * (len(SWEEP_PARTS) + 2))
            continue
        for c in p["crashes"]:
            if c.get("stall_ms") is None:
                failed.append(p)
                L.append(head + f" {c['crash']} | **no switch within {c.get('no_switch_within_s')} s** |"
                         + " |" * (len(SWEEP_PARTS) + 1) + f" 0/{c['connections']} |")
                continue
            parts = sweep_parts(c)
            why = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in (c.get("failures") or {}).items() if v)
            # The stall is the longest wait of a connection that survived: with none, there is none to report.
            stall = fmt(c["stall_ms"]) if c["survived"] else "**none survived**"
            L.append(head + f" {c['crash']} | {stall} | " + " | ".join(fmt(parts.get(k)) for k, _ in SWEEP_PARTS)
                     + f" | {fmt(c.get('replayed'))} | {c['survived']}/{c['connections']}{f' ({why})' if why else ''} |")
    for p in failed:
        if p.get("error"):
            why = p["error"].replace("|", "/").replace("\n", " ")
            L += ["", f"**{sweep_label(p)} was not measured** (gave up after {p.get('error_after_s', '?')} s): {why}"]
            if p.get("checkpoint_log"):
                L += ["", "Its last warnings in the nodes' logs:", ""]
                L += [f"- `{line.replace('|', '/').replace('`', '')}`" for line in p["checkpoint_log"]]
        elif any(c.get("stall_ms") is None for c in p["crashes"]):
            c = next(c for c in p["crashes"] if c.get("stall_ms") is None)
            tl = c.get("timeline") or {}
            L += ["", f"**{sweep_label(p)}: no switch within {c.get('no_switch_within_s')} s of the crash**; from the logs: "
                  + (", ".join(f"{k[:-3]} after {fmt(v)} ms" for k, v in tl.items() if k.endswith("_ms")) or "no detection line found") + "."]
        for c in p["crashes"]:
            tl = c.get("timeline") or {}
            if tl.get("replay_silent_connections"):
                L += ["", f"{sweep_label(p)}, crash {c['crash']}: during the replay, {tl['replay_silent_connections']} connection(s) "
                      "kept the new primary waiting for the restored program to answer a replayed packet until the pacing "
                      "timeout (`Replay of N: the restored program sent nothing on ...`, logged once per connection; up to two "
                      "waits of `PacingTimeout`, 200 ms, each for a connection opened after the checkpoint: its SYN-ACK, then "
                      "its first reply)"
                      + (f"; the replay had reached logged packet {tl['replay_reached_packet']}" if tl.get("replay_reached_packet") else "")
                      + ". These waits are serial: with many connections opened after the last checkpoint they bound the replay."]
    for p in pts:
        for a in p.get("earlier_attempts") or []:
            why = (a.get("error") or "?").replace("|", "/").replace("\n", " ")
            L += ["", f"{sweep_label(p)}: a first lab was given up after {a.get('error_after_s', '?')} s before any crash, and the "
                  f"point was tried once more in a fresh lab: {why}"]
            if a.get("checkpoint_log"):
                L += ["", "Its last warnings in the nodes' logs:", ""]
                L += [f"- `{line.replace('|', '/').replace('`', '')}`" for line in a["checkpoint_log"]]
        for c in p["crashes"]:
            if "checkpoint_after_client_s" in c and c["checkpoint_after_client_s"] is None and c.get("stall_ms") is not None:
                L += ["", f"{sweep_label(p)}, crash {c['crash']}: no checkpoint taken after the client "
                      "started was stored by every standby within 60 s more; the crash went ahead anyway."]
            if c.get("client_errors") and c.get("stall_ms") is not None and c["survived"] < c["connections"]:
                L += ["", f"{sweep_label(p)}, crash {c['crash']}: {c['connections'] - c['survived']} connection(s) failed; the client's "
                      "first reasons: " + "; ".join(f"`{e}`" for e in c["client_errors"]) + "."]
    limits = [p for p in pts if p.get("nofile")]
    if limits:
        L += ["", "The program's open-files limit (soft, `/proc/PID/limits`) was "
              + ", ".join(sorted({fmt(p["nofile"]) for p in limits})) + f"; the largest point needs {max(p['conns'] for p in pts)} "
              "descriptors for its connections plus a few (`ct-kv` holds at most 1024 connections, `ct-bench` 2000)."]

    # one plot: a panel per axis, a stacked bar per point (its median crash by stall)
    axes = [("memory", "program memory", lambda p: f"{p['ballast_mb']} MB"),
            ("connections", "open connections", lambda p: f"{p['conns']}"),
            ("interval", "checkpoint interval", lambda p: p["interval"]),
            ("target", "stall target's point", lambda p: f"{p['ballast_mb']} MB\n{p['conns']} conn.")]
    axes = [a for a in axes if any(a[0] in p["axes"] for p in pts)]
    if axes:
        fig, panels = plt.subplots(1, len(axes), figsize=(3 * len(axes) + 1, 4), sharey=True, squeeze=False,
                                   gridspec_kw={"width_ratios": [max(1, sum(a[0] in p["axes"] for p in pts)) for a in axes]})
        for (axis, title, xl), ax in zip(axes, panels[0]):
            mine = sorted([p for p in pts if axis in p["axes"]],
                          key=lambda p: (p["ballast_mb"], p["conns"], interval_key(p["interval"])))
            labels = [xl(p) for p in mine]
            for i, p in enumerate(mine):
                done = sorted([c for c in p["crashes"] if stalled(c)], key=lambda c: c["stall_ms"])
                switched = [c for c in p["crashes"] if c.get("stall_ms") is not None]
                if not done and switched:
                    # No connection survived, so no client stall: the takeover's own parts, faded, still show where the
                    # time went on the servers.
                    parts, bottom = sweep_parts(switched[0]), 0.0
                    for k, _ in SWEEP_PARTS[:-1]:
                        v = parts.get(k)
                        if v:
                            ax.bar(i, v / 1000, bottom=bottom, color=SWEEP_COLORS[k], alpha=0.45)
                            bottom += v / 1000
                    ax.text(i, bottom + 1, "none survived\n(takeover only)", ha="center", va="bottom", fontsize=7)
                    continue
                if not done:
                    ax.text(i, 1, "not measured" if p.get("error") else "run stopped" if not p["crashes"] else "no switch",
                            rotation=90, ha="center", va="bottom", fontsize=8)
                    continue
                c = done[(len(done) - 1) // 2]
                parts = sweep_parts(c)
                bottom = 0.0
                for k, _ in SWEEP_PARTS:
                    v = parts.get(k)
                    if k == "client" and v is None:
                        # A log line was not found: what is left is shown as not split, never counted twice.
                        v, k = c["stall_ms"] - bottom * 1000, "not split"
                    if v is None or v <= 0:
                        continue
                    seen = ax.get_legend_handles_labels()[1]
                    ax.bar(i, v / 1000, bottom=bottom, color=SWEEP_COLORS.get(k, "white"), edgecolor="grey" if k == "not split" else None,
                           hatch="//" if k == "not split" else None, label=k if k not in seen else None)
                    bottom += v / 1000
                if len(done) > 1:
                    ax.plot([i] * len(done), [x["stall_ms"] / 1000 for x in done], "k.", markersize=4)
            ax.set_xticks(range(len(mine)))
            ax.set_xticklabels(labels, fontsize=8)
            ax.set_title(title, fontsize=9)
            ax.axhline(1.0, color="black", linestyle=":", linewidth=1)
        panels[0][0].set_ylabel("longest client stall (s)")
        handles, names = [], []
        for ax in panels[0]:
            for h, n in zip(*ax.get_legend_handles_labels()):
                if n not in names:
                    handles.append(h)
                    names.append(n)
        order = [k for k, _ in SWEEP_PARTS if k in names] + [k for k in ("not split",) if k in names]
        if order:  # none when no point was measured
            fig.legend([handles[names.index(k)] for k in order], order, fontsize=7, loc="upper center", ncol=len(order),
                       bbox_to_anchor=(0.5, 1.0))
        fig.suptitle("Failover stall by program memory, connections and checkpoint interval (dotted: the 1 s target)", y=0.93, fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.88))
        figs["failover-sweep.png"] = fig
        L += ["", "![Failover stall sweep](benchmarks/failover-sweep.png)"]
    return L


def sweep_limits(r):
    """What bounds the stall at the sweep's points, the target's above all."""
    pts = [p for p in r.get("sweep") or [] if any(stalled(c) for c in p["crashes"])]
    if not pts:
        return []
    L = []
    target = next((p for p in pts if "target" in p["axes"]), None)
    for p in ([target] if target else []) + [p for p in pts if p is not target]:
        done = sorted([c for c in p["crashes"] if stalled(c)], key=lambda c: c["stall_ms"])
        c = done[-1]  # the worst crash of the point: what its p99 is
        parts = {k: v for k, v in sweep_parts(c).items() if v is not None and k != "before_switch"}
        if not parts:
            continue
        top = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
        share = ", ".join(f"{k} {fmt(v)} ms" for k, v in top)
        if p is target:
            over = c["stall_ms"] - TARGETS["stall_p99_ms"]
            L.append(f"- **The stall target ({p['ballast_mb']} MB, {p['conns']} connections).** The worst of {len(done)} crash(es) "
                     f"stalled a client {fmt(c['stall_ms'])} ms: " + (f"{fmt(over)} ms ({fmt(c['stall_ms'] / 1000, 1)}×) over the 1 s "
                     "target" if over > 0 else "within the 1 s target") + f"; its largest parts: {share}. Detection plus downing "
                     "alone is the cluster's failure detector and the rest of the lost node's lease, the same whatever the "
                     "program; the switch's own phases (vip, restore, replay, open) are what grows with the program.")
    axis_lines = []
    for axis, what in (("memory", "memory"), ("connections", "connections"), ("interval", "checkpoint interval")):
        mine = [p for p in pts if axis in p["axes"]]
        if len(mine) < 2:
            continue
        def med(p, k):
            done = sorted([c for c in p["crashes"] if stalled(c)], key=lambda c: c["stall_ms"])
            v = sweep_parts(done[(len(done) - 1) // 2]).get(k) if k != "stall" else done[(len(done) - 1) // 2]["stall_ms"]
            return v
        seq = "; ".join(f"{sweep_label(p).split(', every')[0] if axis != 'interval' else 'every ' + p['interval']}: stall {fmt(med(p, 'stall'))} ms, "
                        f"restore {fmt(med(p, 'restore'))} ms, replay {fmt(med(p, 'replay'))} ms" for p in mine)
        axis_lines.append(f"by {what}: {seq}")
    if axis_lines:
        L.append("- **The sweep, axis by axis** (median crash of each point): " + ". ".join(axis_lines) + ".")
    return L
