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
/// (continuity-cmd), the lab and the web dashboard (GET /dashboard/, see DashboardFiles) use it. Every API request is
/// authenticated; every action (any request that is not a GET), accepted or refused, is written to the audit trail
/// (<see cref="AuditLog"/>) with the caller's address and token fingerprint. HTTPS only when continuity.management.tls
/// names a certificate.
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
    private readonly ManagementApiOptions _options;
    private readonly AppActions _inFlight = new();

    public AuditLog AuditLog { get; }

    public ManagementServer(ActorSystem system, HostSettings settings, string token, IActorRef? apps)
    {
        _apps = apps;
        _options = settings.ManagementApi ?? ManagementApiOptions.Default;
        AuditLog = new AuditLog(settings.StateDir, _options.AuditMaxFileBytes);
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
            // With a certificate the port speaks TLS only: a second, plain port would be the one people end up using.
            if (_options.Certificate is { } certificate) k.Listen(endpoint, listen => listen.UseHttps(certificate));
            else k.Listen(endpoint);
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
            // Anything but a reading is an action: audited whatever its outcome, a wrong token included.
            if (HttpMethods.IsGet(ctx.Request.Method) || HttpMethods.IsHead(ctx.Request.Method)) await Authorized(ctx, next);
            else await Audited(ctx, () => Authorized(ctx, next));
        });

        MapCluster(app);
        AppRoutes.Map(app, _system, _apps, _inFlight);
        MibRoutes.Map(app, _system, _settings);
        HistoryRoutes.Map(app, _system, _settings, _apps, AuditLog);
        app.MapFallback((HttpContext ctx) => Results.Json(new { error = $"no such resource: {ctx.Request.Method} {ctx.Request.Path}" }, Json, statusCode: 404));

        await app.StartAsync(ct);
        _app = app;
    }

    private async Task Authorized(HttpContext ctx, RequestDelegate next)
    {
        // Prometheus may scrape without the token if the operator chose so (continuity.management.metrics-require-token).
        if (!_settings.Node.Management.MetricsRequireToken && ctx.Request.Path == "/metrics") { await next(ctx); return; }
        if (!TokenFile.Matches(_token, PresentedToken(ctx)))
        {
            ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await ctx.Response.WriteAsJsonAsync(new { error = "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the token from the node's token-file" }, Json);
            return;
        }
        await next(ctx);
    }

    private static string? PresentedToken(HttpContext ctx)
    {
        var header = ctx.Request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..].Trim() : null;
    }

    /// <summary>Names what an action acts on, for its audit entry (set by the route once it has read the request).</summary>
    public static void AuditTarget(HttpContext ctx, string? target, string? detail = null)
    {
        ctx.Items[TargetKey] = target;
        if (detail is not null) ctx.Items[DetailKey] = detail;
    }

    private const string TargetKey = "continuity.audit.target";
    private const string DetailKey = "continuity.audit.detail";

    /// <summary>
    /// Runs an action and writes its audit entry once the answer is known. The answer is buffered (they are small) so
    /// the reason given to the caller is the reason kept.
    /// </summary>
    private async Task Audited(HttpContext ctx, Func<Task> run)
    {
        var time = DateTime.UtcNow;
        var original = ctx.Response.Body;
        using var buffer = new MemoryStream();
        ctx.Response.Body = buffer;
        string? failure = null;
        try
        {
            await run();
        }
        catch (Exception e)
        {
            failure = $"{e.GetType().Name}: {e.Message}";
            if (!ctx.Response.HasStarted)
            {
                ctx.Response.StatusCode = StatusCodes.Status500InternalServerError;
                buffer.SetLength(0);
                await ctx.Response.WriteAsJsonAsync(new { error = $"the node failed to carry out the request ({failure}); see its log" }, Json);
            }
        }
        finally
        {
            ctx.Response.Body = original;
        }
        var status = ctx.Response.StatusCode;
        var (action, pathTarget) = ActionOf(ctx.Request);
        var entry = new AuditEntry(time.ToString("O"), $"{ctx.Connection.RemoteIpAddress}:{ctx.Connection.RemotePort}",
            AuditLog.Fingerprint(PresentedToken(ctx)), action,
            ctx.Items.TryGetValue(TargetKey, out var t) && t is string target ? target : pathTarget,
            ctx.Items.TryGetValue(DetailKey, out var d) ? d as string : null,
            status < 400 ? "accepted" : "refused", status, status < 400 ? null : failure ?? ErrorOf(buffer));
        try
        {
            AuditLog.Append(entry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The action is done: refusing the operator the answer because the disk is full would not undo it.
            _log.Error("audit: could not write {0} ({1}): {2}", AuditLog.Path, e.Message, JsonSerializer.Serialize(entry, Json));
        }
        _log.Info("audit: {0} by {1} (token {2}): {3} {4}{5}", $"{entry.Action} {entry.Target} {entry.Detail}".TrimEnd(), entry.Remote,
            entry.Token ?? "none", entry.Status, entry.Outcome, entry.Reason is null ? "" : ": " + entry.Reason);
        buffer.Position = 0;
        await buffer.CopyToAsync(original, ctx.RequestAborted);
    }

    /// <summary>"app switch" and "kv" for POST /v1/apps/kv/switch: what a refused request asked for, without reading its body.</summary>
    private static (string Action, string? Target) ActionOf(HttpRequest request)
    {
        var parts = (request.Path.Value ?? "").Trim('/').Split('/');
        return parts switch
        {
            ["v1", "cluster", var verb] => ($"cluster {verb}", null),
            ["v1", "apps", var app, var verb] => ($"app {verb}", Uri.UnescapeDataString(app)),
            _ => ($"{request.Method} {request.Path}", null),
        };
    }

    private static string? ErrorOf(MemoryStream body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body.ToArray());
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String
                ? e.GetString() : null;
        }
        catch (JsonException) { return null; }
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
            AuditTarget(ctx, address!.ToString());
            cluster.Leave(address!);
            return Results.Json(new { result = "leaving", address = address!.ToString() }, Json, statusCode: 202);
        });

        app.MapPost("/v1/cluster/down", async (HttpContext ctx) =>
        {
            var (address, error) = await ResolveMember(ctx, cluster);
            if (error is not null) return error;
            AuditTarget(ctx, address!.ToString());
            cluster.Down(address!);
            return Results.Json(new { result = "downing", address = address!.ToString() }, Json, statusCode: 202);
        });

        app.MapPost("/v1/cluster/down-unreachable", (HttpContext ctx) =>
        {
            var unreachable = cluster.State.Unreachable.Select(m => m.Address).ToList();
            AuditTarget(ctx, unreachable.Count == 0 ? "(none unreachable)" : string.Join(", ", unreachable));
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
        AuditTarget(ctx, text);
        var member = cluster.State.Members.FirstOrDefault(m => m.Address.ToString() == text || NodeNames.NameOf(m) == text);
        if (member is null)
            return (null, Results.Json(new { error = $"no member '{text}' in the cluster: see GET /v1/cluster for the members" }, Json, statusCode: 404));
        return (member.Address, null);
    }

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
