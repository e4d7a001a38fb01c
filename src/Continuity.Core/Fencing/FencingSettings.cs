using Continuity.Core.Configuration;

namespace Continuity.Core.Fencing;

/// <summary>continuity.fencing: the lease a primary needs from a majority of the cluster to keep its VIP live.</summary>
/// <param name="Enabled">Off: no lease, no kernel fence (a node the cluster gave up on keeps its VIP until it learns it).</param>
/// <param name="Lease">How long a majority's answer keeps the VIPs live, counted from when the question was sent.</param>
/// <param name="RenewInterval">How often the node asks the other members to vouch for it.</param>
/// <param name="DownOnRevokedLease">Whether the leader downs an unreachable member as soon as every other member has
/// promised to stop vouching for it and its last lease has run out, instead of waiting for the split brain
/// resolver's stable-after.</param>
/// <param name="PromiseHold">How long a member keeps such a promise; null for <c>Lease</c> + stable-after (5 s).</param>
public sealed record FencingSettings(bool Enabled, TimeSpan Lease, TimeSpan RenewInterval, bool DownOnRevokedLease = true,
    TimeSpan? PromiseHold = null)
{
    public const string Key = "continuity.fencing.";

    public static readonly FencingSettings Default =
        new(true, TimeSpan.FromSeconds(4), TimeSpan.FromMilliseconds(500), true, TimeSpan.FromSeconds(4 + 5));

    /// <summary>
    /// Long enough for the downing to reach every member (a downed member gets no vote anywhere), short enough that a
    /// member whose revocation never completed is not fenced for good.
    /// </summary>
    public TimeSpan Hold => PromiseHold ?? Lease + TimeSpan.FromSeconds(5);

    public static FencingSettings Parse(LoadedConfig config)
    {
        var enabled = ConfigValues.Bool(config, Key + "enabled");
        var lease = ConfigValues.Duration(config, Key + "lease", TimeSpan.FromMilliseconds(500), "4s");
        var renew = ConfigValues.Duration(config, Key + "renew-interval", TimeSpan.FromMilliseconds(50), "500ms");
        var downOnRevoked = ConfigValues.Bool(config, Key + "down-on-revoked-lease");
        if (!enabled) return new FencingSettings(false, lease, renew, false);
        // Three answers may be lost in a row without the VIP going quiet.
        if (renew * 3 > lease)
            throw ConfigValues.Bad(config, Key + "renew-interval",
                $"= \"{ConfigValues.String(config, Key + "renew-interval")}\" is too long for lease = \"{ConfigValues.String(config, Key + "lease")}\": " +
                "a lease must last at least three renew intervals, e.g. lease = 4s, renew-interval = 500ms");
        // The majority downs an unreachable node no sooner than stable-after after the last change it saw; a lease
        // that outlived that would let the old primary's VIP live beside its successor's.
        var stableAfter = ConfigValues.StableAfter(config);
        if (lease >= stableAfter)
            throw ConfigValues.Bad(config, Key + "lease",
                $"= \"{ConfigValues.String(config, Key + "lease")}\" must be shorter than {ConfigValues.StableAfterKey} ({stableAfter.TotalSeconds:0.###}s): " +
                "the old primary's VIP must go quiet before the majority can down it and elect a successor; e.g. lease = 4s with stable-after = 5s");
        return new FencingSettings(true, lease, renew, downOnRevoked, lease + stableAfter);
    }
}
