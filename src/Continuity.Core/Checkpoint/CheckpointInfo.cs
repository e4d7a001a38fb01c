using Continuity.Core.Serialization;

namespace Continuity.Core.Checkpoint;

/// <summary>A complete checkpoint: which epoch's program it holds and the last packet that program received.</summary>
public sealed record CheckpointInfo(long Epoch, string Id, long Mark, DateTimeOffset At, long Bytes, TimeSpan Freeze)
    : IControlMessage
{
    /// <summary>Newer = later epoch, then more packets covered, then later.</summary>
    public static int Compare(CheckpointInfo? a, CheckpointInfo? b)
    {
        if (a is null || b is null) return a is null ? (b is null ? 0 : -1) : 1;
        var c = a.Epoch.CompareTo(b.Epoch);
        if (c == 0) c = a.Mark.CompareTo(b.Mark);
        return c != 0 ? c : a.At.CompareTo(b.At);
    }
}
