using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Membership;
using Xunit;
using Record = Continuity.Core.Membership.IndirectlyConnected.Record;
using static Continuity.Core.Membership.IndirectlyConnected;

namespace Continuity.Core.Tests.Membership;

/// <summary>
/// Which members the downing provider downs when members stopped hearing each other while others hear both. The
/// same rule runs in a real cluster in <see cref="StableReachabilityDowningSpecs"/>.
/// </summary>
public sealed class IndirectlyConnectedSpecs
{
    // Oldest first, as the provider passes them.
    private static readonly UniqueAddress N1 = Node("n1"), N2 = Node("n2"), N3 = Node("n3"), W1 = Node("w1"), W2 = Node("w2");
    private static readonly IReadOnlyList<Candidate> Cluster =
        [new(N1, true), new(N2, true), new(N3, true), new(W1, false), new(W2, false)];
    private static readonly IReadOnlySet<Address> NobodySeen = new HashSet<Address>();

    [Fact]
    public void Three_data_nodes_that_lost_each_other_keep_the_oldest_where_Akka_downs_all_three()
    {
        var records = Both(N1, N2).Concat(Both(N2, N3)).Concat(Both(N1, N3)).ToList();

        Assert.Equal(new[] { N1, N2, N3 }.ToHashSet(), Members(records, NobodySeen));
        Assert.Equal(new[] { N2, N3 }.ToHashSet(), FewestToDown(records, NobodySeen, Cluster, W1));
    }

    [Fact]
    public void A_crashed_node_that_had_recorded_a_live_standby_is_downed_alone()
    {
        // n1 recorded n2 unreachable, then crashed: everybody records n1. Akka's rule names n1 and n2.
        var records = new List<Record> { new(N1, N2), new(N2, N1), new(N3, N1), new(W1, N1), new(W2, N1) };

        Assert.Equal(new[] { N1, N2 }.ToHashSet(), Members(records, NobodySeen));
        Assert.Equal(new[] { N1 }.ToHashSet(), FewestToDown(records, NobodySeen, Cluster, W1));
    }

    [Fact]
    public void A_witness_is_downed_rather_than_the_data_node_it_lost()
    {
        var records = Both(W1, N1).ToList();

        Assert.Equal(new[] { W1 }.ToHashSet(), FewestToDown(records, NobodySeen, Cluster, W1));
    }

    [Fact]
    public void A_record_of_a_member_that_has_seen_the_latest_gossip_is_inconsistent()
    {
        // One-way: w1 hears nothing from n1, yet n1 gossips with the others.
        var records = new List<Record> { new(W1, N1) };
        var seenBy = new HashSet<Address> { N1.Address, N2.Address, W1.Address };

        Assert.Equal(new[] { W1, N1 }.ToHashSet(), Members(records, seenBy));
        Assert.Equal(new[] { W1 }.ToHashSet(), FewestToDown(records, seenBy, Cluster, W1));
    }

    [Fact]
    public void A_crashed_or_cut_off_member_is_left_to_the_resolver()
    {
        var records = new List<Record> { new(N2, N1), new(N3, N1), new(W1, N1), new(W2, N1) };

        Assert.Empty(Members(records, NobodySeen));
        Assert.Empty(FewestToDown(records, NobodySeen, Cluster, W1));
    }

    [Fact]
    public void Records_of_members_already_downed_do_not_count()
    {
        // n1 is downed (no candidate any more) but its records stay until it is removed.
        var records = Both(N1, N2).Concat(Both(N1, N3)).ToList();

        Assert.NotEmpty(Members(records, NobodySeen));
        Assert.Empty(FewestToDown(records, NobodySeen, Cluster.Where(c => c.Address != N1).ToList(), W1));
    }

    [Fact]
    public void An_isolated_pair_among_the_rest_costs_one_member_and_other_unreachable_members_are_left_alone()
    {
        // n2 and n3 lost each other; n1 crashed (everybody records it): only the pair is inconsistent.
        var records = Both(N2, N3).Concat([new(N2, N1), new(N3, N1), new(W1, N1), new(W2, N1)]).ToList();

        Assert.Equal(new[] { N3 }.ToHashSet(), FewestToDown(records, NobodySeen, Cluster, W1));
    }

    [Fact]
    public void A_primary_that_lost_both_standbys_keeps_serving_and_the_standbys_go()
    {
        // The fewest members would be n1 alone, but n1 serves the application: downing it costs a failover.
        var records = Both(N1, N2).Concat(Both(N1, N3)).ToList();
        var withPrimary = Cluster.Select(c => c.Address == N1 ? c with { Primaries = 1 } : c).ToList();

        Assert.Equal(new[] { N1 }.ToHashSet(), FewestToDown(records, NobodySeen, Cluster, W1));
        Assert.Equal(new[] { N2, N3 }.ToHashSet(), FewestToDown(records, NobodySeen, withPrimary, W1));
    }

    [Fact]
    public void A_crashed_primary_is_still_downed_rather_than_its_live_standby()
    {
        var records = new List<Record> { new(N1, N2), new(N2, N1), new(N3, N1), new(W1, N1), new(W2, N1) };
        var withPrimary = Cluster.Select(c => c.Address == N1 ? c with { Primaries = 1 } : c).ToList();

        Assert.Equal(new[] { N1 }.ToHashSet(), FewestToDown(records, NobodySeen, withPrimary, W1));
    }

    private static IEnumerable<Record> Both(UniqueAddress one, UniqueAddress other) => [new(one, other), new(other, one)];

    private static UniqueAddress Node(string host) =>
        new(new Address("akka.tcp", "continuity", host, 4053), host.GetHashCode());
}
