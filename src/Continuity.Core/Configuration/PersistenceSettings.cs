using Continuity.Core.Log;

namespace Continuity.Core.Configuration;

/// <summary>
/// continuity.persistence, checked when the node's file is loaded (and by --check), so a bad journal setting is reported
/// with its file and line before anything starts. The values themselves are applied by ContinuityApps.PersistenceConfig.
/// </summary>
public static class PersistenceSettings
{
    /// <returns>The backend: "sqlite" or "postgresql".</returns>
    /// <exception cref="ConfigurationException">A value is invalid; the message names the key and where it was set, never a password.</exception>
    public static string Validate(LoadedConfig config)
    {
        var backend = ConfigValues.String(config, JournalBackend.BackendKey);
        if (backend is not ("sqlite" or "postgresql"))
            throw ConfigValues.Bad(config, JournalBackend.BackendKey, $"= \"{backend}\" is invalid: expected sqlite or postgresql");
        ConfigValues.Duration(config, Apps.AppActor.JournalRetryKey, TimeSpan.FromMilliseconds(100), "10s");
        var acknowledge = ConfigValues.String(config, StandbyLog.AcknowledgeKey);
        if (!StandbyLog.AcknowledgeModes.Contains(acknowledge))
            throw ConfigValues.Bad(config, StandbyLog.AcknowledgeKey, $"= \"{acknowledge}\" is invalid: expected written or received");
        var mode = ConfigValues.String(config, SqliteJournal.JournalModeKey);
        if (!SqliteJournal.Modes.Contains(mode))
            throw ConfigValues.Bad(config, SqliteJournal.JournalModeKey, $"= \"{mode}\" is invalid: expected wal or delete");
        if (backend == "postgresql")
        {
            var cs = ConfigValues.String(config, JournalBackend.ConnectionStringKey, required: false);
            if (JournalBackend.ConnectionStringProblem(cs) is { } csProblem)
                throw ConfigValues.Bad(config, JournalBackend.ConnectionStringKey, csProblem);
            var provider = ConfigValues.String(config, JournalBackend.ProviderNameKey);
            if (JournalBackend.ProviderProblem(provider) is { } providerProblem)
                throw ConfigValues.Bad(config, JournalBackend.ProviderNameKey, providerProblem);
        }
        return backend;
    }
}
