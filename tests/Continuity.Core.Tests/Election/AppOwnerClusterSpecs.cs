using Continuity.Core.Tests.Support;
using System.Formats.Tar;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Xunit;
using Xunit.Abstractions;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Election;

[CollectionDefinition("cluster", DisableParallelization = true)]
public sealed class ClusterCollection;

/// <summary>Three data nodes in one process, talking over real Akka.Remote on 127.0.0.1, with fake OS adapters.</summary>
[Collection("cluster")]
public sealed class AppOwnerClusterSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    private sealed record Node(ActorSystem System, FakePlatform Platform, string StateDir, IActorRef Guardian, string Name)
    {
        public string Address => Cluster.Get(System).SelfAddress.ToString();
    }

    private readonly List<Node> _nodes = new();
    private static readonly AppSpec App = TestConfig.App("kv");

    public async Task InitializeAsync()
    {
        for (var i = 0; i < 3; i++)
        {
            // run-by-actor-system-terminate off: terminating a node's system is a crash (no graceful leave).
            var system = ActorSystem.Create("continuity", TestConfig.Node($$"""
                akka.cluster.roles = [data, "name:n{{_nodes.Count + 1}}"]
                akka.coordinated-shutdown.run-by-actor-system-terminate = off
                akka.loglevel = WARNING
                """));
            var cluster = Cluster.Get(system);
            await cluster.JoinAsync(_nodes.Count == 0 ? cluster.SelfAddress : Cluster.Get(_nodes[0].System).SelfAddress);
            var platform = new FakePlatform();
            var dir = TestConfig.TempDir();
            var guardian = ContinuityApps.Start(system, [App], platform.Services, dir, $"n{i + 1}");
            _nodes.Add(new Node(system, platform, dir, guardian, $"n{i + 1}"));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var n in _nodes) await n.System.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
    }

    private static Task<AppView?> View(Node n) =>
        n.Guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(5)).ContinueWith(t => (AppView?)t.Result.Apps[0]);

    private static async Task<IActorRef> AppActor(Node n) =>
        await n.System.ActorSelection($"/user/{ContinuityApps.GuardianName}/{AppsGuardian.AppActorName(App.Name)}").ResolveOne(TimeSpan.FromSeconds(3));

    [Fact]
    public async Task Owner_elects_the_standby_with_the_newest_checkpoint_when_the_primary_is_removed()
    {
        // 1. The owner starts the program on one node; the checkpoint reaches both standbys.
        var view = await Poll.Eventually(() => View(_nodes[0]), v => v.State == "protected" && v.Standbys.Count == 2,
            TimeSpan.FromSeconds(60), "app protected by two standbys");
        output.WriteLine($"before: {view}");
        var primary = _nodes.Single(n => n.Address == view.Primary);
        var (newer, older) = (_nodes.First(n => n != primary), _nodes.Last(n => n != primary));
        Assert.Equal(1, primary.Platform.Launcher.Launched);
        Assert.True(primary.Platform.Vip.Up);

        // 2. Ten packets reach the program once both standbys logged them.
        var ids = primary.Platform.Queue.Push(Enumerable.Range(1, 10).Select(i => new[] { (byte)i }).ToArray());
        await Poll.Eventually(() => Task.FromResult<object?>(primary.Platform.Queue.Accepted == ids[^1] ? "released" : null), _ => true,
            TimeSpan.FromSeconds(10), "all packets released");

        // 3. One standby got a newer checkpoint (mark 4) than the other (mark 0): it must be the successor.
        var src = TestConfig.TempDir();
        await File.WriteAllTextAsync(Path.Combine(src, "core-1.img"), "newer");
        var ms = new MemoryStream();
        await TarFile.CreateFromDirectoryAsync(src, ms, includeBaseDirectory: false);
        var archive = ms.ToArray();
        var newerApp = await AppActor(newer);
        newerApp.Tell(new CheckpointChunk(App.Name, view.Epoch, "e1-newer", 4, 0, 1, archive, SHA256.HashData(archive)));
        await Poll.Eventually(() => newerApp.Ask<OwnerProtocol.NodeStatus>(new OwnerProtocol.GetNodeStatus(App.Name), TimeSpan.FromSeconds(3))!,
            s => s.Newest?.Id == "e1-newer" && s.LogTail == 10, TimeSpan.FromSeconds(10), "newer checkpoint stored");

        // 4. The primary's machine dies; the membership removes it.
        await primary.System.Terminate();
        Cluster.Get(newer.System).Down(Address.Parse(primary.Address));

        var call = await newer.Platform.Takeover.Called.Task.WaitAsync(TimeSpan.FromSeconds(40));
        Assert.EndsWith(Path.Combine("e1-newer", "image"), call.CheckpointDir);
        Assert.Equal(4, call.Mark);
        Assert.Equal([5L, 6, 7, 8, 9, 10], call.Log.Select(p => p.Seq));
        Assert.Equal([5, 6, 7, 8, 9, 10], call.Log.Select(p => (int)p.Packet[0]));
        Assert.False(older.Platform.Takeover.Called.Task.IsCompleted);

        var after = await Poll.Eventually(() => View(older), v => v.Primary == newer.Address && v.LastSwitch is not null && v.Standbys.Count == 1,
            TimeSpan.FromSeconds(30), "new primary in the view");
        output.WriteLine($"after: {after}");
        Assert.Equal(view.Epoch + 1, after.Epoch);
        Assert.Equal(6, after.LastSwitch!.PacketsReplayed);
        // The owner that decided may have died with the primary; the switch still names whom it replaced.
        Assert.Equal(primary.Name, after.LastSwitch.From);
        Assert.Equal(older.Address, after.Standbys[0].Node);
        // The new primary ships a checkpoint of its own epoch: the remaining standby becomes ready again.
        await Poll.Eventually(() => View(older), v => v.State == "protected", TimeSpan.FromSeconds(20), "protected again");
        Assert.Equal(1, newer.Platform.Queues.Count); // capture installed during the takeover
    }

    [Fact]
    public async Task A_planned_switch_ships_a_final_checkpoint_and_moves_the_program_without_replay()
    {
        var view = await Poll.Eventually(() => View(_nodes[0]), v => v.State == "protected" && v.Standbys.Count == 2,
            TimeSpan.FromSeconds(60), "app protected by two standbys");
        var primary = _nodes.Single(n => n.Address == view.Primary);
        var target = _nodes.First(n => n != primary);
        var ids = primary.Platform.Queue.Push([1], [2], [3]);
        await Poll.Eventually(() => Task.FromResult<object?>(primary.Platform.Queue.Accepted == ids[^1] ? "released" : null), _ => true,
            TimeSpan.FromSeconds(10), "all packets released");

        var reply = await target.Guardian.Ask<object>(new AppsProtocol.Switch(App.Name, target.Name), TimeSpan.FromSeconds(60));
        var started = Assert.IsType<AppsProtocol.SwitchStarted>(reply);
        Assert.Equal((primary.Name, target.Name, view.Epoch + 1), (started.From, started.To, started.Epoch));

        var call = await target.Platform.Takeover.Called.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3, call.Mark);   // the final checkpoint covers every packet the old primary delivered
        Assert.Empty(call.Log);       // so nothing is replayed
        Assert.False(primary.Platform.Vip.Up);
        Assert.NotEmpty(primary.Platform.Launcher.Killed);

        var after = await Poll.Eventually(() => View(primary), v => v.Primary == target.Address && v.LastSwitch is not null && v.State == "protected",
            TimeSpan.FromSeconds(30), "target is primary, old primary a ready standby");
        Assert.Contains(after.Standbys, s => s.Node == primary.Address);
        Assert.Equal("planned switch", after.LastSwitch!.Reason);
    }

    [Fact]
    public async Task A_switch_to_a_node_that_is_no_standby_is_refused()
    {
        await Poll.Eventually(() => View(_nodes[0]), v => v.Primary is not null, TimeSpan.FromSeconds(60), "a primary");
        var reply = await _nodes[0].Guardian.Ask<object>(new AppsProtocol.Switch(App.Name, "nowhere"), TimeSpan.FromSeconds(10));
        Assert.IsType<AppsProtocol.Rejected>(reply);
        var unknown = await _nodes[0].Guardian.Ask<object>(new AppsProtocol.CheckpointNow("nope"), TimeSpan.FromSeconds(10));
        Assert.IsType<AppsProtocol.Rejected>(unknown);
    }

    [Fact]
    public async Task While_recovery_is_paused_a_lost_primary_is_not_replaced_and_resuming_recovers_every_logged_packet()
    {
        var view = await Poll.Eventually(() => View(_nodes[0]), v => v.State == "protected" && v.Standbys.Count == 2,
            TimeSpan.FromSeconds(60), "app protected by two standbys");
        var primary = _nodes.Single(n => n.Address == view.Primary);
        var survivor = _nodes.First(n => n != primary);

        var paused = await survivor.Guardian.Ask<AppsProtocol.RecoveryPaused>(new AppsProtocol.PauseRecovery(App.Name, true), TimeSpan.FromSeconds(10));
        Assert.True(paused.Paused && paused.Changed);
        await Poll.Eventually(() => View(survivor), v => v.State == "paused", TimeSpan.FromSeconds(10), "state paused");

        // Capture and logging go on while paused: these packets reach the program once both standbys logged them.
        var ids = primary.Platform.Queue.Push([1], [2], [3]);
        await Poll.Eventually(() => Task.FromResult<object?>(primary.Platform.Queue.Accepted == ids[^1] ? "released" : null), _ => true,
            TimeSpan.FromSeconds(10), "all packets released");

        await primary.System.Terminate();
        Cluster.Get(survivor.System).Down(Address.Parse(primary.Address));
        // The owner may have died with the primary: its successor learns the pause from the nodes.
        var lost = await Poll.Eventually(() => View(survivor), v => v.State == "paused" && v.Primary is null && v.Alarm is not null,
            TimeSpan.FromSeconds(40), "the loss noticed, recovery still paused");
        Assert.StartsWith("recovery paused and ", lost.Alarm);
        Assert.Contains("nothing is done until 'continuity-cmd app resume kv'", lost.Alarm);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.All(_nodes.Where(n => n != primary), n => Assert.False(n.Platform.Takeover.Called.Task.IsCompleted));

        var resumed = await survivor.Guardian.Ask<AppsProtocol.RecoveryPaused>(new AppsProtocol.PauseRecovery(App.Name, false), TimeSpan.FromSeconds(10));
        Assert.True(!resumed.Paused && resumed.Changed);
        var call = await Task.WhenAny(_nodes.Where(n => n != primary).Select(n => n.Platform.Takeover.Called.Task)).Unwrap()
            .WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([1, 2, 3], call.Log.Select(p => (int)p.Packet[0])); // nothing logged was lost by waiting
        await Poll.Eventually(() => View(survivor), v => v.Primary is not null && v.State != "paused" && v.Alarm is null,
            TimeSpan.FromSeconds(30), "a new primary, recovery no longer paused");
    }
}
