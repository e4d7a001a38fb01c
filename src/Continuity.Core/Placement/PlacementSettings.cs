namespace Continuity.Core.Placement;

/// <summary>How primaries are spread over the data nodes (continuity.placement and every application's prefer).</summary>
/// <param name="Rebalance">Move primaries by planned switches (zero loss) when a node serves two or more applications
/// more than another, or when an application's preferred node is a standby again.</param>
/// <param name="Interval">How often each owner looks for such a move; also the quiet time after any switch.</param>
/// <param name="Prefer">For every application (every owner needs the others' to know which of them may be moved):
/// node names in order of preference; empty for no preference.</param>
public sealed record PlacementSettings(bool Rebalance, TimeSpan Interval, IReadOnlyDictionary<string, IReadOnlyList<string>> Prefer)
{
    public static readonly PlacementSettings Default = new(true, TimeSpan.FromSeconds(30), new Dictionary<string, IReadOnlyList<string>>());

    public IReadOnlyList<string> PreferOf(string app) => Prefer.TryGetValue(app, out var p) ? p : [];
}
