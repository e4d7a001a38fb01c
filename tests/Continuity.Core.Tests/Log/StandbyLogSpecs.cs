using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Log;
using Microsoft.Data.Sqlite;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Log;

public sealed class StandbyLogSpecs : TestKit
{
    private readonly string _dir;

    public StandbyLogSpecs() : this(TestConfig.TempDir()) { }

    private StandbyLogSpecs(string dir) : base(SqliteConfig(dir)) => _dir = dir;

    // The real journal of a node: Akka.Persistence.Sql on a SQLite file in the state directory, in the journal mode the
    // node sets (ContinuityApps.Start).
    internal static Config SqliteConfig(string dir)
    {
        Continuity.Core.Security.RootOnly.PrepareStateDir(dir);
        SqliteJournal.Apply(Path.Combine(dir, "journal.db"), TestConfig.Reference.GetString(SqliteJournal.JournalModeKey));
        return ContinuityApps.PersistenceConfig(TestConfig.Reference, dir)
            .WithFallback(ConfigurationFactory.ParseString("""
                akka.actor.provider = local
                akka.persistence.journal.plugin = "akka.persistence.journal.sql"
                akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
                """))
            .WithFallback(TestConfig.Node())
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
    }

    private static Append Batch(long epoch, long first, int count) =>
        new("kv", epoch, first, Enumerable.Range(0, count).Select(i => new LoggedPacket(first + i, [(byte)(first + i)])).ToArray());

    private IActorRef StartLog() => Sys.ActorOf(Props.Create(() => new StandbyLog("kv", "n1")));

    private void Stop(IActorRef log)
    {
        Watch(log);
        Sys.Stop(log);
        ExpectTerminated(log);
    }

