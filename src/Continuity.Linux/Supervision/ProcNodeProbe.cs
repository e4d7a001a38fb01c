using System.Globalization;
using Continuity.Core.Supervision;

namespace Continuity.Linux.Supervision;

/// <summary>
/// Reads this machine's figures for the MIB: /proc/stat (CPU), /proc/meminfo (memory), statvfs of the state
/// directory (through DriveInfo), /proc/net/netfilter/nfnetlink_queue (one line per bound NFQUEUE; absent until the
/// nfnetlink_queue module is loaded, then no queues are reported) and the sizes of the SQLite journal files in the
/// state directory. Each part is read on its own: one that fails is named in the reading's Error, the rest stay valid.
/// </summary>
public sealed class ProcNodeProbe(string stateDir, string procRoot = "/proc") : INodeProbe
{
    public NodeReading Read()
    {
        var errors = new List<string>();
        T Part<T>(string what, Func<T> read, T fallback)
        {
            try { return read(); }
            catch (Exception e) { errors.Add($"{what}: {e.Message}"); return fallback; }
        }

        var cpu = Part("/proc/stat", () => ParseStat(File.ReadAllText(Path.Combine(procRoot, "stat"))), new CpuTicks(0, 0));
        var (memTotal, memAvailable) = Part("/proc/meminfo", () => ParseMeminfo(File.ReadAllText(Path.Combine(procRoot, "meminfo"))), (0L, 0L));
        var (diskTotal, diskFree) = Part($"statvfs {stateDir}", () =>
        {
            var d = new DriveInfo(stateDir);
            return (d.TotalSize, d.AvailableFreeSpace);
        }, (0L, 0L));
        var queues = Part("nfnetlink_queue", () =>
        {
            var file = Path.Combine(procRoot, "net", "netfilter", "nfnetlink_queue");
            return File.Exists(file) ? ParseQueues(File.ReadAllText(file)) : [];
        }, (IReadOnlyList<IntrospectionProtocol.QueueFigures>)[]);
        var journal = Part("journal files", () => JournalBytes(stateDir), 0L);
        return new NodeReading(cpu, memTotal, memAvailable, diskTotal, diskFree, queues, journal,
            errors.Count == 0 ? null : string.Join("; ", errors));
    }

    /// <summary>The first line: "cpu user nice system idle iowait irq softirq steal guest guest_nice" (ticks).
    /// Guest time is already counted in user, so the total is the first eight; idle and iowait are not busy.</summary>
    public static CpuTicks ParseStat(string text)
    {
        var line = text.Split('\n').First(l => l.StartsWith("cpu ", StringComparison.Ordinal));
        var v = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(x => long.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        var total = v.Sum();
        var idle = v[3] + (v.Length > 4 ? v[4] : 0);
        return new CpuTicks(total - idle, total);
    }

    /// <summary>MemTotal and MemAvailable (kB in the file), in bytes.</summary>
    public static (long Total, long Available) ParseMeminfo(string text)
    {
        long Field(string name)
        {
            var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal))
                       ?? throw new FormatException($"no {name} line");
            return long.Parse(line[(name.Length + 1)..].Replace("kB", "").Trim(), CultureInfo.InvariantCulture) * 1024;
        }
        return (Field("MemTotal"), Field("MemAvailable"));
    }

    /// <summary>Lines "queue_number peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1".</summary>
    public static IReadOnlyList<IntrospectionProtocol.QueueFigures> ParseQueues(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 7)
            .Select(f => new IntrospectionProtocol.QueueFigures(int.Parse(f[0], CultureInfo.InvariantCulture),
                long.Parse(f[2], CultureInfo.InvariantCulture), long.Parse(f[5], CultureInfo.InvariantCulture),
                long.Parse(f[6], CultureInfo.InvariantCulture)))
            .OrderBy(q => q.Queue)
            .ToList();

    /// <summary>journal.db and snapshots.db with their -wal and -shm companions (the SQLite backend's files).</summary>
    public static long JournalBytes(string stateDir) =>
        !Directory.Exists(stateDir) ? 0
            : new DirectoryInfo(stateDir).EnumerateFiles()
                .Where(f => f.Name.StartsWith("journal.db", StringComparison.Ordinal) || f.Name.StartsWith("snapshots.db", StringComparison.Ordinal))
                .Sum(f => f.Length);
}
