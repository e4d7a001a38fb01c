using System.Net.Http.Headers;
using System.Text.Json;

namespace Continuity.Lab;

internal sealed record ClusterMember(string Address, string Status, IReadOnlyList<string> Roles, bool Reachable);

/// <summary>What one node's GET /v1/cluster says.</summary>
internal sealed record ClusterView(IReadOnlyList<ClusterMember> Members, string? Leader, string? Self)
{
    public int UpCount => Members.Count(m => m.Status == "Up");
}

/// <summary>One standby of an application as GET /v1/apps/APP reports it.</summary>
internal sealed record StandbyStatus(string Node, bool Ready, string? CheckpointId, long? CheckpointAgeMs);

/// <summary>What one node's GET /v1/apps/APP says: the primary's name (or none), the standbys, the state and the alarm.</summary>
internal sealed record AppStatus(string? Primary, IReadOnlyList<StandbyStatus> Standbys, string? State, string? Alarm = null)
{
    public int ReadyStandbys => Standbys.Count(s => s.Ready);
}

/// <summary>A node's answer, or why there is none.</summary>
internal sealed record Answer<T>(T? Value, string? Error, int? HttpStatus = null) where T : class;

/// <summary>Client of the nodes' management endpoint (the same API the console uses).</summary>
internal sealed class Management : IDisposable
{
    private readonly HttpClient _http;

    public Management(string? token, TimeSpan timeout)
    {
        _http = new HttpClient { Timeout = timeout };
        if (token is not null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public static string? ReadToken(string stateDir)
    {
        var path = Path.Combine(stateDir, "token");
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    public Answer<ClusterView> Cluster(LabHost node) =>
        Get(node, "/v1/cluster", root =>
        {
            var members = new List<ClusterMember>();
            if (root.TryGetProperty("members", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var m in list.EnumerateArray())
                {
                    members.Add(new ClusterMember(
                        Str(m, "address") ?? "?",
                        Str(m, "status") ?? "?",
                        m.TryGetProperty("roles", out var r) && r.ValueKind == JsonValueKind.Array
                            ? r.EnumerateArray().Select(x => x.GetString() ?? "").ToList()
                            : [],
                        !m.TryGetProperty("reachable", out var re) || re.ValueKind != JsonValueKind.False));
                }
            }
            return new ClusterView(members, Str(root, "leader"), Str(root, "self"));
        });

    /// <summary>GET /v1/apps/APP's "primary" (a node name).</summary>
    public Answer<string> PrimaryOf(LabHost node, string app) =>
        Get(node, "/v1/apps/" + Uri.EscapeDataString(app), root =>
            Str(root, "primary") ?? throw new JsonException("the answer has no \"primary\" field"));

    /// <summary>GET /v1/apps/APP, the parts the lab judges a cluster by.</summary>
    public Answer<AppStatus> App(LabHost node, string app) =>
        Get(node, "/v1/apps/" + Uri.EscapeDataString(app), root =>
        {
            var standbys = new List<StandbyStatus>();
            if (root.TryGetProperty("standbys", out var list) && list.ValueKind == JsonValueKind.Array)
                foreach (var s in list.EnumerateArray())
                    standbys.Add(new StandbyStatus(
                        Str(s, "node") ?? "?",
                        s.TryGetProperty("ready", out var r) && r.ValueKind == JsonValueKind.True,
                        Str(s, "checkpointId"),
                        s.TryGetProperty("checkpointAgeMs", out var age) && age.ValueKind == JsonValueKind.Number ? age.GetInt64() : null));
            return new AppStatus(Str(root, "primary"), standbys, Str(root, "state"), Str(root, "alarm"));
        });

    private Answer<T> Get<T>(LabHost node, string path, Func<JsonElement, T> read) where T : class
    {
        var url = $"http://{node.Address}:{Topology.ManagementPort}{path}";
        try
        {
            using var response = _http.GetAsync(url).GetAwaiter().GetResult();
            var body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            if (!response.IsSuccessStatusCode)
                return new Answer<T>(null, $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}", (int)response.StatusCode);
            using var doc = JsonDocument.Parse(body);
            return new Answer<T>(read(doc.RootElement), null, (int)response.StatusCode);
        }
        catch (HttpRequestException e) { return new Answer<T>(null, e.InnerException?.Message ?? e.Message); }
        catch (TaskCanceledException) { return new Answer<T>(null, "no answer (timed out)"); }
        catch (JsonException e) { return new Answer<T>(null, $"unexpected answer from {url}: {e.Message}"); }
        catch (InvalidOperationException e) { return new Answer<T>(null, $"unexpected answer from {url}: {e.Message}"); }
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public void Dispose() => _http.Dispose();
}
