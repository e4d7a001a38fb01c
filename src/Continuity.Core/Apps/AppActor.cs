using Akka.Actor;
using Akka.Event;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Continuity.Core.Election;
using Continuity.Core.Fencing;
using Continuity.Core.Log;
using Continuity.Core.Membership;
using Continuity.Core.Platform;
using Continuity.Core.Replication;
using Continuity.Core.Serialization;
using Continuity.Core.Supervision;

namespace Continuity.Core.Apps;

public static class AppActorProtocol
{
    /// <summary>Asked of the primary by the management view. Replies <see cref="PrimaryStatus"/>.</summary>
    public sealed record GetPrimaryStatus(string App) : IControlMessage;

    /// <param name="LastSwitch">The last takeover this node completed: the owner records it only when the node's report
    /// reaches it, so a view that already finds this node serving shows it from here.</param>
    public sealed record PrimaryStatus(string App, string Node, AppRole Role, long Epoch, CheckpointInfo? Last, string? Alarm,
        IReadOnlyCollection<string> Ready, bool Unprotected, long LastSeq, long LastReleased, SwitchInfo? LastSwitch = null) : IControlMessage;

    /// <summary>Sent to the primary's app actor. Replies AppsProtocol.CheckpointTaken or AppsProtocol.Rejected.</summary>
    public sealed record CheckpointNow(string App) : IControlMessage;
}

