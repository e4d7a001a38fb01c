using System.Diagnostics;
using System.Text.RegularExpressions;
using Continuity.Core.Platform;
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
/// 'continuity-lab chaos': a lab of 3 data nodes and 2 witnesses (5 members) protecting ct-kv, and for each planned run a verifying client, a fault at a
/// seeded moment, and the checks: the client's verdict (every acknowledged byte exactly once, no reset, no EOF, no
/// reply timeout), at most one node carrying the VIP at every sample, and the cluster back to one primary and two
/// ready standbys. The lab is reused from run to run (the recovery is part of what is checked) and rebuilt after a
/// failing run, so that one failure does not spoil the next runs.
/// </summary>
internal sealed class ChaosRunner(Lab lab, ChaosCommand command, TextWriter output)
{
    public const string AppName = "kv";
    private const int TcpPort = 7000, UdpPort = 7001;
    internal const int DataNodes = 3;
    /// <summary>
    /// Two witnesses make five members, an odd number: every split has a side with a majority, never a tie decided by
    /// keep-majority's address tie-break (with one witness, split-minority was a 2-2 tie, and late heartbeats on a
    /// loaded machine then made every member down itself). After two data nodes are lost (crash-restore,
    /// crash-replay) the third and the witnesses are still three of five.
    /// </summary>
    internal const int Witnesses = 2;
    /// <summary>
    /// Each node's state directory is a tmpfs of its own (up --state-size), so journal-full can fill one standby's
    /// disk and no other; room for the journal and a few checkpoints of ct-kv's 16 MB.
    /// </summary>
    private const string StateSize = "256M";
    /// <summary>Failure detection on a loaded 2-core machine takes 10-35 s; these bounds are far above it.</summary>
    private static readonly TimeSpan ProtectTimeout = TimeSpan.FromSeconds(150);
    private static readonly TimeSpan FailoverTimeout = TimeSpan.FromSeconds(120);
    // The management API's own ask timeout. A node starved of CPU (a lab checkpointing 16 MB every 2 s on 2 shared
    // cores) answers its views seconds late; the runner judges the cluster's state, not the API's speed.
    private static readonly TimeSpan ViewTimeout = TimeSpan.FromSeconds(10);
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
        if (command.FaultLength is { } length) plan = plan.Select(r => r with { FaultLength = length, FaultLengthGiven = true }).ToList();
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
        var runStartedAt = DateTime.UtcNow;
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
                if (NewLab(_log).Up(new UpCommand(DataNodes, config, Witnesses, NoNodes: false, TimeSpan.FromSeconds(150), StateSize)) != 0)
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
            // A run that failed with the disk full must not leave the filler running into the next lab.
            Quietly(Unfill);
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
            NodeLogs.WriteDigest(kept, runLog.ToString(), runStartedAt);
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

            case FaultKind.CrashPrimaryBetweenAckAndVerdict:
            {
                var node = state.Host(primary);
                var failpoints = Lab.FailpointsDir(Path.Combine(_stateDir, primary));
                var reached = Path.Combine(failpoints, Failpoints.AckedNotReleased + ".reached");
                File.Delete(reached);
                File.WriteAllText(Path.Combine(failpoints, Failpoints.AckedNotReleased), "");
                var clock = Stopwatch.StartNew();
                while (!(File.Exists(reached) && node.Pid is { } pid && Os.State(pid) == 'T'))
                {
                    if (clock.Elapsed > TimeSpan.FromSeconds(30))
                    {
                        File.Delete(Path.Combine(failpoints, Failpoints.AckedNotReleased));
                        throw new RunFailed($"{primary}'s node did not stop at fail point {Failpoints.AckedNotReleased} within 30 s " +
                                            "(no packet released under load?)");
                    }
                    Thread.Sleep(5);
                }
                var held = File.ReadAllText(reached).Trim();
                Log($"{primary} stopped at its fail point after {clock.ElapsedMilliseconds} ms: {held}");
                lab.Crash(new CrashCommand(primary, null));
                File.Delete(reached);
                AwaitFailoverFrom(primary);
                return $"crashed primary {primary} between acknowledgement and verdict ({held})";
            }

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

