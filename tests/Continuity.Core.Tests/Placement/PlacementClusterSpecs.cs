using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Apps;
using Continuity.Core.Placement;
using Continuity.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Core.Tests.Placement;

/// <summary>Three applications on in-process data nodes over real Akka.Remote, with fake OS adapters.</summary>
[Collection("cluster")]
public sealed class PlacementClusterSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    private sealed record Node(ActorSystem System, FakePlatform Platform, IActorRef Guardian, string Name)
    {
        public string Address => Cluster.Get(System).SelfAddress.ToString();
    }

    private static readonly AppSpec[] Apps =
        new[] { "a", "b", "c" }.Select(n => TestConfig.App(n, TimeSpan.FromSeconds(1))).ToArray();

    private readonly List<Node> _nodes = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in _nodes) await n.System.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
    }

    /// <param name="minMembers">Members needed before any is up: owners then place with every node in view.</param>
    private async Task<Node> Start(string name, PlacementSettings placement, int minMembers = 1)
    {
        // run-by-actor-system-terminate off: terminating a node's system is a crash (no graceful leave).
        var system = ActorSystem.Create("continuity", TestConfig.Node($$"""
            akka.cluster.roles = [data, "name:{{name}}"]
            akka.cluster.min-nr-of-members = {{minMembers}}
            akka.coordinated-shutdown.run-by-actor-system-terminate = off
            akka.loglevel = WARNING
            """));
        var cluster = Cluster.Get(system);
        var seed = _nodes.FirstOrDefault(n => !n.System.WhenTerminated.IsCompleted);
        _ = cluster.JoinAsync(seed is null ? cluster.SelfAddress : Cluster.Get(seed.System).SelfAddress);
        var platform = new FakePlatform();
        var guardian = ContinuityApps.Start(system, Apps, platform.Services, TestConfig.TempDir(), name, placement);
        var node = new Node(system, platform, guardian, name);
        _nodes.Add(node);
        return node;
    }

    private static PlacementSettings Rebalancing(params (string App, string[] Prefer)[] prefer) =>
        new(true, TimeSpan.FromSeconds(2), prefer.ToDictionary(p => p.App, p => (IReadOnlyList<string>)p.Prefer));

    private static Task<AppsView?> View(Node n) =>
        n.Guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(5)).ContinueWith(t => (AppsView?)t.Result);

    /// <summary>Node name of each application's primary, in application order; "-" for none.</summary>
    private string Primaries(AppsView v) =>
        string.Join(" ", v.Apps.Select(a => _nodes.FirstOrDefault(n => n.Address == a.Primary)?.Name ?? "-"));

    private static bool AllProtected(AppsView v, int standbys) => v.Apps.All(a => a.State == "protected" && a.Standbys.Count == standbys);

    [Fact]
    public async Task Three_applications_spread_over_three_nodes_and_spread_again_after_a_crash_and_a_join()
    {
        var placement = Rebalancing();
        for (var i = 1; i <= 3; i++) await Start($"n{i}", placement, minMembers: 3);

        // 1. Placed together at the start, each application gets a node of its own; nothing had to move.
        var view = await Poll.Eventually(() => View(_nodes[0]), v => AllProtected(v, 2), TimeSpan.FromSeconds(60), "three protected apps");
        output.WriteLine($"start: {Primaries(view)}");
        Assert.Equal(3, view.Apps.Select(a => a.Primary).Distinct().Count());
        Assert.Equal(3, _nodes.Sum(n => n.Platform.Launcher.Launched));
        Assert.All(view.Apps, a => Assert.Null(a.LastSwitch));

        // 2. The node of b crashes: b fails over to a survivor; two nodes now serve three applications (2 + 1), a
        //    difference of one, which is not worth a switch.
        var crashed = _nodes.Single(n => n.Address == view.Apps[1].Primary);
        await crashed.System.Terminate();
        var survivor = _nodes.First(n => n != crashed);
        Cluster.Get(survivor.System).Down(Address.Parse(crashed.Address));
        view = await Poll.Eventually(() => View(survivor), v => AllProtected(v, 1) && v.Apps[1].LastSwitch is not null,
            TimeSpan.FromSeconds(60), "b taken over after the crash");
        output.WriteLine($"after the crash: {Primaries(view)}");
        Assert.DoesNotContain(view.Apps, a => a.Primary == crashed.Address);
        Assert.Equal(crashed.Name, view.Apps[1].LastSwitch!.From);

        // 3. A fresh node joins: the node serving two applications hands one over by a planned switch.
        var fresh = await Start("n4", placement);
        view = await Poll.Eventually(() => View(fresh),
            v => AllProtected(v, 2) && v.Apps.Select(a => a.Primary).Distinct().Count() == 3,
            TimeSpan.FromSeconds(90), "one application moved to the fresh node");
        output.WriteLine($"after the join: {Primaries(view)}");
        var moved = Assert.Single(view.Apps, a => a.Primary == fresh.Address);
        Assert.StartsWith("rebalance: ", moved.LastSwitch!.Reason);
        Assert.Contains("serves 2 applications, n4 0", moved.LastSwitch.Reason);
        // A planned switch ships a final checkpoint (nothing to replay), and one move was enough.
        Assert.Equal(0, moved.LastSwitch.PacketsReplayed);
        Assert.Single(view.Apps, a => a.LastSwitch?.Reason.StartsWith("rebalance") == true);
    }

    [Fact]
    public async Task An_application_returns_to_its_preferred_node_when_that_node_comes_back()
    {
        var placement = Rebalancing(("a", ["n1"]));
        for (var i = 1; i <= 3; i++) await Start($"n{i}", placement, minMembers: 3);
        var view = await Poll.Eventually(() => View(_nodes[0]), v => AllProtected(v, 2), TimeSpan.FromSeconds(60), "three protected apps");
        Assert.Equal(_nodes[0].Address, view.Apps[0].Primary);

        // n1 crashes and comes back as a new incarnation (new port, same name).
        await _nodes[0].System.Terminate();
        Cluster.Get(_nodes[1].System).Down(Address.Parse(_nodes[0].Address));
        view = await Poll.Eventually(() => View(_nodes[1]), v => v.Apps[0].Primary is { } p && p != _nodes[0].Address && v.Apps[0].State == "protected",
            TimeSpan.FromSeconds(60), "a failed over");
        output.WriteLine($"after the crash: {Primaries(view)}");

        var back = await Start("n1", placement);
        view = await Poll.Eventually(() => View(back), v => v.Apps[0].Primary == back.Address && AllProtected(v, 2),
            TimeSpan.FromSeconds(90), "a back on n1");
        output.WriteLine($"after n1 came back: {Primaries(view)}");
        Assert.Equal("rebalance: back to preferred node n1", view.Apps[0].LastSwitch!.Reason);
    }
}
