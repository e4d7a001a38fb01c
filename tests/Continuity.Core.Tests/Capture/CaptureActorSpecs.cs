using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Capture;
using Continuity.Core.Replication;
using Xunit;

namespace Continuity.Core.Tests.Capture;

public sealed class CaptureActorSpecs() : TestKit(ConfigurationFactory.ParseString("akka.loglevel = INFO"))
{
    /// <summary>A capture of app kv at <paramref name="epoch"/> with these standbys, its fake queue started.</summary>
    private (FakePacketQueue Queue, IActorRef Capture) StartCapture(long epoch, params StandbyRef[] standbys)
    {
        var queue = new FakePacketQueue();
        var capture = Sys.ActorOf(Props.Create(() => new CaptureActor(TestConfig.App("kv", null), epoch, 1, _ => queue, standbys)));
        AwaitCondition(() => queue.Started);
        return (queue, capture);
    }

    [Fact]
    public void Packets_are_released_only_after_every_standby_acknowledged_them()
    {
        var b = CreateTestProbe();
        var c = CreateTestProbe();
        var (queue, capture) = StartCapture(1, new StandbyRef("b", b.Ref), new StandbyRef("c", c.Ref));

        var ids = queue.Push([1], [2], [3]);
        var toB = b.ExpectMsg<ReplicationProtocol.Append>();
        c.ExpectMsg<ReplicationProtocol.Append>();
        Assert.Equal(1, toB.FirstSeq);
        Assert.Equal([1L, 2, 3], toB.Packets.Select(p => p.Seq));

        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 3));
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "c", 2));
        AwaitCondition(() => queue.AnyAccepted);
        Assert.Equal(ids[1], queue.Accepted); // c has logged only up to seq 2: packet 3 is still held

        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "c", 3));
        AwaitCondition(() => queue.Accepted == ids[2]);
    }

    [Fact]
    public void The_acked_not_released_fail_point_is_reached_after_every_acknowledgement_and_before_the_verdict()
    {
        var b = CreateTestProbe();
        var queue = new FakePacketQueue();
        var failpoints = new RecordingFailpoints(() => queue.AnyAccepted);
        var capture = Sys.ActorOf(Props.Create(() => new CaptureActor(TestConfig.App("kv", null), 1, 1, _ => queue,
            new[] { new StandbyRef("b", b.Ref) }, failpoints)));
        AwaitCondition(() => queue.Started);

        var ids = queue.Push([1], [2]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        Assert.Empty(failpoints.Calls); // nothing is acknowledged yet

        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 2));
        AwaitCondition(() => queue.Accepted == ids[1]);
        var (name, what, anyAcceptedThen) = Assert.Single(failpoints.Calls);
        Assert.Equal(Platform.Failpoints.AckedNotReleased, name);
        Assert.False(anyAcceptedThen, "the fail point must come before the verdict");
        Assert.Contains("packets up to 2 of epoch 1", what);
    }

    [Fact]
    public void A_checkpoint_waits_until_the_program_has_read_the_datagrams_released_to_it()
    {
        var queue = new FakePacketQueue();
        long unread = 120; // bytes of one datagram the program has not read yet
        var capture = Sys.ActorOf(Props.Create(() => new CaptureActor(TestConfig.App("kv", null), 1, 1, _ => queue,
            Array.Empty<StandbyRef>(), null, _ => Interlocked.Read(ref unread))));
        AwaitCondition(() => queue.Started);
        queue.Push([1]);
        AwaitCondition(() => queue.AnyAccepted);

        capture.Tell(new CaptureProtocol.Pause());
        ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // CRIU would drop the datagram with the socket's queue

        Interlocked.Exchange(ref unread, 0);
        Assert.Equal(1, ExpectMsg<CaptureProtocol.Paused>().Mark);
    }

    /// <summary>Records each fail point reached, with whether any verdict had been given at that moment.</summary>
    private sealed class RecordingFailpoints(Func<bool> anyAccepted) : Platform.IFailpoints
    {
        public List<(string Name, string What, bool AnyAcceptedThen)> Calls { get; } = [];

        public void Reach(string name, Func<string> describe) => Calls.Add((name, describe(), anyAccepted()));
    }

    [Fact]
    public void A_standby_dropped_by_the_owner_no_longer_holds_packets_but_the_remaining_one_still_does()
    {
        var b = CreateTestProbe();
        var c = CreateTestProbe();
        var (queue, capture) = StartCapture(1, new StandbyRef("b", b.Ref), new StandbyRef("c", c.Ref));
        var ids = queue.Push([1], [2], [3]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        c.ExpectMsg<ReplicationProtocol.Append>();

        // c's journal failed: it never acknowledges. b has logged up to 2 so far.
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 2));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.False(queue.AnyAccepted); // c still counts: only the owner changes the set

        capture.Tell(new CaptureProtocol.SetStandbys(1, [new StandbyRef("b", b.Ref)]));
        AwaitCondition(() => queue.Accepted == ids[1]);
        capture.Tell(new CaptureProtocol.GetStatus());
        Assert.Equal(2, ExpectMsg<CaptureProtocol.Status>().LastReleased); // 3 waits for b, which has not logged it

        var more = queue.Push([4]);
        // b may get packet 3 again first (it has not acknowledged it for a while): a resend, not the new batch.
        b.FishForMessage<ReplicationProtocol.Append>(a => a.Packets.Any(p => p.Seq == 4));
        // Nothing new is sent to the dropped standby (resends from before the drop may still be on their way).
        Assert.DoesNotContain(c.ReceiveWhile(TimeSpan.FromMilliseconds(600), m => m as ReplicationProtocol.Append),
            a => a is not null && a.Packets.Any(p => p.Seq == 4));
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 4));
        AwaitCondition(() => queue.Accepted == more[0]);
    }

    [Fact]
    public void Stage_times_are_reported_per_standby()
    {
        var b = CreateTestProbe();
        var c = CreateTestProbe();
        var (queue, capture) = StartCapture(1, new StandbyRef("b", b.Ref), new StandbyRef("c", c.Ref));
        var ids = queue.Push([1], [2]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        c.ExpectMsg<ReplicationProtocol.Append>();
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 2));
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "c", 2));
        AwaitCondition(() => queue.Accepted == ids[1]);

        capture.Tell(new CaptureProtocol.GetStatus());
        var stages = ExpectMsg<CaptureProtocol.Status>().Stages!;

        Assert.Equal(["capture", "replicate", "replicate", "release", "hold"], stages.Select(s => s.Stage));
        Assert.Equal(["b", "c"], stages.Where(s => s.Stage == "replicate").Select(s => s.Standby));
        Assert.All(stages, s => Assert.Equal(1, s.Count)); // one batch went through every stage
    }

    [Fact]
    public void A_batch_held_by_a_checkpoint_is_timed_in_the_release_stage_only_once_released()
    {
        var b = CreateTestProbe();
        var (queue, capture) = StartCapture(1, new StandbyRef("b", b.Ref));
        capture.Tell(new CaptureProtocol.Pause());
        ExpectMsg<CaptureProtocol.Paused>();
        var ids = queue.Push([1]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 1));

        capture.Tell(new CaptureProtocol.GetStatus());
        var held = ExpectMsg<CaptureProtocol.Status>().Stages!;
        Assert.Equal(1, held.Single(s => s.Stage == "replicate").Count);
        Assert.Equal(0, held.Single(s => s.Stage == "release").Count);

        capture.Tell(new CaptureProtocol.Resume());
        AwaitCondition(() => queue.Accepted == ids[0]);
        capture.Tell(new CaptureProtocol.GetStatus());
        Assert.Equal(1, ExpectMsg<CaptureProtocol.Status>().Stages!.Single(s => s.Stage == "release").Count);
    }

    [Fact]
    public void An_ack_of_another_epoch_releases_nothing()
    {
        var b = CreateTestProbe();
        var (queue, capture) = StartCapture(2, new StandbyRef("b", b.Ref));
        queue.Push([1]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 1));
        capture.Tell(new CaptureProtocol.GetStatus());
        var status = ExpectMsg<CaptureProtocol.Status>();
        Assert.Equal(0, status.LastReleased);
        Assert.False(queue.AnyAccepted);
    }

    [Fact]
    public void Capture_without_standbys_releases_and_reports_unprotected()
    {
        var (queue, capture) = StartCapture(1);
        var ids = queue.Push([1], [2]);
        AwaitCondition(() => queue.Accepted == ids[1]);
        capture.Tell(new CaptureProtocol.GetStatus());
        var status = ExpectMsg<CaptureProtocol.Status>();
        Assert.True(status.Unprotected);
        Assert.Equal(2, status.LastReleased);
    }

    [Fact]
    public void A_paused_capture_replicates_but_gives_no_verdict_until_resumed()
    {
        var b = CreateTestProbe();
        var (queue, capture) = StartCapture(1, new StandbyRef("b", b.Ref));
        capture.Tell(new CaptureProtocol.Pause());
        Assert.Equal(0, ExpectMsg<CaptureProtocol.Paused>().Mark);
        var ids = queue.Push([1]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 1));
        capture.Tell(new CaptureProtocol.GetStatus());
        Assert.Equal(0, ExpectMsg<CaptureProtocol.Status>().LastReleased);
        capture.Tell(new CaptureProtocol.Resume());
        AwaitCondition(() => queue.Accepted == ids[0]);
    }

    [Fact]
    public void A_batch_lost_on_the_way_to_a_standby_is_sent_again_and_the_packets_are_released()
    {
        var b = CreateTestProbe();
        var (queue, capture) = StartCapture(1, new StandbyRef("b", b.Ref));
        queue.Push([1], [2]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 2));
        var ids = queue.Push([3], [4]);
        b.ExpectMsg<ReplicationProtocol.Append>(); // lost in transit: the standby never logs it
        var later = queue.Push([5]);
        b.ExpectMsg<ReplicationProtocol.Append>(); // refused by the standby for the hole before it

        var again = b.ExpectMsg<ReplicationProtocol.Append>(TimeSpan.FromSeconds(3));
        Assert.Equal(3, again.FirstSeq);
        Assert.Equal([3L, 4, 5], again.Packets.Select(p => p.Seq));
        Assert.Equal([3, 4, 5], again.Packets.Select(p => (int)p.Packet[0]));
        Assert.NotEqual(ids[1], queue.Accepted); // still held until the standby logged them

        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 5));
        AwaitCondition(() => queue.Accepted == later[0]);
    }

    [Fact]
    public void A_standby_added_again_is_told_where_its_stream_resumes()
    {
        var b = CreateTestProbe();
        var (queue, capture) = StartCapture(1, new StandbyRef("b", b.Ref));
        queue.Push([1], [2]);
        b.ExpectMsg<ReplicationProtocol.Append>();
        capture.Tell(new ReplicationProtocol.Appended("kv", 1, "b", 2));

        capture.Tell(new CaptureProtocol.SetStandbys(1, []));
        queue.Push([3]); // b is not sent this one
        capture.Tell(new CaptureProtocol.SetStandbys(1, [new StandbyRef("b", b.Ref)]));
        var from = b.ExpectMsg<ReplicationProtocol.StreamFrom>();
        Assert.Equal(4, from.FirstSeq);
        queue.Push([4]);
        Assert.Equal(4, b.ExpectMsg<ReplicationProtocol.Append>().FirstSeq);
    }
}