            case FaultKind.ReorderReplication:
            {
                var nodes = state.Members.ToList();
                var ports = nodes.Select(n => n.ClusterPort).ToList();
                var before = nodes.ToDictionary(n => n.Name, n => OutOfOrder(n.Namespace));
                long drops = 0;
                try
                {
                    foreach (var node in nodes) Network.Reorder(node, nodes.Where(n => n != node).ToList(), ports, run.Share);
                    Thread.Sleep(length);
                    drops = nodes.Sum(n => Network.SlowLaneDrops(n.Namespace));
                }
                finally
                {
                    foreach (var node in nodes) Network.Unimpair(node.Namespace);
                }
                var ofo = nodes.Sum(n => OutOfOrder(n.Namespace) - before[n.Name]);
                Log($"out-of-order segments queued by the nodes' TCP (TcpExt TCPOFOQueue) during the fault: {ofo}; slow-lane drops: {drops}");
                return $"held back {run.Share:P0} of the cluster-port segments (up to one MTU) between nodes in a 1 Mbit/s lane for " +
                       $"{length.TotalSeconds:0.0} s: {ofo} segments arrived out of order, {drops} dropped by the lane";
            }

            case FaultKind.CrashTakeoverDuringRestore:
            case FaultKind.CrashTakeoverDuringReplay:
            {
                var restore = run.Scenario.Fault == FaultKind.CrashTakeoverDuringRestore;
                var standbys = Standbys(primary);
                using var watch = new NodeLogs.Follower(_stateDir, standbys);
                lab.Crash(new CrashCommand(primary, null));
                var (second, line) = watch.Next(new Regex($@"\[{AppName}\] taking over as primary of epoch (\d+)"), FailoverTimeout)
                                     ?? throw new RunFailed($"no standby started taking over within {FailoverTimeout.TotalSeconds:0} s of the crash of {primary}");
                Log($"{second} takes over (epoch {line.Groups[1].Value}); waiting for its {(restore ? "restore" : "replay")}");
                var phase = WaitForTakeoverPhase(state.Host(second), restore, TimeSpan.FromSeconds(20));
                // Read just before the crash, not after: between the links going down and the SIGKILL (up to 2 s on
                // this loaded machine) the takeover may fail on the dead link and clean its rules up.
                var rules = VipRulesAtCrash(state.Host(second));
                lab.Crash(new CrashCommand(second, null));
                Log($"crashed {second} during its takeover: {phase}; {rules}");
                AwaitFailoverFrom(second);
                return $"crashed primary {primary}, then {second} while it took over ({phase}; {rules}); the third data node took over";
            }

            case FaultKind.SplitPrimaryInMajority:
            case FaultKind.SplitPrimaryInMinority:
            {
                var majority = run.Scenario.Fault == FaultKind.SplitPrimaryInMajority;
                var witnesses = state.Members.Where(m => m.Kind == HostKind.Witness).Select(m => m.Name).Order(StringComparer.Ordinal).ToList();
                var side = PrimarySide(majority, primary, Standbys(primary), witnesses, run.Standby);
                // Partition cuts the group named off from every member outside it: one cut, two sides.
                lab.Partition(new PartitionCommand(side));
                Thread.Sleep(length);
                // Who the split made stop (a downed node's process exits), read before the heal lets anything rejoin.
                var gone = State().Members.Where(m => !Alive(m)).Select(m => m.Name).ToList();
                lab.Heal(new HealCommand());
                var others = state.Members.Select(m => m.Name).Where(n => !side.Contains(n)).ToList();
                return $"split {{{string.Join(", ", side)}}} from {{{string.Join(", ", others)}}} for {length.TotalSeconds:0.0} s; " +
                       $"exited before the heal: {(gone.Count == 0 ? "none" : string.Join(", ", gone))}";
            }

