using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Continuity.Core.Membership;
using Continuity.Node.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Continuity.Node.Management;

/// <summary>
/// The node's management endpoint: versioned JSON over HTTP with a bearer token. The console
/// (continuity-cmd), the lab and the web dashboard (GET /dashboard/, see DashboardFiles) use it. Every API request is authenticated; every action is logged
/// with the caller's address (the audit trail).
/// </summary>
public sealed class ManagementServer : IAsyncDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = false };

    private readonly ActorSystem _system;
    private readonly HostSettings _settings;
    private readonly string _token;
    private readonly ILoggingAdapter _log;
    private WebApplication? _app;

    private readonly IActorRef? _apps;

    public ManagementServer(ActorSystem system, HostSettings settings, string token, IActorRef? apps)
    {
        _apps = apps;
        _system = system;
        _settings = settings;
        _token = token;
        _log = Akka.Event.Logging.GetLogger(system, "continuity.management");
    }

    public async Task StartAsync(CancellationToken ct)
    {
        var endpoint = BindEndPoint(_settings.Node.Management);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(endpoint);
            // A hostile client gets small limits: nothing here needs large requests.
            k.Limits.MaxRequestBodySize = 64 * 1024;
            k.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            k.Limits.MaxConcurrentConnections = 256;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            k.AddServerHeader = false;
        });
        builder.Services.Configure<KestrelServerOptions>(_ => { });
        var app = builder.Build();

        app.Use(async (ctx, next) =>
        {
            // The dashboard's static files hold no data and are served without the token; everything else needs it.
            if (await DashboardFiles.TryServe(ctx)) return;
            // Prometheus may scrape without the token if the operator chose so (continuity.management.metrics-require-token).
            if (!_settings.Node.Management.MetricsRequireToken && ctx.Request.Path == "/metrics") { await next(ctx); return; }
            var header = ctx.Request.Headers.Authorization.ToString();
            var presented = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : null;
            if (!TokenFile.Matches(_token, presented))
            {
                ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
                ctx.Response.Headers.WWWAuthenticate = "Bearer";
                await ctx.Response.WriteAsJsonAsync(new { error = "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the token from the node's token-file" }, Json);
                return;
            }
            await next(ctx);
        });

        MapCluster(app);
        AppRoutes.Map(app, _system, _apps, Audit);
        MibRoutes.Map(app, _system, _settings);
        app.MapFallback((HttpContext ctx) => Results.Json(new { error = $"no such resource: {ctx.Request.Method} {ctx.Request.Path}" }, Json, statusCode: 404));

        await app.StartAsync(ct);
        _app = app;
    }

    private void MapCluster(WebApplication app)
    {
        var cluster = Akka.Cluster.Cluster.Get(_system);

        app.MapGet("/v1/cluster", () => Results.Json(ClusterJson.Snapshot(cluster), Json));

        app.MapGet("/v1/cluster/events", async (HttpContext ctx) =>
        {
            var channel = Channel.CreateBounded<ClusterJson.EventDto>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest });
            var forwarder = _system.ActorOf(Props.Create(() => new ClusterEventForwarder(channel.Writer)));
            try
            {
                ctx.Response.ContentType = "application/x-ndjson";
                await ctx.Response.StartAsync(ctx.RequestAborted);
                await foreach (var e in channel.Reader.ReadAllAsync(ctx.RequestAborted))
                {
                    await ctx.Response.WriteAsync(JsonSerializer.Serialize(e, Json) + "\n", ctx.RequestAborted);
                    await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                }
            }
            catch (OperationCanceledException) { }
            finally { forwarder.Tell(PoisonPill.Instance); }
        });

        app.MapPost("/v1/cluster/leave", async (HttpContext ctx) =>
        {
            var (address, error) = await ResolveMember(ctx, cluster);
            if (error is not null) return error;
            Audit(ctx, $"leave {address}");
            cluster.Leave(address!);
            return Results.Json(new { result = "leaving", address = address!.ToString() }, Json, statusCode: 202);
        });

        app.MapPost("/v1/cluster/down", async (HttpContext ctx) =>
        {
            var (address, error) = await ResolveMember(ctx, cluster);
            if (error is not null) return error;
            Audit(ctx, $"down {address}");
            cluster.Down(address!);
            return Results.Json(new { result = "downing", address = address!.ToString() }, Json, statusCode: 202);
        });

        app.MapPost("/v1/cluster/down-unreachable", (HttpContext ctx) =>
        {
            var unreachable = cluster.State.Unreachable.Select(m => m.Address).ToList();
            Audit(ctx, $"down-unreachable [{string.Join(", ", unreachable)}]");
            foreach (var a in unreachable) cluster.Down(a);
            return Results.Json(new { downed = unreachable.Select(a => a.ToString()) }, Json, statusCode: 202);
        });
    }

    /// <summary>Reads {"address": "..."} (an Akka address or a node name) and finds that member.</summary>
    private static async Task<(Address?, IResult?)> ResolveMember(HttpContext ctx, Akka.Cluster.Cluster cluster)
    {
        JsonElement body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<JsonElement>(ctx.Request.Body, Json, ctx.RequestAborted);
        }
        catch (JsonException e)
        {
            return (null, Results.Json(new { error = $"request body is not valid JSON ({e.Message}): send {{\"address\": \"akka.tcp://continuity@HOST:PORT\"}}" }, Json, statusCode: 400));
        }
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("address", out var a) || a.ValueKind != JsonValueKind.String)
            return (null, Results.Json(new { error = "missing \"address\": send {\"address\": \"akka.tcp://continuity@HOST:PORT\"} or a node name" }, Json, statusCode: 400));

        var text = a.GetString()!;
        var member = cluster.State.Members.FirstOrDefault(m => m.Address.ToString() == text || NodeNames.NameOf(m) == text);
        if (member is null)
            return (null, Results.Json(new { error = $"no member '{text}' in the cluster: see GET /v1/cluster for the members" }, Json, statusCode: 404));
        return (member.Address, null);
    }

    private void Audit(HttpContext ctx, string action) =>
        _log.Info("audit: {0} requested by {1}", action, ctx.Connection.RemoteIpAddress);

    /// <summary>The bind address as Kestrel wants it; a host name is resolved once, at start-up.</summary>
    private static IPEndPoint BindEndPoint(Continuity.Core.Configuration.ManagementSettings m) =>
        m.BindEndPoint as IPEndPoint
        ?? new IPEndPoint(Dns.GetHostAddresses(m.BindHost).FirstOrDefault()
                          ?? throw new ArgumentException($"continuity.management.bind: host '{m.BindHost}' does not resolve"), m.BindPort);

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}
