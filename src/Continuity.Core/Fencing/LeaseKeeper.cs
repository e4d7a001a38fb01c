using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Continuity.Core.Serialization;

namespace Continuity.Core.Fencing;

public static class LeaseProtocol
{
    /// <summary>From a node to every other member, each renew interval: do you still count me in the cluster?</summary>
    public sealed record Vouch(long Round) : IControlMessage;

    /// <summary>Yes: the answering member sees the asker Up and reachable (no member reported it unreachable).</summary>
    public sealed record Vouched(long Round) : IControlMessage;

    /// <summary>
    /// Published on the node's event stream each time a majority vouched for it: the VIPs of its primaries may stay
    /// live until <paramref name="ExpiresAt"/> (<see cref="Environment.TickCount64"/>, milliseconds).
    /// </summary>
    public sealed record LeaseRenewed(long ExpiresAt);
}

/// <summary>
/// The node's lease on its VIPs. A primary cut off from the cluster, hung for longer than failure detection, or whose
/// node process died, must stop carrying its VIP before a successor carries it, or clients would be answered by two
/// nodes. Downing alone comes too late: the node learns it was downed only once it hears from the others again.
/// So each node asks every member, every renew interval, to vouch for it; a member vouches only while it sees the
/// asker Up and reachable. A majority's answers (the asker counts itself) renew the lease for <c>lease</c> from when
/// the question was sent, and the primaries pass it on to the kernel (<see cref="Platform.IVipFence"/>). The majority
/// cannot down the node sooner than <c>stable-after</c> after it stops vouching, which is longer than the lease.
/// </summary>
public sealed class LeaseKeeper : ReceiveActor, IWithTimers
{
    public const string Name = "continuity-lease";

    private sealed record Tick;

    private sealed class Round(long sentAt, int needed, Address self)
    {
        public long SentAt { get; } = sentAt;
        public int Needed { get; } = needed;
        public HashSet<Address> Votes { get; } = [self];
    }

    private const int RoundsKept = 32;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly FencingSettings _settings;
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly Dictionary<long, Round> _rounds = new();
    private long _round;
    private long _expiresAt;
    private bool _held;
    private bool _everHeld;

    public ITimerScheduler Timers { get; set; } = null!;

    public LeaseKeeper(FencingSettings settings)
    {
        _settings = settings;
        Receive<Tick>(_ => Ask());
        Receive<LeaseProtocol.Vouch>(OnVouch);
        Receive<LeaseProtocol.Vouched>(OnVouched);
    }

    public static Props Props(FencingSettings settings) => Akka.Actor.Props.Create(() => new LeaseKeeper(settings));

    protected override void PreStart() => Timers.StartPeriodicTimer("renew", new Tick(), _settings.RenewInterval);

    private static long Now => Environment.TickCount64;

    private static bool Voting(Member m) => m.Status is MemberStatus.Up or MemberStatus.Leaving;

    private void Ask()
    {
        NoteExpiry();
        var self = _cluster.SelfMember;
        if (!Voting(self)) return;
        // Members that are unreachable still count: a majority must answer, not a majority of those that can.
        var voters = _cluster.State.Members.Where(Voting).ToList();
        var round = new Round(Now, voters.Count / 2 + 1, self.Address);
        _rounds[++_round] = round;
        _rounds.Remove(_round - RoundsKept);
        if (round.Votes.Count >= round.Needed) Grant(round);
        foreach (var m in voters.Where(m => m.Address != self.Address))
            Context.ActorSelection(new RootActorPath(m.Address) / "user" / Name).Tell(new LeaseProtocol.Vouch(_round));
    }

    private void OnVouch(LeaseProtocol.Vouch v)
    {
        var state = _cluster.State;
        var asker = Sender.Path.Address;
        // Silence, not a "no": the asker's lease simply runs out, whatever was lost on the way.
        if (!Voting(_cluster.SelfMember)) return;
        if (state.Members.FirstOrDefault(m => m.Address == asker) is not { } member || !Voting(member)) return;
        if (state.Unreachable.Any(m => m.Address == asker)) return;
        Sender.Tell(new LeaseProtocol.Vouched(v.Round));
    }

    private void OnVouched(LeaseProtocol.Vouched v)
    {
        if (!_rounds.TryGetValue(v.Round, out var round)) return;
        if (round.Votes.Add(Sender.Path.Address) && round.Votes.Count == round.Needed) Grant(round);
    }

    private void Grant(Round round)
    {
        var expiresAt = round.SentAt + (long)_settings.Lease.TotalMilliseconds;
        if (expiresAt <= _expiresAt || expiresAt <= Now) return;
        if (!_held)
        {
            if (_everHeld)
                _log.Warning("a majority of the cluster vouches for this node again: the VIPs of its primaries are live again");
            else
                _log.Info("a majority of the cluster vouches for this node: its primaries' VIPs are live for {0} ms at a time, renewed every {1} ms",
                    (long)_settings.Lease.TotalMilliseconds, (long)_settings.RenewInterval.TotalMilliseconds);
        }
        _held = _everHeld = true;
        _expiresAt = expiresAt;
        Context.System.EventStream.Publish(new LeaseProtocol.LeaseRenewed(expiresAt));
    }

    private void NoteExpiry()
    {
        if (!_held || Now < _expiresAt) return;
        _held = false;
        _log.Warning("no majority of the cluster has vouched for this node for {0} ms: the kernel now fences the VIPs of its primaries " +
            "(no ARP, nothing in or out) until one does. Unreachable members: [{1}]", (long)_settings.Lease.TotalMilliseconds,
            string.Join(", ", _cluster.State.Unreachable.Select(m => m.Address)));
    }
}
