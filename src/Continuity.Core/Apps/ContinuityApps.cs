using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence.Sql;

namespace Continuity.Core.Apps;

/// <summary>Entry points for the node host.</summary>
public static class ContinuityApps
{
    public const string GuardianName = "continuity-apps";

    /// <summary>
    /// Starts the node's AppsGuardian (at /user/continuity-apps). Call once per node after the ActorSystem exists;
    /// the cluster join may still be in progress. Send it <see cref="AppsProtocol"/> messages.
    /// </summary>
    /// <param name="nodeName">Stable name of this node (continuity.node.name): names the node's journal entries, so it
    /// must not change across restarts. Defaults to the config value, then the host name.</param>
    public static IActorRef Start(ActorSystem system, IReadOnlyList<AppSpec> apps, PlatformServices platform, string stateDir,
        string? nodeName = null)
    {
        Directory.CreateDirectory(stateDir);
        // The SQL plugin's own defaults (plugin class, table mapping) at the lowest priority, so reference.conf and
        // the node's file override them. Must happen before the first persistent actor starts.
        system.Settings.InjectTopLevelFallback(SqlPersistence.DefaultConfiguration);
        nodeName ??= system.Settings.Config.GetString("continuity.node.name", "");
        if (string.IsNullOrEmpty(nodeName)) nodeName = Environment.MachineName;
        return system.ActorOf(AppsGuardian.Props(apps, platform, stateDir, nodeName), GuardianName);
    }

    /// <summary>
    /// The journal and snapshot-store connection settings for <paramref name="config"/>'s continuity.persistence.backend.
    /// For SQLite the files live in the node's state directory (HOCON cannot build that path when the node's own file
    /// overrides state-dir). Put the result in front of the node's configuration before creating the ActorSystem.
    /// </summary>
    public static Config PersistenceConfig(Config config, string stateDir)
    {
        var backend = config.GetString("continuity.persistence.backend", "sqlite");
        if (backend == "postgresql")
        {
            var cs = config.GetString("continuity.persistence.postgresql.connection-string", "");
            var provider = config.GetString("continuity.persistence.postgresql.provider-name", "PostgreSQL.15");
            return Build(cs, cs, provider);
        }
        if (backend != "sqlite") throw new ConfigurationException($"continuity.persistence.backend must be sqlite or postgresql, not '{backend}'");
        var full = Path.GetFullPath(stateDir);
        return Build($"Data Source={Path.Combine(full, "journal.db")}", $"Data Source={Path.Combine(full, "snapshots.db")}", "SQLite.MS");
    }

    private static Config Build(string journal, string snapshots, string provider) => ConfigurationFactory.ParseString($$"""
        akka.persistence.journal.sql { connection-string = "{{Escape(journal)}}", provider-name = "{{provider}}" }
        akka.persistence.snapshot-store.sql { connection-string = "{{Escape(snapshots)}}", provider-name = "{{provider}}" }
        """);

    private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"");
}
