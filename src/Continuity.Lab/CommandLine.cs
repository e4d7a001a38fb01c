using System.Globalization;

namespace Continuity.Lab;

/// <summary>A parsed command line. Every command carries the global options.</summary>
internal abstract record LabCommand
{
    /// <summary>--state-dir, if given; otherwise CONTINUITY_LAB_DIR or the default applies.</summary>
    public string? StateDir { get; init; }
    /// <summary>--instance, if given; otherwise CONTINUITY_LAB_INSTANCE or 0 applies.</summary>
    public int? Instance { get; init; }
}

/// <param name="StateSize">Size of a tmpfs each node gets as its state directory (tmpfs syntax, e.g. 256M), or null for
/// the lab's directory on the host's disk.</param>
internal sealed record UpCommand(int Nodes, string? ConfigFile, int Witnesses, bool NoNodes, TimeSpan Timeout, string? StateSize = null) : LabCommand;
internal sealed record StatusCommand(bool Json) : LabCommand;
internal sealed record ExecCommand(string Host, IReadOnlyList<string> Command) : LabCommand;
internal sealed record CrashCommand(string? Node, string? PrimaryOfApp) : LabCommand;
internal sealed record ReviveCommand(string Node) : LabCommand;
internal sealed record PartitionCommand(IReadOnlyList<string> Nodes) : LabCommand;
internal sealed record HealCommand : LabCommand;
internal sealed record DownCommand : LabCommand;
/// <param name="Scenarios">Only these scenarios (names of Chaos.Scenarios); empty means every one.</param>
/// <param name="FaultLength">Every timed fault lasts this long instead of the plan's random length (to explore the
/// lengths around a failure's, with the rest of its plan).</param>
internal sealed record ChaosCommand(int Runs, int Seed, string? ReportFile, IReadOnlyList<string> Scenarios, TimeSpan? FaultLength = null) : LabCommand;
/// <param name="Modes">Only these transports (names of Probe.TransportProbe.Modes); empty means every one.</param>
internal sealed record ProbeCommand(string From, string To, int RoundTrips, int Rounds, IReadOnlyList<string> Modes, bool Json) : LabCommand;
/// <summary>One end of a probe, run by <see cref="ProbeCommand"/> inside a host's namespace (not meant to be typed).</summary>
/// <param name="Address">The echo: the address it listens on. The pinging end: the echo's IP:PORT.</param>
/// <param name="Bind">The pinging end's own address.</param>
internal sealed record ProbeEndCommand(bool Echo, string Mode, string Address, string? Bind, string? Certificate, int RoundTrips) : LabCommand;
internal sealed record HelpCommand : LabCommand;

/// <summary>A command line the lab cannot accept; the message says what is wrong.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// A small hand-written parser: the grammar is tiny, and the lab must not pull packages
/// that the rest of the product does not need.
/// </summary>
internal static class CommandLine
{
    public const int MaxNodes = 88; // node addresses .11 .. .98 stay below the client's .100

