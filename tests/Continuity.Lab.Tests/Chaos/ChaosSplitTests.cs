using Continuity.Lab.Chaos;
using Xunit;

namespace Continuity.Lab.Tests.Chaos;

/// <summary>How the chaos lab's splits divide its members (the lab itself runs in the end-to-end tests).</summary>
public class ChaosSplitTests
{
    private static readonly List<string> Members = Topology.Of(2).Hosts(ChaosRunner.DataNodes, ChaosRunner.Witnesses)
        .Where(h => h.IsClusterMember).Select(h => h.Name).ToList();

    [Fact]
    public void The_chaos_lab_has_an_odd_number_of_members_three_data_nodes_and_two_witnesses()
    {
        Assert.Equal(["w1", "w2", "n1", "n2", "n3"], Members);
        Assert.Equal(1, Members.Count % 2);
    }

    [Theory]
    [InlineData("n1", 0)]
    [InlineData("n2", 1)]
    [InlineData("n3", 7)]
    public void In_split_majority_the_primary_is_on_the_side_with_three_of_five_members(string primary, int pick)
    {
        var (side, others) = Split(majority: true, primary, pick);
        Assert.Contains(primary, side);
        Assert.Equal(3, side.Count);
        Assert.Equal(2, others.Count);
        // Each side keeps a data node and a witness.
        Assert.Contains(side, n => n.StartsWith('w'));
        Assert.Contains(others, n => n.StartsWith('w'));
        Assert.Contains(others, n => n.StartsWith('n'));
    }

    [Theory]
    [InlineData("n1", 0)]
    [InlineData("n2", 1)]
    [InlineData("n3", 7)]
    public void In_split_minority_the_primary_and_one_standby_face_the_other_standby_and_both_witnesses(string primary, int pick)
    {
        var (side, others) = Split(majority: false, primary, pick);
        Assert.Contains(primary, side);
        Assert.Equal(2, side.Count);
        Assert.All(side, n => Assert.StartsWith("n", n));
        Assert.Equal(3, others.Count);
        Assert.Contains("w1", others);
        Assert.Contains("w2", others);
    }

    [Fact]
    public void The_seeded_pick_puts_either_standby_with_the_primary()
    {
        Assert.Equal(["n1", "n2"], Split(majority: false, "n1", 0).Side);
        Assert.Equal(["n1", "n3"], Split(majority: false, "n1", 1).Side);
    }

    private static (List<string> Side, List<string> Others) Split(bool majority, string primary, int pick)
    {
        var standbys = Members.Where(n => n.StartsWith('n') && n != primary).ToList();
        var witnesses = Members.Where(n => n.StartsWith('w')).ToList();
        var side = ChaosRunner.PrimarySide(majority, primary, standbys, witnesses, pick);
        var others = Members.Where(n => !side.Contains(n)).ToList();
        // Both sides together are the whole cluster, and no member is on both.
        Assert.Equal(Members.Order(), side.Concat(others).Order());
        return (side, others);
    }
}
