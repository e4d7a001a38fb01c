using System.Globalization;
using System.Text.Json.Nodes;
using static Continuity.Cmd.TextFormat;

namespace Continuity.Cmd;

/// <summary>The MIB (GET /v1/mib): every member's figures, or one node's in detail.</summary>
internal static class MibCommands
{
    public static async Task<int> MibShowAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        ClusterCommands.NoArgs(ctx, args);
        var reply = await ctx.Client.GetAsync("v1/mib", ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }

        var nodes = Nodes(reply);
        Table(ctx.Out, ["NODE", "REACHABLE", "CPU", "MEMORY", "DISK FREE", "JOURNAL", "QUEUE BACKLOG", "QUEUE DROPS", "APPS"],
            nodes.Select(n => (IReadOnlyList<string>)
            [
                Str(n["node"]),
                Bool(n["reachable"]) ? "yes" : "NO",
                Percent(n["cpuPercent"]),
                Of(Bytes(Long(n["memoryUsedBytes"])), Bytes(Long(n["memoryTotalBytes"]))),
                Of(Bytes(Long(n["diskFreeBytes"])), Bytes(Long(n["diskTotalBytes"]))),
                Bytes(Long(n["journalBytes"])),
                Sum(n, "backlog"),
                Drops(n),
                Array(n["apps"]).Count.ToString(CultureInfo.InvariantCulture),
            ]).ToList());

