using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence.Sql;
using Continuity.Core.Log;
using Continuity.Core.Placement;

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
    /// <param name="placement">How primaries are spread over the data nodes; null for <see cref="PlacementSettings.Default"/>.</param>
    /// <param name="supervision">The resource rules (a full disk on the primary); null for the defaults.</param>
    public static IActorRef Start(ActorSystem system, IReadOnlyList<AppSpec> apps, PlatformServices platform, string stateDir,
        string? nodeName = null, PlacementSettings? placement = null, Supervision.ResourceRules? supervision = null)
    {
        // Packet log and checkpoints: root only, whatever the umask (NodeHost did it already; other hosts may not have).
        var sqlite = system.Settings.Config.GetString(JournalBackend.BackendKey, "sqlite") == "sqlite";
        Security.RootOnly.PrepareStateDir(stateDir, sqliteJournal: sqlite);
        // Before the first persistent actor: the journal plugin opens the file lazily, and SQLite switches its mode only
        // while no other connection has it open.
        if (sqlite)
            SqliteJournal.Apply(Path.Combine(Path.GetFullPath(stateDir), "journal.db"),
                system.Settings.Config.GetString(SqliteJournal.JournalModeKey, "wal"));
        // The SQL plugin's own defaults (plugin class, table mapping) at the lowest priority, so reference.conf and
        // the node's file override them. Must happen before the first persistent actor starts.
        system.Settings.InjectTopLevelFallback(SqlPersistence.DefaultConfiguration);
        nodeName ??= system.Settings.Config.GetString("continuity.node.name", "");
        if (string.IsNullOrEmpty(nodeName)) nodeName = Environment.MachineName;
        // A journal on a database server is checked at once, so an unreachable one is reported in one clear line.
        if (JournalProbe.PropsFor(system.Settings.Config) is { } probe) system.ActorOf(probe, "journal-probe");
        return system.ActorOf(AppsGuardian.Props(apps, platform, stateDir, nodeName, placement, supervision), GuardianName);
    }

    /// <summary>
    /// The journal and snapshot-store connection settings for <paramref name="config"/>'s continuity.persistence.backend.
    /// For SQLite the files live in the node's state directory (HOCON cannot build that path when the node's own file
    /// overrides state-dir). For PostgreSQL both live in the database of continuity.persistence.postgresql.connection-string
    /// (tables created on first use). Put the result in front of the node's configuration before creating the ActorSystem.
    /// </summary>
    /// <exception cref="ConfigurationException">The backend is unknown, or the PostgreSQL settings are unusable (the
    /// message names the key; it never repeats a password).</exception>
    public static Config PersistenceConfig(Config config, string stateDir)
    {
        var backend = config.GetString(JournalBackend.BackendKey, "sqlite");
        if (backend == "postgresql")
        {
            var cs = config.GetString(JournalBackend.ConnectionStringKey, "");
            var provider = config.GetString(JournalBackend.ProviderNameKey, "PostgreSQL.15");
            if (JournalBackend.ConnectionStringProblem(cs) is { } csProblem)
                throw new ConfigurationException($"'{JournalBackend.ConnectionStringKey}' {csProblem}");
            if (JournalBackend.ProviderProblem(provider) is { } providerProblem)
                throw new ConfigurationException($"'{JournalBackend.ProviderNameKey}' {providerProblem}");
            return Build(cs, cs, provider);
        }
        if (backend != "sqlite") throw new ConfigurationException($"'{JournalBackend.BackendKey}' must be sqlite or postgresql, not '{backend}'");
        var full = Path.GetFullPath(stateDir);
        return Build($"Data Source={Path.Combine(full, "journal.db")}", $"Data Source={Path.Combine(full, "snapshots.db")}", "SQLite.MS");
    }

    private static Config Build(string journal, string snapshots, string provider) => ConfigurationFactory.ParseString($$"""
        akka.persistence.journal.sql { connection-string = "{{Escape(journal)}}", provider-name = "{{provider}}" }
        akka.persistence.snapshot-store.sql { connection-string = "{{Escape(snapshots)}}", provider-name = "{{provider}}" }
        """);

    private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"");
}
