using System.Text.Json;
using Akka.Actor;
using Continuity.Core.Apps;
using Continuity.Core.Membership;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Continuity.Node.Management;

/// <summary>The management API's application resources (version 1), answered by the node's AppsGuardian.</summary>
public static class AppRoutes
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    public sealed record StandbyDto(string Node, string Address, bool Ready, long LogDepth, string? CheckpointId, long? CheckpointAgeMs);
    public sealed record CheckpointDto(string Id, long Epoch, long Mark, string At, long AgeMs, long Bytes, long FreezeMs);
    public sealed record SwitchDto(string? From, string To, string At, string Reason, long Epoch, int PacketsReplayed, IReadOnlyDictionary<string, long> Phases);
    public sealed record AppDto(string Name, long Epoch, string? Primary, IReadOnlyList<StandbyDto> Standbys, string State,
        CheckpointDto? LastCheckpoint, long LogDepth, SwitchDto? LastSwitch, string? Alarm);

    /// <param name="nameOf">Maps a member's address to its node name; people and the lab speak in names.</param>
    public static AppDto ToDto(AppView a, Func<string, string> nameOf)
    {
        var now = DateTimeOffset.UtcNow;
        return new AppDto(a.Name, a.Epoch, a.Primary is null ? null : nameOf(a.Primary),
            a.Standbys.Select(s => new StandbyDto(s.NodeName, s.Node, s.Ready, s.LogDepth, s.Checkpoint?.Id,
                s.Checkpoint is { } sc ? (long)(now - sc.At).TotalMilliseconds : null)).ToList(),
            a.State,
            a.LastCheckpoint is { } c
                ? new CheckpointDto(c.Id, c.Epoch, c.Mark, c.At.ToString("O"), (long)(now - c.At).TotalMilliseconds, c.Bytes, (long)c.Freeze.TotalMilliseconds)
                : null,
            a.LogDepth,
            a.LastSwitch is { } s ? ToDto(s, nameOf) : null,
            a.Alarm);
    }

    public static SwitchDto ToDto(Continuity.Core.Election.SwitchInfo s, Func<string, string> nameOf) =>
        new(s.From is null ? null : nameOf(s.From), nameOf(s.To), s.At.ToString("O"), s.Reason, s.Epoch, s.PacketsReplayed,
            s.Phases.ToDictionary(p => p.Key + "Ms", p => (long)p.Value.TotalMilliseconds));

    /// <param name="guardian">The node's AppsGuardian, or null on a node that runs no applications (a witness).</param>
    /// <param name="inFlight">The actions this node is carrying out, so a conflicting one is refused at once.</param>
    public static void Map(WebApplication app, ActorSystem system, IActorRef? guardian, AppActions inFlight)
    {
        var json = ManagementServer.Json;
        IResult NoApps() => Results.Json(new { error = "this node runs no applications (it has no \"data\" role or no continuity.apps): ask a data node" }, json, statusCode: 503);

        var cluster = Akka.Cluster.Cluster.Get(system);
        string NameOf(string address) => NodeNames.NameOfAddress(cluster.State, address);
        async Task<AppsView> View() => await guardian!.Ask<AppsView>(new AppsProtocol.GetApps(), AskTimeout);

        app.MapGet("/v1/apps", async () =>
        {
            if (guardian is null) return NoApps();
            var view = await View();
            return Results.Json(new { apps = view.Apps.Select(a => ToDto(a, NameOf)) }, json);
        });

        app.MapGet("/v1/apps/{name}", async (string name) =>
        {
            if (guardian is null) return NoApps();
            var one = (await View()).Apps.FirstOrDefault(a => a.Name == name);
            return one is null ? UnknownApp(name) : Results.Json(ToDto(one, NameOf), json);
        });

        app.MapPost("/v1/apps/{name}/switch", async (string name, HttpContext ctx) =>
        {
            ManagementServer.AuditTarget(ctx, name);
            JsonElement body;
            try { body = await JsonSerializer.DeserializeAsync<JsonElement>(ctx.Request.Body, json, ctx.RequestAborted); }
            catch (JsonException e) { return Results.Json(new { error = $"request body is not valid JSON ({e.Message}): send {{\"to\": \"NODE\"}}" }, json, statusCode: 400); }
            if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("to", out var to) || to.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(to.GetString()))
                return Results.Json(new { error = "missing \"to\": send {\"to\": \"NODE\"} with the name of a data node" }, json, statusCode: 400);
            var target = to.GetString()!;
            ManagementServer.AuditTarget(ctx, name, $"to {target}");
            if (guardian is null) return NoApps();
            return await Exclusive(name, $"a planned switch of {name} to {target}", async () =>
                await guardian.Ask<object>(new AppsProtocol.Switch(name, target), AskTimeout) switch
                {
                    AppsProtocol.SwitchStarted s => Results.Json(new { result = "switching", from = s.From, to = s.To, epoch = s.Epoch }, json, statusCode: 202),
                    AppsProtocol.Rejected r => Results.Json(new { error = r.Reason }, json, statusCode: 409),
                    var other => Results.Json(new { error = $"unexpected answer {other.GetType().Name}" }, json, statusCode: 500),
                });
        });

        app.MapPost("/v1/apps/{name}/checkpoint", async (string name, HttpContext ctx) =>
        {
            ManagementServer.AuditTarget(ctx, name);
            if (guardian is null) return NoApps();
            return await Exclusive(name, $"a checkpoint of {name}", async () =>
                await guardian.Ask<object>(new AppsProtocol.CheckpointNow(name), CheckpointTimeout) switch
                {
                    AppsProtocol.CheckpointTaken t => Results.Json(new { result = "checkpointed", id = t.Checkpoint.Id, mark = t.Checkpoint.Mark, bytes = t.Checkpoint.Bytes, freezeMs = (long)t.Checkpoint.Freeze.TotalMilliseconds }, json, statusCode: 202),
                    AppsProtocol.Rejected r => Results.Json(new { error = r.Reason }, json, statusCode: 409),
                    var other => Results.Json(new { error = $"unexpected answer {other.GetType().Name}" }, json, statusCode: 500),
                });
        });

        // Maintenance: automatic recovery of one application paused or resumed. Idempotent (200 with "changed": false).
        foreach (var (verb, pause) in new[] { ("pause", true), ("resume", false) })
            app.MapPost($"/v1/apps/{{name}}/{verb}", async (string name, HttpContext ctx) =>
            {
                ManagementServer.AuditTarget(ctx, name);
                if (guardian is null) return NoApps();
                if ((await View()).Apps.All(a => a.Name != name)) return UnknownApp(name);
                try
                {
                    return await guardian.Ask<object>(new AppsProtocol.PauseRecovery(name, pause), AskTimeout) switch
                    {
                        AppsProtocol.RecoveryPaused p => Results.Json(new { result = p.Paused ? "recovery paused" : "recovery resumed", changed = p.Changed }, json),
                        AppsProtocol.Rejected r => Results.Json(new { error = r.Reason }, json, statusCode: 409),
                        var other => Results.Json(new { error = $"unexpected answer {other.GetType().Name}" }, json, statusCode: 500),
                    };
                }
                catch (AskTimeoutException)
                {
                    return Results.Json(new { error = $"the application's owner did not answer about {name} in time: see 'continuity-cmd app status {name}' before asking again" }, json, statusCode: 504);
                }
            });

        // A switch and a checkpoint of one application conflict (the switch's final checkpoint, the release): the
        // owner would queue the second behind the first and then run it against a changed cluster (a second switch
        // away from the node just switched to). Refusing it with the reason lets the person decide again.
        async Task<IResult> Exclusive(string name, string what, Func<Task<IResult>> action)
        {
            var view = (await View()).Apps.FirstOrDefault(a => a.Name == name);
            if (view is null) return UnknownApp(name);
            if (!inFlight.TryBegin(name, what, out var running))
                return Results.Json(new { error = $"{running.What} is in progress (requested {running.Since:HH:mm:ss} UTC): wait for it to finish ('continuity-cmd app status {name}'), then ask again" }, json, statusCode: 409);
            try
            {
                if (view.State == "switching")
                    return Results.Json(new { error = $"{name} is switching (primary {(view.Primary is null ? "none" : NameOf(view.Primary))}): wait until it is protected again ('continuity-cmd app status {name}'), then ask again" }, json, statusCode: 409);
                return await action();
            }
            catch (AskTimeoutException)
            {
                return Results.Json(new { error = $"the application's owner did not answer about {name} in time: it may be busy or unreachable; see 'continuity-cmd app status {name}' before asking again" }, json, statusCode: 504);
            }
            finally { inFlight.End(name); }
        }

        IResult UnknownApp(string name) => Results.Json(new { error = $"no application '{name}': see GET /v1/apps" }, json, statusCode: 404);
    }

    private static readonly TimeSpan CheckpointTimeout = TimeSpan.FromSeconds(60);
}

/// <summary>The switch or checkpoint this node is carrying out per application: at most one at a time.</summary>
public sealed class AppActions
{
    public sealed record Running(string What, DateTimeOffset Since);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Running> _running = new();

    public bool TryBegin(string app, string what, out Running running)
    {
        var mine = new Running(what, DateTimeOffset.UtcNow);
        running = _running.GetOrAdd(app, mine);
        return ReferenceEquals(running, mine);
    }

    public void End(string app) => _running.TryRemove(app, out _);
}
