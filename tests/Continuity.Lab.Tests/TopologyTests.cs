using Xunit;

namespace Continuity.Lab.Tests;

public class TopologyTests
{
    [Fact]
    public void Instance_zero_keeps_the_names_and_addresses_the_lab_always_had()
    {
        var t = Topology.Of(0);
        Assert.Same(Topology.Default, t);
        Assert.Equal("ctbr0", t.Bridge);
        Assert.Equal("198.18.0.1", t.BridgeAddress);
        Assert.Equal("198.18.0.0/24", t.Subnet);
        Assert.Equal("ct-n1", t.NamespaceOf("n1"));
        Assert.Equal("ctv-client", t.BridgePortOf("client"));
        Assert.Equal("198.18.0.11", t.NodeAddress(1));
        Assert.Equal("198.18.0.10", t.WitnessAddress(1));
        Assert.Equal("198.18.0.100", t.ClientAddress);
        Assert.Equal("continuity-lab", t.RuleComment);
        Assert.Equal("/var/lib/continuity-lab", t.DefaultStateDir);
    }

    [Fact]
    public void Instance_n_gets_its_own_namespaces_bridge_subnet_rule_comment_and_state_dir()
    {
        var t = Topology.Of(1);
        Assert.Equal("ct1br", t.Bridge);
        Assert.Equal("198.18.1.1", t.BridgeAddress);
        Assert.Equal("198.18.1.0/24", t.Subnet);
        Assert.Equal("ct1-n2", t.NamespaceOf("n2"));
        Assert.Equal("ct1v-n2", t.BridgePortOf("n2"));
        Assert.Equal("198.18.1.12", t.NodeAddress(2));
        Assert.Equal("198.18.1.100", t.ClientAddress);
        Assert.Equal("ct1-continuity-lab", t.RuleComment);
        Assert.Equal("/var/lib/continuity-lab-1", t.DefaultStateDir);
    }

    [Fact]
    public void Hosts_of_an_instance_carry_its_namespaces_and_addresses()
    {
        var hosts = Topology.Of(7).Hosts(2, witnesses: 1);
        Assert.Equal(["w1", "n1", "n2", "client"], hosts.Select(h => h.Name));
        Assert.Equal(["198.18.7.10", "198.18.7.11", "198.18.7.12", "198.18.7.100"], hosts.Select(h => h.Address));
        Assert.Equal(["ct7-w1", "ct7-n1", "ct7-n2", "ct7-client"], hosts.Select(h => h.Namespace));
        Assert.All(hosts, h => Assert.Equal(7, h.Instance));
    }

    [Fact]
    public void Further_witnesses_take_the_addresses_below_w1_and_never_meet_the_bridge_or_a_node()
    {
        var hosts = Topology.Of(2).Hosts(3, witnesses: 2);
        Assert.Equal(["w1", "w2", "n1", "n2", "n3", "client"], hosts.Select(h => h.Name));
        Assert.Equal(["198.18.2.10", "198.18.2.9", "198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.100"], hosts.Select(h => h.Address));
        Assert.All(hosts.Where(h => h.Kind == HostKind.Witness), w => Assert.Equal("witness", w.Role));

        var most = Topology.Of(2).Hosts(1, witnesses: Topology.MaxWitnesses);
        Assert.Equal("198.18.2.2", most.Single(h => h.Name == "w" + Topology.MaxWitnesses).Address);
        Assert.Equal(most.Count, most.Select(h => h.Address).Distinct().Count());
        Assert.DoesNotContain(Topology.Of(2).BridgeAddress, most.Select(h => h.Address));
        Assert.Matches(Topology.Of(2).LabNamespace(), Topology.Of(2).NamespaceOf("w9"));
    }

    [Fact]
    public void The_largest_instance_stays_inside_the_benchmarking_range_and_within_interface_name_limits()
    {
        var t = Topology.Of(Topology.MaxInstance);
        Assert.Equal("198.18.255.100", t.ClientAddress);
        Assert.Equal("198.18.255.98", t.NodeAddress(CommandLine.MaxNodes));
        foreach (var name in new[] { t.Bridge, t.BridgePortOf("client"), t.BridgePortOf("n88"), t.BridgePortOf("w1") })
            Assert.True(name.Length <= 15, $"{name} is longer than IFNAMSIZ allows"); // IFNAMSIZ - 1
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(256)]
    public void An_instance_outside_0_to_255_is_refused(int instance)
    {
        var e = Assert.Throws<LabException>(() => Topology.Of(instance));
        Assert.Contains("0-255", e.Message);
    }

    public static TheoryData<int, int> Pairs => new() { { 0, 1 }, { 1, 0 }, { 1, 11 }, { 11, 1 }, { 2, 12 }, { 0, 10 } };

