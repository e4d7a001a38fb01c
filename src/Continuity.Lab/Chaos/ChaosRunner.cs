using System.Diagnostics;
using System.Text.RegularExpressions;
using Continuity.Lab.Apps;

namespace Continuity.Lab.Chaos;

/// <summary>What one run found: no problem means it passed.</summary>
/// <param name="WorstStallMs">The client's longest wait for one reply, if it got as far as a verdict.</param>
/// <param name="What">What the fault did, in words (which node, which checkpoint phase, for how long).</param>
/// <param name="KeptLogs">Where a failing run's logs were copied.</param>
/// <param name="Failover">The primary after the run is another node than before it (a short hang or partition may pass unnoticed).</param>
internal sealed record RunResult(PlannedRun Run, IReadOnlyList<string> Problems, long? WorstStallMs, TimeSpan Took, string What, string? KeptLogs,
    bool Failover = false)
{
    public bool Failed => Problems.Count > 0;
}

/// <summary>A run cannot go on: what was seen so far is its verdict.</summary>
internal sealed class RunFailed(string message) : Exception(message);

/// <summary>
/// 'continuity-lab chaos': a 3-node lab protecting ct-kv, and for each planned run a verifying client, a fault at a
/// seeded moment, and the checks: the client's verdict (every acknowledged byte exactly once, no reset, no EOF, no
/// reply timeout), at most one node carrying the VIP at every sample, and the cluster back to one primary and two
/// ready standbys. The lab is reused from run to run (the recovery is part of what is checked) and rebuilt after a
/// failing run, so that one failure does not spoil the next runs.
/// </summary>
internal sealed class ChaosRunner(Lab lab, ChaosCommand command, TextWriter output)
{
    public const string AppName = "kv";
    private const int TcpPort = 7000, UdpPort = 7001;
    private const int DataNodes = 3;
    /// <summary>Failure detection on a loaded 2-core machine takes 10-35 s; these bounds are far above it.</summary>
    private static readonly TimeSpan ProtectTimeout = TimeSpan.FromSeconds(150);
    private static readonly TimeSpan FailoverTimeout = TimeSpan.FromSeconds(120);
    /// <summary>A reply may wait through a hang (up to 30 s) followed by a failover (up to 35 s).</summary>
    private const int ReplyTimeoutSeconds = 100;

    private readonly Topology _topology = lab.Topology;
    private readonly string _stateDir = lab.StateDir;
    private readonly string _repo = Lab.FindRepoRoot()
        ?? throw new LabException("cannot find the Continuity repository: set CONTINUITY_HOME to the repository root");
    private string Vip => _topology.Address(50);
    private bool _labIsUp;
    private TextWriter _log = TextWriter.Null;
    private readonly Stopwatch _runClock = new();

    public int Run()
    {
        foreach (var program in new[] { Lab.NodeProgram, KvClient.Program, KvServer })
            if (!File.Exists(Path.Combine(_repo, program)))
                throw new LabException($"{Path.Combine(_repo, program)} is not built: build it with {Path.Combine(_repo, "deploy/build.sh")}");
        // chaos builds and removes a lab of its own: it must never take down a lab somebody is using.
        var existing = Network.LabNamespaces(_topology);
        if (File.Exists(LabState.PathIn(_stateDir)) || existing.Count > 0)
            throw new LabException($"a lab already exists on instance {_topology.Instance} ({(existing.Count > 0 ? string.Join(", ", existing) : LabState.PathIn(_stateDir))}): " +
                                   "chaos builds and removes its own lab, so run it on a free instance (for example --instance 2) " +
                                   $"or remove that lab first with 'continuity-lab --instance {_topology.Instance} down'");
        var plan = ChaosPlan.Make(command.Seed, command.Runs, command.Scenarios);
        var report = new ChaosReport(command, _topology.Instance, Replay);
        // Written once before the first run: a report path that cannot be written should cost nothing to fix.
        WriteReport(report);
        var config = WriteAppConfig();
        output.WriteLine($"chaos: {plan.Count} run(s), seed {command.Seed}, lab instance {_topology.Instance} ({_topology.Subnet}), " +
                         $"log {SessionLog}");
        try
        {
            foreach (var run in plan)
            {
                output.WriteLine($"[{run.Number}/{plan.Count}] {run.Scenario.Name} (seed {run.Seed}) ...");
                var result = RunOne(run, config);
                report.Add(result);
                output.WriteLine(result.Failed
                    ? $"[{run.Number}/{plan.Count}] {run.Scenario.Name} FAILED after {result.Took.TotalSeconds:0} s: {result.What}\n" +
                      string.Concat(result.Problems.Select(p => $"    - {p}\n")) +
                      $"    logs: {result.KeptLogs}\n    replay: {Replay(run)}"
                    : $"[{run.Number}/{plan.Count}] {run.Scenario.Name} ok in {result.Took.TotalSeconds:0} s, worst stall {result.WorstStallMs} ms: {result.What}");
                // Written after every run: a long session stopped half way still leaves its numbers.
                WriteReport(report);
            }
        }
        finally
        {
            Quietly(() => NewLab(TextWriter.Null).Down(quiet: true));
        }
        output.WriteLine();
        output.WriteLine(report.Table());
        if (command.ReportFile is not null) output.WriteLine($"report written to {command.ReportFile}");
        return report.Failures == 0 ? 0 : Program.ExitFailure;
    }

