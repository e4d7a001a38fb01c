namespace Continuity.Core.Supervision;

/// <summary>The OS figures of this node, as <see cref="NodeIntrospector"/> reads them. Continuity.Linux reads /proc
/// and the file system; tests pass a fake.</summary>
public interface INodeProbe
{
    /// <summary>Reads the figures now. Parts that cannot be read are reported in <see cref="NodeReading.Error"/>.</summary>
    NodeReading Read();
}

/// <summary>Cumulative CPU time of all CPUs (any unit, e.g. /proc/stat ticks): the CPU share is a difference of two.</summary>
public sealed record CpuTicks(long Busy, long Total);

public sealed record NodeReading(
    CpuTicks Cpu,
    long MemoryTotalBytes,
    long MemoryAvailableBytes,
    long DiskTotalBytes,
    long DiskFreeBytes,
    IReadOnlyList<IntrospectionProtocol.QueueFigures> Queues,
    long JournalBytes,
    string? Error = null);
