using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// deploy/bench.sh must not rot between the times someone runs it for real: its smoke mode (tiny
/// sizes, one crash) runs here and must produce a report with every section, numbers that parse and
/// its plots. No timing is asserted: this machine's speed is what the report is for.
/// </summary>
/// <remarks>
/// Not in the "lab" collection on purpose: the benchmark uses lab instance 1 only (ct1-*, ct1br,
/// 198.18.1.0/24), so it can run beside the tests of instance 0 without waiting for their lock.
/// </remarks>
public sealed class BenchmarkSmokeTests(ITestOutputHelper output)
{
    private static readonly string[] Sections =
        ["Machine", "Targets", "Cost while nothing fails", "Failover", "Alternatives", "Checkpoints", "Limits of this run"];

    private static readonly string[] SectionsWithNumbers =
        ["Machine", "Targets", "Cost while nothing fails", "Failover", "Alternatives", "Checkpoints"];

    private static readonly Regex Number = new(@"^-?[\d,]*\.?\d+( ?(µs|ms|s|MB|MiB|MB/s|×))?$", RegexOptions.CultureInvariant);

    [RootFact]
    public void The_smoke_benchmark_writes_a_report_with_every_section_numbers_that_parse_and_its_plots()
    {
        var root = Lab.FindRepoRoot() ?? throw new InvalidOperationException("repository root not found");
        var dir = Directory.CreateTempSubdirectory("ct-bench-smoke-").FullName;
        try
        {
            var report = Path.Combine(dir, "benchmarks.md");
            var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(root, "deploy", "bench.sh"), "--smoke", "--out", report }) start.ArgumentList.Add(a);
            using var bench = Process.Start(start)!;
            var stdout = bench.StandardOutput.ReadToEndAsync();
            var stderr = bench.StandardError.ReadToEndAsync();
            // A generous bound, not a timing assertion: only a hung benchmark should hit it.
            if (!bench.WaitForExit(TimeSpan.FromMinutes(8)))
            {
                bench.Kill(entireProcessTree: true);
                throw new Xunit.Sdk.XunitException("deploy/bench.sh --smoke did not finish within 8 minutes");
            }
            output.WriteLine(stdout.Result + stderr.Result);
            Assert.True(bench.ExitCode == 0, $"deploy/bench.sh --smoke exited {bench.ExitCode}:\n{stderr.Result}");

            var text = File.ReadAllText(report);
            foreach (var section in Sections)
                Assert.Contains($"\n## {section}\n", text);
            foreach (var section in SectionsWithNumbers)
            {
                var cells = TableCells(SectionText(text, section)).ToList();
                Assert.True(cells.Any(c => Number.IsMatch(c)), $"section '{section}' has no number in its tables:\n{SectionText(text, section)}");
                Assert.DoesNotContain(cells, c => c.Contains("nan", StringComparison.OrdinalIgnoreCase));
            }
            foreach (var cell in TableCells(SectionText(text, "Cost while nothing fails")).Where(c => Number.IsMatch(c)))
                Assert.True(double.TryParse(cell.Split(' ')[0], NumberStyles.Number, CultureInfo.InvariantCulture, out _), $"'{cell}' does not parse");

            // The replication round trip's transport, measured apart from the stages: every transport timed.
            var stages = SectionText(text, "Where the time goes");
            Assert.Contains("### The transport alone", stages);
            foreach (var transport in new[] { "tcp", "tls", "remoting", "remoting-tls" })
                Assert.Matches(new Regex($@"\n\| {Regex.Escape(transport)} \| [\d,]+ \| [\d,]+ \| [\d,]+ \|"), stages);

            // The log path's ceiling: the wide upload ran both ways, and the packets it pushed through the queue are counted.
            Assert.Matches(new Regex(@"The log path's ceiling[^\n]*\n\n\| standbys [^\n]*\n\|[-|]+\n\| 2 \| [\d.,]+ \| [\d.,]+ \| [\d.]+ \| [\d,]+ \|"),
                SectionText(text, "Cost while nothing fails"));

            var plots = Regex.Matches(text, @"!\[[^\]]*\]\(([^)]+\.png)\)").Select(m => m.Groups[1].Value).ToList();
            Assert.NotEmpty(plots);
            foreach (var plot in plots)
            {
                var bytes = File.ReadAllBytes(Path.Combine(dir, plot));
                Assert.True(bytes.Length > 1000 && bytes[1] == 'P' && bytes[2] == 'N' && bytes[3] == 'G', $"{plot} is not a PNG");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string SectionText(string report, string section)
    {
        var start = report.IndexOf($"\n## {section}\n", StringComparison.Ordinal);
        if (start < 0) return "";
        var end = report.IndexOf("\n## ", start + 4, StringComparison.Ordinal);
        return end < 0 ? report[start..] : report[start..end];
    }

    /// <summary>Cells of the data rows of every markdown table in the text (header and rule rows excluded).</summary>
    private static IEnumerable<string> TableCells(string text)
    {
        var rows = text.Split('\n').Where(l => l.StartsWith('|')).ToList();
        for (var i = 0; i < rows.Count; i++)
        {
            var isRule = Regex.IsMatch(rows[i], @"^\|(\s*-+\s*\|)+\s*$");
            var nextIsRule = i + 1 < rows.Count && Regex.IsMatch(rows[i + 1], @"^\|(\s*-+\s*\|)+\s*$");
            if (isRule || nextIsRule) continue;
            foreach (var cell in rows[i].Trim('|').Split('|')) yield return cell.Trim();
        }
    }
}
