using System.Reflection;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.SBR;
using Akka.Event;

namespace Continuity.Core.Membership;

/// <summary>
/// Akka.NET's split brain resolver, deciding only once the reachability <em>records</em> have been stable for
/// <c>stable-after</c>, not merely the set of members someone sees unreachable.
/// <para>
/// Akka.NET 1.5.73's resolver restarts its stable-after wait when a member enters or leaves that set. A member stays
/// in it until the last observer's record of it heals, so while a partition heals (one observer after another marks
/// it reachable again, and gossip carries each record to the leader) the set does not change and the wait runs out
/// in the middle of the heal. The leader then sees every member on either side of a stale record as "indirectly
/// connected" and downs them all: in the chaos lab a 5.6 s partition of the primary, healing just as the resolver
/// decided, downed every data node (docs/chaos.md, "A partition that heals as the resolver decides").
/// </para>
/// <para>
/// Configure with <c>akka.cluster.downing-provider-class = "Continuity.Core.Membership.StableReachabilityDowningProvider, Continuity.Core"</c>;
/// it reads the resolver's own <c>akka.cluster.split-brain-resolver</c> settings.
/// </para>
/// </summary>
public sealed class StableReachabilityDowningProvider : IDowningProvider
{
    private readonly SplitBrainResolverProvider _resolver;

    public StableReachabilityDowningProvider(ActorSystem system, Cluster cluster)
    {
        // Here, while the cluster extension starts, so that an Akka.Cluster without the event stops the node at once
        // instead of failing later inside the cluster daemon and leaving it with no downing at all.
        _ = ReachabilityRecordsWatch.ReachabilityChangedEvent;
        _resolver = new SplitBrainResolverProvider(system, cluster);
    }

    public TimeSpan DownRemovalMargin => _resolver.DownRemovalMargin;

    public Props DowningActorProps => ReachabilityRecordsWatch.Props(_resolver.DowningActorProps);
}

/// <summary>
/// Runs the resolver as its child and restarts the resolver's stable-after wait on every change of the reachability
/// records. The resolver's only public lever for that wait is a membership event; a <see cref="ClusterEvent.MemberUp"/>
/// of this node, sent while this node is Up, restarts the wait and changes nothing else it knows.
/// </summary>
internal sealed class ReachabilityRecordsWatch : UntypedActor
{
    /// <summary>
    /// Akka publishes <c>ClusterEvent.ReachabilityChanged</c> (internal) whenever any observer's record changes.
    /// If an Akka upgrade renames it, the node refuses to start rather than run the resolver without this guard.
    /// </summary>
    internal static readonly Type ReachabilityChangedEvent =
        typeof(ClusterEvent).GetNestedType("ReachabilityChanged", BindingFlags.Public | BindingFlags.NonPublic)
        ?? throw new InvalidOperationException(
            "Akka.Cluster no longer has ClusterEvent.ReachabilityChanged, which the downing provider " +
            "Continuity.Core.Membership.StableReachabilityDowningProvider watches. Check the split brain resolver of this " +
            "Akka.Cluster version for the healing-partition hazard, then adapt the provider.");

    private readonly Props _resolverProps;
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef _resolver = ActorRefs.Nobody;

    public static Props Props(Props resolverProps) =>
        Akka.Actor.Props.Create(() => new ReachabilityRecordsWatch(resolverProps));

    public ReachabilityRecordsWatch(Props resolverProps) => _resolverProps = resolverProps;

    protected override void PreStart()
    {
        _resolver = Context.ActorOf(_resolverProps, "split-brain-resolver");
        Context.Watch(_resolver);
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IClusterDomainEvent));
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case not null when message.GetType() == ReachabilityChangedEvent:
                // Only while Up: a MemberUp copy of a node that is already Leaving or Exiting would undo that status
                // in the resolver's view.
                var self = _cluster.SelfMember;
                if (self.Status == MemberStatus.Up)
                {
                    _log.Debug("Reachability records changed: the split brain resolver waits stable-after again");
                    _resolver.Tell(new ClusterEvent.MemberUp(self));
                }
                break;
            case Terminated t when t.ActorRef.Equals(_resolver):
                // The resolver stops itself when this node is removed; nothing is left to guard.
                Context.Stop(Self);
                break;
        }
    }
}
