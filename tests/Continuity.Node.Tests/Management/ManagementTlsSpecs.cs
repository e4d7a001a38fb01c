using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using Continuity.Core.Configuration;
using Continuity.Node.Hosting;
using Xunit;

namespace Continuity.Node.Tests.Management;

/// <summary>continuity.management.tls: a real node serving its API over HTTPS with a certificate made in the test.</summary>
public sealed class ManagementTlsSpecs : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ct-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Tls(string cert, string key) =>
        $"continuity.management.tls {{ certificate = \"{cert}\", key = \"{key}\" }}";

    private static HttpClient Trusting(X509Certificate2 anchor, int port)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust, CustomTrustStore = { anchor }, RevocationMode = X509RevocationMode.NoCheck,
        };
        return new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(20) };
    }

    [Fact]
    public async Task With_a_certificate_the_api_is_served_over_https_only()
    {
        var cert = SelfSignedCertificate.Create(_dir);
        await using var node = await TestNode.StartAsync("secure", extra: Tls(cert.CertificateFile, cert.KeyFile));
        using var https = Trusting(cert.Certificate, node.ManagementPort);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/cluster");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", node.Token);

        using var response = await https.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"secure\"", await response.Content.ReadAsStringAsync());
        // Plain HTTP on the same port gets no answer from the API.
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => node.Get("/v1/cluster"));
    }

    [Fact]
    public async Task A_client_that_does_not_trust_the_certificate_is_not_answered()
    {
        var cert = SelfSignedCertificate.Create(_dir, "served");
        var other = SelfSignedCertificate.Create(_dir, "other");
        await using var node = await TestNode.StartAsync("secure", extra: Tls(cert.CertificateFile, cert.KeyFile));
        using var https = Trusting(other.Certificate, node.ManagementPort);

        var e = await Assert.ThrowsAnyAsync<HttpRequestException>(() => https.GetAsync("/v1/cluster"));
        Assert.IsType<System.Security.Authentication.AuthenticationException>(e.InnerException);
    }

    private ConfigurationException LoadFails(string hocon)
    {
        var file = Path.Combine(_dir, "node.hocon");
        File.WriteAllText(file, $"continuity.node.state-dir = \"{_dir}/state\"\n{hocon}\n{ClusterCert}\n");
        return Assert.Throws<ConfigurationException>(() => HostSettings.Load(file));
    }

    [Fact]
    public void A_certificate_without_its_key_is_refused_naming_the_missing_key()
    {
        var cert = SelfSignedCertificate.Create(_dir);

        var e = LoadFails($"continuity.management.tls.certificate = \"{cert.CertificateFile}\"");

        Assert.Equal("continuity.management.tls.key", e.Key);
        Assert.Contains("is empty while continuity.management.tls.certificate is set: set both (PEM files)", e.Message);
    }

    [Fact]
    public void A_missing_certificate_file_is_refused_naming_the_file()
    {
        var cert = SelfSignedCertificate.Create(_dir);

        var e = LoadFails(Tls(Path.Combine(_dir, "nope.crt"), cert.KeyFile));

        Assert.Equal("continuity.management.tls.certificate", e.Key);
        Assert.Contains("nope.crt\": no such file", e.Message);
        Assert.Contains("node.hocon:2:", e.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_pem_certificate_is_refused_saying_what_is_expected()
    {
        var cert = SelfSignedCertificate.Create(_dir);
        File.WriteAllText(cert.CertificateFile, "not a certificate\n");

        var e = LoadFails(Tls(cert.CertificateFile, cert.KeyFile));

        Assert.Contains("cannot be loaded", e.Message);
        Assert.Contains("expected a PEM certificate (-----BEGIN CERTIFICATE-----)", e.Message);
    }

    [Fact]
    public void A_key_that_belongs_to_another_certificate_is_refused()
    {
        var cert = SelfSignedCertificate.Create(_dir, "a");
        var other = SelfSignedCertificate.Create(_dir, "b");

        var e = LoadFails(Tls(cert.CertificateFile, other.KeyFile));

        Assert.Contains("cannot be loaded", e.Message);
    }

    [Fact]
    public void An_expired_certificate_is_refused_with_its_date()
    {
        var cert = SelfSignedCertificate.Create(_dir, notAfter: DateTimeOffset.UtcNow.AddMinutes(-1));

        var e = LoadFails(Tls(cert.CertificateFile, cert.KeyFile));

        Assert.Contains("expired on", e.Message);
        Assert.Contains("install a renewed certificate", e.Message);
    }

    [Theory]
    [InlineData("100", "4 KiB to 1 GiB")]
    [InlineData("\"lots\"", "in bytes or with a unit")]
    [InlineData("\"2 GiB\"", "4 KiB to 1 GiB")]
    public void A_bad_audit_bound_is_refused_saying_what_is_expected(string value, string expected)
    {
        var e = LoadFails($"continuity.management.audit.max-file-bytes = {value}");

        Assert.Equal("continuity.management.audit.max-file-bytes", e.Key);
        Assert.Contains(expected, e.Message);
    }

    /// <summary>
    /// Found by configuration fuzzing: the certificate was read with Akka's GetString, which returns null for an array,
    /// and null read as "not set", so the node served plain HTTP without a word.
    /// </summary>
    [Theory]
    [InlineData("continuity.management.tls.certificate = [1, [2]]", "continuity.management.tls.certificate", "= [\"1\", [\"2\"]] is an array")]
    [InlineData("continuity.management.tls.key = { file = k.pem }", "continuity.management.tls.key", "is an object")]
    [InlineData("continuity.management.audit.max-file-bytes = [1048576]", "continuity.management.audit.max-file-bytes", "= [\"1048576\"] is an array")]
    public void A_tls_or_audit_setting_given_an_array_or_object_is_refused_naming_the_key_and_what_was_found(string line, string key, string found)
    {
        var e = LoadFails(line);

        Assert.Equal(key, e.Key);
        Assert.Contains("node.hocon:2:", e.Message);
        Assert.Contains($"'{key}' {found} where ", e.Message);
        Assert.Contains(key.EndsWith("max-file-bytes") ? "where a size from 4 KiB to 1 GiB" : "where the absolute path of a PEM file", e.Message);
        Assert.Contains("write one value", e.Message);
    }

    private static string ClusterCert => $"continuity.cluster-tls.certificate = \"{TestClusterCertificate.File}\"";

    [Fact]
    public void The_defaults_are_plain_http_and_a_one_mebibyte_audit_file()
    {
        var file = Path.Combine(_dir, "node.hocon");
        File.WriteAllText(file, $"continuity.node.state-dir = \"{_dir}/state\"\ncontinuity.management.audit.max-file-bytes = \"64 KiB\"\n{ClusterCert}\n");
        var defaults = Path.Combine(_dir, "defaults.hocon");
        File.WriteAllText(defaults, $"continuity.node.state-dir = \"{_dir}/state\"\n{ClusterCert}\n");

        Assert.Equal(64 * 1024, HostSettings.Load(file).ManagementApi!.AuditMaxFileBytes);
        var d = HostSettings.Load(defaults).ManagementApi!;
        Assert.Equal((1L << 20, false), (d.AuditMaxFileBytes, d.Tls));
    }
}