    [Fact]
    public void The_sqlite_journal_is_a_write_ahead_log_synced_at_every_commit()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 2));
        ExpectMsg<Appended>(TimeSpan.FromSeconds(20));

        var db = Path.Combine(_dir, "journal.db");
        Assert.Equal("wal", SqliteJournal.Read(db, "journal_mode"));
        // FULL (2): a WAL commit is synced before it returns, so the acknowledgement follows a durable write. NORMAL (1)
        // would sync only at WAL checkpoints, and a power loss could take acknowledged packets with it.
        Assert.Equal("2", SqliteJournal.Read(db, "synchronous"));
        Assert.True(File.Exists(db + "-wal"));
        Assert.Equal(Continuity.Core.Security.RootOnly.PrivateFileMode, File.GetUnixFileMode(db + "-wal"));
    }

    [Fact]
    public void The_journal_stage_and_the_packets_per_batch_are_reported_once_written()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        log.Tell(Batch(1, 4, 2));
        ExpectMsg<Appended>(TimeSpan.FromSeconds(20));
        ExpectMsg<Appended>();

        log.Tell(new StandbyLogProtocol.GetStatus());
        var stages = ExpectMsg<StandbyLogProtocol.Status>().Stages!;

        Assert.Equal(2, stages.Single(s => s.Stage == "journal").Count);
        var sizes = stages.Single(s => s.Stage == "batch-packets");
        Assert.Equal((2L, 5.0), (sizes.Count, sizes.Sum));
    }

    [Fact]
    public void Standby_log_persists_batches_and_survives_a_restart()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        log.Tell(Batch(1, 4, 2));
        Assert.Equal(3, ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);
        Assert.Equal(5, ExpectMsg<Appended>().Seq);
        Stop(log);
        Assert.True(File.Exists(Path.Combine(_dir, "journal.db")));

        var again = StartLog();
        again.Tell(new StandbyLogProtocol.GetTail());
        var tail = ExpectMsg<StandbyLogProtocol.Tail>(TimeSpan.FromSeconds(20));
        Assert.Equal([1L, 2, 3, 4, 5], tail.AfterMark.Select(p => p.Seq));
        Assert.Equal([1, 2, 3, 4, 5], tail.AfterMark.Select(p => (int)p.Packet[0]));
        // A batch already held is acknowledged again, not logged twice.
        again.Tell(Batch(1, 4, 2));
        Assert.Equal(5, ExpectMsg<Appended>().Seq);
    }

    [Fact]
    public void Checkpoint_complete_truncates_the_log_up_to_its_mark()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        log.Tell(Batch(1, 4, 3));
        log.Tell(Batch(1, 7, 3));
        for (var i = 0; i < 3; i++) ExpectMsg<Appended>(TimeSpan.FromSeconds(20));

        log.Tell(new CheckpointComplete("kv", 1, "e1-a", 6));
        log.Tell(new StandbyLogProtocol.GetTail());
        var tail = ExpectMsg<StandbyLogProtocol.Tail>();
        Assert.Equal(6, tail.Mark);
        Assert.Equal([7L, 8, 9], tail.AfterMark.Select(p => p.Seq));

        // The journal rows of the two batches covered by the checkpoint go away.
        AwaitAssert(() => Assert.Equal(0, LiveRows("log-kv-n1", upToSequenceNr: 2)), TimeSpan.FromSeconds(10));
        Assert.Equal(1, LiveRows("log-kv-n1", upToSequenceNr: 3) );

        Stop(log);
        var again = StartLog();
        again.Tell(new StandbyLogProtocol.GetTail());
        var recovered = ExpectMsg<StandbyLogProtocol.Tail>(TimeSpan.FromSeconds(20));
        Assert.Equal((1L, 6L), (recovered.Epoch, recovered.Mark));
        Assert.Equal([7L, 8, 9], recovered.AfterMark.Select(p => p.Seq));
    }

    [Fact]
    public void A_batch_after_a_lost_one_is_refused_but_a_stream_resumed_by_the_primary_is_accepted_and_marks_the_log_incomplete()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        Assert.Equal(3, ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);

        // 4..9 never arrived: acknowledging 10.. would let the primary release packets this log lacks.
        log.Tell(Batch(1, 10, 2));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        // The primary dropped this node from its standbys for a while and now adds it again, resuming at 12.
        log.Tell(new StreamFrom("kv", 1, 12));
        log.Tell(Batch(1, 12, 2));
        Assert.Equal(13, ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);
        log.Tell(new StandbyLogProtocol.GetStatus());
        Assert.False(ExpectMsg<StandbyLogProtocol.Status>().Complete); // not a successor: 4..11 are missing

        // A checkpoint covering the hole makes it whole again.
        log.Tell(new CheckpointComplete("kv", 1, "e1-b", 11));
        log.Tell(new StandbyLogProtocol.GetStatus());
        Assert.True(ExpectMsg<StandbyLogProtocol.Status>().Complete);
    }

    [Fact]
    public void Once_the_node_follows_a_newer_epoch_the_old_primary_gets_no_more_acknowledgements()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        Assert.Equal(3, ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);

        // A batch still being written when the node learns of epoch 2 (it starts a takeover): the takeover may read
        // the tail before the write ends, so the old primary must never be told it is logged.
        log.Tell(Batch(1, 4, 2));
        log.Tell(new StandbyLogProtocol.Fence(2));
        // The status answer comes once the fence is in. An acknowledgement the journal gave before that is fair (a
        // loaded machine can write the batch before the fence arrives); none may follow it.
        log.Tell(new StandbyLogProtocol.GetStatus());
        FishForMessage(m => m is StandbyLogProtocol.Status, TimeSpan.FromSeconds(20));
        log.Tell(Batch(1, 6, 2));
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));

        // The new primary's batches are acknowledged as usual.
        log.Tell(Batch(2, 1, 2));
        var ack = ExpectMsg<Appended>(TimeSpan.FromSeconds(20));
        Assert.Equal((2L, 2L), (ack.Epoch, ack.Seq));
    }

    private long LiveRows(string persistenceId, long upToSequenceNr)
    {
        using var c = new SqliteConnection($"Data Source={Path.Combine(_dir, "journal.db")}");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id = $p AND sequence_number <= $n AND deleted = 0";
        cmd.Parameters.AddWithValue("$p", persistenceId);
        cmd.Parameters.AddWithValue("$n", upToSequenceNr);
        return (long)cmd.ExecuteScalar()!;
    }
}