            case FaultKind.FloodQueue:
            {
                var node = state.Host(primary);
                // Long enough to fill the queue many times over; capped, since the flood takes the machine's two cores.
                var seconds = (int)Math.Clamp(length.TotalSeconds, 3, 15);
                var before = QueueStats(node.Namespace);
                Log($"{primary}'s queues before the flood: {before}");
                using var flood = StartFlood(seconds);
                var mostHeld = 0L;
                try
                {
                    for (var i = 0; i < seconds * 4 && !flood.HasExited; i++)
                    {
                        Thread.Sleep(250);
                        var now = QueueStats(node.Namespace);
                        mostHeld = Math.Max(mostHeld, now.Held);
                        if (i % 8 == 7) Log($"{primary}'s queues during the flood: {now}");
                    }
                    flood.WaitForExit(10_000);
                }
                finally
                {
                    if (!flood.HasExited) flood.Kill(entireProcessTree: true);
                }
                var sent = flood.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    .Sum(l => long.TryParse(l.Trim(), out var n) ? n : 0);
                var after = QueueStats(node.Namespace);
                Log($"{primary}'s queues after the flood ({sent} datagrams sent): {after}");
                var dropped = after.DroppedFull - before.DroppedFull;
                return $"flooded {Vip}:{UdpPort} from the client namespace for {seconds} s ({sent} datagrams): {primary}'s queue held up to " +
                       $"{mostHeld} packets (sampled every 250 ms) and dropped {dropped} for being full" +
                       (dropped == 0 ? " (the queue never filled: the flood was not faster than the capture this time)" : "");
            }

            case FaultKind.FillStandbyJournal:
            {
                var standby = Standbys(primary)[run.Standby % (DataNodes - 1)];
                var fill = Fill(state.Host(standby));
                var clock = Stopwatch.StartNew();
                // Which write meets the full disk first decides the outcome, and both are right: the journal's (the
                // owner drops the standby) or a checkpoint's (the primary says the standby refuses its checkpoints).
                // SQLite's write-ahead log can go on for a minute in space it already holds.
                string[] outcomes = [$"standby {standby} dropped", $"standby {standby} refused"];
                string? alarm = null;
                while (clock.Elapsed < TimeSpan.FromSeconds(60) && alarm is null)
                {
                    alarm = Ask().Select(a => a.App.Alarm).FirstOrDefault(a => a is not null && outcomes.Any(a.Contains));
                    if (alarm is null) Thread.Sleep(500);
                }
                var alarmed = clock.Elapsed;
                if (alarm is null)
                    throw new RunFailed($"{standby}'s journal disk was full ({fill}) and no data node's alarm said within 60 s that it was dropped " +
                                        $"or refused checkpoints (alarms: {string.Join("; ", Ask().Select(a => $"{a.Node}: {a.App.Alarm ?? "none"}"))})");
                Log($"{standby} alarmed after {alarmed.TotalSeconds:0.0} s: {alarm}");
                if (length > alarmed) Thread.Sleep(length - alarmed);
                Unfill();
                return $"filled {standby}'s journal disk ({fill}) for {Math.Max(length.TotalSeconds, alarmed.TotalSeconds):0.0} s; " +
                       $"alarm after {alarmed.TotalSeconds:0.0} s: \"{alarm}\"";
            }

