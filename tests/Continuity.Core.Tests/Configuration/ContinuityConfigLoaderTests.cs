using Continuity.Core.Configuration;
using Xunit;

namespace Continuity.Core.Tests.Configuration;

public class ContinuityConfigLoaderTests
{
    internal const string LabConfig = """
        continuity {
          node {
            name = n1
            state-dir = "/tmp/continuity-lab/n1"
          }
          apps.kv {
            command = ["/bin/sh", "-c", "exec sleep 1000"]
            vip = "198.18.0.50/24"
            ports = ["tcp/7000", "udp/7001"]
          }
        }
        akka.remote.dot-netty.tcp.port = 4054
        """;

    [Fact]
    public void A_substitution_cycle_is_refused_naming_the_keys_instead_of_overflowing_the_stack()
    {
        var e = Assert.Throws<ConfigurationException>(() => ContinuityConfigLoader.LoadFromString("a = ${b}\nb = ${c}\nc = ${a}\n", "node.hocon"));
        Assert.Contains("cycle", e.Message);
        Assert.Contains("a -> b -> c -> a", e.Message);
        Assert.StartsWith("node.hocon:1:", e.Message);

        var self = Assert.Throws<ConfigurationException>(() => ContinuityConfigLoader.LoadFromString("continuity.node.name = ${continuity.node.name}\n", "node.hocon"));
        Assert.Equal("continuity.node.name", self.Key);
        Assert.Throws<ConfigurationException>(() => ContinuityConfigLoader.LoadFromString("a { x = ${a} }\n", "node.hocon"));

        // Substitutions without a loop still work.
        var fine = ContinuityConfigLoader.LoadFromString("a = 5s\nb = ${a}\nc { d = ${b} }\n", "node.hocon");
        Assert.Equal("5s", fine.Config.GetString("c.d"));
    }

    [Theory]
    [InlineData("[1, [2]]", "= [\"1\", [\"2\"]] is an array where a string is expected")]
    [InlineData("[]", "is an array where a string is expected")]
    [InlineData("{ a = 1 }", "is an object where a string is expected")]
    [InlineData("{}", "is an object where a string is expected")]
    public void A_string_key_given_an_array_or_object_is_refused_naming_the_key_what_was_found_and_what_is_expected(string value, string problem)
    {
        var c = ContinuityConfigLoader.LoadFromString($"# node\ncontinuity.node.state-dir = {value}\n", "node.hocon");

        var e = Assert.Throws<ConfigurationException>(() => ConfigValues.String(c, "continuity.node.state-dir"));

        Assert.Equal("continuity.node.state-dir", e.Key);
        Assert.Equal($"node.hocon:2:1: 'continuity.node.state-dir' {problem}: write one value, in double quotes if it contains spaces or special characters",
            e.Message);
        // Optional keys too: an array is not "unset".
        Assert.Throws<ConfigurationException>(() => ConfigValues.String(c, "continuity.node.state-dir", required: false));
    }

    [Fact]
    public void A_switch_or_duration_given_an_array_is_refused_saying_what_it_expects()
    {
        var c = ContinuityConfigLoader.LoadFromString("continuity.management.enabled = [on]\ncontinuity.node.join-timeout = { s = 60 }\n", "node.hocon");

        var onOff = Assert.Throws<ConfigurationException>(() => ConfigValues.Bool(c, "continuity.management.enabled"));
        var duration = Assert.Throws<ConfigurationException>(() => ConfigValues.Duration(c, "continuity.node.join-timeout", TimeSpan.Zero, "60s"));

        Assert.Contains("'continuity.management.enabled' = [\"on\"] is an array where on or off is expected", onOff.Message);
        Assert.Contains("'continuity.node.join-timeout' is an object where a duration such as 60s is expected", duration.Message);
    }

    [Fact]
    public void A_password_key_given_an_array_is_refused_without_showing_the_value()
    {
        var c = ContinuityConfigLoader.LoadFromString("continuity.persistence.postgresql.connection-string = [\"Password=hunter2\"]\n", "node.hocon");

        var e = Assert.Throws<ConfigurationException>(() => ConfigValues.String(c, "continuity.persistence.postgresql.connection-string"));

        Assert.Contains("is an array where a string is expected", e.Message);
        Assert.DoesNotContain("hunter2", e.Message);
    }

    [Fact]
    public void A_null_value_on_a_required_key_is_refused_naming_the_key()
    {
        var c = ContinuityConfigLoader.LoadFromString("continuity.node.join-timeout = null\n", "node.hocon");
        var e = Assert.Throws<ConfigurationException>(() => ConfigValues.Duration(c, "continuity.node.join-timeout", TimeSpan.Zero, "60s"));
        Assert.Equal("continuity.node.join-timeout", e.Key);
        Assert.Contains("= null is invalid", e.Message);
    }

    [Fact]
    public void Valid_lab_config_loads_with_defaults_from_reference()
    {
        var c = ContinuityConfigLoader.LoadFromString(LabConfig, "lab.hocon");
        Assert.Empty(c.Warnings);
        Assert.Equal("n1", c.Config.GetString("continuity.node.name"));
        Assert.Equal("text", c.Config.GetString("continuity.node.log-format"));
        Assert.Equal(100, c.Config.GetInt("continuity.app-defaults.queue-base"));
        Assert.Equal(4054, c.Config.GetInt("akka.remote.dot-netty.tcp.port"));
        Assert.Equal("cluster", c.Config.GetString("akka.actor.provider"));
        Assert.Equal(new ConfigPosition("lab.hocon", 3, 5), c.Positions["continuity.node.name"]);
        Assert.Equal(ContinuityConfigLoader.ReferenceResourceName, c.Positions["continuity.node.log-format"].File);
    }

