using Continuity.Core.Placement;
using Xunit;

namespace Continuity.Core.Tests.Placement;

public sealed class PlacementPolicySpecs
{
    private static PlacementCandidate Node(int i, int serving = 0) => new($"akka.tcp://continuity@198.18.0.{10 + i}:4053", $"n{i}", serving);

    private static PlacementSettings Settings(params (string App, string[] Prefer)[] prefer) =>
        new(true, TimeSpan.FromSeconds(30), prefer.ToDictionary(p => p.App, p => (IReadOnlyList<string>)p.Prefer));

    [Fact]
    public void Applications_starting_together_on_idle_nodes_land_on_different_nodes()
    {
        var nodes = new[] { Node(1), Node(2), Node(3) };
        var chosen = Enumerable.Range(0, 3).Select(i => PlacementPolicy.Order(nodes, [], i)[0].NodeName).ToList();
        Assert.Equal(["n1", "n2", "n3"], chosen);
    }

    [Fact]
    public void The_node_serving_fewest_applications_comes_first()
    {
        var order = PlacementPolicy.Order([Node(1, 2), Node(2, 0), Node(3, 1)], [], appIndex: 0);
        Assert.Equal(["n2", "n3", "n1"], order.Select(c => c.NodeName));
    }

    [Fact]
    public void A_preferred_node_wins_over_a_less_loaded_one()
    {
        var order = PlacementPolicy.Order([Node(1, 0), Node(2, 0), Node(3, 3)], ["n3", "n2"], appIndex: 0);
        Assert.Equal(["n3", "n2", "n1"], order.Select(c => c.NodeName));
    }

    [Fact]
    public void An_application_moves_off_a_node_serving_two_more_than_a_standby()
    {
        var move = PlacementPolicy.RebalanceTarget("a", Node(1, 3), [Node(2, 0), Node(3, 1)], ["a", "b", "c"], Settings());
        Assert.NotNull(move);
        Assert.Equal("n2", move.Target.NodeName);
        Assert.Contains("n1 serves 3 applications, n2 0", move.Reason);
    }

    [Fact]
    public void Only_the_first_movable_application_of_a_node_moves_at_a_time()
    {
        // Every owner decides on its own: if b and c moved too, n2 would end up with three and they would come back.
        Assert.Null(PlacementPolicy.RebalanceTarget("b", Node(1, 3), [Node(2, 0)], ["a", "b", "c"], Settings()));
        Assert.Null(PlacementPolicy.RebalanceTarget("c", Node(1, 3), [Node(2, 0)], ["a", "b", "c"], Settings()));
        // ...unless the first one stays by preference: then the next one is the movable one.
        Assert.NotNull(PlacementPolicy.RebalanceTarget("b", Node(1, 3), [Node(2, 0)], ["a", "b", "c"], Settings(("a", ["n1"]))));
    }

    [Fact]
    public void A_difference_of_one_is_not_worth_a_switch()
    {
        // Moving would only swap which node serves more: a pause for clients and nothing gained.
        Assert.Null(PlacementPolicy.RebalanceTarget("a", Node(1, 2), [Node(2, 1), Node(3, 1)], ["a", "b"], Settings()));
    }

    [Fact]
    public void An_application_goes_back_to_its_preferred_node_once_that_node_is_a_standby()
    {
        var move = PlacementPolicy.RebalanceTarget("a", Node(2, 1), [Node(1, 2), Node(3, 0)], ["a"], Settings(("a", ["n1"])));
        Assert.NotNull(move);
        Assert.Equal("n1", move.Target.NodeName);
        Assert.Equal("rebalance: back to preferred node n1", move.Reason);
    }

    [Fact]
    public void An_application_on_its_preferred_node_stays_whatever_the_load()
    {
        Assert.Null(PlacementPolicy.RebalanceTarget("a", Node(1, 4), [Node(2, 0), Node(3, 0)], ["a", "b", "c", "d"], Settings(("a", ["n1"]))));
    }

    [Fact]
    public void Load_moves_stay_among_nodes_the_application_likes_equally()
    {
        // a is on its second choice n2; n3 is idle but not preferred at all: better to stay on n2.
        Assert.Null(PlacementPolicy.RebalanceTarget("a", Node(2, 3), [Node(3, 0)], ["a", "b", "c"], Settings(("a", ["n1", "n2"]))));
    }
}
