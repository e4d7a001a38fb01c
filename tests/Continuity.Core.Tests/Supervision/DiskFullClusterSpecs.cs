using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Apps;
using Continuity.Core.Supervision;
using Continuity.Core.Tests.Support;
using Xunit;

namespace Continuity.Core.Tests.Supervision;

/// <summary>The resource rule for a primary whose disk fills: three in-process data nodes over real Akka.Remote, whose
/// fake platforms report the free share of their disk (the real reading is in <see cref="DiskSpaceSpecs"/>).</summary>
[Collection("cluster")]
public sealed class DiskFullClusterSpecs : IAsyncLifetime
{
    private sealed record Node(ActorSystem System, FakePlatform Platform, IActorRef Guardian, string Name)
    {
        public string Address => Cluster.Get(System).SelfAddress.ToString();
    }

    private static readonly AppSpec App = TestConfig.App("kv", TimeSpan.FromSeconds(1));
    private readonly List<Node> _nodes = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in _nodes) await n.System.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
    }

    private async Task StartCluster(DiskFullAction action)
    {
        var supervision = new ResourceRules(5, action, TimeSpan.FromSeconds(1));
        for (var i = 1; i <= 3; i++)
        {
            var system = ActorSystem.Create("continuity", TestConfig.Node($$"""
                akka.cluster.roles = [data, "name:n{{i}}"]
                akka.cluster.min-nr-of-members = 3
                akka.loglevel = WARNING
                """));
            var cluster = Cluster.Get(system);
            _ = cluster.JoinAsync(_nodes.Count == 0 ? cluster.SelfAddress : Cluster.Get(_nodes[0].System).SelfAddress);
            var platform = new FakePlatform();
            var guardian = ContinuityApps.Start(system, [App], platform.Services, TestConfig.TempDir(), $"n{i}", supervision: supervision);
            _nodes.Add(new Node(system, platform, guardian, $"n{i}"));
        }
    }

    private Task<AppView?> View() =>
        _nodes[0].Guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(5)).ContinueWith(t => (AppView?)t.Result.Apps[0]);

    private async Task<Node> Protected()
    {
        var view = await Poll.Eventually(View, v => v.State == "protected" && v.Standbys.Count == 2, TimeSpan.FromSeconds(60), "kv protected");
        return _nodes.Single(n => n.Address == view.Primary);
    }

    [Fact]
    public async Task A_primary_whose_disk_fills_hands_over_to_a_standby_with_room_by_a_planned_switch()
    {
        await StartCluster(DiskFullAction.Switch);
        var primary = await Protected();
        var cramped = _nodes.First(n => n != primary);
        cramped.Platform.DiskFreePercent = 3; // a standby without room is no target either
        primary.Platform.DiskFreePercent = 2;

        var roomy = _nodes.Single(n => n != primary && n != cramped);
        var after = await Poll.Eventually(View, v => v.Primary == roomy.Address && v.LastSwitch is not null,
            TimeSpan.FromSeconds(30), "switched to the standby with room");
        Assert.Equal($"supervision: the disk of primary {primary.Name} has 2% free, below min-free-disk-percent = 5", after.LastSwitch!.Reason);
        Assert.Equal(0, after.LastSwitch.PacketsReplayed); // a planned switch: the final checkpoint covers everything
        await Poll.Eventually(View, v => v.Alarm is null && v.State == "protected", TimeSpan.FromSeconds(30), "alarm cleared on the new primary");
    }

    [Fact]
    public async Task With_on_disk_full_alarm_the_primary_stays_and_the_alarm_names_its_disk_until_space_is_freed()
    {
        await StartCluster(DiskFullAction.Alarm);
        var primary = await Protected();
        primary.Platform.DiskFreePercent = 1;

        var alarmed = await Poll.Eventually(View, v => v.Alarm?.Contains("min-free-disk-percent") == true, TimeSpan.FromSeconds(30), "the disk alarm");
        Assert.Equal($"the disk of primary {primary.Name} has 1% free, below min-free-disk-percent = 5 (on-disk-full = alarm): free space on it",
            alarmed.Alarm);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(primary.Address, (await View())!.Primary);

        primary.Platform.DiskFreePercent = 40;
        await Poll.Eventually(View, v => v.Alarm?.Contains("min-free-disk-percent") != true, TimeSpan.FromSeconds(30), "alarm cleared once space is freed");
    }
}