    public const string Usage = """
        Usage: continuity-lab [--instance N] [--state-dir DIR] COMMAND [OPTIONS]

        Runs a whole Continuity cluster on this machine, one network namespace per node.

        Commands:
          up --nodes N [--config FILE] [--witness | --witnesses N] [--no-nodes] [--timeout SECONDS] [--state-size SIZE]
                        Create the lab network (bridge ctbr0 198.18.0.1/24, nodes ct-n1.. at
                        198.18.0.11.., client ct-client at 198.18.0.100), start a node in each
                        namespace and wait until every node sees all members Up.
                        --witness adds w1 (198.18.0.10, role witness); --witnesses N adds w1..wN
                        (198.18.0.10 downwards, N up to 9), e.g. to make the member count odd
                        (nodes + witnesses: a split then never ties). --no-nodes creates the
                        network only. --timeout defaults to 60. --state-size gives each node
                        a file system of its own for its state directory: a tmpfs of SIZE
                        (e.g. 256M) in the node's mount namespace, so one node's disk can be
                        filled; it is lost with the node process (a revived node starts empty).
          status [--json]
                        List the lab's hosts, their node process and what the cluster says.
          exec NODE|client -- CMD...
                        Run CMD inside that host's network namespace; returns CMD's exit code.
          crash NODE | crash --primary-of APP
                        Power loss: links down first (no FIN/RST escapes), then SIGKILL.
          revive NODE   Links back up and the node restarted with the same config.
          partition NODE...
                        Cut the listed nodes off from the other nodes (the host and the
                        client still reach both sides).
          heal          Remove every partition.
          down          Remove everything the lab created; safe to run at any time.
          chaos --runs N --seed S [--report FILE] [--scenario NAME]... [--fault-length SECONDS]
                        Build a lab of 3 data nodes and 2 witnesses (5 members: a split never
                        ties) running ct-kv (each node's state a 256M tmpfs) and, N times,
                        inject one seeded random
                        fault under verifying clients, then check that no acknowledged byte was
                        lost or duplicated, no connection reset, at most one node held the VIP
                        and the cluster came back to one primary and two standbys. Prints a
                        table (scenario, runs, failures, worst stall), also written to FILE as
                        markdown; a failing run keeps its logs and prints the command that
                        replays it. Scenarios: crash-idle, crash-load, crash-checkpoint, hang,
                        standby-crash, partition-primary, replication-loss, replication-dup,
                        node-kill, replication-reorder, crash-restore, crash-replay,
                        split-majority, split-minority, queue-full, journal-full,
                        crash-ack-verdict. The lab is taken down at the end. --fault-length
                        makes every timed fault (hang, partition, standby down, replication
                        faults) last that long instead of its seeded length.

          probe FROM TO [--round-trips N] [--rounds R] [--mode M]... [--json]
                        Time request/reply round trips (200-byte request, 40-byte reply) from
                        host FROM to host TO over each transport, each end a process in its
                        host's namespace, the modes alternated R rounds (default 2) of N
                        (default 2000): tcp (the kernel alone), tls (.NET's SslStream with the
                        lab's cluster certificate), remoting and remoting-tls (Akka.Remote as
                        the nodes run it, without and with TLS). Prints p50/p90/p99/p99.9 and
                        the ratio to tcp; what a replication round trip costs in the transport.

        Options:
          --instance N      Lab instance 0-255 (default: $CONTINUITY_LAB_INSTANCE or 0). Instance N
                            uses namespaces ctN-n1.., bridge ctNbr and 198.18.N.0/24 (instance 0:
                            ct-n1.., ctbr0, 198.18.0.0/24), so labs can run side by side.
          --state-dir DIR   Lab state directory (default: $CONTINUITY_LAB_DIR, else
                            /var/lib/continuity-lab for instance 0, /var/lib/continuity-lab-N).
          -h, --help        Show this help.

        Exit codes: 0 success, 1 failure, 2 bad arguments (exec: the command's own exit code).
        """;

    public static LabCommand Parse(IReadOnlyList<string> args)
    {
        string? stateDir = null;
        int? instance = null;
        string? verb = null;
        var rest = new List<string>();

        // --state-dir and --instance are global: accept them before or after the command, but never after "--".
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (a == "--")
            {
                rest.AddRange(args.Skip(i));
                break;
            }
            if (a == "--state-dir" || a.StartsWith("--state-dir=", StringComparison.Ordinal))
            {
                stateDir = TakeValue(args, ref i, "--state-dir");
                continue;
            }
            if (a == "--instance" || a.StartsWith("--instance=", StringComparison.Ordinal))
            {
                var n = TakeValue(args, ref i, "--instance");
                if (!int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value > Topology.MaxInstance)
                    throw new UsageException($"--instance must be a whole number from 0 to {Topology.MaxInstance}, got '{n}'");
                instance = value;
                continue;
            }
            if (verb is null && (a == "-h" || a == "--help" || a == "help")) return new HelpCommand();
            if (verb is null && !a.StartsWith('-')) { verb = a; continue; }
            if (verb is null) throw new UsageException($"unknown option '{a}' before the command");
            rest.Add(a);
        }

        if (verb is null) throw new UsageException("no command given");
        if (rest.Contains("-h") || rest.Contains("--help"))
        {
            var dashDash = rest.IndexOf("--");
            var help = rest.FindIndex(r => r is "-h" or "--help");
            if (dashDash < 0 || help < dashDash) return new HelpCommand();
        }

