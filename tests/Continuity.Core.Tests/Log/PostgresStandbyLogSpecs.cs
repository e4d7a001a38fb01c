using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Log;
using Continuity.Core.Tests.Support;
using Npgsql;
using Xunit;
using Xunit.Abstractions;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Log;

/// <summary>
/// The standby's packet log on PostgreSQL (continuity.persistence.backend = postgresql), against a real server the
/// fixture starts. Each test gets its own empty database: the journal's tables must appear on their own.
/// </summary>
public sealed class PostgresStandbyLogSpecs : TestKit, IClassFixture<PostgresServer>
{
    private const string PersistenceId = "log-kv-n1";
    private static readonly TimeSpan Slow = TimeSpan.FromSeconds(30);

    private readonly PostgresServer _pg;
    private readonly string _connectionString;
    private readonly Config _config;

    public PostgresStandbyLogSpecs(PostgresServer pg, ITestOutputHelper output) : this(pg, pg.CreateDatabase(), output) { }

    private PostgresStandbyLogSpecs(PostgresServer pg, string connectionString, ITestOutputHelper output)
        : this(pg, connectionString, NodeConfig(connectionString), output) { }

    private PostgresStandbyLogSpecs(PostgresServer pg, string connectionString, Config config, ITestOutputHelper output)
        : base(config, "pg-standby", output)
    {
        _pg = pg;
        _connectionString = connectionString;
        _config = config;
    }

    /// <summary>What a node's file says to use PostgreSQL, turned into the journal settings the way the node host does it.</summary>
    private static Config NodeConfig(string connectionString, string extra = "")
    {
        var node = ConfigurationFactory.ParseString($$"""
            {{extra}}
            continuity.persistence {
              backend = postgresql
              postgresql.connection-string = "{{connectionString}}"
            }
            """).WithFallback(TestConfig.Node());
        return ContinuityApps.PersistenceConfig(node, stateDir: "/nonexistent-unused-for-postgresql")
            .WithFallback(ConfigurationFactory.ParseString("""
                akka.actor.provider = local
                akka.persistence.journal.plugin = "akka.persistence.journal.sql"
                akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
                """))
            .WithFallback(node)
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
    }

    private static Append Batch(long epoch, long first, int count, int size = 1) =>
        new("kv", epoch, first, Enumerable.Range(0, count).Select(i => new LoggedPacket(first + i, Payload(first + i, size))).ToArray());

    // Distinct bytes per packet, including 0x00 and 0xFF, so a bytea round trip that mangles anything shows.
    private static byte[] Payload(long seq, int size) => Enumerable.Range(0, size).Select(i => (byte)((seq * 31 + i * 7) % 256)).ToArray();

    private static Props LogProps() => Props.Create(() => new StandbyLog("kv", "n1", null));

    private IActorRef StartLog() => Sys.ActorOf(LogProps());

    private void Stop(IActorRef log)
    {
        Watch(log);
        Sys.Stop(log);
        ExpectTerminated(log);
    }

    [Fact]
    public void Postgresql_configuration_selects_the_sql_journal_with_the_postgresql_dialect_for_journal_and_snapshots()
    {
        var c = Sys.Settings.Config;
        Assert.Equal("akka.persistence.journal.sql", c.GetString("akka.persistence.journal.plugin"));
        Assert.Equal("PostgreSQL.15", c.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal("PostgreSQL.15", c.GetString("akka.persistence.snapshot-store.sql.provider-name"));
        Assert.Equal(_connectionString, c.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Equal(_connectionString, c.GetString("akka.persistence.snapshot-store.sql.connection-string"));
        Assert.True(c.GetBoolean("akka.persistence.journal.sql.auto-initialize"));
        Assert.Contains("PostgreSQL.15", JournalBackend.PostgresProviders);
    }

    [Fact]
    public void Standby_log_creates_its_table_in_an_empty_database_and_acknowledges_each_batch_only_once_its_row_is_written()
    {
        Assert.Empty(JournalRows()); // the database is new: no journal table yet

        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        Assert.Equal(3, ExpectMsg<Appended>(Slow).Seq);
        // The acknowledgement came after the write: the row is there the moment the ack is.
        Assert.Equal([1L], JournalRows().Select(r => r.Seq));

        log.Tell(Batch(1, 4, 2));
        Assert.Equal(5, ExpectMsg<Appended>(Slow).Seq);
        Assert.Equal([1L, 2], JournalRows().Select(r => r.Seq));

        log.Tell(Batch(1, 6, 50, size: 1400));
        var ack = ExpectMsg<Appended>(Slow);
        Assert.Equal(("kv", 1L, "n1", 55L), (ack.App, ack.Epoch, ack.Node, ack.Seq));
        // One event per batch: 55 packets, 3 rows.
        Assert.Equal([1L, 2, 3], JournalRows().Select(r => r.Seq));
        Assert.All(JournalRows(), r => Assert.False(r.Deleted));
    }

    [Fact]
    public async Task Standby_log_recovers_the_same_packets_in_order_in_a_new_actor_system_on_the_same_database()
    {
        var log = StartLog();
        var batches = new[] { Batch(1, 1, 3, size: 60), Batch(1, 4, 2, size: 1), Batch(1, 6, 20, size: 1500), Batch(1, 26, 1, size: 9000) };
        foreach (var b in batches) log.Tell(b);
        foreach (var b in batches) Assert.Equal(b.LastSeq, ExpectMsg<Appended>(Slow).Seq);
        var sent = batches.SelectMany(b => b.Packets).ToList();

        // The node restarts: a new actor system, the same database.
        await Sys.Terminate();
        var second = ActorSystem.Create("pg-standby-restarted", _config);
        try
        {
            var probe = CreateTestProbe(second);
            var again = second.ActorOf(LogProps());
            again.Tell(new StandbyLogProtocol.GetTail(), probe.Ref);
            var tail = probe.ExpectMsg<StandbyLogProtocol.Tail>(Slow);
            Assert.Equal((1L, 0L), (tail.Epoch, tail.Mark));
            Assert.Equal(sent.Select(p => p.Seq), tail.AfterMark.Select(p => p.Seq));
            for (var i = 0; i < sent.Count; i++) Assert.Equal(sent[i].Packet, tail.AfterMark[i].Packet);

            // A batch already held is acknowledged again, not logged twice.
            again.Tell(Batch(1, 26, 1, size: 9000), probe.Ref);
            Assert.Equal(26, probe.ExpectMsg<Appended>(Slow).Seq);
            again.Tell(Batch(1, 27, 2), probe.Ref);
            Assert.Equal(28, probe.ExpectMsg<Appended>(Slow).Seq);
            Assert.Equal([1L, 2, 3, 4, 5], JournalRows().Select(r => r.Seq));
        }
        finally
        {
            await second.Terminate();
        }
    }

    [Fact]
    public void Complete_checkpoint_deletes_the_journal_rows_up_to_its_mark_and_keeps_the_later_ones()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 3));
        log.Tell(Batch(1, 4, 3));
        log.Tell(Batch(1, 7, 3));
        for (var i = 0; i < 3; i++) ExpectMsg<Appended>(Slow);

