using System.Formats.Tar;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Continuity.Core.Apps;
using Continuity.Core.Capture;
using Continuity.Core.Platform;
using Continuity.Core.Serialization;
using static Continuity.Core.Replication.ReplicationProtocol;

using Continuity.Core.Switch;

namespace Continuity.Core.Checkpoint;

public static class CheckpointerProtocol
{
    /// <summary>Take a checkpoint now. <paramref name="Final"/>: for a planned switch; capture stays paused
    /// afterwards and the reply (<see cref="FinalShipped"/>) comes once every standby stored it.</summary>
    public sealed record Take(bool Final = false);

    public sealed record Taken(CheckpointInfo Info);
    public sealed record FinalShipped(CheckpointInfo Info);
    public sealed record Failed(string Reason);

    public sealed record SetStandbys(IReadOnlyList<StandbyRef> Standbys);

    public sealed record GetStatus;

    /// <param name="Alarm">The last dump's error, until a dump succeeds again.</param>
    /// <param name="Ready">Standbys that hold a complete checkpoint of this epoch.</param>
    /// <param name="Count">Checkpoints taken in this epoch.</param>
    /// <param name="LastShip">From the last shipped checkpoint's archive being ready (dump and archive done) until every standby stored it (null until one did).</param>
    /// <param name="Refusals">Standbys that refused the checkpoints sent to them since they last stored one.</param>
    public sealed record Status(CheckpointInfo? Last, string? Alarm, IReadOnlyCollection<string> Ready, long Count = 0, TimeSpan? LastShip = null,
        IReadOnlyList<Refusal>? Refusals = null);

    /// <summary>A standby that refused every checkpoint sent to it since <paramref name="Since"/> (a full disk, a bad
    /// image): it still takes over from the older checkpoint it holds, but replays a log that keeps growing.</summary>
    /// <param name="Checkpoints">Checkpoints refused in a row.</param>
    /// <param name="Reason">The standby's words for the last refusal.</param>
    public sealed record Refusal(string Node, int Checkpoints, DateTimeOffset Since, string Reason) : IControlMessage;
}

/// <summary>
/// The primary's checkpointer: periodically (and on demand) waits for its turn to dump (CRIU dumps one program at a
/// time per working directory), pauses the capture, dumps the program with CRIU while copying its state directories
/// during the freeze, resumes the capture, and ships the image to every standby.
/// The mark of a checkpoint is the last packet released to the program before the pause: with verdicts stopped,
/// the dumped program has seen exactly the packets up to the mark, so a standby replays exactly those after it.
/// </summary>
public sealed class Checkpointer : ReceiveActor, IWithTimers, IWithUnboundedStash
{
    private sealed record Tick;
    private sealed record Dumped(CheckpointInfo Info, string ImageDir);
    private sealed record Archived(CheckpointInfo Info, string Archive, byte[] Sha256);
    private sealed record StepFailed(string Reason);
    private sealed record TurnReady;
    private sealed record FinalTimeout(string Id);

    public const int ChunkSize = 256 * 1024;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly AppSpec _app;
    private readonly long _epoch;
    private readonly Func<int> _pid;
    private readonly ICheckpointer _criu;
    private readonly IActorRef _capture;
    private readonly string _workDir;
    private readonly TimeSpan _finalTimeout;
    private IReadOnlyList<StandbyRef> _standbys;

    private CheckpointInfo? _last;
    private string? _alarm;
    private readonly HashSet<string> _ready = new();
    private long _counter;
    private long _taken;
    private TimeSpan? _lastShip;
    // Per standby: the checkpoints it refused since it last stored one.
    private readonly Dictionary<string, CheckpointerProtocol.Refusal> _refusals = new();
    // The checkpoint being shipped: its id, when shipping began and the standbys that have not stored it yet.
    private (string Id, DateTime Started, HashSet<string> Pending)? _shipping;
    // Periodic checkpoints are being skipped while the last one ships (logged once per streak).
    private bool _skipping;
    // How long periodic checkpoints wait for the last one to reach every standby: past it, a standby that lost the
    // image (it restarted meanwhile) must not stop the checkpoints that keep the others' logs short.
    private readonly TimeSpan _shipWaitLimit;