        LabCommand command = verb switch
        {
            "up" => ParseUp(rest),
            "status" => ParseStatus(rest),
            "exec" => ParseExec(rest),
            "crash" => ParseCrash(rest),
            "revive" => new ReviveCommand(SingleName(rest, "revive", "NODE")),
            "partition" => ParsePartition(rest),
            "heal" => NoArgs(rest, "heal", new HealCommand()),
            "down" => NoArgs(rest, "down", new DownCommand()),
            "chaos" => ParseChaos(rest),
            "probe" => ParseProbe(rest),
            "probe-end" => ParseProbeEnd(rest),
            _ => throw new UsageException($"unknown command '{verb}'"),
        };
        return command with { StateDir = stateDir, Instance = instance };
    }

    private static UpCommand ParseUp(List<string> args)
    {
        int? nodes = null;
        string? config = null;
        int? witnesses = null;
        var noNodes = false;
        string? stateSize = null;
        var timeout = TimeSpan.FromSeconds(60);
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            var name = a.Split('=', 2)[0];
            switch (name)
            {
                case "--nodes":
                    var n = TakeValue(args, ref i, "--nodes");
                    if (!int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count < 1 || count > MaxNodes)
                        throw new UsageException($"--nodes must be a whole number from 1 to {MaxNodes}, got '{n}'");
                    nodes = count;
                    break;
                case "--config":
                    config = TakeValue(args, ref i, "--config");
                    break;
                case "--timeout":
                    timeout = ParseDuration(TakeValue(args, ref i, "--timeout"), "--timeout");
                    break;
                case "--witness":
                    NoValue(a, "--witness");
                    if (witnesses is not null && witnesses != 1)
                        throw new UsageException($"up: --witness (one witness) contradicts --witnesses {witnesses}: give one of them");
                    witnesses = 1;
                    break;
                case "--witnesses":
                    var w = TakeValue(args, ref i, "--witnesses");
                    if (!int.TryParse(w, NumberStyles.None, CultureInfo.InvariantCulture, out var wc) || wc > Topology.MaxWitnesses)
                        throw new UsageException($"--witnesses must be a whole number from 0 to {Topology.MaxWitnesses}, got '{w}'");
                    if (witnesses is not null && witnesses != wc)
                        throw new UsageException($"up: --witnesses {wc} contradicts --witness (one witness): give one of them");
                    witnesses = wc;
                    break;
                case "--no-nodes":
                    NoValue(a, "--no-nodes");
                    noNodes = true;
                    break;
                case "--state-size":
                    stateSize = TakeValue(args, ref i, "--state-size");
                    if (!System.Text.RegularExpressions.Regex.IsMatch(stateSize, "^[1-9][0-9]{0,6}[KMG]$"))
                        throw new UsageException($"--state-size must be a size like 256M (a whole number and K, M or G), got '{stateSize}'");
                    break;
                default:
                    throw new UsageException($"up: unknown argument '{a}'");
            }
        }
        if (nodes is null) throw new UsageException("up: --nodes N is required (for example: up --nodes 3)");
        return new UpCommand(nodes.Value, config, witnesses ?? 0, noNodes, timeout, stateSize);
    }

    public const int MaxChaosRuns = 100_000;

    private static ChaosCommand ParseChaos(List<string> args)
    {
        int? runs = null, seed = null;
        string? report = null;
        TimeSpan? faultLength = null;
        var scenarios = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            switch (a.Split('=', 2)[0])
            {
                case "--runs":
                    var r = TakeValue(args, ref i, "--runs");
                    if (!int.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > MaxChaosRuns)
                        throw new UsageException($"chaos: --runs must be a whole number from 1 to {MaxChaosRuns}, got '{r}'");
                    runs = n;
                    break;
                case "--seed":
                    var s = TakeValue(args, ref i, "--seed");
                    if (!int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                        throw new UsageException($"chaos: --seed must be a whole number from 0 to {int.MaxValue}, got '{s}'");
                    seed = value;
                    break;
                case "--report":
                    report = TakeValue(args, ref i, "--report");
                    break;
                case "--scenario":
                    var name = TakeValue(args, ref i, "--scenario");
                    if (Chaos.Scenarios.Find(name) is null)
                        throw new UsageException($"chaos: unknown scenario '{name}'; the scenarios are: {string.Join(", ", Chaos.Scenarios.All.Select(x => x.Name))}");
                    if (!scenarios.Contains(name)) scenarios.Add(name);
                    break;
                case "--fault-length":
                    var f = TakeValue(args, ref i, "--fault-length");
                    if (!double.TryParse(f, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds) || seconds is < 0.5 or > 600)
                        throw new UsageException($"chaos: --fault-length must be a number of seconds from 0.5 to 600, got '{f}'");
                    faultLength = TimeSpan.FromSeconds(seconds);
                    break;
                default:
                    throw new UsageException($"chaos: unknown argument '{a}'");
            }
        }
        // Both required: a run that cannot be replayed is worth little, and "how many" is the user's time to spend.
        if (runs is null) throw new UsageException("chaos: --runs N is required (for example: chaos --runs 20 --seed 1)");
        if (seed is null) throw new UsageException("chaos: --seed S is required, so that every run can be replayed (for example: chaos --runs 20 --seed 1)");
        return new ChaosCommand(runs.Value, seed.Value, report, scenarios, faultLength);
    }

    private static ProbeCommand ParseProbe(List<string> args)
    {
        var hosts = new List<string>();
        var roundTrips = 2000;
        var rounds = 2;
        var modes = new List<string>();
        var json = false;
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            switch (a.Split('=', 2)[0])
            {
                case "--round-trips":
                    roundTrips = Whole(TakeValue(args, ref i, "--round-trips"), "probe: --round-trips", 10, 1_000_000);
                    break;
                case "--rounds":
                    rounds = Whole(TakeValue(args, ref i, "--rounds"), "probe: --rounds", 1, 100);
                    break;
                case "--mode":
                    var mode = TakeValue(args, ref i, "--mode");
                    if (!Probe.TransportProbe.Modes.Contains(mode))
                        throw new UsageException($"probe: no mode '{mode}' (modes: {string.Join(", ", Probe.TransportProbe.Modes)})");
                    if (!modes.Contains(mode)) modes.Add(mode);
                    break;
                case "--json":
                    NoValue(a, "--json");
                    json = true;
                    break;
                default:
                    if (a.StartsWith('-')) throw new UsageException($"probe: unknown argument '{a}'");
                    hosts.Add(ValidName(a));
                    break;
            }
        }
        if (hosts.Count != 2 || hosts[0] == hosts[1])
            throw new UsageException("probe: name two different hosts, the pinging one first, as in: probe n1 n2");
        return new ProbeCommand(hosts[0], hosts[1], roundTrips, rounds, modes, json);
    }

    private static ProbeEndCommand ParseProbeEnd(List<string> args)
    {
        if (args.Count == 0 || args[0] is not ("echo" or "ping"))
            throw new UsageException("probe-end: expected 'echo' or 'ping' first (this command is run by 'probe')");
        string? mode = null, address = null, bind = null, certificate = null;
        var roundTrips = 2000;
        for (var i = 1; i < args.Count; i++)
        {
            var a = args[i];
            switch (a.Split('=', 2)[0])
            {
                case "--mode": mode = TakeValue(args, ref i, "--mode"); break;
                case "--address": address = TakeValue(args, ref i, "--address"); break;
                case "--bind": bind = TakeValue(args, ref i, "--bind"); break;
                case "--certificate": certificate = TakeValue(args, ref i, "--certificate"); break;
                case "--round-trips": roundTrips = Whole(TakeValue(args, ref i, "--round-trips"), "probe-end: --round-trips", 10, 1_000_000); break;
                default: throw new UsageException($"probe-end: unknown argument '{a}'");
            }
        }
        var echo = args[0] == "echo";
        if (mode is null || !Probe.TransportProbe.Modes.Contains(mode))
            throw new UsageException($"probe-end: --mode must be one of {string.Join(", ", Probe.TransportProbe.Modes)}");
        if (address is null) throw new UsageException("probe-end: --address is required");
        if (!echo && bind is null) throw new UsageException("probe-end: ping needs --bind (its own address)");
        if (mode.EndsWith("tls", StringComparison.Ordinal) && certificate is null)
            throw new UsageException($"probe-end: mode {mode} needs --certificate (the cluster's PKCS#12 file)");
        return new ProbeEndCommand(echo, mode, address, bind, certificate, roundTrips);
    }

    private static int Whole(string text, string what, int min, int max) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new UsageException($"{what} must be a whole number from {min} to {max}, got '{text}'");

    private static StatusCommand ParseStatus(List<string> args)
    {
        var json = false;
        foreach (var a in args)
        {
            if (a == "--json") json = true;
            else throw new UsageException($"status: unknown argument '{a}'");
        }
        return new StatusCommand(json);
    }

    private static ExecCommand ParseExec(List<string> args)
    {
        var sep = args.IndexOf("--");
        var before = sep < 0 ? args : args.Take(sep).ToList();
        var command = sep < 0 ? [] : args.Skip(sep + 1).ToList();
        if (before.Count != 1 || before[0].StartsWith('-'))
            throw new UsageException("exec: expected exactly one host (a node name or 'client') before '--', as in: exec n1 -- ip addr");
        if (command.Count == 0)
            throw new UsageException("exec: expected a command after '--', as in: exec n1 -- ip addr");
        return new ExecCommand(ValidName(before[0]), command);
    }

    private static CrashCommand ParseCrash(List<string> args)
    {
        if (args.Count >= 1 && (args[0] == "--primary-of" || args[0].StartsWith("--primary-of=", StringComparison.Ordinal)))
        {
            var i = 0;
            var app = TakeValue(args, ref i, "--primary-of");
            if (i != args.Count - 1) throw new UsageException($"crash: unexpected argument '{args[i + 1]}'");
            return new CrashCommand(null, app);
        }
        return new CrashCommand(SingleName(args, "crash", "NODE (or --primary-of APP)"), null);
    }

    private static PartitionCommand ParsePartition(List<string> args)
    {
        if (args.Count == 0) throw new UsageException("partition: name at least one node, as in: partition n1");
        var names = args.Select(ValidName).Distinct().ToList();
        if (names.Contains("client")) throw new UsageException("partition: only nodes can be partitioned, not the client");
        return new PartitionCommand(names);
    }

    private static string SingleName(List<string> args, string verb, string what)
    {
        if (args.Count != 1 || args[0].StartsWith('-'))
            throw new UsageException($"{verb}: expected exactly one {what}");
        var name = ValidName(args[0]);
        if (name == "client") throw new UsageException($"{verb}: 'client' is not a node");
        return name;
    }

    private static string ValidName(string name)
    {
        if (name.Length == 0 || name.Length > 10 || !name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c)))
            throw new UsageException($"'{name}' is not a lab host name (names look like n1, w1 or client)");
        return name;
    }

    private static T NoArgs<T>(List<string> args, string verb, T command) =>
        args.Count == 0 ? command : throw new UsageException($"{verb}: unexpected argument '{args[0]}'");

    private static void NoValue(string arg, string name)
    {
        if (arg != name) throw new UsageException($"{name} takes no value");
    }

    private static string TakeValue(IReadOnlyList<string> args, ref int i, string name)
    {
        var a = args[i];
        if (a.Length > name.Length && a[name.Length] == '=')
        {
            var v = a[(name.Length + 1)..];
            return v.Length > 0 ? v : throw new UsageException($"{name} needs a value");
        }
        if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
            throw new UsageException($"{name} needs a value");
        return args[++i];
    }

    /// <summary>Seconds as a number ("90"), or with a unit: "90s", "2m", "500ms".</summary>
    internal static TimeSpan ParseDuration(string text, string option)
    {
        var (number, scale) = text switch
        {
            _ when text.EndsWith("ms", StringComparison.Ordinal) => (text[..^2], 0.001),
            _ when text.EndsWith('s') => (text[..^1], 1.0),
            _ when text.EndsWith('m') => (text[..^1], 60.0),
            _ => (text, 1.0),
        };
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value <= 0)
            throw new UsageException($"{option} must be a positive duration such as 60, 90s or 2m, got '{text}'");
        return TimeSpan.FromSeconds(value * scale);
    }
}
