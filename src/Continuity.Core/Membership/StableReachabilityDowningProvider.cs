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
/// It also decides itself where the resolver would down every "indirectly connected" member (members that stopped
/// hearing each other while others hear both): it downs the fewest that leave consistent records, keeping data nodes
/// where it can (<see cref="IndirectlyConnected"/>). Under packet loss between every pair of data nodes the resolver
/// alone downed all of them although the witnesses reached each one (chaos lab, replication-loss).
/// </para>
/// <para>
/// And it shuts the node down as downed when a member says it has quarantined it (<see cref="QuarantinedByMemberWatch"/>),
/// which nothing in Akka.NET does.
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
/// Runs the resolver as its child and guards two of its decisions.
/// <para>
/// Healing: it restarts the resolver's stable-after wait whenever a record of unreachability heals (or is dropped).
/// New records of a member already unreachable do not restart it: they only confirm what the wait already counts
/// from, and waiting for every observer's own detection would lengthen every failover. The resolver's only public
/// lever for that wait is a membership event; a <see cref="ClusterEvent.MemberUp"/> of this node, sent while this
/// node is Up, restarts the wait and changes nothing else it knows.
/// </para>
/// <para>
/// Indirectly connected members: while any exist, it keeps the resolver waiting (the same lever) and decides itself,
/// on this node only while it is the leader: when the resolver would have (the same events restart the same wait),
/// or, if the records keep changing, before the resolver's down-all-when-unstable would down everybody. It
/// downs the fewest members that leave consistent records (<see cref="IndirectlyConnected.FewestToDown"/>), where
/// the resolver downs them all. Once those are removed the records are consistent and the resolver decides the rest
/// (a crashed or cut off member) as before.
/// </para>
/// <para>
/// Pauses: a node that did not run for a while (a hang, a stopped process, a long GC) comes back with records from
/// before, its timers long run out. It waits stable-after again before deciding on them, as after a change: in the
/// chaos lab a primary hung past its removal downed three members of its 9.5 s old view in its first tick back.
/// </para>
/// </summary>
internal sealed class ReachabilityRecordsWatch : UntypedActor, IWithTimers
{
    private sealed class Tick
    {
        public static readonly Tick Instance = new();
        private Tick() { }
    }

    private static readonly TimeSpan TickInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ServingAnnouncementInterval = TimeSpan.FromSeconds(2);
    /// <summary>A gap between ticks this long means the node was not running, not merely busy.</summary>
    private static readonly TimeSpan PauseThreshold = TickInterval * 3;

    private readonly Props _resolverProps;
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly TimeSpan _stableAfter;
    private readonly TimeSpan _downAllWhenUnstable;
    private IActorRef _resolver = ActorRefs.Nobody;
    private IReadOnlySet<IndirectlyConnected.Record> _unreachable = new HashSet<IndirectlyConnected.Record>();
    private DateTime _stableDeadline;
    private DateTime _lastHold = DateTime.MinValue;
    private DateTime? _unstableSince;
    private DateTime _lastAnnouncement = DateTime.MinValue;
    private DateTime _lastTick = DateTime.UtcNow;
    // What each other member last announced it serves (DowningProtocol.ServingPrimaries).
    private readonly Dictionary<Address, int> _primariesByMember = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(Props resolverProps) =>
        Akka.Actor.Props.Create(() => new ReachabilityRecordsWatch(resolverProps));

    public ReachabilityRecordsWatch(Props resolverProps)
    {
        _resolverProps = resolverProps;
        var settings = new SplitBrainResolverSettings(Context.System.Settings.Config);
        _stableAfter = settings.DowningStableAfter;
        _downAllWhenUnstable = settings.DownAllWhenUnstable;
    }

