using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Continuity.Core.Supervision;
using Continuity.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Core.Tests.Supervision;

/// <summary>The rule for a standby whose journal falls behind: three in-process data nodes over real Akka.Remote, each
/// with a journal whose writes the test can make hang (<see cref="GatedJournal"/>, as a stalled disk does); the standby's
/// log, its acknowledgements, the primary's capture and the owner are the real ones.</summary>
[Collection("cluster")]
public sealed class StandbyLagClusterSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    private sealed record Node(ActorSystem System, FakePlatform Platform, IActorRef Guardian, string Name, GatedJournal.Gate Gate)
    {
        public string Address => Cluster.Get(System).SelfAddress.ToString();
    }

    private static readonly AppSpec App = TestConfig.App("kv");
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(2);
    private readonly List<Node> _nodes = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in _nodes)
        {
            n.Gate.Open();
            await n.System.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        }
    }

    private async Task StartCluster(StandbyLagAction action)
    {
        // The disk rule is off: only the lag rule acts.
        var supervision = new ResourceRules(0, DiskFullAction.Alarm, TimeSpan.FromSeconds(1), Bound, 0, action);
        for (var i = 1; i <= 3; i++)
        {
            var gate = $"lag-{Guid.NewGuid():N}";
            var system = ActorSystem.Create("continuity", GatedJournal.Config(gate).WithFallback(TestConfig.Node($$"""
                akka.cluster.roles = [data, "name:n{{i}}"]
                akka.cluster.min-nr-of-members = 3
                akka.loglevel = WARNING
                """)));
            var cluster = Cluster.Get(system);
            _ = cluster.JoinAsync(_nodes.Count == 0 ? cluster.SelfAddress : Cluster.Get(_nodes[0].System).SelfAddress);
            var platform = new FakePlatform();
            var guardian = ContinuityApps.Start(system, [App], platform.Services, TestConfig.TempDir(), $"n{i}", supervision: supervision);
            _nodes.Add(new Node(system, platform, guardian, $"n{i}", GatedJournal.GateNamed(gate)));
        }
    }

    private Task<AppView?> View() => View(_nodes[0]);

    private static Task<AppView?> View(Node n) =>
        n.Guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(5)).ContinueWith(t => (AppView?)t.Result.Apps[0]);

    private static string Show(AppView v) =>
        $"{v.State} epoch {v.Epoch} primary {v.Primary} standbys [{string.Join(", ", v.Standbys.Select(s => $"{s.NodeName}{(s.Ready ? " ready" : "")}"))}] alarm {v.Alarm}";

    private static async Task<IActorRef> AppActor(Node n) =>
        await n.System.ActorSelection($"/user/{ContinuityApps.GuardianName}/{AppsGuardian.AppActorName(App.Name)}").ResolveOne(TimeSpan.FromSeconds(3));

    private static async Task<OwnerProtocol.NodeStatus?> Status(Node n) =>
        await (await AppActor(n)).Ask<OwnerProtocol.NodeStatus>(new OwnerProtocol.GetNodeStatus(App.Name), TimeSpan.FromSeconds(3));

    private static async Task<IntrospectionProtocol.AppFigures?> Figures(Node n) =>
        await (await AppActor(n)).Ask<IntrospectionProtocol.AppFigures>(new IntrospectionProtocol.GetAppFigures(App.Name), TimeSpan.FromSeconds(3));

    private static Task Released(Node primary, uint packetId, string what) =>
        Poll.Eventually(() => Task.FromResult<object?>(primary.Platform.Queue.AnyAccepted && primary.Platform.Queue.Accepted >= packetId ? "released" : null),
            _ => true, TimeSpan.FromSeconds(30), what);

    /// <summary>Protected by two standbys, and a first batch of packets released: the primary, one standby, the other.</summary>
    /// <summary>The victim's journal hangs with packets 3..5 unwritten, until the owner drops it for lagging.</summary>
    private async Task DropForLagging(Node primary, Node victim)
    {
        victim.Gate.Close();
        primary.Platform.Queue.Push([3], [4], [5]);
        await Poll.Eventually(View, v => v.Standbys.Count == 1 && v.Alarm?.Contains("lagged") == true, TimeSpan.FromSeconds(30), "victim dropped");
    }

    private async Task<(Node Primary, Node Victim, Node Other)> Protected()
    {
        var view = await Poll.Eventually(View, v => v.State == "protected" && v.Standbys.Count == 2, TimeSpan.FromSeconds(60), "kv protected");
        var primary = _nodes.Single(n => n.Address == view.Primary);
        var (victim, other) = (_nodes.First(n => n != primary), _nodes.Last(n => n != primary));
        output.WriteLine($"primary {primary.Name}, journal hangs on {victim.Name}, {other.Name} stays healthy");
        var ids = primary.Platform.Queue.Push([1], [2]);
        await Released(primary, ids[^1], "first packets released");
        return (primary, victim, other);
    }

    [Fact]
    public async Task A_standby_whose_journal_stops_acknowledging_is_dropped_after_max_standby_lag_and_the_primary_releases_packets_again()
    {
        await StartCluster(StandbyLagAction.Drop);
        var (primary, victim, other) = await Protected();

        // 1. The victim's journal hangs: what it receives is never written, so never acknowledged, and the primary holds it.
        victim.Gate.Close();
        var held = primary.Platform.Queue.Push([3], [4], [5]);
        // The other standby acknowledges them within its journal write: a sample taken sooner shows it lagging too.
        var lagging = await Poll.Eventually(() => Figures(primary),
            f => f.StandbyLags?.Any(l => l.Node == victim.Address && l.Packets == 3 && l.OldestWait > TimeSpan.Zero) == true
                 && f.StandbyLags.Any(l => l.Node == other.Address && l.Packets == 0),
            TimeSpan.FromSeconds(10), "the primary's MIB shows the victim's lag, and none of the other standby");
        output.WriteLine($"lag figures: {string.Join(", ", lagging.StandbyLags!)}");
        Assert.True(lagging.PacketsReleased < 5, "the packets wait for the victim's acknowledgement");

        // 2. Past the bound the owner drops it, with an alarm naming it, and the primary releases what the other logged.
        var dropped = await Poll.Eventually(View, v => v.Standbys.Count == 1 && v.Alarm?.Contains("lagged") == true,
            TimeSpan.FromSeconds(30), "the owner drops the lagging standby");
        output.WriteLine($"dropped: {Show(dropped)}");
        Assert.Equal(other.Address, dropped.Standbys[0].Node);
        Assert.Contains($"standby {victim.Name} dropped: its journal lagged: its oldest unacknowledged packet has waited", dropped.Alarm);
        Assert.Contains("beyond max-standby-lag = 2s", dropped.Alarm);
        await Released(primary, held[^1], "held packets released after the drop");
        var victimStatus = (await Status(victim))!;
        Assert.False(victimStatus.LogComplete);
        Assert.Contains("beyond max-standby-lag = 2s", victimStatus.Behind);
        Assert.Equal(3, victimStatus.LogBacklog);
        Assert.Contains("max-standby-lag", (await Figures(victim))!.DroppedBehind);

        // 3. Packets flow on without it while its journal still hangs.
        var meanwhile = primary.Platform.Queue.Push([6], [7]);
        await Released(primary, meanwhile[^1], "packets released while the victim is out");

        // 4. Its journal comes back: once it has written what it received it is added back, and a fresh checkpoint (the
        // primary ships one to every standby that is not ready) makes it complete again; the alarm is gone.
        victim.Gate.Open();
        var back = await Poll.Eventually(View, v => v.State == "protected" && v.Standbys.Count == 2 && v.Alarm is null,
            TimeSpan.FromSeconds(60), "the victim is back, ready and complete");
        output.WriteLine($"back: {Show(back)}");
        var after = primary.Platform.Queue.Push([8]);
        await Released(primary, after[^1], "packets released with both standbys again");
        var rejoined = await Poll.Eventually(() => Status(victim), s => s.LogTail >= 8, TimeSpan.FromSeconds(10), "the victim logs again");
        Assert.True(rejoined.LogComplete);
        Assert.Null(rejoined.Behind);
    }

    [Fact]
    public async Task With_on_standby_lag_alarm_a_lagging_standby_is_alarmed_but_kept_and_the_primary_waits_for_it()
    {
        await StartCluster(StandbyLagAction.Alarm);
        var (primary, victim, _) = await Protected();

        victim.Gate.Close();
        var held = primary.Platform.Queue.Push([3], [4]);
        var alarmed = await Poll.Eventually(View, v => v.Alarm?.Contains("lags") == true, TimeSpan.FromSeconds(30), "the lag alarm");
        output.WriteLine($"alarmed: {Show(alarmed)}");
        Assert.StartsWith($"standby {victim.Name} lags: its oldest unacknowledged packet has waited", alarmed.Alarm);
        Assert.EndsWith("beyond max-standby-lag = 2s (on-standby-lag = alarm): the primary holds the program's input for it", alarmed.Alarm);
        // Two more checks of the rule: still a standby, still waited for.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var still = (await View())!;
        Assert.Equal(2, still.Standbys.Count);
        Assert.Contains(still.Standbys, s => s.Node == victim.Address);
        Assert.True(!primary.Platform.Queue.AnyAccepted || primary.Platform.Queue.Accepted < held[0], "nothing released past the victim");
        Assert.True((await Status(victim))!.LogComplete);

        victim.Gate.Open();
        await Released(primary, held[^1], "released once the victim logged them");
        await Poll.Eventually(View, v => v.Alarm is null && v.Standbys.Count == 2, TimeSpan.FromSeconds(30), "the alarm clears");
    }

    [Fact]
    public async Task A_standby_dropped_for_lagging_is_not_elected_while_it_is_out_even_when_no_other_node_is_left()
    {
        await StartCluster(StandbyLagAction.Drop);
        var (primary, victim, other) = await Protected();

        // Dropped while 3..5 are still unwritten on it; 6 and 7 are released without it. Its journal holds 1..2 only,
        // a log that merely ends early (no hole in it): the owner must still not elect it.
        await DropForLagging(primary, victim);
        var meanwhile = primary.Platform.Queue.Push([6], [7]);
        await Released(primary, meanwhile[^1], "released without the victim");

        await other.System.Terminate();
        Cluster.Get(primary.System).Down(Akka.Actor.Address.Parse(other.Address));
        await Poll.Eventually(() => View(primary), v => v.Standbys.Count == 0, TimeSpan.FromSeconds(30), "the healthy standby is gone");
        await primary.System.Terminate();
        Cluster.Get(victim.System).Down(Akka.Actor.Address.Parse(primary.Address));

        var stuck = await Poll.Eventually(() => View(victim), v => v.Alarm?.Contains("no node can take over without loss") == true,
            TimeSpan.FromSeconds(60), "the owner refuses to elect the victim");
        output.WriteLine($"after both died: {Show(stuck)}");
        Assert.Null(stuck.Primary);
        Assert.False(victim.Platform.Takeover.Called.Task.IsCompleted);
    }

    [Fact]
    public async Task A_dropped_standby_that_comes_back_is_resynchronised_but_not_elected_before_a_checkpoint_covers_its_hole()
    {
        await StartCluster(StandbyLagAction.Drop);
        var (primary, victim, other) = await Protected();

        // Dropped for lagging; packets 3..7 are released without it.
        await DropForLagging(primary, victim);
        // No checkpoint can cover what it misses from now on.
        primary.Platform.Criu.Fail = true;
        var meanwhile = primary.Platform.Queue.Push([6], [7]);
        await Released(primary, meanwhile[^1], "released without the victim");

        // It comes back: added to the standbys again, its stream resumed where the primary is, so it logs new packets...
        victim.Gate.Open();
        var readded = await Poll.Eventually(View, v => v.Standbys.Count == 2 && v.Alarm?.Contains("lagged") != true, TimeSpan.FromSeconds(30), "victim added back");
        // Shown as it is: not ready (its checkpoint of this epoch is older than the hole), so only degraded.
        Assert.False(readded.Standbys.Single(s => s.Node == victim.Address).Ready);
        Assert.Equal("degraded", readded.State);
        var later = primary.Platform.Queue.Push([8], [9]);
        await Released(primary, later[^1], "released once both standbys logged them");
        var resumed = await Poll.Eventually(() => Status(victim), s => s.LogTail >= 9, TimeSpan.FromSeconds(10), "the victim logs the resumed stream");
        output.WriteLine($"victim: log to {resumed.LogTail}, complete {resumed.LogComplete}, checkpoint {resumed.Newest?.Id} mark {resumed.Newest?.Mark}");
        // ...but packets 6 and 7 are a hole in its log, and no checkpoint covers it.
        Assert.False(resumed.LogComplete);

        // The healthy standby and then the primary die: the victim alone must not take over (a replay of its log would
        // skip 6 and 7, which the program already consumed).
        await other.System.Terminate();
        Cluster.Get(primary.System).Down(Akka.Actor.Address.Parse(other.Address));
        await Poll.Eventually(() => View(victim), v => v.Standbys.Count == 1, TimeSpan.FromSeconds(30), "the healthy standby is gone");
        await primary.System.Terminate();
        Cluster.Get(victim.System).Down(Akka.Actor.Address.Parse(primary.Address));

        var stuck = await Poll.Eventually(() => View(victim), v => v.Alarm?.Contains("no node can take over without loss") == true,
            TimeSpan.FromSeconds(60), "the owner refuses to elect the victim");
        output.WriteLine($"after both died: {Show(stuck)}");
        Assert.Null(stuck.Primary);
        Assert.Contains($"{victim.Name} (its log misses packets until a fresh checkpoint)", stuck.Alarm);
        Assert.False(victim.Platform.Takeover.Called.Task.IsCompleted);
    }
}
