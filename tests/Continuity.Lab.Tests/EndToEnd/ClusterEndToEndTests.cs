using System.Diagnostics;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// The real thing: continuity-node processes in the lab's namespaces forming an Akka cluster,
/// crashed and partitioned by the lab, observed through their management endpoints.
/// Needs the build (deploy/build.sh) and root.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class ClusterEndToEndTests(ITestOutputHelper output) : IDisposable
{
    private readonly LabDriver _lab = new();
    private LabApps? _appsDriver;
    private LabApps Apps => _appsDriver ??= new LabApps(_lab, output);

    public void Dispose()
    {
        _lab.Dispose();
        _appsDriver?.Dispose();
    }

    private static string Address(string node) => node switch
    {
        "n1" => "198.18.0.11", "n2" => "198.18.0.12", "n3" => "198.18.0.13",
        _ => throw new ArgumentException(node),
    };

    private JsonElement? ClusterSeenBy(string node) => Apps.Get(node, "/v1/cluster");

    private static string[] UpMembers(JsonElement cluster) =>
        cluster.GetProperty("members").EnumerateArray()
            .Where(m => m.GetProperty("status").GetString() == "Up")
            .Select(m => m.GetProperty("node").GetString()!).Order().ToArray();

    private TimeSpan WaitUntil(Func<bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, $"not within {timeout.TotalSeconds} s: {what}\n{_lab.LastOutput}");
            Thread.Sleep(250);
        }
        return clock.Elapsed;
    }

    private void UpThreeNodes()
    {
        var code = _lab.Run("up", "--nodes", "3", "--timeout", "90");
        Assert.True(code == 0, $"lab up failed ({code}):\n{_lab.LastOutput}\n{_lab.LastError}");
    }

    [RootFact]
    public void Three_node_processes_form_one_cluster_with_their_roles()
    {
        UpThreeNodes();
        foreach (var node in new[] { "n1", "n2", "n3" })
        {
            var cluster = ClusterSeenBy(node);
            Assert.NotNull(cluster);
            Assert.Equal(["n1", "n2", "n3"], UpMembers(cluster.Value));
            Assert.All(cluster.Value.GetProperty("members").EnumerateArray(),
                m => Assert.Equal(["data"], m.GetProperty("roles").EnumerateArray().Select(r => r.GetString())));
            // The lab runs node-to-node TLS, as a real cluster does by default.
            Assert.Equal($"akka.ssl.tcp://continuity@{Address(node)}:4053", cluster.Value.GetProperty("self").GetString());
            Assert.False(string.IsNullOrEmpty(cluster.Value.GetProperty("leader").GetString()));
        }

        // What an operator sees in the console.
        var (code, text) = Console("--node", "198.18.0.12:8558", "cluster", "show");
        Assert.True(code == 0, text);
        foreach (var node in new[] { "n1", "n2", "n3" })
            Assert.Matches($@"(?m)^{node}\*?\s+akka\.ssl\.tcp://continuity@{System.Text.RegularExpressions.Regex.Escape(Address(node))}:4053\s+Up\s+data\s+yes", text);
        Assert.Contains("leader: n1", text);
    }

    /// <summary>Runs the real console program against the lab, as a person would.</summary>
    private (int Code, string Output) Console(params string[] args)
    {
        var root = Lab.FindRepoRoot() ?? throw new InvalidOperationException("repository root not found");
        var start = new ProcessStartInfo(Path.Combine(root, "bin", "continuity-cmd"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
        };
        start.ArgumentList.Add("--token-file");
        start.ArgumentList.Add(Path.Combine(_lab.StateDir, "token"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(30_000), "continuity-cmd did not finish within 30 s");
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    [RootFact]
    public void A_crashed_node_is_downed_and_removed_by_the_others()
    {
        UpThreeNodes();
        _lab.MustRun("crash", "n3");
        var clock = Stopwatch.StartNew();
        var unreachable = WaitUntil(() => ClusterSeenBy("n1") is { } c && c.GetProperty("unreachable").GetArrayLength() == 1,
            TimeSpan.FromSeconds(30), "n1 sees n3 unreachable");
        WaitUntil(() => ClusterSeenBy("n1") is { } c && UpMembers(c).SequenceEqual(["n1", "n2"]) && c.GetProperty("members").GetArrayLength() == 2,
            TimeSpan.FromSeconds(60), "n1 and n2 remove n3");
        output.WriteLine($"crash of n3: unreachable after {unreachable.TotalSeconds:F1} s, removed after {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(["n1", "n2"], UpMembers(ClusterSeenBy("n2")!.Value));
    }

    [RootFact]
    public void A_partitioned_node_downs_itself_while_the_majority_stays_up()
    {
        UpThreeNodes();
        _lab.MustRun("partition", "n1");
        var clock = Stopwatch.StartNew();
        WaitUntil(() => ClusterSeenBy("n2") is { } c && UpMembers(c).SequenceEqual(["n2", "n3"]) && c.GetProperty("members").GetArrayLength() == 2,
            TimeSpan.FromSeconds(60), "the majority {n2, n3} removes n1");
        // The minority's node process shuts itself down: a downed node must stop serving.
        WaitUntil(() => ClusterSeenBy("n1") is null, TimeSpan.FromSeconds(60), "n1's node process stops");
        // ... and says so, with the status that makes its supervisor start it again (it is wanted back as a standby).
        WaitUntil(() => File.ReadAllText(Path.Combine(_lab.StateDir, "n1", "node.log")).Contains("was downed by the cluster", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "n1's node process exits saying it was downed");
        Assert.Contains("exiting with status 3 so that its supervisor starts it again", File.ReadAllText(Path.Combine(_lab.StateDir, "n1", "node.log")));
        output.WriteLine($"partition of n1: majority removed it and n1 stopped within {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(["n2", "n3"], UpMembers(ClusterSeenBy("n3")!.Value));
    }
}
