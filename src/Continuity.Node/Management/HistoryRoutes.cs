using System.Globalization;
using Akka.Actor;
using Continuity.Core.Apps;
using Continuity.Core.Membership;
using Continuity.Node.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Continuity.Node.Management;

/// <summary>
/// GET /v1/history: this node's audit trail and the switches the cluster knows of, newest first, one entry per
/// switch (by application, epoch and time). The switches come from the history file every data node keeps (Core's SwitchHistory: it
/// survives restarts and moves of the owner), merged over the up data nodes, plus what is held in memory (each
/// application's last switch at its owner, each member's last takeover in the MIB) for a node whose file is unreadable.
/// </summary>
public static class HistoryRoutes
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 10_000;

    /// <param name="Kind">"action" (an audit entry of this node) or "switch".</param>
    public sealed record EntryDto(string Kind, string Time, string? Node,
        string? Remote = null, string? Token = null, string? Action = null, string? Target = null, string? Detail = null,
        string? Outcome = null, int? Status = null, string? Reason = null,
        string? App = null, string? From = null, string? To = null, long? Epoch = null, int? PacketsReplayed = null,
        IReadOnlyDictionary<string, long>? Phases = null);

    public sealed record HistoryDto(string Node, int Limit, int Total, IReadOnlyList<EntryDto> Entries, IReadOnlyList<string> Gaps);

    public static void Map(WebApplication app, ActorSystem system, HostSettings settings, IActorRef? guardian, AuditLog audit)
    {
        app.MapGet("/v1/history", async (HttpContext ctx) =>
        {
            if (ParseLimit(ctx.Request.Query["limit"]) is { Error: { } error })
                return Results.Json(new { error }, ManagementServer.Json, statusCode: 400);
            var limit = ParseLimit(ctx.Request.Query["limit"]).Limit;

            var entries = audit.ReadNewestFirst().Select(e => new EntryDto("action", e.Time, settings.NodeName, e.Remote, e.Token, e.Action,
                e.Target, e.Detail, e.Outcome, e.Status, e.Reason)).ToList();
            var gaps = new List<string>();
            // The same switch comes from several sources with the same epoch and time (epochs alone restart after a
            // restart of the whole cluster).
            var switches = new Dictionary<(string App, long Epoch, string At), EntryDto>();
            void Add(string app, AppRoutes.SwitchDto s)
            {
                switches.TryAdd((app, s.Epoch, s.At), new EntryDto("switch", s.At, null, Reason: s.Reason, App: app, From: s.From, To: s.To,
                    Epoch: s.Epoch, PacketsReplayed: s.PacketsReplayed, Phases: s.Phases));
            }

            var cluster = Akka.Cluster.Cluster.Get(system);
            string NameOf(string address) => NodeNames.NameOfAddress(cluster.State, address);
            if (guardian is not null)
            {
                try
                {
                    var kept = await guardian.Ask<AppsProtocol.SwitchHistory>(new AppsProtocol.GetSwitchHistory(), TimeSpan.FromSeconds(10));
                    foreach (var k in kept.Switches) Add(k.App, AppRoutes.ToDto(k.Switch, NameOf));
                    gaps.AddRange(kept.Gaps);
                }
                catch (Exception e) { gaps.Add($"the data nodes' switch histories could not be read ({e.GetType().Name})"); }
            }
            if (guardian is not null)
            {
                try
                {
                    var view = await guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(10));
                    foreach (var a in view.Apps)
                        if (AppRoutes.ToDto(a, address => NodeNames.NameOfAddress(cluster.State, address)).LastSwitch is { } s) Add(a.Name, s);
                }
                catch (Exception e) { gaps.Add($"the applications' owners did not answer ({e.GetType().Name}): their last switch is missing"); }
            }
            var mib = await MibRoutes.CollectAsync(system, settings);
            foreach (var n in mib.Nodes)
            {
                if (!n.Reachable) gaps.Add($"{n.Node} did not answer: its last takeover is missing");
                foreach (var a in n.Apps)
                    if (a.LastSwitch is { } s) Add(a.App, s);
            }

            var all = entries.Concat(switches.Values)
                .OrderByDescending(e => DateTimeOffset.TryParse(e.Time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : DateTimeOffset.MinValue)
                .ToList();
            return Results.Json(new HistoryDto(settings.NodeName, limit, all.Count, all.Take(limit).ToList(), gaps), ManagementServer.Json);
        });
    }

    /// <summary>?limit=N: absent means <see cref="DefaultLimit"/>; anything but one whole number from 1 to <see cref="MaxLimit"/> is refused.</summary>
    internal static (int Limit, string? Error) ParseLimit(Microsoft.Extensions.Primitives.StringValues values)
    {
        if (values.Count == 0) return (DefaultLimit, null);
        if (values.Count > 1) return (0, $"'limit' is given {values.Count} times: give it once, e.g. GET /v1/history?limit=50");
        var text = values[0] ?? "";
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > MaxLimit)
            return (0, $"'limit' must be a whole number from 1 to {MaxLimit}, got '{(text.Length > 40 ? text[..40] + "…" : text)}': e.g. GET /v1/history?limit=50");
        return (n, null);
    }
}
