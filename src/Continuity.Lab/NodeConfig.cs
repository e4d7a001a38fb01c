using System.Text;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Continuity.Lab;

/// <summary>The per-node HOCON file, and what the lab needs to read from the user's config.</summary>
internal static class NodeConfig
{
    public const string LabHoconHeader = """
        # Base settings for every node of the one-machine lab (continuity-lab).
        # The lab includes this file first, then the user's --config file, then its own
        # per-node settings (name, addresses, seeds, state-dir), which always win.

        """;

    /// <summary>
    /// The node's file: the includes (lab base first, then the user's config) and then the lab's
    /// own settings, last so that they win over anything included.
    /// </summary>
    public static string Generate(LabHost node, IReadOnlyList<LabHost> seeds, IReadOnlyList<string> includes, string stateDir)
    {
        var sb = new StringBuilder();
        sb.Append("# Written by continuity-lab for node ").Append(node.Name).Append(". Regenerated on every 'up'.\n");
        foreach (var include in includes)
            sb.Append("include ").Append(Quote(Path.GetFullPath(include))).Append('\n');
        sb.Append('\n');
        sb.Append("continuity.node.name = ").Append(Quote(node.Name)).Append('\n');
        sb.Append("continuity.node.state-dir = ").Append(Quote(Path.Combine(stateDir, node.Name, "state"))).Append('\n');
        sb.Append("continuity.management.bind = ").Append(Quote($"{node.Address}:{Topology.ManagementPort}")).Append('\n');
        sb.Append("continuity.management.token-file = ").Append(Quote(Path.Combine(stateDir, "token"))).Append('\n');
        sb.Append("continuity.cluster-tls.certificate = ").Append(Quote(ClusterCertificatePath(stateDir))).Append('\n');
        sb.Append("akka.remote.dot-netty.tcp.hostname = ").Append(Quote(node.Address)).Append('\n');
        sb.Append("akka.remote.dot-netty.tcp.port = ").Append(node.ClusterPort).Append('\n');
        sb.Append("akka.cluster.seed-nodes = [").Append(string.Join(", ", seeds.Select(s => Quote(Topology.AkkaAddress(s))))).Append("]\n");
        sb.Append("akka.cluster.roles = [").Append(Quote(node.Role)).Append("]\n");
        return sb.ToString();
    }

    /// <summary>The lab's cluster certificate, shared by its nodes (the lab writes a new one on every 'up').</summary>
    public static string ClusterCertificatePath(string stateDir) => Path.Combine(stateDir, "cluster.pfx");

    public static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\t': sb.Append("\\t"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"').ToString();
    }

    /// <summary>
    /// Every distinct path in continuity.apps.*.state-dirs (falling back to
    /// continuity.app-defaults.state-dirs), as the node will see it after the includes.
    /// Reading the real config, rather than guessing, is what lets each node get its own copy.
    /// </summary>
    public static IReadOnlyList<string> StateDirs(IReadOnlyList<string> files)
    {
        var config = Load(files);
        if (config.IsEmpty || !config.HasPath("continuity.apps")) return [];

        var defaults = config.HasPath("continuity.app-defaults.state-dirs")
            ? config.GetStringList("continuity.app-defaults.state-dirs")
            : [];
        var apps = config.GetValue("continuity.apps");
        if (apps is null || !apps.IsObject()) return [];

        var dirs = new List<string>();
        foreach (var (app, _) in apps.GetObject().Items)
        {
            var key = $"continuity.apps.{app}.state-dirs";
            IList<string> list;
            try
            {
                list = config.HasPath(key) ? config.GetStringList(key) : defaults;
            }
            catch (Exception e) when (e is ConfigurationException or InvalidCastException or FormatException)
            {
                throw new LabException($"{key} must be a list of absolute paths, as in state-dirs = [\"/var/lib/kv\"] ({e.Message})");
            }
            foreach (var dir in list)
            {
                if (!Path.IsPathRooted(dir))
                    throw new LabException($"{key} contains '{dir}': state directories must be absolute paths");
                var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
                if (full == "/")
                    throw new LabException($"{key} contains '/': the lab cannot give each node a private copy of the root directory");
                if (!dirs.Contains(full)) dirs.Add(full);
            }
        }
        return dirs;
    }

    /// <summary>Parses files in order, later ones winning, following include "..." relative to each file.</summary>
    public static Config Load(IReadOnlyList<string> files)
    {
        var result = Config.Empty;
        foreach (var file in files)
            result = ParseFile(Path.GetFullPath(file), depth: 0).WithFallback(result);
        return result;
    }

    private static Config ParseFile(string path, int depth)
    {
        if (depth > 16) throw new LabException($"{path}: includes nested more than 16 deep (an include loop?)");
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LabException($"cannot read config file {path}: {e.Message}");
        }
        try
        {
            return ConfigurationFactory.ParseString(text, include => IncludeRoot(path, include, depth));
        }
        catch (LabException) { throw; }
        catch (Exception e)
        {
            throw new LabException($"config file {path} is not valid HOCON: {e.Message}");
        }
    }

    private static HoconRoot IncludeRoot(string includingFile, string include, int depth)
    {
        var name = include.Trim().Trim('"');
        // HOCON allows include file("x"); treat it like a plain path.
        if (name.StartsWith("file(", StringComparison.Ordinal) && name.EndsWith(')'))
            name = name[5..^1].Trim().Trim('"');
        var path = Path.IsPathRooted(name) ? name : Path.Combine(Path.GetDirectoryName(includingFile)!, name);
        if (!File.Exists(path))
            throw new LabException($"{includingFile} includes '{name}', but {path} does not exist");
        return ParseFile(path, depth + 1).Root is { } root
            ? new HoconRoot(root)
            : new HoconRoot(new HoconValue());
    }
}
