using System.Diagnostics;
using Continuity.Core.Metrics;
using Xunit;

namespace Continuity.Core.Tests.Metrics;

public sealed class HistogramSpecs
{
    private static long Ticks(double seconds) => (long)(seconds * Stopwatch.Frequency);

    [Fact]
    public void Quantiles_fall_inside_the_bucket_that_holds_their_rank()
    {
        var h = Histogram.Latency();
        for (var i = 0; i < 98; i++) h.Record(Ticks(0.001));
        h.Record(Ticks(0.5));
        h.Record(Ticks(0.5));

        var s = h.Snapshot(Stages.Hold);

        Assert.Equal(100, s.Count);
        Assert.InRange(s.Quantile(0.5), 0.001 / Math.Sqrt(2), 0.001 * Math.Sqrt(2));
        Assert.InRange(s.Quantile(0.99), 0.5 / Math.Sqrt(2), 0.5 * Math.Sqrt(2));
        Assert.Equal(98 * 0.001 + 2 * 0.5, s.Sum, 3);
    }

    [Fact]
    public void An_empty_histogram_has_no_quantile()
    {
        Assert.True(double.IsNaN(Histogram.Latency().Snapshot(Stages.Capture).Quantile(0.5)));
    }

    [Fact]
    public void A_value_beyond_the_last_bound_is_counted_and_reported_as_that_bound()
    {
        var h = Histogram.Latency();
        h.Record(Ticks(3600));

        var s = h.Snapshot(Stages.Release);

        Assert.Equal(1, s.Counts[^1]);
        Assert.Equal(s.UpperBounds[^1], s.Quantile(0.5));
    }

    [Fact]
    public void A_snapshot_is_a_copy_that_later_records_do_not_change()
    {
        var h = Histogram.Sizes();
        h.Record(3);
        var before = h.Snapshot(Stages.BatchPackets);
        h.Record(3);

        Assert.Equal(1, before.Count);
        Assert.Equal(1, before.Counts.Sum());
        Assert.Equal(2, h.Snapshot(Stages.BatchPackets).Counts.Sum());
    }

    [Fact]
    public void Sizes_are_counted_in_power_of_two_buckets()
    {
        var h = Histogram.Sizes();
        h.Record(1);
        h.Record(3);
        h.Record(4);

        var s = h.Snapshot(Stages.BatchPackets);

        Assert.Equal([1L, 0, 2], s.Counts.Take(3)); // 1 in "≤ 1", 3 and 4 in "≤ 4"
        Assert.Equal(8, s.Sum);
    }
}

public sealed class BatchLedgerSpecs
{
    [Fact]
    public void A_standby_acknowledgement_times_each_batch_it_newly_covers_once()
    {
        var ledger = new Continuity.Core.Capture.BatchLedger();
        ledger.Add(1, 3, readAt: 0, sentAt: 10);
        ledger.Add(4, 4, readAt: 20, sentAt: 30);
        ledger.Add(5, 9, readAt: 40, sentAt: 50);
        var replicate = Histogram.Sizes(); // raw units: the elapsed ticks are the values

        ledger.RecordAcknowledged(before: 0, upTo: 4, now: 60, replicate);
        ledger.RecordAcknowledged(before: 4, upTo: 7, now: 70, replicate); // 5..9 not covered in full yet
        ledger.RecordAcknowledged(before: 7, upTo: 9, now: 80, replicate);

        var s = replicate.Snapshot(Stages.Replicate);
        Assert.Equal(3, s.Count);
        Assert.Equal((60 - 10) + (60 - 30) + (80 - 50), s.Sum);
    }

    [Fact]
    public void A_released_batch_leaves_with_its_release_time_from_the_last_acknowledgement_and_its_whole_hold()
    {
        var ledger = new Continuity.Core.Capture.BatchLedger();
        ledger.Add(1, 2, readAt: 100, sentAt: 110);
        ledger.Add(3, 5, readAt: 120, sentAt: 130);
        var release = Histogram.Sizes();
        var hold = Histogram.Sizes();

        ledger.StampAcknowledgedByAll(upTo: 2, now: 200);
        ledger.Retire(released: 2, now: 250, release, hold);
        ledger.StampAcknowledgedByAll(upTo: 4, now: 300); // 3..5 not acknowledged by all yet
        ledger.Retire(released: 4, now: 310, release, hold);

        Assert.Equal(1, ledger.Count);
        Assert.Equal(50, release.Snapshot(Stages.Release).Sum);
        Assert.Equal(150, hold.Snapshot(Stages.Hold).Sum);

        ledger.StampAcknowledgedByAll(upTo: 5, now: 400);
        ledger.Retire(released: 5, now: 420, release, hold);
        Assert.Equal(0, ledger.Count);
        Assert.Equal(50 + 20, release.Snapshot(Stages.Release).Sum);
        Assert.Equal(150 + 300, hold.Snapshot(Stages.Hold).Sum);
    }

    [Fact]
    public void The_ledger_grows_past_its_first_ring_and_keeps_its_order()
    {
        var ledger = new Continuity.Core.Capture.BatchLedger();
        for (var i = 1; i <= 200; i++) ledger.Add(i, i, i, i);
        var replicate = Histogram.Sizes();
        ledger.RecordAcknowledged(before: 150, upTo: 200, now: 1000, replicate);

        Assert.Equal(200, ledger.Count);
        Assert.Equal(50, replicate.Snapshot(Stages.Replicate).Count);
        Assert.Equal(Enumerable.Range(151, 50).Sum(i => 1000 - i), replicate.Snapshot(Stages.Replicate).Sum);
    }
}
