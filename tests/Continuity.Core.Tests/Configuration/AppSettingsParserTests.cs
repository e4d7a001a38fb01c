using System.Net;
using Continuity.Core.Apps;
using Continuity.Core.Configuration;
using Continuity.Core.Platform;
using Xunit;

namespace Continuity.Core.Tests.Configuration;

public class AppSettingsParserTests
{
    private static IReadOnlyList<AppSpec> Parse(string text) =>
        AppSettingsParser.Parse(ContinuityConfigLoader.LoadFromString(text, "node.hocon"));

    private static ConfigurationException Fails(string app) =>
        Assert.Throws<ConfigurationException>(() => Parse(
            "continuity.apps.kv {\n command = [\"/bin/sh\"]\n vip = \"10.0.0.5/24\"\n ports = [\"tcp/7000\"]\n" + app + "\n}\n"));

    [Fact]
    public void Applications_get_defaults_and_queue_numbers_in_name_order()
    {
        var apps = Parse("""
            continuity.app-defaults.queue-base = 200
            continuity.apps {
              web { command = ["sh", "-c", "true"], vip = "10.1.0.1/16", ports = ["tcp/80"], recovery = restore-only }
              kv {
                command = ["/bin/sh"]
                vip = "198.18.0.50/24"
                ports = ["tcp/7000", "udp/7001"]
                checkpoint-interval = 2s
                state-dirs = ["/var/lib/kv"]
              }
            }
            """);
        Assert.Equal(["kv", "web"], apps.Select(a => a.Name));
        var kv = apps[0];
        Assert.Equal(IPAddress.Parse("198.18.0.50"), kv.Vip);
        Assert.Equal(24, kv.VipPrefixLength);
        Assert.Equal([new PortSpec("tcp", 7000), new PortSpec("udp", 7001)], kv.Ports);
        Assert.Equal(TimeSpan.FromSeconds(2), kv.CheckpointInterval);
        Assert.Equal(["/var/lib/kv"], kv.StateDirs);
        Assert.Equal(RecoveryPolicy.Replay, kv.Recovery);
        Assert.Equal((ushort)200, kv.QueueNumber);
        var web = apps[1];
        Assert.Equal(TimeSpan.FromSeconds(5), web.CheckpointInterval);
        Assert.Empty(web.StateDirs);
        Assert.Equal(RecoveryPolicy.RestoreOnly, web.Recovery);
        Assert.Equal((ushort)201, web.QueueNumber);
    }

    [Fact]
    public void No_applications_is_an_empty_list() => Assert.Empty(Parse(""));

    [Fact]
    public void Port_list_that_does_not_parse_names_the_entry()
    {
        var e = Fails(" ports = [\"tcp/7000\", \"7001/udp\"]");
        Assert.Equal("node.hocon:5:2: 'continuity.apps.kv.ports' entry \"7001/udp\" is invalid: expected \"tcp/PORT\" or \"udp/PORT\" with PORT 1-65535, e.g. \"tcp/7000\"", e.Message);
    }

    [Theory]
    [InlineData("tcp/0")]
    [InlineData("tcp/65536")]
    [InlineData("sctp/80")]
    [InlineData("tcp/")]
    public void Port_out_of_range_or_unknown_protocol_is_refused(string port)
    {
        var e = Fails($" ports = [\"{port}\"]");
        Assert.Contains($"entry \"{port}\" is invalid", e.Message);
    }

    [Theory]
    [InlineData("10.0.0.5")]
    [InlineData("10.0.0/24")]
    [InlineData("10.0.0.256/24")]
    [InlineData("10.0.0.5/33")]
    [InlineData("fe80::1/64")]
    public void Vip_without_valid_address_and_prefix_is_refused(string vip)
    {
        var e = Fails($" vip = \"{vip}\"");
        Assert.Contains($"'continuity.apps.kv.vip' = \"{vip}\" is invalid: expected an IPv4 address with prefix length", e.Message);
    }

    [Fact]
    public void Checkpoint_interval_below_100ms_is_refused()
    {
        var e = Fails(" checkpoint-interval = 50ms");
        Assert.Contains("node.hocon:5:2: 'continuity.apps.kv.checkpoint-interval' = \"50ms\" is invalid: expected a duration of at least 100ms", e.Message);
    }

    [Fact]
    public void Bad_default_is_reported_where_the_default_was_set()
    {
        var e = Assert.Throws<ConfigurationException>(() => Parse(
            "continuity.app-defaults.recovery = restart\ncontinuity.apps.kv { command = [\"/bin/sh\"], vip = \"10.0.0.5/24\", ports = [] }\n"));
        Assert.Equal("node.hocon:1:1: 'continuity.app-defaults.recovery' = \"restart\" is invalid: expected replay or restore-only", e.Message);
    }

    [Fact]
    public void Relative_state_dir_is_refused() =>
        Assert.Contains("entry \"data\" is invalid: expected an absolute path", Fails(" state-dirs = [data]").Message);

    [Fact]
    public void Missing_absolute_program_is_reported()
    {
        var e = Fails(" command = [\"/opt/nowhere/kv-server\", \"--port\", \"7000\"]");
        Assert.Contains("'continuity.apps.kv.command' program \"/opt/nowhere/kv-server\" does not exist", e.Message);
    }

    [Fact]
    public void Program_that_is_not_executable_is_reported()
    {
        using var dir = new TempDir();
        var file = dir.Write("kv-server", "#!/bin/sh\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var e = Fails($" command = [\"{file}\"]");
        Assert.Contains("is not executable", e.Message);
    }

    [Fact]
    public void Bare_program_name_is_looked_up_in_path()
    {
        var config = ContinuityConfigLoader.LoadFromString(
            "continuity.apps.kv { command = [kv-server], vip = \"10.0.0.5/24\", ports = [] }\n", "node.hocon");
        var found = AppSettingsParser.Parse(config, fileExists: p => p == "/opt/kv/bin/kv-server", isExecutable: _ => true, searchPath: "/usr/bin:/opt/kv/bin");
        Assert.Single(found);
        var e = Assert.Throws<ConfigurationException>(() => AppSettingsParser.Parse(config, fileExists: _ => false, searchPath: "/usr/bin"));
        Assert.Contains("program \"kv-server\" was not found in PATH (/usr/bin)", e.Message);
    }

    [Fact]
    public void Empty_command_is_refused() =>
        Assert.Contains("non-empty array", Fails(" command = []").Message);

    [Fact]
    public void Command_that_is_not_an_array_is_refused() =>
        Assert.Contains("'continuity.apps.kv.command' = \"/bin/sh\" is invalid: expected a non-empty array", Fails(" command = /bin/sh").Message);

    [Fact]
    public void Application_name_with_capitals_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => Parse("continuity.apps.KV { command = [\"/bin/sh\"] }\n"));
        Assert.Contains("'continuity.apps.KV' is not a valid application name", e.Message);
    }
}
