using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Remote;

namespace Continuity.Core.Membership;

/// <summary>
/// Shuts this node down, as a node the cluster downed, once a member of its cluster says it has quarantined it.
/// <para>
/// A member quarantines a node when the leader removes it, and a node that was unreachable (hung, paused, cut off)
/// past its removal never sees that removal: on its return it holds a view from before, in which the others are
/// merely unreachable. Akka.NET 1.5.73 publishes the notice (<see cref="ThisActorSystemQuarantinedEvent"/>) and
/// nothing acts on it, so such a node stayed up for good: in the chaos lab a primary hung for 9.5 s came back, kept
/// its application as a (fenced) primary and never rejoined as a standby (docs/chaos.md, sixth stretch, run 70). A
/// quarantined incarnation can never associate with the cluster again; the only way back is a new one, which is
/// what the node program's "downed" exit asks of its supervisor.
/// </para>
/// <para>
/// Only a notice from a member that is live in this node's own view counts. A node that was itself removed can
/// quarantine the members it removed in a stale view of its own; those members have removed it already (so it is
/// no member of their view) and ignore it, instead of all shutting down on its word.
/// </para>
/// </summary>
internal sealed class QuarantinedByMemberWatch : ReceiveActor
{
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _shuttingDown;

    public static Props Props() => Akka.Actor.Props.Create(() => new QuarantinedByMemberWatch());

    public QuarantinedByMemberWatch()
    {
        Receive<ThisActorSystemQuarantinedEvent>(OnQuarantined);
    }

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(ThisActorSystemQuarantinedEvent));

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    private void OnQuarantined(ThisActorSystemQuarantinedEvent e)
    {
        if (_shuttingDown) return;
        var state = _cluster.State;
        var by = state.Members.FirstOrDefault(m => m.Address.Equals(e.RemoteAddress) && !m.Address.Equals(_cluster.SelfAddress));
        if (by is null || by.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed)
        {
            _log.Warning("{0} has quarantined this node, but it is no live member of this node's cluster (a node the " +
                "cluster removed, acting on its old view): ignored", by is null ? e.RemoteAddress.ToString() : $"{NodeNames.NameOf(by)} ({by.Status})");
            return;
        }
        if (_cluster.SelfMember.Status is MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Removed) return; // already on its way out
        _shuttingDown = true;
        _log.Error("member {0} has quarantined this node: the cluster removed it while it could not be reached (a hang, a " +
            "pause or a partition longer than failure detection), and it can never rejoin as it is. Shutting down as a downed " +
            "node, so that its supervisor starts it again as a new member (its applications' standbys already took over).",
            NodeNames.NameOf(by));
        CoordinatedShutdown.Get(Context.System).Run(CoordinatedShutdown.ClusterDowningReason.Instance);
    }
}
