using System.Reflection;
using Akka.Configuration;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Continuity.Core.Log;

/// <summary>
/// The node's packet-log journal in words an operator can act on (backend, host, port, database; never a password),
/// and the checks of the PostgreSQL settings (continuity.persistence.postgresql).
/// </summary>
public static class JournalBackend
{
    public const string BackendKey = "continuity.persistence.backend";
    public const string ConnectionStringKey = "continuity.persistence.postgresql.connection-string";
    public const string ProviderNameKey = "continuity.persistence.postgresql.provider-name";

    /// <summary>linq2db's PostgreSQL dialects (LinqToDB.ProviderName), oldest first; "PostgreSQL" alone asks the server.</summary>
    public static IReadOnlyList<string> PostgresProviders { get; } = typeof(LinqToDB.ProviderName)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f is { IsLiteral: true } && f.FieldType == typeof(string))
        .Select(f => (string)f.GetRawConstantValue()!)
        .Where(v => v.StartsWith("PostgreSQL.", StringComparison.Ordinal))
        .Distinct()
        .OrderBy(DialectVersion)
        .ToList();

    private static Version DialectVersion(string provider)
    {
        var n = provider["PostgreSQL.".Length..];
        return Version.TryParse(n.Contains('.') ? n : n + ".0", out var v) ? v : new Version(0, 0);
    }

    /// <summary>Null when <paramref name="connectionString"/> can be handed to Npgsql, else what is wrong with it.</summary>
    public static string? ConnectionStringProblem(string connectionString)
    {
        const string example = "\"Host=db1.example;Port=5432;Database=continuity_n1;Username=continuity;Password=...\"";
        if (string.IsNullOrWhiteSpace(connectionString))
            return $"is empty: {BackendKey} = postgresql needs an Npgsql connection string such as {example}";
        NpgsqlConnectionStringBuilder b;
        try { b = new NpgsqlConnectionStringBuilder(connectionString); }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            // Npgsql's message quotes the keyword or value at fault, and that may be a piece of the password: an unquoted
            // ';' in "Password=ab;cd" makes "cd" an unknown keyword. Only the position is repeated.
            var at = System.Text.RegularExpressions.Regex.Match(e.Message, @"index (\d+)");
            var where = SafeKeyword(connectionString) is { } k ? $": keyword '{k}' is not supported"
                : at.Success ? $" at character {at.Groups[1].Value}" : "";
            return $"is not a valid Npgsql connection string{where} ({e.GetType().Name}; the value is not repeated, it may hold a password): " +
                   $"write Keyword=Value pairs separated by ';', double-quote a value holding ';' or '=', e.g. {example}";
        }
        if (string.IsNullOrWhiteSpace(b.Host))
            return $"names no Host: the journal server must be given, e.g. {example}";
        return null;
    }

    // The keyword Npgsql quotes, when it stands before any password in the string: a typo ("Hots=db1") is worth
    // naming, a fragment of a password is not.
    private static string? SafeKeyword(string connectionString)
    {
        foreach (var part in connectionString.Split(';'))
        {
            var key = part.Split('=', 2)[0].Trim();
            if (key.Equals("password", StringComparison.OrdinalIgnoreCase) || key.Equals("pwd", StringComparison.OrdinalIgnoreCase)) return null;
            if (!part.Contains('=')) continue;
            try { _ = new NpgsqlConnectionStringBuilder(part); }
            catch (Exception) { return key; }
        }
        return null;
    }

    /// <summary>Null when <paramref name="providerName"/> is a PostgreSQL dialect linq2db knows, else what to use instead.</summary>
    public static string? ProviderProblem(string providerName) =>
        providerName == "PostgreSQL" || PostgresProviders.Contains(providerName)
            ? null
            : $"= \"{providerName}\" is not a PostgreSQL dialect of linq2db: use one of {string.Join(", ", PostgresProviders)} " +
              "(the newest not newer than the server), or \"PostgreSQL\" to ask the server at each start";

    /// <summary>
    /// The journal that persistent actors using the default journal plugin of <paramref name="config"/> write to, e.g.
    /// "PostgreSQL journal (host db1, port 5432, database continuity_n1, user continuity)".
    /// </summary>
    public static string Describe(Config config)
    {
        var pluginId = config.GetString("akka.persistence.journal.plugin", "");
        var (provider, cs) = JournalPlugin(config);
        if (provider.StartsWith("PostgreSQL", StringComparison.OrdinalIgnoreCase)) return DescribePostgres(cs);
        if (provider.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase)) return DescribeSqlite(cs);
        if (pluginId.Length == 0) return "default journal";
        return provider.Length > 0 ? $"journal {pluginId} ({provider})" : $"journal {pluginId}";
    }

    /// <summary>
    /// A check that the journal's database server answers (it returns the server's version), or null when the journal of
    /// <paramref name="config"/> has no server (SQLite, in-memory).
    /// </summary>
    public static Func<CancellationToken, Task<string>>? Check(Config config)
    {
        var (provider, cs) = JournalPlugin(config);
        if (!provider.StartsWith("PostgreSQL", StringComparison.OrdinalIgnoreCase) || ConnectionStringProblem(cs) is not null) return null;
        return async ct =>
        {
            await using var c = new NpgsqlConnection(cs);
            await c.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand("SELECT version()", c);
            return (string?)await cmd.ExecuteScalarAsync(ct) ?? "?";
        };
    }

    private static (string Provider, string ConnectionString) JournalPlugin(Config config)
    {
        var pluginId = config.GetString("akka.persistence.journal.plugin", "");
        var plugin = pluginId.Length > 0 && config.HasPath(pluginId) ? config.GetConfig(pluginId) : null;
        return (plugin?.GetString("provider-name", "") ?? "", plugin?.GetString("connection-string", "") ?? "");
    }

    public static string DescribePostgres(string connectionString)
    {
        try
        {
            var b = new NpgsqlConnectionStringBuilder(connectionString);
            var user = string.IsNullOrEmpty(b.Username) ? "(the OS user)" : b.Username;
            var db = string.IsNullOrEmpty(b.Database) ? $"{user} (default: the user name)" : b.Database;
            return $"PostgreSQL journal (host {(string.IsNullOrEmpty(b.Host) ? "(none)" : b.Host)}, port {b.Port}, database {db}, user {user})";
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            return $"PostgreSQL journal (unreadable connection string: {e.Message})";
        }
    }

    private static string DescribeSqlite(string connectionString)
    {
        try { return $"SQLite journal {new SqliteConnectionStringBuilder(connectionString).DataSource}"; }
        catch (ArgumentException) { return "SQLite journal"; }
    }

    /// <summary>An exception and its causes on one line ("type: message; caused by type: message"), without stacks.</summary>
    public static string Reason(Exception e)
    {
        var parts = new List<string>();
        var seen = new HashSet<string>();
        void Walk(Exception x, int depth)
        {
            if (depth > 8) return;
            // One line: PostgresException puts the error position on a line of its own.
            var message = string.Join(" ", x.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            var line = $"{x.GetType().Name}: {message}";
            if (seen.Add(line)) parts.Add(line);
            if (x is AggregateException a)
                foreach (var inner in a.InnerExceptions) Walk(inner, depth + 1);
            else if (x.InnerException is not null) Walk(x.InnerException, depth + 1);
        }
        Walk(e, 0);
        return string.Join("; caused by ", parts).TrimEnd('.');
    }
}
