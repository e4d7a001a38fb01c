using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// The chaos scenarios of issue 6 end to end, one run each, on lab instance 2 like <see cref="ChaosEndToEndTests"/>:
/// reordered replication, a second crash during the takeover's restore and during its replay, a split with the
/// primary in the majority and one with it in the minority, a full NFQUEUE and a standby's full journal disk. A class
/// of its own so that the older test keeps its few minutes; this one adds about 8.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class ChaosFaultsEndToEndTests(ITestOutputHelper output) : ChaosSession(output, "ct-chaos-faults-test-")
{
    /// <summary>
    /// A seed whose splits last 15-17 s (past the failure detection, so they remove someone) and whose reordering
    /// (20 %), flood and full disk last 4-9 s: the faults do their work and the test stays short.
    /// </summary>
    private const int Seed = 2073;

    [RootFact]
    public void The_faults_of_issue_6_lose_no_byte_and_the_cluster_comes_back_whole_after_each() =>
        RunEachOnceWithoutFailure(Seed,
            ["replication-reorder", "crash-restore", "crash-replay", "split-majority", "split-minority", "queue-full", "journal-full"]);

    /// <summary>The two scenarios no other seed of the suite covers: the node process killed while its program lives,
    /// and a crash stopped by a fail point between the standbys' acknowledgement and the verdict.</summary>
    [RootFact]
    public void A_killed_node_process_and_a_crash_between_acknowledgement_and_verdict_lose_no_byte() =>
        RunEachOnceWithoutFailure(5, ["node-kill", "crash-ack-verdict"]);

    /// <summary>
    /// A primary hung (SIGSTOP) for longer than it takes the others to down and remove it: when it resumes, they have
    /// quarantined it, and its view is from before the hang. It must come back as a standby, whichever of its guards
    /// stops it first (in the lab: the pause noticed on its first tick back, then the quarantine notice 5 s later,
    /// when its connections' gate reopened; its own resolver would down it as a minority about then too). What run
    /// 70 of docs/chaos.md's sixth stretch hit, a decision on stale records in the first tick, depends on timing a
    /// seed does not fix; QuarantinedByMemberSpecs tests the notice deterministically.
    /// </summary>
    [RootFact]
    public void A_primary_hung_past_its_removal_loses_no_byte_and_comes_back_as_a_standby() =>
        RunEachOnceWithoutFailure(7, ["hang"], faultLength: TimeSpan.FromSeconds(15));
}
