using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Membership;
using Continuity.Core.Metrics;
using Continuity.Core.Supervision;
using Continuity.Node.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using static Continuity.Core.Supervision.IntrospectionProtocol;

namespace Continuity.Node.Management;

/// <summary>
/// The MIB resources: GET /v1/mib (every member's MIB, JSON) and GET /metrics (this node's MIB, Prometheus text).
/// Both are answered from the sample each node's <see cref="NodeIntrospector"/> keeps.
/// </summary>
public static class MibRoutes
{
    /// <summary>Every member's MIB, asked all at once; a member that does not answer within ask-timeout is listed unreachable.</summary>
    public static async Task<MibJson.MibDto> CollectAsync(ActorSystem system, HostSettings settings)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var timeout = settings.Node.Sampling.AskTimeout;
        string NameOf(string address) => NodeNames.NameOfAddress(cluster.State, address);
        var members = cluster.State.Members.Where(m => m.Status != MemberStatus.Removed)
            .Select(m => (Name: NodeNames.NameOf(m), m.Address)).ToList();
        // Not yet a member (still joining): the node still answers for itself.
        if (members.All(m => m.Address != cluster.SelfAddress)) members.Add((settings.NodeName, cluster.SelfAddress));
        var nodes = await Task.WhenAll(members.Select(async m =>
        {
            try
            {
                var mib = await system.ActorSelection(new RootActorPath(m.Address) / "user" / NodeIntrospector.Name)
                    .Ask<NodeMib>(new GetMib(), timeout);
                return MibJson.FromMib(mib, NameOf, DateTimeOffset.UtcNow);
            }
            catch (Exception)
            {
                return MibJson.Unreachable(m.Name, m.Address.ToString(),
                    $"did not answer within {timeout.TotalSeconds:0.###} s (continuity.supervision.ask-timeout)");
            }
        }));
        return new MibJson.MibDto(settings.NodeName, nodes.OrderBy(n => n.Node, StringComparer.Ordinal).ToList());
    }

    public static void Map(WebApplication app, ActorSystem system, HostSettings settings)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var timeout = settings.Node.Sampling.AskTimeout;
        string NameOf(string address) => NodeNames.NameOfAddress(cluster.State, address);

        app.MapGet("/v1/mib", async () => Results.Json(await CollectAsync(system, settings), ManagementServer.Json));

        app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            NodeMib mib;
            try
            {
                mib = await system.ActorSelection("/user/" + NodeIntrospector.Name).Ask<NodeMib>(new GetMib(), timeout);
            }
            catch (Exception)
            {
                return Results.Text("# the node's introspection actor did not answer\n", "text/plain", statusCode: 503);
            }
            return Results.Text(PrometheusMetrics.Write(mib, NameOf, DateTimeOffset.UtcNow), PrometheusMetrics.ContentType, Encoding.UTF8);
        });
    }
}

/// <summary>The JSON shapes of GET /v1/mib (version 1).</summary>
public static class MibJson
{
    public sealed record QueueDto(int Queue, long Backlog, long QueueDropped, long UserDropped);

    /// <summary>Primary: how far one standby's journal trails its capture (the figure of the max-standby-lag rule).</summary>
    /// <param name="Standby">The standby's node name.</param>
    /// <param name="PacketsBehind">Packets captured that it has not acknowledged as logged.</param>
    /// <param name="OldestWaitMs">How long the oldest of those has waited (0 when none waits).</param>
    public sealed record StandbyLagDto(string Standby, string Address, long Acked, long PacketsBehind, long OldestWaitMs);

    /// <summary>One stage of the packet path since its owner started (the primary's epoch, the standby's log): how many
    /// batches went through it and how long they took there (µs), or for batch-packets how many packets a batch held.</summary>
    /// <param name="Standby">The standby's node name, for the per-standby stage replicate; else null.</param>
    /// <param name="Unit">"us" (microseconds) or "packets".</param>
    public sealed record StageDto(string Stage, string? Standby, string Unit, long Count, double? P50, double? P99, double? Mean);

    /// <summary>A standby that refused the primary's checkpoints since it last stored one.</summary>
    /// <param name="Checkpoints">Checkpoints refused in a row.</param>
    /// <param name="Since">When the first of them was refused (ISO 8601).</param>
    /// <param name="Reason">The standby's words for the last refusal.</param>
    public sealed record CheckpointRefusalDto(string Standby, string Address, int Checkpoints, string Since, string Reason);

