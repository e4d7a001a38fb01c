using Continuity.Lab.Chaos;
using Xunit;

namespace Continuity.Lab.Tests.Chaos;

public class ChaosPlanTests
{
    [Fact]
    public void The_same_seed_gives_the_same_plan()
    {
        var a = ChaosPlan.Make(42, 50, []);
        var b = ChaosPlan.Make(42, 50, []);
        Assert.Equal(a, b);
    }

    [Fact]
    public void Another_seed_gives_another_plan()
    {
        var a = ChaosPlan.Make(1, 20, []);
        var b = ChaosPlan.Make(2, 20, []);
        Assert.NotEqual(a.Select(r => (r.Scenario.Name, r.FaultDelay)), b.Select(r => (r.Scenario.Name, r.FaultDelay)));
    }

    [Fact]
    public void Every_scenario_comes_up_once_in_each_round_of_as_many_runs_as_there_are_scenarios()
    {
        var n = Scenarios.All.Count;
        var plan = ChaosPlan.Make(3, 3 * n, []);
        foreach (var round in plan.Chunk(n))
            Assert.Equal(Scenarios.All.Select(s => s.Name).Order(), round.Select(r => r.Scenario.Name).Order());
        // Shuffled, not in the report's order every time.
        Assert.Contains(plan.Chunk(n), round => !round.Select(r => r.Scenario).SequenceEqual(Scenarios.All));
    }

    [Fact]
    public void Only_the_named_scenarios_are_drawn()
    {
        var plan = ChaosPlan.Make(9, 12, ["hang", "node-kill"]);
        Assert.All(plan, r => Assert.Contains(r.Scenario.Name, new[] { "hang", "node-kill" }));
        Assert.Equal(6, plan.Count(r => r.Scenario.Name == "hang"));
    }

    [Fact]
    public void Any_run_is_planned_again_by_its_printed_replay_arguments()
    {
        foreach (var run in ChaosPlan.Make(11, 30, []))
        {
            var replay = Assert.IsType<ChaosCommand>(CommandLine.Parse(run.ReplayArguments.Split(' ')));
            var again = Assert.Single(ChaosPlan.Make(replay.Seed, replay.Runs, replay.Scenarios));
            Assert.Equal(run with { Number = 1 }, again);
        }
    }

    [Fact]
    public void The_random_choices_stay_within_their_bounds()
    {
        foreach (var run in ChaosPlan.Make(5, 500, []))
        {
            Assert.InRange(run.FaultDelay, TimeSpan.Zero, TimeSpan.FromSeconds(5));
            Assert.InRange(run.FaultLength, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(30));
            Assert.InRange(run.Standby, 0, 1);
            Assert.InRange(run.Share, 0.05, 0.30);
            Assert.Contains(run.CheckpointPhase, new[] { "dumping", "shipping" });
        }
    }

    [Fact]
    public void Run_seeds_are_distinct_so_no_two_runs_replay_as_one()
    {
        var seeds = ChaosPlan.Make(1, 1000, []).Select(r => r.Seed).ToList();
        Assert.Equal(seeds.Count, seeds.Distinct().Count());
        Assert.Equal(1, seeds[0]);
    }

    [Theory]
    [InlineData("replication-reorder", "ReorderReplication")]
    [InlineData("crash-restore", "CrashTakeoverDuringRestore")]
    [InlineData("crash-replay", "CrashTakeoverDuringReplay")]
    [InlineData("split-majority", "SplitPrimaryInMajority")]
    [InlineData("split-minority", "SplitPrimaryInMinority")]
    [InlineData("queue-full", "FloodQueue")]
    [InlineData("journal-full", "FillStandbyJournal")]
    public void The_fault_scenarios_of_issue_6_are_offered_by_name_with_their_fault_under_load(string name, string fault)
    {
        var scenario = Scenarios.Find(name);
        Assert.NotNull(scenario);
        Assert.Equal(fault, scenario.Fault.ToString());
        // Each is judged under the steady load: the verifying clients must see the fault.
        Assert.False(scenario.Idle);
        Assert.False(string.IsNullOrWhiteSpace(scenario.Description));
    }

    [Fact]
    public void Every_fault_kind_is_carried_out_by_exactly_one_scenario_except_the_crash_that_has_an_idle_and_a_loaded_one()
    {
        foreach (var kind in Enum.GetValues<FaultKind>())
            Assert.Equal(kind == FaultKind.CrashPrimary ? 2 : 1, Scenarios.All.Count(s => s.Fault == kind));
        Assert.Equal(Scenarios.All.Count, Scenarios.All.Select(s => s.Name).Distinct().Count());
    }

    [Fact]
    public void A_session_of_only_the_new_scenarios_deals_each_once_per_round_and_replays_each_run()
    {
        string[] names = ["replication-reorder", "crash-restore", "crash-replay", "split-majority", "split-minority", "queue-full", "journal-full"];
        var plan = ChaosPlan.Make(101, 2 * names.Length, names);
        foreach (var round in plan.Chunk(names.Length))
            Assert.Equal(names.Order(), round.Select(r => r.Scenario.Name).Order());
        foreach (var run in plan)
        {
            var replay = Assert.IsType<ChaosCommand>(CommandLine.Parse(run.ReplayArguments.Split(' ')));
            Assert.Equal(run with { Number = 1 }, Assert.Single(ChaosPlan.Make(replay.Seed, replay.Runs, replay.Scenarios)));
        }
    }

    [Fact]
    public void A_checkpoint_id_gives_the_UTC_time_of_its_freeze_and_anything_else_gives_none()
    {
        Assert.Equal(new DateTime(2026, 11, 30, 10, 11, 11, 45, DateTimeKind.Utc), ChaosRunner.TakenAt("e1-20261130101111045-14"));
        Assert.Equal(DateTimeKind.Utc, ChaosRunner.TakenAt("e12-20261130101111045-3")!.Value.Kind);
        Assert.Null(ChaosRunner.TakenAt(null));
        Assert.Null(ChaosRunner.TakenAt("checkpoint-7"));
        Assert.Null(ChaosRunner.TakenAt("e1-2026113010111104-14"));
    }
}
