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
        Assert.Equal("node.hocon:5:2: 'continuity.apps.kv.ports' entry \"7001/udp\" is invalid: protocol and port are swapped: expected \"tcp/PORT\" or \"udp/PORT\" with PORT 1-65535, e.g. \"tcp/7000\" (write \"udp/7001\")", e.Message);
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
            "continuity.app-defaults.recovery = restart\ncontinuity.apps.kv { command = [\"/bin/sh\"], vip = \"10.0.0.5/24\", ports = [\"tcp/1\"] }\n"));
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
            "continuity.apps.kv { command = [kv-server], vip = \"10.0.0.5/24\", ports = [\"tcp/1\"] }\n", "node.hocon");
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

    // ---- bad input: every message names the app's key, the bad value and what is expected ----

    [Theory]
    [InlineData("tcp/70000", "port 70000 is out of range")]
    [InlineData("sctp/1", "protocol \"sctp\" is not supported (only tcp and udp are logged)")]
    [InlineData("7000", "the protocol is missing")]
    [InlineData("TCP/7000", "protocol \"TCP\" must be lower case")]
    [InlineData("tcp/http", "expected \"tcp/PORT\" or \"udp/PORT\"")]
    public void A_port_entry_that_does_not_parse_says_what_is_wrong_with_it(string entry, string problem)
    {
        var e = Fails($" ports = [\"tcp/7000\", \"{entry}\"]");
        Assert.StartsWith($"node.hocon:5:2: 'continuity.apps.kv.ports' entry \"{entry}\" is invalid: ", e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Contains("expected \"tcp/PORT\" or \"udp/PORT\" with PORT 1-65535", e.Message);
    }

    [Fact]
    public void An_empty_port_list_is_refused_because_unlisted_traffic_is_not_logged()
    {
        var e = Fails(" ports = []");
        Assert.Contains("'continuity.apps.kv.ports' = [] is invalid: expected at least one \"tcp/PORT\" or \"udp/PORT\"", e.Message);
        Assert.Contains("survive a failover", e.Message);
    }

    [Theory]
    [InlineData("10.0.0.5/0")]
    [InlineData("10.0.0.5/-1")]
    [InlineData("10.0.0.5")]
    [InlineData("10.0.0.5/24/8")]
    [InlineData("10.0.0.5 /24")]
    [InlineData("vip.example.com/24")]
    public void A_vip_that_is_not_ipv4_cidr_is_refused_with_an_example(string vip)
    {
        var e = Fails($" vip = \"{vip}\"");
        Assert.Contains($"'continuity.apps.kv.vip' = \"{vip}\" is invalid: expected an IPv4 address with prefix length \"A.B.C.D/N\" (N 1-30), e.g. \"198.18.0.50/24\"", e.Message);
    }

    [Theory]
    [InlineData("10.0.0.5/32")]
    [InlineData("10.0.0.5/31")]
    public void A_vip_prefix_with_no_room_for_the_nodes_is_refused(string vip)
    {
        var e = Fails($" vip = \"{vip}\"");
        Assert.Contains($"'continuity.apps.kv.vip' = \"{vip}\" is invalid: a /{vip[^2..]} holds no other address", e.Message);
        Assert.Contains("\"10.0.0.5/24\"", e.Message);
    }

    [Theory]
    [InlineData("10.0.0.0/24", "network address of 10.0.0.0/24")]
    [InlineData("10.0.0.255/24", "broadcast address of 10.0.0.0/24")]
    [InlineData("127.0.0.5/8", "is a loopback address")]
    [InlineData("224.0.0.5/24", "is a multicast address")]
    [InlineData("0.0.0.5/24", "\"this network\" address")]
    [InlineData("250.0.0.5/24", "is a reserved address")]
    public void A_vip_that_cannot_be_a_host_address_is_refused(string vip, string problem)
    {
        var e = Fails($" vip = \"{vip}\"");
        Assert.Contains($"'continuity.apps.kv.vip' = \"{vip}\" is invalid: ", e.Message);
        Assert.Contains(problem, e.Message);
    }

    private static IReadOnlyList<AppSpec> ParseOnNode(string node, string vip,
        Func<IPAddress, (string Interface, int PrefixLength)?>? localSubnet = null, string hostKey = "hostname") =>
        AppSettingsParser.Parse(ContinuityConfigLoader.LoadFromString(
            $"akka.remote.dot-netty.tcp.{hostKey} = \"{node}\"\n" +
            $"continuity.apps.kv {{ command = [\"/bin/sh\"], vip = \"{vip}\", ports = [\"tcp/7000\"] }}\n", "node.hocon"),
            localSubnet: localSubnet ?? (_ => null));

    [Fact]
    public void A_vip_outside_the_subnet_of_the_nodes_address_names_both()
    {
        var e = Assert.Throws<ConfigurationException>(() => ParseOnNode("198.18.0.11", "198.18.1.50/24"));
        Assert.Equal("node.hocon:2:45: 'continuity.apps.kv.vip' = \"198.18.1.50/24\" is outside the subnet of this node's address 198.18.0.11 " +
            "('akka.remote.dot-netty.tcp.hostname' at node.hocon:1:1): 198.18.0.11 is not in 198.18.1.0/24; " +
            "expected a free address in the nodes' subnet with its prefix length (or fix 'akka.remote.dot-netty.tcp.hostname')", e.Message);
    }

    [Fact]
    public void A_vip_inside_the_subnet_of_the_nodes_address_is_accepted() =>
        Assert.Single(ParseOnNode("198.18.0.11", "198.18.0.50/24"));

    [Fact]
    public void The_public_hostname_is_the_nodes_address_when_it_is_set()
    {
        var e = Assert.Throws<ConfigurationException>(() => ParseOnNode("10.9.9.9", "198.18.0.50/24", hostKey: "public-hostname"));
        Assert.Contains("this node's address 10.9.9.9 ('akka.remote.dot-netty.tcp.public-hostname'", e.Message);
    }

    [Fact]
    public void A_vip_equal_to_the_nodes_own_address_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => ParseOnNode("198.18.0.11", "198.18.0.11/24"));
        Assert.Contains("'continuity.apps.kv.vip' = \"198.18.0.11/24\" is invalid: it is this node's address 198.18.0.11", e.Message);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("node-1.example.com")]
    public void Without_a_routable_node_address_the_subnet_is_not_checked(string host) =>
        Assert.Single(ParseOnNode(host, "198.18.0.50/24"));

    [Fact]
    public void The_subnet_of_the_interface_carrying_the_nodes_address_must_hold_the_vip()
    {
        // The VIP's /16 holds the node, but the node's interface says its subnet is a /24 that does not hold the VIP.
        var e = Assert.Throws<ConfigurationException>(() =>
            ParseOnNode("10.1.0.5", "10.1.2.50/16", a => a.Equals(IPAddress.Parse("10.1.0.5")) ? ("eth0", 24) : null));
        Assert.Contains("is outside the subnet of this node's address 10.1.0.5", e.Message);
        Assert.Contains("eth0 carries 10.1.0.5/24, which does not contain 10.1.2.50; expected a free address in 10.1.0.0/24", e.Message);
        Assert.Single(ParseOnNode("10.1.0.5", "10.1.0.50/24", _ => ("eth0", 24)));
    }

    [Fact]
    public void Two_applications_with_one_vip_are_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => Parse("""
            continuity.apps.a { command = ["/bin/sh"], vip = "10.0.0.5/24", ports = ["tcp/1"] }
            continuity.apps.b { command = ["/bin/sh"], vip = "10.0.0.5/24", ports = ["tcp/2"] }
            """));
        Assert.Contains("'continuity.apps.b.vip' = \"10.0.0.5/24\" is already the VIP of application a", e.Message);
    }

    [Fact]
    public void An_empty_program_name_is_refused_showing_the_command()
    {
        var e = Fails(" command = [\"\", \"--port\", \"7000\"]");
        Assert.Contains("'continuity.apps.kv.command' = [\"\", \"--port\", \"7000\"] is invalid: expected a non-empty array of strings whose first element is the program", e.Message);
    }

    [Fact]
    public void A_directory_as_the_program_is_refused()
    {
        using var dir = new TempDir();
        var e = Fails($" command = [\"{dir.Path}\"]");
        Assert.Contains($"'continuity.apps.kv.command' program \"{dir.Path}\" is a directory: expected the program file itself", e.Message);
    }

    [Fact]
    public void A_relative_program_path_is_refused()
    {
        var e = Fails(" command = [\"bin/kv-server\"]");
        Assert.Contains("'continuity.apps.kv.command' program \"bin/kv-server\" is a relative path: expected an absolute path or a bare name found in PATH", e.Message);
    }

    [Fact]
    public void Restart_limits_default_to_three_restarts_from_one_second_within_ten_minutes()
    {
        var kv = Parse("continuity.apps.kv { command = [\"/bin/sh\"], vip = \"10.0.0.5/24\", ports = [\"tcp/1\"] }\n")[0];
        Assert.Equal(new RestartPolicy(3, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10)), kv.Restarts);
        Assert.Equal(RestartPolicy.Default, kv.Restarts);
        Assert.Equal([1, 2, 4, 8, 16, 32, 60, 60], Enumerable.Range(1, 8).Select(n => kv.Restarts.DelayBefore(n).TotalSeconds));
    }

    [Fact]
    public void Restart_limits_can_be_set_per_application()
    {
        var kv = Parse("continuity.app-defaults.max-restarts = 5\n" +
            "continuity.apps.kv { command = [\"/bin/sh\"], vip = \"10.0.0.5/24\", ports = [\"tcp/1\"], max-restarts = 0, restart-backoff = 3s, restart-window = 1h }\n")[0];
        Assert.Equal(new RestartPolicy(0, TimeSpan.FromSeconds(3), TimeSpan.FromHours(1)), kv.Restarts);
    }

    [Theory]
    [InlineData(" max-restarts = -1", "'continuity.apps.kv.max-restarts' = \"-1\" is invalid: expected a whole number 0-100")]
    [InlineData(" max-restarts = lots", "'continuity.apps.kv.max-restarts' = \"lots\" is invalid: expected a whole number 0-100")]
    [InlineData(" restart-backoff = 10ms", "'continuity.apps.kv.restart-backoff' = \"10ms\" is invalid: expected a duration of at least 100ms")]
    [InlineData(" restart-backoff = 5m\n restart-window = 1m", "'continuity.apps.kv.restart-window' = \"1m\" is invalid: expected a duration at least as long as restart-backoff (300s)")]
    public void Bad_restart_limits_are_refused(string setting, string message) =>
        Assert.Contains(message, Fails(setting).Message);

    [Fact]
    public void Placement_rebalances_every_thirty_seconds_by_default_and_takes_each_applications_preference()
    {
        var loaded = ContinuityConfigLoader.LoadFromString("""
            continuity.apps {
              a { command = ["/bin/sh"], vip = "10.0.0.5/24", ports = ["tcp/1"], prefer = ["n2", "n1"] }
              b { command = ["/bin/sh"], vip = "10.0.0.6/24", ports = ["tcp/1"] }
            }
            """, "node.hocon");
        var placement = AppSettingsParser.ParsePlacement(loaded, AppSettingsParser.Parse(loaded));
        Assert.True(placement.Rebalance);
        Assert.Equal(TimeSpan.FromSeconds(30), placement.Interval);
        Assert.Equal(["n2", "n1"], placement.PreferOf("a"));
        Assert.Empty(placement.PreferOf("b"));
    }

    [Theory]
    [InlineData(" prefer = [\"n1\", \"n1\"]", "'continuity.apps.kv.prefer' lists a node twice: remove the duplicate")]
    [InlineData(" prefer = [\"n 1\"]", "'continuity.apps.kv.prefer' entry \"n 1\" is invalid: expected a node name")]
    [InlineData(" prefer = n1", "'continuity.apps.kv.prefer' = \"n1\" is invalid: expected an array of node names")]
    public void Bad_preferences_are_refused(string setting, string message) =>
        Assert.Contains(message, Fails(setting).Message);

    [Theory]
    [InlineData("continuity.placement.rebalance = sometimes", "'continuity.placement.rebalance' = \"sometimes\" is invalid: expected on or off")]
    [InlineData("continuity.placement.rebalance-interval = 10ms", "'continuity.placement.rebalance-interval' = \"10ms\" is invalid: expected a duration of at least 1s")]
    public void Bad_placement_settings_are_refused(string setting, string message)
    {
        var loaded = ContinuityConfigLoader.LoadFromString(setting + "\n", "node.hocon");
        var e = Assert.Throws<ConfigurationException>(() => AppSettingsParser.ParsePlacement(loaded, []));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void The_disk_rule_switches_below_five_percent_free_by_default()
    {
        var rule = AppSettingsParser.ParseResourceRules(ContinuityConfigLoader.LoadFromString("continuity.supervision.check-interval = 2s\n", "node.hocon"));
        Assert.Equal(new Continuity.Core.Supervision.ResourceRules(5, Continuity.Core.Supervision.DiskFullAction.Switch, TimeSpan.FromSeconds(2),
            TimeSpan.FromSeconds(10), 0, Continuity.Core.Supervision.StandbyLagAction.Drop), rule);
    }

    [Fact]
    public void A_standby_that_lags_is_dropped_after_ten_seconds_by_default_and_the_bounds_can_be_set()
    {
        var rule = AppSettingsParser.ParseResourceRules(ContinuityConfigLoader.LoadFromString(
            "continuity.supervision { max-standby-lag = 3s, max-standby-lag-packets = 5000, on-standby-lag = alarm }\n", "node.hocon"));
        Assert.Equal(TimeSpan.FromSeconds(3), rule.StandbyLagBound);
        Assert.Equal(5000, rule.MaxStandbyLagPackets);
        Assert.Equal(Continuity.Core.Supervision.StandbyLagAction.Alarm, rule.OnStandbyLag);

        var off = AppSettingsParser.ParseResourceRules(ContinuityConfigLoader.LoadFromString("continuity.supervision.max-standby-lag = 0\n", "node.hocon"));
        Assert.False(off.WatchesStandbyLag);
    }

    [Theory]
    [InlineData("continuity.supervision.min-free-disk-percent = 80", "'continuity.supervision.min-free-disk-percent' = \"80\" is invalid: expected a number 0-50 (0 = off)")]
    [InlineData("continuity.supervision.on-disk-full = panic", "'continuity.supervision.on-disk-full' = \"panic\" is invalid: expected switch or alarm")]
    [InlineData("continuity.supervision.max-standby-lag = 200ms", "'continuity.supervision.max-standby-lag' = \"200ms\" is invalid: expected 0 (off) or a duration of at least 1s")]
    [InlineData("continuity.supervision.max-standby-lag = soon", "'continuity.supervision.max-standby-lag' = \"soon\" is invalid: expected a duration such as 10s")]
    [InlineData("continuity.supervision.max-standby-lag-packets = -5", "'continuity.supervision.max-standby-lag-packets' = \"-5\" is invalid: expected a whole number of packets (0 = off)")]
    [InlineData("continuity.supervision.on-standby-lag = wait", "'continuity.supervision.on-standby-lag' = \"wait\" is invalid: expected drop or alarm")]
    public void Bad_supervision_settings_are_refused(string setting, string message)
    {
        var loaded = ContinuityConfigLoader.LoadFromString(setting + "\n", "node.hocon");
        Assert.Contains(message, Assert.Throws<ConfigurationException>(() => AppSettingsParser.ParseResourceRules(loaded)).Message);
    }
}
