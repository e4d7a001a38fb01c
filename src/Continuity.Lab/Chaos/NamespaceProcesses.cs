using System.Globalization;

namespace Continuity.Lab.Chaos;

/// <summary>
/// The processes of one network namespace, read from /proc directly: 'ip netns pids' forks and takes tens of
/// milliseconds, longer than the phases of a takeover that crash-restore and crash-replay aim at.
/// </summary>
internal static class NamespaceProcesses
{
    /// <summary>The inode of a namespace file (/run/netns/NAME), as /proc/PID/ns/net names it: "net:[INODE]".</summary>
    public static string InodeOf(string namespaceFile)
    {
        var r = Os.Run("stat", "-L", "-c", "%i", namespaceFile);
        if (!r.Succeeded) throw new LabException($"cannot stat {namespaceFile}: {r.Stderr.Trim()}");
        return $"net:[{r.Stdout.Trim()}]";
    }

    /// <summary>The command lines (arguments joined by spaces) of the live processes in the namespace.</summary>
    public static IReadOnlyList<string> CommandLines(string namespaceInode)
    {
        var lines = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (!int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out _)) continue;
            try
            {
                if (new FileInfo(Path.Combine(dir, "ns", "net")).LinkTarget != namespaceInode) continue;
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Trim();
                if (cmdline.Length > 0) lines.Add(cmdline);
            }
            // The process ended between the listing and the read.
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return lines;
    }
}
