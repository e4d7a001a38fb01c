using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit.Xunit2;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Checkpoint;

public sealed class CheckpointShipperSpecs() : TestKit(ConfigurationFactory.ParseString("akka.loglevel = INFO"))
{
    [Fact]
    public void Answers_reaching_a_shipper_stopped_for_a_newer_checkpoint_are_not_logged_as_dead_letters()
    {
        var archive = Path.Combine(TestConfig.TempDir(), "image.tar");
        File.WriteAllBytes(archive, new byte[3 * Checkpointer.ChunkSize]);
        var standby = CreateTestProbe();
        var info = new CheckpointInfo(1, "e1-1", 17, DateTimeOffset.UtcNow, 3 * Checkpointer.ChunkSize, TimeSpan.Zero);
        var shipper = Sys.ActorOf(CheckpointShipper.Props("kv", 1, info, archive, new byte[32], [new StandbyRef("n2", standby.Ref)]));
        standby.ExpectMsg<CheckpointChunk>();
        Watch(shipper);
        Sys.Stop(shipper);   // what the checkpointer does when a newer checkpoint is taken
        ExpectTerminated(shipper);

        var deadLetters = CreateTestProbe();
        Sys.EventStream.Subscribe(deadLetters.Ref, typeof(DeadLetter));
        var suppressed = CreateTestProbe();
        Sys.EventStream.Subscribe(suppressed.Ref, typeof(SuppressedDeadLetter));

        // The standby's answers for chunks that were in flight arrive after the stop.
        shipper.Tell(new CheckpointChunkReceived("kv", 1, "n2", info.Id, 0), standby.Ref);
        shipper.Tell(new CheckpointStored("kv", 1, "n2", info.Id, 17), standby.Ref);
        shipper.Tell(new CheckpointRejected("kv", 1, "n2", info.Id, "disk full"), standby.Ref);
        Assert.IsType<CheckpointChunkReceived>(suppressed.ExpectMsg<SuppressedDeadLetter>().Message);
        Assert.IsType<CheckpointStored>(suppressed.ExpectMsg<SuppressedDeadLetter>().Message);
        Assert.IsType<CheckpointRejected>(suppressed.ExpectMsg<SuppressedDeadLetter>().Message);

        // Anything else sent to it still is a dead letter (the subscription sees them).
        shipper.Tell("unexpected", standby.Ref);
        Assert.Equal("unexpected", deadLetters.ExpectMsg<DeadLetter>().Message);
        deadLetters.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }
}
