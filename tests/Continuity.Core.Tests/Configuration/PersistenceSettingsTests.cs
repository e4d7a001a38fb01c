using Akka.Configuration;
using Continuity.Core.Apps;
using Continuity.Core.Configuration;
using Continuity.Core.Log;
using Continuity.Core.Tests.Support;
using Xunit;
using AkkaConfigurationException = Akka.Configuration.ConfigurationException;
using ConfigurationException = Continuity.Core.Configuration.ConfigurationException;

namespace Continuity.Core.Tests.Configuration;

/// <summary>continuity.persistence: which journal a node uses, checked before anything starts.</summary>
public class PersistenceSettingsTests
{
    private const string Secret = "s3cret-pw";

    private static string Validate(string text) => PersistenceSettings.Validate(ContinuityConfigLoader.LoadFromString(text, "node.hocon"));

    private static ConfigurationException Fails(string text) => Assert.Throws<ConfigurationException>(() => Validate(text));

    [Fact]
    public void Sqlite_is_the_default_and_needs_no_connection_string()
    {
        Assert.Equal("sqlite", Validate(""));
        var c = ContinuityApps.PersistenceConfig(ContinuityConfigLoader.ReferenceConfig, "/var/lib/continuity");
        Assert.Equal("Data Source=/var/lib/continuity/journal.db", c.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Equal("SQLite.MS", c.GetString("akka.persistence.journal.sql.provider-name"));
    }

    [Fact]
    public void A_journal_retry_interval_that_is_no_duration_is_refused_with_its_line()
    {
        var e = Fails("continuity.persistence {\n  retry-interval = soon\n}\n");
        Assert.StartsWith("node.hocon:2:", e.Message);
        Assert.Contains("retry-interval", e.Message);
        Assert.Equal("sqlite", Validate("continuity.persistence.retry-interval = 30s"));
    }

    [Fact]
    public void Standbys_acknowledge_written_packets_by_default_and_an_unknown_choice_is_refused_with_its_line()
    {
        Assert.Equal("written", ContinuityConfigLoader.ReferenceConfig.GetString(StandbyLog.AcknowledgeKey));
        Assert.Equal("sqlite", Validate("continuity.persistence.acknowledge = received"));
        var e = Fails("continuity.persistence {\n  acknowledge = fsynced\n}\n");
        Assert.StartsWith("node.hocon:2:", e.Message);
        Assert.Contains("'continuity.persistence.acknowledge' = \"fsynced\" is invalid: expected written or received", e.Message);
    }

    [Fact]
    public void Postgresql_with_a_connection_string_is_valid_and_fills_in_journal_and_snapshot_store()
    {
        const string cs = $"Host=db1.example;Port=5433;Database=continuity_n1;Username=continuity;Password={Secret}";
        var text = $"continuity.persistence {{ backend = postgresql, postgresql.connection-string = \"{cs}\" }}";
        Assert.Equal("postgresql", Validate(text));

        var c = ContinuityApps.PersistenceConfig(ContinuityConfigLoader.LoadFromString(text, "node.hocon").Config, "/unused");
        foreach (var plugin in new[] { "akka.persistence.journal.sql", "akka.persistence.snapshot-store.sql" })
        {
            Assert.Equal(cs, c.GetString(plugin + ".connection-string"));
            Assert.Equal("PostgreSQL.15", c.GetString(plugin + ".provider-name"));
        }
        Assert.Equal("PostgreSQL journal (host db1.example, port 5433, database continuity_n1, user continuity)",
            JournalBackend.Describe(c.WithFallback(ConfigurationFactory.ParseString("akka.persistence.journal.plugin = akka.persistence.journal.sql"))));
    }

    [Fact]
    public void Empty_connection_string_for_postgresql_names_the_key_and_its_line()
    {
        var e = Fails("continuity.persistence {\n  backend = postgresql\n}\n");
        Assert.Equal(JournalBackend.ConnectionStringKey, e.Key);
        Assert.Contains("is empty", e.Message);
        Assert.Contains("Host=", e.Message); // an example to copy
    }

    [Fact]
    public void A_password_with_an_unquoted_semicolon_is_not_quoted_back_as_an_unknown_keyword()
    {
        // Npgsql reads "Password=x;SECRET" as the password "x" and an unknown keyword "SECRET", and says so.
        var e = Fails($"continuity.persistence {{\n  backend = postgresql\n  postgresql.connection-string = \"Host=db1;Password=x;{Secret}\"\n}}\n");
        Assert.StartsWith("node.hocon:3:", e.Message);
        Assert.Contains("not a valid Npgsql connection string", e.Message);
        Assert.DoesNotContain(Secret, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void A_connection_string_given_as_an_array_is_refused_without_repeating_it()
    {
        var e = Fails($"continuity.persistence {{\n  backend = postgresql\n  postgresql.connection-string = [\"Host=db1;Password={Secret}\"]\n}}\n");
        Assert.Contains("value not shown", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
    }

    [Fact]
    public void A_syntax_error_inside_a_connection_string_does_not_quote_its_tokens()
    {
        var e = Fails($"continuity.persistence {{\n  backend = postgresql\n  postgresql.connection-string = [\"Host=db1\"] {Secret}\n}}\n");
        Assert.StartsWith("node.hocon:3:", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
    }

    [Fact]
    public void Malformed_connection_string_is_refused_without_repeating_the_password()
    {
        var e = Fails($"continuity.persistence {{\n  backend = postgresql\n  postgresql.connection-string = \"Hots=db1;Password={Secret}\"\n}}\n");
        Assert.Equal(JournalBackend.ConnectionStringKey, e.Key);
        Assert.StartsWith("node.hocon:3:", e.Message);
        Assert.Contains("not a valid Npgsql connection string", e.Message);
        Assert.Contains("hots", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Secret, e.Message);
    }

    [Fact]
    public void Connection_string_without_a_host_is_refused()
    {
        var e = Fails($"continuity.persistence {{ backend = postgresql, postgresql.connection-string = \"Database=x;Password={Secret}\" }}");
        Assert.Contains("names no Host", e.Message);
        Assert.DoesNotContain(Secret, e.Message);
    }

    [Fact]
    public void Provider_name_must_be_a_postgresql_dialect_linq2db_knows()
    {
        var e = Fails("continuity.persistence { backend = postgresql, postgresql { connection-string = \"Host=db1\", provider-name = \"PostgreSQL.16\" } }");
        Assert.Equal(JournalBackend.ProviderNameKey, e.Key);
        Assert.Contains("PostgreSQL.15", e.Message); // the ones to choose from
        Assert.Equal("postgresql", Validate("continuity.persistence { backend = postgresql, postgresql { connection-string = \"Host=db1\", provider-name = \"PostgreSQL.13\" } }"));
        Assert.Equal("postgresql", Validate("continuity.persistence { backend = postgresql, postgresql { connection-string = \"Host=db1\", provider-name = PostgreSQL } }"));
        Assert.Equal(["PostgreSQL.9.2", "PostgreSQL.9.3", "PostgreSQL.9.5"], JournalBackend.PostgresProviders.Take(3));
    }

    [Fact]
    public void A_sqlite_journal_mode_other_than_wal_or_delete_is_refused_with_its_line()
    {
        var e = Fails("continuity.persistence {\n  sqlite.journal-mode = memory\n}\n");
        Assert.StartsWith("node.hocon:2:", e.Message);
        Assert.Equal(SqliteJournal.JournalModeKey, e.Key);
        Assert.Equal("sqlite", Validate("continuity.persistence.sqlite.journal-mode = delete"));
        Assert.Equal("wal", ContinuityConfigLoader.ReferenceConfig.GetString(SqliteJournal.JournalModeKey));
    }

    [Fact]
    public void Unknown_backend_is_refused()
    {
        var e = Fails("continuity.persistence.backend = mysql");
        Assert.Equal(JournalBackend.BackendKey, e.Key);
        Assert.Contains("expected sqlite or postgresql", e.Message);
    }

    [Fact]
    public void Persistence_config_refuses_what_the_loader_refuses_for_callers_that_skip_it()
    {
        var bad = ConfigurationFactory.ParseString($"continuity.persistence {{ backend = postgresql, postgresql.connection-string = \"Hots=x;Password={Secret}\" }}");
        var e = Assert.Throws<AkkaConfigurationException>(() => ContinuityApps.PersistenceConfig(bad, "/unused"));
        Assert.Contains(JournalBackend.ConnectionStringKey, e.Message);
        Assert.DoesNotContain(Secret, e.Message);
    }

    [Fact]
    public void Missing_postgresql_binaries_fail_the_postgresql_tests_with_the_install_command()
    {
        var empty = TestConfig.TempDir();
        var e = Assert.Throws<InvalidOperationException>(() => PostgresServer.FindBinaries(empty));
        Assert.Contains("sudo deploy/install-deps.sh", e.Message);
        Assert.Contains("initdb", e.Message);
    }
}
