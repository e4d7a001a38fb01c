using Akka.Configuration;
using Continuity.Core.Configuration;

namespace Continuity.Core.Election;

/// <summary>continuity.election: when an application's owner starts again after the node it ran on was lost.</summary>
public static class ElectionSettings
{
    public const string OwnerRemovalMarginKey = "continuity.election.owner-removal-margin";
    private static readonly TimeSpan DefaultOwnerRemovalMargin = TimeSpan.FromMilliseconds(250);

    /// <summary>Refuses a margin Akka would read as "use the downing provider's" (zero: stable-after again) or one
    /// that is not shorter than stable-after, which would only lengthen failovers.</summary>
    public static void Validate(LoadedConfig config)
    {
        var margin = ConfigValues.Duration(config, OwnerRemovalMarginKey, TimeSpan.FromMilliseconds(1), "250ms");
        var stableAfter = ConfigValues.StableAfter(config);
        if (margin >= stableAfter)
            throw ConfigValues.Bad(config, OwnerRemovalMarginKey,
                $"= \"{ConfigValues.String(config, OwnerRemovalMarginKey)}\" must be shorter than {ConfigValues.StableAfterKey} ({stableAfter.TotalSeconds:0.###}s): " +
                "it is added to every failover whose owner ran on the lost node; e.g. owner-removal-margin = 1s with stable-after = 5s");
    }

    /// <summary>The margin from a configuration <see cref="Validate"/> accepted (the default where the key is absent).</summary>
    public static TimeSpan OwnerRemovalMargin(Config config) => config.GetTimeSpan(OwnerRemovalMarginKey, DefaultOwnerRemovalMargin);
}
