using Xunit;

namespace Continuity.Lab.Tests;

public class CommandLineTests
{
    private static LabCommand Parse(params string[] args) => CommandLine.Parse(args);

    [Fact]
    public void Up_takes_the_node_count_config_witness_and_timeout()
    {
        var c = Assert.IsType<UpCommand>(Parse("up", "--nodes", "3", "--config", "kv.hocon", "--witness", "--timeout", "90"));
        Assert.Equal(3, c.Nodes);
        Assert.Equal("kv.hocon", c.ConfigFile);
        Assert.Equal(1, c.Witnesses);
        Assert.False(c.NoNodes);
        Assert.Equal(TimeSpan.FromSeconds(90), c.Timeout);
    }

    [Fact]
    public void Up_can_add_several_witnesses_so_that_the_member_count_is_odd()
    {
        var c = Assert.IsType<UpCommand>(Parse("up", "--nodes", "3", "--witnesses", "2"));
        Assert.Equal(2, c.Witnesses);
        Assert.Equal(0, Assert.IsType<UpCommand>(Parse("up", "--nodes", "3")).Witnesses);
        Assert.Equal(1, Assert.IsType<UpCommand>(Parse("up", "--nodes", "3", "--witness", "--witnesses=1")).Witnesses);
    }

    [Fact]
    public void Up_accepts_option_equals_value_and_duration_units()
    {
        var c = Assert.IsType<UpCommand>(Parse("up", "--nodes=2", "--timeout=2m", "--no-nodes"));
        Assert.Equal(2, c.Nodes);
        Assert.True(c.NoNodes);
        Assert.Equal(TimeSpan.FromMinutes(2), c.Timeout);
    }

    [Fact]
    public void Up_waits_sixty_seconds_by_default()
    {
        var c = Assert.IsType<UpCommand>(Parse("up", "--nodes", "1"));
        Assert.Equal(TimeSpan.FromSeconds(60), c.Timeout);
        Assert.Null(c.ConfigFile);
        Assert.Null(c.StateSize);
    }

    [Fact]
    public void Up_can_give_each_node_a_state_file_system_of_a_given_size()
    {
        var c = Assert.IsType<UpCommand>(Parse("up", "--nodes", "3", "--state-size", "256M"));
        Assert.Equal("256M", c.StateSize);
    }

