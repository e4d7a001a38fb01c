using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Capture;
using Continuity.Core.Replication;
using Continuity.Core.Election;
using Continuity.Core.Platform;
using Xunit;

namespace Continuity.Core.Tests.Apps;

/// <summary>The primary's app actor when its program cannot start or ends on its own.</summary>
public sealed class AppActorSpecs() : TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = INFO
    akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
    """))
{
    private static readonly TimeSpan Watch = TimeSpan.FromMilliseconds(50);
    private readonly FakePlatform _platform = new();
    private readonly AppSpec _app = TestConfig.App("kv");

    /// <summary>An app actor, once it has cleared what an earlier run could have left (so the calls seen after are its own).</summary>
    private IActorRef AppActor()
    {
        var actor = Sys.ActorOf(Continuity.Core.Apps.AppActor.Props(_app, _platform.Services, "node-1", "n1", TestConfig.TempDir(), Watch));
        AwaitCondition(() => _platform.Filter.Calls.Contains("unblock") && _platform.Fence.Calls.Contains("disarm"));
        _platform.Filter.Calls.Clear();
        _platform.Fence.Calls.Clear();
        return actor;
    }

    [Fact]
    public void A_node_that_starts_clears_the_vip_and_rules_an_earlier_run_left_behind()
    {
        _platform.Vip.Up = true; // the node process was killed while primary; the machine was not rebooted
        AppActor();
        Assert.False(_platform.Vip.Up);
        Assert.Equal(1, _platform.Takeover.LeftoversCleared); // and maybe in the middle of a takeover
    }

    [Fact]
    public void Clearing_at_start_removes_the_queue_and_block_rules_too()
    {
        Sys.ActorOf(Continuity.Core.Apps.AppActor.Props(_app, _platform.Services, "node-1", "n1", TestConfig.TempDir(), Watch));
        AwaitCondition(() => _platform.Filter.Calls.Count == 2);
        Assert.Equal(["stop-queue", "unblock"], _platform.Filter.Calls);
    }

    [Fact]
    public void A_primary_arms_the_vip_fence_before_the_vip_goes_up_passes_each_lease_on_and_removes_the_fence_when_it_stops()
    {
        var actor = AppActor();
        Sys.EventStream.Publish(new Continuity.Core.Fencing.LeaseProtocol.LeaseRenewed(Environment.TickCount64 + 3000));
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        Assert.True(_platform.Vip.Up);
        // Armed while the VIP was still down (a VIP up before its fence could answer ARP without a lease), and given
        // what is left of the node's lease at once.
        Assert.Equal(["arm", "renew"], _platform.Fence.Calls);
        Assert.InRange(_platform.Fence.Leases.Single(), TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(3000));

        Sys.EventStream.Publish(new Continuity.Core.Fencing.LeaseProtocol.LeaseRenewed(Environment.TickCount64 + 4000));
        AwaitCondition(() => _platform.Fence.Leases.Count == 2);
        Assert.InRange(_platform.Fence.Leases.Last(), TimeSpan.FromMilliseconds(3000), TimeSpan.FromMilliseconds(4000));

        // Another node became primary: the VIP goes and so does its fence (a later start must not find it armed).
        actor.Tell(new OwnerProtocol.BecomeStandby("kv", 2, "node-2"), owner.Ref);
        AwaitCondition(() => _platform.Fence.Calls.Last() == "disarm");
        Assert.False(_platform.Vip.Up);
    }

    [Fact]
    public void A_lease_that_ran_out_on_a_primary_is_never_passed_on_to_the_kernel()
    {
        var actor = AppActor();
        Sys.EventStream.Publish(new Continuity.Core.Fencing.LeaseProtocol.LeaseRenewed(Environment.TickCount64 - 1));
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        // The fence is armed and the VIP up, but it stays quiet: no majority vouched for this node lately.
        Assert.Equal(["arm"], _platform.Fence.Calls);
        Assert.True(_platform.Vip.Up);
    }

    [Fact]
    public void A_node_that_starts_kills_the_program_its_killed_predecessor_left_running_but_never_a_process_that_reused_the_pid()
    {
        var dir = TestConfig.TempDir();
        var owner = CreateTestProbe();
        var first = Sys.ActorOf(Continuity.Core.Apps.AppActor.Props(_app, _platform.Services, "node-1", "n1", dir, Watch));
        first.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        var orphan = _platform.Launcher.LastPid;
        var note = File.ReadAllText(Path.Combine(dir, "program.pid"));

        // The node process dies with SIGKILL: nothing of it runs, its program does. The next run finds the note.
        var next = TestConfig.TempDir();
        File.WriteAllText(Path.Combine(next, "program.pid"), note);
        Sys.ActorOf(Continuity.Core.Apps.AppActor.Props(_app, _platform.Services, "node-1", "n1", next, Watch));
        AwaitCondition(() => _platform.Launcher.Killed.Contains(orphan));
        AwaitCondition(() => !File.Exists(Path.Combine(next, "program.pid")));

        // Same pid, another process (the program ended and the pid was given to someone else): left alone.
        var reused = TestConfig.TempDir();
        File.WriteAllText(Path.Combine(reused, "program.pid"), "4242 started-at-another-time");
        Sys.ActorOf(Continuity.Core.Apps.AppActor.Props(_app, _platform.Services, "node-1", "n1", reused, Watch));
        AwaitCondition(() => !File.Exists(Path.Combine(reused, "program.pid")));
        Assert.DoesNotContain(4242, _platform.Launcher.Killed);
    }

    /// <summary>A one-chunk checkpoint of <paramref name="epoch"/>, shipped to the standby <paramref name="actor"/> until it holds it.</summary>
    private void StoreCheckpoint(IActorRef actor, long epoch, string id)
    {
        var src = TestConfig.TempDir();
        File.WriteAllText(Path.Combine(src, "core-1.img"), "image");
        var tar = new MemoryStream();
        System.Formats.Tar.TarFile.CreateFromDirectory(src, tar, includeBaseDirectory: false);
        var archive = tar.ToArray();
        actor.Tell(new ReplicationProtocol.CheckpointChunk("kv", epoch, id, 0, 0, 1, archive,
            System.Security.Cryptography.SHA256.HashData(archive)), CreateTestProbe().Ref); // the primary hears back, not us
        AwaitCondition(() => StatusOf(actor).Newest?.Id == id, TimeSpan.FromSeconds(10));
    }

    private OwnerProtocol.NodeStatus StatusOf(IActorRef actor)
    {
        actor.Tell(new OwnerProtocol.GetNodeStatus("kv"));
        return ExpectMsg<OwnerProtocol.NodeStatus>();
    }

    [Fact]
    public void A_program_that_exits_on_its_own_is_reported_with_its_exit_code_and_last_output_and_the_node_stops_serving()
    {
        var actor = AppActor();
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>(s => s.Epoch == 1 && s.Node == "node-1");
        Assert.True(_platform.Vip.Up);
        var pid = _platform.Launcher.LastPid;

        _platform.Launcher.End(pid, new ProgramExit(3, ["loading /etc/kv.conf", "fatal: port 7000 is in use"]));

        var failed = ExpectStoppedServing(actor, owner);
        Assert.StartsWith($"/bin/kv (pid {pid}) exited with code 3 after ", failed.Reason);
        Assert.EndsWith("; last output: loading /etc/kv.conf | fatal: port 7000 is in use", failed.Reason);
        Assert.DoesNotContain(pid, _platform.Launcher.Killed); // the dead pid is not signalled
    }

    /// <summary>The primary of epoch 1 reported its failure to <paramref name="owner"/>, once, and nothing pretends to
    /// serve the application any more: no VIP, no queue rule, the node idle.</summary>
    private OwnerProtocol.ProgramFailed ExpectStoppedServing(IActorRef actor, TestProbe owner)
    {
        var failed = owner.ExpectMsg<OwnerProtocol.ProgramFailed>(TimeSpan.FromSeconds(5));
        Assert.Equal((1L, "node-1"), (failed.Epoch, failed.Node));
        Assert.False(_platform.Vip.Up);
        Assert.Contains("stop-queue", _platform.Filter.Calls);
        Assert.Equal(AppRole.Idle, StatusOf(actor).Role);
        owner.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // reported once
        return failed;
    }

    [Fact]
    public void The_packet_queue_is_open_before_the_queue_rule_sends_it_packets()
    {
        var actor = AppActor();
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        AwaitCondition(() => _platform.Filter.Calls.Contains("open-queue"));
        var calls = _platform.Filter.Calls.ToList();
        Assert.True(calls.IndexOf("open-queue") < calls.IndexOf("queue"), string.Join(", ", calls));
    }

    [Fact]
    public void A_primary_whose_packet_capture_stops_stops_serving_and_tells_the_owner()
    {
        _platform.Queue.FailStartWith = "nfq_set_queue_flags failed for NFQUEUE 100: Success (errno 0)";
        var actor = AppActor();
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        var pid = _platform.Launcher.LastPid;

        var failed = ExpectStoppedServing(actor, owner);
        Assert.Contains("packet capture stopped", failed.Reason);
        // The program, whose input from here on no standby would know, is stopped.
        Assert.Contains(pid, _platform.Launcher.Killed);
    }

    [Fact]
    public void A_program_whose_exit_status_is_unknown_is_still_reported()
    {
        var actor = AppActor();
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();

        _platform.Launcher.End(_platform.Launcher.LastPid, null);

        var failed = owner.ExpectMsg<OwnerProtocol.ProgramFailed>(TimeSpan.FromSeconds(5));
        Assert.Contains("exited (exit status unknown)", failed.Reason);
        Assert.Contains("no output", failed.Reason);
    }

    [Fact]
    public void A_program_that_cannot_start_is_reported_with_the_launchers_reason_and_nothing_is_left_open()
    {
        _platform.Launcher.FailWith = "/bin/kv exited with code 127 right after start; last output: exec: /bin/kv: not found.";
        var actor = AppActor();
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 4, []), owner.Ref);

        var failed = owner.ExpectMsg<OwnerProtocol.ProgramFailed>();
        Assert.Equal(4, failed.Epoch);
        Assert.Equal("could not start /bin/kv: /bin/kv exited with code 127 right after start; last output: exec: /bin/kv: not found.", failed.Reason);
        Assert.False(_platform.Vip.Up);
        Assert.Empty(_platform.Filter.Calls);
        Assert.Equal(AppRole.Idle, StatusOf(actor).Role);
    }

    [Fact]
    public void A_program_the_node_stops_itself_is_not_reported_as_failed()
    {
        var actor = AppActor();
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        var pid = _platform.Launcher.LastPid;

        // A newer epoch names another primary: this node kills its program on purpose.
        actor.Tell(new OwnerProtocol.BecomeStandby("kv", 2, "node-2"), owner.Ref);
        AwaitCondition(() => _platform.Launcher.Killed.Contains(pid), TimeSpan.FromSeconds(3));

        owner.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        Assert.Equal(AppRole.Standby, StatusOf(actor).Role);
    }

    [Fact]
    public void A_former_primary_that_takes_over_waits_only_for_the_standbys_of_the_new_epoch()
    {
        var actor = AppActor();
        var owner = CreateTestProbe();
        var crashed = CreateTestProbe();
        var survivor = CreateTestProbe();
        // Epoch 1: this node was primary, with a standby that later crashes.
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, [new StandbyRef("node-3", crashed.Ref)]), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        // Epoch 2: a planned switch made it a standby; it holds the checkpoint of that epoch.
        actor.Tell(new OwnerProtocol.BecomeStandby("kv", 2, "node-2"), owner.Ref);
        StoreCheckpoint(actor, 2, "e2-a");

        // Epoch 3: the primary of epoch 2 and node-3 are gone; only the survivor is a standby.
        actor.Tell(new OwnerProtocol.TakeOver("kv", 3, [new StandbyRef("node-4", survivor.Ref)], false, "node-2", "primary removed"), owner.Ref);
        var tookOver = owner.FishForMessage<OwnerProtocol.TookOver>(_ => true, TimeSpan.FromSeconds(10));
        // The management view asks the primary too: its switch shows before the owner has recorded it.
        var status = actor.Ask<AppActorProtocol.PrimaryStatus>(new AppActorProtocol.GetPrimaryStatus("kv"), TimeSpan.FromSeconds(5)).Result;
        Assert.Equal(tookOver.Switch, status.LastSwitch);
        Assert.Equal((3L, "primary removed"), (status.LastSwitch!.Epoch, status.LastSwitch.Reason));
        crashed.ReceiveWhile(TimeSpan.FromMilliseconds(200), m => m); // what epoch 1 sent it

        var ids = _platform.Queue.Push([1]);
        survivor.FishForMessage<ReplicationProtocol.Append>(a => a.Epoch == 3, TimeSpan.FromSeconds(5));
        survivor.LastSender.Tell(new ReplicationProtocol.Appended("kv", 3, "node-4", 1)); // the capture hears the acks
        // Released once the survivor logged it: the crashed standby of epoch 1 is not waited for.
        AwaitCondition(() => _platform.Queue.Accepted == ids[0], TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(crashed.ReceiveWhile(TimeSpan.FromMilliseconds(600), m => m), m => m is ReplicationProtocol.Append { Epoch: 3 });
    }

    [Fact]
    public void A_takeover_that_fails_after_raising_the_vip_takes_it_down_again()
    {
        var actor = AppActor();
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomeStandby("kv", 2, "node-2"), owner.Ref);
        StoreCheckpoint(actor, 2, "e2-a");

        _platform.Takeover.FailAfterVip = "criu restore failed (exit 1)";
        actor.Tell(new OwnerProtocol.TakeOver("kv", 3, [], false, "node-2", "primary removed"), owner.Ref);
        Assert.Contains("criu restore failed", owner.FishForMessage<OwnerProtocol.TakeoverFailed>(_ => true, TimeSpan.FromSeconds(10)).Reason);

        // Nothing of the switch is left to answer ARP for the VIP or to drop what clients send to it.
        AwaitCondition(() => !_platform.Vip.Up, TimeSpan.FromSeconds(3));
        Assert.Equal("unblock", _platform.Filter.Calls.Last(c => c is "block" or "unblock"));
        Assert.Equal(AppRole.Idle, StatusOf(actor).Role);
    }

    [Fact]
    public void Packets_arriving_during_a_checkpoint_wait_in_the_queue_and_the_vip_is_never_blocked()
    {
        var actor = AppActor();
        var owner = CreateTestProbe();
        var standby = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, [new StandbyRef("node-2", standby.Ref)]), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        AwaitCondition(() => _platform.Queue.Started, TimeSpan.FromSeconds(5));
        var first = _platform.Queue.Push([1]);
        standby.FishForMessage<ReplicationProtocol.Append>(a => a.FirstSeq == 1, TimeSpan.FromSeconds(5));
        var capture = standby.LastSender;
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "node-2", 1));
        AwaitCondition(() => _platform.Queue.Accepted == first[0], TimeSpan.FromSeconds(5));

        uint[] during = [];
        _platform.Criu.WhileDumping = () =>
        {
            // A client's packet arrives while the program is frozen: logged and replicated, not released.
            during = _platform.Queue.Push([2]);
            standby.FishForMessage<ReplicationProtocol.Append>(a => a.FirstSeq == 2, TimeSpan.FromSeconds(5));
            capture.Tell(new ReplicationProtocol.Appended("kv", 1, "node-2", 2));
            Thread.Sleep(200);
            Assert.Equal(first[0], _platform.Queue.Accepted);
        };
        actor.Tell(new AppActorProtocol.CheckpointNow("kv"));
        var taken = FishForMessage<AppsProtocol.CheckpointTaken>(_ => true, TimeSpan.FromSeconds(10));
        Assert.Equal(1, taken.Checkpoint.Mark); // the packet that arrived during the dump lies after the mark

        AwaitCondition(() => _platform.Queue.Accepted == during[0], TimeSpan.FromSeconds(5));
        Assert.DoesNotContain("block", _platform.Filter.Calls);

        // The primary's figures for the MIB carry the connections open to the VIP, as the platform counts them.
        actor.Tell(new Continuity.Core.Supervision.IntrospectionProtocol.GetAppFigures("kv"));
        Assert.Equal(7, FishForMessage<Continuity.Core.Supervision.IntrospectionProtocol.AppFigures>(_ => true).OpenConnections);
    }
}
