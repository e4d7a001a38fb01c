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

    /// <summary>
    /// Follows the logs of several nodes from now on, for a line that may come from any of them (which standby takes
    /// over is the election's choice). Opened before the event that causes the line, so it cannot be missed.
    /// </summary>
    public sealed class Follower : IDisposable
    {
        private readonly List<(string Node, StreamReader Reader)> _logs = [];

        public Follower(string stateDir, IEnumerable<string> nodes)
        {
            foreach (var node in nodes)
            {
                var stream = new FileStream(Path.Combine(stateDir, node, "node.log"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                stream.Seek(0, SeekOrigin.End);
                _logs.Add((node, new StreamReader(stream)));
            }
        }

        /// <summary>The next matching line of any followed node and that node; null when none within <paramref name="timeout"/>.</summary>
        public (string Node, Match Line)? Next(Regex pattern, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < timeout)
            {
                var read = false;
                foreach (var (node, reader) in _logs)
                {
                    while (reader.ReadLine() is { } line)
                    {
                        read = true;
                        if (pattern.Match(line) is { Success: true } m) return (node, m);
                    }
                }
                if (!read) Thread.Sleep(5);
            }
            return null;
        }

        public void Dispose()
        {
            foreach (var (_, reader) in _logs) reader.Dispose();
        }
    }
}
