using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Continuity.Lab;

/// <summary>The lab's commands. Each reads lab.json, acts, and writes it back.</summary>
internal sealed class Lab(string stateDir, Topology topology, TextWriter output, TextWriter error)
{
    public const string NodeProgram = "bin/continuity-node";
    public const string LabHocon = "hocon/lab.hocon";

    public string StateDir { get; } = Path.GetFullPath(stateDir);

    public Topology Topology { get; } = topology;

    /// <summary>--state-dir, else CONTINUITY_LAB_DIR, else the instance's default.</summary>
    public static string ResolveStateDir(string? option, Topology? topology = null) =>
        option ?? NonEmpty(Environment.GetEnvironmentVariable("CONTINUITY_LAB_DIR")) ?? (topology ?? Topology.Default).DefaultStateDir;

    /// <summary>--instance, else CONTINUITY_LAB_INSTANCE, else 0 (the lab as it always was).</summary>
    public static Topology ResolveTopology(int? option) =>
        ResolveTopology(option, Environment.GetEnvironmentVariable(Topology.InstanceVariable));

    internal static Topology ResolveTopology(int? option, string? variable)
    {
        if (option is { } n) return Topology.Of(n);
        var text = NonEmpty(variable);
        if (text is null) return Topology.Default;
        if (!int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            || value > Topology.MaxInstance)
            throw new LabException($"{Topology.InstanceVariable}='{text}' is not a lab instance: expected a whole number 0-{Topology.MaxInstance} (unset it for instance 0)");
        return Topology.Of(value);
    }

    /// <summary>
    /// lab.json of this state directory, refused if another instance wrote it: acting on it with
    /// this instance's names would miss its namespaces, or worse, reach into another lab.
    /// </summary>
    private LabState LoadState()
    {
        var state = LabState.Load(StateDir);
        CheckInstance(state);
        return state;
    }

    private void CheckInstance(LabState state)
    {
        if (state.Instance != Topology.Instance)
            throw new LabException($"the lab in {StateDir} is instance {state.Instance}, not {Topology.Instance}: " +
                                   $"pass --instance {state.Instance} (or set {Topology.InstanceVariable}={state.Instance}), or use another --state-dir");
    }

