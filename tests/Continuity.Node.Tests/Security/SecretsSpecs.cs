using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Node.Tests.Security;

/// <summary>
/// A planted PostgreSQL password and the management token must never be printed: not by <c>--check</c>, not in the
/// node's log, not in any /v1 answer or /metrics. Real continuity-node processes, their whole output grepped.
/// </summary>
public sealed class SecretsSpecs(ITestOutputHelper log) : IDisposable
{
    private const string Password = "Zq7-planted-password";
    private readonly string _dir = Directory.CreateTempSubdirectory("continuity-secrets-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string NodeDll => Path.Combine(AppContext.BaseDirectory, "continuity-node.dll");

    private string Node(string persistence, int clusterPort = 0, int mgmtPort = 8558, string extra = "") => $$"""
        continuity.node.name = "n1"
        continuity.node.state-dir = "{{_dir}}/state"
        continuity.management.bind = "127.0.0.1:{{mgmtPort}}"
        continuity.management.token-file = "{{_dir}}/token"
        continuity.cluster-tls.certificate = "{{TestClusterCertificate.File}}"
        akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
        akka.remote.dot-netty.tcp.port = {{clusterPort}}
        akka.cluster.seed-nodes = ["akka.tcp://continuity@127.0.0.1:{{clusterPort}}"]
        akka.cluster.roles = ["data"]
        continuity.persistence.backend = postgresql
        {{persistence}}
        {{extra}}
        """;

    private Process Start(string config, params string[] extra)
    {
        var file = Path.Combine(_dir, "node.hocon");
        File.WriteAllText(file, config);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir };
        foreach (var a in new[] { NodeDll, "--config", file }.Concat(extra)) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private (int Code, string Output) Check(string config)
    {
        using var p = Start(config, "--check");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "--check did not exit within 60 s");
        var output = stdout.Result + stderr.Result;
        log.WriteLine($"exit {p.ExitCode}: {output}");
        return (p.ExitCode, output);
    }

    public static TheoryData<string, int> Settings => new()
    {
        // Well-formed: the summary line must not carry it either.
        { $"continuity.persistence.postgresql.connection-string = \"Host=db1;Username=u;Password={Password}\"", 0 },
        // An unquoted ';' in the password: Npgsql takes the rest for an unknown keyword and names it.
        { $"continuity.persistence.postgresql.connection-string = \"Host=db1;Username=u;Password=x;{Password}\"", 2 },
        { $"continuity.persistence.postgresql.connection-string = \"Username=u;Password={Password}\"", 2 },
        { $"continuity.persistence.postgresql.connection-string = [\"Host=db1;Password={Password}\"]", 2 },
        { $"continuity.persistence.postgresql.connection-string = {{ Host = db1, Password = \"{Password}\" }}", 2 },
        { $"continuity.persistence.postgresql.connection-string = Host=db1;Password={Password}", 2 },
        // HOCON concatenates the two strings into a valid connection string: valid, and not printed.
        { $"continuity.persistence.postgresql.connection-string = \"Host=db1;Password=x\" \"{Password}\"", 0 },
        { $"continuity.persistence.postgresql.connection-string = \"Host=db1;Password={Password}", 2 },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void Check_never_prints_a_postgresql_password(string setting, int expectedExit)
    {
        var (code, output) = Check(Node(setting));
        Assert.Equal(expectedExit, code);
        // The answer is about the connection string (so this test sees the message it means to), without the password.
        Assert.True(code == 0 ? output.Contains("is valid") : output.Contains("connection-string"), output);
        Assert.DoesNotContain(Password, output);
        Assert.DoesNotContain(Password.ToLowerInvariant(), output.ToLowerInvariant());
    }

    [Fact]
    public async Task A_running_node_never_prints_its_token_or_database_password_in_logs_or_answers()
    {
        var dbPort = TestNode.FreePort(); // nothing listens: the journal cannot be reached and says so
        var mgmtPort = TestNode.FreePort();
        var (_, app) = TestNode.UnstartableApp(_dir, "198.18.0.77/24");
        var config = Node($$"""
            continuity.persistence.postgresql.connection-string = "Host=127.0.0.1;Port={{dbPort}};Database=ct;Username=continuity;Password={{Password}};Timeout=2"
            continuity.persistence.retry-interval = 1s
            akka.loglevel = DEBUG
            """, TestNode.FreePort(), mgmtPort, app);
        const string wrongToken = "Zq7-planted-wrong-token";
        using var p = Start(config);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var answers = new List<string>();
        string token;
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{mgmtPort}"), Timeout = TimeSpan.FromSeconds(10) };
            token = await WaitForToken(http, p);
            foreach (var path in new[] { "/v1/cluster", "/v1/apps", "/v1/apps/kv", "/v1/mib", "/metrics" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var response = await http.SendAsync(request);
                answers.Add($"{path} {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }
            using (var wrong = new HttpRequestMessage(HttpMethod.Post, "/v1/apps/kv/checkpoint"))
            {
                wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", wrongToken);
                using var response = await http.SendAsync(wrong);
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
                answers.Add($"401: {await response.Content.ReadAsStringAsync()}");
            }
            // Let the journal probe and the plugin's retries fail a few times, logging what they log.
            await Task.Delay(TimeSpan.FromSeconds(6));
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        var logs = await stdout + await stderr;
        log.WriteLine(logs.Length > 20_000 ? logs[..20_000] : logs);
        log.WriteLine(string.Join("\n", answers));

        Assert.Contains("cannot reach the PostgreSQL journal", logs); // the error path that names the database ran
        Assert.Contains(answers, a => a.StartsWith("/v1/apps/kv 200"));
        foreach (var secret in new[] { Password, token, wrongToken })
        {
            Assert.DoesNotContain(secret, logs);
            Assert.All(answers, a => Assert.DoesNotContain(secret, a));
        }
    }

    private async Task<string> WaitForToken(HttpClient http, Process p)
    {
        var file = Path.Combine(_dir, "token");
        for (var i = 0; i < 300; i++)
        {
            if (p.HasExited) Assert.Fail($"the node exited with {p.ExitCode}");
            if (File.Exists(file))
            {
                var token = File.ReadAllText(file).Trim();
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/cluster");
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    using var response = await http.SendAsync(request);
                    if (response.IsSuccessStatusCode) return token;
                }
                catch (HttpRequestException) { }
            }
            await Task.Delay(200);
        }
        throw new TimeoutException("the node's management endpoint did not answer within 60 s");
    }
}
