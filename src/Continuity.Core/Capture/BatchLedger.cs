using Continuity.Core.Metrics;

namespace Continuity.Core.Capture;

/// <summary>
/// The times of each batch the primary holds (read off the queue, sent, acknowledged by the last standby), oldest
/// first, for the stage histograms. A ring of structs: adding and retiring batches allocates nothing once the ring is
/// as large as the most batches ever held at once.
/// </summary>
internal sealed class BatchLedger
{
    private struct Entry
    {
        public long FirstSeq, LastSeq, ReadAt, SentAt, AckedAt;
    }

    private Entry[] _ring = new Entry[64];
    private int _head;
    private int _count;
    // Entries from the head that already carry their AckedAt (acknowledged by every standby).
    private int _acked;

    public int Count => _count;

    private ref Entry At(int i) => ref _ring[(_head + i) % _ring.Length];

    public void Add(long firstSeq, long lastSeq, long readAt, long sentAt)
    {
        if (_count == _ring.Length)
        {
            var bigger = new Entry[_ring.Length * 2];
            for (var i = 0; i < _count; i++) bigger[i] = At(i);
            _ring = bigger;
            _head = 0;
        }
        ref var e = ref _ring[(_head + _count) % _ring.Length];
        e = new Entry { FirstSeq = firstSeq, LastSeq = lastSeq, ReadAt = readAt, SentAt = sentAt };
        _count++;
    }

    /// <summary>Index of the first batch whose last seq is above <paramref name="seq"/> (batches are in seq order).</summary>
    private int FirstAfter(long seq)
    {
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (At(mid).LastSeq <= seq) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>A standby's acknowledgement moved from <paramref name="before"/> to <paramref name="upTo"/>: records, for
    /// each batch it newly covers in full, the time from its sending to <paramref name="now"/>.</summary>
    public void RecordAcknowledged(long before, long upTo, long now, Histogram replicate)
    {
        for (var i = FirstAfter(before); i < _count; i++)
        {
            ref var e = ref At(i);
            if (e.LastSeq > upTo) break;
            replicate.RecordElapsed(e.SentAt, now);
        }
    }

    /// <summary>Every standby now holds everything up to <paramref name="upTo"/>: the batches that covers are stamped with
    /// <paramref name="now"/>, where their release stage starts.</summary>
    public void StampAcknowledgedByAll(long upTo, long now)
    {
        while (_acked < _count)
        {
            ref var e = ref At(_acked);
            if (e.LastSeq > upTo) return;
            e.AckedAt = now;
            _acked++;
        }
    }

    /// <summary>The verdict released everything up to <paramref name="released"/>: the batches wholly released leave the
    /// ledger, each recording its release stage (from its last acknowledgement) and its whole hold.</summary>
    public void Retire(long released, long now, Histogram release, Histogram hold)
    {
        while (_count > 0)
        {
            ref var e = ref _ring[_head];
            if (e.LastSeq > released) return;
            // Released without an acknowledgement stamp: no standby to wait for, so its release began when it was sent.
            release.RecordElapsed(_acked > 0 ? e.AckedAt : e.SentAt, now);
            hold.RecordElapsed(e.ReadAt, now);
            _head = (_head + 1) % _ring.Length;
            _count--;
            if (_acked > 0) _acked--;
        }
    }
}