        // Entry 4: the checkpoint, covering batches 1 and 2 (packets 1..6).
        log.Tell(new CheckpointComplete("kv", 1, "e1-a", 6));
        log.Tell(new StandbyLogProtocol.GetTail());
        var tail = ExpectMsg<StandbyLogProtocol.Tail>(Slow);
        Assert.Equal(6, tail.Mark);
        Assert.Equal([7L, 8, 9], tail.AfterMark.Select(p => p.Seq));

        // Rows 1 and 2 are no longer live; the plugin removes all but the newest of them, which it keeps flagged
        // deleted to remember the highest sequence number. Row 3 (packets 7..9) and the checkpoint's row 4 stay.
        AwaitAssert(() => Assert.Equal([(2L, true), (3L, false), (4L, false)], JournalRows().Select(r => (r.Seq, r.Deleted))), Slow);

        // The next checkpoint, in a new epoch, makes everything before it obsolete, its predecessor included.
        log.Tell(Batch(2, 1, 2));
        ExpectMsg<Appended>(Slow);                                   // entry 5
        log.Tell(new CheckpointComplete("kv", 2, "e2-a", 1));      // entry 6
        AwaitAssert(() => Assert.Equal([(4L, true), (5L, false), (6L, false)], JournalRows().Select(r => (r.Seq, r.Deleted))), Slow);

