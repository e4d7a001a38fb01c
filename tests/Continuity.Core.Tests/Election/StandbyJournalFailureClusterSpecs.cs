using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Continuity.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Core.Tests.Election;

/// <summary>
/// Three data nodes in one process (real Akka.Remote on 127.0.0.1, fake OS adapters), each with its SQLite journal on a
/// tiny tmpfs of its own; the test fills the file system of one standby.
/// </summary>
[Collection("cluster")]
public sealed class StandbyJournalFailureClusterSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    private sealed record Node(ActorSystem System, FakePlatform Platform, TinyDisk Disk, IActorRef Guardian, string Name)
    {
        public string Address => Cluster.Get(System).SelfAddress.ToString();
    }

    private readonly List<Node> _nodes = new();
    private static readonly AppSpec App = TestConfig.App("kv");

    public async Task InitializeAsync()
    {
        for (var i = 0; i < 3; i++)
        {
            var disk = new TinyDisk();
            var config = ConfigurationFactory.ParseString("""
                    akka.cluster.roles = [data]
                    akka.coordinated-shutdown.run-by-actor-system-terminate = off
                    akka.loglevel = WARNING
                    akka.persistence.journal.plugin = "akka.persistence.journal.sql"
                    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
                    continuity.persistence.retry-interval = 2s
                    """)
                .WithFallback(ContinuityApps.PersistenceConfig(TestConfig.Reference, disk.Dir))
                .WithFallback(TestConfig.Node())
                .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
            var system = ActorSystem.Create("continuity", config);
            var cluster = Cluster.Get(system);
            await cluster.JoinAsync(_nodes.Count == 0 ? cluster.SelfAddress : Cluster.Get(_nodes[0].System).SelfAddress);
            var platform = new FakePlatform();
            var guardian = ContinuityApps.Start(system, [App], platform.Services, TestConfig.TempDir(), $"n{i + 1}");
            _nodes.Add(new Node(system, platform, disk, guardian, $"n{i + 1}"));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var n in _nodes) await n.System.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        foreach (var n in _nodes) n.Disk.Dispose();
    }

    private static Task<AppView?> View(Node n) =>
        n.Guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(5)).ContinueWith(t => (AppView?)t.Result.Apps[0]);

    private static async Task<OwnerProtocol.NodeStatus?> Status(Node n)
    {
        var actor = await n.System.ActorSelection($"/user/{ContinuityApps.GuardianName}/{AppsGuardian.AppActorName(App.Name)}")
            .ResolveOne(TimeSpan.FromSeconds(3));
        return await actor.Ask<OwnerProtocol.NodeStatus>(new OwnerProtocol.GetNodeStatus(App.Name), TimeSpan.FromSeconds(3));
    }

    private static string Show(AppView v) =>
        $"{v.State} epoch {v.Epoch} primary {v.Primary} standbys [{string.Join(", ", v.Standbys.Select(s => $"{s.NodeName}{(s.Ready ? " ready" : "")}"))}] alarm {v.Alarm}";

    [Fact]
    public async Task A_standby_whose_disk_fills_is_dropped_with_an_alarm_is_never_elected_and_rejoins_once_space_is_freed()
    {
        // 1. Protected by two standbys; packets reach the program once both logged them.
        var view = await Poll.Eventually(() => View(_nodes[0]), v => v.State == "protected" && v.Standbys.Count == 2,
            TimeSpan.FromSeconds(60), "app protected by two standbys");
        var primary = _nodes.Single(n => n.Address == view.Primary);
        var (victim, other) = (_nodes.First(n => n != primary), _nodes.Last(n => n != primary));
        output.WriteLine($"primary {primary.Name}, disk fills on {victim.Name}, {other.Name} stays healthy");
        var ids = primary.Platform.Queue.Push([1], [2]);
        await Poll.Eventually(() => Task.FromResult<object?>(primary.Platform.Queue.Accepted == ids[^1] ? "released" : null), _ => true,
            TimeSpan.FromSeconds(10), "first packets released");

        // 2. The victim's disk fills; the next packets cannot be logged there.
        victim.Disk.Fill();
        var held = primary.Platform.Queue.Push(Enumerable.Range(3, 4).Select(i => Enumerable.Repeat((byte)i, 16 * 1024).ToArray()).ToArray());

        var dropped = await Poll.Eventually(() => View(other), v => v.Standbys.Count == 1 && v.Alarm is not null,
            TimeSpan.FromSeconds(30), "the owner drops the standby whose journal failed");
        output.WriteLine($"dropped: {Show(dropped)}");
        Assert.Equal(other.Address, dropped.Standbys[0].Node);
        Assert.Contains($"standby {victim.Name} dropped: its journal failed: SQLite journal", dropped.Alarm);
        Assert.Contains("database or disk is full", dropped.Alarm);

        // 3. The primary releases them once the remaining standby has logged them (its acks follow its writes).
        await Poll.Eventually(() => Task.FromResult<object?>(primary.Platform.Queue.Accepted == held[^1] ? "released" : null), _ => true,
            TimeSpan.FromSeconds(10), "held packets released after the drop");
        Assert.True((await Status(other))!.LogTail >= 6);
        var victimStatus = (await Status(victim))!;
        Assert.Contains("database or disk is full", victimStatus.JournalFailure);
        Assert.True(victimStatus.LogTail < 6);

        // 4. The primary dies: the healthy standby takes over with every released packet; the victim is not elected.
        await primary.System.Terminate();
        Cluster.Get(other.System).Down(Akka.Actor.Address.Parse(primary.Address));
        var call = await other.Platform.Takeover.Called.Task.WaitAsync(TimeSpan.FromSeconds(40));
        Assert.Equal(Enumerable.Range((int)call.Mark + 1, 6 - (int)call.Mark).Select(x => (long)x), call.Log.Select(p => p.Seq));
        Assert.False(victim.Platform.Takeover.Called.Task.IsCompleted);
        var after = await Poll.Eventually(() => View(other), v => v.Primary == other.Address && v.LastSwitch is not null,
            TimeSpan.FromSeconds(30), "the healthy standby is primary");
        output.WriteLine($"after the takeover: {Show(after)}");
        Assert.Empty(after.Standbys); // the victim is still out
        Assert.Contains($"standby {victim.Name} dropped", after.Alarm);

        // 5. Space is freed: the victim's next attempt proves a write, it rejoins not ready, and a fresh checkpoint makes it ready.
        victim.Disk.Free();
        var back = await Poll.Eventually(() => View(other), v => v.Standbys.Count == 1 && v.State == "protected",
            TimeSpan.FromSeconds(90), "the victim rejoins and becomes ready after a checkpoint");
        output.WriteLine($"back: {Show(back)}");
        Assert.Equal(victim.Address, back.Standbys[0].Node);
        Assert.Null(back.Alarm);
        var rejoined = (await Status(victim))!;
        Assert.Null(rejoined.JournalFailure);
        Assert.True(rejoined.LogComplete);
        Assert.Equal(back.Epoch, rejoined.Newest!.Epoch);
    }
}