    private const string KvServer = "build/testserver/ct-kv";

    private void WriteReport(ChaosReport report)
    {
        if (command.ReportFile is null) return;
        try
        {
            var path = Path.GetFullPath(command.ReportFile);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, report.Markdown());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LabException($"cannot write the report --report {command.ReportFile}: {e.Message}; choose a writable path");
        }
    }
    private string SessionLog => Path.Combine(_stateDir, "chaos.log");

    private string Replay(PlannedRun run) =>
        $"{Path.Combine(_repo, "bin", "continuity-lab")} --instance {_topology.Instance} {run.ReplayArguments}";

    private Lab NewLab(TextWriter writer) => new(_stateDir, _topology, writer, writer);

    /// <summary>The application every run protects: ct-kv with some resident memory, so a checkpoint takes long enough to aim at.</summary>
    private string WriteAppConfig()
    {
        Directory.CreateDirectory(_stateDir);
        var file = Path.Combine(_stateDir, "chaos-kv.hocon");
        File.WriteAllText(file, $$"""
            # Written by 'continuity-lab chaos'.
            continuity.apps.{{AppName}} {
              command = ["{{Path.Combine(_repo, KvServer)}}", "--tcp", "{{TcpPort}}", "--udp", "{{UdpPort}}", "--ballast-mb", "16"]
              vip = "{{Vip}}/{{Topology.PrefixLength}}"
              ports = ["tcp/{{TcpPort}}", "udp/{{UdpPort}}"]
              checkpoint-interval = 2s
              recovery = replay
            }
            """);
        return file;
    }

    // ------------------------------------------------------------------ one run

    private RunResult RunOne(PlannedRun run, string config)
    {
        _runClock.Restart();
        var runLog = new StringWriter();
        using var session = new StreamWriter(SessionLog, append: true) { AutoFlush = true };
        _log = new TeeWriter(runLog, session);
        Log($"=== run {run.Number} {run.Scenario.Name} seed {run.Seed}: delay {run.FaultDelay.TotalSeconds:0.0} s, length {run.FaultLength.TotalSeconds:0.0} s, " +
            $"standby #{run.Standby}, share {run.Share}, phase {run.CheckpointPhase} ===");
        var problems = new List<string>();
        long? stall = null;
        var what = "";
        string? before = null, after = null;
        VipSampler? sampler = null;
        KvClient? client = null;
        try
        {
            if (!_labIsUp)
            {
                Log("bringing the lab up");
                if (NewLab(_log).Up(new UpCommand(DataNodes, config, Witness: false, NoNodes: false, TimeSpan.FromSeconds(150))) != 0)
                    throw new RunFailed("the lab did not come up");
                _labIsUp = true;
            }
            var primary = before = WaitProtected(ProtectTimeout, "before the fault");
            Log($"protected: primary {primary}");
            var members = State().Members.ToList();
            sampler = new VipSampler(members, Vip, Topology.Of(members[0].Instance).NamespaceOf(Topology.ClientName), Log);

            var idle = run.Scenario.Idle;
            var connections = idle ? 4 : 16;
            var udpFlows = idle ? 1 : 4;
            client = new KvClient(_repo, _topology.NamespaceOf(Topology.ClientName),
                KvClient.Arguments($"{Vip}:{TcpPort}", connections, intervalMs: idle ? 1000 : 50, durationSeconds: 0,
                    ReplyTimeoutSeconds, udpFlows, UdpPort, verbose: true),
                connections, udp: true);
            WaitCovered(client, primary);
            Thread.Sleep(run.FaultDelay);

            what = Inject(run, primary);
            Log($"fault: {what}");
            var servedBy = WaitForPrimary(FailoverTimeout, "after the fault");
            Log($"serving again: primary {servedBy}");
            WaitSettled(client);

            var text = client.Stop(TimeSpan.FromSeconds(15));
            Log("client output:\n" + text.TrimEnd());
            var result = ClientResult.Parse(text);
            if (result is null) problems.Add("the client printed no RESULT line");
            else
            {
                stall = result.LongestStallMs;
                problems.AddRange(result.Problems(connections, udp: true, minRequests: 3L * connections));
            }

            Restore();
            var back = after = WaitProtected(ProtectTimeout, "after the fault");
            Log($"back to one primary ({back}) and {DataNodes - 1} ready standbys after {_runClock.Elapsed.TotalSeconds:0} s");
        }
        catch (RunFailed e) { problems.Add(e.Message); }
        catch (LabException e) { problems.Add("lab: " + e.Message); }
        // A long unattended session must go on after one odd run: the error is that run's verdict, the lab rebuilt.
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            problems.Add($"chaos runner error ({e.GetType().Name}): {e.Message}");
        }
        finally
        {
            if (sampler is not null)
            {
                sampler.Dispose();
                problems.AddRange(sampler.Problems);
            }
            if (client is not null && !client.HasExited)
            {
                var text = client.Stop(TimeSpan.FromSeconds(15));
                Log("client output (stopped after a failure):\n" + text.TrimEnd());
                if (ClientResult.Parse(text) is { } r)
                {
                    stall = r.LongestStallMs;
                    if (problems.Count > 0) problems.AddRange(r.Problems(client.Connections, true, 0).Where(p => p.StartsWith("client failed")));
                }
            }
            client?.Dispose();
        }

        string? kept = null;
        if (problems.Count > 0)
        {
            kept = NodeLogs.Keep(_repo, _stateDir, $"chaos-{DateTime.UtcNow:yyyyMMdd-HHmmss}-run{run.Number}-{run.Scenario.Name}-seed{run.Seed}");
            Log("problems:\n" + string.Join("\n", problems.Select(p => "  - " + p)));
            File.WriteAllText(Path.Combine(kept, "chaos-run.log"), runLog.ToString());
            // The next run starts from a new lab: whatever state this failure left must not count against it.
            _labIsUp = false;
        }
        _log = TextWriter.Null;
        return new RunResult(run, problems, stall, _runClock.Elapsed, what, kept, Failover: after is not null && after != before);
    }

    // ------------------------------------------------------------------ faults

    private string Inject(PlannedRun run, string primary)
    {
        var state = State();
        var lab = NewLab(_log);
        var length = run.FaultLength;
        switch (run.Scenario.Fault)
        {
            case FaultKind.CrashPrimary:
                lab.Crash(new CrashCommand(primary, null));
                AwaitFailoverFrom(primary);
                return $"crashed primary {primary}";

            case FaultKind.CrashPrimaryDuringCheckpoint:
            {
                var line = WaitForLogLine(primary, new Regex($@"\[{AppName}\] checkpoint (\S+?):.*{run.CheckpointPhase}"), TimeSpan.FromSeconds(30));
                lab.Crash(new CrashCommand(primary, null));
                AwaitFailoverFrom(primary);
                return $"crashed primary {primary} while checkpoint {line.Groups[1].Value} was {run.CheckpointPhase}";
            }

            case FaultKind.HangPrimary:
            {
                var node = state.Host(primary);
                var pids = Network.PidsIn(node.Namespace).Concat(node.Pid is { } p ? Os.ProcessTree(p) : []).Distinct().ToList();
                // The kernel keeps answering for a frozen node's VIP until its lease runs out: the sampler counts it.
                foreach (var pid in pids) Os.Kill(pid, Os.SIGSTOP);
                Log($"SIGSTOP {primary}: {pids.Count} processes");
                Thread.Sleep(length);
                foreach (var pid in pids) Os.Kill(pid, Os.SIGCONT);
                return $"hung primary {primary} ({pids.Count} processes) for {length.TotalSeconds:0.0} s";
            }

            case FaultKind.CrashStandby:
            {
                var standby = Standbys(primary)[run.Standby % (DataNodes - 1)];
                lab.Crash(new CrashCommand(standby, null));
                Thread.Sleep(length);
                lab.Revive(new ReviveCommand(standby));
                return $"crashed standby {standby}, revived after {length.TotalSeconds:0.0} s";
            }

            case FaultKind.PartitionPrimary:
                lab.Partition(new PartitionCommand([primary]));
                Thread.Sleep(length);
                lab.Heal(new HealCommand());
                return $"partitioned primary {primary} for {length.TotalSeconds:0.0} s";

            case FaultKind.DropReplication:
            case FaultKind.DuplicateReplication:
            {
                var duplicate = run.Scenario.Fault == FaultKind.DuplicateReplication;
                var nodes = state.Members.ToList();
                var ports = nodes.Select(n => n.ClusterPort).ToList();
                try
                {
                    foreach (var node in nodes) Network.Impair(node, nodes.Where(n => n != node).ToList(), ports, run.Share, duplicate);
                    Thread.Sleep(length);
                }
                finally
                {
                    foreach (var node in nodes) Network.Unimpair(node.Namespace);
                }
                return $"{(duplicate ? "duplicated" : "dropped")} {run.Share:P0} of cluster-port segments between nodes for {length.TotalSeconds:0.0} s";
            }

            case FaultKind.KillPrimaryNode:
            {
                var node = state.Host(primary);
                if (node.Pid is not { } pid || !Os.IsAlive(pid, node.StartTime)) throw new RunFailed($"{primary}'s node process is not running");
                Os.Kill(pid, Os.SIGKILL);
                Thread.Sleep(200); // for the node itself to be gone from the listing
                var orphans = Network.PidsIn(node.Namespace).Where(p => Os.IsAlive(p, null)).ToList();
                Log($"SIGKILL {primary}'s continuity-node (pid {pid}); left in its namespace: {string.Join(", ", orphans.Select(Describe))}");
                AwaitFailoverFrom(primary);
                // Its supervisor starts the node process again, and (unlike systemd with KillMode=control-group) leaves
                // the orphaned program alone: the new run must end it, and its VIP, fence and rules.
                lab.Revive(new ReviveCommand(primary), reboot: false);
                // A criu dump the kill interrupted ends by itself: its action script resumes after at most 60 s without
                // the node (CriuOptions.WhileFrozenTimeout).
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(75);
                while (orphans.Any(p => Os.IsAlive(p, null)) && DateTime.UtcNow < deadline) Thread.Sleep(200);
                if (orphans.FirstOrDefault(p => Os.IsAlive(p, null)) is var left && left != 0)
                    throw new RunFailed($"{primary}'s restarted node left its predecessor's {Describe(left)} running for 75 s");
                return $"killed {primary}'s continuity-node (pid {pid}) with {orphans.Count} process(es) left running " +
                       $"({string.Join(", ", orphans.Select(Describe))}); restarted the node process, which ended them";
            }

            default:
                throw new InvalidOperationException($"unhandled fault {run.Scenario.Fault}");
        }
    }

    private static string Describe(int pid)
    {
        try { return $"{File.ReadAllText($"/proc/{pid}/comm").Trim()}({pid})"; }
        catch (IOException) { return pid.ToString(); }
    }

    /// <summary>Puts the lab back whole: partitions healed, impairments removed, every dead node's machine rebooted.</summary>
    private void Restore()
    {
        var lab = NewLab(_log);
        var state = State();
        if (state.Partitions.Count > 0) lab.Heal(new HealCommand());
        foreach (var node in state.Members)
        {
            Network.Unimpair(node.Namespace);
            if (!node.Crashed && node.Pid is { } pid && Os.IsAlive(pid, node.StartTime)) continue;
            // A node process that died (killed, or gone after it was downed) may leave its program running: a
            // machine reboot, which is what an operator would do, is a crash and a revive.
            if (!node.Crashed) lab.Crash(new CrashCommand(node.Name, null));
            lab.Revive(new ReviveCommand(node.Name));
        }
    }

    /// <summary>
    /// What the node's supervisor does (systemd's Restart=on-failure): a node process that exited, most often because
    /// the cluster downed it after the fault (status 3), is started again as it is, program and addresses left to it.
    /// </summary>
    private void RestartExited(LabState state)
    {
        foreach (var node in state.Members.Where(m => !m.Crashed && m.Pid is { } pid && !Os.IsAlive(pid, m.StartTime)))
        {
            Log($"{node.Name}'s node process has exited: its supervisor starts it again");
            NewLab(_log).Revive(new ReviveCommand(node.Name), reboot: false);
        }
    }

    // ------------------------------------------------------------------ waiting and judging

    private LabState State() => LabState.Load(_stateDir);

    private static bool Alive(LabHost h) => !h.Crashed && h.Pid is { } pid && Os.IsAlive(pid, h.StartTime);

    /// <summary>What every live data node says of the app (nodes that do not answer are left out).</summary>
    private List<(string Node, AppStatus App)> Ask()
    {
        using var mgmt = new Management(Management.ReadToken(_stateDir), TimeSpan.FromSeconds(3));
        var answers = new List<(string, AppStatus)>();
        foreach (var node in State().Members.Where(Alive))
            if (mgmt.App(node, AppName).Value is { } app) answers.Add((node.Name, app));
        return answers;
    }

    private List<string> Standbys(string primary) =>
        State().Members.Select(m => m.Name).Where(n => n != primary).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Until every data node is alive, sees all members Up, and every answering node names the same primary with
    /// all the other data nodes as ready standbys: the cluster as it was before the fault.
    /// </summary>
    private string WaitProtected(TimeSpan timeout, string when)
    {
        var clock = Stopwatch.StartNew();
        var last = "";
        while (true)
        {
            var state = State();
            var members = state.Members.ToList();
            using var mgmt = new Management(Management.ReadToken(_stateDir), TimeSpan.FromSeconds(3));
            var views = members.Where(Alive).Select(m => (m.Name, Cluster: mgmt.Cluster(m).Value, App: mgmt.App(m, AppName).Value)).ToList();
            var primaries = views.Select(v => v.App?.Primary).Distinct().ToList();
            var ok = views.Count == members.Count
                     && views.All(v => v.Cluster is { } c && c.Members.Count == members.Count && c.UpCount == members.Count)
                     && views.All(v => v.App is { } a && a.ReadyStandbys == members.Count - 1 && a.Standbys.Count == members.Count - 1)
                     && primaries.Count == 1 && primaries[0] is not null;
            if (ok) return primaries[0]!;
            RestartExited(state);
            last = string.Join("; ", views.Select(v =>
                $"{v.Name}: {(v.Cluster is { } c ? $"{c.UpCount}/{c.Members.Count} Up" : "no cluster view")}, " +
                $"{(v.App is { } a ? $"primary {a.Primary ?? "none"}, {a.ReadyStandbys}/{a.Standbys.Count} standbys ready, {a.State}" : "no app view")}"));
            if (members.Count(Alive) < members.Count) last += $"; not running: {string.Join(", ", members.Where(m => !Alive(m)).Select(m => m.Name))}";
            if (clock.Elapsed > timeout)
                throw new RunFailed($"not back to one primary and {members.Count - 1} ready standbys within {timeout.TotalSeconds:0} s {when} ({last})");
            Thread.Sleep(1000);
        }
    }

    /// <summary>Until a node whose process runs serves the app as primary (a crashed or killed primary's claim does not count).</summary>
    private string WaitForPrimary(TimeSpan timeout, string when)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var alive = State().Members.Where(Alive).Select(m => m.Name).ToHashSet();
            var primary = Ask().Select(a => a.App.Primary).FirstOrDefault(p => p is not null && alive.Contains(p));
            if (primary is not null) return primary;
            if (clock.Elapsed > timeout) throw new RunFailed($"no live node became primary within {timeout.TotalSeconds:0} s {when}");
            Thread.Sleep(500);
        }
    }

    /// <summary>Until the live nodes name a primary other than <paramref name="old"/>: the fault was noticed.</summary>
    private void AwaitFailoverFrom(string old)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var alive = State().Members.Where(Alive).Select(m => m.Name).ToHashSet();
            if (Ask().Any(a => a.App.Primary is { } p && p != old && alive.Contains(p))) return;
            if (clock.Elapsed > FailoverTimeout)
                throw new RunFailed($"no failover away from {old} within {FailoverTimeout.TotalSeconds:0} s");
            Thread.Sleep(500);
        }
    }

    /// <summary>
    /// Until every connection has been answered and every standby holds a checkpoint taken after that: only then are
    /// the connections in what a standby can restore (younger ones are reset by design, see the README).
    /// </summary>
    private void WaitCovered(KvClient client, string primary)
    {
        var clock = Stopwatch.StartNew();
        while (client.AllAnsweredAt is null)
        {
            if (client.HasExited) throw new RunFailed($"the client ended before every connection was answered:\n{client.Output.TrimEnd()}");
            if (clock.Elapsed > TimeSpan.FromSeconds(90)) throw new RunFailed("the client's connections were not all answered within 90 s");
            Thread.Sleep(100);
        }
        var answered = client.AllAnsweredAt.Value;
        using var mgmt = new Management(Management.ReadToken(_stateDir), TimeSpan.FromSeconds(3));
        var node = State().Host(primary);
        while (true)
        {
            var since = (DateTime.UtcNow - answered).TotalMilliseconds;
            if (mgmt.App(node, AppName).Value is { } app && app.Standbys.Count > 0
                && app.Standbys.All(s => s.CheckpointAgeMs is { } age && age < since - 200))
                return;
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
                throw new RunFailed("the standbys held no checkpoint covering the client's connections within 60 s of their first replies");
            Thread.Sleep(200);
        }
    }

    /// <summary>
    /// Until the client shows, at a progress line at least 3 s after this call, replies beyond those of the first
    /// such line and no request older than 2 s: every connection is served again. A connection left hanging keeps
    /// its request pending until the client's own reply timeout fails the run.
    /// </summary>
    private void WaitSettled(KvClient client)
    {
        var start = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        long? repliesAtStart = null;
        while (true)
        {
            if (client.HasExited) return; // it failed: its RESULT line says why
            if (client.Progress is { } p && p.At > start)
            {
                repliesAtStart ??= p.Replies;
                if (p.At > start.AddSeconds(3) && p.Replies > repliesAtStart && p.OldestPendingMs < 2000) return;
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(ReplyTimeoutSeconds + 30))
                throw new RunFailed($"the client was not served normally within {ReplyTimeoutSeconds + 30} s after the failover " +
                                    $"(last progress: {client.Progress?.ToString() ?? "none"})");
            Thread.Sleep(200);
        }
    }

    /// <summary>Waits for the next line of the node's log, written after this call, that matches.</summary>
    private Match WaitForLogLine(string node, Regex pattern, TimeSpan timeout) =>
        NodeLogs.WaitForLine(_stateDir, node, pattern, timeout)
        ?? throw new RunFailed($"no line matching {pattern} in {node}'s log within {timeout.TotalSeconds:0} s");

    private void Log(string line) => _log.WriteLine($"[{DateTime.UtcNow:HH:mm:ss.fff} +{_runClock.Elapsed.TotalSeconds,6:0.0} s] {line}");

    private static void Quietly(Action action)
    {
        try { action(); } catch (LabException) { }
    }

    /// <summary>Writes to two writers: the run's own log (kept when it fails) and the session's.</summary>
    private sealed class TeeWriter(TextWriter a, TextWriter b) : TextWriter
    {
        private readonly object _gate = new();
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
        public override void Write(char value) { lock (_gate) { a.Write(value); b.Write(value); } }
        public override void Write(string? value) { lock (_gate) { a.Write(value); b.Write(value); } }
        public override void WriteLine(string? value) { lock (_gate) { a.WriteLine(value); b.WriteLine(value); } }
    }
}