/// <summary>
/// One application on one node: the role state machine idle → primary | standby | taking-over. It owns
/// the role's children (primary: capture + checkpointer; standby: log + checkpoint store) and the OS
/// resources of the role (program, VIP, queue rule), and releases them whenever the role ends, including
/// when a newer epoch shows that another node now delivers input to the program.
/// </summary>
public sealed class AppActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    /// <summary>How often the primary checks that its program still runs.</summary>
    public static readonly TimeSpan DefaultWatchInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>Checks of a dead program's exit status before reporting it as unknown (the launcher records it once
    /// it reaped the program, a moment after the program is gone).</summary>
    private const int ExitStatusChecks = 4;

    private sealed record WatchProgram;
    private sealed record InstallCapture;
    private sealed record CaptureInstalled;
    private sealed record Prepared(CheckpointStoreProtocol.Newest Checkpoint, StandbyLogProtocol.Tail Tail);
    private sealed record TakeoverDone(TakeoverReport Report);
    private sealed record TakeoverError(string Reason);
    private sealed record RetryJournal;

    /// <summary>Key of the time between attempts to restart a packet log whose journal failed.</summary>
    public const string JournalRetryKey = "continuity.persistence.retry-interval";

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly AppSpec _app;
    private readonly PlatformServices _platform;
    private readonly string _node;
    private readonly string _nodeName;
    private readonly string _appDir;

    private AppRole _role = AppRole.Idle;

    /// <summary>Every change of role goes through here, so that the downing provider knows what this node serves.</summary>
    private AppRole Role
    {
        set
        {
            _role = value;
            PrimaryRegistry.Get(Context.System)
                .Set(_app.Name, value is AppRole.Primary or AppRole.TakingOver or AppRole.Releasing);
        }
    }
    private long _epoch;
    private string? _primaryNode;
    // The primary's node name, noted while it is a member: after a crash it is gone from the membership, and the
    // switch report should still say whom it replaced in the words people use.
    private string? _primaryName;
    private IReadOnlyList<StandbyRef> _standbys = [];
    // The owner's recovery of this application is paused (an operator's request), remembered for its next incarnation.
    private bool _recoveryPaused;
    private ProtectedProcess? _process;
    private bool _vipUp;
    private bool _queueing;
    // The kernel's lease on the VIP (IVipFence) is installed while this node is or becomes primary; _leaseExpiresAt is
    // the node's lease (LeaseKeeper) as last heard, in Environment.TickCount64 milliseconds.
    private bool _fenceArmed;
    private long _leaseExpiresAt;
    private long _slowRenewWarnedAt = long.MinValue / 2;
    private IActorRef? _capture;
    private IActorRef? _checkpointer;
    private IActorRef? _standbyLog;
    private IActorRef? _store;
    private CheckpointInfo? _lastStored;
    private OwnerProtocol.TakeOver? _takeover;
    private IActorRef? _owner;
    private IActorRef? _releaseRequester;
    private CancellationTokenSource? _takeoverCts;
    private readonly TimeSpan _watchInterval;
    private int _exitChecks;
    private SwitchInfo? _lastSwitch;
    private long _takeovers;
    private long _replayedTotal;

    // The packet log's journal failed: why (journal and error), until a fresh log proved a write works. While set this
    // node is no standby (the owner dropped it) and is never elected: its log is known to be incomplete.
    private string? _journalFailure;
    // Rejoined after a journal failure: the log misses what was released meanwhile, so the node is no successor until
    // a checkpoint stored after the rejoin covers the gap (the same rule as for a node that joins).
    private bool _awaitingFreshCheckpoint;
    private int _logGeneration;
    private readonly TimeSpan _journalRetry;

    // The owner dropped this standby because its journal lagged (epoch of the drop, the owner's reason, and whether the
    // primary has since resumed its stream). Its log misses what was released meanwhile, so it is no successor until a
    // checkpoint stored after the stream resumed (or one of a later epoch) reached it. Kept in a file too: a restarted
    // node must not forget it (its journal alone shows a log that merely ends early, which looks complete).
    private (long Epoch, string Reason, bool Resumed)? _behind;
    private string BehindFile => Path.Combine(_appDir, "log-behind");
    private readonly SwitchHistory _history;

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="watchInterval">How often the primary checks that its program runs; null for <see cref="DefaultWatchInterval"/>.</param>
    public AppActor(AppSpec app, PlatformServices platform, string node, string nodeName, string appDir, TimeSpan? watchInterval = null)
    {
        _app = app;
        _platform = platform;
        _node = node;
        _nodeName = nodeName;
        _appDir = appDir;
        _watchInterval = watchInterval ?? DefaultWatchInterval;
        _history = new SwitchHistory(appDir);
        _journalRetry = Context.System.Settings.Config.GetTimeSpan(JournalRetryKey, TimeSpan.FromSeconds(10), allowInfinite: false);
        if (_journalRetry <= TimeSpan.Zero) _journalRetry = TimeSpan.FromSeconds(10);
        Become(Serving);
    }

    public static Props Props(AppSpec app, PlatformServices platform, string node, string nodeName, string appDir,
        TimeSpan? watchInterval = null) =>
        Akka.Actor.Props.Create(() => new AppActor(app, platform, node, nodeName, appDir, watchInterval));

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer("watch", new WatchProgram(), _watchInterval);
        Context.System.EventStream.Subscribe(Self, typeof(LeaseProtocol.LeaseRenewed));
        ClearLeftovers();
        ReadBehind();
    }

    /// <summary>
    /// A node that starts serves nothing yet, but a previous life of it (a node process killed without a reboot) may
    /// have left the VIP on an interface and the queue and block rules in place: the node would answer ARP for the
    /// VIP, taking clients away from the real primary, and drop what they send. Each removal is a no-op when absent.
    /// </summary>
    private void ClearLeftovers() =>
        Clear([("the program", KillLeftoverProgram), .. TakeoverResources()], "left by an earlier run of this node");

    /// <summary>What a takeover sets up before it serves, each removal a no-op when absent: the VIP (up with its inbound
    /// traffic blocked until the replay is done), the queue rules, the injection channel and the VIP's fence.</summary>
    private (string What, Action Undo)[] TakeoverResources() =>
    [
        ("the VIP", () => _platform.VirtualIp.Remove(_app.Vip, _app.VipPrefixLength)),
        ("the queue rules", () => _platform.Filter.StopQueueing(_app.Traffic, _app.QueueNumber)),
        ("the block rule", () => _platform.Filter.UnblockInbound(_app.Vip)),
        ("an interrupted takeover's injection channel", () => _platform.Takeover.ClearLeftovers(_app)),
        ("the VIP's fence", () => _platform.Fence.Disarm(_app.Vip, _app.QueueNumber)),
    ];

    private void Clear((string What, Action Undo)[] steps, string whose)
    {
        foreach (var (what, undo) in steps)
        {
            try { undo(); }
            catch (Exception e) { _log.Warning("[{0}] clearing {1} {2} failed: {3}", _app.Name, what, whose, e.Message); }
        }
    }

    private string ProgramFile => Path.Combine(_appDir, "program.pid");

    /// <summary>
    /// Which process the program is, on disk: a node process killed alone (SIGKILL, a crash of the runtime) leaves its
    /// program running, and a supervisor that restarts only the node process (not a systemd unit with
    /// KillMode=control-group) would leave it there for good, holding the application's ports so that this node could
    /// never start it again. The file names the process by pid and identity, so a pid reused since is never killed.
    /// </summary>
    private void NoteProgram()
    {
        if (_process is not { } p) return;
        try
        {
            Directory.CreateDirectory(_appDir);
            File.WriteAllText(ProgramFile, $"{p.Pid} {_platform.Launcher.Identity(p.Pid)}");
        }
        catch (Exception e) { _log.Warning("[{0}] could not note the program's pid in {1}: {2}", _app.Name, ProgramFile, e.Message); }
    }

    private void KillLeftoverProgram()
    {
        if (!File.Exists(ProgramFile)) return;
        var fields = File.ReadAllText(ProgramFile).Split(' ', 2, StringSplitOptions.TrimEntries);
        File.Delete(ProgramFile);
        if (fields.Length < 2 || fields[1].Length == 0 || !int.TryParse(fields[0], out var pid)) return;
        if (_platform.Launcher.Identity(pid) != fields[1]) return;
        _log.Warning("[{0}] an earlier run of this node left its program running (pid {1}): it is killed, since another node may " +
            "serve the application by now", _app.Name, pid);
        _platform.Launcher.Kill(pid);
    }

    protected override void PostStop()
    {
        // A node going down (downed by the resolver, or stopped) must stop delivering input: the program dies
        // with the node's role, so the new primary is the only one ever serving.
        StopPrimaryResources();
        _takeoverCts?.Cancel();
        Role = AppRole.Idle;
    }

    private string NameOfMember(string address) =>
        ((ExtendedActorSystem)Context.System).Provider is Akka.Cluster.ClusterActorRefProvider
            ? NodeNames.NameOfAddress(Akka.Cluster.Cluster.Get(Context.System).State, address)
            : address;

    private bool Stale(long epoch)
    {
        if (epoch >= _epoch) return false;
        _log.Info("[{0}] ignoring a command of epoch {1}: this node is at epoch {2}", _app.Name, epoch, _epoch);
        return true;
    }

    private void Serving()
    {
        Receive<OwnerProtocol.BecomeStandby>(m =>
        {
            if (Stale(m.Epoch)) return;
            if (_role == AppRole.Primary)
            {
                _log.Warning("[{0}] epoch {1} names {2} primary: this node stops serving (was primary of epoch {3})",
                    _app.Name, m.Epoch, m.PrimaryNode, _epoch);
                StopPrimaryResources();
            }
            _epoch = m.Epoch;
            _primaryNode = m.PrimaryNode;
            _primaryName = NameOfMember(m.PrimaryNode);
            _owner = Sender;
            Role = AppRole.Standby;
            _standbys = [];
            EnsureStandbyChildren();
        });
        Receive<OwnerProtocol.BecomePrimary>(m =>
        {
            if (Stale(m.Epoch)) return;
            _owner = Sender;
            if (_role == AppRole.Primary && m.Epoch == _epoch) { SetStandbys(m.Standbys); return; }
            if (_role == AppRole.Primary) StopPrimaryResources();
            _epoch = m.Epoch;
            _standbys = m.Standbys;
            try
            {
                _process = _platform.Launcher.Launch(_app.Command, line => _log.Info("[{0}] {1}", _app.Name, line));
                NoteProgram();
                _exitChecks = 0;
                _log.Info("[{0}] started as primary of epoch {1}, pid {2}", _app.Name, _epoch, _process.Pid);
                StartCapture();
                ArmFence();
                OpenVip();
                StartPrimary();
                Sender.Tell(new OwnerProtocol.Started(_app.Name, m.Epoch, _node));
            }
            catch (Exception e)
            {
                // The launcher's message already says what happened (exit code, last output): no stack trace needed.
                var reason = $"could not start {string.Join(' ', _app.Command)}: {e.Message}";
                _log.Error("[{0}] epoch {1}: {2} This node does not serve it; the owner decides what next.", _app.Name, m.Epoch, reason);
                StopPrimaryResources();
                Role = AppRole.Idle;
                Sender.Tell(new OwnerProtocol.ProgramFailed(_app.Name, m.Epoch, _node, reason));
            }
        });
        Receive<WatchProgram>(_ => WatchTheProgram());
        Receive<OwnerProtocol.TakeOver>(m =>
        {
            if (m.Epoch <= _epoch && _role is AppRole.Primary or AppRole.TakingOver) return;
            if (Stale(m.Epoch)) return;
            if (_journalFailure is not null)
            {
                // The owner does not elect such a node; this guards a decision that crossed the failure report.
                Sender.Tell(new OwnerProtocol.TakeoverFailed(_app.Name, m.Epoch, _node, $"its packet log is down ({_journalFailure})"));
                return;
            }
            if (_role == AppRole.Primary) StopPrimaryResources();
            _epoch = m.Epoch;
            _owner = Sender;
            // Now, not when the takeover is done: the capture is installed halfway through it, and with a list left from an
            // earlier epoch of this node as primary it waited for the acks of a crashed node (seen on the lab).
            _standbys = m.Standbys;
            // After a crash the deciding owner may be a new singleton that never knew the old primary; this standby did.
            _takeover = m.From is null && _primaryNode is not null && _primaryNode != _node ? m with { From = _primaryName ?? _primaryNode } : m;
            Role = AppRole.TakingOver;
            EnsureStandbyChildren();
            try { ArmFence(); }
            catch (Exception e)
            {
                Sender.Tell(new OwnerProtocol.TakeoverFailed(_app.Name, m.Epoch, _node, $"the VIP's fence could not be installed: {e.Message}"));
                Role = AppRole.Idle;
                _takeover = null;
                return;
            }
            var timeout = TimeSpan.FromSeconds(10);
            var store = _store!.Ask<CheckpointStoreProtocol.Newest>(new CheckpointStoreProtocol.GetNewest(), timeout);
            var tail = _standbyLog!.Ask<StandbyLogProtocol.Tail>(new StandbyLogProtocol.GetTail(), timeout);
            Task.WhenAll(store, tail).ContinueWith(t => t.IsCompletedSuccessfully
                    ? new Prepared(store.Result, tail.Result)
                    : (object)new TakeoverError("reading the local checkpoint and log: " + t.Exception?.GetBaseException().Message))
                .PipeTo(Self);
            Become(TakingOver);
        });
        Receive<OwnerProtocol.SetStandbys>(m =>
        {
            if (m.Epoch != _epoch || _role != AppRole.Primary) return;
            SetStandbys(m.Standbys);
        });
        Receive<OwnerProtocol.Release>(m =>
        {
            if (m.Epoch != _epoch || _role != AppRole.Primary || _checkpointer is null)
            {
                Sender.Tell(new OwnerProtocol.Failed(_app.Name, $"not the primary of epoch {m.Epoch}"));
                return;
            }
            _releaseRequester = Sender;
            Role = AppRole.Releasing;
            _checkpointer.Tell(new CheckpointerProtocol.Take(Final: true));
        });
        Receive<CheckpointerProtocol.FinalShipped>(f =>
        {
            _log.Info("[{0}] final checkpoint {1} shipped; stopping for the planned switch", _app.Name, f.Info.Id);
            StopPrimaryResources();
            Role = AppRole.Idle;
            _releaseRequester?.Tell(new OwnerProtocol.Released(_app.Name, _epoch, f.Info));
            _releaseRequester = null;
        });
        Receive<CheckpointerProtocol.Failed>(f =>
        {
            if (_role != AppRole.Releasing) return;
            Role = AppRole.Primary;
            _releaseRequester?.Tell(new OwnerProtocol.Failed(_app.Name, f.Reason));
            _releaseRequester = null;
        });
        Receive<AppActorProtocol.CheckpointNow>(_ =>
        {
            if (_role != AppRole.Primary || _checkpointer is null)
            {
                Sender.Tell(new AppsProtocol.Rejected(_app.Name, $"{_nodeName} is not the primary"));
                return;
            }
            var app = _app.Name;
            _checkpointer.Ask<object>(new CheckpointerProtocol.Take(), TimeSpan.FromMinutes(2))
                .ContinueWith(t => t.IsCompletedSuccessfully && t.Result is CheckpointerProtocol.Taken k
                    ? new AppsProtocol.CheckpointTaken(app, k.Info)
                    : (object)new AppsProtocol.Rejected(app, t.IsCompletedSuccessfully && t.Result is CheckpointerProtocol.Failed f
                        ? f.Reason : "checkpoint did not complete"))
                .PipeTo(Sender);
        });
        Common();
    }

    private void TakingOver()
    {
        Receive<Prepared>(p =>
        {
            var m = _takeover!;
            if (p.Checkpoint.Info is not { } cp || p.Checkpoint.ImageDir is null)
            {
                FailTakeover("this node holds no complete checkpoint");
                return;
            }
            var log = _app.Recovery == RecoveryPolicy.RestoreOnly || p.Tail.Epoch != cp.Epoch
                ? (IReadOnlyList<LoggedPacket>)[]
                : p.Tail.AfterMark.Where(x => x.Seq > cp.Mark).ToArray();
            _log.Info("[{0}] taking over as primary of epoch {1} from checkpoint {2} (mark {3}) with {4} logged packets",
                _app.Name, m.Epoch, cp.Id, cp.Mark, log.Count);
            var self = Self;
            _takeoverCts = new CancellationTokenSource();
            var ct = _takeoverCts.Token;
            // The capture goes in after replay and before the VIP opens: from then on no packet reaches the program unlogged.
            Func<Task> beforeOpen = () => self.Ask<CaptureInstalled>(new InstallCapture(), TimeSpan.FromSeconds(30), ct);
            var (app, imageDir, takeover) = (_app, p.Checkpoint.ImageDir, _platform.Takeover);
            // Off this actor's thread: the takeover's first phase (injection channel, VIP, reply routes, state
            // directories) runs dozens of commands and copies files before its first await, and a dispatcher thread
            // should not wait for them.
            Task.Run(() => takeover.RunAsync(app, imageDir, cp.Mark, log, beforeOpen, ct), CancellationToken.None)
                .PipeTo(Self, success: r => new TakeoverDone(r), failure: e => new TakeoverError(e.GetBaseException().Message));
        });
        Receive<InstallCapture>(_ =>
        {
            try
            {
                StartCapture();
                Sender.Tell(new CaptureInstalled());
            }
            catch (Exception e)
            {
                Sender.Tell(new Status.Failure(e));
            }
        });
        Receive<TakeoverDone>(d =>
        {
            var m = _takeover!;
            _process = new ProtectedProcess(d.Report.Pid, DateTimeOffset.UtcNow);
            NoteProgram();
            _exitChecks = 0;
            _vipUp = true; // the takeover opened it
            _standbys = m.Standbys;
            StartPrimary();
            // The standbys hold a checkpoint of the old epoch only: until a fresh one reaches them they are not ready.
            _checkpointer!.Tell(new CheckpointerProtocol.Take());
            var info = new SwitchInfo(m.From, _node, DateTimeOffset.UtcNow, m.Reason, m.Epoch, d.Report.PacketsReplayed, d.Report.Phases);
            _lastSwitch = info;
            RecordSwitch(info);
            _takeovers++;
            _replayedTotal += d.Report.PacketsReplayed;
            _owner?.Tell(new OwnerProtocol.TookOver(_app.Name, m.Epoch, _node, info));
            _takeover = null;
            Become(Serving);
            Stash.UnstashAll();
        });
        Receive<TakeoverError>(e => FailTakeover(e.Reason));
        Receive<WatchProgram>(_ => { }); // no program of ours runs until the takeover is done
        Receive<OwnerProtocol.GetNodeStatus>(_ => ReplyNodeStatus());
        Receive<IntrospectionProtocol.GetAppFigures>(_ => ReplyFigures());
        Receive<OwnerProtocol.GetSwitchHistory>(_ => ReplySwitchHistory());
        Receive<ReplicationProtocol.Append>(a => _standbyLog?.Forward(a));
        Receive<ReplicationProtocol.StreamFrom>(f => _standbyLog?.Forward(f));
        Receive<ReplicationProtocol.CheckpointChunk>(c => _store?.Forward(c));
        Receive<LeaseProtocol.LeaseRenewed>(OnLeaseRenewed);
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>
    /// A program that exits on its own must not leave the node pretending to serve it: the VIP would take clients'
    /// packets to nobody while the view said "protected". The node stops serving (VIP and queue rules removed, so
    /// nothing more is acknowledged; what was logged stays with the standbys) and tells the owner, which elects a
    /// successor or starts the program again within its restart limits.
    /// </summary>
    private void WatchTheProgram()
    {
        if (_process is not { } p || _role is not (AppRole.Primary or AppRole.Releasing))
        {
            _exitChecks = 0;
            return;
        }
        if (_platform.Launcher.IsAlive(p.Pid)) return;
        var exit = _platform.Launcher.ExitOf(p.Pid);
        if (exit is null && ++_exitChecks < ExitStatusChecks) return;
        _exitChecks = 0;
        exit ??= new ProgramExit(null, []);

        var ran = DateTimeOffset.UtcNow - p.StartedAt;
        var reason = $"{_app.Command[0]} (pid {p.Pid}) {exit.Status} after {Took(ran)}; {exit.Output}";
        // Gone and reaped: its pid may already be someone else's, so it is not signalled.
        _process = null;
        StopServing($"the program {reason}", reason, $"the program ended during the switch: {reason}");
    }

    /// <summary>
    /// A capture that stopped on its own (its queue failed) leaves nothing to log the program's input: packets to the
    /// VIP would wait in a queue nobody reads while the view said "protected". Started again in place it would number
    /// packets afresh within the same epoch, so the node stops serving instead, as when the program exits: the program
    /// is stopped, and the standby the owner elects restores its checkpoint and replays the log, which holds everything
    /// the program was given.
    /// </summary>
    private void OnCaptureStopped()
    {
        _capture = null;
        if (_role is not (AppRole.Primary or AppRole.Releasing)) return;
        const string reason = "the packet capture stopped (its queue failed: see the error before this line), so nothing " +
            "logs the program's input any more";
        StopServing(reason, reason, $"during the switch, {reason}");
    }

    /// <summary>Stops serving the current epoch after a failure and tells the owner, which elects a successor or starts the
    /// program again within its restart limits.</summary>
    /// <param name="failure">What happened, as the node's log says it.</param>
    /// <param name="reason">What the owner is told (and shows as the application's alarm).</param>
    /// <param name="releaseFailure">What a planned switch in progress is told.</param>
    private void StopServing(string failure, string reason, string releaseFailure)
    {
        _log.Error("[{0}] {1}. This node stops serving epoch {2} (VIP and queue rules removed) and reports it to the owner.",
            _app.Name, failure, _epoch);
        StopPrimaryResources();
        Role = AppRole.Idle;
        if (_releaseRequester is not null)
        {
            _releaseRequester.Tell(new OwnerProtocol.Failed(_app.Name, releaseFailure));
            _releaseRequester = null;
        }
        _owner?.Tell(new OwnerProtocol.ProgramFailed(_app.Name, _epoch, _node, reason));
    }

    private static string Took(TimeSpan t) =>
        t < TimeSpan.FromMinutes(2) ? $"{t.TotalSeconds:F1} s" : t < TimeSpan.FromHours(2) ? $"{t.TotalMinutes:F0} min" : $"{t.TotalHours:F1} h";

    private void FailTakeover(string reason)
    {
        _log.Error("[{0}] takeover of epoch {1} failed: {2}", _app.Name, _epoch, reason);
        StopPrimaryResources();
        // The switch raised the VIP (inbound blocked) before it failed: left up, this node would answer ARP for it
        // beside the next successor and drop what the clients that picked it send (chaos lab, node-kill seed
        // 1272505995: a connection unanswered for 100 s after a restore failed).
        Clear(TakeoverResources(), "left by the failed takeover");
        _vipUp = false;
        _fenceArmed = false;
        Role = AppRole.Idle;
        _owner?.Tell(new OwnerProtocol.TakeoverFailed(_app.Name, _epoch, _node, reason));
        _takeover = null;
        Become(Serving);
        Stash.UnstashAll();
    }

    private void Common()
    {
        Receive<LeaseProtocol.LeaseRenewed>(OnLeaseRenewed);
        Receive<OwnerProtocol.SetRecoveryPaused>(m => _recoveryPaused = m.Paused);
        Receive<OwnerProtocol.RecordSwitch>(m => RecordSwitch(m.Switch));
        Receive<OwnerProtocol.GetSwitchHistory>(_ => ReplySwitchHistory());
        Receive<ReplicationProtocol.Append>(a =>
        {
            if (_standbyLog is null)
            {
                // Batches sent before the owner dropped this node keep arriving for a moment: expected, not news.
                if (_journalFailure is null) _log.Warning("[{0}] packets received but this node is no standby", _app.Name);
                return;
            }
            _standbyLog.Forward(a);
        });
        Receive<ReplicationProtocol.StreamFrom>(f =>
        {
            _standbyLog?.Forward(f);
            // Added back: from here on the log itself marks the hole (and a checkpoint stored from now on covers it).
            if (_behind is { } b && f.Epoch >= b.Epoch && !b.Resumed) _behind = b with { Resumed = true };
        });
        Receive<OwnerProtocol.DropStandby>(d =>
        {
            if (d.Epoch < _epoch || _role is AppRole.Primary or AppRole.TakingOver or AppRole.Releasing) return;
            if (_behind is null)
                _log.Error("[{0}] the owner drops this node from the standbys of {0}: {1}. Its log misses what the primary releases " +
                    "from now on: it is not elected until it is added back and a fresh checkpoint reaches it.", _app.Name, d.Reason);
            _behind = (d.Epoch, d.Reason, false);
            WriteBehind();
            Sender.Tell(new OwnerProtocol.StandbyDropped(_app.Name, d.Epoch, _node));
        });
        Receive<ReplicationProtocol.CheckpointChunk>(c =>
        {
            if (_store is null) EnsureStandbyChildren();
            _store?.Forward(c);
        });
        Receive<ReplicationProtocol.CheckpointStored>(s =>
        {
            // From our store (we are a standby) or relayed by our checkpointer (we are the primary).
            if (s.Node != _node) return;
            _lastStored = CheckpointInfo.Received(s.Epoch, s.Id, s.Mark, 0);
            // Only a checkpoint stored by the current store counts: the store reports newly received ones only.
            if (_behind is { } behind && Sender.Equals(_store) && (s.Epoch > behind.Epoch || behind.Resumed))
            {
                _behind = null;
                try { File.Delete(BehindFile); }
                catch (Exception e) { _log.Warning("[{0}] removing {1} failed: {2}", _app.Name, BehindFile, e.Message); }
                _log.Info("[{0}] checkpoint {1} stored after this node was added back: its log is complete again", _app.Name, s.Id);
            }
            if (_awaitingFreshCheckpoint && Sender.Equals(_store))
            {
                _awaitingFreshCheckpoint = false;
                _log.Info("[{0}] checkpoint {1} stored after the journal came back: this node can take over again", _app.Name, s.Id);
            }
        });
        Receive<StandbyLogProtocol.JournalFailed>(f => OnJournalFailed(Sender, f));
        Receive<Terminated>(t =>
        {
            // A log that stops without saying why (it always says why on a journal failure) is treated the same way.
            if (t.ActorRef.Equals(_standbyLog))
                OnJournalFailed(t.ActorRef, new StandbyLogProtocol.JournalFailed(JournalBackend.Describe(Context.System.Settings.Config), "the packet log stopped"));
            // One stopped on purpose is no longer watched (StopPrimaryResources).
            else if (t.ActorRef.Equals(_capture))
                OnCaptureStopped();
        });
        Receive<RetryJournal>(_ => OnRetryJournal());
        Receive<StandbyLogProtocol.JournalWorks>(_ =>
        {
            if (!Sender.Equals(_standbyLog) || _journalFailure is null) return;
            _log.Info("[{0}] the packet log of {0} on {1} works again (read and test write went through): offering this node as a " +
                "standby again; it can take over only after a fresh checkpoint reaches it", _app.Name, _nodeName);
            _journalFailure = null;
            _awaitingFreshCheckpoint = true;
            ToOwner(new OwnerProtocol.JournalRecovered(_app.Name, _node));
        });
        Receive<CheckpointerProtocol.Taken>(_ => { });
        Receive<OwnerProtocol.GetNodeStatus>(_ => ReplyNodeStatus());
        Receive<AppActorProtocol.GetPrimaryStatus>(_ => ReplyPrimaryStatus());
        Receive<IntrospectionProtocol.GetAppFigures>(_ => ReplyFigures());
    }

    /// <summary>What this node knows of the application, for the MIB: asks the role's children, never waits long.</summary>
    private void ReplyFigures()
    {
        var (app, role, epoch, lastSwitch, takeovers, replayed) = (_app.Name, _role, _epoch, _lastSwitch, _takeovers, _replayedTotal);
        var behindReason = _behind?.Reason;
        int? connections = null;
        if (role == AppRole.Primary)
        {
            try { connections = _platform.OpenConnections(_app); }
            catch (Exception e) { _log.Debug("[{0}] counting open connections failed: {1}", _app.Name, e.Message); }
        }
        var timeout = TimeSpan.FromSeconds(2);
        var checkpointer = OrNull<CheckpointerProtocol.Status>(_checkpointer, new CheckpointerProtocol.GetStatus(), timeout);
        var capture = OrNull<CaptureProtocol.Status>(_capture, new CaptureProtocol.GetStatus(), timeout);
        var log = OrNull<StandbyLogProtocol.Status>(_standbyLog, new StandbyLogProtocol.GetStatus(), timeout);
        var store = OrNull<CheckpointStoreProtocol.Newest>(_store, new CheckpointStoreProtocol.GetNewest(), timeout);
        Task.WhenAll(checkpointer, capture, log, store).ContinueWith(_ =>
            {
                var (c, k, l, n) = (checkpointer.Result, capture.Result, log.Result, store.Result);
                var last = c?.Last ?? n?.Info;
                var depth = l?.Depth ?? (k is not null ? Math.Max(0, k.LastSeq - (c?.Last?.Mark ?? 0)) : 0);
                return new IntrospectionProtocol.AppFigures(app, role, epoch, k?.LastSeq ?? 0, k?.LastReleased ?? 0, depth, last,
                    c?.LastShip, c?.Count ?? 0, takeovers, replayed, lastSwitch, k?.Lags.ToList(), behindReason, connections,
                    (k?.Stages ?? []).Concat(l?.Stages ?? []).ToList(), c?.Refusals);
            })
            .PipeTo(Sender);
    }

    /// <summary>Keeps a switch in this node's history file, with node names rather than cluster addresses (an address
    /// changes with a restart of its node; the name is what people and the history of other nodes use).</summary>
    private void RecordSwitch(SwitchInfo s)
    {
        string Name(string? node) => node is null ? "" : node == _node ? _nodeName : node.Contains("://") ? NameOfMember(node) : node;
        try { _history.Append(s with { From = s.From is null ? null : Name(s.From), To = Name(s.To) }); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("[{0}] the switch of epoch {1} could not be added to {2}: {3} (other nodes keep it too)", _app.Name, s.Epoch, _history.Path, e.Message);
        }
    }

    private void ReplySwitchHistory()
    {
        IReadOnlyList<SwitchInfo> kept;
        try { kept = _history.Read().ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("[{0}] reading {1} failed: {2}", _app.Name, _history.Path, e.Message);
            kept = new List<SwitchInfo>();
        }
        Sender.Tell(new OwnerProtocol.SwitchesKept(_app.Name, _nodeName, kept));
    }

    private void ReadBehind()
    {
        try
        {
            if (!File.Exists(BehindFile)) return;
            var lines = File.ReadAllLines(BehindFile);
            if (lines.Length >= 1 && long.TryParse(lines[0], out var epoch))
            {
                _behind = (epoch, lines.Length > 1 ? string.Join(' ', lines[1..]) : "its journal lagged", false);
                _log.Warning("[{0}] this node was dropped from the standbys of epoch {1} ({2}): not elected until a fresh checkpoint " +
                    "reaches it", _app.Name, epoch, _behind.Value.Reason);
            }
        }
        catch (Exception e) { _log.Warning("[{0}] reading {1} failed: {2}", _app.Name, BehindFile, e.Message); }
    }

    private void WriteBehind()
    {
        if (_behind is not { } b) return;
        try
        {
            // Written aside and renamed, so a crash never leaves half a file (which would read as no mark at all).
            var temp = BehindFile + ".tmp";
            File.WriteAllLines(temp, [b.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture), b.Reason]);
            File.Move(temp, BehindFile, overwrite: true);
        }
        catch (Exception e) { _log.Error("[{0}] writing {1} failed: {2} (the mark holds until this node restarts)", _app.Name, BehindFile, e.Message); }
    }

    private static async Task<T?> OrNull<T>(IActorRef? to, object message, TimeSpan timeout) where T : class
    {
        if (to is null) return null;
        try { return await to.Ask<T>(message, timeout).ConfigureAwait(false); }
        catch (Exception) { return null; }
    }

    /// <summary>
    /// The packet log stopped because its journal failed. Nothing it acknowledged is lost (acks follow writes), but it
    /// acknowledges nothing more, so the primary would hold every packet for it forever. The owner (the one decision
    /// maker, so this is a configuration change and not a local timeout) drops this node from the standbys; this node
    /// only reports, and retries a fresh log after a back-off instead of reconnecting the old one, because a log whose
    /// writes failed may have lost batches it had not yet acknowledged: recovery from the journal is the only truth.
    /// </summary>
    private void OnJournalFailed(IActorRef from, StandbyLogProtocol.JournalFailed f)
    {
        if (_standbyLog is null || !from.Equals(_standbyLog)) return; // a log replaced or stopped on purpose
        Context.Unwatch(_standbyLog);
        _standbyLog = null;
        // The store tells the log about stored checkpoints: it is recreated with the next log.
        if (_store is not null) { Context.Stop(_store); _store = null; }
        var first = _journalFailure is null;
        _journalFailure = $"{f.Journal}: {f.Reason}";
        _awaitingFreshCheckpoint = false;
        if (first)
        {
            _log.Error("[{0}] the packet log of application {0} on node {1} stopped: its journal ({2}) failed: {3}. This node can no " +
                "longer be a standby of {0}; it reports that to the owner, which drops it from the standbys (the primary then waits " +
                "for the others only). The journal is tried again every {4:0.#} s.", _app.Name, _nodeName, f.Journal, f.Reason, _journalRetry.TotalSeconds);
            ToOwner(new OwnerProtocol.JournalFailed(_app.Name, _node, _journalFailure));
        }
        else
            _log.Warning("[{0}] the journal ({1}) still fails: {2}; trying again in {3:0.#} s", _app.Name, f.Journal, f.Reason, _journalRetry.TotalSeconds);
        Timers.StartSingleTimer("journal-retry", new RetryJournal(), _journalRetry);
    }

    private void OnRetryJournal()
    {
        if (_journalFailure is null || _standbyLog is not null) return;
        // A primary keeps no standby log; it tries again when it is a standby once more.
        if (_role is AppRole.Primary or AppRole.Releasing or AppRole.TakingOver)
        {
            Timers.StartSingleTimer("journal-retry", new RetryJournal(), _journalRetry);
            return;
        }
        CreateStandbyChildren(rejoining: true);
    }

    /// <summary>Sent through this node's proxy of the owner singleton: the owner that last commanded this node may have moved.</summary>
    private void ToOwner(object message) =>
        Context.ActorSelection(Context.Parent.Path / AppsGuardian.OwnerProxyName(_app.Name)).Tell(message);

    private void ReplyNodeStatus()
    {
        var (app, node, name, self, role, epoch) = (_app.Name, _node, _nodeName, Self, _role, _epoch);
        var (failure, awaiting, paused, behind) = (_journalFailure, _awaitingFreshCheckpoint, _recoveryPaused, _behind?.Reason);
        var disk = _platform.Disk(_appDir)?.FreePercent;
        // Shorter than the 3 s the view's builder gives this reply (see ReplyPrimaryStatus).
        var timeout = TimeSpan.FromSeconds(2);
        if (role == AppRole.Primary && _checkpointer is not null)
        {
            var checkpoint = _checkpointer.Ask<CheckpointerProtocol.Status>(new CheckpointerProtocol.GetStatus(), timeout);
            var capture = OrNull<CaptureProtocol.Status>(_capture, new CaptureProtocol.GetStatus(), timeout);
            Task.WhenAll(checkpoint, capture).ContinueWith(_ => new OwnerProtocol.NodeStatus(app, node, name, self, role, epoch,
                    checkpoint.IsCompletedSuccessfully ? checkpoint.Result.Last : null, epoch, 0, 0, failure, RecoveryPaused: paused,
                    DiskFreePercent: disk, Lags: capture.Result?.Lags.ToList()))
                .PipeTo(Sender);
            return;
        }
        if (_store is null || _standbyLog is null)
        {
            Sender.Tell(new OwnerProtocol.NodeStatus(app, node, name, self, role, epoch, null, 0, 0, 0, failure,
                failure is null && !awaiting && behind is null, paused, disk, Behind: behind));
            return;
        }
        var newest = _store.Ask<CheckpointStoreProtocol.Newest>(new CheckpointStoreProtocol.GetNewest(), timeout);
        var log = _standbyLog.Ask<StandbyLogProtocol.Status>(new StandbyLogProtocol.GetStatus(), timeout);
        Task.WhenAll(newest, log).ContinueWith(_ => new OwnerProtocol.NodeStatus(app, node, name, self, role, epoch,
                newest.IsCompletedSuccessfully ? newest.Result.Info : null,
                log.IsCompletedSuccessfully ? log.Result.Epoch : 0,
                log.IsCompletedSuccessfully ? log.Result.LastSeq : 0,
                log.IsCompletedSuccessfully ? log.Result.Depth : 0,
                failure,
                // A log that does not answer is not trusted for a takeover either.
                !awaiting && failure is null && behind is null && log.IsCompletedSuccessfully && log.Result.Complete,
                paused, disk, Behind: behind, LogBacklog: log.IsCompletedSuccessfully ? log.Result.Backlog : 0))
            .PipeTo(Sender);
    }

    private void ReplyPrimaryStatus()
    {
        var (app, node, role, epoch, lastSwitch) = (_app.Name, _node, _role, _epoch, _lastSwitch);
        if (_checkpointer is null || _capture is null)
        {
            Sender.Tell(new AppActorProtocol.PrimaryStatus(app, node, role, epoch, null, null, [], true, 0, 0, lastSwitch));
            return;
        }
        // Shorter than the 3 s the view's builder gives this reply: a slow child costs its part of the status, not
        // the whole of it (the primary would read as "unknown").
        var timeout = TimeSpan.FromSeconds(2);
        var cp = _checkpointer.Ask<CheckpointerProtocol.Status>(new CheckpointerProtocol.GetStatus(), timeout);
        var cap = _capture.Ask<CaptureProtocol.Status>(new CaptureProtocol.GetStatus(), timeout);
        var names = _standbys.ToDictionary(s => s.Node, s => NameOfMember(s.Node));
        Task.WhenAll(cp, cap).ContinueWith(_ =>
            {
                var c = cp.IsCompletedSuccessfully ? cp.Result : null;
                var k = cap.IsCompletedSuccessfully ? cap.Result : null;
                var alarms = (c?.Refusals ?? []).Select(r => RefusalAlarm(r, names.GetValueOrDefault(r.Node, r.Node))).Prepend(c?.Alarm).OfType<string>();
                var alarm = string.Join("; ", alarms);
                return new AppActorProtocol.PrimaryStatus(app, node, role, epoch, c?.Last, alarm.Length == 0 ? null : alarm, c?.Ready ?? [],
                    k?.Unprotected ?? true, k?.LastSeq ?? 0, k?.LastReleased ?? 0, lastSwitch);
            })
            .PipeTo(Sender);
    }

    private static string RefusalAlarm(CheckpointerProtocol.Refusal r, string standby) =>
        $"standby {standby} refused {(r.Checkpoints == 1 ? "the last checkpoint" : $"the last {r.Checkpoints} checkpoints")} " +
        $"(since {r.Since:HH:mm:ss} UTC: {r.Reason}): it would take over from an older checkpoint and replay a longer log";

    private void EnsureStandbyChildren()
    {
        // While the journal is down the retry timer alone restarts the log, not whatever message arrives.
        if (_journalFailure is not null) return;
        CreateStandbyChildren(rejoining: false);
    }

    private void CreateStandbyChildren(bool rejoining)
    {
        if (_standbyLog is null)
        {
            var (app, nodeName, node, generation) = (_app.Name, _nodeName, _node, ++_logGeneration);
            // A new name per generation: the name of a stopped child is free only once its Terminated was processed.
            _standbyLog = Context.ActorOf(Akka.Actor.Props.Create(() => new StandbyLog(app, nodeName, node, rejoining)),
                generation == 1 ? "log" : $"log-{generation}");
            Context.Watch(_standbyLog);
            if (_store is not null) { Context.Stop(_store); _store = null; }
        }
        // Every caller has just learnt its epoch: from here on the old primary's batches are not acknowledged here.
        _standbyLog.Tell(new StandbyLogProtocol.Fence(_epoch));
        if (_store is null)
        {
            var (app, node, dir, log, generation) = (_app.Name, _node, Path.Combine(_appDir, "checkpoints"), _standbyLog, _logGeneration);
            _store = Context.ActorOf(Akka.Actor.Props.Create(() => new CheckpointStore(app, node, dir, log)),
                generation == 1 ? "store" : $"store-{generation}");
        }
    }

    private void StartCapture()
    {
        if (_capture is not null) return;
        var (app, epoch, factory, standbys, failpoints, unread) =
            (_app, _epoch, _platform.PacketQueue, _standbys, _platform.Failpoints, _platform.UnreadDatagrams);
        // Opened here, before the queue rule sends it packets, not in the capture's PreStart, which runs later on
        // another thread: a queue still being configured when packets arrive fails its configuration (chaos lab,
        // partition-primary seed 472958722: "nfq_set_queue_flags failed ... (errno 0)" once a takeover had opened the
        // VIP; the capture stopped and the program's input went to nobody for 100 s).
        var opened = factory(app);
        // The capture's first start takes this queue; a restart of it opens a new one, with the rule already in.
        Func<AppSpec, IPacketQueue> queues = a => Interlocked.Exchange(ref opened, null) ?? factory(a);
        try
        {
            _capture = Context.ActorOf(Akka.Actor.Props.Create(() => new CaptureActor(app, epoch, 1, queues, standbys, failpoints, unread)),
                $"capture-{epoch}");
        }
        catch
        {
            opened?.Dispose();
            throw;
        }
        Context.Watch(_capture);
        _platform.Filter.QueueInbound(_app.Traffic, _app.QueueNumber);
        _queueing = true;
    }

    /// <summary>Before the VIP goes up: from here on it is live only while the node's lease runs.</summary>
    private void ArmFence()
    {
        _platform.Fence.Arm(_app.Vip, _app.QueueNumber);
        _fenceArmed = true;
        RenewFence();
    }

    private void RenewFence()
    {
        var left = _leaseExpiresAt - Environment.TickCount64;
        if (!_fenceArmed || left <= 0) return;
        var started = Environment.TickCount64;
        Try(() => _platform.Fence.Renew(_app.Vip, _app.QueueNumber, TimeSpan.FromMilliseconds(left)), "renewing the VIP's lease");
        // A renewal is due every renew-interval: one that takes a good part of it leaves this actor behind on them.
        var took = Environment.TickCount64 - started;
        if (took > 200 && started - _slowRenewWarnedAt > 10_000)
        {
            _slowRenewWarnedAt = started;
            _log.Warning("[{0}] renewing the VIP's lease in the kernel took {1} ms: the lease may lapse under this load", _app.Name, took);
        }
    }

    private void OnLeaseRenewed(LeaseProtocol.LeaseRenewed l)
    {
        var wasFenced = _leaseExpiresAt <= Environment.TickCount64;
        _leaseExpiresAt = l.ExpiresAt;
        RenewFence();
        // The gratuitous ARP of a VIP that went quiet may have been dropped by the fence; clients learn the way back now.
        if (wasFenced && _fenceArmed && _vipUp && _role == AppRole.Primary)
        {
            _log.Info("[{0}] the lease is back: announcing the VIP {1} again", _app.Name, _app.Vip);
            // Off this actor: arping takes half a second or more on a loaded machine, and an actor that falls behind
            // on its lease renewals lets the fence lapse again, announcing again (seen: 219 times in minutes).
            var (vip, log, name, virtualIp) = (_app.Vip, _log, _app.Name, _platform.VirtualIp);
            Task.Run(() =>
            {
                try { virtualIp.Announce(vip); }
                catch (Exception e) { log.Warning("[{0}] announcing the VIP failed: {1}", name, e.Message); }
            });
        }
    }

    private void OpenVip()
    {
        _platform.VirtualIp.Add(_app.Vip, _app.VipPrefixLength);
        _vipUp = true;
        _platform.VirtualIp.Announce(_app.Vip);
    }

    private void StartPrimary()
    {
        Role = AppRole.Primary;
        _primaryNode = _node;
        var (app, epoch, criu, capture, standbys) = (_app, _epoch, _platform.Checkpointer(_app), _capture!, _standbys);
        var workDir = Path.Combine(_appDir, "local-checkpoints");
        Func<int> pid = () => _process?.Pid ?? throw new InvalidOperationException("no program running");
        _checkpointer = Context.ActorOf(Akka.Actor.Props.Create(() =>
            new Checkpointer(app, epoch, pid, criu, capture, workDir, standbys, null)), $"checkpointer-{epoch}");
        // The standby pieces of this node are not needed while it is primary; their files stay on disk.
        if (_standbyLog is not null) { Context.Unwatch(_standbyLog); Context.Stop(_standbyLog); _standbyLog = null; }
        if (_store is not null) { Context.Stop(_store); _store = null; }
    }

    private void SetStandbys(IReadOnlyList<StandbyRef> standbys)
    {
        _standbys = standbys;
        _capture?.Tell(new CaptureProtocol.SetStandbys(_epoch, standbys));
        _checkpointer?.Tell(new CheckpointerProtocol.SetStandbys(standbys));
    }

    /// <summary>Stops delivering input: queue rule and capture, VIP, program. Every step is attempted even if one fails.</summary>
    private void StopPrimaryResources()
    {
        if (_checkpointer is not null) { Context.Stop(_checkpointer); _checkpointer = null; }
        if (_queueing)
        {
            Try(() => _platform.Filter.StopQueueing(_app.Traffic, _app.QueueNumber), "removing the queue rule");
            _queueing = false;
        }
        if (_capture is not null) { Context.Unwatch(_capture); Context.Stop(_capture); _capture = null; }
        if (_vipUp)
        {
            Try(() => _platform.VirtualIp.Remove(_app.Vip, _app.VipPrefixLength), "removing the VIP");
            _vipUp = false;
        }
        if (_fenceArmed)
        {
            Try(() => _platform.Fence.Disarm(_app.Vip, _app.QueueNumber), "removing the VIP's fence");
            _fenceArmed = false;
        }
        if (_process is not null)
        {
            var pid = _process.Pid;
            Try(() => _platform.Launcher.Kill(pid), "killing the program");
            _process = null;
            Try(() => File.Delete(ProgramFile), "forgetting the program's pid");
        }
        if (_role is AppRole.Primary or AppRole.Releasing) Role = AppRole.Idle;
    }

    private void Try(Action a, string what)
    {
        try { a(); }
        catch (Exception e) { _log.Error(e, "[{0}] {1} failed", _app.Name, what); }
    }
}
