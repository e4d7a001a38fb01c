using Xunit;

namespace Continuity.Lab.Tests;

[Collection(LabCollection.Name)]
public sealed class LabLifecycleTests
{
    private static IReadOnlyList<string> LabNamespaces() =>
        Os.Run("ip", "netns", "list").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')[0]).Where(n => n.StartsWith("ct-", StringComparison.Ordinal) && !n.StartsWith("ct-probe", StringComparison.Ordinal))
            .ToList();

    private static IReadOnlyList<string> LabLinks() =>
        Os.Run("ip", "-o", "link", "show").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':')[1].Trim().Split('@')[0])
            .Where(n => n.StartsWith("ctbr", StringComparison.Ordinal) || n.StartsWith("ctv-", StringComparison.Ordinal))
            .ToList();

    [RootFact]
    public void Down_leaves_no_lab_namespaces_links_or_state_file()
    {
        using var lab = new LabDriver();
        lab.MustRun("up", "--nodes", "3", "--no-nodes", "--witness");
        Assert.Equal(["ct-client", "ct-n1", "ct-n2", "ct-n3", "ct-w1"], LabNamespaces().Order());
        Assert.True(File.Exists(Path.Combine(lab.StateDir, "lab.json")));

        lab.MustRun("down");
        Assert.Empty(LabNamespaces());
        Assert.Empty(LabLinks());
        Assert.False(File.Exists(Path.Combine(lab.StateDir, "lab.json")));
        Assert.False(File.Exists(Path.Combine(lab.StateDir, "token")));

        lab.MustRun("down"); // idempotent
        Assert.Contains("No lab to remove", lab.LastOutput);
    }

    [RootFact]
    public void Down_cleans_up_by_name_when_the_state_file_is_corrupt()
    {
        using var lab = new LabDriver();
        lab.MustRun("up", "--nodes", "2", "--no-nodes");
        File.WriteAllText(Path.Combine(lab.StateDir, "lab.json"), "{ not json");

        lab.MustRun("down");
        Assert.Contains("unreadable", lab.LastError);
        Assert.Empty(LabNamespaces());
        Assert.Empty(LabLinks());
    }

    [RootFact]
    public void Down_cleans_up_a_lab_whose_state_file_is_missing()
    {
        using var lab = new LabDriver();
        lab.MustRun("up", "--nodes", "2", "--no-nodes");
        using var other = new LabDriver(); // a different state dir knows nothing of it

        other.MustRun("down");
        Assert.Empty(LabNamespaces());
        Assert.Empty(LabLinks());
    }

    [RootFact]
    public void Up_removes_the_leftovers_of_an_earlier_lab_first()
    {
        using var lab = new LabDriver();
        lab.MustRun("up", "--nodes", "3", "--no-nodes");
        // Simulates a lab whose owner vanished: namespaces remain, the state file does not.
        File.Delete(Path.Combine(lab.StateDir, "lab.json"));

        lab.MustRun("up", "--nodes", "2", "--no-nodes");
        Assert.Contains("Found leftovers of an earlier lab", lab.LastOutput);
        Assert.Equal(["ct-client", "ct-n1", "ct-n2"], LabNamespaces().Order());
        Assert.True(NetnsProbe.Ping("ct-client", "198.18.0.12"));
    }

    [RootFact]
    public void Up_writes_a_node_config_and_a_private_token_for_every_member()
    {
        using var lab = new LabDriver();
        lab.MustRun("up", "--nodes", "2", "--no-nodes", "--witness");
        foreach (var node in new[] { "n1", "n2", "w1" })
            Assert.Contains($"continuity.node.name = \"{node}\"", File.ReadAllText(Path.Combine(lab.StateDir, node, "node.hocon")));
        var token = Path.Combine(lab.StateDir, "token");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(token));
        Assert.Matches("^[0-9a-f]{64}\n$", File.ReadAllText(token));
    }

    [RootFact]
    public void Up_never_wipes_a_node_directory_it_did_not_make()
    {
        using var lab = new LabDriver();
        Directory.CreateDirectory(Path.Combine(lab.StateDir, "n1"));
        File.WriteAllText(Path.Combine(lab.StateDir, "n1", "notes.txt"), "mine");

        Assert.Equal(1, lab.Run("up", "--nodes", "1", "--no-nodes"));
        Assert.Contains("was not made by the lab", lab.LastError);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(lab.StateDir, "n1", "notes.txt")));
        Assert.Empty(LabNamespaces());
    }

    [RootFact]
    public void Up_refuses_a_state_dir_that_would_hide_the_lab_itself()
    {
        using var lab = new LabDriver();
        var config = Path.Combine(lab.StateDir, "greedy.hocon");
        File.WriteAllText(config, $"continuity.apps.kv.state-dirs = [\"{Path.GetDirectoryName(lab.StateDir)}\"]\n");

        Assert.Equal(1, lab.Run("up", "--nodes", "1", "--no-nodes", "--config", config));
        Assert.Contains("which holds the lab's state directory", lab.LastError);
        Assert.Empty(LabNamespaces());
    }

    [RootFact]
    public void Commands_that_need_a_lab_say_how_to_start_one()
    {
        using var lab = new LabDriver();
        Assert.Equal(1, lab.Run("status"));
        Assert.Contains("no lab is running", lab.LastError);
        Assert.Contains("continuity-lab up --nodes 3", lab.LastError);
    }

    [RootFact]
    public void Up_without_a_built_node_program_says_how_to_build_it()
    {
        var home = Directory.CreateTempSubdirectory("ct-lab-home-").FullName;
        var previous = Environment.GetEnvironmentVariable("CONTINUITY_HOME");
        Environment.SetEnvironmentVariable("CONTINUITY_HOME", home);
        try
        {
            using var lab = new LabDriver();
            Assert.Equal(1, lab.Run("up", "--nodes", "3"));
            Assert.Contains($"the node program {home}/bin/continuity-node is not built yet", lab.LastError);
            Assert.Contains("deploy/build.sh", lab.LastError);
            Assert.Empty(LabNamespaces()); // refused before touching the network
        }
        finally
        {
            Environment.SetEnvironmentVariable("CONTINUITY_HOME", previous);
            Directory.Delete(home, recursive: true);
        }
    }
}

