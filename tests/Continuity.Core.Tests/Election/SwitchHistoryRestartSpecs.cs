using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Apps;
using Continuity.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Core.Tests.Election;

/// <summary>The durable switch history: two in-process data nodes over real Akka.Remote, each with a state directory
/// of its own, stopped and started again on the same directories (a restart of every node, so the owner moves too).</summary>
[Collection("cluster")]
public sealed class SwitchHistoryRestartSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    private sealed record Node(ActorSystem System, FakePlatform Platform, IActorRef Guardian, string Name)
    {
        public string Address => Cluster.Get(System).SelfAddress.ToString();
    }

    private static readonly AppSpec App = TestConfig.App("kv");
    private readonly string[] _stateDirs = [TestConfig.TempDir(), TestConfig.TempDir()];
    private readonly List<Node> _nodes = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await StopAll();

    private async Task StopAll()
    {
        foreach (var n in _nodes) await n.System.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        _nodes.Clear();
    }

    private void StartAll()
    {
        for (var i = 0; i < 2; i++)
        {
            var system = ActorSystem.Create("continuity", TestConfig.Node($$"""
                akka.cluster.roles = [data, "name:n{{i + 1}}"]
                akka.cluster.min-nr-of-members = 2
                akka.loglevel = WARNING
                """));
            var cluster = Cluster.Get(system);
            _ = cluster.JoinAsync(_nodes.Count == 0 ? cluster.SelfAddress : Cluster.Get(_nodes[0].System).SelfAddress);
            var platform = new FakePlatform();
            var guardian = ContinuityApps.Start(system, [App], platform.Services, _stateDirs[i], $"n{i + 1}");
            _nodes.Add(new Node(system, platform, guardian, $"n{i + 1}"));
        }
    }

    private static Task<AppsProtocol.SwitchHistory?> History(Node n) =>
        n.Guardian.Ask<AppsProtocol.SwitchHistory>(new AppsProtocol.GetSwitchHistory(), TimeSpan.FromSeconds(10))
            .ContinueWith(t => (AppsProtocol.SwitchHistory?)t.Result);

    [Fact]
    public async Task A_switch_is_still_in_the_history_after_every_node_restarted()
    {
        StartAll();
        var view = await Poll.Eventually(
            () => _nodes[0].Guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(5)).ContinueWith(t => (AppView?)t.Result.Apps[0]),
            v => v.State == "protected" && v.Standbys.Count == 1, TimeSpan.FromSeconds(60), "kv protected");
        var primary = _nodes.Single(n => n.Address == view.Primary);
        var target = _nodes.Single(n => n != primary);
        var started = await target.Guardian.Ask<object>(new AppsProtocol.Switch(App.Name, target.Name, "planned switch before the restart"),
            TimeSpan.FromSeconds(60));
        Assert.IsType<AppsProtocol.SwitchStarted>(started);
        var before = await Poll.Eventually(() => History(primary), h => h.Switches.Any(s => s.Switch.Reason == "planned switch before the restart"),
            TimeSpan.FromSeconds(30), "the switch in the history");
        var kept = before.Switches.Single(s => s.Switch.Reason == "planned switch before the restart");
        output.WriteLine($"before the restart: {kept}");

        // Both nodes stop (the owner with them) and start again on the same state directories, with new addresses.
        await StopAll();
        StartAll();

        var after = await Poll.Eventually(() => History(_nodes[0]), h => h.Switches.Count > 0 && h.Gaps.Count == 0,
            TimeSpan.FromSeconds(60), "the history after the restart");
        var again = Assert.Single(after.Switches, s => s.Switch.Epoch == kept.Switch.Epoch);
        output.WriteLine($"after the restart: {again}");
        Assert.Equal(("kv", primary.Name, target.Name, "planned switch before the restart", kept.Switch.At),
            (again.App, again.Switch.From, again.Switch.To, again.Switch.Reason, again.Switch.At));
        Assert.Equal(kept.Switch.Phases.Keys.Order(), again.Switch.Phases.Keys.Order());
        // Each node kept it: either one alone would do.
        foreach (var dir in _stateDirs)
            Assert.Contains("planned switch before the restart", File.ReadAllText(Path.Combine(dir, "apps", "kv", "switches.jsonl")));
    }
}
