namespace Continuity.Node.Hosting;

/// <summary>The command line of continuity-node.</summary>
/// <param name="CreateClusterCert">With --create-cluster-cert: the file to create; nothing else is done.</param>
public sealed record NodeOptions(string ConfigPath, bool CheckOnly, string? CreateClusterCert = null)
{
    public const string Usage = """
        usage: continuity-node --config FILE.hocon [--check]
               continuity-node --create-cluster-cert FILE

          --config FILE               HOCON configuration of this node (see hocon/reference.conf for every key)
          --check                     validate the configuration, print the effective settings, and exit
          --create-cluster-cert FILE  write a new cluster certificate (PKCS#12, mode 0600) for node-to-node TLS
                                      (continuity.cluster-tls), then copy the same file to every node; never overwrites
          --help                      this text
        """;

    /// <summary>Parses argv; returns null with an error message for bad input.</summary>
    public static NodeOptions? Parse(IReadOnlyList<string> args, out string? error)
    {
        string? config = null;
        string? createCert = null;
        var check = false;
        error = null;
        for (var i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "--config" or "-c":
                    if (i + 1 >= args.Count) { error = "--config needs a file name: --config FILE.hocon"; return null; }
                    config = args[++i];
                    break;
                case "--check":
                    check = true;
                    break;
                case "--create-cluster-cert":
                    if (i + 1 >= args.Count) { error = $"--create-cluster-cert needs a file name: --create-cluster-cert {ClusterTlsOptions.DefaultCertificateFile}"; return null; }
                    createCert = args[++i];
                    break;
                case "--help" or "-h":
                    error = "";
                    return null;
                default:
                    error = $"unknown argument '{args[i]}'";
                    return null;
            }
        }
        if (createCert is not null)
        {
            if (config is not null || check) { error = "--create-cluster-cert is used alone: it only writes the certificate file"; return null; }
            return new NodeOptions("", false, createCert);
        }
        if (config is null) { error = "missing --config FILE.hocon (examples: hocon/seed.hocon, hocon/member.hocon)"; return null; }
        return new NodeOptions(config, check);
    }
}
