using Akka.Actor;
using Akka.Event;
using Continuity.Core.Apps;
using Continuity.Core.Log;
using Continuity.Core.Metrics;
using Continuity.Core.Platform;
using Continuity.Core.Replication;

namespace Continuity.Core.Capture;

/// <summary>A standby's app actor, as the primary addresses it (node = the standby's cluster address).</summary>
public sealed record StandbyRef(string Node, IActorRef AppActor) : Continuity.Core.Serialization.IControlMessage;

public static class CaptureProtocol
{
    /// <summary>The standbys every packet must reach before it is released. Only AppOwner changes this set
    /// (a membership decision): a slow standby is never dropped on a local timeout, because releasing a packet
    /// it has not logged would make it an unsafe successor.</summary>
    public sealed record SetStandbys(long Epoch, IReadOnlyList<StandbyRef> Standbys);

    /// <summary>Stop giving verdicts (a checkpoint is about to be taken). Replies <see cref="Paused"/>.</summary>
    public sealed record Pause;

    /// <summary>Every packet up to and including <paramref name="Mark"/> has been released to the program; no later one will be until Resume.</summary>
    public sealed record Paused(long Mark);

    public sealed record Resume;

    public sealed record GetStatus;

    /// <param name="Lags">How far each standby's acknowledgement trails the capture (the supervision rule's figure).</param>
    /// <param name="Stages">Where the hold of this epoch's packets went: capture, replicate (per standby), release, hold.</param>
    public sealed record Status(long LastSeq, long LastReleased, bool Paused, bool Unprotected, IReadOnlyDictionary<string, long> AckedByStandby,
        IReadOnlyList<StandbyLag> Lags, IReadOnlyList<StageFigures>? Stages = null);
}

/// <summary>How far one standby's journal trails the primary's capture.</summary>
/// <param name="Node">The standby's cluster address.</param>
/// <param name="Acked">The newest seq it acknowledged as written.</param>
/// <param name="Packets">Packets captured and not yet acknowledged by it.</param>
/// <param name="OldestWait">How long the oldest of those has waited for its acknowledgement (zero when none waits): the
/// time the program has been kept from input because of this standby.</param>
public sealed record StandbyLag(string Node, long Acked, long Packets, TimeSpan OldestWait) : Continuity.Core.Serialization.IControlMessage;

/// <summary>
/// The primary's capture: owns the kernel queue that holds every inbound packet of the application,
/// numbers the packets, replicates them to every standby and releases each packet only once all
/// current standbys have logged it. That hold is what makes the log complete at a crash.
/// </summary>
public sealed class CaptureActor : ReceiveActor, IWithTimers
{
    /// <param name="ReadAt">Stopwatch timestamp of the read off the queue, where the capture stage starts.</param>
    private sealed record Captured(LoggedPacket[] Packets, uint[] PacketIds, long ReadAt);
    private sealed record ResendCheck;

    // Akka.Remote delivers at most once: a batch lost when an association to a standby drops and comes back leaves a
    // hole in that standby's log, which it then refuses to acknowledge past (rightly). Without a resend the primary
    // would hold every later packet (and never finish a checkpoint drain) until membership removed a node. Seen on the
    // lab with three applications when one node crashed: a healthy standby missed 80 packets of another node's app.
    private static readonly TimeSpan ResendAfter = TimeSpan.FromMilliseconds(250);
    private const int ResendBatch = 256;
    // Each standby's acknowledgement at the previous check: no progress over a whole interval means a lost batch.
    private readonly Dictionary<string, long> _ackedAtLastCheck = new();
    private long _lastResendCheck;

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly AppSpec _app;
    private readonly long _epoch;
    private readonly Func<AppSpec, IPacketQueue> _queueFactory;
    private IPacketQueue? _queue;

    private readonly Dictionary<string, (IActorRef Ref, long Acked)> _standbys = new();

