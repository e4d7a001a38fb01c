using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Continuity.Lab.Apps;

/// <summary>Copies of the lab's node logs that outlive the lab: a failure is judged after 'down' or the next 'up'.</summary>
internal static class NodeLogs
{
    /// <summary>Copies every node*.log under <paramref name="stateDir"/> to build/test-results/lab-logs/<paramref name="label"/>, returns that directory.</summary>
    public static string Keep(string repoRoot, string stateDir, string label)
    {
        var kept = Path.Combine(repoRoot, "build", "test-results", "lab-logs", label);
        foreach (var log in Directory.Exists(stateDir) ? Directory.GetFiles(stateDir, "node*.log", SearchOption.AllDirectories) : [])
        {
            var to = Path.Combine(kept, Path.GetRelativePath(stateDir, log));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(log, to, overwrite: true);
        }
        Directory.CreateDirectory(kept);
        return kept;
    }

    /// <summary>Waits for the next line of <paramref name="node"/>'s log (under <paramref name="stateDir"/>), written after
    /// this call, that matches <paramref name="pattern"/>; null when none did within <paramref name="timeout"/>.</summary>
    public static Match? WaitForLine(string stateDir, string node, Regex pattern, TimeSpan timeout)
    {
        var path = Path.Combine(stateDir, node, "node.log");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        stream.Seek(0, SeekOrigin.End);
        using var reader = new StreamReader(stream);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (reader.ReadLine() is { } line)
            {
                if (pattern.Match(line) is { Success: true } m) return m;
            }
            else Thread.Sleep(5);
        }
        return null;
    }
}