    [Theory]
    [MemberData(nameof(Pairs))]
    public void The_cleanup_of_one_instance_never_matches_the_names_of_another(int mine, int other)
    {
        var me = Topology.Of(mine);
        var them = Topology.Of(other);
        var theirHosts = them.Hosts(3, witnesses: 1);
        foreach (var h in theirHosts)
        {
            Assert.DoesNotMatch(me.LabNamespace(), h.Namespace);
            Assert.DoesNotMatch(me.LabLink(), h.BridgePort);
        }
        Assert.DoesNotMatch(me.LabLink(), them.Bridge);

        foreach (var h in me.Hosts(3, witnesses: 1))
        {
            Assert.Matches(me.LabNamespace(), h.Namespace);
            Assert.Matches(me.LabLink(), h.BridgePort);
        }
        Assert.Matches(me.LabLink(), me.Bridge);
    }

    [Theory]
    [InlineData("ct-probe-1234")] // install-deps' probe namespace
    [InlineData("ctt-q25")]       // Continuity.Linux.Tests' namespaces
    [InlineData("ct-n1x")]
    [InlineData("ct1-n1")]
    public void Instance_zero_leaves_namespaces_it_did_not_make_alone(string name) =>
        Assert.DoesNotMatch(Topology.Default.LabNamespace(), name);

    [Theory]
    [InlineData(1, "ctbr1")] // a bridge name labs older than instances clean up: never used for N > 0
    [InlineData(1, "ctbr0")]
    [InlineData(0, "ctbr1")]
    [InlineData(0, "cttq25")]
    public void A_link_of_another_lab_or_tool_is_not_this_instances(int instance, string link) =>
        Assert.DoesNotMatch(Topology.Of(instance).LabLink(), link);

    [Fact]
    public void Instances_above_zero_use_no_name_that_a_lab_older_than_instances_would_clean_up()
    {
        // The cleanup of labs built before instances: namespaces ^ct-(n|w|client), links ctbr\d+ or
        // ctv-*, root rules whose comment starts with continuity-lab. Another worktree may still run it.
        var old = new System.Text.RegularExpressions.Regex(@"^(ct-(n\d+|w\d+|client)|ctbr\d+|ctv-(n\d+|w\d+|client))$");
        var t = Topology.Of(1);
        foreach (var h in t.Hosts(3, witnesses: 1))
        {
            Assert.DoesNotMatch(old, h.Namespace);
            Assert.DoesNotMatch(old, h.BridgePort);
        }
        Assert.DoesNotMatch(old, t.Bridge);
        Assert.False(t.RuleComment.StartsWith("continuity-lab", StringComparison.Ordinal));
    }

    [Fact]
    public void Root_rules_are_taken_only_when_their_comment_is_exactly_the_instances()
    {
        const string rules = """
            -P FORWARD DROP
            -A FORWARD -i ctbr0 -o ctbr0 -m comment --comment continuity-lab -j ACCEPT
            -A FORWARD -i ct1br -o ct1br -m comment --comment ct1-continuity-lab -j ACCEPT
            -A FORWARD -i ct11br -o ct11br -m comment --comment ct11-continuity-lab -j ACCEPT
            -A FORWARD -i docker0 -m comment --comment "continuity-labs other" -j ACCEPT
            """;
        var zero = Network.HostRulesOf(Topology.Of(0), rules);
        Assert.Equal("FORWARD -i ctbr0 -o ctbr0 -m comment --comment continuity-lab -j ACCEPT", string.Join(' ', Assert.Single(zero)));
        var one = Network.HostRulesOf(Topology.Of(1), rules);
        Assert.Equal("ct1br", Assert.Single(one)[2]);
    }

    [Fact]
    public void The_instance_comes_from_the_option_then_the_environment_then_zero()
    {
        Assert.Equal(0, Lab.ResolveTopology(null, null).Instance);
        Assert.Equal(0, Lab.ResolveTopology(null, " ").Instance);
        Assert.Equal(4, Lab.ResolveTopology(null, "4").Instance);
        Assert.Equal(5, Lab.ResolveTopology(5, "4").Instance);
    }

    [Theory]
    [InlineData("four")]
    [InlineData("256")]
    [InlineData("-1")]
    public void An_instance_variable_that_is_not_0_to_255_names_the_variable_and_the_range(string value)
    {
        var e = Assert.Throws<LabException>(() => Lab.ResolveTopology(null, value));
        Assert.Contains(Topology.InstanceVariable, e.Message);
        Assert.Contains("0-255", e.Message);
    }
}

public class InstanceStateTests
{
    [RootFact]
    public void A_command_refuses_a_lab_json_written_by_another_instance_and_says_which_to_pass()
    {
        var dir = Directory.CreateTempSubdirectory("ct-lab-instance-").FullName;
        try
        {
            new LabState { StateDir = dir, Instance = 0, Hosts = Topology.Default.Hosts(1, witnesses: 0) }.Save();
            var output = new StringWriter();
            var error = new StringWriter();
            var code = Program.Run(["--instance", "1", "--state-dir", dir, "status"], output, error);
            Assert.Equal(Program.ExitFailure, code);
            Assert.Contains("is instance 0, not 1: pass --instance 0", error.ToString());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
