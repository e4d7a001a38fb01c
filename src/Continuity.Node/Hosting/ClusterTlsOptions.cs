using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Remote.Transport.DotNetty;
using Continuity.Core.Configuration;
using Continuity.Core.Security;

namespace Continuity.Node.Hosting;

/// <summary>
/// TLS between nodes (continuity.cluster-tls): Akka.Remote's DotNetty transport with mutual authentication, each side
/// accepting only a peer that presents the cluster certificate (<see cref="ClusterCertificate"/>), pinned by
/// thumbprint. Chain and host name are not what is checked: the certificate is self-signed and nodes are addressed by
/// IP; possession of the shared private key is. Read and checked with the configuration, so a missing or broken file
/// stops `--check` and the start with the fix, not the first association.
/// </summary>
/// <param name="Certificate">The cluster certificate, or null when continuity.cluster-tls.enabled = off.</param>
public sealed record ClusterTlsOptions(X509Certificate2? Certificate, string? CertificateFile)
{
    public const string EnabledKey = "continuity.cluster-tls.enabled";
    public const string CertificateKey = "continuity.cluster-tls.certificate";
    public const string DefaultCertificateFile = "/etc/continuity/cluster.pfx";

    public static readonly ClusterTlsOptions Off = new(null, null);

    public bool Enabled => Certificate is not null;

    public static ClusterTlsOptions From(LoadedConfig config)
    {
        if (!ConfigValues.Bool(config, EnabledKey)) return Off;
        var file = config.Config.HasPath(CertificateKey)
            ? ConfigValues.String(config, CertificateKey, required: false, expected: "the absolute path of the cluster certificate (PKCS#12)")
            : DefaultCertificateFile;
        var create = $"create it once with 'continuity-node --create-cluster-cert {(file.Length == 0 ? DefaultCertificateFile : file)}' " +
                     "(deploy/build.sh does for this machine) and copy that same file to every node (mode 0600), " +
                     $"or set {EnabledKey} = off on every node to run node-to-node traffic in clear";
        if (file.Length == 0 || !Path.IsPathFullyQualified(file))
            throw Bad(config, CertificateKey, $"= \"{file}\" is invalid: expected the absolute path of the cluster certificate (PKCS#12); {create}");
        if (!File.Exists(file))
            throw Bad(config, CertificateKey, $"= \"{file}\": no such file: {create}");
        X509Certificate2 certificate;
        try
        {
            certificate = ClusterCertificate.Load(file);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw Bad(config, CertificateKey, $"= \"{file}\" cannot be loaded ({e.Message}): expected a PKCS#12 file without password " +
                                              $"holding the certificate and its private key; {create}");
        }
        if (certificate.NotAfter < DateTime.Now)
            throw Bad(config, CertificateKey, $"= \"{file}\" expired on {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC: " +
                                              "create a new one and replace it on every node at once");
        return new ClusterTlsOptions(certificate, file);
    }

    /// <summary>The setup for <see cref="ActorSystem.Create(string, ActorSystemSetup)"/>: TLS switched on in the
    /// configuration and the certificate with its pinning validator.</summary>
    public ActorSystemSetup Setup(Config config)
    {
        var bootstrap = BootstrapSetup.Create();
        if (Certificate is null) return ActorSystemSetup.Create(bootstrap.WithConfig(config));
        var tls = ConfigurationFactory.ParseString("akka.remote.dot-netty.tcp.enable-ssl = on").WithFallback(config);
        return bootstrap.WithConfig(tls).And(new DotNettySslSetup(Certificate, suppressValidation: false,
            requireMutualAuthentication: true, validateCertificateHostname: false,
            CertificateValidation.PinnedCertificate(Certificate.Thumbprint)));
    }

    private static Core.Configuration.ConfigurationException Bad(LoadedConfig c, string key, string problem) => new($"'{key}' {problem}", c.PositionOf(key), key);
}
