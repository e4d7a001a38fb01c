using System.Text.Json.Nodes;
using static Continuity.Cmd.TextFormat;

namespace Continuity.Cmd;

internal static class AppCommands
{
    public static async Task<int> ListAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        ClusterCommands.NoArgs(ctx, args);
        var reply = await ctx.Client.GetAsync("v1/apps", ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }

        var apps = Array(reply.Body?["apps"]).OfType<JsonObject>().ToList();
        if (apps.Count == 0)
        {
            ctx.Out.WriteLine("no apps are protected on this cluster");
            return ExitCodes.Ok;
        }
        var rows = apps.Select(a => (IReadOnlyList<string>)
        [
            Str(a["name"]),
            Str(a["primary"]),
            Standbys(a),
            Str(a["state"]),
            Duration(Long(a["lastCheckpoint"]?["ageMs"])),
            Long(a["logDepth"])?.ToString() ?? "-",
        ]).ToList();
        Table(ctx.Out, ["APP", "PRIMARY", "STANDBYS", "STATE", "CHECKPOINT AGE", "LOG DEPTH"], rows);
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("standbys marked * are ready to take over");
        return ExitCodes.Ok;
    }

    public static async Task<int> StatusAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        var name = OneName(ctx, args);
        var reply = await ctx.Client.GetAsync($"v1/apps/{Uri.EscapeDataString(name)}", ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }

        var a = reply.Body as JsonObject ?? throw new CommandFailedException($"the node sent an unexpected answer for app '{name}'");
        var w = ctx.Out;
        w.WriteLine($"app:             {Str(a["name"], name)}");
        w.WriteLine($"state:           {Str(a["state"])}");
        w.WriteLine($"primary:         {Str(a["primary"])}");
        var standbys = Array(a["standbys"]).OfType<JsonObject>().ToList();
        if (standbys.Count == 0) w.WriteLine("standbys:        (none: the app is not protected)");
        for (var i = 0; i < standbys.Count; i++)
        {
            var s = standbys[i];
            w.WriteLine($"{(i == 0 ? "standbys:" : ""),-17}{Str(s["node"])} {(Bool(s["ready"]) ? "ready" : "NOT READY")}, " +
                        (s["checkpointId"] is null ? "no checkpoint" : $"checkpoint {Str(s["checkpointId"])} {Duration(Long(s["checkpointAgeMs"]))} old") +
                        $", log depth {Long(s["logDepth"])?.ToString() ?? "-"}");
        }

        if (a["lastCheckpoint"] is JsonObject cp)
            w.WriteLine($"last checkpoint: {Str(cp["id"])}, {Duration(Long(cp["ageMs"]))} ago, " +
                        $"{Bytes(Long(cp["bytes"]))}, froze the app {Duration(Long(cp["freezeMs"]))}, mark {Long(cp["mark"])?.ToString() ?? "-"}");
        else
            w.WriteLine("last checkpoint: (none yet)");
        w.WriteLine($"log depth:       {Long(a["logDepth"])?.ToString() ?? "-"} packets since the checkpoint");

        if (a["lastSwitch"] is JsonObject sw)
        {
            w.WriteLine($"last switch:     {Str(sw["from"])} -> {Str(sw["to"])} at {Str(sw["at"])} ({Str(sw["reason"])})");
            if (Phases(sw) is { } phases)
                w.WriteLine($"  phases:        {phases}");
            if (Long(sw["packetsReplayed"]) is { } replayed)
                w.WriteLine($"  replayed:      {replayed} packets");
        }
        else
        {
            w.WriteLine("last switch:     (never)");
        }
        return ExitCodes.Ok;
    }

    /// <summary>"vip 3ms, restore 120ms, ... (total 165ms)", or null when the switch reports no phases.</summary>
    private static string? Phases(JsonObject lastSwitch)
    {
        if (lastSwitch["phases"] is not JsonObject phases) return null;
        // Known phases in the order they happen; anything newer the node reports is appended.
        string[] order = ["vipMs", "restoreMs", "replayMs", "openMs"];
        var names = order.Where(phases.ContainsKey).Concat(phases.Select(p => p.Key).Except(order)).ToList();
        var total = names.Sum(n => Long(phases[n]) ?? 0);
        var parts = names.Select(n => $"{(n.EndsWith("Ms", StringComparison.Ordinal) ? n[..^2] : n)} {Duration(Long(phases[n]))}");
        return $"{string.Join(", ", parts)} (total {Duration(total)})";
    }

    public static Task<int> PauseAsync(CommandContext ctx, IReadOnlyList<string> args) => PauseOrResumeAsync(ctx, args, "pause");

    public static Task<int> ResumeAsync(CommandContext ctx, IReadOnlyList<string> args) => PauseOrResumeAsync(ctx, args, "resume");

    private static async Task<int> PauseOrResumeAsync(CommandContext ctx, IReadOnlyList<string> args, string verb)
    {
        if (args.Count != 1) throw ctx.Usage(args.Count == 0 ? "which app? give its NAME" : $"unexpected argument '{args[1]}'");
        var name = args[0];
        var reply = await ctx.Client.PostAsync($"v1/apps/{Uri.EscapeDataString(name)}/{verb}", null, ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }
        var changed = reply.Body?["changed"]?.GetValue<bool>() ?? true;
        ctx.Out.WriteLine(verb == "pause"
            ? changed
                ? $"{name}: automatic recovery paused. A lost primary is not replaced, a failed program not restarted, nothing rebalanced; " +
                  $"capture, log and checkpoints go on. Resume with 'app resume {name}'."
                : $"{name}: automatic recovery was already paused"
            : changed
                ? $"{name}: automatic recovery resumed; anything that happened meanwhile is decided now (see 'app status {name}')"
                : $"{name}: automatic recovery was not paused");
        return ExitCodes.Ok;
    }

    /// <summary>--no-wait and --timeout S of the commands that follow a long operation; false for any other word.</summary>
    private static bool FollowOption(CommandContext ctx, IReadOnlyList<string> args, ref int i, ref bool wait, ref TimeSpan timeout)
    {
        if (args[i] == "--no-wait")
        {
            wait = false;
            return true;
        }
        if (args[i] != "--timeout") return false;
        if (i + 1 >= args.Count || !int.TryParse(args[++i], out var seconds) || seconds <= 0)
            throw ctx.Usage("--timeout needs a number of seconds greater than 0, as in --timeout 300");
        timeout = TimeSpan.FromSeconds(seconds);
        return true;
    }

    public static async Task<int> SwitchAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        string? name = null, to = null;
        var wait = true;
        var timeout = TimeSpan.FromSeconds(120);
        for (var i = 0; i < args.Count; i++)
        {
            if (FollowOption(ctx, args, ref i, ref wait, ref timeout)) continue;
            if (args[i] == "--to")
            {
                if (i + 1 >= args.Count) throw ctx.Usage("--to needs a node name");
                to = args[++i];
            }
            else if (args[i].StartsWith("--to=", StringComparison.Ordinal)) to = args[i][5..];
            else if (args[i].StartsWith('-')) throw ctx.Usage($"unknown option '{args[i]}'");
            else if (name is null) name = args[i];
            else throw ctx.Usage($"unexpected argument '{args[i]}'");
        }
        if (name is null) throw ctx.Usage("which app? give its NAME");
        if (string.IsNullOrEmpty(to)) throw ctx.Usage("which node should take over? give --to NODE");

        var reply = await ctx.Client.PostAsync($"v1/apps/{Uri.EscapeDataString(name)}/switch",
            new Dictionary<string, string> { ["to"] = to }, ctx.Cancel);
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }
        var target = Str(reply.Body?["to"], to);
        ctx.Out.WriteLine($"{Str(reply.Body?["result"], "switching")}: {name} -> {target}");
        if (!wait)
        {
            ctx.Out.WriteLine($"follow with 'app status {name}'");
            return ExitCodes.Ok;
        }
        return await FollowSwitchAsync(ctx, name, target, Long(reply.Body?["epoch"]) ?? 0, timeout);
    }

    /// <summary>
    /// A planned switch takes seconds (final checkpoint, shipping, restore): a person wants to see it move and know
    /// when it is over. Polls the app until the target serves the new epoch, printing each change of state.
    /// </summary>
    private static async Task<int> FollowSwitchAsync(CommandContext ctx, string name, string target, long epoch, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string? last = null;
        // At least one look, however long the dump took: "no answer" would say nothing about where shipping stands.
        for (var first = true; first || clock.Elapsed < timeout; first = false)
        {
            JsonObject? app = null;
            try { app = (await ctx.Client.GetAsync($"v1/apps/{Uri.EscapeDataString(name)}", ctx.Cancel)).Body as JsonObject; }
            // A node busy with the switch may answer late or not at once: ask again until the timeout.
            catch (CmdException e) when (e.ExitCode is ExitCodes.CommandFailed or ExitCodes.Unreachable) { }
            if (app is not null)
            {
                var state = Str(app["state"]);
                var primary = Str(app["primary"]);
                var line = $"state {state}, primary {primary}";
                if (line != last) ctx.Out.WriteLine($"  [{clock.Elapsed.TotalSeconds,5:F1} s] {line}");
                last = line;
                var done = app["lastSwitch"] is JsonObject sw && (Long(sw["epoch"]) ?? 0) >= epoch && primary == target;
                if (done && state is "protected" or "degraded" or "unprotected")
                {
                    var phases = Phases((JsonObject)app["lastSwitch"]!);
                    ctx.Out.WriteLine($"switched {name} to {target} in {clock.Elapsed.TotalSeconds:F1} s" +
                                      (phases is null ? "" : $": {phases}"));
                    return ExitCodes.Ok;
                }
                if (state is "failed" or "down")
                {
                    ctx.Err.WriteLine($"error: the switch of {name} did not complete: state {state}: {Str(app["alarm"])}");
                    return ExitCodes.CommandFailed;
                }
            }
            await Task.Delay(TimeSpan.FromMilliseconds(500), ctx.Cancel);
        }
        ctx.Err.WriteLine($"error: {name} has not finished switching to {target} after {timeout.TotalSeconds:F0} s " +
                            $"(last seen: {last ?? "no answer"}); follow with 'app status {name}'");
        return ExitCodes.CommandFailed;
    }

    /// <summary>
    /// Takes a checkpoint and follows it to the standbys. What the node lets us observe: the request is answered once the
    /// program was frozen, dumped and archived (the answer says how long it was frozen); then each standby's view shows
    /// the checkpoint it holds. Bytes in flight are not exposed, so shipping progress counts standbys, not bytes.
    /// </summary>
    public static async Task<int> CheckpointAsync(CommandContext ctx, IReadOnlyList<string> args)
    {
        string? name = null;
        var wait = true;
        var timeout = TimeSpan.FromSeconds(120);
        for (var i = 0; i < args.Count; i++)
        {
            if (FollowOption(ctx, args, ref i, ref wait, ref timeout)) continue;
            if (args[i].StartsWith('-')) throw ctx.Usage($"unknown option '{args[i]}'");
            else if (name is null) name = args[i];
            else throw ctx.Usage($"unexpected argument '{args[i]}'");
        }
        if (name is null) throw ctx.Usage("which app? give its NAME");

        var path = $"v1/apps/{Uri.EscapeDataString(name)}";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var progress = new ProgressLine(ctx.Out, ctx.Env.OutputIsTerminal && !ctx.Options.Json);
        if (!ctx.Options.Json) progress.Show($"checkpoint {name}: frozen, dumping ...");
        // The node answers once the dump is archived; it waits up to 60 s for that, so the console waits a little longer.
        var post = ctx.Client.PostAsync($"{path}/checkpoint", null, ctx.Cancel, TimeSpan.FromSeconds(75));
        while (!ctx.Options.Json && ctx.Env.OutputIsTerminal && await Task.WhenAny(post, Task.Delay(200, ctx.Cancel)) != post)
            progress.Show($"checkpoint {name}: frozen, dumping ... {clock.Elapsed.TotalSeconds:F1} s");
        NodeReply reply;
        try { reply = await post; }
        finally { progress.End(); }
        if (ctx.Options.Json)
        {
            ctx.WriteJson(reply);
            return ExitCodes.Ok;
        }

        var id = Str(reply.Body?["id"], "");
        ctx.Out.WriteLine($"checkpoint {name}: dumped {(id.Length == 0 ? "" : id + ", ")}{Bytes(Long(reply.Body?["bytes"]))}, " +
                          $"the program was frozen {Duration(Long(reply.Body?["freezeMs"]))} ({clock.Elapsed.TotalSeconds:F1} s)");
        if (!wait || id.Length == 0)
        {
            ctx.Out.WriteLine($"follow with 'app status {name}'");
            return ExitCodes.Ok;
        }

        string? last = null;
        // At least one look, however long the dump took: "no answer" would say nothing about where shipping stands.
        for (var first = true; first || clock.Elapsed < timeout; first = false)
        {
            JsonObject? app = null;
            try { app = (await ctx.Client.GetAsync(path, ctx.Cancel)).Body as JsonObject; }
            // A busy node may answer late: ask again until the timeout.
            catch (CmdException e) when (e.ExitCode is ExitCodes.CommandFailed or ExitCodes.Unreachable) { }
            if (app is not null)
            {
                var standbys = Array(app["standbys"]).OfType<JsonObject>().ToList();
                if (standbys.Count == 0)
                {
                    ctx.Out.WriteLine($"checkpoint {name}: no standby to ship to (state {Str(app["state"])}): the checkpoint stays on the primary");
                    return ExitCodes.Ok;
                }
                // A later periodic checkpoint replaces ours on a standby: it holds at least as much, so it counts.
                var holding = standbys.Where(s => Str(s["checkpointId"], "") is { Length: > 0 } held &&
                                                  string.CompareOrdinal(held, id) >= 0 && SameEpoch(held, id)).ToList();
                var line = $"checkpoint {name}: shipping {Bar(holding.Count, standbys.Count)} {holding.Count}/{standbys.Count} standbys" +
                           (holding.Count == 0 ? "" : $" ({string.Join(", ", holding.Select(s => Str(s["node"])))})");
                last = line;
                progress.Show(line);
                if (holding.Count == standbys.Count)
                {
                    progress.End();
                    ctx.Out.WriteLine($"checkpoint {name}: {id} is on every standby, {clock.Elapsed.TotalSeconds:F1} s after it was asked for");
                    return ExitCodes.Ok;
                }
            }
            await Task.Delay(ctx.Env.PollInterval, ctx.Cancel);
        }
        progress.End();
        ctx.Err.WriteLine($"error: checkpoint {id} of {name} has not reached every standby after {timeout.TotalSeconds:F0} s " +
                          $"(last seen: {last ?? "no answer"}); follow with 'app status {name}'");
        return ExitCodes.CommandFailed;
    }

    /// <summary>Checkpoint ids start with their epoch ("e3-..."): one of another epoch is not comparable by name.</summary>
    private static bool SameEpoch(string a, string b) => a.Split('-')[0] == b.Split('-')[0];

    private static string Standbys(JsonObject app)
    {
        var standbys = Array(app["standbys"]).OfType<JsonObject>()
            .Select(s => Str(s["node"]) + (Bool(s["ready"]) ? "*" : "")).ToList();
        return standbys.Count == 0 ? "-" : string.Join(",", standbys);
    }

    private static string OneName(CommandContext ctx, IReadOnlyList<string> args) => args.Count switch
    {
        0 => throw ctx.Usage("which app? give its NAME"),
        1 => args[0],
        _ => throw ctx.Usage($"unexpected argument '{args[1]}'"),
    };
}
