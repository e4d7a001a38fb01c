using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;
using Continuity.Core.Fencing;
using Continuity.Core.Tests.Support;
using Xunit;

namespace Continuity.Core.Tests.Fencing;

/// <summary>
/// Three members in one process over real Akka.Remote, each with its lease keeper, links cut with Akka's throttler
/// transport. The split brain resolver's stable-after is a minute here, so any downing within the specs' waits is the
/// lease keepers' doing.
/// </summary>
[Collection("cluster")]
public sealed class RevokedLeaseDowningSpecs : TestKit, IAsyncLifetime
{
    // Longer than failure detection (about 3 s), so that a downing that did not wait for the lease would come too soon.
    private static readonly FencingSettings Settings = new(true, TimeSpan.FromSeconds(6), TimeSpan.FromMilliseconds(300));
    private List<ActorSystem> _members = new();

    public RevokedLeaseDowningSpecs() : base(Config()) { }

    private static Akka.Configuration.Config Config() => TestConfig.Node("""
        akka.loglevel = WARNING
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        akka.remote.dot-netty.tcp.applied-adapters = [trttl]
        akka.cluster.split-brain-resolver.stable-after = 60s
        """);

    public async Task InitializeAsync()
    {
        _members = await InProcessCluster.FormAsync(this, 2, _ => Config());
        foreach (var s in _members) s.ActorOf(LeaseKeeper.Props(Settings), LeaseKeeper.Name);
    }

    public Task DisposeAsync() => InProcessCluster.TerminateOthersAsync(_members);

    [Fact]
    public async Task A_member_cut_off_from_all_others_is_downed_once_its_lease_ran_out_without_waiting_for_stable_after()
    {
        var (leader, cutOff, third) = Roles();
        var lastLease = new LastLease();
        cutOff.EventStream.Subscribe(cutOff.ActorOf(Props.Create(() => new LeaseWatcher(lastLease))), typeof(LeaseProtocol.LeaseRenewed));
        var downed = WatchDowning(leader);
        AwaitCondition(() => lastLease.ExpiresAt > 0, TimeSpan.FromSeconds(10));

        await Cut(cutOff, leader);
        await Cut(cutOff, third);

        var decision = downed.ExpectMsg<ClusterEvent.MemberDowned>(TimeSpan.FromSeconds(30));
        var downedAt = Environment.TickCount64;
        Assert.Equal(Cluster.Get(cutOff).SelfAddress, decision.Member.Address);
        // The safety of it: the member was still running, asking for its lease all along, and the last lease it got
        // had run out before the others downed it (one clock: the three members share this process).
        Assert.True(lastLease.ExpiresAt <= downedAt,
            $"downed {lastLease.ExpiresAt - downedAt} ms before the member's lease ran out");
        downed.ExpectNoMsg(TimeSpan.FromSeconds(2));
        AwaitCondition(() => Cluster.Get(leader).State.Members.Count == 2, TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task A_member_that_another_member_still_hears_is_left_to_the_split_brain_resolver()
    {
        var (leader, cutOff, _) = Roles();
        var downed = WatchDowning(leader);

        // Only the link to the leader is cut: the third member still hears the member and promises nothing.
        await Cut(cutOff, leader);
        AwaitCondition(() => Cluster.Get(leader).State.Unreachable.Any(m => m.Address.Equals(Cluster.Get(cutOff).SelfAddress)),
            TimeSpan.FromSeconds(15));

        downed.ExpectNoMsg(TimeSpan.FromSeconds(15)); // more than detection and two leases
        Assert.Equal(3, Cluster.Get(leader).State.Members.Count(m => m.Status == MemberStatus.Up));
    }

    [Fact]
    public async Task Of_two_members_that_lose_each_other_neither_downs_the_other_on_its_own()
    {
        var (leader, first, second) = Roles();
        // Not the test kit's own system, which leaving would stop.
        var (leaving, other) = first == Sys ? (second, first) : (first, second);
        await Cluster.Get(leaving).LeaveAsync();
        AwaitCondition(() => _members.Where(s => s != leaving).All(s => Cluster.Get(s).State.Members.Count == 2),
            TimeSpan.FromSeconds(30));
        var downedByLeader = WatchDowning(leader);
        var downedByOther = WatchDowning(other);

        // Each would be alone with its promise: the resolver's tie-break must decide which one stays, or both would.
        await Cut(leader, other);
        AwaitCondition(() => !Cluster.Get(leader).State.Unreachable.IsEmpty, TimeSpan.FromSeconds(15));

        downedByLeader.ExpectNoMsg(TimeSpan.FromSeconds(12));
        downedByOther.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task A_member_whose_lease_is_revoked_by_no_one_keeps_being_renewed_after_a_crash_of_another()
    {
        var (leader, crashed, third) = Roles();
        var lastLease = new LastLease();
        third.EventStream.Subscribe(third.ActorOf(Props.Create(() => new LeaseWatcher(lastLease))), typeof(LeaseProtocol.LeaseRenewed));
        var downed = WatchDowning(leader);

        await Cut(crashed, leader);
        await Cut(crashed, third);
        downed.ExpectMsg<ClusterEvent.MemberDowned>(TimeSpan.FromSeconds(30));

        // The survivors' promises concern the lost member only: the third one's lease goes on.
        var before = lastLease.ExpiresAt;
        AwaitCondition(() => lastLease.ExpiresAt > before + 1000, TimeSpan.FromSeconds(5));
    }

    /// <summary>The leader, which decides, and the two other members.</summary>
    private (ActorSystem Leader, ActorSystem First, ActorSystem Second) Roles()
    {
        var leaderAddress = Cluster.Get(Sys).State.Leader;
        var leader = _members.Single(s => Cluster.Get(s).SelfAddress.Equals(leaderAddress));
        var rest = _members.Where(s => s != leader).ToList();
        return (leader, rest[0], rest[1]);
    }

    private Akka.TestKit.TestProbe WatchDowning(ActorSystem observer) => ClusterLinks.WatchDowning(this, observer);

    private static Task<bool> Cut(ActorSystem one, ActorSystem other) => ClusterLinks.Cut(one, other);

    private sealed class LastLease
    {
        private long _expiresAt;
        public long ExpiresAt { get => Interlocked.Read(ref _expiresAt); set => Interlocked.Exchange(ref _expiresAt, value); }
    }

    private sealed class LeaseWatcher : ReceiveActor
    {
        public LeaseWatcher(LastLease last) => Receive<LeaseProtocol.LeaseRenewed>(r => last.ExpiresAt = r.ExpiresAt);
    }
}
