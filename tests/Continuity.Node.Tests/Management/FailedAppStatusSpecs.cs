using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Continuity.Node.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Node.Tests.Management;

/// <summary>
/// A real node (one data member, the real launcher) protecting a program that cannot run: an executable script whose
/// interpreter does not exist passes the configuration check and fails only when it is started. The exec fails before
/// the program ever runs, so no VIP or firewall rule is ever installed.
/// </summary>
public sealed class FailedAppStatusSpecs(ITestOutputHelper log) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("continuity-node-failed-").FullName;
    private NodeHost _host = null!;
    private HttpClient _http = null!;
    private string _program = "";

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task InitializeAsync()
    {
        _program = Path.Combine(_dir, "kv-server");
        File.WriteAllText(_program, "#!/nonexistent/interpreter\n");
        File.SetUnixFileMode(_program, (UnixFileMode)0b111_101_101);
        var clusterPort = FreePort();
        var mgmtPort = FreePort();
        var file = Path.Combine(_dir, "node.hocon");
        File.WriteAllText(file, $$"""
            continuity.node.name = "solo"
            continuity.node.state-dir = "{{_dir}}/state"
            continuity.management.bind = "127.0.0.1:{{mgmtPort}}"
            continuity.management.token-file = "{{_dir}}/token"
            akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.port = {{clusterPort}}
            akka.cluster.seed-nodes = ["akka.tcp://continuity@127.0.0.1:{{clusterPort}}"]
            akka.cluster.roles = ["data"]
            akka.coordinated-shutdown.exit-clr = off
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            akka.loglevel = WARNING
            continuity.apps.kv {
              command = ["{{_program}}", "--port", "7000"]
              vip = "198.18.99.50/24"
              ports = ["tcp/7000"]
              max-restarts = 1
              restart-backoff = 200ms
            }
            """);
        _host = await NodeHost.StartAsync(HostSettings.Load(file));
        var token = File.ReadAllText(Path.Combine(_dir, "token")).Trim();
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{mgmtPort}") };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _host.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task The_app_status_shows_failed_with_the_exit_code_and_output_instead_of_pretending_it_runs()
    {
        JsonElement app = default;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            using var response = await _http.GetAsync("/v1/apps/kv");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                app = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
                if (app.GetProperty("state").GetString() == "failed") break;
            }
            await Task.Delay(200);
        }
        log.WriteLine(app.ToString());
        Assert.Equal("failed", app.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, app.GetProperty("primary").ValueKind);
        var alarm = app.GetProperty("alarm").GetString()!;
        Assert.StartsWith($"failed: solo: could not start {_program} --port 7000: {_program} exited with code 127 right after start; " +
            $"last output: continuity-launch: line 1: {_program}: ", alarm);
        Assert.Contains("stopped after 2 failure(s) within 10m (max-restarts = 1)", alarm);
    }
}