    [Fact]
    public void Repository_lab_file_loads_without_warnings()
    {
        var lab = FindRepoFile("hocon/lab.hocon");
        var c = ContinuityConfigLoader.Load(lab);
        Assert.Empty(c.Warnings);
        Assert.Equal("replay", c.Config.GetString("continuity.app-defaults.recovery"));
    }

    [Fact]
    public void Unknown_key_is_warned_with_a_suggestion()
    {
        var c = ContinuityConfigLoader.LoadFromString("continuity {\n  node {\n    stat-dir = /x\n  }\n}\n", "node.hocon");
        var w = Assert.Single(c.Warnings);
        Assert.Equal("continuity.node.stat-dir", w.Key);
        Assert.Equal("node.hocon:3:5: unknown key 'continuity.node.stat-dir' is ignored; did you mean 'continuity.node.state-dir'?", w.ToString());
    }

    [Fact]
    public void Unknown_key_inside_an_application_block_is_checked_against_the_application_keys()
    {
        var c = ContinuityConfigLoader.LoadFromString("continuity.apps.kv { comand = [\"x\"], placement = any }\n", "node.hocon");
        var w = Assert.Single(c.Warnings);
        Assert.Contains("did you mean 'continuity.apps.kv.command'?", w.Message);
    }

    [Fact]
    public void Unknown_section_is_warned_once_not_for_each_child()
    {
        var c = ContinuityConfigLoader.LoadFromString("continuity.managment { enabled = off, bind = \"x:1\" }\n", "node.hocon");
        var w = Assert.Single(c.Warnings);
        Assert.Contains("did you mean 'continuity.management'?", w.Message);
    }

    [Fact]
    public void Keys_outside_continuity_are_not_warned()
    {
        var c = ContinuityConfigLoader.LoadFromString("akka.loglevel = DEBUG\nmy-own.thing = 1\n", "node.hocon");
        Assert.Empty(c.Warnings);
    }

    [Fact]
    public void Missing_file_is_a_clear_error()
    {
        var e = Assert.Throws<ConfigurationException>(() => ContinuityConfigLoader.Load("/nonexistent/node.hocon"));
        Assert.Contains("configuration file '/nonexistent/node.hocon' not found", e.Message);
    }

    [Fact]
    public void Include_of_a_missing_file_names_it_when_loading()
    {
        using var dir = new TempDir();
        var main = dir.Write("node.hocon", "include \"shared/base.hocon\"\n");
        var e = Assert.Throws<ConfigurationException>(() => ContinuityConfigLoader.Load(main));
        Assert.Contains("included file \"shared/base.hocon\" not found", e.Message);
    }

    [Fact]
    public void Included_settings_are_overridden_by_later_settings()
    {
        using var dir = new TempDir();
        dir.Write("base.hocon", "continuity.node { name = base\n log-format = json }\n");
        var main = dir.Write("node.hocon", "include \"base.hocon\"\ncontinuity.node.name = n2\n");
        var c = ContinuityConfigLoader.Load(main);
        Assert.Equal("n2", c.Config.GetString("continuity.node.name"));
        Assert.Equal("json", c.Config.GetString("continuity.node.log-format"));
        Assert.Equal(Path.Combine(dir.Path, "base.hocon"), c.Positions["continuity.node.log-format"].File);
    }

    [Fact]
    public void Substitution_of_a_key_set_nowhere_is_reported_with_its_position()
    {
        var e = Assert.Throws<ConfigurationException>(() =>
            ContinuityConfigLoader.LoadFromString("a = 1\ncontinuity.node.name = ${node-name}\n", "node.hocon"));
        Assert.StartsWith("node.hocon:2:24: substitution ${node-name} in the value of 'continuity.node.name'", e.Message);
    }

    [Fact]
    public void Substitution_may_refer_to_the_reference()
    {
        var c = ContinuityConfigLoader.LoadFromString("continuity.app-defaults.state-dirs = [${continuity.node.state-dir}]\n", "node.hocon");
        Assert.Equal(["/var/lib/continuity"], c.Config.GetStringList("continuity.app-defaults.state-dirs"));
    }

    [Fact]
    public void Optional_substitution_that_names_no_key_is_warned()
    {
        var c = ContinuityConfigLoader.LoadFromString("x = 1\ncontinuity.node.name = ${?NODE_NAME}\n", "node.hocon");
        var w = Assert.Single(c.Warnings);
        Assert.StartsWith("node.hocon:2:24: ${?NODE_NAME} in the value of 'continuity.node.name' names no key", w.ToString());
    }

    [Fact]
    public void Append_which_Akka_would_silently_drop_is_refused_with_its_position()
    {
        var e = Assert.Throws<ConfigurationException>(() =>
            ContinuityConfigLoader.LoadFromString("\nakka.cluster.roles += data\n", "node.hocon"));
        Assert.StartsWith("node.hocon:2:20: '+=' on key 'akka.cluster.roles' is not applied", e.Message);
    }

    internal static string FindRepoFile(string relative)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, relative);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException(relative);
    }
}
