using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Npgsql;

namespace Continuity.Core.Tests.Support;

/// <summary>
/// A real, throwaway PostgreSQL server for one test class (use it as an <c>IClassFixture</c>): initdb into a temporary
/// directory, pg_ctl start on a free TCP port of 127.0.0.1 (its unix socket in that directory too), stopped and deleted
/// on dispose. TCP logins need a password (scram-sha-256), as on a real deployment; <see cref="CreateDatabase"/> gives
/// each test its own database owned by an unprivileged role.
/// </summary>
/// <remarks>
/// PostgreSQL refuses to run as root, so when the tests run as root the server runs as the <c>postgres</c> user of
/// Debian's package (through runuser). Missing binaries fail the test with the fix; they never skip it.
/// </remarks>
public sealed class PostgresServer : IDisposable
{
    public const string InstallHint = "run 'sudo deploy/install-deps.sh' (it installs Debian's postgresql package)";

    private const string Superuser = "postgres";
    private const string SuperuserPassword = "super-secret-for-tests";
    public const string Role = "continuity";
    public const string RolePassword = "continuity-pw-for-tests";

    private readonly string _bin;
    private readonly string _dir;
    private readonly bool _asPostgresUser;
    private int _databases;

    public string Host => "127.0.0.1";
    public int Port { get; private set; }
    public string Version { get; }

    public PostgresServer()
    {
        _bin = FindBinaries();
        _asPostgresUser = geteuid() == 0;
        if (_asPostgresUser && !UserExists("postgres"))
            throw new InvalidOperationException($"the tests run as root and PostgreSQL must not, but there is no 'postgres' user: {InstallHint}");

        _dir = Path.Combine(Path.GetTempPath(), "continuity-pg-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(_dir);
        try
        {
            if (_asPostgresUser) Run("chown", ["postgres:", _dir], asPostgres: false);
            var pwfile = Path.Combine(_dir, "pwfile");
            File.WriteAllText(pwfile, SuperuserPassword + "\n");
            if (_asPostgresUser) Run("chown", ["postgres:", pwfile], asPostgres: false);

            // Password logins over TCP (what a node uses), trust only on the private unix socket (what this fixture uses
            // to create roles and databases). --no-sync: a throwaway cluster needs no fsync at creation.
            Run(Path.Combine(_bin, "initdb"), ["-D", DataDir, "-U", Superuser, "--pwfile", pwfile, "--auth-host=scram-sha-256",
                "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
            Version = Run(Path.Combine(_bin, "postgres"), ["--version"]).Trim();
            Start();
            using var c = Connect(Superuser, SuperuserPassword, "postgres");
            Exec(c, $"CREATE ROLE {Role} LOGIN PASSWORD '{RolePassword}'");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private string DataDir => Path.Combine(_dir, "data");
    private string LogFile => Path.Combine(_dir, "server.log");

    /// <summary>A new, empty database owned by <see cref="Role"/>; returns the Npgsql connection string a node would use.</summary>
    public string CreateDatabase()
    {
        var name = $"continuity_t{Interlocked.Increment(ref _databases)}";
        using (var c = Connect(Superuser, SuperuserPassword, "postgres"))
            Exec(c, $"CREATE DATABASE {name} OWNER {Role}");
        return ConnectionString(name);
    }

    public string ConnectionString(string database, int? port = null) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = Host, Port = port ?? Port, Database = database, Username = Role, Password = RolePassword, Timeout = 10,
        }.ConnectionString;

    /// <summary>The server's log: attached to a failure message so it says what the server saw.</summary>
    public string ServerLog()
    {
        try { return File.Exists(LogFile) ? File.ReadAllText(LogFile) : "(no server log)"; }
        catch (IOException e) { return $"(server log unreadable: {e.Message})"; }
    }

    private void Start()
    {
        // A free port can be taken between the probe and the bind: try a few.
        for (var attempt = 1; ; attempt++)
        {
            Port = FreePort();
            // fsync and full-page writes off: the server is thrown away; nothing here tests durability across an OS crash.
            var options = $"-c listen_addresses={Host} -p {Port} -k {_dir} -c fsync=off -c full_page_writes=off -c max_connections=60";
            try
            {
                Run(Path.Combine(_bin, "pg_ctl"), ["-D", DataDir, "-l", LogFile, "-w", "-t", "60", "-o", options, "start"]);
                return;
            }
            catch (InvalidOperationException) when (attempt < 4 && ServerLog().Contains("could not bind", StringComparison.Ordinal))
            {
            }
        }
    }

    private NpgsqlConnection Connect(string user, string password, string database, bool open = true)
    {
        var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder
        {
            Host = Host, Port = Port, Username = user, Password = password, Database = database, Pooling = false, Timeout = 10,
        }.ConnectionString);
        if (open) c.Open();
        return c;
    }

    private static void Exec(NpgsqlConnection c, string sql)
    {
        using var cmd = new NpgsqlCommand(sql, c);
        cmd.ExecuteNonQuery();
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        if (File.Exists(Path.Combine(DataDir, "postmaster.pid")))
        {
            try { Run(Path.Combine(_bin, "pg_ctl"), ["-D", DataDir, "-m", "fast", "-w", "-t", "30", "stop"]); }
            catch (InvalidOperationException)
            {
                try { Run(Path.Combine(_bin, "pg_ctl"), ["-D", DataDir, "-m", "immediate", "-w", "-t", "30", "stop"]); }
                catch (InvalidOperationException) { }
            }
        }
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>The newest <paramref name="root"/>/N/bin holding initdb, pg_ctl and postgres (Debian's layout).</summary>
    /// <exception cref="InvalidOperationException">None: the message says how to install them.</exception>
    public static string FindBinaries(string root = "/usr/lib/postgresql")
    {
        var found = Directory.Exists(root)
            ? Directory.GetDirectories(root)
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: double.TryParse(Path.GetFileName(d), System.Globalization.NumberStyles.Float,
                    System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : 0))
                .Where(d => new[] { "initdb", "pg_ctl", "postgres" }.All(b => File.Exists(Path.Combine(d.Dir, b))))
                .OrderByDescending(d => d.Version)
                .Select(d => d.Dir)
                .FirstOrDefault()
            : null;
        return found ?? throw new InvalidOperationException(
            $"the PostgreSQL tests start a real PostgreSQL server, but no server binaries (initdb, pg_ctl, postgres) are under {root}/<version>/bin: {InstallHint}");
    }

    private static bool UserExists(string name) =>
        File.ReadLines("/etc/passwd").Any(l => l.StartsWith(name + ":", StringComparison.Ordinal));

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private string Run(string file, IReadOnlyList<string> args, bool? asPostgres = null)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _dir,
        };
        psi.Environment["LC_ALL"] = "C";
        if (asPostgres ?? _asPostgresUser)
        {
            psi.FileName = "runuser";
            foreach (var a in new[] { "-u", "postgres", "--", file }) psi.ArgumentList.Add(a);
        }
        else psi.FileName = file;
        foreach (var a in args) psi.ArgumentList.Add(a);

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {psi.FileName}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} did not finish within 90 s");
        }
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException(
                $"{file} {string.Join(' ', args)} failed (exit {p.ExitCode}): {stdout.Result}{stderr.Result}\nserver log:\n{ServerLog()}");
        return stdout.Result;
    }

    [DllImport("libc")]
    private static extern uint geteuid();
}
