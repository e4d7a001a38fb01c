using Akka.Configuration;

namespace Continuity.Node.Hosting;

/// <summary>Loads a node's HOCON with the project's reference configuration as fallback.</summary>
public static class NodeConfiguration
{
    public static NodeSettings Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"configuration file {path} not found (examples: hocon/seed.hocon, hocon/member.hocon)");
        var text = File.ReadAllText(path);
        var config = ConfigurationFactory.ParseString(text).WithFallback(Reference());
        return NodeSettings.From(path, config);
    }

    public static Config Reference()
    {
        using var stream = typeof(Continuity.Core.Apps.AppSpec).Assembly.GetManifestResourceStream("continuity.reference.conf")
            ?? throw new InvalidOperationException("continuity.reference.conf is missing from Continuity.Core: the build is broken");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }
}
