using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Xunit;

namespace Continuity.Core.Tests.Apps;

/// <summary>A standby's app actor when the owner drops it for lagging (its state directory is a real one).</summary>
public sealed class AppActorStandbyLagSpecs() : TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = INFO
    akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
    akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
    """))
{
    private const string Why = "its oldest unacknowledged packet has waited 10.4 s (3 packet(s) behind), beyond max-standby-lag = 10s";
    private readonly FakePlatform _platform = new();
    private readonly AppSpec _app = TestConfig.App("kv");
    private readonly string _dir = TestConfig.TempDir();

    private IActorRef Standby()
    {
        var actor = Sys.ActorOf(AppActor.Props(_app, _platform.Services, "node-2", "n2", _dir));
        actor.Tell(new OwnerProtocol.BecomeStandby("kv", 1, "node-1"));
        return actor;
    }

    private OwnerProtocol.NodeStatus StatusOf(IActorRef actor)
    {
        actor.Tell(new OwnerProtocol.GetNodeStatus("kv"));
        return ExpectMsg<OwnerProtocol.NodeStatus>();
    }

    [Fact]
    public void A_standby_told_it_is_dropped_answers_and_reports_its_log_incomplete_with_the_reason()
    {
        var actor = Standby();
        Assert.True(StatusOf(actor).LogComplete);

        actor.Tell(new OwnerProtocol.DropStandby("kv", 1, Why));

        Assert.Equal(("kv", 1L, "node-2"), ExpectMsg<OwnerProtocol.StandbyDropped>() is var d ? (d.App, d.Epoch, d.Node) : default);
        var status = StatusOf(actor);
        Assert.False(status.LogComplete);
        Assert.Equal(Why, status.Behind);
    }

    [Fact]
    public void The_mark_of_a_dropped_standby_survives_a_restart_of_its_node()
    {
        var actor = Standby();
        actor.Tell(new OwnerProtocol.DropStandby("kv", 1, Why));
        ExpectMsg<OwnerProtocol.StandbyDropped>();
        Watch(actor);
        Sys.Stop(actor);
        ExpectTerminated(actor);

        // The node process starts again: its journal alone shows a log that merely ends early.
        var restarted = Standby();

        var status = StatusOf(restarted);
        Assert.False(status.LogComplete);
        Assert.Equal(Why, status.Behind);
    }

    [Fact]
    public void A_drop_of_an_older_epoch_is_ignored()
    {
        var actor = Sys.ActorOf(AppActor.Props(_app, _platform.Services, "node-2", "n2", _dir));
        actor.Tell(new OwnerProtocol.BecomeStandby("kv", 3, "node-1"));

        actor.Tell(new OwnerProtocol.DropStandby("kv", 2, Why));

        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.True(StatusOf(actor).LogComplete);
    }
}