    // The checkpoint in progress.
    private IActorRef? _requester;
    private bool _final;
    private long _mark;
    private string? _imageDir;
    private readonly HashSet<string> _awaitingStored = new();
    private IActorRef? _shipper;
    // The right to dump, taken before the capture pauses: another program's dump in the same working directory may
    // take seconds (or hang with its node), and the clients of this one must not wait for it with their input held.
    private readonly DumpTurnHandoff _turn = new();

    public ITimerScheduler Timers { get; set; } = null!;
    public IStash Stash { get; set; } = null!;

    public Checkpointer(AppSpec app, long epoch, Func<int> pid, ICheckpointer criu, IActorRef capture, string workDir,
        IReadOnlyList<StandbyRef> standbys, TimeSpan? finalTimeout = null)
    {
        _app = app;
        _epoch = epoch;
        _pid = pid;
        _criu = criu;
        _capture = capture;
        _workDir = workDir;
        _standbys = standbys;
        _finalTimeout = finalTimeout ?? TimeSpan.FromSeconds(60);
        _shipWaitLimit = TimeSpan.FromTicks(Math.Max(3 * app.CheckpointInterval.Ticks, TimeSpan.FromSeconds(30).Ticks));
        Idle();
    }

    protected override void PostStop() => _turn.Close();

    protected override void PreStart()
    {
        Security.RootOnly.CreateDirectory(_workDir);
        if (_app.CheckpointInterval > TimeSpan.Zero)
            Timers.StartPeriodicTimer("tick", new Tick(), _app.CheckpointInterval);
        // Standbys of a new epoch hold no checkpoint of it: they are not ready until the first one arrives.
        if (_standbys.Count > 0) Self.Tell(new CheckpointerProtocol.Take());
    }

    private void Common()
    {
        Receive<CheckpointerProtocol.SetStandbys>(m =>
        {
            _standbys = m.Standbys;
            _ready.IntersectWith(m.Standbys.Select(s => s.Node));
            foreach (var gone in _refusals.Keys.Where(n => m.Standbys.All(s => s.Node != n)).ToList()) _refusals.Remove(gone);
            // A standby that just joined gets the newest image at once instead of waiting for the next tick.
            if (m.Standbys.Any(s => !_ready.Contains(s.Node))) Self.Tell(new CheckpointerProtocol.Take());
        });
        Receive<CheckpointStored>(s =>
        {
            if (s.Epoch != _epoch) return;
            _ready.Add(s.Node);
            if (_refusals.Remove(s.Node, out var refused))
                _log.Info("[{0}] standby {1} stored checkpoint {2}, after refusing {3} since {4:HH:mm:ss}", _app.Name, s.Node, s.Id,
                    refused.Checkpoints, refused.Since);
            Context.Parent.Tell(s);
            if (_shipping is { } sh && sh.Id == s.Id && sh.Pending.Remove(s.Node) && sh.Pending.Count == 0)
            {
                _lastShip = DateTime.UtcNow - sh.Started;
                _shipping = null;
            }
            if (_awaitingStored.Remove(s.Node) && _awaitingStored.Count == 0 && _final && _last?.Id == s.Id)
                FinishFinal();
        });
        Receive<CheckpointRejected>(r =>
        {
            var refusal = _refusals.TryGetValue(r.Node, out var before)
                ? before with { Checkpoints = before.Checkpoints + 1, Reason = r.Reason }
                : new CheckpointerProtocol.Refusal(r.Node, 1, DateTimeOffset.UtcNow, r.Reason);
            _refusals[r.Node] = refusal;
            _log.Warning("[{0}] standby {1} refused checkpoint {2} ({3} in a row): {4}; it keeps its older checkpoint and a longer log",
                _app.Name, r.Node, r.Id, refusal.Checkpoints, r.Reason);
            if (_shipping is { } sh && sh.Id == r.Id && sh.Pending.Remove(r.Node) && sh.Pending.Count == 0) _shipping = null;
            if (_final && _awaitingStored.Contains(r.Node)) FailFinal($"standby {r.Node} rejected the final checkpoint: {r.Reason}");
        });
        Receive<CheckpointerProtocol.GetStatus>(_ => Sender.Tell(new CheckpointerProtocol.Status(_last, _alarm, _ready.ToArray(), _taken, _lastShip,
            _refusals.Values.OrderBy(r => r.Node, StringComparer.Ordinal).ToList())));
    }

