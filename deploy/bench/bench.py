#!/usr/bin/python3
"""The benchmark of issue 5, driven by deploy/bench.sh (which checks root, packages and the build).

Runs on lab instance 1 only (namespaces ct1-*, bridge ct1br, 198.18.1.0/24), so it never touches
the lab of the end-to-end tests (instance 0). Every figure is measured in this run next to its
baseline: the unprotected program runs in the same node namespace, the same client drives both.
Writes docs/benchmarks.md (or --out) with PNG plots next to it, and the raw numbers as JSON.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

INSTANCE = 1
NET = f"198.18.{INSTANCE}"
CLIENT_NS = f"ct{INSTANCE}-client"
VIP = f"{NET}.50"
COLD_VIP = f"{NET}.60"      # the cold-start alternative's address, moved by hand like keepalived would
APP_PORT = 7000
BASE_PORT = 7100            # the unprotected copy of the program, on the node's own address
COLD_PORT = 7200
MGMT_PORT = 8558
# The nodes' MIB (and so /metrics) is a sample at most this old: short, so the stage histograms read before and after
# a run cover that run (the product's default is 5s).
SAMPLE_INTERVAL_S = 1.0
CHECKPOINT_INTERVAL = "5s"  # the product's default (hocon/reference.conf)

TARGETS = {
    "added_p50_us": 150, "added_p99_us": 1000, "rr_ratio": 0.8, "bulk_ratio": 0.5,
    "stall_p99_ms": 1000, "log_pps": 100_000,
}

PROFILES = {
    # smoke: proves the pipeline end to end (the test suite runs it); numbers mean little.
    "smoke": dict(rr_s=2, rr_conns=4, bulk_s=2, crashes=1, fail_conns=5, fail_interval_ms=50, alt_rounds=1, alt_conns=5, alt_timeout_s=8,
                  ballast=0, mem_sizes=[0, 8], cp_samples=1, standbys=[2], reps=1, sweep=None, probe=(1, 200)),
    "quick": dict(rr_s=5, rr_conns=8, bulk_s=5, crashes=3, fail_conns=20, fail_interval_ms=50, alt_rounds=1, alt_conns=20, alt_timeout_s=30,
                  ballast=16, mem_sizes=[16, 64], cp_samples=2, standbys=[1, 2], reps=1, probe=(2, 2000),
                  sweep=dict(crashes=1, memory=[10, 100, 1024], connections=[1, 100, 1000], intervals=["1s", "2s", "5s"])),
    # full: the stall target's conditions, a 256 MB program and 1000 connections (one request a second each).
    "full": dict(rr_s=20, rr_conns=8, bulk_s=15, crashes=20, fail_conns=1000, fail_interval_ms=1000, alt_rounds=3, alt_conns=200, alt_timeout_s=30,
                 ballast=256, mem_sizes=[16, 64, 256], cp_samples=4, standbys=[1, 2], reps=2, probe=(3, 5000),
                 sweep=dict(crashes=3, memory=[10, 100, 1024], connections=[1, 100, 1000], intervals=["1s", "2s", "5s"])),
}
# The failover sweep (issue 5, item 2): one axis varied at a time around a base point, plus the stall target's point.
SWEEP_BASE = dict(ballast=100, conns=100, interval=CHECKPOINT_INTERVAL)
SWEEP_TARGET = dict(ballast=256, conns=1000, interval=CHECKPOINT_INTERVAL)
SWEEP_NO_SWITCH_S = 120   # as the failover section: a takeover not done by then is reported as such
# The log path's saturation run: uploads on this many connections, each with this many 16 KiB lines in flight (8 MiB).
WIDE_BULK = dict(conns=8, window=64)
SECTIONS = ["cost", "failover", "alternatives", "checkpoints", "sweep"]


def sweep_interval_ms(conns):
    """Each connection's request interval in the sweep: one request every max(50, N) ms, so the offered load stays at
    or under 1000 requests/s whatever N, and some connection sends within about 50 ms of any instant (the stall of
    the connection that sent last before the crash is then close to the outage itself)."""
    return max(50, conns)


def log(msg):
    print(f"[bench {datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


class BenchError(Exception):
    pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = args.root
        self.p = dict(PROFILES[args.mode])
        if args.crashes is not None:
            self.p["crashes"] = args.crashes
        self.state_dir = args.state_dir
        self.build = os.path.join(self.root, "build", "testserver")
        self.kv = os.path.join(self.build, "ct-kv")
        self.client = os.path.join(self.build, "ct-bench")
        self.out = os.path.abspath(args.out)
        self.fig_dir = os.path.dirname(self.out)
        self.work = os.path.join(self.state_dir, "bench")
        self.results = {"mode": args.mode, "cost": {}, "failover": [], "alternatives": {}, "checkpoints": [],
                        "sweep": [], "log_path": {}, "notes": []}
        self.started = time.time()
        self.load_samples = []

    # ------------------------------------------------------------------ lab plumbing

    def lab(self, *args, check=True, quiet=False):
        cmd = [os.path.join(self.root, "bin", "continuity-lab"), "--instance", str(INSTANCE), "--state-dir", self.state_dir, *args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if not quiet and r.stdout.strip():
            for line in r.stdout.strip().splitlines()[-3:]:
                log("  lab: " + line)
        if check and r.returncode != 0:
            raise BenchError(f"'continuity-lab {' '.join(args)}' failed (exit {r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
        return r

    def ns(self, host):
        return f"ct{INSTANCE}-{host}"

    def addr(self, host):
        return f"{NET}.{10 + int(host[1:])}"

    def token(self):
        with open(os.path.join(self.state_dir, "token")) as f:
            return f.read().strip()

    def api(self, node, path, timeout=3):
        req = urllib.request.Request(f"http://{self.addr(node)}:{MGMT_PORT}{path}",
                                     headers={"Authorization": "Bearer " + self.token()})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def metrics(self, node, timeout=3):
        """The node's /metrics (Prometheus text), or None when it does not answer."""
        req = urllib.request.Request(f"http://{self.addr(node)}:{MGMT_PORT}/metrics",
                                     headers={"Authorization": "Bearer " + self.token()})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def stage_counts(self, nodes, app):
        """Every node's stage histograms of one app, cumulative: {(node, stage, standby): {"buckets": [(le, n)], "sum", "count"}}.
        Read once a fresh sample has been taken (two sample intervals), so it includes everything until now."""
        time.sleep(2 * SAMPLE_INTERVAL_S + 0.2)
        out = {}
        for n in nodes:
            text = self.metrics(n)
            if text:
                for key, v in parse_stage_histograms(text, app).items():
                    out[(n,) + key] = v
        return out

    def app(self, nodes, name):
        for n in nodes:
            v = self.api(n, f"/v1/apps/{name}")
            if v is not None:
                return v
        return None

    def primary_view(self, nodes, name):
        """The app's view, from its primary when the first node to answer was a standby: a standby's view has no
        lastCheckpoint, and on a loaded machine the primary's API can miss app()'s 3 s timeout."""
        v = self.app(nodes, name)
        if v and v.get("primary") in nodes and not v.get("lastCheckpoint"):
            v = self.api(v["primary"], f"/v1/apps/{name}", timeout=10) or v
        return v

    def wait_protected(self, nodes, name, standbys, timeout):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            v = self.primary_view(nodes, name)
            if v:
                last = v
                ready = [s for s in v.get("standbys", []) if s.get("ready")]
                if v.get("primary") and len(ready) >= standbys and (v.get("lastCheckpoint") or all(s.get("checkpointId") for s in ready)):
                    return v
            time.sleep(0.5)
        raise BenchError(f"{name} was not protected by {standbys} ready standbys within {timeout} s; last view: {json.dumps(last)}; "
                         f"see the node logs in {self.state_dir}/<node>/node.log")

    def nsexec(self, ns, *cmd, **kw):
        return ["nsenter", f"--net=/run/netns/{ns}", "--", *cmd]

    def write_config(self, apps):
        path = os.path.join(self.work, "apps.hocon")
        with open(path, "w") as f:
            f.write(f"continuity.supervision.sample-interval = {int(SAMPLE_INTERVAL_S * 1000)}ms\n")
            if self.args.extra_config:
                # Settings under comparison (e.g. one journal mode against another), for every node of every lab.
                with open(self.args.extra_config) as extra:
                    f.write(extra.read() + "\n")
            for a in apps:
                f.write(f"""continuity.apps.{a['name']} {{
  command = ["{self.kv}", "--tcp", "{a['port']}", "--ballast-mb", "{a.get('ballast', 0)}"]
  vip = "{a['vip']}/24"
  ports = ["tcp/{a['port']}"]
  checkpoint-interval = {a.get('interval', CHECKPOINT_INTERVAL)}
  recovery = {a.get('recovery', 'replay')}
}}
""")
        return path

    def up(self, nodes, apps):
        # A lab of the same shape is reused: bringing one up costs 15-30 s on this machine.
        key = json.dumps([nodes, apps], sort_keys=True)
        if getattr(self, "current_lab", None) == key:
            log(f"lab instance {INSTANCE} reused: {nodes} data nodes, apps {', '.join(a['name'] for a in apps)}")
            return [f"n{i}" for i in range(1, nodes + 1)]
        self.current_lab = key
        self.lab("down", check=False, quiet=True)
        cfg = self.write_config(apps)
        log(f"lab instance {INSTANCE} up: {nodes} data nodes, apps {', '.join(a['name'] for a in apps)}")
        self.lab("up", "--nodes", str(nodes), "--config", cfg, "--timeout", "120")
        return [f"n{i}" for i in range(1, nodes + 1)]

    # ------------------------------------------------------------------ client runs

    def run_client(self, mode, server, conns, seconds, extra=(), lat_file=None, timeout_s=30):
        cmd = [self.client, mode, "--server", server, "--connections", str(conns), "--duration-s", str(seconds),
               "--timeout-s", str(timeout_s), *extra]
        if lat_file:
            cmd += ["--latencies", lat_file]
        r = subprocess.run(self.nsexec(CLIENT_NS, *cmd), capture_output=True, text=True, timeout=seconds + timeout_s + 60)
        return self.parse_bench(r.stdout, r.stderr, cmd)

    @staticmethod
    def parse_bench(stdout, stderr, cmd):
        lines = [l for l in stdout.splitlines() if l.startswith("BENCH ")]
        if not lines:
            raise BenchError(f"ct-bench printed no BENCH line ({' '.join(cmd)}): {stderr.strip()[-500:]}")
        out = {}
        for kv in lines[-1].split()[1:]:
            k, v = kv.split("=", 1)
            try:
                out[k] = float(v) if "." in v else int(v)
            except ValueError:
                out[k] = v
        return out

    def start_client(self, server, conns, interval_ms, timeout_s=90):
        cmd = [self.client, "rr", "--server", server, "--connections", str(conns), "--duration-s", "3600",
               "--warmup-s", "0", "--interval-ms", str(interval_ms), "--timeout-s", str(timeout_s)]
        return subprocess.Popen(self.nsexec(CLIENT_NS, *cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), cmd

    def wait_connected(self, conns, timeout_s, server=None):
        """The moment the client has all its connections established (ss in its namespace) and, given the server's
        host, the program accepted them all (its listening socket's accept queue is empty), or None after timeout_s.
        The client sees a connection established as soon as the server's kernel answered its SYN; one still waiting in
        the accept queue is none of the program's sockets, so a checkpoint misses it and a takeover resets it (a sweep
        lost 139 of 1000 connections that way, checkpointed 2.3 s after the client started)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            r = subprocess.run(self.nsexec(CLIENT_NS, "ss", "-Htn", "state", "established", "dst", f"{VIP}:{APP_PORT}"),
                               capture_output=True, text=True)
            if r.returncode == 0 and len(r.stdout.splitlines()) >= conns and (server is None or self.accept_queue(server) == 0):
                return time.time()
            time.sleep(0.2)
        return None

    def accept_queue(self, host):
        """Connections waiting in the program's listening socket on host to be accepted (Recv-Q of the LISTEN socket)."""
        r = subprocess.run(self.nsexec(self.ns(host), "ss", "-Hltn", "sport", "=", f":{APP_PORT}"), capture_output=True, text=True)
        queues = [int(line.split()[1]) for line in r.stdout.splitlines() if len(line.split()) > 1 and line.split()[1].isdigit()]
        return sum(queues) if r.returncode == 0 and queues else None

    def settle_client(self, proc_cmd, timeout_s):
        """After a failover: the client ends once every connection failed or was answered after this moment
        (ct-bench's SIGUSR1), so none counts as surviving only because it had not heard from the new server yet."""
        proc, cmd = proc_cmd
        proc.send_signal(signal.SIGUSR1)
        try:
            out, err = proc.communicate(timeout=timeout_s)
            r = self.parse_bench(out, err, cmd)
            # Why connections failed, in the client's words (its first few 'connection N failed: ...' lines).
            r["errors"] = [l for l in err.splitlines() if "failed:" in l][:3]
            return r
        except subprocess.TimeoutExpired:
            return self.stop_client(proc_cmd)

    def stop_client(self, proc_cmd):
        proc, cmd = proc_cmd
        # nsenter execs the client, so the signal reaches ct-bench itself.
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return self.parse_bench(out, err, cmd)

    def start_plain_server(self, node, port, bind=None):
        """The unprotected program: ct-kv started directly in the node's namespace, no Continuity."""
        cmd = [self.kv, "--tcp", str(port), "--ballast-mb", str(self.p["ballast"])]
        if bind:
            cmd += ["--bind", bind]
        proc = subprocess.Popen(self.nsexec(self.ns(node), *cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = f"{bind or self.addr(node)}:{port}"
        for _ in range(100):
            r = subprocess.run(self.nsexec(CLIENT_NS, self.client, "rr", "--server", server, "--connections", "1",
                                           "--duration-s", "1", "--warmup-s", "0", "--timeout-s", "2"),
                               capture_output=True, text=True)
            if "survived=1" in r.stdout:
                return proc
            time.sleep(0.2)
        proc.kill()
        raise BenchError(f"the unprotected ct-kv on {server} did not answer")

    def loadavg(self):
        """The 1-minute load average and the share of the last 10 s in which some task waited for a CPU (PSI)."""
        with open("/proc/loadavg") as f:
            load = float(f.read().split()[0])
        psi = None
        try:
            with open("/proc/pressure/cpu") as f:
                psi = float(f.readline().split()[1].split("=")[1])
        except (OSError, IndexError, ValueError):
            pass
        return {"load1": load, "cpu_some_avg10": psi}

    def sync_write_ms(self):
        """Latency of one synchronous 4 KiB write on the disk of the nodes' journals (dd oflag=dsync)."""
        path = os.path.join(self.work, "dsync-probe")
        r = subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=4k", "count=100", "oflag=dsync"], capture_output=True, text=True)
        try:
            os.unlink(path)
        except OSError:
            pass
        m = re.search(r"copied, ([\d.]+) s", r.stderr)
        return round(float(m.group(1)) * 1000 / 100, 2) if m else None

    def queue_packets(self, node):
        """Packets that entered the node's NFQUEUEs so far (id_sequence of /proc/net/netfilter/nfnetlink_queue)."""
        r = subprocess.run(self.nsexec(self.ns(node), "cat", "/proc/net/netfilter/nfnetlink_queue"), capture_output=True, text=True)
        total = 0
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) >= 8:
                total += int(f[7])
        return total

    # ------------------------------------------------------------------ a. cost while nothing fails

    def cost(self, standbys):
        nodes = self.up(standbys + 1, [dict(name="kv", port=APP_PORT, vip=VIP, ballast=self.p["ballast"])])
        view = self.wait_protected(nodes, "kv", standbys, 120)
        primary = view["primary"]
        plain = self.start_plain_server(primary, BASE_PORT)
        res = {"primary": primary, "rr": {"unprotected": [], "protected": []}, "bulk": {"unprotected": [], "protected": []}}
        try:
            targets = {"unprotected": f"{self.addr(primary)}:{BASE_PORT}", "protected": f"{VIP}:{APP_PORT}"}
            for rep in range(self.p["reps"]):
                # Alternated, so a neighbour's burst on this shared machine hits both sides alike.
                for side in ("unprotected", "protected"):
                    self.load_samples.append(self.loadavg())
                    lat = os.path.join(self.work, f"lat-{standbys}-{side}-{rep}.txt")
                    before = self.stage_counts(nodes, "kv") if side == "protected" else None
                    r = self.run_client("rr", targets[side], self.p["rr_conns"], self.p["rr_s"], lat_file=lat)
                    if side == "protected":
                        res.setdefault("stages_rr", []).append(stage_delta(before, self.stage_counts(nodes, "kv"), primary))
                    r["latencies_file"] = lat
                    res["rr"][side].append(r)
                    log(f"  {standbys} standby(s), rr {side}: {r['rps']:.0f} req/s, p50 {r['p50_us']} us, p99 {r['p99_us']} us, "
                        f"p99.9 {r['p999_us']} us, failed {r['failed']}")
                for side in ("unprotected", "protected"):
                    before = self.stage_counts(nodes, "kv") if side == "protected" else None
                    r = self.upload(primary, targets[side], 1, 16)
                    if side == "protected":
                        res.setdefault("stages_bulk", []).append(stage_delta(before, self.stage_counts(nodes, "kv"), primary))
                    res["bulk"][side].append(r)
                    log(f"  {standbys} standby(s), bulk {side}: {r['mbps']:.1f} MB/s (queue {r['queue_pps']:.0f} packets/s)")
                # The log path's own ceiling: one connection's window bounds the upload above by window over hold time,
                # so several connections with deep windows offer more than the path can take.
                for side in ("unprotected", "protected"):
                    r = self.upload(primary, targets[side], WIDE_BULK["conns"], WIDE_BULK["window"])
                    res.setdefault("bulk_wide", {"unprotected": [], "protected": []})[side].append(r)
                    log(f"  {standbys} standby(s), wide bulk {side}: {r['mbps']:.1f} MB/s (queue {r['queue_pps']:.0f} packets/s)")
            v = self.app(nodes, "kv")
            res["checkpoint"] = v.get("lastCheckpoint") if v else None
            if "transport" not in self.results:
                try:
                    self.results["transport"] = self.transport(primary, view["standbys"][0]["node"])
                except BenchError as e:
                    # A figure missing, not a benchmark lost: the report says why.
                    self.results["notes"].append(f"the transport probe failed: {e}")
                    self.results["transport"] = None
        finally:
            plain.kill()
            plain.wait()
        self.results["cost"][str(standbys)] = res

    def upload(self, primary, target, conns, window):
        """A bulk upload of 16 KiB lines, window lines in flight per connection; with the packets/s it pushed through
        the primary's queue meanwhile (queue_pps)."""
        q0, t0 = self.queue_packets(primary), time.time()
        r = self.run_client("bulk", target, conns, self.p["bulk_s"], extra=["--line-bytes", "16384", "--window", str(window)])
        q1, t1 = self.queue_packets(primary), time.time()
        r["queue_pps"] = (q1 - q0) / (t1 - t0)
        return r

    def transport(self, primary, standby):
        """The replication round trip's transport alone, between the primary's and a standby's namespaces while the lab
        runs: raw TCP (the baseline), TLS, Akka.Remote, Akka.Remote with TLS (continuity-lab probe)."""
        rounds, trips = self.p["probe"]
        r = self.lab("probe", primary, standby, "--json", "--rounds", str(rounds), "--round-trips", str(trips), quiet=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        for m in res["results"]:
            log(f"  transport {primary} -> {standby}, {m['Mode']}: p50 {m['P50']} us, p99 {m['P99']} us")
        return res

    # ------------------------------------------------------------------ b. failover

    def failover(self):
        nodes = self.up(3, [dict(name="kv", port=APP_PORT, vip=VIP, ballast=self.p["ballast"])])
        for i in range(self.p["crashes"]):
            rec = self.crash_once(nodes, "kv", self.p["fail_conns"], self.p["fail_interval_ms"], settle_s=7)
            rec["crash"] = i + 1
            self.results["failover"].append(rec)
            if rec["stall_ms"] is None:
                # A result, not a bench failure: the report shows it, and later crashes would say nothing more.
                log(f"  crash {i + 1}: no switch within {SWEEP_NO_SWITCH_S} s of crashing {rec['from']}; failover phase stopped "
                    f"(node logs in {self.state_dir}/<node>/node.log)")
                self.notes_no_switch = True
                break
            log(f"  crash {i + 1}/{self.p['crashes']}: {rec['from']} -> {rec['to']}, longest stall {rec['stall_ms']} ms, "
                f"{rec['survived']}/{rec['connections']} connections survived, phases {rec['phases']}, timeline {rec.get('timeline')}")
            if i + 1 < self.p["crashes"]:
                self.lab("revive", rec["from"], quiet=True)  # revive clears the VIP and rules, as a reboot would
        self.current_lab = None  # crashed and revived: never reused as a fresh lab

    def crash_once(self, nodes, app, conns, interval_ms, settle_s):
        """One crash of the app's primary under a paced client: the client's longest stall, the switch's phases (the new
        primary's lastSwitch) and, from the nodes' logs, when the crash was detected, acted on and the takeover began.
        Returns the record; stall_ms is None when no switch finished within SWEEP_NO_SWITCH_S (the client is stopped)."""
        view = self.wait_protected(nodes, app, 2, 180)
        primary, epoch = view["primary"], view["epoch"]
        client_at = time.time()
        client = self.start_client(f"{VIP}:{APP_PORT}", conns, interval_ms)
        # A thousand connections take seconds to be accepted (SYNs beyond the program's listen backlog are resent after
        # 1 s, 3 s...): those a checkpoint missed are reset by a takeover, by design, and would count as lost here.
        connected_at = self.wait_connected(conns, 60, server=primary) or client_at
        # Every connection established and inside a checkpoint (a SYN dropped by a freeze is resent after 1 s).
        time.sleep(max(0.0, settle_s - (connected_at - client_at)))
        # On a loaded machine a checkpoint can take longer than its interval: wait (at most 60 s more) until the primary's
        # last checkpoint was taken after the connections were up and every standby stored it, so the crash tests replay
        # from a checkpoint that holds them, as intended, rather than from one taken before the client started (a
        # checkpoint taken but still shipping is not the one a takeover restores: 100 MB takes seconds to ship).
        cp_wait = time.time()
        cp_after = None
        while time.time() - cp_wait < 60:
            v = self.api(primary, f"/v1/apps/{app}", timeout=5) or {}
            cp = v.get("lastCheckpoint") or {}
            at = iso_time(cp.get("at"))
            stored = bool(v.get("standbys")) and all(sb.get("checkpointId") == cp.get("id") for sb in v["standbys"])
            if at is not None and at >= max(client_at + 2, connected_at) and stored:
                cp_after = round(at - client_at, 1)
                break
            time.sleep(0.5)
        self.load_samples.append(self.loadavg())
        t0 = time.time()
        out = self.lab("crash", primary, quiet=True).stdout
        t1 = time.time()
        # 'Crashed n1 (...) in N ms: links down, ...': the lab's clock starts just before the links go down.
        m = re.search(r"in (\d+) ms", out)
        crash_at = max(t0, t1 - int(m.group(1)) / 1000) if m else (t0 + t1) / 2
        others = [n for n in nodes if n != primary]
        new = None
        deadline = crash_at + SWEEP_NO_SWITCH_S
        while time.time() < deadline:
            v = self.app(others, app)
            if v and v.get("epoch", 0) > epoch and v.get("primary") in others and v.get("lastSwitch") \
                    and v["lastSwitch"].get("epoch") == v["epoch"] and v.get("state") != "switching":
                new = v
                break
            time.sleep(0.3)
        switched_after = time.time() - crash_at
        if new is None:
            r = self.stop_client(client)
            return {"from": primary, "to": None, "stall_ms": None, "no_switch_within_s": SWEEP_NO_SWITCH_S, "survived": 0,
                    "connections": r["connections"], "failed": r["failed"], "replayed": None, "phases": {},
                    "timeline": self.crash_timeline(others, app, primary, crash_at, None)}
        r = self.settle_client(client, 120)
        sw = new["lastSwitch"]
        return {"from": primary, "to": new["primary"], "stall_ms": r["longest_stall_ms"], "survived": r["survived"],
                "connections": r["connections"], "failed": r["failed"], "replayed": sw.get("packetsReplayed"),
                "failures": {k: r.get(k, 0) for k in ("resets", "eofs", "timeouts", "mismatches", "connect_failures")},
                "client_errors": r.get("errors", []),
                "phases": sw.get("phases", {}), "switch_seen_after_s": round(switched_after, 2),
                "checkpoint_after_client_s": cp_after, "connected_after_s": round(connected_at - client_at, 1),
                "timeline": self.crash_timeline(others, app, primary, crash_at, new["epoch"])}

    def crash_timeline(self, nodes, app, primary, crash_at, epoch):
        """Milliseconds from the crash to three lines of the surviving nodes' logs (the earliest of each, at or after the
        crash; every node runs on this machine's clock): Akka's failure detector marking the crashed node UNREACHABLE
        (detection), the app owner seeing the primary removed from the cluster (downed by the leader once its lease ran
        out, or by the Split Brain Resolver), and the new primary starting its takeover (the election and the order reaching it).
        A line not found is left out."""
        addr = f"@{self.addr(primary)}:"
        pats = {
            "unreachable": lambda l: "UNREACHABLE" in l and addr in l.split("UNREACHABLE", 1)[1],
            # The leader removing the downed node, or the app owner seeing it gone (an owner that moved off the
            # crashed node starts after the removal and never logs the second).
            "removed": lambda l: ("Leader is removing" in l and addr in l)
                                 or f"[{app}] primary {primary} was removed from the cluster" in l,
            "takeover": lambda l: f"[{app}] taking over as primary of epoch {epoch} " in l if epoch is not None
                                  else f"[{app}] taking over as primary of epoch " in l,
        }
        # The replay's pacing: a connection whose restored socket sent nothing within the pacing timeout is logged
        # once ('Replay of N: the restored program sent nothing on ...') after costing that wait.
        silent, reached = 0, None
        found = {}
        for n in nodes:
            try:
                with open(os.path.join(self.state_dir, n, "node.log"), errors="replace") as f:
                    for line in f:
                        t = log_time(line)
                        if t is None or t < crash_at - 0.5:
                            continue
                        for k, match in pats.items():
                            if match(line) and (k not in found or t < found[k]):
                                found[k] = t
                        m = REPLAY_LINE.search(line)
                        if m:
                            silent += "sent nothing" in line
                            reached = max(reached or 0, int(m.group(1)))
            except OSError:
                continue
        out = {k + "_ms": round((t - crash_at) * 1000) for k, t in found.items()}
        if silent:
            out["replay_silent_connections"] = silent
            out["replay_reached_packet"] = reached
        return out

    # ------------------------------------------------------------------ b2. failover sweep

    def sweep_points(self):
        """The points of the sweep, one axis varied at a time around SWEEP_BASE plus the stall target's point; the largest
        program last (the one most likely not to fit: it must not starve the others of time)."""
        sw = self.p["sweep"]
        if self.args.sweep_point:
            return [dict(ballast=mb, conns=c, interval=iv, axes=["chosen"]) for mb, c, iv in self.args.sweep_point]
        base = SWEEP_BASE
        pts = []
        for mb in sw["memory"]:
            pts.append(dict(base, ballast=mb, axes=["memory"]))
        for c in sw["connections"]:
            pts.append(dict(base, conns=c, axes=["connections"]))
        for iv in sw["intervals"]:
            pts.append(dict(base, interval=iv, axes=["interval"]))
        pts.append(dict(SWEEP_TARGET, axes=["target"]))
        merged = []
        for p in pts:  # the base point belongs to every axis: measured once
            same = next((q for q in merged if all(q[k] == p[k] for k in ("ballast", "conns", "interval"))), None)
            if same:
                same["axes"] += p["axes"]
            else:
                merged.append(p)
        # One lab per (memory, interval); connections vary within it. The product's default interval first (the
        # stall target's point among them), other intervals next, the largest program last.
        largest = max(sw["memory"])
        merged.sort(key=lambda p: (p["ballast"] >= largest, p["interval"] != CHECKPOINT_INTERVAL, "target" in p["axes"],
                                   p["ballast"], interval_s(p["interval"]), p["conns"]))
        return merged

    def sweep(self):
        crashes = self.p["sweep"]["crashes"]
        for p in self.sweep_points():
            app = "kv"
            label = f"{p['ballast']} MB, {p['conns']} connection(s), checkpoint every {p['interval']}"
            log(f"  sweep point: {label} ({', '.join(p['axes'])})")
            point = {"ballast_mb": p["ballast"], "conns": p["conns"], "interval": p["interval"], "axes": p["axes"],
                     "interval_ms": sweep_interval_ms(p["conns"]), "crashes": [], "error": None, "earlier_attempts": []}
            self.results["sweep"].append(point)
            # A lab that is not protected before its first crash (on this shared machine, a starved cluster can down
            # its own members) measured nothing about failover: one fresh lab more, and the first failure is reported.
            for attempt in range(2):
                if self.sweep_point(p, point, app, crashes) or point["crashes"]:
                    break
                if attempt == 0:
                    point["earlier_attempts"].append({k: point.pop(k) for k in ("error", "error_after_s", "checkpoint_log") if k in point})
                    point["error"] = None
                    log("    trying once more in a fresh lab")
            self.save_partial()
        self.current_lab = None

    def sweep_point(self, p, point, app, crashes):
        """One attempt at a point: True once it was measured (or its takeover did not finish), False when its lab was
        never protected (point["error"] says why)."""
        cfg = dict(name=app, port=APP_PORT, vip=VIP, ballast=p["ballast"], interval=p["interval"])
        name = f"sweep-{p['ballast']}mb-{p['conns']}c-{p['interval']}-{len(point['earlier_attempts']) + 1}"
        started = time.time()
        try:
            nodes = self.up(3, [cfg])
            # A large program's first checkpoint (dump, archive, ship to two standbys) takes a while here.
            view = self.wait_protected(nodes, app, 2, 180 + p["ballast"] // 2)
            point["rss_bytes"] = self.rss_of(view["primary"], APP_PORT)
            point["nofile"] = self.nofile_of(view["primary"], APP_PORT)
            cp = view.get("lastCheckpoint") or (self.api(view["primary"], f"/v1/apps/{app}", timeout=10) or {}).get("lastCheckpoint") or {}
            point["checkpoint_bytes"] = cp.get("bytes")
            point["freeze_ms"] = cp.get("freezeMs")
            point["ship_ms"] = view.get("lastShipMs")
            for i in range(crashes):
                rec = self.crash_once(nodes, app, p["conns"], point["interval_ms"], settle_s=max(7, 2 + interval_s(p["interval"])))
                rec["crash"] = i + 1
                point["crashes"].append(rec)
                if rec["stall_ms"] is None:
                    log(f"    crash {i + 1}: no switch within {SWEEP_NO_SWITCH_S} s of crashing {rec['from']}; "
                        f"timeline {rec['timeline']}")
                    self.current_lab = None  # in an unknown state: the next point brings a fresh lab up
                    break
                log(f"    crash {i + 1}/{crashes}: {rec['from']} -> {rec['to']}, longest stall {rec['stall_ms']} ms, "
                    f"{rec['survived']}/{rec['connections']} survived, phases {rec['phases']}, timeline {rec['timeline']}")
                self.lab("revive", rec["from"], quiet=True)  # the next crash (or point) waits until it is a ready standby
                self.save_partial()
            return True
        except BenchError as e:
            # A point that does not fit (e.g. its program is not protected in time) is a result: said, not faked.
            point["error"] = str(e)[:600]
            point["error_after_s"] = round(time.time() - started)
            point["checkpoint_log"] = self.checkpoint_trouble(app)
            log(f"    not measured: {point['error'][:300]}")
            self.current_lab = None
            return False
        finally:
            self.keep_logs(name)

    def keep_logs(self, name):
        """The nodes' logs of a point, kept under the bench's work directory: the next lab starts them afresh."""
        dest = os.path.join(self.work, "logs", name)
        os.makedirs(dest, exist_ok=True)
        for n in ("n1", "n2", "n3"):
            try:
                shutil.copyfile(os.path.join(self.state_dir, n, "node.log"), os.path.join(dest, f"{n}.log"))
            except OSError:
                pass

    def save_partial(self):
        """results.json so far (bench.py --report-only can write a report from it if the run is stopped)."""
        with open(os.path.join(self.work, "results.partial.json"), "w") as f:
            json.dump(dict(self.results, elapsed_s=round(time.time() - self.started), ballast_mb=self.p["ballast"],
                           fail_conns=self.p["fail_conns"], fail_interval_ms=self.p["fail_interval_ms"],
                           checkpoint_interval=CHECKPOINT_INTERVAL, alt_timeout_s=self.p["alt_timeout_s"],
                           crashes=self.p["crashes"], loadavg=self.load_samples), f, indent=2)

    def program_pid(self, node, port):
        """The pid of the ct-kv serving PORT in NODE's namespace, or None."""
        r = subprocess.run(["ip", "netns", "pids", self.ns(node)], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"ct-kv") and str(port).encode() in argv:
                return pid
        return None

    def nofile_of(self, node, port):
        """The program's open-files limit (soft), from /proc/PID/limits: 1000 connections need 1000 descriptors."""
        pid = self.program_pid(node, port)
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        return int(line.split()[3])
        except (OSError, ValueError, IndexError):
            pass
        return None

    def checkpoint_trouble(self, app):
        """The last few warnings and errors of the app, and the Split Brain Resolver's decisions, in the nodes' logs: why
        a point did not get protected."""
        lines = []
        for n in ("n1", "n2", "n3"):
            try:
                with open(os.path.join(self.state_dir, n, "node.log"), errors="replace") as f:
                    for line in f:
                        if ((f"[{app}]" in line and ("WARNING" in line or "ERROR" in line)) or "SBR took decision" in line
                                or "continuity-lease] downing" in line):
                            # The cluster downing a member that was not crashed: heartbeats lost on a starved machine.
                            lines.append(f"{n}: {line.strip()[:300]}")
            except OSError:
                continue
        return lines[-5:]

    # ------------------------------------------------------------------ c. alternatives

    def alternatives(self):
        conns = self.p["alt_conns"]
        alt = self.results["alternatives"]
        # (b) CRIU restore without the log: recovery = restore-only.
        nodes = self.up(3, [dict(name="kvro", port=APP_PORT, vip=VIP, ballast=self.p["ballast"], recovery="restore-only")])
        alt["restore-only"] = []
        for i in range(self.p["alt_rounds"]):
            view = self.wait_protected(nodes, "kvro", 2, 180)
            primary, epoch = view["primary"], view["epoch"]
            client = self.start_client(f"{VIP}:{APP_PORT}", conns, 50, timeout_s=self.p["alt_timeout_s"])
            time.sleep(3)  # connected; whether they are in a checkpoint does not matter without replay
            self.lab("crash", primary, quiet=True)
            others = [n for n in nodes if n != primary]
            deadline = time.time() + 120
            while time.time() < deadline:
                v = self.app(others, "kvro")
                if v and v.get("epoch", 0) > epoch and v.get("state") in ("protected", "degraded", "unprotected"):
                    break
                time.sleep(0.3)
            r = self.settle_client(client, self.p["alt_timeout_s"] + 15)
            alt["restore-only"].append({"survived": r["survived"], "connections": r["connections"], "resets": r["resets"],
                                        "eofs": r["eofs"], "timeouts": r["timeouts"], "mismatches": r["mismatches"]})
            log(f"  restore-only round {i + 1}: {r['survived']}/{r['connections']} connections survived")
            if i + 1 < self.p["alt_rounds"]:
                self.lab("revive", primary, quiet=True)  # revive clears the VIP and rules, as a reboot would

        # (a) The VIP moved to a standby that cold-starts the program, done by hand as keepalived would:
        # the old holder goes silent (its traffic dropped, like a power loss: no FIN/RST), the program
        # starts fresh on another node, which takes the address and announces it.
        alt["cold-start"] = []
        for i in range(self.p["alt_rounds"]):
            a, b = ("n2", "n3") if i % 2 == 0 else ("n3", "n2")
            subprocess.run(["ip", "-n", self.ns(a), "addr", "add", f"{COLD_VIP}/24", "dev", "eth0"], check=True)
            plain = self.start_plain_server(a, COLD_PORT, bind=COLD_VIP)
            client = self.start_client(f"{COLD_VIP}:{COLD_PORT}", conns, 50, timeout_s=self.p["alt_timeout_s"])
            time.sleep(3)
            drop = ["iptables", "-w", "-I", "INPUT", "-d", COLD_VIP, "-j", "DROP"]
            subprocess.run(self.nsexec(self.ns(a), *drop), check=True)
            subprocess.run(self.nsexec(self.ns(a), "iptables", "-w", "-I", "OUTPUT", "-s", COLD_VIP, "-j", "DROP"), check=True)
            plain.kill()
            plain.wait()
            subprocess.run(["ip", "-n", self.ns(a), "addr", "del", f"{COLD_VIP}/24", "dev", "eth0"], check=False)
            for chain, flag in (("INPUT", "-d"), ("OUTPUT", "-s")):
                subprocess.run(self.nsexec(self.ns(a), "iptables", "-w", "-D", chain, flag, COLD_VIP, "-j", "DROP"), check=False)
            subprocess.run(["ip", "-n", self.ns(b), "addr", "add", f"{COLD_VIP}/24", "dev", "eth0"], check=True)
            # Announced before the program is up, as keepalived does: clients then reach the new holder.
            # The same unsolicited ARP the nodes send for a VIP (sender = target = the address).
            arp = subprocess.run(self.nsexec(self.ns(b), "arping", "-q", "-U", "-c", "2", "-W", "0.2", "-w", "2", "-i", "eth0",
                                             "-S", COLD_VIP, COLD_VIP), capture_output=True, text=True)
            if arp.returncode > 1 or arp.stderr.strip():
                raise BenchError(f"arping for the moved address failed (exit {arp.returncode}): {arp.stderr.strip()}; "
                                 "is Debian's arping installed? run sudo deploy/install-deps.sh")
            fresh = self.start_plain_server(b, COLD_PORT, bind=COLD_VIP)
            r = self.settle_client(client, self.p["alt_timeout_s"] + 15)
            fresh.kill()
            fresh.wait()
            subprocess.run(["ip", "-n", self.ns(b), "addr", "del", f"{COLD_VIP}/24", "dev", "eth0"], check=False)
            alt["cold-start"].append({"survived": r["survived"], "connections": r["connections"], "resets": r["resets"],
                                      "eofs": r["eofs"], "timeouts": r["timeouts"], "mismatches": r["mismatches"]})
            log(f"  cold-start round {i + 1}: {r['survived']}/{r['connections']} connections survived")

    # ------------------------------------------------------------------ d. checkpoints

    def checkpoints(self):
        apps = [dict(name=f"mem{mb}", port=7300 + k, vip=f"{NET}.{70 + k}", ballast=mb, interval="4s")
                for k, mb in enumerate(self.p["mem_sizes"])]
        nodes = self.up(2, apps)
        for a in apps:
            self.wait_protected(nodes, a["name"], 1, 240)
        seen = {a["name"]: set() for a in apps}
        deadline = time.time() + 60 + 20 * self.p["cp_samples"]
        while time.time() < deadline and any(len(s) < self.p["cp_samples"] for s in seen.values()):
            for a in apps:
                v = self.primary_view(nodes, a["name"])
                cp = v.get("lastCheckpoint") if v else None
                if not cp or cp["id"] in seen[a["name"]] or len(seen[a["name"]]) >= self.p["cp_samples"]:
                    continue
                seen[a["name"]].add(cp["id"])
                rss = self.rss_of(v["primary"], a["port"])
                dump_ms = self.dump_ms(v["primary"], a["name"], cp["id"])
                self.results["checkpoints"].append({"app": a["name"], "ballast_mb": a["ballast"], "id": cp["id"],
                                                    "bytes": cp["bytes"], "freeze_ms": cp["freezeMs"], "dump_ms": dump_ms,
                                                    "rss_bytes": rss})
                log(f"  {a['name']}: checkpoint {cp['id']} {cp['bytes'] / 1e6:.1f} MB shipped, RSS {rss / 1e6:.1f} MB, "
                    f"freeze {cp['freezeMs']} ms, dump {dump_ms} ms")
            time.sleep(0.5)

    def rss_of(self, node, port):
        pid = self.program_pid(node, port)
        if pid is None:
            return 0
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def dump_ms(self, node, app, cp_id):
        """From the node's log: 'checkpoint ID: frozen at mark M, dumping' to 'checkpoint ID: N MB, frozen ...'."""
        path = os.path.join(self.state_dir, node, "node.log")
        times = {}
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if cp_id not in line or f"[{app}]" not in line:
                        continue
                    m = re.search(r"(\d{2}:\d{2}:\d{2}\.\d+)", line)
                    if not m:
                        continue
                    h, mi, s = m.group(1).split(":")
                    t = int(h) * 3600 + int(mi) * 60 + float(s)
                    if "dumping" in line:
                        times["start"] = t
                    elif "shipping" in line:
                        times["end"] = t
        except OSError:
            return None
        if "start" in times and "end" in times:
            return round((times["end"] - times["start"]) * 1000)
        return None

    # ------------------------------------------------------------------ the run

    def run(self):
        os.makedirs(self.work, exist_ok=True)
        self.results["sync_write_ms"] = self.sync_write_ms()
        fs = subprocess.run(["stat", "-f", "-c", "%T", self.work], capture_output=True, text=True).stdout.strip()
        self.results["state_dir"] = f"{self.state_dir} ({fs})"
        only = set(self.args.only.split(",")) if self.args.only else set(SECTIONS)
        unknown = only - set(SECTIONS)
        if unknown:
            raise BenchError(f"--only: no section {', '.join(sorted(unknown))} (sections: {', '.join(SECTIONS)})")
        if self.args.extra_config:
            with open(self.args.extra_config) as f:
                self.results["notes"].append("every node also had this configuration: `" + " ".join(f.read().split()) + "`")
        if only != set(SECTIONS):
            self.results["notes"].append(f"only these sections were run: {', '.join(sorted(only))}")
        try:
            if "cost" in only:
                for s in self.p["standbys"]:
                    log(f"a. cost while nothing fails, {s} standby(s)")
                    self.cost(s)
            if "failover" in only:
                log("b. failover: crashes of the primary")
                self.failover()
            if "alternatives" in only:
                log("c. alternatives: cold start, restore-only")
                self.alternatives()
            if "checkpoints" in only:
                log("d. checkpoints by memory size")
                self.checkpoints()
            if "sweep" in only and self.p["sweep"]:
                log("e. failover sweep: memory, connections, checkpoint interval")
                self.sweep()
            elif "sweep" in only:
                self.results["sweep_skipped"] = f"the failover sweep is not part of --{self.args.mode} (it takes several minutes)"
        except KeyboardInterrupt:
            # Ctrl-C (or SIGINT from a deadline): what was measured is still written, and the report says it stopped.
            log("interrupted: writing the report with what was measured so far")
            self.results["notes"].append(f"the run was interrupted after {round(time.time() - self.started)} s; "
                                         "sections after the point reached are missing or partial")
        finally:
            self.lab("down", check=False, quiet=True)
        self.results["elapsed_s"] = round(time.time() - self.started)
        self.results["ballast_mb"] = self.p["ballast"]
        self.results["fail_conns"] = self.p["fail_conns"]
        self.results["fail_interval_ms"] = self.p["fail_interval_ms"]
        self.results["checkpoint_interval"] = CHECKPOINT_INTERVAL
        self.results["alt_timeout_s"] = self.p["alt_timeout_s"]
        self.results["crashes"] = self.p["crashes"]
        self.results["loadavg"] = self.load_samples
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump(self.results, f, indent=2)
        import report
        report.write(self.results, self.out, self.fig_dir, self.root)
        log(f"wrote {self.out} in {self.results['elapsed_s']} s")


REPLAY_LINE = re.compile(r"Replay of (\d+): the restored program sent")
LOG_TIME = re.compile(r"\]\[(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2}):(\d{2}\.\d+)Z\]")


def log_time(line):
    """The UTC time (epoch seconds) of a node log line '[INFO][11/30/2026 11:56:15.103Z]...', or None."""
    m = LOG_TIME.search(line[:60])
    if not m:
        return None
    mo, d, y, h, mi, sec = m.groups()
    whole = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), tzinfo=datetime.timezone.utc).timestamp()
    return whole + float(sec)


def iso_time(text):
    """'2026-11-30T12:42:04.8433445+00:00' (.NET's round-trip format) as epoch seconds, or None."""
    m = re.match(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$", text or "")
    if not m:
        return None
    tz = m.group(3) or "+00:00"
    base = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if tz == "Z" else tz))
    return base.timestamp() + (float(m.group(2)) if m.group(2) else 0.0)


def interval_s(text):
    """'5s', '500ms', '1m' as seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m)", text.strip())
    if not m:
        return 5.0
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


STAGE_LINE = re.compile(r'^(continuity_path_stage_seconds|continuity_standby_batch_packets)_(bucket|sum|count)\{([^}]*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_stage_histograms(text, app):
    """The stage histograms of /metrics for one app: {(stage, standby): {"buckets": [(le, cumulative)], "sum", "count"}}.
    batch-packets comes as its own family; it is filed under the stage name batch-packets."""
    out = {}
    for line in text.splitlines():
        m = STAGE_LINE.match(line)
        if not m:
            continue
        family, part, labels, value = m.groups()
        lab = dict(LABEL.findall(labels))
        if lab.get("app") != app:
            continue
        stage = lab.get("stage", "batch-packets")
        h = out.setdefault((stage, lab.get("standby")), {"buckets": [], "sum": 0.0, "count": 0})
        if part == "bucket":
            le = float("inf") if lab["le"] == "+Inf" else float(lab["le"])
            h["buckets"].append((le, float(value)))
        elif part == "sum":
            h["sum"] = float(value)
        else:
            h["count"] = float(value)
    return out


def histogram_quantile(q, buckets):
    """Prometheus's histogram_quantile over cumulative (le, count) pairs: linear inside the bucket that holds the rank;
    a rank in the +Inf bucket is reported as the largest finite bound."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank and n > prev_n:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = (le if le != float("inf") else prev_le), n
    return prev_le


def stage_delta(before, after, primary):
    """Per stage, what happened between two readings of every node's histograms: batches, p50, p99 and mean (µs for
    times, packets for batch-packets). A histogram that restarted in between (new epoch, log restarted) counts from zero."""
    rows = []
    for key, a in sorted(after.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        node, stage, standby = key
        b = (before or {}).get(key)
        if b is None or b["count"] > a["count"]:
            b = {"buckets": [(le, 0.0) for le, _ in a["buckets"]], "sum": 0.0, "count": 0}
        prior = dict(b["buckets"])
        buckets = [(le, n - prior.get(le, 0.0)) for le, n in a["buckets"]]
        count = a["count"] - b["count"]
        if count <= 0:
            continue
        scale = 1 if stage == "batch-packets" else 1e6
        q = lambda p: None if histogram_quantile(p, buckets) is None else round(histogram_quantile(p, buckets) * scale, 1)
        rows.append({"node": node, "role": "primary" if node == primary else "standby", "stage": stage, "standby": standby,
                     "count": int(count), "p50": q(0.5), "p99": q(0.99), "mean": round((a["sum"] - b["sum"]) / count * scale, 1),
                     "unit": "packets" if stage == "batch-packets" else "us"})
    return rows


def sweep_point(text):
    """A --sweep-point argument: program memory in MB, connections, checkpoint interval (e.g. 10/100/5s)."""
    m = re.fullmatch(r"(\d+)/(\d+)/(\d+(?:ms|s))", text.strip())
    if not m or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not MB/CONNECTIONS/INTERVAL: write e.g. 10/100/5s "
                                         "(memory in MB, at least 1 connection, an interval in s or ms)")
    return int(m.group(1)), int(m.group(2)), m.group(3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(PROFILES), default="full")
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--state-dir", default=f"/var/lib/continuity-lab-{INSTANCE}")
    ap.add_argument("--crashes", type=int)
    ap.add_argument("--extra-config", help="a HOCON file added to every node's configuration (to compare a setting)")
    ap.add_argument("--only", help="comma-separated sections to run (cost, failover, alternatives, checkpoints, sweep); default all")
    ap.add_argument("--report-only", help="rewrite the report from a results.json")
    ap.add_argument("--sweep-point", action="append", type=sweep_point,
                    help="MB/CONNECTIONS/INTERVAL, e.g. 10/100/5s (repeatable): only these points in the sweep")
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.report_only:
        import report
        with open(args.report_only) as f:
            report.write(json.load(f), os.path.abspath(args.out), os.path.dirname(os.path.abspath(args.out)), args.root)
        return 0
    try:
        Bench(args).run()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
