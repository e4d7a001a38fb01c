using System.Text.Json;
using System.Text.Json.Serialization;

namespace Continuity.Lab;

internal enum HostKind { Node, Witness, Client }

/// <summary>One namespace of the lab and, for nodes, the node process running in it.</summary>
internal sealed class LabHost
{
    public required string Name { get; init; }
    public required HostKind Kind { get; init; }
    public required string Address { get; init; }
    /// <summary>The lab instance the host belongs to; absent (0) in lab.json files older than instances.</summary>
    public int Instance { get; init; }

    /// <summary>Set while a node process runs; cleared by crash.</summary>
    public int? Pid { get; set; }
    /// <summary>Start time from /proc, so a recycled pid is never mistaken for our node.</summary>
    public long? StartTime { get; set; }
    public bool Crashed { get; set; }
    /// <summary>The node's Akka.Remote port; a revived node takes the next one (see Lab.Revive).</summary>
    public int ClusterPort { get; set; } = Topology.ClusterPort;

    [JsonIgnore] public string Namespace => Topology.Of(Instance).NamespaceOf(Name);
    [JsonIgnore] public string BridgePort => Topology.Of(Instance).BridgePortOf(Name);
    [JsonIgnore] public bool IsClusterMember => Kind != HostKind.Client;
    [JsonIgnore] public string Role => Kind == HostKind.Witness ? "witness" : "data";
}

/// <summary>lab.json: what one invocation of the lab leaves for the next.</summary>
internal sealed class LabState
{
    public const string FileName = "lab.json";

    public int Version { get; init; } = 1;
    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UtcNow;
    public required string StateDir { get; init; }
    /// <summary>Which lab instance this is (0 in lab.json files older than instances).</summary>
    public int Instance { get; init; }
    public string? RepoRoot { get; init; }
    public string? ConfigFile { get; init; }
    public bool NoNodes { get; init; }
    /// <summary>up --state-size: each node's state directory is a tmpfs of this size in its mount namespace.</summary>
    public string? StateSize { get; init; }
    public List<LabHost> Hosts { get; init; } = [];
    /// <summary>Each entry is one group of nodes cut off from every node outside it.</summary>
    public List<List<string>> Partitions { get; init; } = [];
    /// <summary>Root-namespace iptables rules the lab added (as argument lists), removed by down.</summary>
    public List<List<string>> HostRules { get; init; } = [];

    [JsonIgnore] public IEnumerable<LabHost> Members => Hosts.Where(h => h.IsClusterMember);

    public LabHost Host(string name) =>
        Hosts.FirstOrDefault(h => h.Name == name)
        ?? throw new LabException($"the lab has no host '{name}'; its hosts are: {string.Join(", ", Hosts.Select(h => h.Name))}");

    public bool IsPartitioned(string name) => Partitions.Any(g => g.Contains(name));

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static string PathIn(string stateDir) => Path.Combine(stateDir, FileName);

    /// <summary>The state, or null when there is none or it cannot be read (down must still work then).</summary>
    public static LabState? TryLoad(string stateDir, out string? problem)
    {
        problem = null;
        var path = PathIn(stateDir);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<LabState>(File.ReadAllText(path), Options)
                   ?? throw new JsonException("empty document");
        }
        catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
        {
            problem = $"{path} is unreadable ({e.Message})";
            return null;
        }
    }

    public static LabState Load(string stateDir)
    {
        var state = TryLoad(stateDir, out var problem);
        if (state is not null) return state;
        throw new LabException(problem is null
            ? $"no lab is running (no {PathIn(stateDir)}): start one with 'continuity-lab up --nodes 3'"
            : $"{problem}: run 'continuity-lab down' to clean up, then 'continuity-lab up'");
    }

    public void Save()
    {
        Directory.CreateDirectory(StateDir);
        var path = PathIn(StateDir);
        // Written then renamed, so a crash mid-write never leaves a half file for the next command.
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Options));
        File.Move(tmp, path, overwrite: true);
    }

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);
}