    protected override void PreStart()
    {
        _resolver = Context.ActorOf(_resolverProps, "split-brain-resolver");
        Context.Watch(_resolver);
        Context.ActorOf(QuarantinedByMemberWatch.Props(), "quarantined-by-member");
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IClusterDomainEvent));
        RestartStableWait();
        Timers.StartPeriodicTimer(Tick.Instance, Tick.Instance, TickInterval);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case not null when ReachabilityRecords.IsChange(message):
                var now = ReachabilityRecords.UnreachablePairs(message);
                var healed = _unreachable.Count(pair => !now.Contains(pair));
                if (_unreachable.Count == 0 && now.Count > 0) _unstableSince = DateTime.UtcNow;
                if (now.Count == 0) _unstableSince = null;
                _unreachable = now;
                // With none left there is nothing to decide on, so nothing to wait for.
                if (healed > 0 && now.Count > 0 && SelfIsUp())
                {
                    _log.Info("{0} record(s) of unreachability healed, {1} remain: the split brain resolver waits " +
                              "stable-after again before it decides", healed, now.Count);
                    RestartStableWait();
                    HoldResolver();
                }
                else if (AnyIndirectlyConnected()) HoldResolver();
                break;
            // The events on which the resolver restarts its own wait, so that this one ends when the resolver's would.
            case ClusterEvent.UnreachableMember or ClusterEvent.ReachableMember or ClusterEvent.MemberDowned
                or ClusterEvent.MemberUp or ClusterEvent.MemberExited:
                RestartStableWait();
                break;
            case DowningProtocol.ServingPrimaries serving:
                _primariesByMember[Sender.Path.Address] = serving.Count;
                break;
            case ClusterEvent.MemberRemoved removed:
                _primariesByMember.Remove(removed.Member.Address);
                break;
            case Tick:
                var sinceLastTick = DateTime.UtcNow - _lastTick;
                _lastTick = DateTime.UtcNow;
                if (sinceLastTick >= PauseThreshold)
                {
                    _log.Warning("this node did not run for {0:0.0} s (a hang or a pause): its records of reachability are " +
                                 "from before, so it waits stable-after again before it decides on any", sinceLastTick.TotalSeconds);
                    RestartStableWait();
                    HoldResolver();
                    break;
                }
                if (DateTime.UtcNow - _lastAnnouncement >= ServingAnnouncementInterval) AnnounceServing();
                if (!AnyIndirectlyConnected()) break;
                if (DateTime.UtcNow - _lastHold >= _stableAfter / 2) HoldResolver();
                if (DecisionDue() && _cluster.State.Leader is { } leader
                    && leader.Equals(_cluster.SelfAddress) && SelfIsUp())
                    DownFewestIndirectlyConnected();
                break;
            case Terminated t when t.ActorRef.Equals(_resolver):
                // The resolver stops itself when this node is removed; nothing is left to guard.
                Context.Stop(Self);
                break;
        }
    }

    /// <summary>
    /// Tells every other member's provider how many applications this node is primary of, so that whichever member
    /// leads when a decision falls due knows, even under the loss that made the decision necessary (the last figure
    /// that arrived counts; primaries change rarely).
    /// </summary>
    private void AnnounceServing()
    {
        _lastAnnouncement = DateTime.UtcNow;
        var serving = new DowningProtocol.ServingPrimaries(PrimaryRegistry.Get(Context.System).Count);
        foreach (var member in _cluster.State.Members.Where(m => !m.Address.Equals(_cluster.SelfAddress)))
            Context.ActorSelection(new RootActorPath(member.Address) / Self.Path.Elements).Tell(serving);
    }

    private int PrimariesOf(UniqueAddress member) => member.Equals(_cluster.SelfUniqueAddress)
        ? PrimaryRegistry.Get(Context.System).Count
        : _primariesByMember.GetValueOrDefault(member.Address);

    /// <summary>Over every record, downed members' too: the resolver counts them until they are removed.</summary>
    private bool AnyIndirectlyConnected() =>
        _unreachable.Count > 0 && IndirectlyConnected.Members(_unreachable.ToList(), _cluster.State.SeenBy).Count > 0;

    /// <summary>Keeps the resolver's stable-after wait from running out while this actor decides instead.</summary>
    private void HoldResolver()
    {
        // Only while Up: a MemberUp copy of a node that is already Leaving or Exiting would undo that status in the
        // resolver's view.
        if (!SelfIsUp()) return;
        _resolver.Tell(new ClusterEvent.MemberUp(_cluster.SelfMember));
        _lastHold = DateTime.UtcNow;
    }

    private void DownFewestIndirectlyConnected()
    {
        var state = _cluster.State;
        var liveOldestFirst = state.Members
            .Where(m => m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining or MemberStatus.Leaving)
            .OrderBy(m => m, Member.AgeOrdering)
            .Select(m => new IndirectlyConnected.Candidate(m.UniqueAddress, m.HasRole(Election.AppOwner.DataRole),
                PrimariesOf(m.UniqueAddress)))
            .ToList();
        var toDown = IndirectlyConnected.FewestToDown(_unreachable.ToList(), state.SeenBy, liveOldestFirst,
            _cluster.SelfUniqueAddress);
        // Empty while only members already downed are inconsistent: wait for their removal.
        if (toDown.Count == 0) return;

        string Name(UniqueAddress a) => state.Members.FirstOrDefault(m => m.UniqueAddress.Equals(a)) is { } m
            ? NodeNames.NameOf(m) : a.Address.ToString();
        _log.Warning("Indirectly connected members [{0}] (records: {1}): downing [{2}], the fewest that leave the " +
                     "others consistent (fewest primaries, then data nodes, then the youngest)",
            string.Join(", ", IndirectlyConnected.Members(_unreachable.ToList(), state.SeenBy).Select(Name).Order()),
            string.Join(", ", _unreachable.Select(r => $"{Name(r.Observer)} cannot reach {Name(r.Subject)}").Order()),
            string.Join(", ", toDown.Select(Name).Order()));
        // This node last: downing itself may stop it before it downs the others.
        foreach (var member in toDown.OrderBy(a => a.Equals(_cluster.SelfUniqueAddress)))
            _cluster.Down(member.Address);
        RestartStableWait();
    }

    /// <summary>
    /// When stable-after has passed with no change, or, where down-all-when-unstable is on (reference.conf turns it
    /// off) and the records keep changing, well before it would down every member (each member's resolver does that on
    /// its own count, so the downing must be decided and spread before the first of them runs out). Under loss between
    /// every pair of data nodes records heal and reappear every few seconds: waiting for a quiet stable-after there
    /// ended with every member down (chaos lab, replication-loss with 28 % loss for 26 s, down-all at 15 s).
    /// </summary>
    private bool DecisionDue()
    {
        var now = DateTime.UtcNow;
        return now >= _stableDeadline
               || (_downAllWhenUnstable > TimeSpan.Zero && _unstableSince is { } since
                   && now >= since + _stableAfter + _downAllWhenUnstable / 2);
    }

    private void RestartStableWait() => _stableDeadline = DateTime.UtcNow + _stableAfter;

    private bool SelfIsUp() => _cluster.SelfMember.Status == MemberStatus.Up;
}

