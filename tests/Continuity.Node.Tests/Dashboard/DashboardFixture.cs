using System.Net;
using System.Net.Sockets;
using Continuity.Node.Hosting;
using Microsoft.Playwright;

namespace Continuity.Node.Tests.Dashboard;

/// <summary>One real in-process node for the dashboard tests (loopback only; no VIP or firewall is ever touched).</summary>
internal sealed class TestNode : IAsyncDisposable
{
    public required string Dir { get; init; }
    public required NodeHost Host { get; init; }
    public required int ClusterPort { get; init; }
    public required int ManagementPort { get; init; }
    public required string Token { get; init; }
    public string Url => $"http://127.0.0.1:{ManagementPort}";
    private bool _disposed;

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <param name="seedPort">The cluster port of the node to join; null starts a cluster of its own.</param>
    /// <param name="extra">More HOCON (an application, say).</param>
    public static async Task<TestNode> StartAsync(string name, string role, int? seedPort = null, string extra = "")
    {
        var dir = Directory.CreateTempSubdirectory("continuity-dashboard-").FullName;
        var clusterPort = FreePort();
        var mgmtPort = FreePort();
        var file = Path.Combine(dir, "node.hocon");
        File.WriteAllText(file, $$"""
            continuity.node.name = "{{name}}"
            continuity.node.state-dir = "{{dir}}/state"
            continuity.management.bind = "127.0.0.1:{{mgmtPort}}"
            continuity.management.token-file = "{{dir}}/token"
            akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.port = {{clusterPort}}
            akka.cluster.seed-nodes = ["akka.tcp://continuity@127.0.0.1:{{seedPort ?? clusterPort}}"]
            akka.cluster.roles = ["{{role}}"]
            akka.coordinated-shutdown.exit-clr = off
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            akka.loglevel = WARNING
            {{extra}}
            """);
        var host = await NodeHost.StartAsync(HostSettings.Load(file));
        return new TestNode
        {
            Dir = dir, Host = host, ClusterPort = clusterPort, ManagementPort = mgmtPort,
            Token = File.ReadAllText(Path.Combine(dir, "token")).Trim(),
        };
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await Host.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Headless Debian Chromium driven by Playwright; Playwright's own browsers are never downloaded.</summary>
internal static class Browser
{
    public const string Chromium = "/usr/bin/chromium";

    public static async Task<(IPlaywright, IBrowser)> LaunchAsync()
    {
        if (!File.Exists(Chromium))
            throw new InvalidOperationException(
                $"The dashboard's browser tests need Debian's chromium at {Chromium}, which is not installed: run 'sudo deploy/install-deps.sh' (or 'apt-get install chromium').");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        var playwright = await Playwright.CreateAsync();
        // Playwright passes --no-sandbox itself (chromiumSandbox is off by default), which running as root needs.
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium, Headless = true });
        return (playwright, browser);
    }

    /// <summary>The repository's root (where Continuity.Akka.sln is), for docs/dashboard.png.</summary>
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Continuity.Akka.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("Continuity.Akka.sln not found above " + AppContext.BaseDirectory);
    }
}
