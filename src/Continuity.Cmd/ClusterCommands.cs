using System.Text.Json;
using System.Text.Json.Nodes;
using static Continuity.Cmd.TextFormat;

namespace Continuity.Cmd;

internal static class ClusterCommands
{
    public static async Task<int> ShowAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        NoArgs(ctx, args);
        var reply = await ctx.Client.GetAsync("v1/cluster", ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }

        var cluster = reply.Body as JsonObject ?? throw new CommandFailedException("the node sent an unexpected answer to GET /v1/cluster");
        var members = Array(cluster["members"]).OfType<JsonObject>().ToList();
        var unreachable = Array(cluster["unreachable"]).Select(n => Str(n)).ToHashSet();
        var self = Str(cluster["self"], "");

        var rows = members.Select(m =>
        {
            var address = Str(m["address"]);
            // The member flag and the unreachable list can disagree briefly; either one means trouble.
            var reachable = (m["reachable"] is null || Bool(m["reachable"])) && !unreachable.Contains(address);
            return (IReadOnlyList<string>)
            [
                Str(m["node"]) + (address == self ? "*" : ""),
                address,
                Str(m["status"]),
                Array(m["roles"]).Count == 0 ? "-" : string.Join(",", Array(m["roles"]).Select(r => Str(r))),
                reachable ? "yes" : "NO",
            ];
        }).ToList();
        Table(ctx.Out, ["NODE", "ADDRESS", "STATUS", "ROLES", "REACHABLE"], rows);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine($"leader: {Describe(cluster["leader"], members)}");
        ctx.Out.WriteLine($"oldest: {Describe(cluster["oldest"], members)}");
        if (self.Length > 0) ctx.Out.WriteLine($"self:   {Describe(cluster["self"], members)} (marked *)");
        var strays = unreachable.Where(u => members.All(m => Str(m["address"]) != u)).ToList();
        if (strays.Count > 0) ctx.Out.WriteLine($"unreachable (not in member list): {string.Join(", ", strays)}");
        return ExitCodes.Ok;
    }

    public static async Task<int> TailAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        NoArgs(ctx, args);
        try
        {
            await foreach (var line in ctx.Client.StreamLinesAsync("v1/cluster/events", ctx.Cancel))
            {
                ctx.Out.WriteLine(ctx.Options.Json ? line : FormatEvent(line));
                // Flushed per event: the whole point of tail is to see it the moment it happens.
                await ctx.Out.FlushAsync();
            }
        }
        catch (OperationCanceledException) when (ctx.Cancel.IsCancellationRequested)
        {
            return ExitCodes.Ok;
        }
        throw new CmdException(ExitCodes.Unreachable, $"the node at {ctx.Options.Node} closed the event stream");
    }

    public static Task<int> LeaveAsync(CommandContext ctx, IReadOnlyList<string> args) =>
        PostForMemberAsync(ctx, args, "v1/cluster/leave", "leaving");

    public static Task<int> DownAsync(CommandContext ctx, IReadOnlyList<string> args) =>
        PostForMemberAsync(ctx, args, "v1/cluster/down", "downing");

    public static async Task<int> DownUnreachableAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        NoArgs(ctx, args);
        var reply = await ctx.Client.PostAsync("v1/cluster/down-unreachable", null, ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }
        var downed = Array(reply.Body?["downed"]).Select(n => Str(n)).ToList();
        ctx.Out.WriteLine(downed.Count == 0 ? "no unreachable members to down" : $"downing {downed.Count} member(s):");
        foreach (var address in downed) ctx.Out.WriteLine($"  {address}");
        return ExitCodes.Ok;
    }

    private static async Task<int> PostForMemberAsync(CommandContext ctx, IReadOnlyList<string> args, string path, string verb)
    {
        if (args.Count != 1) throw ctx.Usage(args.Count == 0 ? "which member? give an address or a node name" : "too many arguments");
        var address = await ResolveAddressAsync(ctx, args[0]);
        var reply = await ctx.Client.PostAsync(path, new Dictionary<string, string> { ["address"] = address }, ctx.Cancel);
        if (ctx.Options.Json) ctx.WriteJson(reply);
        else ctx.Out.WriteLine($"{Str(reply.Body?["result"], verb)}: {address}");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// Operators think in node names (n2), Akka in addresses; anything without a scheme is looked up
    /// in the member list so a typo fails here instead of downing nothing.
    /// </summary>
    internal static async Task<string> ResolveAddressAsync(CommandContext ctx, string target)
    {
        if (target.Contains("://", StringComparison.Ordinal)) return target;
        var reply = await ctx.Client.GetAsync("v1/cluster", ctx.Cancel);
        var members = Array(reply.Body?["members"]).OfType<JsonObject>().ToList();
        var match = members.FirstOrDefault(m => string.Equals(Str(m["node"], ""), target, StringComparison.OrdinalIgnoreCase));
        if (match is not null && Str(match["address"], "") is { Length: > 0 } address) return address;
        var known = members.Select(m => Str(m["node"])).Where(n => n != "-").ToList();
        throw new CommandFailedException(
            $"no cluster member named '{target}' (known: {(known.Count == 0 ? "none" : string.Join(", ", known))}); give a node name or an akka.tcp:// address");
    }

    internal static string FormatEvent(string line)
    {
        JsonObject? e;
        try
        {
            e = JsonNode.Parse(line) as JsonObject;
        }
        catch (JsonException)
        {
            e = null;
        }
        // An event shape this console doesn't know yet is still worth showing verbatim.
        if (e is null) return line;
        var subject = Str(e["member"], "") is { Length: > 0 } m ? m : Str(e["leader"], "");
        var parts = new[] { Str(e["time"], ""), Str(e["event"], "?").PadRight(17), Str(e["node"], "-").PadRight(4), subject, Str(e["status"], "") };
        return string.Join("  ", parts.Where(p => p.Length > 0)).TrimEnd();
    }

    private static string Describe(JsonNode? addressNode, IReadOnlyList<JsonObject> members)
    {
        var address = Str(addressNode, "");
        if (address.Length == 0) return "(none)";
        var node = members.FirstOrDefault(m => Str(m["address"]) == address)?["node"];
        return node is null ? address : $"{Str(node)} ({address})";
    }

    internal static void NoArgs(CommandContext ctx, IReadOnlyList<string> args)
    {
        if (args.Count > 0) throw ctx.Usage($"unexpected argument '{args[0]}'");
    }
}
