using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Continuity.Node.Hosting;

namespace Continuity.Node.Tests;

/// <summary>One cluster certificate for every test node of this run: nodes talk TLS, as they do by default.</summary>
public static class TestClusterCertificate
{
    private static readonly Lazy<string> Created = new(() =>
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("ct-cluster-cert-").FullName, "cluster.pfx");
        Core.Security.ClusterCertificate.Create(file).Dispose();
        return file;
    });

    public static string File => Created.Value;
}

/// <summary>A real node in this process (Akka on 127.0.0.1, Kestrel on loopback) in its own temporary directory.</summary>
public sealed class TestNode : IAsyncDisposable
{
    public string Dir { get; }
    public NodeHost Host { get; }
    public HttpClient Http { get; }
    public string Token { get; }
    public int ClusterPort { get; }
    public int ManagementPort { get; }
    public string Address => Akka.Cluster.Cluster.Get(Host.System).SelfAddress.ToString();
    public string Url => $"http://127.0.0.1:{ManagementPort}";
    private bool _disposed;

    private TestNode(string dir, NodeHost host, HttpClient http, string token, int clusterPort, int managementPort)
    {
        (Dir, Host, Http, Token, ClusterPort, ManagementPort) = (dir, host, http, token, clusterPort, managementPort);
    }

    /// <summary>
    /// HOCON for app kv whose program cannot run: an executable script (written into <paramref name="dir"/>) whose
    /// interpreter does not exist passes the configuration check and fails only when started, before it runs, so
    /// no VIP or firewall rule is ever installed. Restarted once, then given up on.
    /// </summary>
    public static (string Program, string Hocon) UnstartableApp(string dir, string vip, params string[] args)
    {
        var program = Path.Combine(dir, "kv-server");
        File.WriteAllText(program, "#!/nonexistent/interpreter\n");
        File.SetUnixFileMode(program, (UnixFileMode)0b111_101_101);
        var command = string.Join(", ", new[] { program }.Concat(args).Select(a => $"\"{a}\""));
        return (program, $$"""
            continuity.apps.kv {
              command = [{{command}}]
              vip = "{{vip}}"
              ports = ["tcp/7000"]
              max-restarts = 1
              restart-backoff = 200ms
            }
            """);
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <param name="seed">The cluster port of the seed to join; null to form a cluster of its own.</param>
    /// <param name="extra">More HOCON (an application, say).</param>
    public static async Task<TestNode> StartAsync(string name, int? seed = null, string extra = "", string role = "data")
    {
        var dir = Directory.CreateTempSubdirectory("ct-node-test-").FullName;
        var clusterPort = FreePort();
        var mgmtPort = FreePort();
        var file = Path.Combine(dir, "node.hocon");
        File.WriteAllText(file, $$"""
            continuity.node.name = "{{name}}"
            continuity.node.state-dir = "{{dir}}/state"
            continuity.management.bind = "127.0.0.1:{{mgmtPort}}"
            continuity.management.token-file = "{{dir}}/token"
            continuity.supervision.sample-interval = 500ms
            continuity.cluster-tls.certificate = "{{TestClusterCertificate.File}}"
            akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.port = {{clusterPort}}
            akka.cluster.seed-nodes = ["akka.tcp://continuity@127.0.0.1:{{seed ?? clusterPort}}"]
            akka.cluster.roles = ["{{role}}"]
            akka.coordinated-shutdown.exit-clr = off
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            akka.loglevel = WARNING
            {{extra}}
            """);
        var host = await NodeHost.StartAsync(HostSettings.Load(file));
        var token = File.ReadAllText(Path.Combine(dir, "token")).Trim();
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{mgmtPort}"), Timeout = TimeSpan.FromSeconds(30) };
        return new TestNode(dir, host, http, token, clusterPort, mgmtPort);
    }

    public async Task<(HttpStatusCode Status, string Body, string? ContentType)> Get(string path, bool withToken = true)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (withToken) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using var response = await Http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Content.Headers.ContentType?.ToString());
    }

    public async Task<(HttpStatusCode Status, string Body, string? ContentType)> Post(string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using var response = await Http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Content.Headers.ContentType?.ToString());
    }

    /// <summary>GET /v1/apps/<paramref name="app"/> until its answer satisfies <paramref name="ok"/> (60 s at most).</summary>
    public async Task<System.Text.Json.JsonElement> WaitForApp(string app, Func<System.Text.Json.JsonElement, bool> ok, string what)
    {
        System.Text.Json.JsonElement last = default;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var (status, body, _) = await Get($"/v1/apps/{app}");
            if (status == HttpStatusCode.OK)
            {
                last = System.Text.Json.JsonDocument.Parse(body).RootElement.Clone();
                if (ok(last)) return last;
            }
            await Task.Delay(200);
        }
        throw new Xunit.Sdk.XunitException($"{what} not seen within 60 s; last: {last}");
    }

    /// <summary>Waits until GET /v1/cluster shows <paramref name="members"/> members Up.</summary>
    public async Task WaitForUp(int members)
    {
        for (var i = 0; i < 300; i++)
        {
            var (_, body, _) = await Get("/v1/cluster");
            if (body.Split("\"Up\"").Length - 1 >= members) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"{members} members were not Up within 30 s");
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        Http.Dispose();
        await Host.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
