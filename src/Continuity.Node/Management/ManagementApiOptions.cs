using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Continuity.Core.Configuration;

namespace Continuity.Node.Management;

/// <summary>
/// The management endpoint's audit trail and TLS (continuity.management.audit, continuity.management.tls), read and
/// checked when the configuration is loaded, so a bad certificate stops `--check` and the start, not the first request.
/// </summary>
/// <param name="AuditMaxFileBytes">Size at which audit.jsonl is rotated to audit.jsonl.1 (which is then replaced).</param>
/// <param name="Certificate">The certificate with its private key, or null for plain HTTP.</param>
public sealed record ManagementApiOptions(long AuditMaxFileBytes, X509Certificate2? Certificate, string? CertificateFile = null)
{
    public const long MinAuditBytes = 4096;
    public const long MaxAuditBytes = 1L << 30;

    public static readonly ManagementApiOptions Default = new(1L << 20, null);

    public bool Tls => Certificate is not null;

    public static ManagementApiOptions From(LoadedConfig config)
    {
        const string audit = "continuity.management.audit.max-file-bytes";
        const string cert = "continuity.management.tls.certificate";
        const string key = "continuity.management.tls.key";

        // Read through the checked getter: Akka's GetString returns null for an array or object, which read as "not set"
        // and silently kept the default (or, for the certificate, served plain HTTP).
        const string size = "a size from 4 KiB to 1 GiB, e.g. 1048576 or \"1 MiB\"";
        const string pem = "the absolute path of a PEM file (or \"\" for plain HTTP)";
        var sizeText = config.Config.HasPath(audit) ? ConfigValues.String(config, audit, expected: size) : "1048576";
        if (!TryParseBytes(sizeText, out var bytes) || bytes < MinAuditBytes || bytes > MaxAuditBytes)
            throw Bad(config, audit, $"= \"{sizeText}\" is invalid: expected a size from 4 KiB to 1 GiB, in bytes or with a unit, e.g. 1048576 or \"1 MiB\"");

        var certFile = ConfigValues.String(config, cert, required: false, expected: pem);
        var keyFile = ConfigValues.String(config, key, required: false, expected: pem);
        if (certFile.Length == 0 && keyFile.Length == 0) return new ManagementApiOptions(bytes, null);
        if (certFile.Length == 0)
            throw Bad(config, cert, $"is empty while {key} is set: set both (PEM files) to serve HTTPS, or neither for plain HTTP");
        if (keyFile.Length == 0)
            throw Bad(config, key, $"is empty while {cert} is set: set both (PEM files) to serve HTTPS, or neither for plain HTTP");
        foreach (var (k, file) in new[] { (cert, certFile), (key, keyFile) })
        {
            if (!Path.IsPathFullyQualified(file)) throw Bad(config, k, $"= \"{file}\" is invalid: expected an absolute path to a PEM file");
            if (!File.Exists(file)) throw Bad(config, k, $"= \"{file}\": no such file: expected a PEM file readable by the node");
        }

        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(certFile, keyFile);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw Bad(config, cert, $"= \"{certFile}\" with key \"{keyFile}\" cannot be loaded ({e.Message}): expected a PEM certificate " +
                                    "(-----BEGIN CERTIFICATE-----) and its unencrypted PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC)");
        }
        if (certificate.NotAfter < DateTime.Now)
            throw Bad(config, cert, $"= \"{certFile}\" expired on {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm} UTC: install a renewed certificate");
        return new ManagementApiOptions(bytes, certificate, certFile);
    }

    private static ConfigurationException Bad(LoadedConfig c, string key, string problem) => new($"'{key}' {problem}", c.PositionOf(key), key);

    /// <summary>A byte count, bare or with a HOCON size unit (K, KiB, M, MiB, G, GiB; also kB, MB, GB as powers of 1000).</summary>
    internal static bool TryParseBytes(string text, out long bytes)
    {
        bytes = 0;
        var s = text.Trim();
        var i = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (i == 0 || !long.TryParse(s[..i], NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return false;
        long? factor = s[i..].Trim() switch
        {
            "" or "B" or "b" or "bytes" => 1,
            "K" or "k" or "Ki" or "KiB" => 1L << 10,
            "kB" => 1000,
            "M" or "m" or "Mi" or "MiB" => 1L << 20,
            "MB" => 1_000_000,
            "G" or "g" or "Gi" or "GiB" => 1L << 30,
            "GB" => 1_000_000_000,
            _ => null,
        };
        if (factor is null || n > long.MaxValue / factor.Value) return false;
        bytes = n * factor.Value;
        return true;
    }
}
