using Continuity.Core.Configuration;
using Continuity.Core.Election;
using Xunit;

namespace Continuity.Core.Tests.Election;

/// <summary>
/// An application's owner is a cluster singleton on the oldest data node. When that node is lost, Akka starts the
/// owner again on the next oldest only after a removal margin, whose Akka.NET default is, through the split brain
/// resolver, stable-after itself: every failover whose owner ran on the lost node paid the downing wait twice.
/// </summary>
public sealed class ElectionSettingsSpecs
{
    [Fact]
    public void By_default_an_owner_lost_with_its_node_starts_again_after_a_short_margin_not_after_a_second_stable_after()
    {
        var config = ContinuityConfigLoader.ReferenceConfig;
        var margin = ElectionSettings.OwnerRemovalMargin(config);

        // Zero is not "no margin": Akka then asks the downing provider, whose answer is stable-after.
        Assert.True(margin > TimeSpan.Zero, $"owner-removal-margin {margin} falls back to stable-after");
        Assert.True(margin < config.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after"),
            $"owner-removal-margin {margin} is not shorter than stable-after");
    }

    [Theory]
    [InlineData("0s", "at least 1ms")]
    [InlineData("5s", "must be shorter than akka.cluster.split-brain-resolver.stable-after (5s)")]
    [InlineData("soon", "expected a duration such as 250ms")]
    public void A_margin_akka_would_misread_or_that_only_lengthens_failovers_is_refused_naming_the_key(string value, string problem)
    {
        var loaded = ContinuityConfigLoader.LoadFromString($"continuity.election.owner-removal-margin = {value}\n", "node.hocon");

        var e = Assert.Throws<ConfigurationException>(() => ElectionSettings.Validate(loaded));
        Assert.Contains("continuity.election.owner-removal-margin", e.Message);
        Assert.Contains("node.hocon", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void The_default_is_accepted()
    {
        ElectionSettings.Validate(ContinuityConfigLoader.LoadFromString("# nothing set\n", "node.hocon"));
    }
}