    /// <param name="StandbyLags">Primary: one entry per current standby (empty on other nodes).</param>
    /// <param name="CheckpointRefusals">Primary: the standbys refusing its checkpoints (empty when all store them).</param>
    /// <param name="DroppedBehind">Standby: why the owner dropped it for lagging, until a fresh checkpoint reached it.</param>
    /// <param name="Stages">Where the packets' hold goes: the primary's capture, replicate, release, hold; a standby's journal, batch-packets.</param>
    public sealed record AppDto(string App, string Role, long Epoch, long PacketsCaptured, long PacketsReleased, long LogDepth,
        AppRoutes.CheckpointDto? LastCheckpoint, long? LastShipMs, long CheckpointCount, long Takeovers, long PacketsReplayedTotal,
        AppRoutes.SwitchDto? LastSwitch, IReadOnlyList<StandbyLagDto> StandbyLags, string? DroppedBehind, IReadOnlyList<StageDto> Stages,
        IReadOnlyList<CheckpointRefusalDto> CheckpointRefusals);

    /// <param name="Reachable">False when the node did not answer in time; its figures are then null and its lists empty.</param>
    public sealed record NodeDto(string Node, string Address, bool Reachable, string? Error, string? SampledAt,
        double? CpuPercent, long? MemoryUsedBytes, long? MemoryTotalBytes, long? DiskFreeBytes, long? DiskTotalBytes,
        long? JournalBytes, IReadOnlyList<QueueDto> Queues, IReadOnlyList<AppDto> Apps);

    /// <param name="Self">Name of the node that answered.</param>
    public sealed record MibDto(string Self, IReadOnlyList<NodeDto> Nodes);

    public static NodeDto FromMib(NodeMib m, Func<string, string> nameOf, DateTimeOffset now)
    {
        var f = m.Figures;
        return new NodeDto(m.Node, m.Address, true, f.Error, m.SampledAt.ToString("O"), Math.Round(f.CpuPercent, 2),
            f.MemoryUsedBytes, f.MemoryTotalBytes, f.DiskFreeBytes, f.DiskTotalBytes, f.JournalBytes,
            f.Queues.Select(q => new QueueDto(q.Queue, q.Backlog, q.QueueDropped, q.UserDropped)).ToList(),
            m.Apps.Select(a => new AppDto(a.App, a.Role.ToString(), a.Epoch, a.PacketsCaptured, a.PacketsReleased, a.LogDepth,
                a.LastCheckpoint is { } c
                    ? new AppRoutes.CheckpointDto(c.Id, c.Epoch, c.Mark, c.At.ToString("O"), (long)(now - c.At).TotalMilliseconds, c.Bytes, (long)c.Freeze.TotalMilliseconds)
                    : null,
                a.LastShip is { } ship ? (long)ship.TotalMilliseconds : null,
                a.CheckpointCount, a.Takeovers, a.PacketsReplayedTotal,
                a.LastSwitch is { } s
                    ? new AppRoutes.SwitchDto(s.From is null ? null : nameOf(s.From), nameOf(s.To), s.At.ToString("O"), s.Reason, s.Epoch,
                        s.PacketsReplayed, s.Phases.ToDictionary(p => p.Key + "Ms", p => (long)p.Value.TotalMilliseconds))
                    : null,
                (a.StandbyLags ?? []).Select(l => new StandbyLagDto(nameOf(l.Node), l.Node, l.Acked, l.Packets, (long)l.OldestWait.TotalMilliseconds)).ToList(),
                a.DroppedBehind, (a.Stages ?? []).Select(st => Stage(st, nameOf)).ToList(),
                (a.CheckpointRefusals ?? []).Select(r => new CheckpointRefusalDto(nameOf(r.Node), r.Node, r.Checkpoints, r.Since.ToString("O"), r.Reason))
                    .ToList())).ToList());
    }

    public static StageDto Stage(StageFigures s, Func<string, string> nameOf)
    {
        var packets = s.Stage == Stages.BatchPackets;
        var scale = packets ? 1 : 1e6;
        double? Shown(double v) => double.IsNaN(v) ? null : Math.Round(v * scale, 1);
        return new StageDto(s.Stage, s.Standby is null ? null : nameOf(s.Standby), packets ? "packets" : "us", s.Count,
            Shown(s.Quantile(0.5)), Shown(s.Quantile(0.99)), s.Count == 0 ? null : Shown(s.Sum / s.Count));
    }

    public static NodeDto Unreachable(string node, string address, string why) =>
        new(node, address, false, why, null, null, null, null, null, null, null, [], []);
}

