namespace Continuity.Core.Placement;

/// <summary>A data node an application's primary could run on.</summary>
/// <param name="Node">Cluster address.</param>
/// <param name="Serving">Applications this node is primary of now (not counting the one being placed).</param>
public sealed record PlacementCandidate(string Node, string NodeName, int Serving);

/// <summary>A planned switch placement asks for, with the reason the switch report and the logs show.</summary>
public sealed record PlacementMove(PlacementCandidate Target, string Reason);

/// <summary>
/// Where an application's primary should run: the patent's dynamic distribution of processes over the cluster. Pure
/// functions of what the owner learnt from the nodes, so every owner decides the same way from the same facts.
///
/// Why not Akka.Cluster.Sharding's allocation strategy: its unit is a shard whose entity moves by being stopped and
/// started elsewhere, which for us would be a restart of the program; here a move must be a planned switch (final
/// checkpoint, restore, no loss), started by the owner that already fences epochs. The rule is the one of sharding's
/// least-shard allocation: fewest first, and rebalance only when the difference reaches a threshold (two), so a move
/// never makes the spread worse.
/// </summary>
public static class PlacementPolicy
{
    private const int NotPreferred = int.MaxValue;

    /// <summary>Best first: the application's preferred nodes in its order, then the node serving fewest applications,
    /// then a spread by the application's index, so owners that place their applications at the same moment (each
    /// seeing every node idle) still pick different nodes.</summary>
    /// <param name="appIndex">Position of the application among all applications sorted by name (the same on every node).</param>
    public static IReadOnlyList<PlacementCandidate> Order(IReadOnlyList<PlacementCandidate> candidates, IReadOnlyList<string> prefer, int appIndex)
    {
        var byAddress = candidates.Select(c => c.Node).Order(StringComparer.Ordinal).ToList();
        var n = Math.Max(1, byAddress.Count);
        int Spread(PlacementCandidate c) => ((byAddress.IndexOf(c.Node) - appIndex) % n + n) % n;
        return candidates.OrderBy(c => Rank(prefer, c.NodeName)).ThenBy(c => c.Serving).ThenBy(Spread)
            .ThenBy(c => c.Node, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The standby this application should move to, or null to stay. Moves for preference first (a preferred node
    /// is back); otherwise for load, only between nodes the application likes equally, only when the current node
    /// serves at least two more applications than the target, and only if this application is the first, by name,
    /// of the movable applications on its node: owners decide independently, and that rule lets one of them move
    /// at a time from a node instead of all of them at once.
    /// </summary>
    /// <param name="current">The current primary, with <see cref="PlacementCandidate.Serving"/> counting every application it serves, this one included.</param>
    /// <param name="standbys">Standbys able to take over without loss, with their current load.</param>
    /// <param name="servedByCurrent">Every application the current primary serves, this one included.</param>
    public static PlacementMove? RebalanceTarget(string app, PlacementCandidate current, IReadOnlyList<PlacementCandidate> standbys,
        IReadOnlyList<string> servedByCurrent, PlacementSettings settings)
    {
        var prefer = settings.PreferOf(app);
        var here = Rank(prefer, current.NodeName);
        var preferred = standbys.Where(s => Rank(prefer, s.NodeName) < here).OrderBy(s => Rank(prefer, s.NodeName)).FirstOrDefault();
        if (preferred is not null) return new PlacementMove(preferred, $"rebalance: back to preferred node {preferred.NodeName}");

        var lightest = standbys.Where(s => Rank(prefer, s.NodeName) == here)
            .OrderBy(s => s.Serving).ThenBy(s => s.Node, StringComparer.Ordinal).FirstOrDefault();
        if (lightest is null || current.Serving < lightest.Serving + 2) return null;
        // An application on its preferred node stays there whatever the load: the operator asked for it.
        var firstMovable = servedByCurrent.Where(a => Rank(settings.PreferOf(a), current.NodeName) == NotPreferred)
            .Order(StringComparer.Ordinal).FirstOrDefault();
        return firstMovable == app
            ? new PlacementMove(lightest, $"rebalance: {current.NodeName} serves {current.Serving} applications, {lightest.NodeName} {lightest.Serving}")
            : null;
    }

    private static int Rank(IReadOnlyList<string> prefer, string nodeName)
    {
        for (var i = 0; i < prefer.Count; i++)
            if (string.Equals(prefer[i], nodeName, StringComparison.Ordinal)) return i;
        return NotPreferred;
    }
}
