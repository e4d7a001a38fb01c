using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Log;
using Continuity.Core.Tests.Support;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Log;

/// <summary>A standby log whose SQLite journal lives on a real file system that the test fills up.</summary>
// In the "cluster" collection: mounting and filling a file system is slow enough to upset timing-sensitive tests run alongside.
[Collection("cluster")]
public sealed class StandbyLogJournalFailureSpecs : TestKit
{
    private readonly TinyDisk _disk;

    public StandbyLogJournalFailureSpecs() : this(new TinyDisk()) { }

    private StandbyLogJournalFailureSpecs(TinyDisk disk) : base(SqliteConfig(disk.Dir)) => _disk = disk;

    internal static Config SqliteConfig(string dir) =>
        ContinuityApps.PersistenceConfig(TestConfig.Reference, dir)
            .WithFallback(ConfigurationFactory.ParseString("""
                akka.actor.provider = local
                akka.persistence.journal.plugin = "akka.persistence.journal.sql"
                akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
                """))
            .WithFallback(TestConfig.Node())
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing) _disk.Dispose();
    }

    // Packets big enough that the rows need new database pages, not just the free room of existing ones.
    private static Append Batch(long epoch, long first, int count, int size = 1) =>
        new("kv", epoch, first, Enumerable.Range(0, count).Select(i => new LoggedPacket(first + i, Enumerable.Repeat((byte)(first + i), size).ToArray())).ToArray());

    private IActorRef FailByFillingTheDisk()
    {
        var log = ChildActorOf(Props.Create(() => new StandbyLog("kv", "n1", null, false)));
        Watch(log);
        log.Tell(Batch(1, 1, 3));
        Assert.Equal(3, ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);

        _disk.Fill();
        log.Tell(Batch(1, 4, 4, size: 16 * 1024));
        var failed = ExpectMsg<StandbyLogProtocol.JournalFailed>(TimeSpan.FromSeconds(20));
        Assert.StartsWith("SQLite journal", failed.Journal);
        Assert.Contains("database or disk is full", failed.Reason);
        ExpectTerminated(log, TimeSpan.FromSeconds(5));
        return log;
    }

    [Fact]
    public void A_log_whose_disk_fills_tells_its_parent_the_journal_and_the_error_and_stops_without_acknowledging_the_batch()
    {
        FailByFillingTheDisk();
        ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // in particular no Appended for 4..7
    }

    [Fact]
    public void A_log_restarted_while_the_disk_is_still_full_does_not_claim_its_journal_works()
    {
        FailByFillingTheDisk();
        var again = ChildActorOf(Props.Create(() => new StandbyLog("kv", "n1", null, true)));
        Watch(again);
        var failed = ExpectMsg<StandbyLogProtocol.JournalFailed>(TimeSpan.FromSeconds(20));
        Assert.Contains("disk is full", failed.Reason);
        ExpectTerminated(again, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_log_restarted_after_the_disk_was_freed_works_accepts_the_gap_its_absence_left_and_is_complete_only_once_a_checkpoint_covers_it()
    {
        FailByFillingTheDisk();
        _disk.Free();

        var again = ChildActorOf(Props.Create(() => new StandbyLog("kv", "n1", null, true)));
        ExpectMsg<StandbyLogProtocol.JournalWorks>(TimeSpan.FromSeconds(20));
        again.Tell(new StandbyLogProtocol.GetTail());
        // What was acknowledged before the failure is still there; the batch that failed was never acknowledged.
        Assert.Equal([1L, 2, 3], ExpectMsg<StandbyLogProtocol.Tail>().AfterMark.Select(p => p.Seq));

        // Meanwhile the primary released 4..8 with the other standbys: the next batch it sends here starts at 9.
        again.Tell(Batch(1, 9, 2));
        Assert.Equal(10, ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);
        again.Tell(new StandbyLogProtocol.GetStatus());
        Assert.False(ExpectMsg<StandbyLogProtocol.Status>().Complete);

        // A checkpoint up to 8 covers the hole.
        again.Tell(new CheckpointComplete("kv", 1, "e1-fresh", 8));
        again.Tell(new StandbyLogProtocol.GetStatus());
        var status = ExpectMsg<StandbyLogProtocol.Status>(TimeSpan.FromSeconds(20));
        Assert.True(status.Complete);
        Assert.Equal(10, status.LastSeq);

        // Once whole again, a gap is refused as before (a batch lost in transit).
        again.Tell(Batch(1, 20, 1));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_log_that_recovers_a_hole_from_its_journal_still_knows_it_is_incomplete_after_a_restart()
    {
        FailByFillingTheDisk();
        _disk.Free();
        var again = ChildActorOf(Props.Create(() => new StandbyLog("kv", "n1", null, true)));
        ExpectMsg<StandbyLogProtocol.JournalWorks>(TimeSpan.FromSeconds(20));
        again.Tell(Batch(1, 9, 2));
        ExpectMsg<Appended>(TimeSpan.FromSeconds(20));
        Watch(again);
        Sys.Stop(again);
        ExpectTerminated(again);

        var restarted = ChildActorOf(Props.Create(() => new StandbyLog("kv", "n1", null, false)));
        restarted.Tell(new StandbyLogProtocol.GetStatus());
        var status = ExpectMsg<StandbyLogProtocol.Status>(TimeSpan.FromSeconds(20));
        Assert.False(status.Complete);
        Assert.Equal(10, status.LastSeq);
    }
}
