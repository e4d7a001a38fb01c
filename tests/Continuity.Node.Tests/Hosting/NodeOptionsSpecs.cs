using Akka.Configuration;
using Continuity.Node.Hosting;
using Xunit;

namespace Continuity.Node.Tests.Hosting;

public sealed class NodeOptionsSpecs
{
    [Fact]
    public void A_config_file_is_required_and_the_error_says_how_to_give_one()
    {
        Assert.Null(NodeOptions.Parse([], out var error));
        Assert.Contains("--config FILE.hocon", error);
    }

    [Fact]
    public void An_unknown_argument_is_named()
    {
        Assert.Null(NodeOptions.Parse(["--config", "a.hocon", "--frobnicate"], out var error));
        Assert.Equal("unknown argument '--frobnicate'", error);
    }

    [Fact]
    public void Config_and_check_are_read()
    {
        var options = NodeOptions.Parse(["--config", "a.hocon", "--check"], out _);
        Assert.Equal(new NodeOptions("a.hocon", true), options);
    }

    [Fact]
    public void A_missing_include_names_the_file()
    {
        var dir = Directory.CreateTempSubdirectory("ct-node-cfg-").FullName;
        var file = Path.Combine(dir, "node.hocon");
        File.WriteAllText(file, "include \"nope.hocon\"\ncontinuity.node.name = \"x\"\n");
        var e = Assert.ThrowsAny<Exception>(() => HostSettings.Load(file));
        Assert.Contains("nope.hocon", e.ToString());
    }

    [Fact]
    public void The_management_bind_must_be_host_and_port()
    {
        var dir = Directory.CreateTempSubdirectory("ct-node-cfg-").FullName;
        var file = Path.Combine(dir, "node.hocon");
        File.WriteAllText(file, "continuity.management.bind = \"localhost\"\n");
        var e = Assert.Throws<Continuity.Core.Configuration.ConfigurationException>(() => HostSettings.Load(file));
        Assert.Contains("continuity.management.bind", e.Message);
        Assert.Contains("node.hocon:1:", e.Message);
    }
}