/// <summary>The capture's timers on Akka's test scheduler, advanced by many intervals in no time: what a node that was
/// not running for a while (a hang, a stopped process) gets from the real scheduler when it resumes, every missed
/// tick at once.</summary>
public sealed class CaptureActorPauseSpecs() : TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = INFO
    akka.scheduler.implementation = "Akka.TestKit.TestScheduler, Akka.TestKit"
    """))
{
    [Fact]
    public void After_a_pause_a_standby_that_acknowledged_nothing_is_sent_its_backlog_once_not_once_per_missed_check()
    {
        var b = CreateTestProbe();
        var queue = new FakePacketQueue();
        Sys.ActorOf(Props.Create(() => new CaptureActor(TestConfig.App("kv", null), 1, 1, _ => queue, new[] { new StandbyRef("b", b.Ref) })));
        AwaitCondition(() => queue.Started);
        var scheduler = (Akka.TestKit.TestScheduler)Sys.Scheduler;
        queue.Push([1], [2]);
        b.ExpectMsg<ReplicationProtocol.Append>(); // never acknowledged
        scheduler.Advance(TimeSpan.FromMilliseconds(250)); // the check before the pause notes where the standby stands

        Thread.Sleep(300);
        for (var i = 0; i < 40; i++) scheduler.Advance(TimeSpan.FromMilliseconds(250)); // 10 s of checks, all at once
        var again = b.ExpectMsg<ReplicationProtocol.Append>(TimeSpan.FromSeconds(3));
        Assert.Equal([1L, 2], again.Packets.Select(p => p.Seq));
        b.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
    }
}
