using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Continuity.Lab.Apps;

/// <summary>Copies of the lab's node logs that outlive the lab: a failure is judged after 'down' or the next 'up'.</summary>
internal static class NodeLogs
{
    /// <summary>
    /// Copies every node*.log and every CRIU restore.log under <paramref name="stateDir"/> to
    /// build/test-results/lab-logs/<paramref name="label"/>, returns that directory.
    /// </summary>
    /// <remarks>A restore log lives in the checkpoint's directory on the node's state tmpfs and goes with the lab; the
    /// node's log quotes only its error lines, and a failed restore is explained by the lines before them.</remarks>
    public static string Keep(string repoRoot, string stateDir, string label)
    {
        var kept = Path.Combine(repoRoot, "build", "test-results", "lab-logs", label);
        var logs = Directory.Exists(stateDir)
            ? Directory.GetFiles(stateDir, "node*.log", SearchOption.AllDirectories)
                .Concat(Directory.GetFiles(stateDir, "restore.log", SearchOption.AllDirectories))
            : [];
        foreach (var log in logs)
        {
            var to = Path.Combine(kept, Path.GetRelativePath(stateDir, log));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(log, to, overwrite: true);
        }
        Directory.CreateDirectory(kept);
        return kept;
    }

    /// <summary>The name of the digest <see cref="WriteDigest"/> leaves beside the kept logs.</summary>
    public const string DigestFile = "digest.txt";

    // What a reader of a failed run looks at first in a node's log: its warnings and errors, and the events that
    // move an application (membership, downing, lease, takeover, switch).
    private static readonly Regex Notable = new(
        @"^\[(WARNING|ERROR)\]|taking over|takeover of|Member removed|Marking node|Leader is|[Dd]own(ing|ed)|lease|announc|" +
        @"fence|primary|standby .* (joined|dropped|lagging)|CoordinatedShutdown|exit", RegexOptions.Compiled);
    private static readonly Regex NodeStamp = new(@"^\[\w+\]\[(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\.\d+)Z\]", RegexOptions.Compiled);

    /// <summary>
    /// Writes <see cref="DigestFile"/> into <paramref name="kept"/> and returns it: the runner's account of the run
    /// (<paramref name="runLog"/>, the client's per-second progress thinned) followed by the notable lines of every
    /// kept node log since <paramref name="since"/>, merged in time order, at most <paramref name="maxNodeLines"/>
    /// (the last ones). A failure in a place whose files do not outlive it (a CI clone) is still explained by its output.
    /// </summary>
    public static string WriteDigest(string kept, string runLog, DateTime since, int maxNodeLines = 120)
    {
        var sb = new System.Text.StringBuilder();
        var progress = 0;
        foreach (var line in runLog.Split('\n'))
        {
            // One progress line in five is enough to see when the client stalled and when it came back.
            if (line.StartsWith("ct-kv-client: t=", StringComparison.Ordinal) && progress++ % 5 != 0) continue;
            sb.AppendLine(line.TrimEnd());
        }
        var notable = new List<(DateTime At, string Line)>();
        foreach (var log in Directory.GetFiles(kept, "node*.log", SearchOption.AllDirectories))
        {
            var node = Path.GetFileName(Path.GetDirectoryName(log)!);
            foreach (var line in File.ReadLines(log))
            {
                if (NodeStamp.Match(line) is not { Success: true } m ||
                    !DateTime.TryParseExact(m.Groups[1].Value, "MM/dd/yyyy HH:mm:ss.FFFFFFF", System.Globalization.CultureInfo.InvariantCulture,
                        System.Globalization.DateTimeStyles.AdjustToUniversal | System.Globalization.DateTimeStyles.AssumeUniversal, out var at) ||
                    at < since || !Notable.IsMatch(line)) continue;
                notable.Add((at, $"{node}: {(line.Length > 400 ? line[..400] + " ..." : line)}"));
            }
        }
        var shown = notable.OrderBy(n => n.At).TakeLast(maxNodeLines).ToList();
        sb.AppendLine($"--- notable node log lines since {since:HH:mm:ss} UTC ({shown.Count} of {notable.Count}; all in {kept})");
        foreach (var (_, line) in shown) sb.AppendLine(line);
        var text = sb.ToString();
        File.WriteAllText(Path.Combine(kept, DigestFile), text);
        return text;
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
