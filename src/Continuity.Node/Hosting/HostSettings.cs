using Akka.Configuration;
using Continuity.Core.Apps;
using Continuity.Core.Membership;
using Continuity.Core.Configuration;
using Continuity.Core.Placement;

namespace Continuity.Node.Hosting;

/// <summary>Everything the host reads from its configuration, validated once at start-up.</summary>
public sealed record HostSettings(
    string ConfigPath,
    Config AkkaConfig,
    NodeSettings Node,
    IReadOnlyList<string> Roles,
    IReadOnlyList<string> SeedNodes,
    IReadOnlyList<AppSpec> Apps,
    PlacementSettings Placement,
    Continuity.Core.Supervision.ResourceRules ResourceRules,
    IReadOnlyList<ConfigurationWarning> Warnings,
    Continuity.Node.Management.ManagementApiOptions? ManagementApi = null,
    ClusterTlsOptions? ClusterTls = null,
    Continuity.Core.Fencing.FencingSettings? Fencing = null)
{
    public string NodeName => Node.Name;
    public string StateDir => Node.StateDir;
    public TimeSpan JoinTimeout => Node.JoinTimeout;
    public bool ManagementEnabled => Node.Management.Enabled;
    public string ManagementBind => $"{Node.Management.BindHost}:{Node.Management.BindPort}";
    public string TokenFile => Node.Management.TokenFile;

    /// <exception cref="Continuity.Core.Configuration.ConfigurationException">The file is malformed or a value is invalid.</exception>
    public static HostSettings Load(string path)
    {
        var loaded = ContinuityConfigLoader.Load(path);
        var node = NodeSettings.From(loaded);
        var apps = AppSettingsParser.Parse(loaded);
        var placement = AppSettingsParser.ParsePlacement(loaded, apps);
        var resourceRules = AppSettingsParser.ParseResourceRules(loaded);
        PersistenceSettings.Validate(loaded);
        var managementApi = Continuity.Node.Management.ManagementApiOptions.From(loaded);
        var clusterTls = ClusterTlsOptions.From(loaded);
        var fencing = Continuity.Core.Fencing.FencingSettings.Parse(loaded);
        Continuity.Core.Election.ElectionSettings.Validate(loaded);
        var config = loaded.Config;
        // Akka's GetStringList throws its own exception (no file, no line) for a role that is not a list.
        var roles = config.HasPath("akka.cluster.roles")
            ? ConfigValues.StringList(loaded, "akka.cluster.roles", "a list of role names, e.g. [data]").ToList()
            : [];

        // The naming role lets every member show this node by name (see NodeNames).
        var extra = new List<string> { $"akka.cluster.roles = [{string.Join(", ", roles.Append(NodeNames.RoleFor(node.Name)).Select(Quote))}]" };
        if (node.LogFormat == LogFormat.Json)
            extra.Add("akka.loggers = [\"Continuity.Node.Logging.JsonStdoutLogger, continuity-node\"]");
        // A TLS node's address is akka.ssl.tcp://..., a clear one's akka.tcp://...: a seed written with the other scheme
        // would be unreachable ("No transport is loaded for protocol"). The scheme follows continuity.cluster-tls, so the
        // same seed list works whichever way it is set.
        // Read through the checked getter: Akka's own turns a nested list into null entries, which crashed here.
        var seedList = config.HasPath("akka.cluster.seed-nodes")
            ? ConfigValues.StringList(loaded, "akka.cluster.seed-nodes", "a list of node addresses, e.g. [\"akka.tcp://continuity@10.0.0.1:4053\"]")
            : [];
        var seeds = seedList.Select(s => WithScheme(s, clusterTls.Enabled)).ToList();
        extra.Add($"akka.cluster.seed-nodes = [{string.Join(", ", seeds.Select(Quote))}]");
        var effective = ConfigurationFactory.ParseString(string.Join("\n", extra)).WithFallback(config);

        return new HostSettings(path, effective, node, roles, seeds, apps, placement, resourceRules, loaded.Warnings, managementApi,
            clusterTls, fencing);
    }

    public const string ClearScheme = "akka.tcp://";
    public const string TlsScheme = "akka.ssl.tcp://";

    /// <summary>The Akka address with the scheme of the transport the node runs (TLS or clear).</summary>
    public static string WithScheme(string address, bool tls)
    {
        var (from, to) = tls ? (ClearScheme, TlsScheme) : (TlsScheme, ClearScheme);
        return address.StartsWith(from, StringComparison.Ordinal) ? to + address[from.Length..] : address;
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