    private void Idle()
    {
        Common();
        Receive<Tick>(_ =>
        {
            // Alone, a periodic checkpoint would protect nothing: there is nobody to ship it to.
            if (_standbys.Count == 0) return;
            if (StillShipping() is { } wait)
            {
                // Another image would only queue behind this one on the same connection, and the cluster's heartbeats
                // with it. After a partition (chaos lab, partition-primary seed 1692779364) a primary's link to one
                // standby stayed stuck 7 s after the heal, four images piling up on it before it moved again.
                if (!_skipping)
                    _log.Info("[{0}] periodic checkpoint skipped: {1} has been on its way to {2} for {3:F1} s", _app.Name,
                        wait.Id, string.Join(", ", wait.Pending), (DateTime.UtcNow - wait.Started).TotalSeconds);
                _skipping = true;
                return;
            }
            _skipping = false;
            Start(null, false);
        });
        Receive<CheckpointerProtocol.Take>(t => Start(Sender, t.Final));
    }

    /// <summary>The last checkpoint, while a current standby has not stored it and the wait limit has not passed.</summary>
    private (string Id, DateTime Started, HashSet<string> Pending)? StillShipping() =>
        _shipping is { } sh && sh.Pending.Overlaps(_standbys.Select(s => s.Node)) && DateTime.UtcNow - sh.Started < _shipWaitLimit
            ? sh : null;

    private void Start(IActorRef? requester, bool final)
    {
        _requester = requester == ActorRefs.NoSender || requester == Context.System.DeadLetters || requester == Self ? null : requester;
        _final = final;
        var turn = _turn;
        var self = Self;
        Task<IDumpTurn> waiting;
        try { waiting = _criu.WaitForDumpTurnAsync(_pid(), CancellationToken.None); }
        catch (Exception e) { waiting = Task.FromException<IDumpTurn>(e); }
        waiting.ContinueWith(t =>
        {
            if (!t.IsCompletedSuccessfully)
                self.Tell(new StepFailed(t.Exception?.GetBaseException().Message ?? "waiting for the turn to dump was cancelled"));
            else if (turn.Offer(t.Result))
                self.Tell(new TurnReady());
        }, TaskScheduler.Default);
        Become(Taking);
    }

