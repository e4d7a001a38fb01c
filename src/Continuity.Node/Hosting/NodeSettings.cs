using Akka.Configuration;
using Continuity.Core.Cluster;

namespace Continuity.Node.Hosting;

/// <summary>What the host needs from the configuration, read once at start-up.</summary>
public sealed record NodeSettings(
    string ConfigPath,
    Config AkkaConfig,
    string NodeName,
    string StateDir,
    IReadOnlyList<string> Roles,
    IReadOnlyList<string> SeedNodes,
    TimeSpan JoinTimeout,
    string LogFormat,
    bool ManagementEnabled,
    string ManagementBind,
    string TokenFile)
{
    public static NodeSettings From(string configPath, Config config)
    {
        var name = config.GetString("continuity.node.name", "");
        if (string.IsNullOrWhiteSpace(name)) name = Environment.MachineName;
        var roles = config.GetStringList("akka.cluster.roles", []).ToList();
        var logFormat = config.GetString("continuity.node.log-format", "text");

        // The naming role lets every member show this node by name (see NodeNames).
        var extra = new List<string> { $"akka.cluster.roles = [{string.Join(", ", roles.Append(NodeNames.RoleFor(name)).Select(Quote))}]" };
        if (logFormat == "json")
            extra.Add("akka.loggers = [\"Continuity.Node.Logging.JsonStdoutLogger, continuity-node\"]");
        var effective = ConfigurationFactory.ParseString(string.Join("\n", extra)).WithFallback(config);

        return new NodeSettings(
            configPath,
            effective,
            name,
            config.GetString("continuity.node.state-dir", "/var/lib/continuity"),
            roles,
            config.GetStringList("akka.cluster.seed-nodes", []).ToList(),
            config.GetTimeSpan("continuity.node.join-timeout", TimeSpan.Zero),
            logFormat,
            config.GetBoolean("continuity.management.enabled", true),
            config.GetString("continuity.management.bind", "127.0.0.1:8558"),
            config.GetString("continuity.management.token-file", "/etc/continuity/token"));
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
