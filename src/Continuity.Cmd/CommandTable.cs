namespace Continuity.Cmd;

internal delegate Task<int> CommandHandler(CommandContext ctx, IReadOnlyList<string> args);

/// <summary>One console command. Help, dispatch and suggestions all read this, so they cannot drift apart.</summary>
internal sealed record CommandSpec(string Name, string Arguments, string Summary, CommandHandler Handler)
{
    public string[] Words { get; } = Name.Split(' ');

    /// <summary>Interactive-only commands (exit, quit) that end the session after running.</summary>
    public bool EndsSession { get; init; }

    public string Usage => Arguments.Length == 0 ? Name : $"{Name} {Arguments}";
}

internal static class CommandTable
{
    public static readonly IReadOnlyList<CommandSpec> All =
    [
        new("cluster show", "", "members with status, roles and reachability; leader and oldest", ClusterCommands.ShowAsync),
        new("cluster tail", "", "print membership events as they happen, until Ctrl-C", ClusterCommands.TailAsync),
        new("cluster leave", "ADDR|NODE", "ask a member to leave the cluster gracefully", ClusterCommands.LeaveAsync),
        new("cluster down", "ADDR|NODE", "mark a member as down (use for crashed nodes only)", ClusterCommands.DownAsync),
        new("cluster down-unreachable", "", "down every member currently unreachable", ClusterCommands.DownUnreachableAsync),
        new("app list", "", "protected apps with primary, standbys, state, checkpoint age, log depth", AppCommands.ListAsync),
        new("app status", "NAME", "details of one app including the last switchover's phases", AppCommands.StatusAsync),
        new("app switch", "NAME --to NODE [--no-wait] [--timeout S]", "planned switchover of an app to a standby node, followed until it completes", AppCommands.SwitchAsync),
        new("app checkpoint", "NAME [--no-wait] [--timeout S]", "take a checkpoint now and follow it: frozen and dumping (one phase: the node answers once the dump is archived, with the freeze time), then shipping, as standbys holding it (bytes in flight are not exposed)", AppCommands.CheckpointAsync),
        new("app pause", "NAME", "maintenance: pause automatic recovery (a lost primary is not replaced, a failed program not restarted, nothing rebalanced); capture, log and checkpoints go on", AppCommands.PauseAsync),
        new("app resume", "NAME", "resume automatic recovery; what happened meanwhile (a lost primary) is decided at once, without loss", AppCommands.ResumeAsync),
        new("history", "[--limit N]", "this node's audit trail (who asked what, accepted or refused, and why) and the switches the cluster knows of, newest first", HistoryCommands.HistoryAsync),
        new("log stats", "", "the packet log per app and node: depth since the checkpoint's mark, packets captured/released, checkpoints (count, size, age), journal size", HistoryCommands.LogStatsAsync),
        new("node show", "[NODE]", "one node's figures (CPU, memory, disk, queues, journal) and what it knows of each app", MibCommands.NodeShowAsync),
        new("mib show", "", "every member's figures and per-app counters (the MIB); --json for the node's JSON", MibCommands.MibShowAsync),
        new("help", "[COMMAND]", "list commands, or show one command's usage", HelpCommand.RunAsync),
        new("exit", "", "leave interactive mode", (_, _) => Task.FromResult(ExitCodes.Ok)) { EndsSession = true },
        new("quit", "", "leave interactive mode", (_, _) => Task.FromResult(ExitCodes.Ok)) { EndsSession = true },
    ];

    /// <summary>Longest match wins, so "cluster down-unreachable" is never taken for "cluster down".</summary>
    public static (CommandSpec Spec, List<string> Args)? Find(IReadOnlyList<string> words)
    {
        foreach (var spec in All.OrderByDescending(s => s.Words.Length))
        {
            if (words.Count < spec.Words.Length) continue;
            if (!spec.Words.Select((w, i) => string.Equals(w, words[i], StringComparison.OrdinalIgnoreCase)).All(m => m))
                continue;
            return (spec, words.Skip(spec.Words.Length).ToList());
        }
        return null;
    }

    public static CommandSpec? Exact(string name) =>
        All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Commands whose first word is <paramref name="group"/> ("cluster", "app").</summary>
    public static IReadOnlyList<CommandSpec> Group(string group) =>
        All.Where(s => s.Words.Length > 1 && string.Equals(s.Words[0], group, StringComparison.OrdinalIgnoreCase)).ToList();

