using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Continuity.Core.Security;

/// <summary>
/// The cluster certificate: one self-signed certificate with its private key, the same file on every node. Nodes talk
/// to each other over TLS with mutual authentication and accept only a peer presenting this very certificate (pinned
/// by thumbprint), so holding the file is what makes a process a member. It is a shared secret, like the management
/// token: a PKCS#12 file without password, protected by its mode (0600, root).
/// </summary>
public static class ClusterCertificate
{
    public const string SubjectName = "CN=continuity-cluster";

    /// <summary>Validity of a new certificate: long, because renewing means replacing the file on every node at once.</summary>
    public static readonly TimeSpan Validity = TimeSpan.FromDays(3650);

    /// <summary>Writes a new cluster certificate to <paramref name="path"/> (mode 0600). Never overwrites: replacing
    /// the file on one node would cut it off from the others.</summary>
    /// <exception cref="IOException">The file exists, or cannot be written.</exception>
    public static X509Certificate2 Create(string path)
    {
        if (File.Exists(path))
            throw new IOException($"{path} already exists: a cluster certificate is never overwritten (every node must keep the same one). " +
                                  "Delete it first to replace it on every node at once.");
        using var key = RSA.Create(3072);
        var request = new CertificateRequest(SubjectName, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        // Every node is both server (accepting associations) and client (opening them).
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.Add(Validity));
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory) && !Directory.Exists(directory))
            RootOnly.CreateDirectory(directory);
        using (var file = RootOnly.CreateFile(path))
            file.Write(certificate.Export(X509ContentType.Pkcs12));
        return Load(path);
    }

    /// <summary>Loads the certificate with its private key.</summary>
    /// <exception cref="CryptographicException">Not a PKCS#12 file without password, or no private key in it.</exception>
    public static X509Certificate2 Load(string path)
    {
        var certificate = X509CertificateLoader.LoadPkcs12FromFile(path, password: null, X509KeyStorageFlags.Exportable);
        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new CryptographicException("the file holds no private key");
        }
        return certificate;
    }
}
