using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Continuity.Node.Tests;

/// <summary>A throw-away certificate for 127.0.0.1, written as the PEM files continuity.management.tls names.</summary>
public sealed record SelfSignedCertificate(X509Certificate2 Certificate, string CertificateFile, string KeyFile)
{
    public static SelfSignedCertificate Create(string dir, string name = "node", DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN=continuity-{name}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        var now = DateTimeOffset.UtcNow;
        var cert = request.CreateSelfSigned(now.AddMinutes(-5), notAfter ?? now.AddDays(1));
        var certFile = Path.Combine(dir, $"{name}.crt");
        var keyFile = Path.Combine(dir, $"{name}.key");
        File.WriteAllText(certFile, cert.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        return new SelfSignedCertificate(X509CertificateLoader.LoadCertificate(cert.RawData), certFile, keyFile);
    }
}