        Stop(log);
        var again = StartLog();
        again.Tell(new StandbyLogProtocol.GetTail());
        var recovered = ExpectMsg<StandbyLogProtocol.Tail>(Slow);
        Assert.Equal((2L, 1L), (recovered.Epoch, recovered.Mark));
        Assert.Equal([2L], recovered.AfterMark.Select(p => p.Seq));
    }

    [Fact]
    public void Unreachable_server_is_reported_with_the_backend_and_its_host_and_no_batch_is_acknowledged()
    {
        // A port nothing listens on: connection refused at once.
        var closed = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        closed.Start();
        var port = ((System.Net.IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        var cs = $"Host=localhost;Port={port};Database=continuity_n1;Username=continuity;Password=do-not-print-me;Timeout=5";

        var (probe, recovery, acked) = RunAgainstBrokenJournal(cs);

        Assert.False(acked, "a batch was acknowledged although nothing could be written");
        var journal = $"PostgreSQL journal (host localhost, port {port}, database continuity_n1, user continuity)";
        // The node says at once which database it cannot reach and why ...
        Assert.Contains($"cannot reach the {journal}", probe);
        Assert.Contains("Failed to connect to", probe);
        Assert.Contains("Connection refused", probe);
        // ... and the standby log, when its recovery gives up, says which journal it was waiting for.
        Assert.Contains($"[kv] cannot read the packet log log-kv-n1 from the {journal}", recovery);
        foreach (var line in new[] { probe, recovery })
        {
            Assert.DoesNotContain("do-not-print-me", line);
            Assert.DoesNotContain("   at ", line); // a reason, not a stack
        }
    }

    [Fact]
    public void Missing_database_is_reported_with_the_backend_the_host_and_what_the_server_said()
    {
        var cs = _pg.ConnectionString("no_such_database");

        var (probe, recovery, acked) = RunAgainstBrokenJournal(cs);

        Assert.False(acked);
        var journal = $"PostgreSQL journal (host {_pg.Host}, port {_pg.Port}, database no_such_database, user {PostgresServer.Role})";
        Assert.Contains($"cannot reach the {journal}", probe);
        Assert.Contains("3D000: database \"no_such_database\" does not exist", probe); // the server's own words
        Assert.Contains($"from the {journal}", recovery);
        foreach (var line in new[] { probe, recovery })
        {
            Assert.DoesNotContain(PostgresServer.RolePassword, line);
            Assert.DoesNotContain("   at ", line);
        }
    }

    [Fact]
    public void Reachable_server_is_reported_once_with_its_version()
    {
        var info = CreateTestProbe();
        Sys.EventStream.Subscribe(info.Ref, typeof(Info));
        var probe = Sys.ActorOf(JournalProbe.PropsFor(Sys.Settings.Config)!);
        Watch(probe);
        var line = info.FishForMessage<Info>(e => e.Message?.ToString()?.Contains("packet-log journal") == true, Slow).Message.ToString()!;
        Assert.Contains($"the PostgreSQL journal (host {_pg.Host}, port {_pg.Port}", line);
        Assert.Contains("answers (PostgreSQL 15", line);
        ExpectTerminated(probe, Slow); // nothing left to watch
    }

    [Fact]
    public void Write_failure_is_reported_and_the_batch_is_never_acknowledged()
    {
        var log = StartLog();
        log.Tell(Batch(1, 1, 2));
        Assert.Equal(2, ExpectMsg<Appended>(Slow).Seq);

        // The table vanishes under the running journal: the next write fails.
        using (var c = new NpgsqlConnection(_connectionString))
        {
            c.Open();
            using var drop = new NpgsqlCommand("DROP TABLE journal", c);
            drop.ExecuteNonQuery();
        }

        var errors = CreateTestProbe();
        Sys.EventStream.Subscribe(errors.Ref, typeof(Error));
        Watch(log);
        log.Tell(Batch(1, 3, 2));
        var error = errors.FishForMessage<Error>(e => e.Message?.ToString()?.Contains("cannot write entry") == true, Slow).Message.ToString()!;
        Assert.Contains($"PostgreSQL journal (host {_pg.Host}, port {_pg.Port}", error);
        Assert.Contains("42P01", error); // undefined_table
        Assert.DoesNotContain("   at ", error);
        ExpectTerminated(log, Slow);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // no Appended for the failed batch
    }

    /// <summary>
    /// Starts, on a separate actor system whose journal is <paramref name="connectionString"/>, what a node starts: the
    /// journal probe and a standby log, sends the log a batch, and returns what each logged and whether the batch was
    /// acknowledged. The recovery timeout is shortened from its 30 s so the test need not wait for it.
    /// </summary>
    private (string Probe, string Recovery, bool Acked) RunAgainstBrokenJournal(string connectionString)
    {
        var system = ActorSystem.Create("pg-broken", NodeConfig(connectionString, "akka.persistence.journal.sql.recovery-event-timeout = 4s"));
        try
        {
            var sender = CreateTestProbe(system);
            var errors = CreateTestProbe(system);
            system.EventStream.Subscribe(errors.Ref, typeof(Error));
            system.ActorOf(JournalProbe.PropsFor(system.Settings.Config, retry: TimeSpan.FromSeconds(1))!, "journal-probe");
            var log = system.ActorOf(LogProps());
            log.Tell(Batch(1, 1, 2), sender.Ref);

            string? probe = null, recovery = null;
            errors.FishForMessage<Error>(e =>
            {
                var text = e.Message?.ToString() ?? "";
                if (text.Contains("packet-log journal: cannot reach")) probe ??= text;
                if (text.Contains("cannot read the packet log")) recovery ??= text;
                return probe is not null && recovery is not null;
            }, Slow);
            var acked = sender.ReceiveWhile(TimeSpan.FromMilliseconds(500), m => m).OfType<Appended>().Any();
            return (probe!, recovery!, acked);
        }
        finally
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(20));
        }
    }

    private sealed record Row(long Seq, bool Deleted);

    /// <summary>The journal table's rows of this log, straight from PostgreSQL; none when the table does not exist yet.</summary>
    private List<Row> JournalRows()
    {
        using var c = new NpgsqlConnection(_connectionString);
        c.Open();
        using (var exists = new NpgsqlCommand("SELECT to_regclass('journal') IS NOT NULL", c))
            if (!(bool)exists.ExecuteScalar()!) return [];
        using var cmd = new NpgsqlCommand(
            "SELECT sequence_number, deleted FROM journal WHERE persistence_id = @p ORDER BY sequence_number", c);
        cmd.Parameters.AddWithValue("p", PersistenceId);
        using var r = cmd.ExecuteReader();
        var rows = new List<Row>();
        while (r.Read()) rows.Add(new Row(r.GetInt64(0), r.GetBoolean(1)));
        return rows;
    }
}