    // Per-stage time of the hold, for the MIB (see Stages): which stage costs the added latency is not guessable.
    private readonly BatchLedger _ledger = new();
    private readonly Histogram _captureStage = Histogram.Latency();
    private readonly Histogram _releaseStage = Histogram.Latency();
    private readonly Histogram _holdStage = Histogram.Latency();
    private readonly Dictionary<string, Histogram> _replicateStage = new();
    // Kernel packet id per seq not released yet, oldest first: the highest id of the released prefix is the verdict.
    // The packet is kept until released, so a standby that lost a batch can be sent it again.
    // With the time each was captured (Stopwatch ticks: immune to clock steps), for the standbys' lag.
    private readonly Queue<(long Seq, uint PacketId, LoggedPacket Packet, long CapturedAt)> _pending = new();
    private long _nextSeq;
    private long _lastReleased;
    private bool _paused;
    private IActorRef? _pauseRequester;
    private DateTime _lastReleaseAt = DateTime.MinValue;
    // How long after the last release the program is given to read what was released before it is frozen.
    private static readonly TimeSpan ReadSettle = TimeSpan.FromMilliseconds(20);

    private sealed class SettleCheck { public static readonly SettleCheck Instance = new(); }

    private readonly IFailpoints _failpoints;
    private readonly Func<AppSpec, long> _unreadDatagrams;
    // How long a checkpoint waits for the program to read the datagrams released to it before freezing it anyway.
    private static readonly TimeSpan MaxReadSettle = TimeSpan.FromSeconds(2);
    private DateTime _pausedAt;