/// <summary>
/// Prometheus text exposition format 0.0.4, written by hand (no dependency): one HELP and one TYPE line per metric
/// family, then its samples. Labels: node, app, queue (and role, phase where named).
/// </summary>
public static class PrometheusMetrics
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string Write(NodeMib m, Func<string, string> nameOf, DateTimeOffset now)
    {
        var w = new StringBuilder();
        var node = new[] { ("node", m.Node) };
        var f = m.Figures;

        Family(w, "continuity_node_cpu_percent", "gauge", "Busy share of all CPUs between the last two samples, 0-100.", [(node, f.CpuPercent)]);
        Family(w, "continuity_node_memory_bytes", "gauge", "Memory in use (MemTotal - MemAvailable).", [(node, f.MemoryUsedBytes)]);
        Family(w, "continuity_node_memory_total_bytes", "gauge", "Memory installed (MemTotal).", [(node, f.MemoryTotalBytes)]);
        Family(w, "continuity_node_disk_free_bytes", "gauge", "Free space on the file system of the node's state directory.", [(node, f.DiskFreeBytes)]);
        Family(w, "continuity_node_disk_total_bytes", "gauge", "Size of the file system of the node's state directory.", [(node, f.DiskTotalBytes)]);
        Family(w, "continuity_node_journal_bytes", "gauge", "Size of the node's SQLite journal and snapshot files (0 with PostgreSQL).", [(node, f.JournalBytes)]);
        Family(w, "continuity_node_sample_timestamp_seconds", "gauge", "When these figures were sampled (Unix time).", [(node, m.SampledAt.ToUnixTimeMilliseconds() / 1000.0)]);
        Family(w, "continuity_node_sample_errors", "gauge", "1 if some figure of the last sample could not be read (see GET /v1/mib), else 0.", [(node, f.Error is null ? 0 : 1)]);

        (string, string)[] Q(IntrospectionProtocol.QueueFigures q) => [("node", m.Node), ("queue", q.Queue.ToString(CultureInfo.InvariantCulture))];
        Family(w, "continuity_queue_backlog_packets", "gauge", "Packets waiting in the NFQUEUE for a verdict (queue_total).", f.Queues.Select(q => (Q(q), (double)q.Backlog)));
        Family(w, "continuity_queue_dropped_total", "counter", "Packets dropped because the NFQUEUE was full (queue_dropped).", f.Queues.Select(q => (Q(q), (double)q.QueueDropped)));
        Family(w, "continuity_queue_user_dropped_total", "counter", "Packets not delivered to the node, netlink buffer full (user_dropped).", f.Queues.Select(q => (Q(q), (double)q.UserDropped)));

        (string, string)[] A(AppFigures a) => [("node", m.Node), ("app", a.App)];
        var apps = m.Apps;
        Family(w, "continuity_app_role", "gauge", "1 for the role this node has for the application (role label: Idle, Standby, Primary, TakingOver, Releasing).",
            apps.Select(a => (A(a).Append(("role", a.Role.ToString())).ToArray(), 1.0)));
        Family(w, "continuity_app_epoch", "gauge", "The application's epoch as this node knows it.", apps.Select(a => (A(a), (double)a.Epoch)));
        Family(w, "continuity_app_packets_captured_total", "counter", "Primary: packets logged in this epoch (resets with the epoch).", apps.Select(a => (A(a), (double)a.PacketsCaptured)));
        Family(w, "continuity_app_packets_released_total", "counter", "Primary: packets released to the program in this epoch (resets with the epoch).", apps.Select(a => (A(a), (double)a.PacketsReleased)));
        Family(w, "continuity_app_open_connections", "gauge", "Primary: established TCP connections to the application's VIP and ports.",
            apps.Where(a => a.OpenConnections is not null).Select(a => (A(a), (double)a.OpenConnections!.Value)));
        Family(w, "continuity_app_log_depth_packets", "gauge", "Packets logged after the newest checkpoint's mark (replayed by a failover).", apps.Select(a => (A(a), (double)a.LogDepth)));
        var withCp = apps.Where(a => a.LastCheckpoint is not null).ToList();
        Family(w, "continuity_app_checkpoint_bytes", "gauge", "Size of the newest checkpoint.", withCp.Select(a => (A(a), (double)a.LastCheckpoint!.Bytes)));
        Family(w, "continuity_app_checkpoint_freeze_seconds", "gauge", "How long the newest checkpoint froze the program.", withCp.Select(a => (A(a), a.LastCheckpoint!.Freeze.TotalSeconds)));
        Family(w, "continuity_app_checkpoint_age_seconds", "gauge", "Age of the newest checkpoint.", withCp.Select(a => (A(a), Math.Max(0, (now - a.LastCheckpoint!.At).TotalSeconds))));
        Family(w, "continuity_app_checkpoint_ship_seconds", "gauge", "Primary: from the last checkpoint archive being ready until every standby stored it.",
            apps.Where(a => a.LastShip is not null).Select(a => (A(a), a.LastShip!.Value.TotalSeconds)));
        Family(w, "continuity_app_checkpoints_total", "counter", "Primary: checkpoints taken in this epoch (resets with the epoch).", apps.Select(a => (A(a), (double)a.CheckpointCount)));
        Family(w, "continuity_app_takeovers_total", "counter", "Takeovers (switches to this node) completed since the node started.", apps.Select(a => (A(a), (double)a.Takeovers)));
        Family(w, "continuity_app_packets_replayed_total", "counter", "Packets replayed by this node's takeovers since it started.", apps.Select(a => (A(a), (double)a.PacketsReplayedTotal)));
        var lags = apps.SelectMany(a => (a.StandbyLags ?? []).Select(l => (Labels: A(a).Append(("standby", nameOf(l.Node))).ToArray(), Lag: l))).ToList();
        Family(w, "continuity_standby_lag_packets", "gauge", "Primary: packets a standby has not yet acknowledged as logged (standby label).",
            lags.Select(l => (l.Labels, (double)l.Lag.Packets)));
        Family(w, "continuity_standby_lag_seconds", "gauge", "Primary: how long the oldest packet a standby has not acknowledged has waited (the max-standby-lag figure).",
            lags.Select(l => (l.Labels, l.Lag.OldestWait.TotalSeconds)));
        Family(w, "continuity_standby_checkpoints_refused", "gauge", "Primary: checkpoints a standby refused in a row since it last stored one " +
            "(standby label; only standbys refusing now).",
            apps.SelectMany(a => (a.CheckpointRefusals ?? []).Select(r => (A(a).Append(("standby", nameOf(r.Node))).ToArray(), (double)r.Checkpoints))));
        var stages = apps.SelectMany(a => (a.Stages ?? []).Select(st =>
            (Labels: A(a).Append(("stage", st.Stage)).Concat(st.Standby is null ? [] : [("standby", nameOf(st.Standby))]).ToArray(), Figures: st))).ToList();
        HistogramFamily(w, "continuity_path_stage_seconds", "Time packets spent in each stage of their hold (stage label: capture, replicate " +
            "per standby, release, hold on the primary since its epoch began; journal on a standby since its log started), per batch.",
            stages.Where(s => s.Figures.Stage != Stages.BatchPackets));
        HistogramFamily(w, "continuity_standby_batch_packets", "Standby: packets per batch (Append) written to the journal.",
            stages.Where(s => s.Figures.Stage == Stages.BatchPackets).Select(s => (s.Labels.Where(l => l.Item1 != "stage").ToArray(), s.Figures)));
        var withSwitch = apps.Where(a => a.LastSwitch is not null).ToList();
        Family(w, "continuity_app_last_switch_timestamp_seconds", "gauge", "When this node last completed a takeover (Unix time).",
            withSwitch.Select(a => (A(a), a.LastSwitch!.At.ToUnixTimeMilliseconds() / 1000.0)));
        Family(w, "continuity_app_last_switch_phase_seconds", "gauge", "Duration of each phase of this node's last takeover (phase label).",
            withSwitch.SelectMany(a => a.LastSwitch!.Phases.Select(p => (A(a).Append(("phase", p.Key)).ToArray(), p.Value.TotalSeconds))));
        return w.ToString();
    }

    private static void Family(StringBuilder w, string name, string type, string help, IEnumerable<((string Name, string Value)[] Labels, double Value)> samples)
    {
        w.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\").Replace("\n", "\\n")).Append('\n');
        w.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        foreach (var (labels, value) in samples)
        {
            w.Append(name);
            if (labels.Length > 0)
                w.Append('{').Append(string.Join(",", labels.Select(l => $"{l.Name}=\"{Escape(l.Value)}\""))).Append('}');
            w.Append(' ').Append(Number(value)).Append('\n');
        }
    }

    private static void HistogramFamily(StringBuilder w, string name, string help, IEnumerable<((string Name, string Value)[] Labels, StageFigures Figures)> series)
    {
        w.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        w.Append("# TYPE ").Append(name).Append(" histogram\n");
        foreach (var (labels, f) in series)
        {
            var common = string.Join(",", labels.Select(l => $"{l.Name}=\"{Escape(l.Value)}\""));
            long cumulative = 0;
            for (var i = 0; i < f.Counts.Count; i++)
            {
                cumulative += f.Counts[i];
                var le = i < f.UpperBounds.Count ? Number(f.UpperBounds[i]) : "+Inf";
                w.Append(name).Append("_bucket{").Append(common).Append(",le=\"").Append(le).Append("\"} ").Append(cumulative).Append('\n');
            }
            w.Append(name).Append("_sum{").Append(common).Append("} ").Append(Number(f.Sum)).Append('\n');
            w.Append(name).Append("_count{").Append(common).Append("} ").Append(f.Count).Append('\n');
        }
    }

    private static string Escape(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    private static string Number(double v) =>
        double.IsNaN(v) ? "NaN" : double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf"
            : v.ToString("R", CultureInfo.InvariantCulture);
}
