using Akka.Actor;
using Akka.Cluster;
using Akka.Remote;
using Akka.Remote.Transport;
using Akka.TestKit;

namespace Continuity.Core.Tests.Support;

/// <summary>
/// Links between in-process cluster members whose remoting runs through Akka's throttler transport
/// (<c>akka.remote.dot-netty.tcp.applied-adapters = [trttl]</c>). A cut link leaves heartbeats unanswered both ways,
/// so each end records the other unreachable.
/// </summary>
internal static class ClusterLinks
{
    /// <summary>Drops everything between the two members, both ways.</summary>
    public static Task<bool> Cut(ActorSystem one, ActorSystem other) => Throttle(one, other, Blackhole.Instance);

    public static Task<bool> Mend(ActorSystem one, ActorSystem other) => Throttle(one, other, Unthrottled.Instance);

    private static Task<bool> Throttle(ActorSystem one, ActorSystem other, ThrottleMode mode) =>
        ((RemoteActorRefProvider)((ExtendedActorSystem)one).Provider).Transport
            .ManagementCommand(new SetThrottle(Cluster.Get(other).SelfAddress, ThrottleTransportAdapter.Direction.Both, mode));

    /// <summary>A probe that receives every <see cref="ClusterEvent.MemberDowned"/> the observer sees.</summary>
    public static TestProbe WatchDowning(TestKitBase kit, ActorSystem observer)
    {
        var probe = kit.CreateTestProbe();
        Cluster.Get(observer).Subscribe(probe.Ref, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberDowned));
        return probe;
    }
}
