using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Continuity.Core.Metrics;
using Continuity.Core.Replication;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Log;

public static class StandbyLogProtocol
{
    /// <summary>Asks for the packets a takeover must replay. Replies <see cref="Tail"/>.</summary>
    public sealed record GetTail;

    /// <summary>The packets of <paramref name="Epoch"/> after <paramref name="Mark"/> (the newest complete checkpoint's).</summary>
    public sealed record Tail(long Epoch, long Mark, IReadOnlyList<LoggedPacket> AfterMark);

    public sealed record GetStatus;

    /// <param name="Epoch">Epoch of the newest packets logged.</param>
    /// <param name="LastSeq">Seq of the newest packet logged in that epoch.</param>
    /// <param name="Depth">Packets held in memory (after the checkpoint's mark).</param>
    /// <param name="Complete">False while the log misses packets before ones it holds (it joined or rejoined mid-epoch)
    /// and no checkpoint covering them has arrived: a takeover from it would replay a log with a hole.</param>
    /// <param name="Backlog">Packets received and not yet written (the journal is behind what arrived).</param>
    /// <param name="Stages">The journal stage (Append received to written) and the packets per Append, since this log started.</param>
    public sealed record Status(long Epoch, long LastSeq, int Depth, bool Complete = true, long Backlog = 0,
        IReadOnlyList<StageFigures>? Stages = null);

    /// <summary>
    /// This node knows of epoch <paramref name="Epoch"/> (it takes over, or follows a new primary): batches of older
    /// epochs are no longer acknowledged, including those still being written. Without it a primary the cluster gave
    /// up on (hung, cut off) could keep having packets acknowledged, and so keep delivering input to its copy of the
    /// program, while the successor replays a tail that lacks them.
    /// </summary>
    public sealed record Fence(long Epoch);

    /// <summary>To the parent, just before the log stops: the journal could not be read or written.</summary>
    public sealed record JournalFailed(string Journal, string Reason);

    /// <summary>To the parent of a log started with <c>rejoining</c>: it recovered and a test write went through.</summary>
    public sealed record JournalWorks;
}

