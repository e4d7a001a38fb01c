using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static Continuity.Cmd.TextFormat;

namespace Continuity.Cmd;

/// <summary>What happened (GET /v1/history) and how much the packet log holds (GET /v1/mib, per app and node).</summary>
internal static class HistoryCommands
{
    private static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true };

    public static async Task<int> HistoryAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        int? limit = null;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string? value = null;
            if (arg == "--limit")
            {
                if (i + 1 >= args.Count) throw ctx.Usage("--limit needs a number of entries, as in --limit 50");
                value = args[++i];
            }
            else if (arg.StartsWith("--limit=", StringComparison.Ordinal)) value = arg["--limit=".Length..];
            else if (arg.StartsWith('-')) throw ctx.Usage($"unknown option '{arg}'");
            else throw ctx.Usage($"unexpected argument '{arg}'");
            // Checked here too, so a typo costs no round trip; the node checks it again (the API is public).
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > 10_000)
                throw ctx.Usage($"--limit must be a whole number from 1 to 10000, got '{value}'");
            limit = n;
        }
        var reply = await ctx.Client.GetAsync(limit is null ? "v1/history" : $"v1/history?limit={limit}", ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }

        var entries = Array(reply.Body?["entries"]).OfType<JsonObject>().ToList();
        if (entries.Count == 0) ctx.Out.WriteLine("no actions audited on this node and no switch known");
        else
            Table(ctx.Out, ["TIME", "WHO", "WHAT", "OUTCOME"], entries.Select(e => (IReadOnlyList<string>)
            [
                Time(Str(e["time"])),
                Str(e["kind"]) == "switch" ? "(cluster)" : $"{Str(e["remote"])} token {Str(e["token"], "none")}",
                What(e),
                Outcome(e),
            ]).ToList());
        var shown = entries.Count;
        if (Long(reply.Body?["total"]) is { } total && total > shown)
            ctx.Out.WriteLine($"{shown} newest of {total} entries shown; --limit N for more");
        foreach (var gap in Array(reply.Body?["gaps"])) ctx.Out.WriteLine($"incomplete: {Str(gap)}");
        return ExitCodes.Ok;
    }

    private static string Time(string iso) =>
        DateTimeOffset.TryParse(iso, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "Z"
            : iso;

    private static string What(JsonObject e)
    {
        if (Str(e["kind"]) == "switch")
            return $"switch {Str(e["app"])} {Str(e["from"], "(none)")} -> {Str(e["to"])} ({Str(e["reason"])}), epoch {Str(e["epoch"])}, " +
                   $"{Str(e["packetsReplayed"], "0")} packets replayed";
        return string.Join(' ', new[] { Str(e["action"]), Str(e["target"], ""), Str(e["detail"], "") }.Where(s => s.Length > 0));
    }

    private static string Outcome(JsonObject e)
    {
        if (Str(e["kind"]) == "switch")
        {
            var phases = e["phases"] as JsonObject;
            return phases is null ? "done" : $"done in {Duration(phases.Sum(p => Long(p.Value) ?? 0))}";
        }
        var outcome = $"{Str(e["outcome"])} {Str(e["status"])}";
        return e["reason"] is JsonValue ? $"{outcome}: {Str(e["reason"])}" : outcome;
    }

    /// <summary>The packet log per app and node (depth since the checkpoint's mark, captured, released, checkpoints) and each node's journal.</summary>
    public static async Task<int> LogStatsAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        ClusterCommands.NoArgs(ctx, args);
        var reply = await ctx.Client.GetAsync("v1/mib", ctx.Cancel);
        var nodes = reply.Body is JsonObject o && o["nodes"] is JsonArray list
            ? list.OfType<JsonObject>().ToList()
            : throw new CommandFailedException("the node sent an unexpected answer to GET /v1/mib");

        if (ctx.Options.Json)
        {
            // Only the log's figures, in the MIB's own names, so a script reads the same fields either way.
            var stats = new JsonObject
            {
                ["nodes"] = new JsonArray(nodes.Select(n => (JsonNode)new JsonObject
                {
                    ["node"] = n["node"]?.DeepClone(),
                    ["reachable"] = n["reachable"]?.DeepClone(),
                    ["error"] = n["error"]?.DeepClone(),
                    ["journalBytes"] = n["journalBytes"]?.DeepClone(),
                    ["apps"] = new JsonArray(Array(n["apps"]).OfType<JsonObject>().Select(a => (JsonNode)new JsonObject
                    {
                        ["app"] = a["app"]?.DeepClone(),
                        ["role"] = a["role"]?.DeepClone(),
                        ["epoch"] = a["epoch"]?.DeepClone(),
                        ["logDepth"] = a["logDepth"]?.DeepClone(),
                        ["packetsCaptured"] = a["packetsCaptured"]?.DeepClone(),
                        ["packetsReleased"] = a["packetsReleased"]?.DeepClone(),
                        ["checkpointCount"] = a["checkpointCount"]?.DeepClone(),
                        ["lastCheckpoint"] = a["lastCheckpoint"]?.DeepClone(),
                        ["lastShipMs"] = a["lastShipMs"]?.DeepClone(),
                    }).ToArray()),
                }).ToArray()),
            };
            ctx.Out.WriteLine(stats.ToJsonString(Pretty));
            return ExitCodes.Ok;
        }

        var apps = nodes.SelectMany(n => Array(n["apps"]).OfType<JsonObject>().Select(a => (Node: Str(n["node"]), App: a)))
            .OrderBy(x => Str(x.App["app"]), StringComparer.Ordinal).ThenBy(x => x.Node, StringComparer.Ordinal).ToList();
        if (apps.Count == 0) ctx.Out.WriteLine("no application on any node that answered");
        else
            Table(ctx.Out, ["APP", "NODE", "ROLE", "LOG DEPTH", "CAPTURED", "RELEASED", "CHECKPOINTS", "LAST CHECKPOINT", "SIZE", "AGE"],
                apps.Select(x =>
                {
                    var a = x.App;
                    var cp = a["lastCheckpoint"] as JsonObject;
                    return (IReadOnlyList<string>)
                    [
                        Str(a["app"]), x.Node, Str(a["role"]), Num(a["logDepth"]), Num(a["packetsCaptured"]), Num(a["packetsReleased"]),
                        Num(a["checkpointCount"]), cp is null ? "-" : Str(cp["id"]), Bytes(Long(cp?["bytes"])), Duration(Long(cp?["ageMs"])),
                    ];
                }).ToList());
        ctx.Out.WriteLine();
        Table(ctx.Out, ["NODE", "JOURNAL"], nodes.Select(n => (IReadOnlyList<string>)
            [Str(n["node"]), Bool(n["reachable"]) ? Bytes(Long(n["journalBytes"])) : $"- (did not answer: {Str(n["error"])})"]).ToList());
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("log depth: packets logged after the newest checkpoint's mark (what a failover replays); captured, released and");
        ctx.Out.WriteLine("checkpoints count this epoch on the primary; journal: the node's SQLite files (0 with PostgreSQL)");
        return ExitCodes.Ok;
    }

    private static string Num(JsonNode? n) => Long(n)?.ToString(CultureInfo.InvariantCulture) ?? "-";
}