            default:
                throw new InvalidOperationException($"unhandled fault {run.Scenario.Fault}");
        }
    }

    private static long OutOfOrder(string ns) => Network.TcpExtCounters(ns).GetValueOrDefault("TCPOFOQueue");

    /// <summary>
    /// Until the taking-over node is in the phase aimed at: CRIU restoring (a criu process in its namespace), or
    /// replaying (the receive end of its injection channel, a veth named ctrpl*, has received a packet). The takeover
    /// logs no line of its own at these moments, so the node's processes and interfaces are what shows them.
    /// </summary>
    private string WaitForTakeoverPhase(LabHost node, bool restore, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        var netns = NamespaceProcesses.InodeOf(Network.NetnsPath(node.Namespace));
        while (clock.Elapsed < timeout)
        {
            var injected = InjectedPackets(node);
            if (injected > 0)
                return restore
                    ? $"restore already over: {injected} packet(s) replayed, after {clock.Elapsed.TotalMilliseconds:0} ms"
                    : $"replaying: {injected} packet(s) injected so far, after {clock.Elapsed.TotalMilliseconds:0} ms";
            if (restore)
            {
                if (NamespaceProcesses.CommandLines(netns).Any(c => c.Contains("criu") && c.Contains("restore")))
                    return $"criu restore running, after {clock.Elapsed.TotalMilliseconds:0} ms";
            }
            Thread.Sleep(1);
        }
        return $"{(restore ? "no criu restore" : "no replayed packet")} seen within {timeout.TotalSeconds:0} s";
    }

    /// <summary>
    /// Packets received so far by the receive ends (ctrpl*) of the node's injection channels: the replay writes every
    /// logged packet into the channel, nothing else does. Read from /proc/PID/net/dev of the node process, which shows
    /// its namespace's interfaces without starting a process.
    /// </summary>
    private static long InjectedPackets(LabHost node)
    {
        if (node.Pid is not { } pid) return 0;
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/net/dev"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return 0; }
        long total = 0;
        foreach (var line in text.Split('\n'))
        {
            // "  ctrpl100: 12345 67 0 0 ..." : receive bytes, then receive packets.
            var colon = line.IndexOf(':');
            if (colon < 0 || !line[..colon].Trim().StartsWith("ctrpl", StringComparison.Ordinal)) continue;
            var fields = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 1 && long.TryParse(fields[1], out var packets)) total += packets;
        }
        return total;
    }

    /// <summary>
    /// What the raw-table rules of a node taking over say of how far its takeover got: the VIP's inbound traffic is
    /// dropped until the takeover opens it, and the queue rules of the new primary go in after the replay, just
    /// before the opening.
    /// </summary>
    private static string VipRulesAtCrash(LabHost node)
    {
        var rules = Os.Run("nsenter", $"--net={Network.NetnsPath(node.Namespace)}", "--", "iptables", "-w", "-t", "raw", "-S").Stdout;
        var blocked = rules.Split('\n').Any(l => l.Contains("-j DROP"));
        var queued = rules.Contains("NFQUEUE");
        return (blocked, queued) switch
        {
            (true, false) => "VIP still blocked and no queue rule: before the end of the replay",
            (true, true) => "queue rules in, VIP still blocked: replay over, not yet open",
            (false, true) => "VIP open: the takeover was over",
            _ => "no block and no queue rule",
        };
    }

    /// <summary>Summed over the namespace's NFQUEUEs: packets held, dropped because the queue was full, and lost to the reader's socket.</summary>
    private sealed record QueueFigures(int Queues, long Held, long DroppedFull, long DroppedReader)
    {
        public override string ToString() =>
            Queues == 0 ? "no queue" : $"{Held} held, {DroppedFull} dropped (queue full), {DroppedReader} dropped (reader's socket full)";
    }

    /// <summary>/proc/net/netfilter/nfnetlink_queue of the namespace (columns: queue, port id, held, copy mode, range, queue dropped, user dropped, ...).</summary>
    private static QueueFigures QueueStats(string ns)
    {
        var text = Os.Run("nsenter", $"--net={Network.NetnsPath(ns)}", "--", "cat", "/proc/net/netfilter/nfnetlink_queue").Stdout;
        var rows = text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 7)
            .Select(f => f.Select(x => long.TryParse(x, out var v) ? v : 0).ToArray())
            .ToList();
        return new QueueFigures(rows.Count, rows.Sum(r => r[2]), rows.Sum(r => r[5]), rows.Sum(r => r[6]));
    }

    /// <summary>
    /// Datagrams "x" (which ct-kv ignores, not being "U FLOW N ...") from two sockets of the client namespace to the
    /// VIP's logged UDP port as fast as bash writes them: tens of thousands a second, each one held by the primary's
    /// NFQUEUE until both standbys logged it.
    /// </summary>
    private Process StartFlood(int seconds)
    {
        // Two writers: one alone did not always outrun the capture on this machine.
        var script = $"flood() {{ exec 3<>/dev/udp/{Vip}/{UdpPort}; n=0; end=$((SECONDS+{seconds})); " +
                     "while ((SECONDS<end)); do printf x >&3; printf x >&3; printf x >&3; printf x >&3; printf x >&3; n=$((n+5)); done 2>/dev/null; echo $n; }; " +
                     "flood & flood & wait";
        var psi = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { $"--net={Network.NetnsPath(_topology.NamespaceOf(Topology.ClientName))}", "--", "bash", "-c", script })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new RunFailed("could not start the flood");
        p.ErrorDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        return p;
    }

    private (LabHost Node, string Dir, Process Filler)? _filled;

    /// <summary>
    /// Fills the file system of <paramref name="node"/>'s state directory (in its mount namespace) to the last block,
    /// and keeps it full until <see cref="Unfill"/>: the node deletes old checkpoints every few seconds, and a disk
    /// that regains megabytes at each deletion would let the journal write on.
    /// </summary>
    private string Fill(LabHost node)
    {
        if (node.Pid is not { } pid) throw new RunFailed($"{node.Name}'s node process is not running");
        var dir = Path.Combine(_stateDir, node.Name, "state");
        var ballast = Os.ShellQuote(Path.Combine(dir, "chaos-ballast"));
        // Large blocks first, then small ones for what is left: "full" must mean no block at all.
        var script = $"i=0; while :; do dd if=/dev/zero of={ballast}-$i bs=1M 2>/dev/null; dd if=/dev/zero of={ballast}-$i-tail bs=512 2>/dev/null; " +
                     "i=$((i+1)); sleep 0.2; done";
        var psi = new ProcessStartInfo("nsenter") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-t", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-m", "--", "sh", "-c", script })
            psi.ArgumentList.Add(a);
        var filler = Process.Start(psi) ?? throw new RunFailed("could not start filling the disk");
        _filled = (node, dir, filler);
        Thread.Sleep(2000);
        var r = Os.Run("nsenter", "-t", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-m", "--", "df", "-B1", "--output=size,avail", dir);
        var df = r.Stdout.Trim().Split('\n').Last().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var what = df.Length == 2 ? $"{df[1]} of {df[0]} bytes free" : r.Stdout.Trim() + r.Stderr.Trim();
        Log($"filled {node.Name}'s state file system: {what}");
        return what;
    }

    /// <summary>Frees what <see cref="Fill"/> took (also after a failed run, from <see cref="Restore"/>).</summary>
    private void Unfill()
    {
        if (_filled is not { } f) return;
        _filled = null;
        try { f.Filler.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        f.Filler.WaitForExit(5000);
        f.Filler.Dispose();
        var node = State().Host(f.Node.Name);
        if (node.Pid is not { } pid || !Alive(node)) return; // a dead node's tmpfs went with its mount namespace
        Os.Run("nsenter", "-t", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-m", "--", "sh", "-c",
            $"rm -f {Os.ShellQuote(f.Dir)}/chaos-ballast-*");
        Log($"freed {node.Name}'s state file system");
    }

    /// <summary>
    /// The primary's side of a split-majority or split-minority run; the other side is every other member. With the
    /// chaos lab's five members: the primary, one standby (picked by <paramref name="standbyPick"/>) and the first
    /// witness (3) against the other standby and the second witness (2), or the primary and one standby (2) against the
    /// other standby and both witnesses (3). Never a tie, which keep-majority would decide by address.
    /// </summary>
    internal static List<string> PrimarySide(bool majority, string primary, IReadOnlyList<string> standbys, IReadOnlyList<string> witnesses, int standbyPick)
    {
        var with = standbys[standbyPick % standbys.Count];
        return majority ? [primary, with, witnesses[0]] : [primary, with];
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
        Unfill();
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
        using var mgmt = new Management(Management.ReadToken(_stateDir), ViewTimeout);
        var answers = new List<(string, AppStatus)>();
        foreach (var node in State().Members.Where(m => m.Kind == HostKind.Node && Alive(m)))
            if (mgmt.App(node, AppName).Value is { } app) answers.Add((node.Name, app));
        return answers;
    }

    private List<string> Standbys(string primary) =>
        State().Members.Where(m => m.Kind == HostKind.Node).Select(m => m.Name).Where(n => n != primary).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Until every member is alive and sees all members Up, and every data node names the same primary with all the
    /// other data nodes as ready standbys: the cluster as it was before the fault.
    /// </summary>
    private string WaitProtected(TimeSpan timeout, string when)
    {
        var clock = Stopwatch.StartNew();
        var last = "";
        while (true)
        {
            var state = State();
            var members = state.Members.ToList();
            using var mgmt = new Management(Management.ReadToken(_stateDir), ViewTimeout);
            var views = members.Where(Alive).Select(m => (m.Name, Data: m.Kind == HostKind.Node, Cluster: mgmt.Cluster(m).Value,
                App: m.Kind == HostKind.Node ? mgmt.App(m, AppName).Value : null)).ToList();
            var data = views.Where(v => v.Data).ToList();
            var primaries = data.Select(v => v.App?.Primary).Distinct().ToList();
            var ok = views.Count == members.Count
                     && views.All(v => v.Cluster is { } c && c.Members.Count == members.Count && c.UpCount == members.Count)
                     && data.Count == DataNodes
                     && data.All(v => v.App is { } a && a.ReadyStandbys == DataNodes - 1 && a.Standbys.Count == DataNodes - 1)
                     && primaries.Count == 1 && primaries[0] is not null;
            if (ok) return primaries[0]!;
            RestartExited(state);
            last = string.Join("; ", views.Select(v =>
                $"{v.Name}: {(v.Cluster is { } c ? $"{c.UpCount}/{c.Members.Count} Up" : "no cluster view")}" +
                (v.Data ? $", {(v.App is { } a ? $"primary {a.Primary ?? "none"}, {a.ReadyStandbys}/{a.Standbys.Count} standbys ready, {a.State}" : "no app view")}" : "")));
            if (members.Count(Alive) < members.Count) last += $"; not running: {string.Join(", ", members.Where(m => !Alive(m)).Select(m => m.Name))}";
            if (clock.Elapsed > timeout)
                throw new RunFailed($"not back to one primary and {DataNodes - 1} ready standbys within {timeout.TotalSeconds:0} s {when} ({last})");
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
        using var mgmt = new Management(Management.ReadToken(_stateDir), ViewTimeout);
        var node = State().Host(primary);
        while (true)
        {
            var since = (DateTime.UtcNow - answered).TotalMilliseconds;
            if (mgmt.App(node, AppName).Value is { } app && app.Standbys.Count > 0
                && app.Standbys.All(s => TakenAt(s.CheckpointId) is { } taken ? taken > answered.AddMilliseconds(200)
                    : s.CheckpointAgeMs is { } age && age < since - 200))
                return;
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
                throw new RunFailed("the standbys held no checkpoint covering the client's connections within 60 s of their first replies");
            Thread.Sleep(200);
        }
    }

    /// <summary>
    /// When the checkpoint was taken, from its id ("e1-20261130101111045-14": epoch, UTC time of the freeze, number),
    /// read the way the product reads it. The view's checkpoint age used to count from when the standby stored it,
    /// which on a loaded machine was 6 s after the freeze: a checkpoint frozen before the last connection opened passed for covering it, and the takeover then
    /// reset that connection, as it does by design for connections younger than the checkpoint (crash-replay seed
    /// 552052760).
    /// </summary>
    internal static DateTime? TakenAt(string? checkpointId) =>
        checkpointId is null ? null : Core.Checkpoint.CheckpointInfo.FrozenAt(checkpointId)?.UtcDateTime;

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
