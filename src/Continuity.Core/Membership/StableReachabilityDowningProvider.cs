using System.Reflection;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.SBR;
using Akka.Event;

namespace Continuity.Core.Membership;

/// <summary>
/// Akka.NET's split brain resolver, deciding only once no record of unreachability has healed for <c>stable-after</c>,
/// not merely once the set of members someone sees unreachable has been stable that long.
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
        ReachabilityRecords.EnsureReadable();
        _resolver = new SplitBrainResolverProvider(system, cluster);
    }

    public TimeSpan DownRemovalMargin => _resolver.DownRemovalMargin;

    public Props DowningActorProps => ReachabilityRecordsWatch.Props(_resolver.DowningActorProps);
}

/// <summary>
/// Runs the resolver as its child and restarts the resolver's stable-after wait whenever a record of unreachability
/// heals (or is dropped). New records of a member already unreachable do not restart it: they only confirm what the
/// wait already counts from, and waiting for every observer's own detection would lengthen every failover. The
/// resolver's only public lever for that wait is a membership event; a <see cref="ClusterEvent.MemberUp"/> of this
/// node, sent while this node is Up, restarts the wait and changes nothing else it knows.
/// </summary>
internal sealed class ReachabilityRecordsWatch : UntypedActor
{
    private readonly Props _resolverProps;
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef _resolver = ActorRefs.Nobody;
    private IReadOnlySet<(UniqueAddress Observer, UniqueAddress Subject)> _unreachable =
        new HashSet<(UniqueAddress, UniqueAddress)>();

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
            case not null when ReachabilityRecords.IsChange(message):
                var now = ReachabilityRecords.UnreachablePairs(message);
                var healed = _unreachable.Count(pair => !now.Contains(pair));
                _unreachable = now;
                // Only while Up: a MemberUp copy of a node that is already Leaving or Exiting would undo that status
                // in the resolver's view.
                var self = _cluster.SelfMember;
                // With none left there is nothing to decide on, so nothing to wait for.
                if (healed > 0 && now.Count > 0 && self.Status == MemberStatus.Up)
                {
                    _log.Info("{0} record(s) of unreachability healed, {1} remain: the split brain resolver waits " +
                              "stable-after again before it decides", healed, now.Count);
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

/// <summary>
/// Reads Akka.Cluster's reachability records, which it publishes only in an internal event
/// (<c>ClusterEvent.ReachabilityChanged</c>, carrying the internal <c>Reachability</c>). Resolved once; if an Akka
/// upgrade renames any of it, the type initializer fails with the message below and the node refuses to start
/// rather than run the resolver without its guard.
/// </summary>
internal static class ReachabilityRecords
{
    private const BindingFlags AnyVisibility = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance;

    private static readonly Type ChangeEvent = Find(typeof(ClusterEvent).GetNestedType("ReachabilityChanged", BindingFlags.Public | BindingFlags.NonPublic), "ClusterEvent.ReachabilityChanged");
    private static readonly PropertyInfo ReachabilityOfChange = Find(ChangeEvent.GetProperty("Reachability", AnyVisibility), "ReachabilityChanged.Reachability");
    private static readonly PropertyInfo RecordsOfReachability = Find(ReachabilityOfChange.PropertyType.GetProperty("Records", AnyVisibility), "Reachability.Records");
    private static readonly Type Record = Find(ReachabilityOfChange.PropertyType.GetNestedType("Record", BindingFlags.Public | BindingFlags.NonPublic), "Reachability.Record");
    private static readonly PropertyInfo ObserverOfRecord = Find(Record.GetProperty("Observer", AnyVisibility), "Reachability.Record.Observer");
    private static readonly PropertyInfo SubjectOfRecord = Find(Record.GetProperty("Subject", AnyVisibility), "Reachability.Record.Subject");
    private static readonly PropertyInfo StatusOfRecord = Find(Record.GetProperty("Status", AnyVisibility), "Reachability.Record.Status");

    /// <summary>Resolves the members above now (call where a failure should stop the node).</summary>
    public static void EnsureReadable()
    {
        try { _ = ChangeEvent; }
        catch (TypeInitializationException e) when (e.InnerException is { } cause)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(cause);
        }
    }

    public static bool IsChange(object message) => message.GetType() == ChangeEvent;

    /// <summary>The (observer, subject) pairs of the change's records that say unreachable or terminated.</summary>
    public static IReadOnlySet<(UniqueAddress Observer, UniqueAddress Subject)> UnreachablePairs(object change)
    {
        var pairs = new HashSet<(UniqueAddress, UniqueAddress)>();
        foreach (var record in (System.Collections.IEnumerable)RecordsOfReachability.GetValue(ReachabilityOfChange.GetValue(change))!)
            if (StatusOfRecord.GetValue(record)!.ToString() != "Reachable")
                pairs.Add(((UniqueAddress)ObserverOfRecord.GetValue(record)!, (UniqueAddress)SubjectOfRecord.GetValue(record)!));
        return pairs;
    }

    private static T Find<T>(T? member, string name) where T : class => member ?? throw new InvalidOperationException(
        $"Akka.Cluster {typeof(Cluster).Assembly.GetName().Version} has no {name}, which the downing provider " +
        "Continuity.Core.Membership.StableReachabilityDowningProvider reads. Check this version's split brain resolver " +
        "for the healing-partition hazard (docs/chaos.md), then adapt the provider, or configure Akka's own " +
        "akka.cluster.downing-provider-class.");
}
