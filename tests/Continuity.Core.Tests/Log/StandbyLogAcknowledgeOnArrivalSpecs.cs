using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Log;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Log;

/// <summary>A standby log on the node's real SQLite journal with <c>continuity.persistence.acknowledge = received</c>.</summary>
public sealed class StandbyLogAcknowledgeOnArrivalSpecs() : TestKit(
    ConfigurationFactory.ParseString("continuity.persistence.acknowledge = received").WithFallback(StandbyLogSpecs.SqliteConfig(TestConfig.TempDir())))
{
    private static Append Batch(long epoch, long first, int count) =>
        new("kv", epoch, first, Enumerable.Range(0, count).Select(i => new LoggedPacket(first + i, [(byte)(first + i)])).ToArray());

    private IActorRef StartLog() => Sys.ActorOf(Props.Create(() => new StandbyLog("kv", "n1")));

    private StandbyLogProtocol.Status StatusOf(IActorRef log)
    {
        log.Tell(new StandbyLogProtocol.GetStatus());
        return ExpectMsg<StandbyLogProtocol.Status>(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void A_takeover_reads_a_tail_that_holds_every_packet_acknowledged_before_it_asked()
    {
        var log = StartLog();
        // Acknowledged as they arrive, written after: the question comes while most writes are still under way.
        for (var i = 0; i < 50; i++) log.Tell(Batch(1, 1 + i * 4, 4));
        log.Tell(new StandbyLogProtocol.GetTail());

        var acked = ReceiveN(50, TimeSpan.FromSeconds(20)).Cast<Appended>().Max(a => a.Seq);
        var tail = ExpectMsg<StandbyLogProtocol.Tail>(TimeSpan.FromSeconds(20));
        Assert.Equal(200, acked);
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), tail.AfterMark.Select(p => p.Seq));
    }

    [Fact]
    public void A_restarted_log_is_no_successor_until_a_checkpoint_received_since_covers_what_it_acknowledged()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        Assert.Equal(3, ExpectMsg<Appended>(TimeSpan.FromSeconds(10)).Seq);
        Assert.True(StatusOf(log).Complete);
        Watch(log);
        Sys.Stop(log);
        ExpectTerminated(log);

        // It may have acknowledged packets that never reached its journal: it must not be elected on what it holds.
        var restarted = StartLog();
        var status = StatusOf(restarted);
        Assert.Equal(3, status.LastSeq);
        Assert.False(status.Complete);

        restarted.Tell(new CheckpointComplete("kv", 1, "e1-a", 3));
        AwaitAssert(() => Assert.True(StatusOf(restarted).Complete), TimeSpan.FromSeconds(10));
    }
}

/// <summary>The same with a journal whose writes the test holds (<see cref="Support.GatedJournal"/>, as a slow disk
/// does), so that what happens before and after a write can be told apart.</summary>
public sealed class StandbyLogAcknowledgeOnArrivalGatedSpecs() : TestKit(
    ConfigurationFactory.ParseString("continuity.persistence.acknowledge = received")
        .WithFallback(Support.GatedJournal.Config(GateName)).WithFallback(TestConfig.Node("akka.actor.provider = local")))
{
    private const string GateName = "standby-log-ack-on-arrival";

    [Fact]
    public void A_batch_is_acknowledged_before_its_write_and_the_tail_waits_for_the_write()
    {
        var gate = Support.GatedJournal.GateNamed(GateName);
        var log = Sys.ActorOf(Props.Create(() => new StandbyLog("kv", "n1")));
        log.Tell(new StandbyLogProtocol.GetStatus()); // recovered (reads are not held)
        ExpectMsg<StandbyLogProtocol.Status>(TimeSpan.FromSeconds(10));
        gate.Close();
        try
        {
            log.Tell(new Append("kv", 1, 1, [new LoggedPacket(1, [1]), new LoggedPacket(2, [2])]));
            Assert.Equal(2, ExpectMsg<Appended>(TimeSpan.FromSeconds(5)).Seq);

            log.Tell(new StandbyLogProtocol.GetTail());
            ExpectNoMsg(TimeSpan.FromMilliseconds(500)); // a takeover reading now would miss packets 1 and 2
        }
        finally { gate.Open(); }
        var tail = ExpectMsg<StandbyLogProtocol.Tail>(TimeSpan.FromSeconds(5));
        Assert.Equal([1L, 2], tail.AfterMark.Select(p => p.Seq));
    }
}
