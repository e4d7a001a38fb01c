using Akka.Actor;
using Akka.Cluster;
using Akka.Remote;
using Akka.TestKit.Xunit2;
using Continuity.Core.Tests.Support;
using Xunit;

namespace Continuity.Core.Tests.Membership;

/// <summary>
/// What a node does with Akka.Remote's notice that another system quarantined it, on three members in one process over
/// real Akka.Remote with the project's downing provider. The notice is published here as the transport publishes it;
/// the lab's chaos runs produce the real one (a primary hung past its removal: ChaosFaultsEndToEndTests).
/// </summary>
[Collection("cluster")]
public sealed class QuarantinedByMemberSpecs : TestKit, IAsyncLifetime
{
    private List<ActorSystem> _members = new();

    public QuarantinedByMemberSpecs() : base(Config()) { }

    // The tests' base config does not shut a downed node down (run-coordinated-shutdown-when-down = off): a shutdown
    // seen here comes from the quarantine notice alone.
    private static Akka.Configuration.Config Config() => TestConfig.Node("""
        akka.loglevel = WARNING
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        """);

    public async Task InitializeAsync() => _members = await InProcessCluster.FormAsync(this, 2, _ => Config());

    public Task DisposeAsync() => InProcessCluster.TerminateOthersAsync(_members);

    private static void Quarantine(ActorSystem node, Address by) =>
        node.EventStream.Publish(new ThisActorSystemQuarantinedEvent(Cluster.Get(node).SelfAddress, by));

    [Fact]
    public async Task A_node_quarantined_by_a_live_member_shuts_down_as_a_downed_node()
    {
        var (a, b) = (_members[0], _members[2]);
        Quarantine(b, Cluster.Get(a).SelfAddress);

        var terminated = await Task.WhenAny(b.WhenTerminated, Task.Delay(TimeSpan.FromSeconds(20)));
        Assert.True(terminated == b.WhenTerminated, "the quarantined node did not shut down within 20 s");
        // The reason the node program turns into its "downed" exit status, which makes its supervisor start it again.
        Assert.Equal(CoordinatedShutdown.ClusterDowningReason.Instance, CoordinatedShutdown.Get(b).ShutdownReason);
        Assert.Null(CoordinatedShutdown.Get(a).ShutdownReason);
    }

    [Fact]
    public async Task A_notice_from_a_node_that_is_no_member_of_this_nodes_view_is_ignored()
    {
        // What a removed node's stale view can make it send to the members it removed in that view.
        var a = _members[0];
        var removed = Cluster.Get(a).SelfAddress.WithPort(1);
        Quarantine(a, removed);

        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.False(a.WhenTerminated.IsCompleted);
        Assert.Null(CoordinatedShutdown.Get(a).ShutdownReason);
        Assert.All(_members, m => Assert.Equal(3, Cluster.Get(m).State.Members.Count(x => x.Status == MemberStatus.Up)));
    }
}
