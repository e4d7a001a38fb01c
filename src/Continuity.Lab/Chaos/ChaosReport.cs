using System.Globalization;
using System.Text;

namespace Continuity.Lab.Chaos;

/// <summary>The table of a chaos session: per scenario, runs, failures and worst stall; then every failing run.</summary>
internal sealed class ChaosReport(ChaosCommand command, int instance, Func<PlannedRun, string> replay)
{
    private readonly List<RunResult> _results = [];
    private readonly DateTime _started = DateTime.UtcNow;

    public void Add(RunResult result) => _results.Add(result);

    public int Failures => _results.Count(r => r.Failed);

    public IReadOnlyList<RunResult> Results => _results;

    private sealed record Row(string Scenario, int Runs, int Failures, int Failovers, long? WorstStallMs, double MeanSeconds);

    private IEnumerable<Row> Rows() =>
        Scenarios.All
            .Select(s => (s, runs: _results.Where(r => r.Run.Scenario == s).ToList()))
            .Where(x => x.runs.Count > 0)
            .Select(x => new Row(x.s.Name, x.runs.Count, x.runs.Count(r => r.Failed), x.runs.Count(r => r.Failover),
                x.runs.Max(r => r.WorstStallMs), x.runs.Average(r => r.Took.TotalSeconds)));

    private static string Stall(long? ms) => ms is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v / 1000.0:0.0} s") : "-";

    /// <summary>The table for the terminal (the same rows as the markdown, aligned).</summary>
    public string Table()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{"SCENARIO",-18} {"RUNS",5} {"FAILURES",9} {"WORST STALL",12} {"FAILOVERS",10}");
        foreach (var r in Rows())
            sb.AppendLine($"{r.Scenario,-18} {r.Runs,5} {r.Failures,9} {Stall(r.WorstStallMs),12} {r.Failovers,10}");
        sb.AppendLine($"{"total",-18} {_results.Count,5} {Failures,9} {Stall(_results.Max(r => r.WorstStallMs)),12} {_results.Count(r => r.Failover),10}");
        foreach (var f in _results.Where(r => r.Failed))
            sb.AppendLine($"FAILED run {f.Run.Number} {f.Run.Scenario.Name} seed {f.Run.Seed}: {f.Problems[0]}\n  replay: {replay(f.Run)}\n  logs: {f.KeptLogs}");
        return sb.ToString().TrimEnd();
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Chaos report");
        sb.AppendLine();
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"`continuity-lab --instance {instance} chaos --runs {command.Runs} --seed {command.Seed}" +
            $"{string.Concat(command.Scenarios.Select(s => " --scenario " + s))}" +
            $"{(command.FaultLength is { } length ? PlannedRun.FaultLengthArgument(length) : "")}`: {_results.Count} of {command.Runs} runs done, " +
            $"started {_started:yyyy-MM-dd HH:mm} UTC, {(DateTime.UtcNow - _started).TotalMinutes:0} min, {Environment.ProcessorCount} cores."));
        sb.AppendLine();
        sb.AppendLine("| scenario | runs | failures | worst stall | failovers | mean run |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var r in Rows())
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {r.Scenario} | {r.Runs} | {r.Failures} | {Stall(r.WorstStallMs)} | {r.Failovers} | {r.MeanSeconds:0} s |"));
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| **total** | {_results.Count} | {Failures} | {Stall(_results.Max(r => r.WorstStallMs))} | {_results.Count(r => r.Failover)} | |"));
        sb.AppendLine();
        sb.AppendLine("Worst stall: the longest time one client request waited for its reply (TCP or UDP). Failovers: runs after which " +
                      "another node was primary (a short hang or partition can pass unnoticed). Mean run: from the start of the run to " +
                      "the cluster whole again, lab start-up included where the run rebuilt the lab.");
        var failed = _results.Where(r => r.Failed).ToList();
        if (failed.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Failing runs");
            foreach (var f in failed)
            {
                sb.AppendLine();
                sb.AppendLine($"- run {f.Run.Number}, {f.Run.Scenario.Name}, seed {f.Run.Seed}: {f.What}");
                foreach (var p in f.Problems) sb.AppendLine($"  - {p.Replace("\n", " ")}");
                sb.AppendLine($"  - replay: `{replay(f.Run)}`");
                sb.AppendLine($"  - logs: `{f.KeptLogs}`");
            }
        }
        return sb.ToString();
    }
}
