using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Continuity.Core.Serialization;

namespace Continuity.Core.Fencing;

public static class LeaseProtocol
{
    /// <summary>From a node to every other member, each renew interval: do you still count me in the cluster?
    /// Sent to members that may be gone (that is the question), so undelivered ones are not dead letters worth a log line.</summary>
    public sealed record Vouch(long Round) : IControlMessage, IDeadLetterSuppression;

    /// <summary>Yes: the answering member sees the asker Up and reachable (no member reported it unreachable).</summary>
    public sealed record Vouched(long Round) : IControlMessage;

    /// <summary>
    /// From the leader to every other member while <paramref name="Address"/> (incarnation <paramref name="Uid"/>) is
    /// unreachable: promise to vouch for it no more, so that its lease can be known to have run out.
    /// </summary>
    public sealed record Revoke(string Address, long Uid) : IControlMessage, IDeadLetterSuppression;

    /// <summary>
    /// The promise, given only by a member whose own failure detector lost the subject too (silence otherwise).
    /// <paramref name="SinceLastVouchMs"/>: how long ago this member last vouched for it (if never, since its lease
    /// keeper started).
    /// </summary>
    public sealed record Revoked(string Address, long Uid, long SinceLastVouchMs) : IControlMessage;

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
/// the question was sent, and the primaries pass it on to the kernel (<see cref="Platform.IVipFence"/>). The node is
/// downed only once its lease ran out: by the leader, as below, or by the split brain resolver, no sooner than
/// <c>stable-after</c> (longer than the lease) after the majority stopped vouching.
/// <para>
/// The lease also lets the cluster down a lost member sooner than <c>stable-after</c> (<c>down-on-revoked-lease</c>).
/// The leader asks every other member to promise to vouch for it no more. Once all did, no majority can renew its
/// lease: every majority of the members holds one of them, and each promise says when that member last vouched, so the
/// leader knows the moment the last lease it granted ran out. Then the member's VIPs are quiet and the leader downs it.
/// Every other member, not a majority of them: a member the lost one still reaches could count towards its majority in
/// an older view of the membership. Where anyone cannot promise, the split brain resolver decides, as without this.
/// </para>
/// </summary>
public sealed class LeaseKeeper : ReceiveActor, IWithTimers
{
    public const string Name = "continuity-lease";

    private sealed record Tick;
    private sealed record RevokeTick;

    private sealed class Round(long sentAt, int needed, Address self)
    {
        public long SentAt { get; } = sentAt;
        public int Needed { get; } = needed;
        public HashSet<Address> Votes { get; } = [self];
    }

    /// <summary>The leader's revocation of one unreachable member's lease.</summary>
    private sealed class Revocation(long unreachableSince)
    {
        public long UnreachableSince { get; } = unreachableSince;
        /// <summary>Per member that promised: when, on this node's clock, the last lease its vouching allowed ends.</summary>
        public Dictionary<Address, long> QuietAfter { get; } = new();
        /// <summary>Every other member promised: the subject is downed when its last lease ran out, come what may.</summary>
        public bool Committed { get; set; }
        public bool Downed { get; set; }
    }

    private const int RoundsKept = 32;
    private static readonly TimeSpan RevokeTickInterval = TimeSpan.FromMilliseconds(100);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly FencingSettings _settings;
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly Dictionary<long, Round> _rounds = new();
    private long _round;
    private long _expiresAt;
    private bool _held;
    private bool _everHeld;
    private readonly long _startedAt = Now;
    // When this node last vouched for each member, and whom it promised not to vouch for (until when).
    private readonly Dictionary<UniqueAddress, long> _lastVouched = new();
    private readonly Dictionary<UniqueAddress, long> _promisedUntil = new();
    private readonly Dictionary<UniqueAddress, Revocation> _revocations = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public LeaseKeeper(FencingSettings settings)
    {
        _settings = settings;
        Receive<Tick>(_ => Ask());
        Receive<LeaseProtocol.Vouch>(OnVouch);
        Receive<LeaseProtocol.Vouched>(OnVouched);
        Receive<LeaseProtocol.Revoke>(OnRevoke);
        Receive<LeaseProtocol.Revoked>(OnRevoked);
        Receive<RevokeTick>(_ => Revoke());
    }