public static class DowningProtocol
{
    /// <summary>A member's providers tell each other how many applications their node is primary of (to every member in
    /// view, lost ones included: undelivered ones are expected, not dead letters worth a log line).</summary>
    public sealed record ServingPrimaries(int Count) : Serialization.IControlMessage, Akka.Event.IDeadLetterSuppression;
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

    /// <summary>The change's records that say unreachable or terminated.</summary>
    public static IReadOnlySet<IndirectlyConnected.Record> UnreachablePairs(object change)
    {
        var pairs = new HashSet<IndirectlyConnected.Record>();
        foreach (var record in (System.Collections.IEnumerable)RecordsOfReachability.GetValue(ReachabilityOfChange.GetValue(change))!)
            if (StatusOfRecord.GetValue(record)!.ToString() != "Reachable")
                pairs.Add(new IndirectlyConnected.Record((UniqueAddress)ObserverOfRecord.GetValue(record)!,
                    (UniqueAddress)SubjectOfRecord.GetValue(record)!));
        return pairs;
    }

    private static T Find<T>(T? member, string name) where T : class => member ?? throw new InvalidOperationException(
        $"Akka.Cluster {typeof(Cluster).Assembly.GetName().Version} has no {name}, which the downing provider " +
        "Continuity.Core.Membership.StableReachabilityDowningProvider reads. Check this version's split brain resolver " +
        "for the healing-partition hazard (docs/chaos.md), then adapt the provider, or configure Akka's own " +
        "akka.cluster.downing-provider-class.");
}
