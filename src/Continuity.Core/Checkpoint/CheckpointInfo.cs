using Continuity.Core.Serialization;

namespace Continuity.Core.Checkpoint;

/// <summary>A complete checkpoint: which epoch's program it holds and the last packet that program received.</summary>
public sealed record CheckpointInfo(long Epoch, string Id, long Mark, DateTimeOffset At, long Bytes, TimeSpan Freeze)
    : IControlMessage
{
    private const string IdTimeFormat = "yyyyMMddHHmmssfff";

    /// <summary>A checkpoint's id: its epoch, when its program was frozen (UTC, to the millisecond) and a counter.</summary>
    public static string NewId(long epoch, DateTime frozenAtUtc, long counter) =>
        $"e{epoch}-{frozenAtUtc.ToString(IdTimeFormat, System.Globalization.CultureInfo.InvariantCulture)}-{counter}";

    /// <summary>When the checkpoint <paramref name="id"/> froze its program, read from the id itself: a standby
    /// receives the checkpoint seconds later, and its age must say how old the program's state is, not the copy.
    /// Null for an id of another form.</summary>
    public static DateTimeOffset? FrozenAt(string id)
    {
        var parts = id.Split('-');
        return parts.Length == 3 && DateTime.TryParseExact(parts[1], IdTimeFormat, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AdjustToUniversal | System.Globalization.DateTimeStyles.AssumeUniversal, out var t)
            ? new DateTimeOffset(t, TimeSpan.Zero)
            : null;
    }

    /// <summary>A checkpoint as a standby holds it, dated by its freeze (see <see cref="FrozenAt"/>).</summary>
    public static CheckpointInfo Received(long epoch, string id, long mark, long bytes) =>
        new(epoch, id, mark, FrozenAt(id) ?? DateTimeOffset.UtcNow, bytes, TimeSpan.Zero);

    /// <summary>Newer = later epoch, then more packets covered, then later.</summary>
    public static int Compare(CheckpointInfo? a, CheckpointInfo? b)
    {
        if (a is null || b is null) return a is null ? (b is null ? 0 : -1) : 1;
        var c = a.Epoch.CompareTo(b.Epoch);
        if (c == 0) c = a.Mark.CompareTo(b.Mark);
        return c != 0 ? c : a.At.CompareTo(b.At);
    }
}
