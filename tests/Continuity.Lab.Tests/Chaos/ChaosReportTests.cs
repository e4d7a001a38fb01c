using Continuity.Lab.Chaos;
using Xunit;

namespace Continuity.Lab.Tests.Chaos;

public class ChaosReportTests
{
    [Fact]
    public void The_report_counts_runs_failures_and_the_worst_stall_per_scenario_and_names_the_failing_seed()
    {
        var command = new ChaosCommand(3, 5, null, []);
        var plan = ChaosPlan.Make(5, 3, ["hang", "crash-load"]);
        var report = new ChaosReport(command, 2, run => $"replay {run.Seed}");
        report.Add(new RunResult(plan[0], [], 1200, TimeSpan.FromSeconds(40), "first", null));
        report.Add(new RunResult(plan[1], [], 900, TimeSpan.FromSeconds(40), "second", null, Failover: true));
        report.Add(new RunResult(plan[2], ["client failed: RESULT ok=0"], 30500, TimeSpan.FromSeconds(60), "third", "/logs/x"));

        var md = report.Markdown();
        var failing = plan[2];
        var others = plan.Take(2).Where(r => r.Scenario == failing.Scenario).ToList();
        Assert.Contains($"| {failing.Scenario.Name} | {others.Count + 1} | 1 | 30.5 s | {(plan[1].Scenario == failing.Scenario ? 1 : 0)} |", md);
        Assert.Contains("| **total** | 3 | 1 | 30.5 s | 1 |", md);
        Assert.Contains($"seed {failing.Seed}", md);
        Assert.Contains($"replay {failing.Seed}", md);
        Assert.Contains("/logs/x", md);
        Assert.Equal(1, report.Failures);
        Assert.Contains("WORST STALL", report.Table());
    }
}
