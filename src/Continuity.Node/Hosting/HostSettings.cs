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
    Continuity.Node.Management.ManagementApiOptions? ManagementApi = null)
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
        var config = loaded.Config;
        var roles = config.GetStringList("akka.cluster.roles", []).ToList();

        // The naming role lets every member show this node by name (see NodeNames).
        var extra = new List<string> { $"akka.cluster.roles = [{string.Join(", ", roles.Append(NodeNames.RoleFor(node.Name)).Select(Quote))}]" };
        if (node.LogFormat == LogFormat.Json)
            extra.Add("akka.loggers = [\"Continuity.Node.Logging.JsonStdoutLogger, continuity-node\"]");
        var effective = ConfigurationFactory.ParseString(string.Join("\n", extra)).WithFallback(config);

        return new HostSettings(path, effective, node, roles,
            config.GetStringList("akka.cluster.seed-nodes", []).ToList(), apps, placement, resourceRules, loaded.Warnings, managementApi);
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