    [Theory]
    [InlineData(new[] { "up" }, "--nodes N is required")]
    [InlineData(new[] { "up", "--nodes" }, "--nodes needs a value")]
    [InlineData(new[] { "up", "--nodes", "0" }, "from 1 to 88")]
    [InlineData(new[] { "up", "--nodes", "-3" }, "from 1 to 88")]
    [InlineData(new[] { "up", "--nodes", "three" }, "from 1 to 88")]
    [InlineData(new[] { "up", "--nodes", "89" }, "from 1 to 88")]
    [InlineData(new[] { "up", "--nodes", "3", "--timeout", "soon" }, "positive duration")]
    [InlineData(new[] { "up", "--nodes", "3", "--witness=yes" }, "--witness takes no value")]
    [InlineData(new[] { "up", "--nodes", "3", "--witnesses", "10" }, "--witnesses must be a whole number from 0 to 9")]
    [InlineData(new[] { "up", "--nodes", "3", "--witnesses", "two" }, "--witnesses must be a whole number from 0 to 9")]
    [InlineData(new[] { "up", "--nodes", "3", "--witness", "--witnesses", "2" }, "contradicts")]
    [InlineData(new[] { "up", "--nodes", "3", "--frobnicate" }, "unknown argument '--frobnicate'")]
    [InlineData(new[] { "up", "--nodes", "3", "--state-size", "lots" }, "--state-size must be a size like 256M")]
    [InlineData(new[] { "up", "--nodes", "3", "--state-size", "256M,uid=0" }, "--state-size must be a size like 256M")]
    [InlineData(new[] { "launch" }, "unknown command 'launch'")]
    [InlineData(new string[0], "no command given")]
    [InlineData(new[] { "--verbose", "up" }, "unknown option '--verbose'")]
    [InlineData(new[] { "exec", "n1" }, "expected a command after '--'")]
    [InlineData(new[] { "exec", "--", "ip", "addr" }, "expected exactly one host")]
    [InlineData(new[] { "exec", "n1", "n2", "--", "true" }, "expected exactly one host")]
    [InlineData(new[] { "crash" }, "expected exactly one NODE")]
    [InlineData(new[] { "crash", "n1", "n2" }, "expected exactly one NODE")]
    [InlineData(new[] { "crash", "client" }, "'client' is not a node")]
    [InlineData(new[] { "crash", "--primary-of" }, "--primary-of needs a value")]
    [InlineData(new[] { "crash", "N1;rm" }, "not a lab host name")]
    [InlineData(new[] { "revive" }, "expected exactly one NODE")]
    [InlineData(new[] { "partition" }, "name at least one node")]
    [InlineData(new[] { "partition", "client" }, "not the client")]
    [InlineData(new[] { "heal", "n1" }, "unexpected argument 'n1'")]
    [InlineData(new[] { "down", "--force" }, "unexpected argument '--force'")]
    [InlineData(new[] { "status", "--yaml" }, "unknown argument '--yaml'")]
    [InlineData(new[] { "status", "--state-dir" }, "--state-dir needs a value")]
    [InlineData(new[] { "probe", "n1" }, "name two different hosts")]
    [InlineData(new[] { "probe", "n1", "n1" }, "name two different hosts")]
    [InlineData(new[] { "probe", "n1", "n2", "--mode", "udp" }, "no mode 'udp' (modes: tcp, tls, remoting, remoting-tls)")]
    [InlineData(new[] { "probe", "n1", "n2", "--rounds", "0" }, "--rounds must be a whole number from 1 to 100")]
    [InlineData(new[] { "probe", "n1", "n2", "--round-trips", "many" }, "--round-trips must be a whole number from 10 to 1000000")]
    [InlineData(new[] { "probe-end", "listen" }, "expected 'echo' or 'ping'")]
    [InlineData(new[] { "probe-end", "ping", "--mode", "tcp", "--address", "198.18.1.12:4000" }, "ping needs --bind")]
    [InlineData(new[] { "probe-end", "echo", "--mode", "remoting-tls", "--address", "198.18.1.12" }, "needs --certificate")]
    public void Bad_arguments_are_rejected_with_a_message_naming_the_problem(string[] args, string expected)
    {
        var e = Assert.Throws<UsageException>(() => CommandLine.Parse(args));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Probe_takes_the_pinging_host_first_and_compares_every_transport_by_default()
    {
        var c = Assert.IsType<ProbeCommand>(Parse("probe", "n1", "n2"));
        Assert.Equal(("n1", "n2"), (c.From, c.To));
        Assert.Empty(c.Modes);
        Assert.Equal((2000, 2), (c.RoundTrips, c.Rounds));
        Assert.False(c.Json);

        var only = Assert.IsType<ProbeCommand>(Parse("probe", "n2", "n3", "--mode", "tls", "--mode=remoting-tls", "--rounds", "3",
            "--round-trips=500", "--json"));
        Assert.Equal(["tls", "remoting-tls"], only.Modes);
        Assert.Equal((500, 3), (only.RoundTrips, only.Rounds));
        Assert.True(only.Json);
    }

    [Fact]
    public void Bad_arguments_exit_with_code_2_and_print_the_usage()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = Program.Run(["up", "--nodes", "zero"], output, error);
        Assert.Equal(2, code);
        Assert.Contains("continuity-lab: --nodes must be a whole number", error.ToString());
        Assert.Contains("Usage: continuity-lab", error.ToString());
        Assert.Equal("", output.ToString());
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public void Help_prints_the_usage_and_succeeds(string flag)
    {
        var output = new StringWriter();
        Assert.Equal(0, Program.Run([flag], output, new StringWriter()));
        Assert.Contains("Usage: continuity-lab", output.ToString());
    }

    [Fact]
    public void Help_after_a_command_shows_the_usage()
    {
        Assert.IsType<HelpCommand>(Parse("up", "--help"));
    }

    [Fact]
    public void The_state_dir_option_is_accepted_before_or_after_the_command()
    {
        Assert.Equal("/tmp/a", Parse("--state-dir", "/tmp/a", "status").StateDir);
        Assert.Equal("/tmp/b", Parse("status", "--state-dir=/tmp/b", "--json").StateDir);
        Assert.True(Assert.IsType<StatusCommand>(Parse("status", "--json")).Json);
    }

    [Fact]
    public void Exec_passes_everything_after_the_double_dash_untouched()
    {
        var c = Assert.IsType<ExecCommand>(Parse("exec", "client", "--", "curl", "--state-dir", "-h", "--", "x"));
        Assert.Equal("client", c.Host);
        Assert.Equal(["curl", "--state-dir", "-h", "--", "x"], c.Command);
        Assert.Null(c.StateDir);
    }

    [Fact]
    public void Crash_names_a_node_or_asks_for_the_primary_of_an_app()
    {
        Assert.Equal("n2", Assert.IsType<CrashCommand>(Parse("crash", "n2")).Node);
        var byApp = Assert.IsType<CrashCommand>(Parse("crash", "--primary-of", "kv"));
        Assert.Null(byApp.Node);
        Assert.Equal("kv", byApp.PrimaryOfApp);
        Assert.Equal("kv", Assert.IsType<CrashCommand>(Parse("crash", "--primary-of=kv")).PrimaryOfApp);
    }

    [Fact]
    public void Partition_takes_one_or_more_nodes()
    {
        Assert.Equal(["n1", "w1"], Assert.IsType<PartitionCommand>(Parse("partition", "n1", "w1", "n1")).Nodes);
        Assert.IsType<HealCommand>(Parse("heal"));
        Assert.IsType<DownCommand>(Parse("down"));
        Assert.Equal("n3", Assert.IsType<ReviveCommand>(Parse("revive", "n3")).Node);
    }

    [Fact]
    public void The_instance_is_a_global_option_accepted_before_or_after_the_command()
    {
        Assert.Equal(1, Parse("--instance", "1", "up", "--nodes", "3").Instance);
        Assert.Equal(2, Parse("status", "--instance=2").Instance);
        Assert.Null(Parse("down").Instance);
    }

    [Fact]
    public void An_instance_after_the_double_dash_belongs_to_the_executed_command()
    {
        var c = Assert.IsType<ExecCommand>(Parse("exec", "n1", "--", "tool", "--instance", "3"));
        Assert.Null(c.Instance);
        Assert.Equal(["tool", "--instance", "3"], c.Command);
    }

    [Theory]
    [InlineData("256")]
    [InlineData("-1")]
    [InlineData("one")]
    public void An_instance_that_is_not_0_to_255_is_a_usage_error(string value)
    {
        var e = Assert.Throws<UsageException>(() => Parse("--instance", value, "down"));
        Assert.Contains("--instance", e.Message);
    }
}
