using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Continuity.Core.Configuration;
using Continuity.Core.Security;
using Continuity.Node.Hosting;
using Xunit;

namespace Continuity.Node.Tests.Hosting;

/// <summary>
/// Node-to-node TLS (continuity.cluster-tls) between real nodes: the cluster forms over TLS with the shared
/// certificate, and a process without it, or with another one, never becomes a member.
/// </summary>
public sealed class ClusterTlsSpecs : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ct-cluster-tls-").FullName;

    [Fact]
    public async Task Nodes_sharing_the_cluster_certificate_form_a_cluster_and_present_it_on_the_cluster_port()
    {
        await using var seed = await TestNode.StartAsync("n1");
        await using var member = await TestNode.StartAsync("n2", seed.ClusterPort);
        await seed.WaitForUp(2);

        // A TLS client reaching the cluster port is shown the cluster certificate (a clear Akka endpoint shows none).
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", seed.ClusterPort);
        X509Certificate2? presented = null;
        await using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, _, _) =>
        {
            if (certificate is not null) presented = new X509Certificate2(certificate);
            return true;
        });
        try
        {
            await tls.AuthenticateAsClientAsync("continuity-cluster").WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            // Expected: this client has no certificate to show back (mutual authentication).
        }
        using var cluster = ClusterCertificate.Load(TestClusterCertificate.File);
        Assert.Equal(cluster.Thumbprint, presented?.Thumbprint);
    }

    [Fact]
    public async Task A_node_with_another_cluster_certificate_never_becomes_a_member()
    {
        await using var seed = await TestNode.StartAsync("n1");
        var stranger = Path.Combine(_dir, "stranger.pfx");
        ClusterCertificate.Create(stranger).Dispose();
        await using var intruder = await TestNode.StartAsync("n2", seed.ClusterPort, $"continuity.cluster-tls.certificate = \"{stranger}\"");
        await AssertStaysAlone(seed);
    }

    [Fact]
    public async Task A_node_in_clear_never_becomes_a_member_of_a_tls_cluster()
    {
        await using var seed = await TestNode.StartAsync("n1");
        await using var intruder = await TestNode.StartAsync("n2", seed.ClusterPort, "continuity.cluster-tls.enabled = off");
        await AssertStaysAlone(seed);
    }

    [Fact]
    public async Task A_node_that_shuts_down_refuses_new_cluster_connections_before_its_remoting_closes_and_leaves_no_rule_behind()
    {
        var node = await TestNode.StartAsync("n1");
        var guard = new Continuity.Linux.Netfilter.ClosingPortGuard(node.ClusterPort);
        Assert.False(guard.Refusing);

        var stopped = node.Host.LeaveAndStopAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!guard.Refusing && clock.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(5);
        Assert.True(guard.Refusing, "the node never refused new connections as it shut down");
        // Refused (RST), where a peer dialling a closing remoting used to be accepted and then cut mid-handshake.
        using var peer = new TcpClient();
        var refused = await Assert.ThrowsAsync<SocketException>(() => peer.ConnectAsync("127.0.0.1", node.ClusterPort));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        await stopped;
        await node.Host.Terminated.WaitAsync(TimeSpan.FromSeconds(30));
        clock.Restart();
        while (guard.Refusing && clock.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
        Assert.False(guard.Refusing, "the refusal outlived the node");
        await node.DisposeAsync();
    }

    /// <summary>Ten seconds is several join attempts (seed-node-timeout 5s, retries): long enough for a join that
    /// TLS did not stop to show as a second member.</summary>
    private static async Task AssertStaysAlone(TestNode seed)
    {
        await Task.Delay(TimeSpan.FromSeconds(10));
        var (_, body, _) = await seed.Get("/v1/cluster");
        Assert.Equal(1, body.Split("\"Up\"").Length - 1 + body.Split("\"Joining\"").Length - 1 + body.Split("\"WeaklyUp\"").Length - 1);
    }

    [Fact]
    public void A_missing_certificate_stops_the_start_and_says_how_to_create_it_or_turn_tls_off()
    {
        var e = LoadFails($"continuity.cluster-tls.certificate = \"{_dir}/none.pfx\"");
        Assert.Contains("no such file", e.Message);
        Assert.Contains($"continuity-node --create-cluster-cert {_dir}/none.pfx", e.Message);
        Assert.Contains("continuity.cluster-tls.enabled = off", e.Message);
        Assert.Contains("node.hocon:2:", e.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_certificate_is_refused_with_the_reason()
    {
        File.WriteAllText(Path.Combine(_dir, "bad.pfx"), "-----BEGIN CERTIFICATE-----\nnot one\n");
        var e = LoadFails($"continuity.cluster-tls.certificate = \"{_dir}/bad.pfx\"");
        Assert.Contains("cannot be loaded", e.Message);
        Assert.Contains("PKCS#12", e.Message);
    }

    [Fact]
    public void A_certificate_given_as_a_list_is_refused_naming_the_key_and_what_was_found()
    {
        var e = LoadFails($"continuity.cluster-tls.certificate = [\"{_dir}/a.pfx\", \"{_dir}/b.pfx\"]");
        Assert.Equal("continuity.cluster-tls.certificate", e.Key);
        Assert.Contains("is an array where the absolute path of the cluster certificate (PKCS#12) is expected", e.Message);
    }

    [Fact]
    public void A_relative_certificate_path_is_refused()
    {
        var e = LoadFails("continuity.cluster-tls.certificate = \"cluster.pfx\"");
        Assert.Contains("absolute path", e.Message);
    }

    [Fact]
    public void With_tls_off_no_certificate_is_needed()
    {
        var file = Path.Combine(_dir, "node.hocon");
        File.WriteAllText(file, $"continuity.node.state-dir = \"{_dir}/state\"\ncontinuity.cluster-tls {{ enabled = off, certificate = \"{_dir}/none.pfx\" }}\n");
        Assert.False(HostSettings.Load(file).ClusterTls!.Enabled);
    }

    [Fact]
    public void A_created_certificate_is_root_only_loads_with_its_key_and_is_never_overwritten()
    {
        var file = Path.Combine(_dir, "etc", "cluster.pfx");
        using (var created = ClusterCertificate.Create(file))
        {
            Assert.True(created.HasPrivateKey);
            Assert.Equal(ClusterCertificate.SubjectName, created.Subject);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            using var loaded = ClusterCertificate.Load(file);
            Assert.Equal(created.Thumbprint, loaded.Thumbprint);
        }
        var before = File.ReadAllBytes(file);
        var e = Assert.Throws<IOException>(() => ClusterCertificate.Create(file));
        Assert.Contains("never overwritten", e.Message);
        Assert.Equal(before, File.ReadAllBytes(file));
    }

    [Fact]
    public void The_command_line_creates_a_certificate_alone()
    {
        Assert.Equal(new NodeOptions("", false, "/tmp/c.pfx"), NodeOptions.Parse(["--create-cluster-cert", "/tmp/c.pfx"], out _));
        Assert.Null(NodeOptions.Parse(["--create-cluster-cert"], out var missing));
        Assert.Contains("needs a file name", missing);
        Assert.Null(NodeOptions.Parse(["--create-cluster-cert", "/tmp/c.pfx", "--config", "a.hocon"], out var both));
        Assert.Contains("used alone", both);
    }

    private ConfigurationException LoadFails(string hocon)
    {
        var file = Path.Combine(_dir, "node.hocon");
        File.WriteAllText(file, $"continuity.node.state-dir = \"{_dir}/state\"\n{hocon}\n");
        return Assert.Throws<ConfigurationException>(() => HostSettings.Load(file));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