/// <summary>
/// A standby's copy of an application's packet log. One event per Append batch (not per packet: the
/// journal is round-trip bound), acknowledged only after the write by default, because the primary releases a
/// packet to the program once every standby acknowledged it: an ack before the write would let a
/// standby crash lose a packet the program already consumed. With <c>continuity.persistence.acknowledge = received</c>
/// a batch is acknowledged on arrival and written after; the log then treats itself as incomplete after a restart
/// (not elected until a fresh checkpoint reaches it), and a takeover reads its tail only once every write is done.
/// The journal is per node (each standby keeps its own copy), so this actor never moves: it is a child of the node's
/// app actor.
/// </summary>
public sealed class StandbyLog : ReceivePersistentActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _app;
    private readonly string _node;

    // The newest complete checkpoint: packets of its epoch up to its mark are no longer needed.
    private long _checkpointEpoch;
    private long _checkpointMark;
    // Packets not covered by that checkpoint, per epoch (a new primary's epoch starts before its first
    // checkpoint arrives, and until then the previous epoch's tail is still the one a takeover needs).
    private readonly SortedDictionary<long, List<LoggedPacket>> _tails = new();
    private readonly Dictionary<long, long> _lastSeq = new();
    // What each journal event covers, oldest first, to know how far the journal may be truncated.
    private readonly List<(long SequenceNr, long Epoch, long LastSeq, bool IsCheckpoint)> _events = new();

    // Set by a batch that starts after a hole (packets of its epoch this log never got); cleared by a checkpoint that
    // covers the hole. Derived from the journal itself, so it survives a restart of the node.
    private (long Epoch, long Seq)? _hole;
    // A log restarted after its journal failed accepts one hole: the primary kept releasing packets while this node was
    // out of the configuration, so the next batch it gets starts past what it holds. Refusing it (as for a batch lost in
    // transit) would block the primary again; accepting it is safe because _hole keeps the node out of elections until
    // a fresh checkpoint covers the hole, exactly as for a node that joins mid-epoch.
    private bool _rejoining;
    // Where the primary said this node's stream resumes (it was added to the standbys again): the batch starting there
    // is accepted past a hole, which Apply marks so the node is not elected until a checkpoint covers it.
    private (long Epoch, long Seq)? _streamFrom;
    private readonly LogLevel _failureLevel;
    // Batches of epochs below this are not acknowledged (see StandbyLogProtocol.Fence); the epoch refused last is
    // remembered so a fenced primary's stream costs one warning, not one per batch.
    private long _fencedBelow;
    private long _lastRefusedEpoch;
    // The standby's share of the primary's hold: how long a batch waits for its journal write, and how big batches are.
    private readonly Histogram _journalStage = Histogram.Latency();
    private readonly Histogram _batchPackets = Histogram.Sizes();

    private sealed record ProbeWrite;

    public const string AcknowledgeKey = "continuity.persistence.acknowledge";
    public static IReadOnlyList<string> AcknowledgeModes { get; } = ["written", "received"];

    // continuity.persistence.acknowledge = received: batches are acknowledged on arrival, before their write.
    private readonly bool _ackOnArrival;
    // Acknowledging on arrival, this log restarted with what its journal held: it may lack packets it acknowledged
    // before the restart, so it is no successor until a checkpoint received since covers them.
    private bool _unsureSinceRestart;

    /// <param name="nodeName">Stable name of this node: names the journal (survives restarts, unlike the address).</param>
    /// <param name="node">This node's cluster address: how the primary tells the acks of its standbys apart.</param>
    /// <param name="rejoining">Started again after a journal failure: proves a write works before reporting
    /// <see cref="StandbyLogProtocol.JournalWorks"/>, and accepts the hole the absence left.</param>
    public StandbyLog(string app, string nodeName, string? node = null, bool rejoining = false)
    {
        _app = app;
        _node = node ?? nodeName;
        _rejoining = rejoining;
        // A retry of a journal already known to fail: its parent reports the retry; an ERROR per attempt would flood the log.
        _failureLevel = rejoining ? LogLevel.WarningLevel : LogLevel.ErrorLevel;
        PersistenceId = $"log-{app}-{nodeName}";
        _ackOnArrival = Context.System.Settings.Config.GetString(AcknowledgeKey, "written") == "received";

        Recover<Append>(a => Apply(a, LastSequenceNr));
        Recover<CheckpointComplete>(k => ApplyCheckpoint(k, LastSequenceNr));
        Recover<RecoveryCompleted>(_ =>
        {
            if (_ackOnArrival && LastSequenceNr > 0)
            {
                _unsureSinceRestart = true;
                _log.Warning("[{0}] this log acknowledges packets on arrival (continuity.persistence.acknowledge = received) and " +
                    "restarted: it may lack packets it acknowledged before, so this node is not elected until a fresh " +
                    "checkpoint reaches it", _app);
            }
            if (_rejoining) Self.Tell(new ProbeWrite());
        });

        // A read alone proves little on a full disk (reads work, writes do not): the node offers itself as a standby
        // again only once a write went through. Re-stating the newest checkpoint is idempotent and truncates older entries.
        Command<ProbeWrite>(_ => Persist(new CheckpointComplete(_app, _checkpointEpoch, "journal-probe", _checkpointMark), e =>
        {
            ApplyCheckpoint(e, LastSequenceNr);
            Truncate();
            Context.Parent.Tell(new StandbyLogProtocol.JournalWorks());
        }));

        Command<Append>(OnAppend);
        Command<StandbyLogProtocol.Fence>(f => _fencedBelow = Math.Max(_fencedBelow, f.Epoch));
        Command<StreamFrom>(f =>
        {
            if (f.Epoch < _checkpointEpoch) return;
            var last = Math.Max(_lastSeq.GetValueOrDefault(f.Epoch, f.Epoch == _checkpointEpoch ? _checkpointMark : 0),
                _receivedSeq.GetValueOrDefault(f.Epoch));
            // An empty log (a node that joins mid-epoch) takes any start already.
            if (f.FirstSeq <= last + 1 || last == 0) return;
            _streamFrom = (f.Epoch, f.FirstSeq);
            _log.Warning("[{0}] the primary resumes this standby's log of epoch {1} at {2}; packets {3}..{4} are missing here, so this " +
                "node is not elected until a checkpoint covers them", _app, f.Epoch, f.FirstSeq, last + 1, f.FirstSeq - 1);
        });
        Command<CheckpointComplete>(k => Persist(k, e =>
        {
            ApplyCheckpoint(e, LastSequenceNr);
            // Everything after its mark arrived since the restart, and is held here.
            _unsureSinceRestart = false;
            Truncate();
        }));
        Command<DeleteMessagesSuccess>(s => _log.Debug("[{0}] log truncated up to journal entry {1}", _app, s.ToSequenceNr));
        Command<DeleteMessagesFailure>(f => _log.Warning(f.Cause, "[{0}] log truncation failed (retried at the next checkpoint)", _app));
        Command<StandbyLogProtocol.GetTail>(get =>
        {
            var replyTo = Sender;
            // Acknowledged on arrival, a batch joins the tail when written: the tail is read once every write is done.
            if (_ackOnArrival) DeferAsync(get, _ => replyTo.Tell(TailNow()));
            else replyTo.Tell(TailNow());
        });
        Command<StandbyLogProtocol.GetStatus>(_ =>
        {
            var epoch = _tails.Count > 0 ? _tails.Keys.Max() : _checkpointEpoch;
            var written = _lastSeq.GetValueOrDefault(epoch, _checkpointMark);
            // A resumed stream whose first batch has not arrived yet is a hole not marked yet.
            Sender.Tell(new StandbyLogProtocol.Status(epoch, written, _tails.Values.Sum(t => t.Count),
                _hole is null && _streamFrom is null && !_unsureSinceRestart,
                Math.Max(0, _receivedSeq.GetValueOrDefault(epoch) - written),
                [_journalStage.Snapshot(Stages.Journal), _batchPackets.Snapshot(Stages.BatchPackets)]));
        });
    }

    private StandbyLogProtocol.Tail TailNow()
    {
        // Before any checkpoint the oldest epoch held is the one a checkpoint will eventually cover.
        var epoch = _checkpointEpoch > 0 || _tails.Count == 0 ? _checkpointEpoch : _tails.Keys.First();
        return new StandbyLogProtocol.Tail(epoch, _checkpointMark,
            _tails.TryGetValue(epoch, out var t) ? t.ToArray() : Array.Empty<LoggedPacket>());
    }

    private string? _journalName;
    private string JournalName => _journalName ??= JournalBackend.Describe(Context.System.Settings.Config);

    // Akka's defaults log these with a bare stack; an operator needs the backend, where it is, and what it said.
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        Report(string.Format("[{0}] cannot read the packet log {1} from the {2}: {3}. The log of {0} on this node stops; the node " +
            "reports it to the owner, which drops it from the standbys, and tries the journal again later.",
            _app, PersistenceId, JournalName, JournalBackend.Reason(reason)));
        _log.Debug("[{0}] journal recovery failure: {1}", _app, reason);
        Context.Parent.Tell(new StandbyLogProtocol.JournalFailed(JournalName, JournalBackend.Reason(reason)));
    }

    private void Report(string text)
    {
        if (_failureLevel == LogLevel.ErrorLevel) _log.Error("{0}", text);
        else _log.Warning("{0}", text);
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Report(string.Format("[{0}] cannot write entry {1} of the packet log {2} to the {3}: {4}. The batch is not acknowledged and the " +
            "log of {0} on this node stops; the node reports it to the owner, which drops it from the standbys.",
            _app, sequenceNr, PersistenceId, JournalName, JournalBackend.Reason(cause)));
        _log.Debug("[{0}] journal write failure: {1}", _app, cause);
        Context.Parent.Tell(new StandbyLogProtocol.JournalFailed(JournalName, JournalBackend.Reason(cause)));
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _log.Error("[{0}] the {1} rejected entry {2} of the packet log {3}: {4}. The batch is not acknowledged.",
            _app, JournalName, sequenceNr, PersistenceId, JournalBackend.Reason(cause));
    }

    /// <summary>Highest seq received per epoch, written or not (see OnAppend).</summary>
    private readonly Dictionary<long, long> _receivedSeq = new();

    public override string PersistenceId { get; }

    private void OnAppend(Append a)
    {
        if (a.Packets.Count == 0) return;
        if (Fenced(a.Epoch)) return;
        if (a.Epoch < _checkpointEpoch)
        {
            _log.Warning("[{0}] ignoring packets of stale epoch {1} (checkpoint epoch {2})", _app, a.Epoch, _checkpointEpoch);
            return;
        }
        var persisted = _lastSeq.GetValueOrDefault(a.Epoch, a.Epoch == _checkpointEpoch ? _checkpointMark : 0);
        if (a.LastSeq <= persisted)
        {
            Sender.Tell(new Appended(_app, a.Epoch, _node, persisted));
            return;
        }
        // Batches keep arriving while earlier ones are still being written: continuity is judged on what was
        // received, acknowledgements on what was written.
        var last = Math.Max(persisted, _receivedSeq.GetValueOrDefault(a.Epoch));
        if (a.LastSeq <= last)
        {
            // A resend of a batch being written: its own write will acknowledge it, or its arrival already did (and
            // that acknowledgement was lost, or the primary sent again before it came).
            if (_ackOnArrival) Sender.Tell(new Appended(_app, a.Epoch, _node, last));
            return;
        }
        var resumes = _streamFrom is { } from && from.Epoch == a.Epoch && a.FirstSeq == from.Seq;
        if (a.FirstSeq > last + 1 && last > 0 && !_rejoining && !resumes)
        {
            // A lost batch (remoting dropped it): acknowledging past the hole would let the primary release packets
            // this log lacks. Holding the acks blocks the app until membership removes one side, which is the rule.
            _log.Error("[{0}] gap in the log of epoch {1}: have {2}, got {3}..{4}; not acknowledging", _app, a.Epoch, last, a.FirstSeq, a.LastSeq);
            return;
        }
        _receivedSeq[a.Epoch] = a.LastSeq;
        _rejoining = false;
        if (resumes) _streamFrom = null;
        var replyTo = Sender;
        var receivedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        _batchPackets.Record(a.Packets.Count);
        if (_ackOnArrival) replyTo.Tell(new Appended(_app, a.Epoch, _node, a.LastSeq));
        // PersistAsync: batches keep arriving while earlier ones are written; replies still follow the write, in order.
        PersistAsync(a, e =>
        {
            _journalStage.RecordElapsed(receivedAt, System.Diagnostics.Stopwatch.GetTimestamp());
            Apply(e, LastSequenceNr);
            // Written after a fence: a takeover may already have read the tail without it, so its primary must not
            // release it. Kept in the journal all the same (harmless: a checkpoint of the new epoch truncates it).
            if (!_ackOnArrival && !Fenced(e.Epoch)) replyTo.Tell(new Appended(_app, e.Epoch, _node, e.LastSeq));
        });
    }

    private bool Fenced(long epoch)
    {
        if (epoch >= _fencedBelow) return false;
        if (epoch != _lastRefusedEpoch)
        {
            _lastRefusedEpoch = epoch;
            _log.Warning("[{0}] not acknowledging packets of epoch {1}: this node follows epoch {2} (its primary was replaced)",
                _app, epoch, _fencedBelow);
        }
        return true;
    }

    private void Apply(Append a, long sequenceNr)
    {
        _events.Add((sequenceNr, a.Epoch, a.LastSeq, false));
        if (a.Epoch < _checkpointEpoch) return;
        var last = _lastSeq.GetValueOrDefault(a.Epoch, a.Epoch == _checkpointEpoch ? _checkpointMark : 0);
        if (a.FirstSeq > last + 1 && (_hole is not { } h || a.Epoch > h.Epoch || (a.Epoch == h.Epoch && a.FirstSeq - 1 > h.Seq)))
            _hole = (a.Epoch, a.FirstSeq - 1);
        if (!_tails.TryGetValue(a.Epoch, out var tail)) _tails[a.Epoch] = tail = new List<LoggedPacket>();
        foreach (var p in a.Packets)
            if (p.Seq > last) tail.Add(p);
        _lastSeq[a.Epoch] = Math.Max(last, a.LastSeq);
    }

    private void ApplyCheckpoint(CheckpointComplete k, long sequenceNr)
    {
        _events.Add((sequenceNr, k.Epoch, k.Mark, true));
        if (k.Epoch < _checkpointEpoch || (k.Epoch == _checkpointEpoch && k.Mark < _checkpointMark)) return;
        if (_hole is { } h && (k.Epoch > h.Epoch || (k.Epoch == h.Epoch && k.Mark >= h.Seq))) _hole = null;
        // A resumed stream whose first batch has not come yet: a checkpoint up to just before it leaves no hole to mark.
        if (_streamFrom is { } f && (k.Epoch > f.Epoch || (k.Epoch == f.Epoch && k.Mark >= f.Seq - 1))) _streamFrom = null;
        _checkpointEpoch = k.Epoch;
        _checkpointMark = k.Mark;
        foreach (var old in _tails.Keys.Where(e => e < k.Epoch).ToList()) _tails.Remove(old);
        if (_tails.TryGetValue(k.Epoch, out var tail)) tail.RemoveAll(p => p.Seq <= k.Mark);
        if (_lastSeq.GetValueOrDefault(k.Epoch) < k.Mark) _lastSeq[k.Epoch] = k.Mark;
    }

    private bool Obsolete((long SequenceNr, long Epoch, long LastSeq, bool IsCheckpoint) e, long newestCheckpointNr) =>
        e.IsCheckpoint
            ? e.SequenceNr < newestCheckpointNr
            : e.Epoch < _checkpointEpoch || (e.Epoch == _checkpointEpoch && e.LastSeq <= _checkpointMark);

    private void Truncate()
    {
        var newestCheckpointNr = _events.Where(e => e.IsCheckpoint).Select(e => e.SequenceNr).DefaultIfEmpty(0).Max();
        var n = 0;
        while (n < _events.Count && Obsolete(_events[n], newestCheckpointNr)) n++;
        if (n == 0) return;
        var upTo = _events[n - 1].SequenceNr;
        _events.RemoveRange(0, n);
        DeleteMessages(upTo);
    }
}