        var apps = nodes.SelectMany(n => Array(n["apps"]).OfType<JsonObject>().Select(a => (Node: Str(n["node"]), App: a))).ToList();
        if (apps.Count > 0)
        {
            ctx.Out.WriteLine();
            AppTable(ctx.Out, apps);
            Lags(ctx.Out, apps);
        }
        foreach (var n in nodes.Where(n => n["error"] is not null))
            ctx.Out.WriteLine($"{Str(n["node"])}: {Str(n["error"])}");
        return ExitCodes.Ok;
    }

    /// <summary>One node in detail: the node answering, or the one named.</summary>
    public static async Task<int> NodeShowAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        if (args.Count > 1) throw ctx.Usage($"unexpected argument '{args[1]}'");
        var reply = await ctx.Client.GetAsync("v1/mib", ctx.Cancel);
        var name = args.Count == 1 ? args[0] : Str(reply.Body?["self"], "");
        var nodes = Nodes(reply);
        var n = nodes.FirstOrDefault(x => string.Equals(Str(x["node"], ""), name, StringComparison.OrdinalIgnoreCase))
                ?? throw new CommandFailedException(
                    $"no node named '{name}' in the MIB (known: {(nodes.Count == 0 ? "none" : string.Join(", ", nodes.Select(x => Str(x["node"]))))})");
        if (ctx.Options.Json)
        {
            ctx.Out.WriteLine(n.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return ExitCodes.Ok;
        }

        var w = ctx.Out;
        w.WriteLine($"node:        {Str(n["node"])}");
        w.WriteLine($"address:     {Str(n["address"])}");
        if (!Bool(n["reachable"]))
        {
            w.WriteLine($"reachable:   NO ({Str(n["error"])})");
            return ExitCodes.Ok;
        }
        w.WriteLine($"sampled at:  {Str(n["sampledAt"])}");
        w.WriteLine($"cpu:         {Percent(n["cpuPercent"])}");
        w.WriteLine($"memory:      {Of(Bytes(Long(n["memoryUsedBytes"])), Bytes(Long(n["memoryTotalBytes"])))} used");
        w.WriteLine($"disk:        {Of(Bytes(Long(n["diskFreeBytes"])), Bytes(Long(n["diskTotalBytes"])))} free (state directory)");
        w.WriteLine($"journal:     {Bytes(Long(n["journalBytes"]))}");
        if (n["error"] is not null) w.WriteLine($"unreadable:  {Str(n["error"])}");
        var queues = Array(n["queues"]).OfType<JsonObject>().ToList();
        if (queues.Count == 0) w.WriteLine("queues:      (none bound)");
        else
        {
            w.WriteLine();
            Table(w, ["QUEUE", "BACKLOG", "QUEUE DROPPED", "USER DROPPED"], queues.Select(q => (IReadOnlyList<string>)
                [Num(q["queue"]), Num(q["backlog"]), Num(q["queueDropped"]), Num(q["userDropped"])]).ToList());
        }
        var apps = Array(n["apps"]).OfType<JsonObject>().Select(a => (Node: Str(n["node"]), App: a)).ToList();
        w.WriteLine();
        if (apps.Count == 0) w.WriteLine("apps:        (none on this node)");
        else AppTable(w, apps);
        Lags(w, apps);
        foreach (var (_, a) in apps.Where(x => x.App["lastSwitch"] is JsonObject))
        {
            var sw = (JsonObject)a["lastSwitch"]!;
            var phases = sw["phases"] as JsonObject;
            var parts = phases?.Select(p => $"{(p.Key.EndsWith("Ms", StringComparison.Ordinal) ? p.Key[..^2] : p.Key)} {Duration(Long(p.Value))}") ?? [];
            w.WriteLine($"{Str(a["app"])}: last takeover {Str(sw["from"])} -> {Str(sw["to"])} at {Str(sw["at"])} ({Str(sw["reason"])}), " +
                        $"{Num(sw["packetsReplayed"])} packets replayed; {string.Join(", ", parts)}");
        }
        return ExitCodes.Ok;
    }

    /// <summary>The figures of the max-standby-lag rule (each primary's standbys, and the standbys it dropped) and the standbys
    /// refusing checkpoints.</summary>
    private static void Lags(TextWriter w, IReadOnlyList<(string Node, JsonObject App)> apps)
    {
        foreach (var (_, a) in apps.Where(x => x.App["standbyLags"] is JsonArray { Count: > 0 }))
            w.WriteLine($"{Str(a["app"])}: standby lag " + string.Join(", ", ((JsonArray)a["standbyLags"]!).OfType<JsonObject>().Select(l =>
                $"{Str(l["standby"])} {Num(l["packetsBehind"])} packets, oldest waiting {Duration(Long(l["oldestWaitMs"]))}")));
        foreach (var (node, a) in apps.Where(x => x.App["droppedBehind"] is JsonValue))
            w.WriteLine($"{Str(a["app"])}: {node} was dropped from the standbys: {Str(a["droppedBehind"])}");
        foreach (var (_, a) in apps.Where(x => x.App["checkpointRefusals"] is JsonArray { Count: > 0 }))
            foreach (var r in ((JsonArray)a["checkpointRefusals"]!).OfType<JsonObject>())
                w.WriteLine($"{Str(a["app"])}: standby {Str(r["standby"])} refused {Num(r["checkpoints"])} checkpoint(s) in a row " +
                            $"since {Str(r["since"])}: {Str(r["reason"])}");
    }

    private static void AppTable(TextWriter w, IReadOnlyList<(string Node, JsonObject App)> apps) =>
        Table(w, ["APP", "NODE", "ROLE", "EPOCH", "CAPTURED", "RELEASED", "LOG DEPTH", "CHECKPOINT", "SIZE", "FREEZE", "SHIP", "CHECKPOINTS", "TAKEOVERS"],
            apps.Select(x =>
            {
                var a = x.App;
                var cp = a["lastCheckpoint"] as JsonObject;
                return (IReadOnlyList<string>)
                [
                    Str(a["app"]), x.Node, Str(a["role"]), Num(a["epoch"]), Num(a["packetsCaptured"]), Num(a["packetsReleased"]),
                    Num(a["logDepth"]), cp is null ? "-" : Str(cp["id"]), Bytes(Long(cp?["bytes"])), Duration(Long(cp?["freezeMs"])),
                    Duration(Long(a["lastShipMs"])), Num(a["checkpointCount"]), Num(a["takeovers"]),
                ];
            }).ToList());

    private static List<JsonObject> Nodes(NodeReply reply) =>
        reply.Body is JsonObject o && o["nodes"] is JsonArray nodes
            ? nodes.OfType<JsonObject>().ToList()
            : throw new CommandFailedException("the node sent an unexpected answer to GET /v1/mib");

    private static string Num(JsonNode? n) => Long(n)?.ToString(CultureInfo.InvariantCulture) ?? "-";

    private static string Percent(JsonNode? n) =>
        n is JsonValue v && v.TryGetValue<double>(out var d) ? d.ToString("0.0", CultureInfo.InvariantCulture) + "%" : "-";

    private static string Of(string part, string whole) => part == "-" && whole == "-" ? "-" : $"{part} / {whole}";

    private static string Sum(JsonObject node, string field)
    {
        var queues = Array(node["queues"]).OfType<JsonObject>().ToList();
        return queues.Count == 0 ? "-" : queues.Sum(q => Long(q[field]) ?? 0).ToString(CultureInfo.InvariantCulture);
    }

    private static string Drops(JsonObject node)
    {
        var queues = Array(node["queues"]).OfType<JsonObject>().ToList();
        return queues.Count == 0 ? "-" : queues.Sum(q => (Long(q["queueDropped"]) ?? 0) + (Long(q["userDropped"]) ?? 0)).ToString(CultureInfo.InvariantCulture);
    }
}
