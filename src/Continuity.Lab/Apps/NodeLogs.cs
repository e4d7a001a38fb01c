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
}
