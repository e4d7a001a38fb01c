using System.Diagnostics;
using Continuity.Core.Serialization;

namespace Continuity.Core.Metrics;

/// <summary>
/// Counts of values in fixed buckets, filled by the one actor that owns it (no locking: only that actor records, and
/// others see it through <see cref="Snapshot"/> copies sent in its status replies). Recording allocates nothing, so it
/// can sit on the packet path for good. Cumulative since the owner started: a reader takes two snapshots and subtracts
/// them for the figures of an interval, as Prometheus does with its histograms.
/// </summary>
public sealed class Histogram
{
    // Upper bounds (inclusive) in the unit recorded: Stopwatch ticks for latencies, a count for sizes.
    private readonly long[] _bounds;
    private readonly IReadOnlyList<double> _shown;
    private readonly double _scale;
    // One per bound, plus the last for values above every bound.
    private readonly long[] _counts;
    private long _count;
    private double _sum;

    private Histogram(long[] bounds, IReadOnlyList<double> shown, double scale)
    {
        _bounds = bounds;
        _shown = shown;
        _scale = scale;
        _counts = new long[bounds.Length + 1];
    }

    /// <summary>Bucket bounds of latencies, in seconds: 10 µs times powers of √2 (rounded to 3 digits) up to about a
    /// minute, so p50 and p99 read from the buckets are within about 20 % wherever they fall.</summary>
    public static IReadOnlyList<double> LatencyBoundsSeconds { get; } = Enumerable.Range(0, 46)
        .Select(k => RoundTo3Digits(10e-6 * Math.Pow(2, k / 2.0))).ToArray();

    /// <summary>Bucket bounds of sizes (packets per batch): powers of two up to 4096.</summary>
    public static IReadOnlyList<double> SizeBounds { get; } = Enumerable.Range(0, 13).Select(k => (double)(1 << k)).ToArray();

    private static readonly long[] LatencyBoundsTicks =
        LatencyBoundsSeconds.Select(s => (long)Math.Round(s * Stopwatch.Frequency)).ToArray();

    private static readonly long[] SizeBoundsRaw = SizeBounds.Select(b => (long)b).ToArray();

    /// <summary>A histogram of durations, recorded in Stopwatch ticks and shown in seconds.</summary>
    public static Histogram Latency() => new(LatencyBoundsTicks, LatencyBoundsSeconds, 1.0 / Stopwatch.Frequency);

    /// <summary>A histogram of counts (packets per batch).</summary>
    public static Histogram Sizes() => new(SizeBoundsRaw, SizeBounds, 1.0);

    public long Count => _count;

    /// <summary>Records one value, in the unit of the histogram (ticks for <see cref="Latency"/>).</summary>
    public void Record(long value)
    {
        if (value < 0) value = 0; // a timestamp pair taken on two cores may be a tick apart the wrong way
        var i = Array.BinarySearch(_bounds, value);
        if (i < 0) i = ~i;
        _counts[i]++;
        _count++;
        _sum += value * _scale;
    }

    /// <summary>Records the time from the Stopwatch timestamp <paramref name="from"/> to <paramref name="now"/>.</summary>
    public void RecordElapsed(long from, long now) => Record(now - from);

    /// <summary>A copy of the counts so far, named for the MIB.</summary>
    public StageFigures Snapshot(string stage, string? standby = null) =>
        new(stage, standby, _shown, (long[])_counts.Clone(), _sum, _count);

    private static double RoundTo3Digits(double v)
    {
        var digits = 2 - (int)Math.Floor(Math.Log10(v));
        return Math.Round(v, Math.Max(0, digits));
    }
}

/// <summary>
/// One stage of the packet path as a histogram: counts per bucket since the stage's owner started (per epoch on the
/// primary, per log on a standby).
/// </summary>
/// <param name="Stage">The stage: <see cref="Stages"/>.</param>
/// <param name="Standby">The standby's cluster address for per-standby stages (replicate), else null.</param>
/// <param name="UpperBounds">Inclusive upper bound of each bucket (seconds, or packets for a size); the last count is
/// for values above all of them.</param>
/// <param name="Counts">One more than <paramref name="UpperBounds"/>.</param>
/// <param name="Sum">Sum of the values recorded (seconds, or packets).</param>
public sealed record StageFigures(string Stage, string? Standby, IReadOnlyList<double> UpperBounds, IReadOnlyList<long> Counts,
    double Sum, long Count) : IControlMessage
{
    /// <summary>The value below which a share <paramref name="q"/> of the recorded values fall, interpolated linearly
    /// inside its bucket (as Prometheus's histogram_quantile does); NaN when nothing was recorded. Values above the last
    /// bound are reported as that bound.</summary>
    public double Quantile(double q)
    {
        if (Count == 0) return double.NaN;
        var rank = Math.Clamp(q, 0, 1) * Count;
        long seen = 0;
        for (var i = 0; i < Counts.Count; i++)
        {
            var n = Counts[i];
            if (n > 0 && seen + n >= rank)
            {
                if (i >= UpperBounds.Count) return UpperBounds[^1];
                var lower = i == 0 ? 0 : UpperBounds[i - 1];
                return lower + (UpperBounds[i] - lower) * Math.Clamp((rank - seen) / n, 0, 1);
            }
            seen += n;
        }
        return UpperBounds[^1];
    }
}

/// <summary>The names of the stages of the packet path, as the MIB and /metrics show them.</summary>
public static class Stages
{
    /// <summary>Primary: from the batch read off the NFQUEUE to its Append sent to the standbys (reader thread hand-off,
    /// capture actor's mailbox, numbering).</summary>
    public const string Capture = "capture";

    /// <summary>Primary, per standby: from the Append sent to that standby's Appended received (remoting both ways, the
    /// standby's mailboxes and its journal write).</summary>
    public const string Replicate = "replicate";

    /// <summary>Primary: from the acknowledgement that completed a batch (the last standby's) to its verdict ACCEPT; long
    /// only while a checkpoint holds the verdicts.</summary>
    public const string Release = "release";

    /// <summary>Primary: the whole hold, from the NFQUEUE read to the verdict.</summary>
    public const string Hold = "hold";

    /// <summary>Standby: from an Append received by the packet log to its journal write done (the acknowledgement).</summary>
    public const string Journal = "journal";

    /// <summary>Standby: packets per Append written (a size, not a duration).</summary>
    public const string BatchPackets = "batch-packets";
}
