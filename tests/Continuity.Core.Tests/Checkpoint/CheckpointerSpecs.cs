using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Checkpoint;

public sealed class CheckpointerSpecs() : TestKit(ConfigurationFactory.ParseString("akka.loglevel = INFO"))
{
    [Fact]
    public void A_checkpoint_pauses_capture_dumps_resumes_and_ships_chunks_with_the_mark()
    {
        var criu = new FakeCheckpointer();
        var capture = CreateTestProbe();
        var standby = CreateTestProbe();
        var cp = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            TestConfig.TempDir(), new[] { new StandbyRef("n2", standby.Ref) }, null)));

        capture.ExpectMsg<CaptureProtocol.Pause>();   // the first checkpoint of an epoch is taken at once
        capture.Reply(new CaptureProtocol.Paused(17));
        capture.ExpectMsg<CaptureProtocol.Resume>();
        var first = standby.ExpectMsg<CheckpointChunk>();
        Assert.Equal((17L, 0), (first.Mark, first.Index));
        Assert.True(first.Count >= 2); // 300 kB image: more than one 256 KiB chunk
        for (var i = 1; i < first.Count; i++) Assert.Equal(i, standby.ExpectMsg<CheckpointChunk>().Index);
        cp.Tell(new CheckpointStored("kv", 1, "n2", first.Id, 17));
        AwaitAssert(() =>
        {
            cp.Tell(new CheckpointerProtocol.GetStatus());
            var status = ExpectMsg<CheckpointerProtocol.Status>();
            Assert.Equal(["n2"], status.Ready);
            Assert.Equal(first.Id, status.Last!.Id);
        });
    }

    [Fact]
    public void The_status_counts_checkpoints_and_times_the_shipping_until_every_standby_stored_it()
    {
        var criu = new FakeCheckpointer();
        var capture = CreateTestProbe();
        var n2 = CreateTestProbe();
        var n3 = CreateTestProbe();
        var cp = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            TestConfig.TempDir(), new[] { new StandbyRef("n2", n2.Ref), new StandbyRef("n3", n3.Ref) }, null)));
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(17));
        capture.ExpectMsg<CaptureProtocol.Resume>();
        var first = n2.ExpectMsg<CheckpointChunk>();
        CheckpointerProtocol.Status Status()
        {
            cp.Tell(new CheckpointerProtocol.GetStatus());
            return ExpectMsg<CheckpointerProtocol.Status>();
        }
        AwaitAssert(() => Assert.Equal(1, Status().Count));

        cp.Tell(new CheckpointStored("kv", 1, "n2", first.Id, 17));
        Thread.Sleep(50);
        Assert.Null(Status().LastShip); // n3 has not stored it yet
        cp.Tell(new CheckpointStored("kv", 1, "n3", first.Id, 17));

        AwaitAssert(() => Assert.True(Status().LastShip >= TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public void A_periodic_checkpoint_waits_until_every_standby_stored_the_previous_one()
    {
        var (cp, capture, first) = FirstCheckpointShippedTo("n2", "n3");

        // n3 has not stored it: five intervals pass without another image queued behind it.
        cp.Tell(new CheckpointStored("kv", 1, "n2", first.Id, 17));
        capture.ExpectNoMsg(TimeSpan.FromSeconds(1));

        cp.Tell(new CheckpointStored("kv", 1, "n3", first.Id, 17));
        capture.ExpectMsg<CaptureProtocol.Pause>(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void A_standby_that_left_holds_back_no_periodic_checkpoint()
    {
        var (cp, capture, first) = FirstCheckpointShippedTo("n2", "n3");
        cp.Tell(new CheckpointStored("kv", 1, "n2", first.Id, 17));
        capture.ExpectNoMsg(TimeSpan.FromMilliseconds(600));

        // n3 is dropped from the standbys (it crashed, or lagged): the checkpoints go on for n2.
        cp.Tell(new CheckpointerProtocol.SetStandbys(new[] { new StandbyRef("n2", CreateTestProbe().Ref) }));
        capture.ExpectMsg<CaptureProtocol.Pause>(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void A_standby_that_refuses_checkpoints_is_named_with_its_reason_until_it_stores_one_again()
    {
        var capture = CreateTestProbe();
        var n2 = CreateTestProbe();
        var n3 = CreateTestProbe();
        var cp = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, new FakeCheckpointer(), capture.Ref,
            TestConfig.TempDir(), new[] { new StandbyRef("n2", n2.Ref), new StandbyRef("n3", n3.Ref) }, null)));
        CheckpointerProtocol.Status Status()
        {
            cp.Tell(new CheckpointerProtocol.GetStatus());
            return ExpectMsg<CheckpointerProtocol.Status>();
        }
        string TakeOne()
        {
            var before = Status().Last?.Id;
            capture.ExpectMsg<CaptureProtocol.Pause>();
            capture.Reply(new CaptureProtocol.Paused(17));
            capture.ExpectMsg<CaptureProtocol.Resume>();
            string? id = null;
            AwaitAssert(() => Assert.NotEqual(before, id = Status().Last?.Id));
            return id!;
        }

        var first = TakeOne();
        cp.Tell(new CheckpointStored("kv", 1, "n2", first, 17));
        cp.Tell(new CheckpointStored("kv", 1, "n3", first, 17));
        AwaitAssert(() => Assert.Equal(["n2", "n3"], Status().Ready.Order()));
        Assert.Empty(Status().Refusals!);

        cp.Tell(new CheckpointerProtocol.Take());
        var refused = TakeOne();
        cp.Tell(new CheckpointStored("kv", 1, "n2", refused, 17));
        cp.Tell(new CheckpointRejected("kv", 1, "n3", refused, "No space left on device"));
        AwaitAssert(() => Assert.Equal(("n3", 1, "No space left on device"),
            Status().Refusals is [var r] ? (r.Node, r.Checkpoints, r.Reason) : default));
        var since = Status().Refusals![0].Since;

        cp.Tell(new CheckpointerProtocol.Take());
        var second = TakeOne();
        cp.Tell(new CheckpointStored("kv", 1, "n2", second, 17));
        cp.Tell(new CheckpointRejected("kv", 1, "n3", second, "No space left on device"));
        AwaitAssert(() => Assert.Equal(("n3", 2, since), Status().Refusals is [var r] ? (r.Node, r.Checkpoints, r.Since) : default));
        Assert.Equal(["n2", "n3"], Status().Ready.Order()); // n3 still holds the first: it can take over, with a longer log

        cp.Tell(new CheckpointerProtocol.Take());
        var third = TakeOne();
        cp.Tell(new CheckpointStored("kv", 1, "n3", third, 17));
        AwaitAssert(() => Assert.Empty(Status().Refusals!));
    }

    /// <summary>A checkpointer ticking every 200 ms, after its first checkpoint was dumped and shipped.</summary>
    [Fact]
    public void A_large_image_goes_a_few_chunks_at_a_time_each_standby_getting_the_next_once_it_wrote_one()
    {
        var criu = new FakeCheckpointer { ImageBytes = 12 << 20 }; // 48 chunks
        var capture = CreateTestProbe();
        var fast = CreateTestProbe();
        var stuck = CreateTestProbe();
        var cp = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            TestConfig.TempDir(), new[] { new StandbyRef("n2", fast.Ref), new StandbyRef("n3", stuck.Ref) }, null)));
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(17));
        capture.ExpectMsg<CaptureProtocol.Resume>();

        // A standby that writes nothing gets the window and no more: the image never piles up on its connection.
        var toStuck = Enumerable.Range(0, CheckpointShipper.Window).Select(_ => stuck.ExpectMsg<CheckpointChunk>()).ToList();
        Assert.Equal(Enumerable.Range(0, CheckpointShipper.Window), toStuck.Select(c => c.Index));
        Assert.True(toStuck[0].Count > CheckpointShipper.Window, $"the image has {toStuck[0].Count} chunks");
        stuck.ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        // One that writes them gets the whole image, in order, each acknowledgement letting one more chunk go.
        using var received = new MemoryStream();
        CheckpointChunk chunk;
        do
        {
            chunk = fast.ExpectMsg<CheckpointChunk>();
            Assert.Equal(received.Length / Checkpointer.ChunkSize, chunk.Index);
            received.Write(chunk.Bytes);
            if (chunk.Index < chunk.Count - 1)
                fast.Reply(new CheckpointChunkReceived("kv", 1, "n2", chunk.Id, chunk.Index));
        } while (chunk.Index < chunk.Count - 1);
        Assert.Equal(chunk.Sha256, System.Security.Cryptography.SHA256.HashData(received.ToArray()));
        fast.Reply(new CheckpointStored("kv", 1, "n2", chunk.Id, 17));
        AwaitAssert(() =>
        {
            cp.Tell(new CheckpointerProtocol.GetStatus());
            Assert.Equal(["n2"], ExpectMsg<CheckpointerProtocol.Status>().Ready);
        });
        stuck.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    private (IActorRef Checkpointer, Akka.TestKit.TestProbe Capture, CheckpointChunk First) FirstCheckpointShippedTo(params string[] standbys)
    {
        var capture = CreateTestProbe();
        var firstStandby = CreateTestProbe();
        var probes = standbys.Select((n, i) => new StandbyRef(n, i == 0 ? firstStandby.Ref : CreateTestProbe().Ref)).ToArray();
        var cp = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", TimeSpan.FromMilliseconds(200)), 1, () => 42,
            new FakeCheckpointer(), capture.Ref, TestConfig.TempDir(), probes, null)));
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(17));
        capture.ExpectMsg<CaptureProtocol.Resume>();
        return (cp, capture, firstStandby.ExpectMsg<CheckpointChunk>());
    }

    [Fact]
    public void A_failed_dump_raises_the_alarm_keeps_the_previous_checkpoint_and_resumes_capture()
    {
        var criu = new FakeCheckpointer { Fail = true };
        var capture = CreateTestProbe();
        var cp = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            TestConfig.TempDir(), Array.Empty<StandbyRef>(), null)));

        cp.Tell(new CheckpointerProtocol.Take());
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(5));
        capture.ExpectMsg<CaptureProtocol.Resume>();
        Assert.Contains("criu: dump failed", ExpectMsg<CheckpointerProtocol.Failed>().Reason);
        cp.Tell(new CheckpointerProtocol.GetStatus());
        var status = ExpectMsg<CheckpointerProtocol.Status>();
        Assert.NotNull(status.Alarm);
        Assert.Null(status.Last);
    }

    [Fact]
    public void A_failed_dump_keeps_the_previous_complete_checkpoint_current_and_the_alarm_carries_criu_s_error_line()
    {
        var criu = new ScriptedCheckpointer();
        var capture = CreateTestProbe();
        var standby = CreateTestProbe();
        var workDir = TestConfig.TempDir();
        var cp = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            workDir, new[] { new StandbyRef("n2", standby.Ref) }, null)));

        // 1. A complete checkpoint, stored by the standby.
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(17));
        capture.ExpectMsg<CaptureProtocol.Resume>();
        var first = standby.ExpectMsg<CheckpointChunk>();
        for (var i = 1; i < first.Count; i++) standby.ExpectMsg<CheckpointChunk>();
        cp.Tell(new CheckpointStored("kv", 1, "n2", first.Id, 17));

        // 2. CRIU cannot dump the program any more.
        criu.FailWith = "criu dump of pid 42 failed (exit 1).\ncriu errors:\n  (00.012345) Error (criu/sk-unix.c:706): unix: Can't dump half of stream unix connection.\n" +
            "last log lines (/x/dump.log):\n  (00.020000) Dumping FAILED.";
        cp.Tell(new CheckpointerProtocol.Take());
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(30));
        capture.ExpectMsg<CaptureProtocol.Resume>(); // the program is never left without input

        var failed = ExpectMsg<CheckpointerProtocol.Failed>();
        Assert.Contains("Error (criu/sk-unix.c:706): unix: Can't dump half of stream unix connection.", failed.Reason);
        standby.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // nothing of the failed dump reaches a standby

        cp.Tell(new CheckpointerProtocol.GetStatus());
        var status = ExpectMsg<CheckpointerProtocol.Status>();
        Assert.Equal(first.Id, status.Last!.Id);
        Assert.Equal(17, status.Last.Mark);
        Assert.Equal(["n2"], status.Ready); // the standby's checkpoint still counts
        Assert.Equal($"checkpoint failed, the previous checkpoint {first.Id} (mark 17) stays the newest and the log grows until a dump " +
            "succeeds: criu dump of pid 42 failed (exit 1). criu errors: (00.012345) Error (criu/sk-unix.c:706): unix: Can't dump half " +
            "of stream unix connection. last log lines (/x/dump.log): (00.020000) Dumping FAILED.", status.Alarm);
        // On this node too: the previous image stays, the partial one is gone.
        Assert.Equal([first.Id], Directory.GetDirectories(workDir).Select(Path.GetFileName));

        // 3. The next dump that works clears the alarm.
        criu.FailWith = null;
        cp.Tell(new CheckpointerProtocol.Take());
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(31));
        capture.ExpectMsg<CaptureProtocol.Resume>();
        Assert.Equal(31, ExpectMsg<CheckpointerProtocol.Taken>().Info.Mark);
        cp.Tell(new CheckpointerProtocol.GetStatus());
        Assert.Null(ExpectMsg<CheckpointerProtocol.Status>().Alarm);
    }

    /// <summary>Writes a small image, or fails like criu after writing part of one.</summary>
    private sealed class ScriptedCheckpointer : Continuity.Core.Platform.ICheckpointer
    {
        public volatile string? FailWith;

        public Task<Continuity.Core.Platform.CheckpointImage> DumpAsync(int pid, string imageDir, Action whileFrozen, CancellationToken ct)
        {
            Directory.CreateDirectory(imageDir);
            File.WriteAllText(Path.Combine(imageDir, "dump.log"), "partial");
            if (FailWith is { } m) return Task.FromException<Continuity.Core.Platform.CheckpointImage>(new InvalidOperationException(m));
            File.WriteAllBytes(Path.Combine(imageDir, "pages-1.img"), new byte[1000]);
            whileFrozen();
            return Task.FromResult(new Continuity.Core.Platform.CheckpointImage(imageDir, 1000, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(2)));
        }

        public Task<int> RestoreAsync(string imageDir, CancellationToken ct) => Task.FromResult(0);
    }
}