    public static Props Props(FencingSettings settings) => Akka.Actor.Props.Create(() => new LeaseKeeper(settings));

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("renew", new Tick(), _settings.RenewInterval);
        if (_settings.DownOnRevokedLease) Timers.StartPeriodicTimer("revoke", new RevokeTick(), RevokeTickInterval);
    }

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
            KeeperOn(m.Address).Tell(new LeaseProtocol.Vouch(_round));
    }

    private ActorSelection KeeperOn(Address address) =>
        Context.ActorSelection(new RootActorPath(address) / "user" / Name);

    private void OnVouch(LeaseProtocol.Vouch v)
    {
        var state = _cluster.State;
        var asker = Sender.Path.Address;
        // Silence, not a "no": the asker's lease simply runs out, whatever was lost on the way.
        if (!Voting(_cluster.SelfMember)) return;
        if (state.Members.FirstOrDefault(m => m.Address == asker) is not { } member || !Voting(member)) return;
        if (state.Unreachable.Any(m => m.Address == asker)) return;
        if (_promisedUntil.TryGetValue(member.UniqueAddress, out var until) && Now < until) return;
        _lastVouched[member.UniqueAddress] = Now;
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

    /// <summary>
    /// Promises to vouch no more for <paramref name="subject"/> if this node's own failure detector lost it too, and
    /// says how long ago it last vouched (if never, as far as this keeper knows, how long ago the keeper started).
    /// </summary>
    private bool TryPromise(Member subject, out long sinceLastVouchMs)
    {
        sinceLastVouchMs = 0;
        if (!Voting(_cluster.SelfMember) || _cluster.FailureDetector.IsAvailable(subject.Address)) return false;
        var now = Now;
        if (!_promisedUntil.ContainsKey(subject.UniqueAddress))
            _log.Info("promised not to vouch for {0} for {1} ms: it is unreachable from here too", subject.Address,
                (long)_settings.Hold.TotalMilliseconds);
        _promisedUntil[subject.UniqueAddress] = now + (long)_settings.Hold.TotalMilliseconds;
        var last = _lastVouched.TryGetValue(subject.UniqueAddress, out var at) ? at : _startedAt;
        sinceLastVouchMs = now - last;
        return true;
    }

    private void OnRevoke(LeaseProtocol.Revoke r)
    {
        var subject = _cluster.State.Members.FirstOrDefault(m => m.Address.ToString() == r.Address && m.UniqueAddress.Uid == r.Uid);
        if (subject is null || !Voting(subject) || subject.Address == _cluster.SelfAddress) return;
        if (TryPromise(subject, out var since)) Sender.Tell(new LeaseProtocol.Revoked(r.Address, r.Uid, since));
    }

    private void OnRevoked(LeaseProtocol.Revoked r)
    {
        var revocation = _revocations.FirstOrDefault(kv => kv.Key.Address.ToString() == r.Address && kv.Key.Uid == r.Uid).Value;
        // The answer left the member later than its figure was read: counting from its arrival errs on the late side.
        revocation?.QuietAfter.TryAdd(Sender.Path.Address, QuietAfter(r.SinceLastVouchMs));
    }

    /// <summary>When the last lease that a vouch given <paramref name="sinceLastVouchMs"/> ago allowed has surely run out.</summary>
    private long QuietAfter(long sinceLastVouchMs)
    {
        var lease = (long)_settings.Lease.TotalMilliseconds;
        // Clocks of different machines run at slightly different rates, and the kernel applies the fence a moment after
        // the lease was granted.
        var margin = 100 + lease / 50;
        return Now + Math.Max(0, lease - sinceLastVouchMs) + margin;
    }

    /// <summary>
    /// The leader's part: revoke each unreachable voting member's lease, and down it once that ran out. Once every other
    /// member has promised, the member is downed even if it is heard from again meanwhile: it cannot get its lease
    /// back before the promises lapse, and a failover then is shorter than that fence.
    /// </summary>
    private void Revoke()
    {
        var now = Now;
        foreach (var (subject, _) in _promisedUntil.Where(p => p.Value <= now).ToList()) _promisedUntil.Remove(subject);
        var state = _cluster.State;
        var self = _cluster.SelfMember;
        if (state.Leader is not { } leader || leader != self.Address || self.Status != MemberStatus.Up)
        {
            _revocations.Clear();
            return;
        }
        var members = state.Members.Where(m => Voting(m) && m.Address != self.Address).ToDictionary(m => m.UniqueAddress);
        foreach (var gone in _revocations.Where(r => !members.ContainsKey(r.Key)
                     || (!r.Value.Committed && !state.Unreachable.Contains(members[r.Key]))).Select(r => r.Key).ToList())
            _revocations.Remove(gone);
        foreach (var subject in members.Values.Where(state.Unreachable.Contains))
            if (!_revocations.ContainsKey(subject.UniqueAddress)) _revocations[subject.UniqueAddress] = new Revocation(now);

        foreach (var (id, revocation) in _revocations)
        {
            if (revocation.Downed) continue;
            var subject = members[id];
            // The lost member alone must be a minority. Of two members each would down the other, and the resolver on
            // the lost one's side, keeping the lower address in a tie, would keep it: two primaries.
            if (members.Count + 1 < 3) continue;
            if (!revocation.Committed)
            {
                // Down members too: one that does not know it was downed may still vouch.
                var others = state.Members.Where(m => !m.UniqueAddress.Equals(id)
                    && m.Status is MemberStatus.Up or MemberStatus.Leaving or MemberStatus.Down).ToList();
                if (!revocation.QuietAfter.ContainsKey(self.Address) && TryPromise(subject, out var since))
                    revocation.QuietAfter[self.Address] = QuietAfter(since);
                var missing = others.Where(m => !revocation.QuietAfter.ContainsKey(m.Address)).ToList();
                foreach (var m in missing.Where(m => m.Address != self.Address))
                    KeeperOn(m.Address).Tell(new LeaseProtocol.Revoke(subject.Address.ToString(), id.Uid));
                if (missing.Count > 0) continue;
                revocation.Committed = true;
            }
            var quietAt = revocation.QuietAfter.Values.Max();
            if (now < quietAt) continue;
            revocation.Downed = true;
            _log.Warning("downing {0}: unreachable for {1} ms, every other member promised not to vouch for it, and the " +
                         "last lease they granted it ran out (its VIPs are quiet), so the cluster need not wait for the " +
                         "split brain resolver's stable-after", subject.Address, now - revocation.UnreachableSince);
            _cluster.Down(subject.Address);
        }
    }
}