    private void Taking()
    {
        Common();
        Receive<Tick>(_ => { }); // a periodic checkpoint while one is running adds nothing
        Receive<CheckpointerProtocol.Take>(_ => Stash.Stash());
        Receive<TurnReady>(_ => _capture.Tell(new CaptureProtocol.Pause()));
        Receive<CaptureProtocol.Paused>(p =>
        {
            _mark = p.Mark;
            var id = CheckpointInfo.NewId(_epoch, DateTime.UtcNow, ++_counter);
            var imageDir = Path.Combine(_workDir, id);
            // Operators (and the tests that aim a crash at a checkpoint) follow each checkpoint's phases in the log.
            _log.Info("[{0}] checkpoint {1}: frozen at mark {2}, dumping", _app.Name, id, _mark);
            _imageDir = imageDir;
            DumpAsync(id, imageDir).PipeTo(Self, failure: e => new StepFailed(e.Message));
        });
        Receive<Dumped>(d =>
        {
            if (!_final) _capture.Tell(new CaptureProtocol.Resume());
            _alarm = null;
            ArchiveAsync(d.Info, d.ImageDir).PipeTo(Self, failure: e => new StepFailed(e.Message));
        });
        Receive<Archived>(a =>
        {
            _last = a.Info;
            _taken++;
            if (_standbys.Count > 0) _shipping = (a.Info.Id, DateTime.UtcNow, _standbys.Select(s => s.Node).ToHashSet());
            Context.Parent.Tell(new CheckpointerProtocol.Taken(a.Info));
            _log.Info("[{0}] checkpoint {1}: {2:F1} MB, frozen {3:F0} ms, shipping to {4}", _app.Name, a.Info.Id,
                a.Info.Bytes / 1048576.0, a.Info.Freeze.TotalMilliseconds, _standbys.Count == 0 ? "nobody" : string.Join(", ", _standbys.Select(s => s.Node)));
            Ship(a);
            foreach (var old in Directory.GetDirectories(_workDir).Where(d => Path.GetFileName(d) != a.Info.Id))
                TryDelete(old);
            if (_final)
            {
                _awaitingStored.Clear();
                _awaitingStored.UnionWith(_standbys.Select(s => s.Node));
                if (_awaitingStored.Count == 0) { FinishFinal(); return; }
                Timers.StartSingleTimer("final", new FinalTimeout(a.Info.Id), _finalTimeout);
                Become(AwaitingStored);
                return;
            }
            _requester?.Tell(new CheckpointerProtocol.Taken(a.Info));
            BackToIdle();
        });
        Receive<StepFailed>(f =>
        {
            // The previous checkpoint stays the standbys' newest (nothing of this one was shipped) and the program keeps
            // running, protected by a longer log: nothing acknowledged is lost, a failover only replays more.
            var kept = _last is { } l
                ? $"the previous checkpoint {l.Id} (mark {l.Mark}) stays the newest"
                : "no checkpoint of this epoch exists yet";
            _turn.Release();
            _alarm = $"checkpoint failed, {kept} and the log grows until a dump succeeds: {OneLine(f.Reason)}";
            _log.Error("[{0}] checkpoint failed, {1}: {2}", _app.Name, kept, f.Reason);
            // A partial image must never be mistaken for a checkpoint, and it holds disk space the next dump needs.
            if (_imageDir is { } partial)
            {
                TryDelete(partial);
                TryDelete(partial + ".tar");
            }
            _capture.Tell(new CaptureProtocol.Resume());
            _requester?.Tell(new CheckpointerProtocol.Failed(_alarm));
            BackToIdle();
        });
    }

    private void AwaitingStored()
    {
        Common();
        Receive<Tick>(_ => { });
        Receive<CheckpointerProtocol.Take>(_ => Stash.Stash());
        Receive<FinalTimeout>(t => { if (t.Id == _last?.Id) FailFinal("standbys did not store the final checkpoint in time"); });
    }

    private void FinishFinal()
    {
        Timers.Cancel("final");
        _requester?.Tell(new CheckpointerProtocol.FinalShipped(_last!));
        // Capture stays paused: the program must not receive another packet before it is stopped.
        BackToIdle();
    }

    private void FailFinal(string reason)
    {
        Timers.Cancel("final");
        _log.Error("[{0}] {1}", _app.Name, reason);
        _capture.Tell(new CaptureProtocol.Resume());
        _requester?.Tell(new CheckpointerProtocol.Failed(reason));
        BackToIdle();
    }

