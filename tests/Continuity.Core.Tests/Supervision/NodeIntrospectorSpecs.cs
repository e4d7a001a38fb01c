using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Continuity.Core.Supervision;
using Xunit;
using static Continuity.Core.Supervision.IntrospectionProtocol;

namespace Continuity.Core.Tests.Supervision;

/// <summary>The node's introspection actor with a fake OS and fake or real app actors.</summary>
public sealed class NodeIntrospectorSpecs() : TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = INFO
    akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
    """))
{
    private sealed class FakeProbe : INodeProbe
    {
        private readonly Queue<CpuTicks> _ticks = new();
        public Exception? Throw;
        public int Reads;
        private CpuTicks? _previous;
        public FakeProbe(params CpuTicks[] ticks) { foreach (var t in ticks) _ticks.Enqueue(t); }

        public NodeReading Read()
        {
            Interlocked.Increment(ref Reads);
            if (Throw is not null) throw Throw;
            // Past the given counters the machine keeps the pace of the last interval: a sample taken after the last
            // given one must not read as an idle interval (the share would drop to 0 before the test looked).
            var cpu = _ticks.Dequeue();
            if (_ticks.Count == 0)
                _ticks.Enqueue(_previous is { } p ? new CpuTicks(cpu.Busy + cpu.Busy - p.Busy, cpu.Total + cpu.Total - p.Total) : cpu);
            _previous = cpu;
            return new NodeReading(cpu, 8L << 30, 6L << 30, 100L << 30, 40L << 30,
                new[] { new QueueFigures(0, 5, 1, 2) }.ToList(), 12345);
        }
    }

    /// <summary>Answers GetAppFigures like an app actor (or never, when silent).</summary>
    private sealed class FakeApp : ReceiveActor
    {
        public FakeApp(bool silent) =>
            Receive<GetAppFigures>(g => { if (!silent) Sender.Tell(new AppFigures(g.App, AppRole.Standby, 3, 0, 0, 42, null, null, 0, 0, 0, null)); });
    }

    private NodeMib AskMib(IActorRef introspector)
    {
        introspector.Tell(new GetMib());
        return ExpectMsg<NodeMib>(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void The_first_sample_reports_memory_disk_queues_and_journal_and_cpu_since_boot()
    {
        var probe = new FakeProbe(new CpuTicks(250, 1000));
        var introspector = Sys.ActorOf(NodeIntrospector.Props("n1", "akka.tcp://continuity@10.0.0.1:4053", probe, TimeSpan.FromMinutes(1), [], "/user"));

        var mib = AskMib(introspector);

        Assert.Equal(("n1", "akka.tcp://continuity@10.0.0.1:4053"), (mib.Node, mib.Address));
        var f = mib.Figures;
        Assert.Equal(25.0, f.CpuPercent);
        Assert.Equal((2L << 30, 8L << 30), (f.MemoryUsedBytes, f.MemoryTotalBytes));
        Assert.Equal((40L << 30, 100L << 30), (f.DiskFreeBytes, f.DiskTotalBytes));
        Assert.Equal(new QueueFigures(0, 5, 1, 2), Assert.Single(f.Queues));
        Assert.Equal(12345, f.JournalBytes);
        Assert.Null(f.Error);
        Assert.Empty(mib.Apps);
    }

    [Fact]
    public void Later_samples_report_the_cpu_share_between_two_samples()
    {
        // Since boot 10% busy; over the next interval 300 of 400 ticks busy.
        var probe = new FakeProbe(new CpuTicks(100, 1000), new CpuTicks(400, 1400));
        var introspector = Sys.ActorOf(NodeIntrospector.Props("n1", "a", probe, TimeSpan.FromMilliseconds(200), [], "/user"));

        Assert.Equal(10.0, AskMib(introspector).Figures.CpuPercent);
        AwaitAssert(() => Assert.Equal(75.0, AskMib(introspector).Figures.CpuPercent), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void The_cpu_share_stays_between_0_and_100_whatever_the_counters_do()
    {
        Assert.Equal(0, NodeIntrospector.CpuPercent(new CpuTicks(500, 1000), new CpuTicks(400, 1000)));
        Assert.Equal(0, NodeIntrospector.CpuPercent(null, new CpuTicks(0, 0)));
        Assert.Equal(100, NodeIntrospector.CpuPercent(new CpuTicks(0, 0), new CpuTicks(900, 800)));
    }

    [Fact]
    public void Questions_are_answered_from_the_newest_sample_without_reading_the_os_again()
    {
        var probe = new FakeProbe(new CpuTicks(1, 2));
        var introspector = Sys.ActorOf(NodeIntrospector.Props("n1", "a", probe, TimeSpan.FromMinutes(1), [], "/user"));
        AskMib(introspector);

        for (var i = 0; i < 5; i++) AskMib(introspector);

        Assert.Equal(1, probe.Reads);
    }

    [Fact]
    public void An_os_that_cannot_be_read_is_reported_as_an_error_and_the_node_still_answers()
    {
        var probe = new FakeProbe(new CpuTicks(1, 2)) { Throw = new IOException("/proc is not mounted") };
        var introspector = Sys.ActorOf(NodeIntrospector.Props("n1", "a", probe, TimeSpan.FromMinutes(1), [], "/user"));

        var mib = AskMib(introspector);

        Assert.Equal("/proc is not mounted", mib.Figures.Error);
        Assert.Equal(0, mib.Figures.MemoryTotalBytes);
    }

    [Fact]
    public void Every_local_app_actor_that_answers_is_in_the_sample_and_a_silent_one_does_not_hold_it_up()
    {
        Sys.ActorOf(Props.Create(() => new FakeApp(false)), "app-kv");
        Sys.ActorOf(Props.Create(() => new FakeApp(true)), "app-mute");
        var introspector = Sys.ActorOf(NodeIntrospector.Props("n1", "a", new FakeProbe(new CpuTicks(1, 2)), TimeSpan.FromMinutes(1),
            ["kv", "mute", "gone"], "/user", appTimeout: TimeSpan.FromMilliseconds(300)));

        var mib = AskMib(introspector);

        var kv = Assert.Single(mib.Apps);
        Assert.Equal(("kv", AppRole.Standby, 3L, 42L), (kv.App, kv.Role, kv.Epoch, kv.LogDepth));
    }

    [Fact]
    public void A_primary_app_actor_reports_its_role_epoch_and_checkpoints()
    {
        var platform = new FakePlatform();
        var app = Sys.ActorOf(AppActor.Props(TestConfig.App("kv"), platform.Services, "node-1", "n1", TestConfig.TempDir()), "app-kv");
        var owner = CreateTestProbe();
        app.Tell(new OwnerProtocol.BecomePrimary("kv", 2, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>();
        app.Tell(new AppActorProtocol.CheckpointNow("kv"));
        var taken = ExpectMsg<AppsProtocol.CheckpointTaken>(TimeSpan.FromSeconds(10));
        var introspector = Sys.ActorOf(NodeIntrospector.Props("n1", "a", new FakeProbe(new CpuTicks(1, 2)), TimeSpan.FromMinutes(1), ["kv"], "/user"));

        var figures = Assert.Single(AskMib(introspector).Apps);

        Assert.Equal(("kv", AppRole.Primary, 2L), (figures.App, figures.Role, figures.Epoch));
        Assert.Equal(taken.Checkpoint.Id, figures.LastCheckpoint?.Id);
        Assert.Equal(1, figures.CheckpointCount);
        Assert.Null(figures.LastShip); // shipped to nobody: no standby
        Assert.Equal((0L, 0L), (figures.Takeovers, figures.PacketsReplayedTotal));
        Assert.Null(figures.LastSwitch);
    }
}
