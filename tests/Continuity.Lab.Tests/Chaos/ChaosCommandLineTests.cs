using Continuity.Lab.Chaos;
using Xunit;

namespace Continuity.Lab.Tests.Chaos;

public class ChaosCommandLineTests
{
    private static LabCommand Parse(params string[] args) => CommandLine.Parse(args);

    [Fact]
    public void Chaos_takes_runs_seed_report_and_scenarios()
    {
        var c = Assert.IsType<ChaosCommand>(Parse("chaos", "--runs", "20", "--seed", "7", "--report", "out.md",
            "--scenario", "hang", "--scenario=crash-load"));
        Assert.Equal(20, c.Runs);
        Assert.Equal(7, c.Seed);
        Assert.Equal("out.md", c.ReportFile);
        Assert.Equal(["hang", "crash-load"], c.Scenarios);
    }

    [Fact]
    public void Chaos_without_scenarios_or_report_draws_from_every_scenario_and_writes_no_file()
    {
        var c = Assert.IsType<ChaosCommand>(Parse("--instance", "2", "chaos", "--runs=1", "--seed=0"));
        Assert.Empty(c.Scenarios);
        Assert.Null(c.ReportFile);
        Assert.Equal(2, c.Instance);
    }

    [Fact]
    public void A_fault_length_overrides_every_run_and_its_replay_command_keeps_it()
    {
        var c = Assert.IsType<ChaosCommand>(Parse("chaos", "--runs", "3", "--seed", "5", "--scenario", "partition-primary", "--fault-length", "5.6"));
        Assert.Equal(TimeSpan.FromSeconds(5.6), c.FaultLength);
        Assert.Null(Assert.IsType<ChaosCommand>(Parse("chaos", "--runs", "1", "--seed", "5")).FaultLength);

        var run = ChaosPlan.Make(5, 1, ["partition-primary"])[0] with { FaultLength = TimeSpan.FromSeconds(5.6), FaultLengthGiven = true };
        Assert.Equal("chaos --runs 1 --seed 5 --scenario partition-primary --fault-length 5.6", run.ReplayArguments);
    }

    [Fact]
    public void A_scenario_named_twice_runs_as_one()
    {
        var c = Assert.IsType<ChaosCommand>(Parse("chaos", "--runs", "2", "--seed", "1", "--scenario", "hang", "--scenario", "hang"));
        Assert.Equal(["hang"], c.Scenarios);
    }

    [Theory]
    [InlineData(new[] { "chaos", "--seed", "1" }, "--runs N is required")]
    [InlineData(new[] { "chaos", "--runs", "3" }, "--seed S is required")]
    [InlineData(new[] { "chaos", "--runs", "0", "--seed", "1" }, "--runs must be a whole number from 1")]
    [InlineData(new[] { "chaos", "--runs", "many", "--seed", "1" }, "--runs must be a whole number from 1")]
    [InlineData(new[] { "chaos", "--runs", "1", "--seed", "-4" }, "--seed must be a whole number")]
    [InlineData(new[] { "chaos", "--runs", "1", "--seed", "99999999999" }, "--seed must be a whole number")]
    [InlineData(new[] { "chaos", "--runs", "1", "--seed", "1", "--scenario", "meteor" }, "unknown scenario 'meteor'; the scenarios are: crash-idle")]
    [InlineData(new[] { "chaos", "--runs", "1", "--seed", "1", "--report" }, "--report needs a value")]
    [InlineData(new[] { "chaos", "--runs", "1", "--seed", "1", "--nodes", "5" }, "chaos: unknown argument '--nodes'")]
    [InlineData(new[] { "chaos", "--runs", "1", "--seed", "1", "--fault-length", "0.1" }, "--fault-length must be a number of seconds from 0.5 to 600")]
    [InlineData(new[] { "chaos", "--runs", "1", "--seed", "1", "--fault-length", "5s" }, "--fault-length must be a number of seconds from 0.5 to 600, got '5s'")]
    public void Bad_chaos_arguments_are_rejected_with_a_message_naming_the_problem(string[] args, string expected)
    {
        var e = Assert.Throws<UsageException>(() => CommandLine.Parse(args));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void The_usage_names_every_scenario()
    {
        foreach (var s in Scenarios.All) Assert.Contains(s.Name, CommandLine.Usage);
    }
}
