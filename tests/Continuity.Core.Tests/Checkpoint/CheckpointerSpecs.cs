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
}
