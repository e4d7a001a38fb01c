using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// One 'continuity-lab chaos' session on a lab of its own (instance 2: ct2-*, 198.18.2.0/24) and the verdict a user
/// reads in its report: each scenario run once without failure, and a total of zero failures.
/// </summary>
public abstract class ChaosSession(ITestOutputHelper output, string prefix) : IDisposable
{
    private const int Instance = 2;
    private readonly string _dir = Directory.CreateTempSubdirectory(prefix).FullName;

    public void Dispose()
    {
        Program.Run(["--instance", Instance.ToString(), "--state-dir", Path.Combine(_dir, "lab"), "down"], TextWriter.Null, TextWriter.Null);
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }

    private static string Digests(string stdout) =>
        string.Join("\n", Regex.Matches(stdout, @"^\s*logs: (\S+)\s*$", RegexOptions.Multiline)
            .Select(m => Path.Combine(m.Groups[1].Value, Continuity.Lab.Apps.NodeLogs.DigestFile)).Distinct()
            .Select(f => File.Exists(f) ? $"=== {f}\n{File.ReadAllText(f)}" : $"=== {f}: missing"));

    /// <summary>Runs each of <paramref name="covered"/> once (the plan deals each scenario of a round once:
    /// ChaosPlanTests) with <paramref name="seed"/>, and asserts the report shows no failure.</summary>
    /// <param name="faultLength">Every timed fault lasts this long instead of its seeded length.</param>
    protected void RunEachOnceWithoutFailure(int seed, IReadOnlyList<string> covered, TimeSpan? faultLength = null)
    {
        var report = Path.Combine(_dir, "chaos.md");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = Program.Run(
            ["--instance", Instance.ToString(), "--state-dir", Path.Combine(_dir, "lab"), "chaos", "--runs", covered.Count.ToString(),
             "--seed", seed.ToString(), "--report", report, .. covered.SelectMany(s => new[] { "--scenario", s }),
             .. faultLength is { } length ? new[] { "--fault-length", length.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) } : []],
            stdout, stderr);
        output.WriteLine(stdout.ToString());
        output.WriteLine(stderr.ToString());

        var text = File.ReadAllText(report);
        output.WriteLine(text);
        var failed = Regex.Match(text, @"\| \*\*total\*\* \| \d+ \| (\d+) \|") is { Success: true } t && t.Groups[1].Value != "0";
        // The kept logs live in the clone under test, which a CI run deletes: the digests go into the failure itself.
        Assert.False(failed || code != 0, $"chaos exited {code}:\n{stdout}\n{stderr}\n{Digests(stdout.ToString())}");
        foreach (var scenario in covered)
            Assert.Matches(new Regex($@"\| {Regex.Escape(scenario)} \| 1 \| 0 \| \d+\.\d s \|"), text);
        Assert.Matches(new Regex($@"\| \*\*total\*\* \| {covered.Count} \| 0 \|"), text);
    }
}
