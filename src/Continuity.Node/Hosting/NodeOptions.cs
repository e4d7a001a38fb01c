namespace Continuity.Node.Hosting;

/// <summary>The command line of continuity-node.</summary>
public sealed record NodeOptions(string ConfigPath, bool CheckOnly)
{
    public const string Usage = """
        usage: continuity-node --config FILE.hocon [--check]

          --config FILE   HOCON configuration of this node (see hocon/reference.conf for every key)
          --check         validate the configuration, print the effective settings, and exit
          --help          this text
        """;

    /// <summary>Parses argv; returns null with an error message for bad input.</summary>
    public static NodeOptions? Parse(IReadOnlyList<string> args, out string? error)
    {
        string? config = null;
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
                case "--help" or "-h":
                    error = "";
                    return null;
                default:
                    error = $"unknown argument '{args[i]}'";
                    return null;
            }
        }
        if (config is null) { error = "missing --config FILE.hocon (examples: hocon/seed.hocon, hocon/member.hocon)"; return null; }
        return new NodeOptions(config, check);
    }
}
