using Akka.Configuration;

namespace Continuity.Node.Hosting;

/// <summary>Loads a node's HOCON with the project's reference configuration as fallback.</summary>
public static class NodeConfiguration
{
    public static NodeSettings Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"configuration file {path} not found (examples: hocon/seed.hocon, hocon/member.hocon)");
        var config = Parse(path).WithFallback(Reference());
        return NodeSettings.From(path, config);
    }

    private static Config Parse(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return ConfigurationFactory.ParseString(File.ReadAllText(path), include =>
        {
            var file = Path.IsPathRooted(include) ? include : Path.Combine(dir, include);
            if (!File.Exists(file))
                throw new FileNotFoundException($"{path}: include \"{include}\" names a file that does not exist ({file})");
            return Parse(file).Root is { } root ? new Akka.Configuration.Hocon.HoconRoot(root) : throw new FormatException($"{file} is empty");
        });
    }

    public static Config Reference()
    {
        using var stream = typeof(Continuity.Core.Apps.AppSpec).Assembly.GetManifestResourceStream("continuity.reference.conf")
            ?? throw new InvalidOperationException("continuity.reference.conf is missing from Continuity.Core: the build is broken");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }
}