    /// <summary>criu's report spans lines (what failed, its error lines, the log's tail): one line for the alarm.</summary>
    private static string OneLine(string text) =>
        string.Join(" ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private void BackToIdle()
    {
        _requester = null;
        _imageDir = null;
        _final = false;
        _awaitingStored.Clear();
        Become(Idle);
        Stash.UnstashAll();
    }

    private async Task<Dumped> DumpAsync(string id, string imageDir)
    {
        Security.RootOnly.CreateDirectory(imageDir);
        var stateDirs = _app.StateDirs;
        var turn = _turn.TakeForDump();
        CheckpointImage image;
        try
        {
            image = await turn.DumpAsync(imageDir, () =>
            {
                // CRIU records the size of every open file: the copy must be taken while the program is frozen.
                CheckpointFiles.SaveStateDirs(imageDir, stateDirs);
            }, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            // Here, not in the actor: a checkpointer stopped mid-dump must still give the turn back when criu is done.
            _turn.Release();
        }
        // CRIU's images and logs get the umask's modes; they hold the program's memory.
        Security.RootOnly.Tree(imageDir);
        return new Dumped(new CheckpointInfo(_epoch, id, _mark, DateTimeOffset.UtcNow, image.Bytes, image.Freeze), imageDir);
    }

    private static async Task<Archived> ArchiveAsync(CheckpointInfo info, string imageDir)
    {
        var archive = imageDir + ".tar";
        await using (var created = Security.RootOnly.CreateFile(archive, FileMode.Create))
            await TarFile.CreateFromDirectoryAsync(imageDir, created, includeBaseDirectory: false).ConfigureAwait(false);
        await using var s = File.OpenRead(archive);
        var sha = await SHA256.HashDataAsync(s).ConfigureAwait(false);
        return new Archived(info with { Bytes = s.Length }, archive, sha);
    }

    /// <summary>Ships the archive through a child of its own (flow-controlled, see <see cref="CheckpointShipper"/>), which
    /// deletes it when done; one that still ships an older image stops (its standby starts over from chunk 0).</summary>
    private void Ship(Archived a)
    {
        if (_shipper is { } previous) Context.Stop(previous);
        _shipper = null;
        if (_standbys.Count == 0)
        {
            TryDelete(a.Archive);
            return;
        }
        _shipper = Context.ActorOf(CheckpointShipper.Props(_app.Name, _epoch, a.Info, a.Archive, a.Sha256, _standbys), $"ship-{a.Info.Id}");
    }

    private void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, true);
            else if (File.Exists(path)) File.Delete(path);
        }
        catch (IOException e) { _log.Warning("[{0}] could not delete {1}: {2}", _app.Name, path, e.Message); }
    }
}

/// <summary>
/// Hands the dump turn from the task that waited for it to the checkpointer's dump, and gives it back exactly once:
/// when the dump is done or failed, when the checkpoint failed before its dump, or when the checkpointer stops. A turn
/// that arrives after the stop is given back at once, and one whose dump is running when the checkpointer stops is given
/// back when criu is done: otherwise another program sharing the working directory would never dump again, or two
/// dumps would meet in it.
/// </summary>
internal sealed class DumpTurnHandoff
{
    private readonly object _gate = new();
    private IDumpTurn? _current;
    private bool _dumping;
    private bool _closed;

    /// <summary>False (and the turn given back) once the checkpointer stopped.</summary>
    public bool Offer(IDumpTurn turn)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _current = turn;
                return true;
            }
        }
        turn.Dispose();
        return false;
    }

    public IDumpTurn TakeForDump()
    {
        lock (_gate)
        {
            _dumping = true;
            return _current ?? throw new InvalidOperationException("a dump started without its turn");
        }
    }

    public void Release()
    {
        IDumpTurn? turn;
        lock (_gate)
        {
            turn = _current;
            _current = null;
            _dumping = false;
        }
        turn?.Dispose();
    }

    public void Close()
    {
        lock (_gate)
        {
            _closed = true;
            if (_dumping) return;
        }
        Release();
    }
}