    /// <param name="unreadDatagrams">Bytes of released datagrams the program has not read yet (see
    /// <see cref="PlatformServices.UnreadDatagrams"/>); none by default.</param>
    public CaptureActor(AppSpec app, long epoch, long firstSeq, Func<AppSpec, IPacketQueue> queueFactory, IReadOnlyList<StandbyRef> standbys,
        IFailpoints? failpoints = null, Func<AppSpec, long>? unreadDatagrams = null)
    {
        _app = app;
        _failpoints = failpoints ?? NoFailpoints.Instance;
        _unreadDatagrams = unreadDatagrams ?? (_ => 0);
        _epoch = epoch;
        _queueFactory = queueFactory;
        _nextSeq = firstSeq;
        _lastReleased = firstSeq - 1;
        foreach (var s in standbys) _standbys[s.Node] = (s.AppActor, _lastReleased);

        Receive<Captured>(OnCaptured);
        Receive<ReplicationProtocol.Appended>(OnAppended);
        Receive<CaptureProtocol.SetStandbys>(OnSetStandbys);
        Receive<ResendCheck>(_ => ResendLostBatches());
        Receive<CaptureProtocol.Pause>(_ =>
        {
            // From now on verdicts are withheld: what arrives during the checkpoint is still captured, logged and
            // replicated, and waits in the kernel queue until Resume (it lies after the mark, so it is replayed on a
            // failover). Arrivals used to be dropped by a block rule for the length of the checkpoint instead; every
            // client packet that met one was retransmitted with a doubled timeout, and on a loaded machine (a one-second
            // dump every two seconds) one connection's retransmissions kept meeting checkpoints until its client gave
            // up after 60 s without a reply (seen on the lab, twice, as "a reply lost for good").
            _paused = true;
            _pauseRequester = Sender;
            _pausedAt = DateTime.UtcNow;
            Self.Tell(SettleCheck.Instance);
        });
        Receive<SettleCheck>(_ =>
        {
            if (_pauseRequester is null) return;
            // A datagram released just before the pause may still wait in its socket: CRIU keeps a TCP socket's queues
            // but not a UDP socket's, so the program must have read it before the freeze or the checkpoint would lose
            // a datagram at or before its mark.
            // ReadSettle alone is not enough on a loaded machine, where the program may not run for longer than that
            // (seen: a datagram lost across a double takeover at load 28); the kernel says when its sockets are empty.
            var waited = DateTime.UtcNow - _pausedAt;
            if (DateTime.UtcNow - _lastReleaseAt < ReadSettle || (UnreadDatagrams() > 0 && waited < MaxReadSettle))
            {
                Context.System.Scheduler.ScheduleTellOnce(TimeSpan.FromMilliseconds(5), Self, SettleCheck.Instance, Self);
                return;
            }
            if (waited >= MaxReadSettle && UnreadDatagrams() is var unread and > 0)
                _log.Warning("[{0}] the program left {1} bytes of datagrams unread for {2} ms: this checkpoint is taken without them, " +
                             "and a failover to it would lose them", _app.Name, unread, (int)waited.TotalMilliseconds);
            _pauseRequester.Tell(new CaptureProtocol.Paused(_lastReleased));
            _pauseRequester = null;
        });
        Receive<CaptureProtocol.Resume>(_ =>
        {
            _paused = false;
            _pauseRequester = null;
            Release();
        });
        Receive<CaptureProtocol.GetStatus>(_ => Sender.Tell(new CaptureProtocol.Status(
            _nextSeq - 1, _lastReleased, _paused, _standbys.Count == 0,
            _standbys.ToDictionary(kv => kv.Key, kv => kv.Value.Acked), Lags(), StageFigures())));
    }

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("resend", new ResendCheck(), ResendAfter);
        var self = Self;
        _queue = _queueFactory(_app);
        // Runs on the queue's reader thread: copy out of the kernel buffer and hand over to the actor.
        _queue.Start(batch =>
        {
            var readAt = System.Diagnostics.Stopwatch.GetTimestamp();
            var packets = new LoggedPacket[batch.Count];
            var ids = new uint[batch.Count];
            for (var i = 0; i < batch.Count; i++)
            {
                packets[i] = new LoggedPacket(0, batch[i].Packet.ToArray());
                ids[i] = batch[i].PacketId;
            }
            self.Tell(new Captured(packets, ids, readAt));
        });
    }

    private long UnreadDatagrams()
    {
        try { return _unreadDatagrams(_app); }
        catch (Exception e)
        {
            _log.Warning("[{0}] reading the program's UDP receive queues failed: {1}", _app.Name, e.Message);
            return 0;
        }
    }

    protected override void PostStop()
    {
        // Disposing the queue drops nothing by itself; packets not released stay unanswered and the
        // kernel drops them when the queue goes away: they were never delivered, so the log stays exact.
        try { _queue?.Dispose(); }
        catch (Exception e) { _log.Warning(e, "[{0}] closing the packet queue failed", _app.Name); }
    }

    private void OnCaptured(Captured c)
    {
        var first = _nextSeq;
        var packets = new LoggedPacket[c.Packets.Length];
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        for (var i = 0; i < packets.Length; i++)
        {
            packets[i] = c.Packets[i] with { Seq = _nextSeq };
            _pending.Enqueue((_nextSeq, c.PacketIds[i], packets[i], now));
            _nextSeq++;
        }
        if (_standbys.Count > 0)
        {
            var append = new ReplicationProtocol.Append(_app.Name, _epoch, first, packets);
            foreach (var s in _standbys.Values) s.Ref.Tell(append);
        }
        var sent = System.Diagnostics.Stopwatch.GetTimestamp();
        _captureStage.RecordElapsed(c.ReadAt, sent);
        _ledger.Add(first, _nextSeq - 1, c.ReadAt, sent);
        Release();
    }

    private void OnAppended(ReplicationProtocol.Appended a)
    {
        if (a.Epoch != _epoch || !_standbys.TryGetValue(a.Node, out var s)) return;
        if (a.Seq > s.Acked)
        {
            _standbys[a.Node] = (s.Ref, a.Seq);
            _ledger.RecordAcknowledged(s.Acked, a.Seq, System.Diagnostics.Stopwatch.GetTimestamp(), ReplicateStage(a.Node));
        }
        Release();
    }

    /// <summary>Sends again, to each standby whose acknowledgement has not moved for a whole interval while it lacks
    /// packets, every packet after its acknowledgement (all still held: nothing past the slowest ack is released). A
    /// standby that was only slow takes the copy of what it already received as a duplicate and ignores it.</summary>
    private void ResendLostBatches()
    {
        // After a pause of the node (a hang, a stopped process) the scheduler delivers every missed check at once; no
        // acknowledgement can arrive between them, and each would send the whole backlog again (40 times in the chaos lab).
        if (_lastResendCheck != 0 && System.Diagnostics.Stopwatch.GetElapsedTime(_lastResendCheck) < ResendAfter / 2) return;
        _lastResendCheck = System.Diagnostics.Stopwatch.GetTimestamp();
        var newest = _nextSeq - 1;
        foreach (var (node, (standby, acked)) in _standbys)
        {
            var stuck = acked < newest && _ackedAtLastCheck.TryGetValue(node, out var before) && before == acked;
            _ackedAtLastCheck[node] = acked;
            if (!stuck) continue;
            var missing = _pending.Where(p => p.Seq > acked).Select(p => p.Packet).ToList();
            if (missing.Count == 0) continue;
            _log.Warning("[{0}] standby {1} acknowledged nothing past {2} for {3} ms while {4} packet(s) wait: sending them again",
                _app.Name, node, acked, (int)ResendAfter.TotalMilliseconds, missing.Count);
            foreach (var chunk in missing.Chunk(ResendBatch))
                standby.Tell(new ReplicationProtocol.Append(_app.Name, _epoch, chunk[0].Seq, chunk));
        }
    }

    /// <summary>Each standby's lag: packets held only for it are still in <see cref="_pending"/> (nothing past the slowest
    /// acknowledgement is released), so the oldest one after its acknowledgement says how long it has kept them.</summary>
    private List<StandbyLag> Lags()
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        var newest = _nextSeq - 1;
        return _standbys.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
        {
            var acked = kv.Value.Acked;
            var oldest = _pending.FirstOrDefault(p => p.Seq > acked);
            var wait = oldest.Packet is null ? TimeSpan.Zero : System.Diagnostics.Stopwatch.GetElapsedTime(oldest.CapturedAt, now);
            return new StandbyLag(kv.Key, acked, Math.Max(0, newest - acked), wait);
        }).ToList();
    }

    private void OnSetStandbys(CaptureProtocol.SetStandbys m)
    {
        if (m.Epoch != _epoch) return;
        var keep = m.Standbys.Select(s => s.Node).ToHashSet();
        foreach (var gone in _standbys.Keys.Where(k => !keep.Contains(k)).ToList())
        {
            _standbys.Remove(gone);
            _replicateStage.Remove(gone);
        }
        // A new standby holds no checkpoint yet, so it is no successor until the next checkpoint of this
        // epoch reaches it (which covers everything released before it). It counts as having the packets
        // held now; from the next batch on it gates the release like every other standby.
        foreach (var s in m.Standbys.Where(s => !_standbys.ContainsKey(s.Node)))
        {
            _standbys[s.Node] = (s.AppActor, _nextSeq - 1);
            // It may hold an older part of this epoch's log (it was left out for a while): tell it where its stream
            // resumes, or it would refuse every batch as following a lost one.
            s.AppActor.Tell(new ReplicationProtocol.StreamFrom(_app.Name, _epoch, _nextSeq));
        }
        Release();
    }

    private Histogram ReplicateStage(string node)
    {
        if (!_replicateStage.TryGetValue(node, out var h)) _replicateStage[node] = h = Histogram.Latency();
        return h;
    }

    private List<StageFigures> StageFigures()
    {
        var stages = new List<StageFigures> { _captureStage.Snapshot(Stages.Capture) };
        stages.AddRange(_replicateStage.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value.Snapshot(Stages.Replicate, kv.Key)));
        stages.Add(_releaseStage.Snapshot(Stages.Release));
        stages.Add(_holdStage.Snapshot(Stages.Hold));
        return stages;
    }

    private void Release()
    {
        if (_pending.Count == 0) return;
        var upTo = long.MaxValue;
        foreach (var s in _standbys.Values) upTo = Math.Min(upTo, s.Acked);
        // Stamped even while paused: the wait for the checkpoint is the release stage's to show.
        _ledger.StampAcknowledgedByAll(upTo, System.Diagnostics.Stopwatch.GetTimestamp());
        if (_paused) return;
        uint? verdict = null;
        while (_pending.Count > 0 && _pending.Peek().Seq <= upTo)
        {
            var (seq, id, _, _) = _pending.Dequeue();
            verdict = verdict is { } v ? Math.Max(v, id) : id;
            _lastReleased = seq;
        }
        if (verdict is { } packetId)
        {
            if (_standbys.Count > 0)
                _failpoints.Reach(Failpoints.AckedNotReleased, () =>
                    $"[{_app.Name}] packets up to {_lastReleased} of epoch {_epoch} are logged by every standby and not released to the program");
            _queue!.AcceptUpTo(packetId);
            _lastReleaseAt = DateTime.UtcNow;
            _ledger.Retire(_lastReleased, System.Diagnostics.Stopwatch.GetTimestamp(), _releaseStage, _holdStage);
        }
    }
}
