using Xunit;

namespace Continuity.Lab.Tests;

public class NodeConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ct-lab-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void The_node_file_includes_the_configs_and_then_sets_the_lab_settings()
    {
        var hosts = Topology.Default.Hosts(3, witnesses: 0);
        var n2 = hosts.Single(h => h.Name == "n2");
        var text = NodeConfig.Generate(n2, Topology.Seeds(hosts), ["/repo/hocon/lab.hocon", "/home/me/kv.hocon"], "/var/lib/continuity-lab");

        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')).ToList();
        Assert.Equal(
        [
            "include \"/repo/hocon/lab.hocon\"",
            "include \"/home/me/kv.hocon\"",
            "continuity.node.name = \"n2\"",
            "continuity.node.state-dir = \"/var/lib/continuity-lab/n2/state\"",
            "continuity.management.bind = \"198.18.0.12:8558\"",
            "continuity.management.token-file = \"/var/lib/continuity-lab/token\"",
            "continuity.cluster-tls.certificate = \"/var/lib/continuity-lab/cluster.pfx\"",
            "akka.remote.dot-netty.tcp.hostname = \"198.18.0.12\"",
            "akka.remote.dot-netty.tcp.port = 4053",
            "akka.cluster.seed-nodes = [\"akka.tcp://continuity@198.18.0.11:4053\", \"akka.tcp://continuity@198.18.0.12:4053\"]",
            "akka.cluster.roles = [\"data\"]",
        ], lines);
    }

    [Fact]
    public void The_node_file_parses_as_HOCON_and_its_own_settings_win_over_the_includes()
    {
        var user = Write("user.hocon", "continuity.node.name = \"wrong\"\nakka.cluster.roles = [\"x\"]\ncontinuity.app-defaults.recovery = restore-only\n");
        var hosts = Topology.Default.Hosts(1, witnesses: 0);
        var node = Write("node.hocon", NodeConfig.Generate(hosts[0], Topology.Seeds(hosts), [user], "/s"));

        var config = NodeConfig.Load([node]);
        Assert.Equal("n1", config.GetString("continuity.node.name"));
        Assert.Equal(["data"], config.GetStringList("akka.cluster.roles"));
        Assert.Equal("restore-only", config.GetString("continuity.app-defaults.recovery"));
        Assert.Equal(["akka.tcp://continuity@198.18.0.11:4053"], config.GetStringList("akka.cluster.seed-nodes"));
    }

    [Fact]
    public void A_witness_gets_the_witness_role_and_address_but_is_not_a_seed()
    {
        var hosts = Topology.Default.Hosts(3, witnesses: 1);
        var w1 = hosts.Single(h => h.Kind == HostKind.Witness);
        Assert.Equal(("w1", "198.18.0.10"), (w1.Name, w1.Address));
        Assert.Equal(["n1", "n2"], Topology.Seeds(hosts).Select(s => s.Name));

        var text = NodeConfig.Generate(w1, Topology.Seeds(hosts), [], "/s");
        Assert.Contains("akka.cluster.roles = [\"witness\"]", text);
        Assert.Contains("continuity.management.bind = \"198.18.0.10:8558\"", text);
        Assert.DoesNotContain("include", text.Split('\n').Skip(1).First());
    }

    [Fact]
    public void A_single_node_lab_seeds_from_itself_or_from_the_witness()
    {
        Assert.Equal(["n1"], Topology.Seeds(Topology.Default.Hosts(1, witnesses: 0)).Select(s => s.Name));
        Assert.Equal(["n1", "w1"], Topology.Seeds(Topology.Default.Hosts(1, witnesses: 1)).Select(s => s.Name));
    }

    [Fact]
    public void Hosts_are_numbered_from_198_18_0_11_with_the_client_at_100()
    {
        var hosts = Topology.Default.Hosts(4, witnesses: 0);
        Assert.Equal(["n1", "n2", "n3", "n4", "client"], hosts.Select(h => h.Name));
        Assert.Equal(["198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14", "198.18.0.100"], hosts.Select(h => h.Address));
        Assert.Equal(["ct-n1", "ct-client"], new[] { hosts[0].Namespace, hosts[4].Namespace });
        Assert.Equal("ctv-client", hosts[4].BridgePort);
        Assert.True(hosts[4].BridgePort.Length <= 15); // IFNAMSIZ
        Assert.Equal("198.18.0.98", Topology.Default.NodeAddress(CommandLine.MaxNodes));
    }

    [Fact]
    public void Strings_are_quoted_so_any_path_survives()
    {
        Assert.Equal("\"/a \\\"b\\\"\\\\c\"", NodeConfig.Quote("/a \"b\"\\c"));
    }

    [Fact]
    public void State_dirs_of_every_app_are_collected_with_app_defaults_as_fallback()
    {
        var included = Write("defaults.hocon", "continuity.app-defaults.state-dirs = [\"/var/lib/common\"]\n");
        var user = Write("apps.hocon", """
            include "defaults.hocon"
            continuity.apps {
              kv { command = ["/bin/kv"], state-dirs = ["/var/lib/kv", "/srv/kv/"] }
              web { command = ["/bin/web"] }
              cache { command = ["/bin/cache"], state-dirs = ["/var/lib/kv"] }
            }
            """);
        Assert.Equal(["/var/lib/kv", "/srv/kv", "/var/lib/common"], NodeConfig.StateDirs([user]));
    }

    [Fact]
    public void No_apps_means_no_state_dirs()
    {
        Assert.Empty(NodeConfig.StateDirs([Write("empty.hocon", "# nothing\n")]));
        Assert.Empty(NodeConfig.StateDirs([]));
    }

    [Fact]
    public void A_relative_state_dir_is_refused_with_the_key_that_holds_it()
    {
        var user = Write("bad.hocon", "continuity.apps.kv.state-dirs = [\"data\"]\n");
        var e = Assert.Throws<LabException>(() => NodeConfig.StateDirs([user]));
        Assert.Contains("continuity.apps.kv.state-dirs", e.Message);
        Assert.Contains("absolute", e.Message);
    }

    [Fact]
    public void A_missing_include_is_reported_with_the_file_name()
    {
        // Akka's HOCON parser accepts most malformed text, so a dangling include is what the lab can catch.
        var dangling = Write("dangling.hocon", "include \"nowhere.hocon\"\n");
        var e = Assert.Throws<LabException>(() => NodeConfig.StateDirs([dangling]));
        Assert.Contains("nowhere.hocon", e.Message);
    }

    [Fact]
    public void The_node_script_mounts_each_state_dir_privately_and_enters_only_the_network_namespace()
    {
        var n1 = Topology.Default.Hosts(1, witnesses: 0)[0];
        var script = Lab.BuildNodeScript(n1, "/lab/n1", "/repo/bin/continuity-node", ["/var/lib/kv"]);
        var lines = script.TrimEnd().Split('\n');
        Assert.Equal("exec </dev/null >>'/lab/n1/node.log' 2>&1", lines[0]);
        Assert.StartsWith("for fd in /proc/$$/fd/*", lines[1]);
        Assert.Contains("mkdir -p '/lab/n1/fs/var/lib/kv' '/var/lib/kv'", lines);
        Assert.Contains("mount --bind '/lab/n1/fs/var/lib/kv' '/var/lib/kv'", lines);
        Assert.Equal("exec nsenter --net='/run/netns/ct-n1' -- '/repo/bin/continuity-node' --config '/lab/n1/node.hocon'", lines[^1]);
        Assert.DoesNotContain("ip netns exec", script);
    }

    [Fact]
    public void The_node_script_runs_the_node_in_its_own_directory_so_no_two_nodes_programs_share_a_working_directory()
    {
        var hosts = Topology.Default.Hosts(2, witnesses: 0);
        var scripts = hosts.Select(h => Lab.BuildNodeScript(h, $"/lab/{h.Name}", "/repo/bin/continuity-node", [])).ToList();
        for (var i = 0; i < hosts.Count; i++)
        {
            var lines = scripts[i].TrimEnd().Split('\n');
            Assert.Equal($"cd '/lab/{hosts[i].Name}'", lines[^2]);
        }
    }

    [Fact]
    public void The_node_script_mounts_no_state_of_its_own_so_a_restarted_node_process_keeps_its_files()
    {
        var n1 = Topology.Default.Hosts(1, witnesses: 0)[0];
        var script = Lab.BuildNodeScript(n1, "/lab/n1", "/repo/bin/continuity-node", ["/var/lib/kv"]);
        Assert.DoesNotContain("tmpfs", script);
        Assert.Contains("mount --bind '/lab/n1/fs/var/lib/kv' '/var/lib/kv'", script);
    }

    [Fact]
    public void Shell_quoting_survives_single_quotes()
    {
        Assert.Equal("'it'\\''s'", Os.ShellQuote("it's"));
    }
}