    /// <summary>CONTINUITY_HOME, else the directory holding Continuity.Akka.sln above this assembly.</summary>
    public static string? FindRepoRoot()
    {
        var home = NonEmpty(Environment.GetEnvironmentVariable("CONTINUITY_HOME"));
        if (home is not null) return Path.GetFullPath(home);
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Continuity.Akka.sln"))) return dir.FullName;
        return null;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;

    /// <summary>
    /// Serializes the commands that change the lab: two of them interleaving would each write
    /// lab.json from a stale copy. status and exec do not take it (exec may run for hours).
    /// </summary>
    public IDisposable Lock()
    {
        Directory.CreateDirectory(StateDir);
        var path = Path.Combine(StateDir, "lab.lock");
        var deadline = DateTime.UtcNow.AddSeconds(120);
        var told = false;
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive flock on Linux, released if this process dies.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                if (!told) error.WriteLine($"continuity-lab: another lab command is running on {StateDir}; waiting for it");
                told = true;
                Thread.Sleep(200);
            }
            catch (IOException)
            {
                throw new LabException($"another lab command has held {path} for 2 minutes; if none is running, delete that file");
            }
        }
    }

    // ---------------------------------------------------------------- up

    public int Up(UpCommand c)
    {
        var repo = FindRepoRoot();
        string? nodeProgram = null;
        if (!c.NoNodes)
        {
            if (repo is null)
                throw new LabException("cannot find the Continuity repository (no Continuity.Akka.sln above " +
                                       $"{AppContext.BaseDirectory}): set CONTINUITY_HOME to the repository root");
            nodeProgram = Path.Combine(repo, NodeProgram);
            if (!File.Exists(nodeProgram))
                throw new LabException($"the node program {nodeProgram} is not built yet: build it with " +
                                       $"{Path.Combine(repo, "deploy/build.sh")} (or use 'up --no-nodes' for the network only)");
        }

        string? userConfig = null;
        if (c.ConfigFile is not null)
        {
            userConfig = Path.GetFullPath(c.ConfigFile);
            if (!File.Exists(userConfig)) throw new LabException($"--config {c.ConfigFile}: no such file ({userConfig})");
        }

        var includes = new List<string>();
        if (repo is not null) includes.Add(EnsureLabHocon(repo));
        if (userConfig is not null) includes.Add(userConfig);
        // Read the config before touching the network: a typo should cost nothing to fix.
        var stateDirs = NodeConfig.StateDirs(includes);
        foreach (var dir in stateDirs)
        foreach (var (what, path) in new[] { ("the lab's state directory", StateDir), ("the repository", repo) })
        {
            // The bind mount would hide the node's own config and program behind an empty copy.
            if (path is not null && (path == dir || path.StartsWith(dir + "/", StringComparison.Ordinal)))
                throw new LabException($"the state-dirs of the config include {dir}, which holds {what} ({path}): " +
                                       "every node would see an empty private copy instead; use another --state-dir or a narrower state-dirs path");
        }

        CleanLeftovers();

        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(StateDir);
        var hosts = Topology.Hosts(c.Nodes, c.Witnesses);
        foreach (var h in hosts.Where(h => h.IsClusterMember))
            ResetDirectory(Path.Combine(StateDir, h.Name));
        var token = WriteToken();
        WriteClusterCertificate();

        var state = new LabState
        {
            StateDir = StateDir,
            Instance = Topology.Instance,
            RepoRoot = repo,
            ConfigFile = userConfig,
            NoNodes = c.NoNodes,
            StateSize = c.StateSize,
            Hosts = hosts,
        };
        // Saved before the first change, so 'down' knows what to remove if anything below fails.
        state.Save();

        output.WriteLine($"Creating bridge {Topology.Bridge} ({Topology.BridgeAddress}/{Topology.PrefixLength}) and {hosts.Count} namespaces");
        try
        {
            Network.CreateBridge(Topology);
            state.HostRules.AddRange(Network.AllowBridgedTraffic(Topology));
            state.Save();
            foreach (var host in hosts)
            {
                Network.CreateHost(Topology, host);
                output.WriteLine($"  {host.Namespace,-10} {host.Address,-14} {(host.IsClusterMember ? host.Role : "client")}");
            }
        }
        catch (LabException e)
        {
            throw new LabException($"{e.Message}\nThe lab is half built; remove it with 'continuity-lab down' before trying again.");
        }

        var seeds = Topology.Seeds(hosts);
        foreach (var node in state.Members)
        {
            var dir = Path.Combine(StateDir, node.Name);
            Directory.CreateDirectory(Path.Combine(dir, "state"));
            File.WriteAllText(Path.Combine(dir, "node.hocon"), NodeConfig.Generate(node, seeds, includes, StateDir));
        }

        if (c.NoNodes)
        {
            state.Save();
            output.WriteLine($"Lab network is up in {total.Elapsed.TotalSeconds:0.0} s (no nodes started: --no-nodes). " +
                             $"Node configs are in {StateDir}/<node>/node.hocon.");
            return 0;
        }

        if (stateDirs.Count > 0)
            output.WriteLine($"Each node gets its own copy of: {string.Join(", ", stateDirs)}");
        foreach (var node in state.Members)
        {
            StartNode(node, nodeProgram!, stateDirs, state.StateSize);
            output.WriteLine($"  started {node.Name} (pid {node.Pid}), log {NodeLog(node)}");
        }
        state.Save();

        WaitForCluster(state, token, c.Timeout);
        output.WriteLine($"Lab is up: {state.Members.Count()} members Up on every node after {total.Elapsed.TotalSeconds:0.0} s.");
        return 0;
    }

    private static string EnsureLabHocon(string repo)
    {
        var path = Path.Combine(repo, LabHocon);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, NodeConfig.LabHoconHeader);
        }
        return path;
    }

    private void CleanLeftovers()
    {
        var found = new List<string>();
        if (File.Exists(LabState.PathIn(StateDir))) found.Add(LabState.PathIn(StateDir));
        found.AddRange(Network.LabNamespaces(Topology).Select(n => "namespace " + n));
        found.AddRange(Network.LabLinks(Topology).Select(l => "link " + l));
        if (found.Count == 0) return;
        output.WriteLine($"Found leftovers of an earlier lab ({string.Join(", ", found.Take(6))}{(found.Count > 6 ? ", ..." : "")}); removing them first.");
        Down(quiet: true);
    }

    private static void ResetDirectory(string dir)
    {
        if (Directory.Exists(dir))
        {
            // Only a directory the lab made is wiped: --state-dir may point somewhere with a
            // user's own "n1" in it.
            if (!File.Exists(Path.Combine(dir, "node.hocon")) && Directory.EnumerateFileSystemEntries(dir).Any())
                throw new LabException($"{dir} exists and was not made by the lab (no node.hocon in it): " +
                                       "move it away or choose another --state-dir");
            // A node's journal from an earlier lab would make the new cluster resume old state.
            Directory.Delete(dir, recursive: true);
        }
        Directory.CreateDirectory(dir);
    }

    /// <summary>A fresh cluster certificate per lab: its nodes talk TLS to each other, as real nodes do by default.</summary>
    private void WriteClusterCertificate()
    {
        var path = NodeConfig.ClusterCertificatePath(StateDir);
        File.Delete(path);
        Continuity.Core.Security.ClusterCertificate.Create(path).Dispose();
    }

    private string WriteToken()
    {
        var path = Path.Combine(StateDir, "token");
        File.Delete(path);
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();
        // Created with mode 0600 from the start: the token must never be readable, even briefly.
        using (var fs = new FileStream(path, new FileStreamOptions
               {
                   Mode = FileMode.CreateNew,
                   Access = FileAccess.Write,
                   UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        using (var w = new StreamWriter(fs))
            w.Write(token + "\n");
        return token;
    }

    private string NodeLog(LabHost node) => Path.Combine(StateDir, node.Name, "node.log");

    /// <summary>
    /// Starts the node in the host's network namespace and a private mount namespace of its own,
    /// where the apps' state directories are bind-mounted from node-private copies. Only the
    /// network namespace is entered (not 'ip netns exec', which also makes a mount namespace
    /// CRIU refuses to dump), and the node, CRIU and the apps all share the private one.
    /// </summary>
    private void StartNode(LabHost node, string nodeProgram, IReadOnlyList<string> stateDirs, string? stateSize)
    {
        var dir = Path.Combine(StateDir, node.Name);
        var pidFile = Path.Combine(dir, "node.pid");
        File.Delete(pidFile);
        if (stateSize is not null) MountState(dir, stateSize);
        var script = BuildNodeScript(node, dir, nodeProgram, stateDirs);
        Os.StartDetached("unshare", ["-m", "--propagation", "private", "--", "bash", "-c", script]);

        // The script reports its own pid, which exec keeps for the node: robust even if setsid forked.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!File.Exists(pidFile) || File.ReadAllText(pidFile).Trim().Length == 0)
        {
            if (DateTime.UtcNow > deadline)
                throw new LabException($"node {node.Name} did not start: see {NodeLog(node)}");
            Thread.Sleep(20);
        }
        var pid = int.Parse(File.ReadAllText(pidFile).Trim());
        node.Pid = pid;
        node.StartTime = Os.ProcessStartTime(pid);
        node.Crashed = false;
    }

    /// <summary>
    /// The node's state directory on a tmpfs of its own (<c>up --state-size</c>), mounted in the host's mount namespace
    /// before the node's private one is made: a node process restarted alone (chaos node-kill) finds its files as on a
    /// disk, program.pid included, and the state goes with the machine (crash, down). Already mounted: kept.
    /// </summary>
    private static void MountState(string nodeDir, string size)
    {
        var state = Path.Combine(nodeDir, "state");
        Directory.CreateDirectory(state);
        if (Os.Run("mountpoint", "-q", state).Succeeded) return;
        var mount = Os.Run("mount", "-t", "tmpfs", "-o", $"size={size},mode=0700", "continuity-state", state);
        if (!mount.Succeeded)
            throw new LabException($"could not mount a {size} tmpfs on {state}: {mount.Stderr.Trim()}");
    }

    /// <summary>Drops a node's state tmpfs, if it has one (lazily: the killed node's namespace may still hold it).</summary>
    private static void UnmountState(string nodeDir)
    {
        var state = Path.Combine(nodeDir, "state");
        if (Directory.Exists(state) && Os.Run("mountpoint", "-q", state).Succeeded) Os.Run("umount", "-l", state);
    }

    internal static string BuildNodeScript(LabHost node, string nodeDir, string nodeProgram, IReadOnlyList<string> stateDirs)
    {
        var q = Os.ShellQuote;
        var log = Path.Combine(nodeDir, "node.log");
        var lines = new List<string>
        {
            $"exec </dev/null >>{q(log)} 2>&1",
            // Only fds 0-2 may reach the node: CRIU refuses to dump a process holding an fd opened
            // in another mount namespace, and shells and test runners leak some (seen: 10, 251).
            // bash, because dash cannot name descriptors above 9.
            "for fd in /proc/$$/fd/*; do fd=${fd##*/}; case $fd in 0|1|2) ;; *) eval \"exec $fd>&-\" ;; esac; done",
            "set -e",
            $"echo \"--- continuity-lab: starting {node.Name} at $(date -u +%Y-%m-%dT%H:%M:%SZ) ---\"",
        };
        foreach (var path in stateDirs)
        {
            var source = Path.Combine(nodeDir, "fs") + path;
            lines.Add($"mkdir -p {q(source)} {q(path)}");
            lines.Add($"mount --bind {q(source)} {q(path)}");
        }
        // The chaos runner arms the node's fail points by dropping files here (see FailpointsDir).
        lines.Add($"export {Linux.Failpoints.FileFailpoints.EnvironmentVariable}={q(FailpointsDir(nodeDir))}");
        lines.Add($"echo $$ > {q(Path.Combine(nodeDir, "node.pid"))}");
        // Its programs inherit this working directory, where CRIU mounts its /proc while it dumps them: nodes of one lab
        // (and labs side by side) sharing one would take turns to dump as the programs of one node do, and a node stuck
        // in a dump would stall the checkpoints of every other node (chaos lab, two labs, seed 209778441).
        lines.Add($"cd {q(nodeDir)}");
        lines.Add($"exec nsenter --net={q(Network.NetnsPath(node.Namespace))} -- {q(nodeProgram)} --config {q(Path.Combine(nodeDir, "node.hocon"))}");
        return string.Join("\n", lines) + "\n";
    }

    /// <summary>The directory a lab node watches for armed fail points (<c>CONTINUITY_FAILPOINTS</c>).</summary>
    internal static string FailpointsDir(string nodeDir) => Path.Combine(nodeDir, "failpoints");

    private void WaitForCluster(LabState state, string token, TimeSpan timeout)
    {
        var members = state.Members.ToList();
        output.WriteLine($"Waiting up to {timeout.TotalSeconds:0} s for every node to see {members.Count} members Up");
        using var mgmt = new Management(token, TimeSpan.FromSeconds(2));
        var clock = Stopwatch.StartNew();
        var restarts = new Dictionary<string, int>();
        string? lastLine = null;
        var lastPrint = TimeSpan.Zero;
        while (true)
        {
            var parts = new List<string>();
            var ready = 0;
            foreach (var node in members)
            {
                if (!Os.IsAlive(node.Pid ?? 0, node.StartTime) && WasDowned(node) && restarts.GetValueOrDefault(node.Name) < MaxStartUpRestarts)
                {
                    // What the node's supervisor (systemd's Restart=on-failure) does with a downed node: at start-up,
                    // on a loaded machine, a node that paused past failure detection is downed by the others.
                    restarts[node.Name] = restarts.GetValueOrDefault(node.Name) + 1;
                    output.WriteLine($"  {node.Name} was downed by the cluster during start-up; restarting it as its supervisor would. " +
                                     $"What the other members logged about it:\n{DowningEvidence(members, node)}");
                    RestartNodeProcess(state, node);
                    state.Save();
                    output.WriteLine($"  restarted {node.Name} (pid {node.Pid})");
                }
                if (!Os.IsAlive(node.Pid ?? 0, node.StartTime))
                    throw new LabException($"node {node.Name} exited during start-up. Last lines of {NodeLog(node)}:\n{Tail(NodeLog(node), 15)}\n" +
                                           "The lab is left as it is for inspection; remove it with 'continuity-lab down'.");
                var answer = mgmt.Cluster(node);
                if (answer.Value is { } view)
                {
                    var ok = view.Members.Count == members.Count && view.UpCount == members.Count;
                    if (ok) ready++;
                    parts.Add($"{node.Name}: {view.UpCount}/{members.Count} Up");
                }
                else parts.Add($"{node.Name}: {answer.Error}");
            }
            if (ready == members.Count) return;

            var line = string.Join(", ", parts);
            if (line != lastLine || clock.Elapsed - lastPrint > TimeSpan.FromSeconds(5))
            {
                output.WriteLine($"  [{clock.Elapsed.TotalSeconds,5:0.0} s] {line}");
                lastLine = line;
                lastPrint = clock.Elapsed;
            }
            if (clock.Elapsed > timeout)
                throw new LabException($"the cluster did not come up within {timeout.TotalSeconds:0} s ({line}). " +
                                       $"See the node logs in {StateDir}/<node>/node.log; the lab is left running for inspection " +
                                       "('continuity-lab status'), remove it with 'continuity-lab down', or retry with a longer --timeout.");
            Thread.Sleep(500);
        }
    }

    private const int MaxStartUpRestarts = 2;

    /// <summary>The node exited because the cluster downed it (the node program says so on its way out).</summary>
    private bool WasDowned(LabHost node) =>
        File.Exists(NodeLog(node)) && File.ReadLines(NodeLog(node)).TakeLast(5).Any(l => l.Contains(DownedExitLine));

    /// <summary>The node program's last words when the cluster downed it (Continuity.Node's Program).</summary>
    internal const string DownedExitLine = "continuity-node: this node was downed by the cluster";

    /// <summary>The other members' last log lines about unreachability and downing decisions, for the reader to see why.</summary>
    private string DowningEvidence(IEnumerable<LabHost> members, LabHost downed)
    {
        var evidence = members.Where(m => m.Name != downed.Name && File.Exists(NodeLog(m)))
            .SelectMany(m => File.ReadLines(NodeLog(m))
                .Where(l => l.Contains("UNREACHABLE") || l.Contains("SBR took decision") || l.Contains("Indirectly connected members")
                            || l.Contains("Leader can currently not perform its duties"))
                .TakeLast(3).Select(l => $"    {m.Name}: {l}"))
            .ToList();
        return evidence.Count > 0 ? string.Join("\n", evidence) : "    (nothing about unreachability in their logs)";
    }

    private static string Tail(string file, int lines)
    {
        if (!File.Exists(file)) return "  (no log)";
        return string.Join("\n", File.ReadLines(file).TakeLast(lines).Select(l => "  " + l));
    }

    // ---------------------------------------------------------------- status

    public int Status(StatusCommand c)
    {
        var state = LoadState();
        using var mgmt = new Management(Management.ReadToken(StateDir), TimeSpan.FromSeconds(2));
        var rows = state.Hosts.Select(h => Describe(state, h, mgmt)).ToList();
        if (c.Json)
        {
            output.WriteLine(LabState.Serialize(new { stateDir = StateDir, instance = state.Instance, bridge = Topology.Bridge, subnet = Topology.Subnet, noNodes = state.NoNodes, partitions = state.Partitions, hosts = rows }));
            return 0;
        }
        output.WriteLine($"Lab instance {state.Instance} ({Topology.Bridge}, {Topology.Subnet}) in {StateDir}, created {state.CreatedAt:yyyy-MM-dd HH:mm:ss}Z{(state.NoNodes ? " (network only)" : "")}");
        output.WriteLine($"{"HOST",-7} {"NAMESPACE",-10} {"ADDRESS",-14} {"ROLE",-8} {"PID",-8} {"STATE",-24} CLUSTER");
        foreach (var r in rows)
            output.WriteLine($"{r.Name,-7} {r.Namespace,-10} {r.Address,-14} {r.Role,-8} {(r.Pid?.ToString() ?? "-"),-8} {r.State,-24} {r.Cluster ?? "-"}");
        if (state.Partitions.Count > 0)
            output.WriteLine("Partitions: " + string.Join("; ", state.Partitions.Select(g => "{" + string.Join(", ", g) + "} cut off from the rest")));
        return 0;
    }

    internal sealed record HostStatus(
        string Name, string Namespace, string Address, string Role, int? Pid, string State,
        bool Partitioned, string? Cluster, int? Members, int? MembersUp, string? Leader);

    private HostStatus Describe(LabState state, LabHost h, Management mgmt)
    {
        var role = h.IsClusterMember ? h.Role : "client";
        string st;
        var alive = h.Pid is { } pid && Os.IsAlive(pid, h.StartTime);
        if (!Network.NamespaceExists(h.Namespace)) st = "missing";
        else if (h.Crashed) st = "crashed";
        else if (!h.IsClusterMember) st = "up";
        else if (state.NoNodes) st = "up (no node)";
        else st = alive ? "alive" : "exited";
        var partitioned = state.IsPartitioned(h.Name);
        if (partitioned) st += ",partitioned";

        string? cluster = null, leader = null;
        int? count = null, up = null;
        if (alive && h.IsClusterMember && !h.Crashed)
        {
            var answer = mgmt.Cluster(h);
            if (answer.Value is { } view)
            {
                leader = state.Hosts.FirstOrDefault(x => view.Leader?.Contains($"@{x.Address}:") == true)?.Name ?? view.Leader;
                count = view.Members.Count;
                up = view.UpCount;
                cluster = $"{up}/{count} Up, leader {leader ?? "none"}";
            }
            else cluster = "management: " + answer.Error;
        }
        return new HostStatus(h.Name, h.Namespace, h.Address, role, alive ? h.Pid : null, st, partitioned, cluster, count, up, leader);
    }

    // ---------------------------------------------------------------- exec

    public int Exec(ExecCommand c)
    {
        var ns = Topology.NamespaceOf(c.Host);
        if (!Network.NamespaceExists(ns))
        {
            var known = LabState.TryLoad(StateDir, out _)?.Hosts.Select(h => h.Name).ToList();
            throw new LabException($"no lab host '{c.Host}' (namespace {ns} does not exist)" +
                                   (known is { Count: > 0 } ? $"; hosts: {string.Join(", ", known)}" : "; is the lab up?"));
        }
        return Os.RunInteractive("nsenter", [$"--net={Network.NetnsPath(ns)}", "--", .. c.Command]);
    }

    public int Probe(ProbeCommand c) => new Probe.ProbeRunner(LoadState(), StateDir, output).Run(c);

    // ---------------------------------------------------------------- crash / revive

    public int Crash(CrashCommand c)
    {
        var state = LoadState();
        var name = c.Node ?? PrimaryOf(state, c.PrimaryOfApp!);
        var node = Member(state, name, "crash");
        var clock = Stopwatch.StartNew();

        // Links first: a killed process's sockets send FIN/RST, which a real power loss never does.
        Network.SetLinks(node, up: false);
        var roots = node.Pid is { } pid && Os.IsAlive(pid, node.StartTime) ? [pid] : Array.Empty<int>();
        var killed = Network.KillAll(node.Namespace, roots);
        UnmountState(Path.Combine(StateDir, node.Name));
        node.Pid = null;
        node.StartTime = null;
        node.Crashed = true;
        state.Save();
        output.WriteLine($"Crashed {node.Name} ({node.Address}) in {clock.Elapsed.TotalMilliseconds:0} ms: links down, {killed} processes killed.");
        return 0;
    }

    private string PrimaryOf(LabState state, string app)
    {
        using var mgmt = new Management(Management.ReadToken(StateDir), TimeSpan.FromSeconds(2));
        var errors = new List<string>();
        foreach (var node in state.Members.Where(n => !n.Crashed && n.Pid is { } p && Os.IsAlive(p, n.StartTime)))
        {
            var answer = mgmt.PrimaryOf(node, app);
            if (answer.Value is { } primary)
            {
                output.WriteLine($"{node.Name} says the primary of {app} is {primary}");
                return primary;
            }
            if (answer.HttpStatus == 404)
                throw new LabException($"{node.Name} answered 404 to GET /v1/apps/{app}: either no app '{app}' is declared " +
                                       "(check continuity.apps in the --config file) or this node version has no /v1/apps endpoint");
            errors.Add($"{node.Name}: {answer.Error}");
        }
        throw new LabException(errors.Count == 0
            ? $"cannot find the primary of {app}: no live node to ask"
            : $"cannot find the primary of {app}: {string.Join("; ", errors)}");
    }

    /// <param name="reboot">Clear the node's addresses, rules and links as a reboot would (a crashed machine); false
    /// restarts the node process alone, as a supervisor does after the process died (chaos node-kill).</param>
    public int Revive(ReviveCommand c, bool reboot = true)
    {
        var state = LoadState();
        var node = Member(state, c.Node, "revive");
        if (!node.Crashed && node.Pid is { } pid && Os.IsAlive(pid, node.StartTime))
        {
            output.WriteLine($"{node.Name} is running (pid {pid}); nothing to revive.");
            return 0;
        }
        if (reboot)
        {
            Network.Reboot(node);
            Network.SetLinks(node, up: true);
        }
        if (!state.NoNodes) RestartNodeProcess(state, node);
        node.Crashed = false;
        state.Save();
        output.WriteLine(state.NoNodes
            ? $"Revived {node.Name}: links up."
            : $"Revived {node.Name}: links up, node restarted (pid {node.Pid}); it rejoins the cluster on its own ('continuity-lab status' shows when).");
        return 0;
    }

    /// <summary>
    /// Starts a new incarnation of the node process (the machine itself is left as it is), joining through the live
    /// members.
    /// </summary>
    private void RestartNodeProcess(LabState state, LabHost node)
    {
        var repo = state.RepoRoot ?? FindRepoRoot()
                   ?? throw new LabException("cannot find the Continuity repository: set CONTINUITY_HOME to the repository root");
        var program = Path.Combine(repo, NodeProgram);
        if (!File.Exists(program))
            throw new LabException($"the node program {program} is missing: build it with {Path.Combine(repo, "deploy/build.sh")}");
        var includes = new List<string>();
        var labHocon = Path.Combine(repo, LabHocon);
        if (File.Exists(labHocon)) includes.Add(labHocon);
        if (state.ConfigFile is not null) includes.Add(state.ConfigFile);
        // A revived node must never be its own first seed: a first seed that hears no other seed in time forms a
        // cluster of its own, and a second cluster would elect a second primary. It joins through the live nodes.
        var live = state.Members.Where(m => m.Name != node.Name && !m.Crashed).ToList();
        // A new incarnation on a new port: the survivors keep the dead incarnation's address quarantined for a
        // while, and a node they cannot talk to while others can is downed with them as "indirectly connected".
        node.ClusterPort++;
        var seeds = live.Count > 0 ? live.Take(2).ToList() : Topology.Seeds(state.Members);
        File.WriteAllText(Path.Combine(StateDir, node.Name, "node.hocon"), NodeConfig.Generate(node, seeds, includes, StateDir));
        StartNode(node, program, NodeConfig.StateDirs(includes), state.StateSize);
    }

    private static LabHost Member(LabState state, string name, string verb)
    {
        var host = state.Host(name);
        if (!host.IsClusterMember) throw new LabException($"{verb}: '{name}' is the client, not a node");
        return host;
    }

    // ---------------------------------------------------------------- partition / heal

    public int Partition(PartitionCommand c)
    {
        var state = LoadState();
        var group = c.Nodes.Select(n => Member(state, n, "partition")).ToList();
        var others = state.Members.Where(m => !c.Nodes.Contains(m.Name)).ToList();
        if (others.Count == 0)
            throw new LabException("partition: that names every node; name the ones to cut off from the rest");
        Network.Partition(group, others);
        state.Partitions.Add(group.Select(g => g.Name).ToList());
        state.Save();
        output.WriteLine($"Partitioned {{{string.Join(", ", group.Select(g => g.Name))}}} from {{{string.Join(", ", others.Select(o => o.Name))}}}; " +
                         "the host and the client still reach both sides. Undo with 'continuity-lab heal'.");
        return 0;
    }

    public int Heal(HealCommand c)
    {
        var state = LoadState();
        foreach (var m in state.Members) Network.Heal(m.Namespace);
        var had = state.Partitions.Count;
        state.Partitions.Clear();
        state.Save();
        output.WriteLine(had == 0 ? "No partitions to heal." : $"Healed {had} partition(s).");
        return 0;
    }

    // ---------------------------------------------------------------- down

    public int Down(bool quiet = false)
    {
        var state = LabState.TryLoad(StateDir, out var problem);
        if (problem is not null) error.WriteLine($"continuity-lab: {problem}; cleaning up by name instead.");
        if (state is not null) CheckInstance(state);

        var namespaces = Network.LabNamespaces(Topology)
            .Concat(state?.Hosts.Select(h => h.Namespace).Where(Network.NamespaceExists) ?? [])
            .Distinct().ToList();
        var killed = 0;
        foreach (var ns in namespaces)
        {
            var host = state?.Hosts.FirstOrDefault(h => h.Namespace == ns);
            var roots = host?.Pid is { } pid && Os.IsAlive(pid, host.StartTime) ? [pid] : Array.Empty<int>();
            killed += Network.KillAll(ns, roots);
        }
        // Nodes whose namespace is already gone (deleted by hand) still have to go.
        foreach (var h in state?.Hosts ?? [])
            if (h.Pid is { } pid && Os.IsAlive(pid, h.StartTime) && !namespaces.Contains(h.Namespace))
                killed += Network.KillAll(h.Namespace, [pid]);

        foreach (var h in state?.Hosts ?? []) UnmountState(Path.Combine(StateDir, h.Name));
        foreach (var ns in namespaces) Os.Run("ip", "netns", "del", ns);
        var links = Network.LabLinks(Topology);
        // Bridge ports first: deleting a veth end also removes its peer.
        foreach (var link in links.OrderBy(l => l == Topology.Bridge))
            Os.Run("ip", "link", "del", link);
        var rules = Network.LabHostRules(Topology);
        foreach (var rule in rules) Os.Run("iptables", ["-w", "-D", .. rule]);

        File.Delete(LabState.PathIn(StateDir));
        File.Delete(Path.Combine(StateDir, "token"));

        var leftNs = Network.LabNamespaces(Topology);
        var leftLinks = Network.LabLinks(Topology);
        if (leftNs.Count > 0 || leftLinks.Count > 0)
            throw new LabException($"could not remove {string.Join(", ", leftNs.Concat(leftLinks))}: " +
                                   "check 'ip netns pids' for processes outside the lab's control, then run 'continuity-lab down' again");
        if (!quiet || namespaces.Count + links.Count > 0)
            output.WriteLine(namespaces.Count + links.Count + rules.Count == 0 && state is null
                ? "No lab to remove."
                : $"Removed the lab: {namespaces.Count} namespaces, {links.Count} links, {rules.Count} iptables rules, {killed} processes killed." +
                  (Directory.Exists(StateDir) ? $" Node logs are kept in {StateDir}." : ""));
        return 0;
    }
}
