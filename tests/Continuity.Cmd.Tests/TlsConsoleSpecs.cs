using Xunit;

namespace Continuity.Cmd.Tests;

/// <summary>The console against a node serving HTTPS (continuity.management.tls), and the mistakes people make with it.</summary>
public sealed class TlsConsoleSpecs : IAsyncLifetime
{
    private readonly ConsoleRun _run = new();
    private TestCertificate _cert = null!;
    private TlsNode _tls = null!;

    public async Task InitializeAsync()
    {
        _cert = TestCertificate.Create(_run.Dir, "node");
        _tls = await TlsNode.StartAsync(_cert.WithKey);
    }

    public async Task DisposeAsync()
    {
        await _tls.DisposeAsync();
        _run.Dispose();
    }

    private Task<int> Run(string endpoint, params string[] args) =>
        CmdApp.RunAsync(["--node", endpoint, "--token-file", _run.TokenFile, .. args], _run.Environment());

    [Fact]
    public async Task With_ca_naming_the_nodes_certificate_the_console_speaks_https()
    {
        var code = await Run(_tls.Endpoint, "--ca", _cert.PemFile, "cluster", "show");

        Assert.Equal(0, code);
        Assert.Contains(Canned.N3, _run.Out);
    }

    [Fact]
    public async Task Ca_is_also_taken_from_the_environment()
    {
        _run.Env["CONTINUITY_CA"] = _cert.PemFile;

        var code = await Run(_tls.Endpoint, "cluster", "show");

        Assert.Equal(0, code);
        Assert.Contains(Canned.N2, _run.Out);
    }

    [Fact]
    public async Task Plain_http_to_an_https_node_says_to_pass_ca()
    {
        var code = await Run(_tls.Endpoint, "cluster", "show");

        Assert.Equal(3, code);
        Assert.Contains($"the node at {_tls.Endpoint} serves HTTPS (continuity.management.tls is set there) and the console spoke plain HTTP: pass --ca FILE", _run.Err);
    }

    [Fact]
    public async Task Https_to_a_plain_http_node_says_to_drop_ca()
    {
        await using var plain = new FakeNode();
        plain.Json("GET", "/v1/cluster", Canned.Cluster);

        var code = await Run(plain.Endpoint, "--ca", _cert.PemFile, "cluster", "show");

        Assert.Equal(3, code);
        Assert.Contains($"the node at {plain.Endpoint} did not answer the TLS handshake: it serves plain HTTP", _run.Err);
        Assert.Contains("Drop --ca", _run.Err);
    }

    [Fact]
    public async Task A_certificate_not_signed_by_the_ca_is_refused_naming_it()
    {
        var other = TestCertificate.Create(_run.Dir, "other");

        var code = await Run(_tls.Endpoint, "--ca", other.PemFile, "cluster", "show");

        Assert.Equal(3, code);
        Assert.Contains("serves a certificate the console does not trust: CN=continuity-node is not signed by a certificate of --ca", _run.Err);
        Assert.Contains("Pass --ca FILE with the node's certificate", _run.Err);
        Assert.DoesNotContain(Canned.N3, _run.Out);
    }

    [Theory]
    [InlineData("missing.pem", "no such file")]
    [InlineData("empty.pem", "holds no certificate (-----BEGIN CERTIFICATE-----)")]
    public async Task A_bad_ca_file_is_bad_usage_naming_the_file(string file, string problem)
    {
        File.WriteAllText(Path.Combine(_run.Dir, "empty.pem"), "nothing here\n");
        var path = Path.Combine(_run.Dir, file);

        var code = await Run(_tls.Endpoint, "--ca", path, "cluster", "show");

        Assert.Equal(2, code);
        Assert.Contains($"--ca {path}", _run.Err);
        Assert.Contains(problem, _run.Err);
        Assert.Contains("the CA that signed it, in PEM", _run.Err);
    }
}
