using Akka.Actor;
using Akka.Cluster;
using Akka.TestKit.Xunit2;
using Continuity.Core.Fencing;
using Xunit;

namespace Continuity.Core.Tests.Fencing;

/// <summary>Three members in one process over real Akka.Remote, each with its lease keeper.</summary>
[Collection("cluster")]
public sealed class LeaseKeeperClusterSpecs : TestKit, IAsyncLifetime
{
    private static readonly FencingSettings Settings = new(true, TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(200));
    private readonly List<ActorSystem> _others = new();

    public LeaseKeeperClusterSpecs() : base(Config()) { }

    private static Akka.Configuration.Config Config() => TestConfig.Node("""
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        akka.loglevel = WARNING
        """);

    public async Task InitializeAsync()
    {
        var first = Cluster.Get(Sys);
        await first.JoinAsync(first.SelfAddress);
        Sys.ActorOf(LeaseKeeper.Props(Settings), LeaseKeeper.Name);
        for (var i = 0; i < 2; i++)
        {
            var system = ActorSystem.Create(Sys.Name, Config());
            await Cluster.Get(system).JoinAsync(first.SelfAddress);
            system.ActorOf(LeaseKeeper.Props(Settings), LeaseKeeper.Name);
            _others.Add(system);
        }
        AwaitCondition(() => first.State.Members.Count(m => m.Status == MemberStatus.Up) == 3, TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        foreach (var s in _others) await s.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
    }

    [Fact]
    public void A_member_the_majority_answers_has_its_lease_renewed_again_and_again_for_the_configured_length()
    {
        var probe = CreateTestProbe();
        Sys.EventStream.Subscribe(probe.Ref, typeof(LeaseProtocol.LeaseRenewed));
        var first = probe.ExpectMsg<LeaseProtocol.LeaseRenewed>(TimeSpan.FromSeconds(5));
        var second = probe.ExpectMsg<LeaseProtocol.LeaseRenewed>(TimeSpan.FromSeconds(5));
        Assert.True(second.ExpiresAt > first.ExpiresAt);
        // Counted from when the question went out: never more than the lease ahead.
        Assert.InRange(second.ExpiresAt - Environment.TickCount64, 1, (long)Settings.Lease.TotalMilliseconds);
    }

    [Fact]
    public void A_member_that_loses_the_majority_gets_no_more_lease_and_its_last_one_runs_out()
    {
        var probe = CreateTestProbe();
        Sys.EventStream.Subscribe(probe.Ref, typeof(LeaseProtocol.LeaseRenewed));
        probe.ExpectMsg<LeaseProtocol.LeaseRenewed>(TimeSpan.FromSeconds(5));

        // Both other members crash (no graceful leave): this one is still a member in its own view, but alone.
        foreach (var s in _others) s.Terminate().Wait(TimeSpan.FromSeconds(10));
        // An answer already on its way may still renew once; after that nothing does.
        probe.ReceiveWhile(TimeSpan.FromMilliseconds(600), m => m);
        probe.ExpectNoMsg(TimeSpan.FromSeconds(3));
        Assert.Equal(3, Cluster.Get(Sys).State.Members.Count); // not downed: the lease, not the membership, fenced it
    }

    [Fact]
    public void A_member_does_not_vouch_for_an_address_that_is_no_member()
    {
        var stranger = ActorSystem.Create("stranger", Config());
        try
        {
            var keeper = stranger.ActorSelection(new RootActorPath(Cluster.Get(Sys).SelfAddress) / "user" / LeaseKeeper.Name);
            var answer = keeper.Ask<LeaseProtocol.Vouched>(new LeaseProtocol.Vouch(1), TimeSpan.FromSeconds(2));
            Assert.ThrowsAny<Exception>(() => answer.Wait());
        }
        finally { stranger.Terminate().Wait(TimeSpan.FromSeconds(10)); }
    }
}