    /// <summary>The command closest to what was typed, by edit distance over the same number of words.</summary>
    public static CommandSpec? Closest(IReadOnlyList<string> words)
    {
        CommandSpec? best = null;
        var bestDistance = int.MaxValue;
        foreach (var spec in All)
        {
            var typed = string.Join(' ', words.Take(spec.Words.Length)).ToLowerInvariant();
            var distance = Levenshtein(typed, spec.Name);
            if (distance < bestDistance)
            {
                best = spec;
                bestDistance = distance;
            }
        }
        // Beyond half the name it is a guess, not a typo; better to point at help than mislead.
        return best is not null && bestDistance <= Math.Max(2, best.Name.Length / 2) ? best : null;
    }

    internal static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}

internal static class HelpCommand
{
    public const string UsageLine = "usage: continuity-cmd [--node HOST:PORT] [--token-file FILE] [--ca FILE] [--json] [COMMAND ARGS...]";

    public static Task<int> RunAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        if (ctx.Options.Json)
        {
            var specs = args.Count == 0 ? CommandTable.All
                : CommandTable.Exact(string.Join(' ', args)) is { } one ? [one]
                : args.Count == 1 && CommandTable.Group(args[0]) is { Count: > 0 } g ? g
                : throw new UnknownCommandException(args);
            var json = new System.Text.Json.Nodes.JsonObject
            {
                ["commands"] = new System.Text.Json.Nodes.JsonArray(specs.Where(s => !s.EndsSession).Select(s => (System.Text.Json.Nodes.JsonNode)
                    new System.Text.Json.Nodes.JsonObject { ["name"] = s.Name, ["usage"] = s.Usage, ["summary"] = s.Summary }).ToArray()),
            };
            ctx.Out.WriteLine(json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return Task.FromResult(ExitCodes.Ok);
        }
        if (args.Count == 0)
        {
            WriteGeneral(ctx.Out);
            return Task.FromResult(ExitCodes.Ok);
        }

        var name = string.Join(' ', args);
        if (CommandTable.Exact(name) is { } spec)
        {
            ctx.Out.WriteLine($"usage: {spec.Usage}");
            ctx.Out.WriteLine($"  {spec.Summary}");
            return Task.FromResult(ExitCodes.Ok);
        }
        if (args.Count == 1 && CommandTable.Group(args[0]) is { Count: > 0 } group)
        {
            WriteCommands(ctx.Out, group);
            return Task.FromResult(ExitCodes.Ok);
        }
        throw new UnknownCommandException(args);
    }

    public static void WriteGeneral(TextWriter w)
    {
        w.WriteLine(UsageLine);
        w.WriteLine();
        w.WriteLine("Without COMMAND, starts an interactive session (commands can also be piped in).");
        w.WriteLine();
        w.WriteLine("commands:");
        WriteCommands(w, CommandTable.All);
        w.WriteLine();
        w.WriteLine("options:");
        w.WriteLine("  --node HOST:PORT     management endpoint of a node (default 127.0.0.1:8558, or CONTINUITY_NODE)");
        w.WriteLine("  --token-file FILE    bearer token (default CONTINUITY_TOKEN_FILE, /etc/continuity/token,");
        w.WriteLine("                       /var/lib/continuity-lab/token)");
        w.WriteLine("  --ca FILE            speak HTTPS, trusting the node's certificate or its CA in FILE (PEM; default CONTINUITY_CA)");
        w.WriteLine("  --json               print JSON instead of tables (every command; help too)");
        w.WriteLine();
        w.WriteLine("exit codes: 0 ok, 1 command failed, 2 bad usage, 3 node unreachable, 4 authentication refused");
    }

    private static void WriteCommands(TextWriter w, IEnumerable<CommandSpec> specs)
    {
        var list = specs.ToList();
        var width = list.Max(s => s.Usage.Length) + 2;
        foreach (var spec in list)
            w.WriteLine($"  {spec.Usage.PadRight(width)}{spec.Summary}");
    }
}

internal sealed class UnknownCommandException(IReadOnlyList<string> words)
    : Exception($"unknown command '{string.Join(' ', words)}'")
{
    public IReadOnlyList<string> Words { get; } = words;
}
