using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Continuity.Cmd.Tests;

/// <summary>A throw-away certificate for 127.0.0.1 and the PEM file the console's --ca reads.</summary>
public sealed record TestCertificate(X509Certificate2 WithKey, string PemFile)
{
    public static TestCertificate Create(string dir, string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN=continuity-{name}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var file = Path.Combine(dir, $"{name}.crt");
        File.WriteAllText(file, cert.ExportCertificatePem());
        // Exported and loaded again: Kestrel on Linux wants a key it can use from any thread, not an ephemeral handle.
        return new TestCertificate(X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null), file);
    }
}

/// <summary>The management API over HTTPS (real Kestrel, as a node with continuity.management.tls serves it), canned answers.</summary>
public sealed class TlsNode : IAsyncDisposable
{
    private readonly WebApplication _app;
    public string Endpoint { get; }

    private TlsNode(WebApplication app, string endpoint) => (_app, Endpoint) = (app, endpoint);

    public static async Task<TlsNode> StartAsync(X509Certificate2 certificate)
    {
        var port = FakeNode.FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.UseHttps(certificate)));
        var app = builder.Build();
        app.MapGet("/v1/cluster", (HttpContext ctx) => ctx.Request.Headers.Authorization == $"Bearer {FakeNode.Token}"
            ? Results.Text(Canned.Cluster, "application/json")
            : Results.Text("""{"error":"invalid token"}""", "application/json", statusCode: 401));
        await app.StartAsync();
        return new TlsNode(app, $"127.0.0.1:{port}");
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
