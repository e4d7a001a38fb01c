using System.Text;

namespace Continuity.Cmd;

/// <summary>Raised for bad usage; carries the command whose usage line should be shown (null = general usage).</summary>
internal sealed class UsageException(string message, CommandSpec? command = null) : Exception(message)
{
    public CommandSpec? Command { get; } = command;
}

/// <summary>Options that apply to every command; accepted anywhere on the line, like Petabridge.Cmd's.</summary>
/// <param name="Ca">PEM file with the certificate the node serves, or the CA that signed it: speaks HTTPS when set.</param>
internal sealed record GlobalOptions(string Node, string? TokenFile, bool Json, string? Ca = null)
{
    public const string DefaultNode = "127.0.0.1:8558";

    public static GlobalOptions Defaults(CmdEnvironment env)
    {
        var node = env.GetEnv("CONTINUITY_NODE");
        var ca = env.GetEnv("CONTINUITY_CA");
        return new GlobalOptions(string.IsNullOrWhiteSpace(node) ? DefaultNode : node.Trim(), null, false,
            string.IsNullOrWhiteSpace(ca) ? null : ca.Trim());
    }

    /// <summary>Strips global options out of <paramref name="args"/>, returning what is left for the command.</summary>
    public static (GlobalOptions Options, List<string> Words) Parse(IReadOnlyList<string> args, GlobalOptions defaults)
    {
        var options = defaults;
        var rest = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (TryValue(args, ref i, "--node", out var node))
                options = options with { Node = node };
            else if (TryValue(args, ref i, "--token-file", out var file))
                options = options with { TokenFile = file };
            else if (TryValue(args, ref i, "--ca", out var ca))
                options = options with { Ca = ca };
            else if (arg == "--json")
                options = options with { Json = true };
            else if (arg is "-h" or "--help")
                rest.Insert(0, "help");
            else
                rest.Add(arg);
        }
        ValidateNode(options.Node);
        return (options, rest);
    }

    private static bool TryValue(IReadOnlyList<string> args, ref int i, string name, out string value)
    {
        value = "";
        var arg = args[i];
        if (arg.StartsWith(name + "=", StringComparison.Ordinal))
        {
            value = arg[(name.Length + 1)..];
        }
        else if (arg == name)
        {
            if (i + 1 >= args.Count) throw new UsageException($"{name} needs a value");
            value = args[++i];
        }
        else
        {
            return false;
        }
        if (value.Length == 0) throw new UsageException($"{name} needs a value");
        return true;
    }

    private static void ValidateNode(string node)
    {
        var colon = node.LastIndexOf(':');
        if (colon <= 0 || !ushort.TryParse(node[(colon + 1)..], out var port) || port == 0)
            throw new UsageException($"--node must be HOST:PORT, got '{node}'");
    }
}

internal static class LineTokenizer
{
    /// <summary>Splits an interactive line on whitespace, honouring single and double quotes.</summary>
    public static List<string> Split(string line)
    {
        var tokens = new List<string>();
        var current = new StringBuilder();
        var inToken = false;
        char? quote = null;
        foreach (var c in line)
        {
            if (quote is not null)
            {
                if (c == quote) quote = null;
                else current.Append(c);
            }
            else if (c is '"' or '\'')
            {
                quote = c;
                inToken = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inToken) tokens.Add(current.ToString());
                current.Clear();
                inToken = false;
            }
            else
            {
                current.Append(c);
                inToken = true;
            }
        }
        if (quote is not null) throw new UsageException("unterminated quote");
        if (inToken) tokens.Add(current.ToString());
        return tokens;
    }
}