[Collection(LabCollection.Name)]
public sealed class StateDirTests
{
    [Fact]
    public void The_state_dir_comes_from_the_option_then_the_environment_then_the_default()
    {
        var previous = Environment.GetEnvironmentVariable("CONTINUITY_LAB_DIR");
        try
        {
            Environment.SetEnvironmentVariable("CONTINUITY_LAB_DIR", null);
            Assert.Equal("/var/lib/continuity-lab", Lab.ResolveStateDir(null));
            Environment.SetEnvironmentVariable("CONTINUITY_LAB_DIR", "/tmp/from-env");
            Assert.Equal("/tmp/from-env", Lab.ResolveStateDir(null));
            Assert.Equal("/tmp/from-option", Lab.ResolveStateDir("/tmp/from-option"));
            Environment.SetEnvironmentVariable("CONTINUITY_LAB_DIR", null);
            Assert.Equal("/var/lib/continuity-lab-3", Lab.ResolveStateDir(null, Topology.Of(3)));
        }
        finally
        {
            Environment.SetEnvironmentVariable("CONTINUITY_LAB_DIR", previous);
        }
    }

    [Fact]
    public void The_repository_root_is_found_above_the_lab_assembly()
    {
        var root = Lab.FindRepoRoot();
        Assert.NotNull(root);
        Assert.True(File.Exists(Path.Combine(root!, "Continuity.Akka.sln")));
    }

    /// <summary>
    /// The lab restarts a node downed during start-up by recognising the node program's last words; the two programs
    /// share no assembly, so this holds them to the same sentence.
    /// </summary>
    [Fact]
    public void The_lab_recognises_the_words_a_downed_node_exits_with()
    {
        var program = File.ReadAllText(Path.Combine(Lab.FindRepoRoot()!, "src", "Continuity.Node", "Program.cs"));
        Assert.Contains(Lab.DownedExitLine, program);
    }
}
