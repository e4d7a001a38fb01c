using Continuity.Core.Configuration;
using Continuity.Core.Fencing;
using Xunit;

namespace Continuity.Core.Tests.Fencing;

public class FencingSettingsTests
{
    private static FencingSettings From(string text) => FencingSettings.Parse(ContinuityConfigLoader.LoadFromString(text, "node.hocon"));

    [Fact]
    public void By_default_a_primary_needs_a_majority_every_half_second_for_a_four_second_lease()
    {
        Assert.Equal(FencingSettings.Default, From(""));
        Assert.True(From("").Enabled);
    }

    [Fact]
    public void A_lease_as_long_as_the_resolvers_stable_after_is_refused_with_the_reason_and_an_example()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("\ncontinuity.fencing.lease = 5s\n"));
        Assert.Equal("continuity.fencing.lease", e.Key);
        Assert.Contains("node.hocon:2:", e.Message);
        Assert.Contains("must be shorter than akka.cluster.split-brain-resolver.stable-after (5s)", e.Message);
        Assert.Contains("e.g. lease = 4s with stable-after = 5s", e.Message);
        // A longer stable-after makes room for it.
        Assert.Equal(TimeSpan.FromSeconds(5), From("continuity.fencing.lease = 5s\nakka.cluster.split-brain-resolver.stable-after = 8s").Lease);
    }

    [Fact]
    public void A_renew_interval_that_leaves_no_room_for_lost_answers_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("continuity.fencing { lease = 2s, renew-interval = 1s }"));
        Assert.Equal("continuity.fencing.renew-interval", e.Key);
        Assert.Contains("at least three renew intervals", e.Message);
    }

    [Fact]
    public void Fencing_switched_off_is_not_checked_against_the_resolver()
    {
        var s = From("continuity.fencing { enabled = off, lease = 30s }");
        Assert.False(s.Enabled);
    }

    [Fact]
    public void Downing_on_a_revoked_lease_is_on_by_default_and_its_promises_last_a_lease_plus_stable_after()
    {
        Assert.True(From("").DownOnRevokedLease);
        Assert.Equal(TimeSpan.FromSeconds(9), From("").Hold);
        Assert.Equal(TimeSpan.FromSeconds(3 + 8),
            From("continuity.fencing.lease = 3s\nakka.cluster.split-brain-resolver.stable-after = 8s").Hold);
        Assert.False(From("continuity.fencing.down-on-revoked-lease = off").DownOnRevokedLease);
        var e = Assert.Throws<ConfigurationException>(() => From("continuity.fencing.down-on-revoked-lease = soon"));
        Assert.Equal("continuity.fencing.down-on-revoked-lease", e.Key);
    }

    [Fact]
    public void A_lease_that_is_no_duration_names_the_key()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("continuity.fencing.lease = soon"));
        Assert.Equal("continuity.fencing.lease", e.Key);
    }
}
