using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// 'continuity-lab chaos' end to end, on its own lab instance (2: ct2-*, 198.18.2.0/24): one run of every scenario
/// but node-kill, each under a verifying client, each judged by the chaos checker. A fixed seed makes the plan (the
/// order, the fault moments and lengths) the same on every CI run; the machine's timing still varies.
/// </summary>
/// <remarks>
/// In the "lab" collection although it uses another instance: a third lab beside the tests' and the benchmark's
/// would load this 2-core machine enough to slow every failure detection. node-kill is left out to keep the test at a
/// few minutes (a run waits up to 75 s for the restarted node to end its predecessor's leftovers); it passes on the
/// lab since fencing (docs/chaos.md, "After fencing").
/// </remarks>
[Collection(LabCollection.Name)]
public sealed class ChaosEndToEndTests(ITestOutputHelper output) : ChaosSession(output, "ct-chaos-test-")
{
    /// <summary>
    /// A seed whose timed faults are short (hang 3.4 s, standby down 5.0 s, replication loss 5.1 s, duplication 3.5 s)
    /// and whose partition (18.4 s) ends well after the cluster's decision: the test stays at a few minutes.
    /// The previous seed partitioned the primary for 5.6 s, which on CI healed just as the split brain resolver
    /// decided: it then downed all three data nodes (DownIndirectlyConnected, on a reachability view still healing)
    /// in 2 of 4 CI runs. The resolver now waits for stable reachability records; that case is tested
    /// deterministically by StableReachabilityDowningSpecs, and docs/chaos.md ("A partition that heals as the
    /// resolver decides") has the lab runs at that boundary, which a single seed here would hit only by chance.
    /// </summary>
    private const int Seed = 11292;

    [RootFact]
    public void Chaos_with_a_fixed_seed_loses_no_byte_in_any_scenario_and_reports_zero_failures() =>
        RunEachOnceWithoutFailure(Seed,
            ["crash-idle", "crash-load", "crash-checkpoint", "hang", "standby-crash", "partition-primary", "replication-loss", "replication-dup"]);
}
