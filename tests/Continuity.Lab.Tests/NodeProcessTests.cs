using System.Text.Json;
using Xunit;

namespace Continuity.Lab.Tests;

/// <summary>
/// The node-starting half of the lab, with a stand-in node program (a shell script that reports
/// where it runs and idles) and stand-in management endpoints, until the real node exists.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class NodeProcessTests : IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("ct-lab-home-").FullName;
    private readonly string _appDir;
    private readonly string _config;
    private readonly string? _previousHome = Environment.GetEnvironmentVariable("CONTINUITY_HOME");
    private readonly LabDriver _lab = new();
    private readonly FakeManagement _management = new();

    public NodeProcessTests()
    {
        _appDir = Path.Combine(_home, "app-state", "kv");
        Directory.CreateDirectory(Path.Combine(_home, "bin"));
        var node = Path.Combine(_home, "bin", "continuity-node");
        File.WriteAllText(node, $"""
            #!/bin/sh
            # Stand-in node: records which node it is in the app's state dir, then idles.
            name=$(sed -n 's/^continuity.node.name = "\(.*\)"$/\1/p' "$2")
            echo "fake node $name pid $$ config $2"
            echo "$name" > '{_appDir}/whoami'
            exec sleep 600
            """.Replace("\r", ""));
        File.SetUnixFileMode(node, (UnixFileMode)0b111_101_101);
        _config = Path.Combine(_home, "kv.hocon");
        File.WriteAllText(_config, $$"""
            continuity.apps.kv {
              command = ["/bin/true"]
              state-dirs = ["{{_appDir}}"]
            }
            """);
        Environment.SetEnvironmentVariable("CONTINUITY_HOME", _home);
    }

    public void Dispose()
    {
        _lab.Dispose();
        _management.Dispose();
        Environment.SetEnvironmentVariable("CONTINUITY_HOME", _previousHome);
        Directory.Delete(_home, recursive: true);
    }

    private static long Inode(string path) => long.Parse(Os.RunChecked("stat", "-L", "-c", "%i", path).Trim());

    private int PidOf(string node)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_lab.StateDir, "lab.json")));
        var host = doc.RootElement.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == node);
        return host.GetProperty("pid").GetInt32();
    }

    /// <summary>Runs 'up' and, once the namespaces exist, brings up the stand-in endpoints.</summary>
    private int Up(params string[] extra)
    {
        _management.Respond = (node, path) => path == "/v1/cluster"
            ? (200, FakeManagement.ClusterJson($"198.18.0.1{node[1..]}", 3, "198.18.0.11"))
            : (404, "{}");
        var up = Task.Run(() => _lab.Run(["up", "--nodes", "3", "--config", _config, .. extra]));
        var served = new HashSet<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (served.Count < 3 && !up.IsCompleted && DateTime.UtcNow < deadline)
        {
            foreach (var node in new[] { "n1", "n2", "n3" }.Where(n => !served.Contains(n) && File.Exists($"/run/netns/ct-{n}")))
            {
                try { _management.ServeIn(node); served.Add(node); }
                catch (InvalidOperationException) { /* namespace still being set up */ }
            }
            Thread.Sleep(20);
        }
        return up.GetAwaiter().GetResult();
    }

    [RootFact]
    public void Up_starts_each_node_detached_in_its_network_namespace_with_private_state_dirs()
    {
        Assert.True(Up() == 0, _lab.LastOutput + _lab.LastError);
        Assert.Contains("Lab is up: 3 members Up on every node after", _lab.LastOutput);
        var token = File.ReadAllText(Path.Combine(_lab.StateDir, "token")).Trim();
        Assert.All(_management.AuthorizationHeaders, h => Assert.Equal("Bearer " + token, h));
        Assert.NotEmpty(_management.AuthorizationHeaders);

        foreach (var node in new[] { "n1", "n2", "n3" })
        {
            var pid = PidOf(node);
            Assert.True(Os.IsAlive(pid, null), $"{node} (pid {pid}) is not running");
            // Only the network namespace is the lab's; the mount namespace is the node's own.
            Assert.Equal(Inode($"/run/netns/ct-{node}"), Inode($"/proc/{pid}/ns/net"));
            Assert.NotEqual(Inode("/proc/self/ns/mnt"), Inode($"/proc/{pid}/ns/mnt"));
            Assert.Equal(Inode("/proc/self/ns/pid"), Inode($"/proc/{pid}/ns/pid"));
            // A session leader: survives the end of the shell that ran 'up'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            Assert.Equal(pid.ToString(), stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[3]);
            // Only stdin/stdout/stderr: CRIU cannot dump fds inherited from another mount namespace.
            Assert.Equal(["0", "1", "2"], Directory.GetFiles($"/proc/{pid}/fd").Select(Path.GetFileName).Order());

            var copy = Path.Combine(_lab.StateDir, node, "fs") + _appDir;
            Assert.Equal(node, File.ReadAllText(Path.Combine(copy, "whoami")).Trim());
            Assert.Contains($"fake node {node} pid {pid}", File.ReadAllText(Path.Combine(_lab.StateDir, node, "node.log")));
        }
        Assert.False(File.Exists(Path.Combine(_appDir, "whoami")), "a node wrote through to the host's copy of the state dir");
        Assert.True(File.Exists(Path.Combine(_home, "hocon", "lab.hocon")), "up creates hocon/lab.hocon when it is missing");

        _lab.MustRun("status");
        Assert.Matches(@"n1\s+ct-n1\s+198\.18\.0\.11\s+data\s+\d+\s+alive\s+3/3 Up, leader n1", _lab.LastOutput);
    }

    [RootFact]
    public void Crash_of_the_primary_kills_the_node_and_revive_restarts_it()
    {
        Assert.True(Up() == 0, _lab.LastOutput + _lab.LastError);
        var before = PidOf("n2");
        _management.Respond = (_, path) => path switch
        {
            "/v1/apps/kv" => (200, "{\"primary\":\"n2\",\"standbys\":[\"n1\",\"n3\"]}"),
            _ => (404, "{}"),
        };

        Assert.Equal(1, _lab.Run("crash", "--primary-of", "web"));
        Assert.Contains("answered 404 to GET /v1/apps/web", _lab.LastError);

        _lab.MustRun("crash", "--primary-of", "kv");
        Assert.Contains("the primary of kv is n2", _lab.LastOutput);
        Assert.False(Os.IsAlive(before, null), "the crashed node's process survived");
        Assert.True(Os.IsAlive(PidOf("n1"), null));
        Assert.Empty(Os.Run("ip", "netns", "pids", "ct-n2").Stdout.Trim());

        _lab.MustRun("revive", "n2");
        var after = PidOf("n2");
        Assert.NotEqual(before, after);
        Assert.True(Os.IsAlive(after, null));
        Assert.Equal(Inode("/run/netns/ct-n2"), Inode($"/proc/{after}/ns/net"));

        var running = new[] { PidOf("n1"), after, PidOf("n3") };
        _lab.MustRun("down");
        foreach (var pid in running)
            Assert.False(Os.IsAlive(pid, null), $"pid {pid} survived down");
    }

    [RootFact]
    public void Up_reports_a_node_that_exits_during_start_up_with_its_log()
    {
        File.WriteAllText(Path.Combine(_home, "bin", "continuity-node"), "#!/bin/sh\necho 'cannot parse config: boom' >&2\nexit 3\n");
        Assert.Equal(1, _lab.Run("up", "--nodes", "3", "--config", _config, "--timeout", "10"));
        Assert.Contains("exited during start-up", _lab.LastError);
        Assert.Contains("cannot parse config: boom", _lab.LastError);
    }

    [RootFact]
    public void Up_gives_up_after_the_timeout_when_the_cluster_does_not_form()
    {
        Assert.Equal(1, _lab.Run("up", "--nodes", "2", "--config", _config, "--timeout", "2"));
        Assert.Contains("the cluster did not come up within 2 s", _lab.LastError);
        Assert.Contains("continuity-lab down", _lab.LastError);
        Assert.Contains("n1:", _lab.LastOutput); // progress lines name each node and its answer
    }
}
