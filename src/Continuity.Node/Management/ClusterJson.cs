using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Membership;

namespace Continuity.Node.Management;

/// <summary>The JSON shapes of the management API's cluster resources (version 1).</summary>
public static class ClusterJson
{
    public sealed record MemberDto(string Address, string Node, string Status, IReadOnlyList<string> Roles, bool Reachable);

    public sealed record ClusterDto(string Self, string? Leader, string? Oldest, IReadOnlyList<MemberDto> Members, IReadOnlyList<string> Unreachable);

    public sealed record EventDto(string Time, string Event, string? Member, string? Node, string? Status);

    public static ClusterDto Snapshot(Akka.Cluster.Cluster cluster)
    {
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        var members = state.Members
            .Select(m => new MemberDto(m.Address.ToString(), NodeNames.NameOf(m), m.Status.ToString(),
                NodeNames.VisibleRoles(m).ToList(), !unreachable.Contains(m.Address)))
            .OrderBy(m => m.Node, StringComparer.Ordinal)
            .ToList();
        var oldest = state.Members.Where(m => m.Status == MemberStatus.Up)
            .OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();
        return new ClusterDto(cluster.SelfAddress.ToString(), state.Leader?.ToString(), oldest?.Address.ToString(),
            members, unreachable.Select(a => a.ToString()).ToList());
    }

    public static EventDto? FromEvent(object e) => e switch
    {
        ClusterEvent.IMemberEvent me => new EventDto(Now(), EventName(me), me.Member.Address.ToString(), NodeNames.NameOf(me.Member), me.Member.Status.ToString()),
        ClusterEvent.UnreachableMember u => new EventDto(Now(), "UnreachableMember", u.Member.Address.ToString(), NodeNames.NameOf(u.Member), u.Member.Status.ToString()),
        ClusterEvent.ReachableMember r => new EventDto(Now(), "ReachableMember", r.Member.Address.ToString(), NodeNames.NameOf(r.Member), r.Member.Status.ToString()),
        ClusterEvent.LeaderChanged l => new EventDto(Now(), "LeaderChanged", l.Leader?.ToString(), null, null),
        _ => null,
    };

    private static string EventName(ClusterEvent.IMemberEvent e) => e switch
    {
        ClusterEvent.MemberUp => "MemberUp",
        ClusterEvent.MemberJoined => "MemberJoined",
        ClusterEvent.MemberLeft => "MemberLeft",
        ClusterEvent.MemberExited => "MemberExited",
        ClusterEvent.MemberRemoved => "MemberRemoved",
        ClusterEvent.MemberWeaklyUp => "MemberWeaklyUp",
        ClusterEvent.MemberDowned => "MemberDowned",
        _ => e.GetType().Name,
    };

    private static string Now() => DateTime.UtcNow.ToString("O");
}

/// <summary>Forwards the cluster's membership events of one streaming client into a channel.</summary>
internal sealed class ClusterEventForwarder : UntypedActor
{
    private readonly System.Threading.Channels.ChannelWriter<ClusterJson.EventDto> _out;

    public ClusterEventForwarder(System.Threading.Channels.ChannelWriter<ClusterJson.EventDto> output) => _out = output;

    protected override void PreStart() =>
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent), typeof(ClusterEvent.LeaderChanged));

    protected override void PostStop()
    {
        Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
        _out.TryComplete();
    }

    protected override void OnReceive(object message)
    {
        if (message is ClusterEvent.CurrentClusterState state)
        {
            foreach (var m in state.Members)
                _out.TryWrite(new ClusterJson.EventDto(DateTime.UtcNow.ToString("O"), "CurrentMember", m.Address.ToString(), NodeNames.NameOf(m), m.Status.ToString()));
            return;
        }
        var dto = ClusterJson.FromEvent(message);
        // A slow client must not grow the node's memory: the channel is bounded and drops the oldest.
        if (dto is not null) _out.TryWrite(dto);
    }
}
