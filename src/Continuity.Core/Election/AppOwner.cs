using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Continuity.Core.Apps;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Continuity.Core.Placement;
using Continuity.Core.Supervision;

namespace Continuity.Core.Election;

/// <summary>
/// Decides which node is an application's primary. One per application, as a Cluster Singleton on the "data" role.
///
/// Why a singleton and not sharding: a singleton gives a hard one-owner guarantee that follows membership (it runs
/// on the oldest data node and only moves after that node is removed), and it never moves by itself. Sharding would
/// rebalance entities when nodes join, i.e. move an owner (and, if the owner were the primary, the program) on its own
/// initiative; here a move is only ever a consequence of a membership decision or of an operator's switch.
///
/// It keeps no persistent state: a node's own role and epoch live on that node, so a new incarnation of the owner
/// (after its host was removed) rebuilds the picture by asking every data node, and finishes any failover that its
/// predecessor could not. It reacts to MemberRemoved only (the cluster's verdict: the leader's once the lost node's
/// lease was revoked and ran out, else the Split Brain Resolver's), never to a local timeout, because two primaries
/// would be worse than a slower failover.
/// </summary>
public sealed class AppOwner : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    public const string DataRole = "data";

    private sealed record Reconcile(string Reason);
    /// <param name="Serving">What each node that answered serves, by address (the load placement weighs).</param>
    private sealed record Statuses(string Reason, IReadOnlyList<OwnerProtocol.NodeStatus> Nodes,
        IReadOnlyDictionary<string, IReadOnlyList<PlacementProtocol.ServedApp>> Serving);
    private sealed record RebalanceTick;
    private sealed record SuperviseTick;
    /// <summary>What every up data node said, gathered for a rebalancing or a supervision check at <paramref name="Epoch"/>.</summary>
    private sealed record Facts(bool ForRebalance, long Epoch, IReadOnlyList<OwnerProtocol.NodeStatus> Nodes,
        IReadOnlyDictionary<string, IReadOnlyList<PlacementProtocol.ServedApp>> Serving);
    /// <param name="Rejoin">The node's journal works again (it was never removed from the cluster): not a join, so it
    /// does not count as the fresh start that lifts a "failed" application.</param>
    private sealed record Joined(OwnerProtocol.NodeStatus Node, bool Rejoin = false);
    private sealed record AskJoined(Address Address, int Attempt, bool Rejoin = false);
    private sealed record SwitchReleased(IActorRef ReplyTo, StandbyRef Target, OwnerProtocol.Released Released, string Reason);
    private sealed record SwitchFailed(IActorRef ReplyTo, string Reason);
    /// <summary>A lagging standby answered (or not) that it knows it is being dropped.</summary>
    private sealed record LagDropAnswered(string Node, long Epoch, string Why, bool Answered);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly string _app;
    private readonly string _appActorPath;
    private readonly TimeSpan _askTimeout;
    private readonly PlacementSettings _placement;
    private readonly ResourceRules _supervision;
    // What the resource rules found wrong on the primary (a full disk), for the alarm; null when all is well.
    private string? _resourceAlarm;
    private readonly int _appIndex;
    private DateTimeOffset _lastMove = DateTimeOffset.UtcNow;

    private long _epoch;
    private StandbyRef? _primary;
    private readonly Dictionary<string, StandbyRef> _standbys = new();
    private readonly Dictionary<string, string> _names = new();
    private readonly HashSet<string> _failedTakeover = new();
    private readonly HashSet<Address> _removed = new();
    // Nodes whose packet log stopped because their journal failed, with the reason. They are no standbys (the primary
    // would wait for their acks forever) and are never elected (their log is incomplete) until they report recovery.
    // Rebuilt from the nodes' statuses by every decision, so a new incarnation of the owner knows them too.
    private readonly Dictionary<string, string> _journalFailed = new();
    // Standbys dropped because their journal lagged beyond max-standby-lag, with why and when. They are added back (the
    // primary resumes their stream, leaving a hole in their log) once their log has written all it received. Each such
    // node also knows it was dropped (it reports Behind), so a new incarnation of the owner rebuilds this set too.
    private readonly Dictionary<string, (string Why, DateTimeOffset Since)> _lagging = new();
    // Standbys lagging beyond the bound but not dropped (on-standby-lag = alarm, or the node did not answer the drop).
    private readonly Dictionary<string, string> _lagAlarms = new();
    private readonly HashSet<string> _dropping = new();
    private SwitchInfo? _lastSwitch;
    private string? _alarm;
    // An operator paused automatic recovery (maintenance): nothing is replaced, restarted or moved until resumed.
    // Kept on the nodes too (SetRecoveryPaused), so a new incarnation of the owner keeps the pause.
    private bool _recoveryPaused;
    private string? _pausedWhile; // what the owner did not do while paused, for the alarm

    // Failures of the program (exited on its own, or could not be started) within the restart window, oldest first.
    private readonly RestartPolicy _restarts;
    private readonly List<(DateTimeOffset At, string Reason)> _failures = new();
    private DateTimeOffset? _restartAt;
    private bool _gaveUp;

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="appActorPath">Path of the app actor below the root on every node, e.g. "/user/continuity-apps/app-kv".</param>
    /// <param name="restarts">How often a failing program is started again; null for <see cref="RestartPolicy.Default"/>.</param>
    /// <param name="placement">Where primaries go; null for <see cref="PlacementSettings.Default"/>.</param>
    /// <param name="appIndex">Position of the application among all applications sorted by name (spreads first starts).</param>
    public AppOwner(string app, string appActorPath, TimeSpan? askTimeout = null, RestartPolicy? restarts = null,
        PlacementSettings? placement = null, int appIndex = 0, ResourceRules? supervision = null)
    {
        _supervision = supervision ?? ResourceRules.Default;
        _app = app;
        _appActorPath = appActorPath;
        _askTimeout = askTimeout ?? TimeSpan.FromSeconds(5);
        _restarts = restarts ?? RestartPolicy.Default;
        _placement = placement ?? PlacementSettings.Default;
        _appIndex = appIndex;
        Deciding();
    }

    public static Props Props(string app, string appActorPath, RestartPolicy? restarts = null, PlacementSettings? placement = null,
        int appIndex = 0, ResourceRules? supervision = null) =>
        Akka.Actor.Props.Create(() => new AppOwner(app, appActorPath, null, restarts, placement, appIndex, supervision));

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved));
        Self.Tell(new Reconcile("owner started"));
        if (_placement.Rebalance) Timers.StartPeriodicTimer("rebalance", new RebalanceTick(), _placement.Interval);
        if (_supervision.MinFreeDiskPercent > 0 || _supervision.WatchesStandbyLag)
            Timers.StartPeriodicTimer("supervise", new SuperviseTick(), _supervision.CheckInterval);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private ActorSelection AppActorOn(Address address) => Context.ActorSelection(address + _appActorPath);

    private IEnumerable<Member> UpDataMembers() =>
        _cluster.State.Members.Where(m => m.Status == MemberStatus.Up && m.HasRole(DataRole));

    private Task<OwnerProtocol.NodeStatus?> AskStatus(Address address) =>
        AppActorOn(address).Ask<OwnerProtocol.NodeStatus>(new OwnerProtocol.GetNodeStatus(_app), _askTimeout)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null);

    /// <summary>The app actor lives right below the node's AppsGuardian, which knows what the node serves.</summary>
    private Task<PlacementProtocol.Serving?> AskServing(Address address) =>
        Context.ActorSelection(address + _appActorPath[.._appActorPath.LastIndexOf('/')])
            .Ask<PlacementProtocol.Serving>(new PlacementProtocol.GetServing(), _askTimeout)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null);

    /// <summary>Every up data node's status for this application and what it serves; silent nodes are left out.</summary>
    private async Task<(List<OwnerProtocol.NodeStatus> Nodes, Dictionary<string, IReadOnlyList<PlacementProtocol.ServedApp>> Serving)> AskAll(
        IReadOnlyList<Address> members)
    {
        var statuses = Task.WhenAll(members.Select(AskStatus));
        var serving = Task.WhenAll(members.Select(AskServing));
        await Task.WhenAll(statuses, serving).ConfigureAwait(false);
        return (statuses.Result.Where(s => s is not null).Select(s => s!).ToList(),
            serving.Result.Where(s => s is not null).ToDictionary(s => s!.Node, s => (IReadOnlyList<PlacementProtocol.ServedApp>)s!.Apps));
    }

    /// <summary>Waiting for the nodes' answers: everything else waits, so decisions never interleave.</summary>
    private void Deciding()
    {
        Receive<Reconcile>(r =>
        {
            var members = UpDataMembers().Select(m => m.Address).ToList();
            AskAll(members).ContinueWith(t => new Statuses(r.Reason, t.Result.Nodes, t.Result.Serving)).PipeTo(Self);
        });
        Receive<Statuses>(s =>
        {
            Decide(s);
            Become(Decided);
            Stash.UnstashAll();
        });
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            _removed.Add(m.Member.Address);
            // Forget it now so a decision in flight does not count on it; the decision re-checks the primary afterwards.
            _standbys.Remove(m.Member.Address.ToString());
            Stash.Stash();
        });
        Receive<RebalanceTick>(_ => { }); // a move is only weighed when no decision is in flight
        Receive<SuperviseTick>(_ => { });
        ReceiveAny(_ => Stash.Stash());
    }

    private void Decided()
    {
        Receive<ClusterEvent.MemberUp>(m =>
        {
            if (!m.Member.HasRole(DataRole)) return;
            var node = m.Member.Address.ToString();
            if (node == _primary?.Node || _standbys.ContainsKey(node)) return;
            Self.Tell(new AskJoined(m.Member.Address, 0));
        });
        Receive<AskJoined>(a =>
        {
            // Cluster.State lags behind the events we receive, so only our own record of removals is trusted here.
            if (a.Attempt > 60 || _removed.Contains(a.Address)) return;
            // A node joins before its app actors exist (the host starts them after the join): ask again for a while.
            var retry = a with { Attempt = a.Attempt + 1 };
            AskStatus(a.Address).ContinueWith(t => t.Result is { } s ? new Joined(s, a.Rejoin) : (object)retry).PipeTo(Self);
        });
        Receive<Joined>(j =>
        {
            if (j.Node.JournalFailure is { } broken)
            {
                NoteJournalFailure(j.Node.Node, broken);
                return;
            }
            _journalFailed.Remove(j.Node.Node);
            if (j.Rejoin && (j.Node.Node == _primary?.Node || _standbys.ContainsKey(j.Node.Node))) return;
            if (_gaveUp && !j.Rejoin)
            {
                // The documented way out of "failed": fix the cause, restart a data node. Its arrival counts as a fresh start.
                _log.Warning("[{0}] {1} joined: starting the application again after it was stopped for failing ({2})",
                    _app, j.Node.NodeName, _failures.LastOrDefault().Reason);
                _gaveUp = false;
                _failures.Clear();
                _failedTakeover.Clear();
            }
            // A restart after a program failure is pending: it asks every member, this one included, once the back-off is
            // over. Deciding now would skip the back-off (seen when the cluster's MemberUp of a node reached the owner only
            // after the program had failed there).
            if (_primary is null && _restartAt is not null) return;
            if (_primary is null || j.Node.Node == _primary.Node) { Self.Tell(new Reconcile("node joined")); Become(Deciding); return; }
            if (_recoveryPaused) j.Node.AppActor.Tell(new OwnerProtocol.SetRecoveryPaused(_app, true));
            AddStandby(j.Node);
            _log.Info("[{0}] {1} joined: standby of {2} (epoch {3})", _app, j.Node.NodeName, NameOf(_primary.Node), _epoch);
            j.Node.AppActor.Tell(new OwnerProtocol.BecomeStandby(_app, _epoch, _primary.Node));
            TellPrimaryStandbys();
        });
        Receive<ClusterEvent.MemberRemoved>(m =>
        {
            _removed.Add(m.Member.Address);
            var node = m.Member.Address.ToString();
            _journalFailed.Remove(node);
            _lagging.Remove(node);
            _lagAlarms.Remove(node);
            if (node == _primary?.Node && _recoveryPaused)
            {
                _pausedWhile = $"primary {NameOf(node)} was removed";
                _log.Error("[{0}] primary {1} was removed from the cluster, and recovery is paused: no successor is elected until " +
                    "recovery is resumed (the standbys keep the checkpoint and the log)", _app, NameOf(node));
                _primary = null;
            }
            else if (node == _primary?.Node)
            {
                _log.Warning("[{0}] primary {1} was removed from the cluster: electing a successor", _app, NameOf(node));
                _primary = null;
                Self.Tell(new Reconcile($"primary {NameOf(node)} removed"));
                Become(Deciding);
            }
            else if (_standbys.Remove(node))
            {
                _log.Info("[{0}] standby {1} was removed", _app, NameOf(node));
                TellPrimaryStandbys();
            }
        });
        Receive<OwnerProtocol.TookOver>(t =>
        {
            if (t.Epoch != _epoch) return;
            _lastSwitch = t.Switch;
            // Every data node keeps the switch on disk, so the history outlives this owner and any single node.
            foreach (var m in UpDataMembers()) AppActorOn(m.Address).Tell(new OwnerProtocol.RecordSwitch(_app, t.Switch));
            _failedTakeover.Clear();
            _alarm = null;
            _restartAt = null;
            _log.Info("[{0}] {1} is primary of epoch {2} ({3} packets replayed)", _app, NameOf(t.Node), t.Epoch, t.Switch.PacketsReplayed);
        });
        Receive<OwnerProtocol.TakeoverFailed>(f =>
        {
            if (f.Epoch != _epoch) return;
            _alarm = $"takeover by {NameOf(f.Node)} failed: {f.Reason}";
            _log.Error("[{0}] {1}", _app, _alarm);
            _failedTakeover.Add(f.Node);
            _primary = null;
            Self.Tell(new Reconcile("takeover failed"));
            Become(Deciding);
        });
        Receive<OwnerProtocol.ProgramFailed>(OnProgramFailed);
        Receive<OwnerProtocol.JournalFailed>(f =>
        {
            // A primary keeps no packet log: a report from its standby days is late news.
            if (f.Node == _primary?.Node) return;
            NoteJournalFailure(f.Node, f.Reason);
        });
        Receive<OwnerProtocol.JournalRecovered>(r =>
        {
            if (!_journalFailed.Remove(r.Node)) return;
            _log.Info("[{0}] the journal of {1} works again: it rejoins as a standby (not ready, and not elected, until a fresh " +
                "checkpoint reaches it)", _app, NameOf(r.Node));
            // Through the same status query as a joining node: what the node says now is what counts.
            Self.Tell(new AskJoined(Address.Parse(r.Node), 0, Rejoin: true));
        });
        Receive<OwnerProtocol.Started>(st =>
        {
            if (st.Epoch != _epoch) return;
            _restartAt = null;
            _failedTakeover.Clear();
            _log.Info("[{0}] the program runs on {1} (epoch {2})", _app, NameOf(st.Node), st.Epoch);
        });
        Receive<OwnerProtocol.GetOwnerView>(_ => Sender.Tell(View()));
        Receive<AppsProtocol.CheckpointNow>(_ =>
        {
            if (_primary is null) { Sender.Tell(new AppsProtocol.Rejected(_app, "no primary")); return; }
            _primary.AppActor.Forward(new AppActorProtocol.CheckpointNow(_app));
        });
        Receive<AppsProtocol.Switch>(OnSwitch);
        Receive<AppsProtocol.PauseRecovery>(OnPauseRecovery);
        Receive<SwitchReleased>(OnSwitchReleased);
        Receive<SwitchFailed>(f => f.ReplyTo.Tell(new AppsProtocol.Rejected(_app, f.Reason)));
        Receive<Reconcile>(r => { Become(Deciding); Self.Tell(r); });
        Receive<RebalanceTick>(_ => OnRebalanceTick());
        Receive<SuperviseTick>(_ =>
        {
            if (_primary is null || _gaveUp) return;
            GatherFacts(forRebalance: false);
        });
        Receive<Facts>(f =>
        {
            if (f.ForRebalance) OnRebalanceFacts(f);
            else
            {
                OnStandbyLagFacts(f);
                if (_supervision.MinFreeDiskPercent > 0) OnSupervisionFacts(f);
            }
        });
        Receive<LagDropAnswered>(OnLagDropAnswered);
        // The replies to a switch this owner asked of itself (rebalancing, or a resource rule).
        Receive<AppsProtocol.SwitchStarted>(st => _log.Info("[{0}] {1} takes over from {2} (epoch {3})", _app, st.To, st.From, st.Epoch));
        Receive<AppsProtocol.Rejected>(r => _log.Warning("[{0}] move not made: {1}", _app, r.Reason));
    }

    private void OnPauseRecovery(AppsProtocol.PauseRecovery p)
    {
        var changed = p.Pause != _recoveryPaused;
        _recoveryPaused = p.Pause;
        foreach (var m in UpDataMembers()) AppActorOn(m.Address).Tell(new OwnerProtocol.SetRecoveryPaused(_app, p.Pause));
        Sender.Tell(new AppsProtocol.RecoveryPaused(_app, p.Pause, changed));
        if (!changed) return;
        if (p.Pause)
        {
            _log.Warning("[{0}] automatic recovery paused: a lost primary is not replaced, a failed program not restarted, nothing " +
                "rebalanced, until it is resumed; capture, log and checkpoints go on", _app);
            return;
        }
        var missed = _pausedWhile;
        _pausedWhile = null;
        _log.Info("[{0}] automatic recovery resumed{1}", _app, missed is null ? "" : $" ({missed} meanwhile: deciding now)");
        // Whatever happened meanwhile (a primary lost, a program failed) is decided now, from what the nodes hold.
        if (_primary is null) { Self.Tell(new Reconcile("recovery resumed")); Become(Deciding); }
    }

    /// <summary>
    /// The resource rule for the primary's disk: a primary whose state file system is nearly full cannot write the
    /// checkpoints that keep its standbys useful (and its program may fail next). With on-disk-full = switch it moves,
    /// by a planned switch (no loss), to a standby with room; otherwise, or with no such standby, it raises an alarm.
    /// </summary>
    private void OnSupervisionFacts(Facts f)
    {
        if (f.Epoch != _epoch || _primary is null) return;
        var primary = f.Nodes.FirstOrDefault(n => n.Node == _primary.Node);
        var min = _supervision.MinFreeDiskPercent;
        if (primary?.DiskFreePercent is not { } free || free >= min)
        {
            if (_resourceAlarm is not null && primary is not null)
                _log.Info("[{0}] the disk of {1} has room again ({2:0.#}% free)", _app, NameOf(primary.Node), primary.DiskFreePercent);
            if (primary is not null) _resourceAlarm = null;
            return;
        }
        var problem = $"the disk of primary {NameOf(primary.Node)} has {free:0.#}% free, below min-free-disk-percent = {min:0.#}";
        var roomy = f.Nodes.Where(n => _standbys.ContainsKey(n.Node) && n.Role == AppRole.Standby && n.Epoch == _epoch
                                       && n.JournalFailure is null && n.LogComplete && n.DiskFreePercent is { } d && d >= min).ToList();
        if (_supervision.OnDiskFull == DiskFullAction.Alarm || roomy.Count == 0 || _recoveryPaused)
        {
            var alarm = problem + (_supervision.OnDiskFull == DiskFullAction.Alarm ? " (on-disk-full = alarm): free space on it"
                : _recoveryPaused ? "; recovery is paused, so it stays: free space on it or resume recovery"
                : "; no standby with room to switch to: free space on a node");
            if (alarm != _resourceAlarm) _log.Error("[{0}] {1}", _app, alarm);
            _resourceAlarm = alarm;
            return;
        }
        if (DateTimeOffset.UtcNow - _lastMove < _supervision.CheckInterval) return;
        var target = Place(roomy, f.Serving);
        _resourceAlarm = $"{problem}: switching to {target.NodeName}";
        _log.Error("[{0}] {1}", _app, _resourceAlarm);
        _lastMove = DateTimeOffset.UtcNow;
        Self.Tell(new AppsProtocol.Switch(_app, target.Node, $"supervision: {problem}"));
    }

    /// <summary>
    /// The rule for a standby whose journal falls behind: the primary releases a packet only once every standby logged it,
    /// so one slow standby keeps the program from its input. Beyond max-standby-lag (the primary's own figures, asked by
    /// the supervision tick) the owner, the one who decides who is a standby, drops it (on-standby-lag = drop) or raises
    /// an alarm. A drop is a configuration change like the one made for a failed journal, not a local timeout: the node is
    /// told first and answers once it noted (on disk) that its log will miss packets, so it is never elected with that log;
    /// only then does the primary stop waiting for it. It is added back once its log has written everything it received,
    /// through the same path as any standby added mid-epoch: the primary resumes its stream (StreamFrom), its log marks the
    /// hole, and it is not elected until a checkpoint covering the hole reached it.
    /// </summary>
    private void OnStandbyLagFacts(Facts f)
    {
        if (f.Epoch != _epoch || _primary is null) return;
        var now = DateTimeOffset.UtcNow;
        foreach (var n in f.Nodes.Where(n => _lagging.ContainsKey(n.Node)).ToList())
        {
            if (n.JournalFailure is not null || n.LogBacklog > 0 || n.Role != AppRole.Standby) continue;
            // Held out for one check at least: a standby that lags again at once would otherwise stall the primary every tick.
            if (now - _lagging[n.Node].Since < _supervision.CheckInterval) continue;
            _lagging.Remove(n.Node);
            if (!AddStandby(n)) continue;
            _log.Warning("[{0}] standby {1} has written all it received: added back (its stream resumes where the primary is; it is " +
                "not elected until a checkpoint covers the packets it missed)", _app, n.NodeName);
            n.AppActor.Tell(new OwnerProtocol.BecomeStandby(_app, _epoch, _primary.Node));
            TellPrimaryStandbys();
        }

        if (!_supervision.WatchesStandbyLag || f.Nodes.FirstOrDefault(n => n.Node == _primary.Node)?.Lags is not { } lags) return;
        foreach (var node in _lagAlarms.Keys.Where(k => !_standbys.ContainsKey(k)).ToList()) _lagAlarms.Remove(node);
        foreach (var lag in lags)
        {
            if (!_standbys.TryGetValue(lag.Node, out var standby)) continue;
            if (_supervision.Exceeded(lag) is not { } why)
            {
                if (_lagAlarms.Remove(lag.Node)) _log.Info("[{0}] standby {1} keeps up again", _app, NameOf(lag.Node));
                continue;
            }
            if (_supervision.OnStandbyLag == StandbyLagAction.Alarm)
            {
                var alarm = $"standby {NameOf(lag.Node)} lags: {why} (on-standby-lag = alarm): the primary holds the program's input for it";
                if (!_lagAlarms.ContainsKey(lag.Node)) _log.Error("[{0}] {1}", _app, alarm);
                _lagAlarms[lag.Node] = alarm;
                continue;
            }
            if (!_dropping.Add(lag.Node)) continue;
            var (node, epoch) = (lag.Node, _epoch);
            standby.AppActor.Ask<OwnerProtocol.StandbyDropped>(new OwnerProtocol.DropStandby(_app, epoch, why), _askTimeout)
                .ContinueWith(t => new LagDropAnswered(node, epoch, why, t.IsCompletedSuccessfully)).PipeTo(Self);
        }
    }

    private void OnLagDropAnswered(LagDropAnswered a)
    {
        _dropping.Remove(a.Node);
        if (a.Epoch != _epoch || !_standbys.ContainsKey(a.Node)) return;
        if (!a.Answered)
        {
            // Dropping it without its word could let a later election pick its short log: wait (membership may remove it).
            _lagAlarms[a.Node] = $"standby {NameOf(a.Node)} lags: {a.Why}, and did not answer being dropped: the primary keeps " +
                "holding the program's input for it";
            _log.Error("[{0}] {1}", _app, _lagAlarms[a.Node]);
            return;
        }
        _standbys.Remove(a.Node);
        _lagAlarms.Remove(a.Node);
        _lagging[a.Node] = (a.Why, DateTimeOffset.UtcNow);
        TellPrimaryStandbys();
        _log.Error("[{0}] standby {1} dropped: {2}. The primary no longer waits for it; it is added back once its journal caught " +
            "up, and not elected until a checkpoint covers what it missed.{3}", _app, NameOf(a.Node), a.Why,
            _standbys.Count == 0 ? " No standby is left: the application runs unprotected." : "");
    }

    private void OnRebalanceTick()
    {
        // A cluster that is changing gets no planned moves: the membership decision comes first.
        if (_primary is null || _gaveUp || _recoveryPaused || DateTimeOffset.UtcNow - _lastMove < _placement.Interval || !_cluster.State.Unreachable.IsEmpty)
            return;
        GatherFacts(forRebalance: true);
    }

    private void GatherFacts(bool forRebalance)
    {
        var epoch = _epoch;
        AskAll(UpDataMembers().Select(m => m.Address).ToList())
            .ContinueWith(t => new Facts(forRebalance, epoch, t.Result.Nodes, t.Result.Serving)).PipeTo(Self);
    }

    private void OnRebalanceFacts(Facts f)
    {
        if (f.Epoch != _epoch || _primary is null || !f.Serving.TryGetValue(_primary.Node, out var servedHere)) return;
        // Another application is moving: its move changes the loads this one would weigh.
        if (f.Serving.Values.SelectMany(a => a).Any(a => a.Role is AppRole.TakingOver or AppRole.Releasing)) return;
        var current = new PlacementCandidate(_primary.Node, NameOf(_primary.Node), servedHere.Count);
        var standbys = f.Nodes
            .Where(n => _standbys.ContainsKey(n.Node) && n.Role == AppRole.Standby && n.Epoch == _epoch && n.JournalFailure is null
                        && n.LogComplete && f.Serving.ContainsKey(n.Node)
                        // Never onto a disk the resource rule would move it away from again.
                        && !(n.DiskFreePercent < _supervision.MinFreeDiskPercent))
            .Select(n => new PlacementCandidate(n.Node, n.NodeName, f.Serving[n.Node].Count)).ToList();
        var move = PlacementPolicy.RebalanceTarget(_app, current, standbys, servedHere.Select(a => a.App).ToList(), _placement);
        if (move is null) return;
        _lastMove = DateTimeOffset.UtcNow;
        Self.Tell(new AppsProtocol.Switch(_app, move.Target.Node, move.Reason));
    }

    private void OnSwitch(AppsProtocol.Switch s)
    {
        var target = _standbys.Values.FirstOrDefault(x => x.Node == s.ToNode || NameOf(x.Node) == s.ToNode);
        if (_primary is null || target is null)
        {
            Sender.Tell(new AppsProtocol.Rejected(_app, _primary is null ? "no primary" : $"{s.ToNode} is not a standby of {_app}"));
            return;
        }
        var replyTo = Sender;
        _log.Info("[{0}] {1}: {2} -> {3}", _app, s.Reason, NameOf(_primary.Node), NameOf(target.Node));
        _primary.AppActor.Ask<object>(new OwnerProtocol.Release(_app, _epoch), TimeSpan.FromSeconds(90))
            .ContinueWith(t => t.IsCompletedSuccessfully && t.Result is OwnerProtocol.Released r
                ? new SwitchReleased(replyTo, target, r, s.Reason)
                : (object)new SwitchFailed(replyTo, t.IsCompletedSuccessfully && t.Result is OwnerProtocol.Failed f
                    ? f.Reason : "the primary did not release in time"))
            .PipeTo(Self);
        // No other decision while the primary releases: it is neither serving nor replaceable meanwhile.
        Become(Switching);
    }

    private void Switching()
    {
        Receive<SwitchReleased>(r => { OnSwitchReleased(r); Become(Decided); Stash.UnstashAll(); });
        Receive<SwitchFailed>(f =>
        {
            f.ReplyTo.Tell(new AppsProtocol.Rejected(_app, f.Reason));
            Become(Decided);
            Stash.UnstashAll();
        });
        Receive<OwnerProtocol.GetOwnerView>(_ => Sender.Tell(View()));
        Receive<RebalanceTick>(_ => { }); // a move is only weighed when no decision is in flight
        Receive<SuperviseTick>(_ => { });
        ReceiveAny(_ => Stash.Stash());
    }

    private OwnerProtocol.OwnerView View() => new(_app, _epoch, _primary?.Node, _primary?.AppActor,
        _standbys.Values.ToList(), _lastSwitch, Alarm(), _gaveUp, _recoveryPaused);

    /// <summary>
    /// A node's journal failed: it is dropped from the standbys now, and the primary is told its new standby list, so it
    /// releases what the remaining standbys acknowledged. This is the membership decision the safety rule asks for (the
    /// node itself reported it cannot log any more), not a local timeout: every remaining standby still holds every
    /// packet released from now on, and the dropped node is kept out of elections.
    /// </summary>
    private void NoteJournalFailure(string node, string reason)
    {
        var isNew = !_journalFailed.ContainsKey(node);
        _journalFailed[node] = reason;
        var wasStandby = _standbys.Remove(node);
        if (wasStandby) TellPrimaryStandbys();
        if (isNew || wasStandby)
            _log.Error("[{0}] standby {1} dropped: its journal failed: {2}. The primary no longer waits for it; it is not " +
                "elected until its journal works again and a fresh checkpoint reaches it.", _app, NameOf(node), reason);
    }

    /// <summary>A failure of the program (its node already stopped serving): start it again after a back-off, or give up.</summary>
    private void OnProgramFailed(OwnerProtocol.ProgramFailed f)
    {
        // Only the primary of the current epoch runs the program; anything else is a late report.
        if (f.Epoch != _epoch || _primary is null || _primary.Node != f.Node) return;
        if (_recoveryPaused)
        {
            _pausedWhile = $"the program failed on {NameOf(f.Node)}: {f.Reason.TrimEnd('.', ' ')}";
            _log.Error("[{0}] {1}; recovery is paused: it is not started again until recovery is resumed", _app, _pausedWhile);
            _primary = null;
            return;
        }
        var now = DateTimeOffset.UtcNow;
        _failures.RemoveAll(x => now - x.At > _restarts.Window);
        _failures.Add((now, $"{NameOf(f.Node)}: {f.Reason.TrimEnd('.', ' ')}"));
        // Its successor is elected among the others first; the node stays a standby.
        _failedTakeover.Add(f.Node);
        _primary = null;

        if (_failures.Count > _restarts.MaxRestarts)
        {
            _gaveUp = true;
            _restartAt = null;
            Timers.Cancel("restart");
            _log.Error("[{0}] {1}", _app, ProgramAlarm());
            return;
        }
        var delay = _restarts.DelayBefore(_failures.Count);
        _restartAt = now + delay;
        _log.Error("[{0}] {1}", _app, ProgramAlarm());
        Timers.StartSingleTimer("restart", new Reconcile($"restart {_failures.Count} after the program failed on {NameOf(f.Node)}"), delay);
    }

    /// <summary>What the management view shows: the program's alarm, then every dropped standby.</summary>
    private string? Alarm()
    {
        var paused = !_recoveryPaused ? null
            : _pausedWhile is { } missed ? $"recovery paused and {missed}: nothing is done until 'continuity-cmd app resume {_app}'"
            : null;
        var parts = new[] { paused, ProgramAlarm(), _resourceAlarm }
            .Concat(_journalFailed.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => $"standby {NameOf(kv.Key)} dropped: its journal failed: {kv.Value}"))
            .Concat(_lagging.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => $"standby {NameOf(kv.Key)} dropped: its journal lagged: {kv.Value.Why}; it is added back once its " +
                              "log has caught up, and not elected until a checkpoint covers what it missed"))
            .Concat(_lagAlarms.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value))
            .Where(p => p is not null).ToList();
        return parts.Count == 0 ? null : string.Join("; ", parts);
    }

    /// <summary>The program's failures first, then any other alarm.</summary>
    private string? ProgramAlarm()
    {
        var now = DateTimeOffset.UtcNow;
        if (!_gaveUp) _failures.RemoveAll(x => now - x.At > _restarts.Window);
        if (_failures.Count == 0) return _alarm;
        var last = _failures[^1].Reason;
        var window = ConfigWindow(_restarts.Window);
        if (_gaveUp)
            return $"failed: {last}; stopped after {_failures.Count} failure(s) within {window} (max-restarts = {_restarts.MaxRestarts}): " +
                "nothing is started again until a data node joins; fix the cause, then restart continuity-node on a data node";
        if (_restartAt is { } at)
            return $"{last}; starting it again in {Math.Max(0, (at - now).TotalSeconds):0.#} s (restart {_failures.Count} of {_restarts.MaxRestarts} within {window})";
        return $"{last}; started again (restart {_failures.Count} of {_restarts.MaxRestarts} within {window})";
    }

    private static string ConfigWindow(TimeSpan t) =>
        t.TotalMinutes >= 1 && t.TotalMinutes == Math.Floor(t.TotalMinutes) ? $"{t.TotalMinutes}m" : $"{t.TotalSeconds}s";

    private void OnSwitchReleased(SwitchReleased r)
    {
        var old = _primary!;
        if (!_standbys.ContainsKey(r.Target.Node))
        {
            // The target left while the primary was releasing: elect among what is left (the final checkpoint is everywhere).
            r.ReplyTo.Tell(new AppsProtocol.Rejected(_app, "the target left during the switch; electing another node"));
            _primary = null;
            Self.Tell(new Reconcile("switch target left"));
            return;
        }
        _epoch++;
        _standbys.Remove(r.Target.Node);
        _standbys[old.Node] = old;
        _primary = r.Target;
        var standbys = _standbys.Values.ToList();
        _lastMove = DateTimeOffset.UtcNow;
        r.Target.AppActor.Tell(new OwnerProtocol.TakeOver(_app, _epoch, standbys, true, old.Node, r.Reason));
        foreach (var s in standbys) s.AppActor.Tell(new OwnerProtocol.BecomeStandby(_app, _epoch, r.Target.Node));
        r.ReplyTo.Tell(new AppsProtocol.SwitchStarted(_app, NameOf(old.Node), NameOf(r.Target.Node), _epoch));
    }

    private const string NoNodeAnswers = "no data node answers";

    private void Decide(Statuses s)
    {
        // Nodes answer again: the alarm of a decision that heard none is over (it outlived the start it delayed).
        if (s.Nodes.Count > 0 && _alarm == NoNodeAnswers) _alarm = null;
        foreach (var n in s.Nodes)
        {
            _names[n.Node] = n.NodeName;
            // A node serving the program keeps no standby log: its failed journal matters once it is a standby again.
            if (n.JournalFailure is { } broken && n.Role is not (AppRole.Primary or AppRole.TakingOver)) _journalFailed[n.Node] = broken;
            else _journalFailed.Remove(n.Node);
        }
        // The nodes remember a pause the owner's previous incarnation was asked for.
        if (s.Nodes.Any(n => n.RecoveryPaused)) _recoveryPaused = true;
        var maxEpoch = s.Nodes.Select(n => n.Epoch).DefaultIfEmpty(0).Max();
        _epoch = Math.Max(_epoch, maxEpoch);
        _standbys.Clear();

        // 1. A node already serves (or is becoming primary) at the newest epoch: adopt it.
        var serving = s.Nodes.Where(n => n.Epoch == maxEpoch && n.Role is AppRole.Primary or AppRole.TakingOver)
            .OrderBy(n => n.Node, StringComparer.Ordinal).FirstOrDefault();
        if (serving is not null && maxEpoch > 0)
        {
            _primary = new StandbyRef(serving.Node, serving.AppActor);
            foreach (var n in s.Nodes.Where(n => n.Node != serving.Node)) MakeStandby(n);
            TellPrimaryStandbys();
            _log.Info("[{0}] {1}: {2} is primary of epoch {3}", _app, s.Reason, NameOf(serving.Node), _epoch);
            return;
        }
        if (s.Nodes.Count == 0)
        {
            _primary = null;
            _alarm = NoNodeAnswers;
            _log.Warning("[{0}] {1}: no data node available", _app, s.Reason);
            Timers.StartSingleTimer("retry", new Reconcile("retry"), TimeSpan.FromSeconds(2));
            return;
        }

        if (_recoveryPaused)
        {
            // Nobody serves and an operator paused recovery: the nodes keep what they hold until it is resumed.
            _primary = null;
            _pausedWhile ??= maxEpoch > 0 ? $"no primary serves epoch {maxEpoch}" : "the application was never started";
            foreach (var n in s.Nodes) AddStandby(n);
            _log.Warning("[{0}] {1}: recovery is paused, nothing is started ({2})", _app, s.Reason, _pausedWhile);
            return;
        }

        if (_gaveUp)
        {
            // Stopped for failing: nothing starts; the nodes keep what they hold for when it is started again.
            _primary = null;
            foreach (var n in s.Nodes) AddStandby(n);
            _log.Warning("[{0}] {1}: not started, the application is stopped for failing ({2})", _app, s.Reason, _failures.LastOrDefault().Reason);
            return;
        }

        // A node whose journal failed, or whose log still misses packets, is no successor: replaying its log would skip
        // packets the program already consumed. If such nodes are all that holds a checkpoint, nothing is started (a fresh
        // start would throw the state away): the owner waits until one of them is whole again.
        bool Electable(OwnerProtocol.NodeStatus n) => n.JournalFailure is null && n.LogComplete;
        if (!s.Nodes.Any(n => n.Newest is not null && Electable(n) && !_failedTakeover.Contains(n.Node)) &&
            s.Nodes.Any(n => n.Newest is not null && !Electable(n)))
        {
            _primary = null;
            _alarm = "no node can take over without loss: " + string.Join(", ", s.Nodes.Where(n => n.Newest is not null && !Electable(n))
                .Select(n => $"{n.NodeName} " + (n.JournalFailure is { } j ? $"(its journal failed: {j})" : "(its log misses packets until a fresh checkpoint)"))) +
                "; waiting for a node whose log is complete";
            _log.Error("[{0}] {1}: {2}", _app, s.Reason, _alarm);
            foreach (var n in s.Nodes) AddStandby(n);
            Timers.StartSingleTimer("retry", new Reconcile("retry: waiting for a complete log"), TimeSpan.FromSeconds(2));
            return;
        }

        _epoch++;
        _lastMove = DateTimeOffset.UtcNow;
        // 2. Someone holds a checkpoint: the newest checkpoint with the longest log after it wins (least to replay-lose).
        // Placement only chooses among nodes that tie on both: a node the owner once failed to hear from may have been
        // left out of the standbys for a while, and its shorter log is then missing packets the program consumed.
        var electable = s.Nodes.Where(n => n.Newest is not null && Electable(n) && !_failedTakeover.Contains(n.Node)).ToList();
        var rank = Comparer<OwnerProtocol.NodeStatus>.Create(Rank);
        var top = electable.OrderByDescending(n => n, rank).FirstOrDefault();
        if (top is not null)
        {
            var best = Place(electable.Where(n => rank.Compare(n, top) == 0).ToList(), s.Serving);
            _primary = new StandbyRef(best.Node, best.AppActor);
            foreach (var n in s.Nodes.Where(n => n.Node != best.Node)) MakeStandby(n);
            var standbys = _standbys.Values.ToList();
            _log.Warning($"[{_app}] {s.Reason}: {NameOf(best.Node)} takes over at epoch {_epoch} from checkpoint " +
                $"{best.Newest!.Id} (mark {best.Newest.Mark}, log to {best.LogTail})");
            // The trigger alone can mislead ("owner started" when the singleton moved with a crashed primary).
            var reason = maxEpoch > 0 ? $"{s.Reason}: no primary serves epoch {maxEpoch}" : s.Reason;
            best.AppActor.Tell(new OwnerProtocol.TakeOver(_app, _epoch, standbys, false, null, reason));
            return;
        }

        // 3. Nobody has anything (first start, or every checkpoint lost): start the program fresh on the first data node.
        if (maxEpoch > 0) _alarm = "no checkpoint survived: the program was started fresh (its state is lost)";
        // A node where the program just failed comes last (its own files or PATH may be what is wrong).
        var healthy = s.Nodes.Where(n => !_failedTakeover.Contains(n.Node) && n.JournalFailure is null).ToList();
        var first = healthy.Count > 0
            ? Place(healthy, s.Serving)
            : s.Nodes.OrderBy(n => n.JournalFailure is not null).ThenBy(n => n.Node, StringComparer.Ordinal).First();
        _primary = new StandbyRef(first.Node, first.AppActor);
        foreach (var n in s.Nodes.Where(n => n.Node != first.Node)) MakeStandby(n);
        _log.Info("[{0}] {1}: starting on {2} as primary of epoch {3}", _app, s.Reason, NameOf(first.Node), _epoch);
        first.AppActor.Tell(new OwnerProtocol.BecomePrimary(_app, _epoch, _standbys.Values.ToList()));
    }

    /// <summary>The node placement puts this application's primary on, among <paramref name="nodes"/> (not empty).</summary>
    private OwnerProtocol.NodeStatus Place(IReadOnlyList<OwnerProtocol.NodeStatus> nodes,
        IReadOnlyDictionary<string, IReadOnlyList<PlacementProtocol.ServedApp>> serving)
    {
        var candidates = nodes.Select(n => new PlacementCandidate(n.Node, n.NodeName,
            serving.TryGetValue(n.Node, out var apps) ? apps.Count(a => a.App != _app) : 0)).ToList();
        var chosen = PlacementPolicy.Order(candidates, _placement.PreferOf(_app), _appIndex)[0];
        return nodes.First(n => n.Node == chosen.Node);
    }

    /// <summary>Newer checkpoint first; for the same checkpoint, the longer log after it.</summary>
    private static int Rank(OwnerProtocol.NodeStatus a, OwnerProtocol.NodeStatus b)
    {
        var c = CheckpointInfo.Compare(a.Newest, b.Newest);
        return c != 0 ? c : LogAfter(a).CompareTo(LogAfter(b));
    }

    private static long LogAfter(OwnerProtocol.NodeStatus n) =>
        n.Newest is { } cp && n.LogEpoch == cp.Epoch ? Math.Max(n.LogTail, cp.Mark) : n.Newest?.Mark ?? 0;

    private void MakeStandby(OwnerProtocol.NodeStatus n)
    {
        if (!AddStandby(n)) return;
        n.AppActor.Tell(new OwnerProtocol.BecomeStandby(_app, _epoch, _primary!.Node));
    }

    /// <summary>False for a node whose journal failed: it could acknowledge nothing, so the primary must not wait for it.</summary>
    private bool AddStandby(OwnerProtocol.NodeStatus n)
    {
        _names[n.Node] = n.NodeName;
        if (n.JournalFailure is not null) return false;
        // Dropped for lagging and still writing what it had received: not yet (the supervision tick adds it back).
        if (n.Behind is { } why && n.LogBacklog > 0)
        {
            if (!_lagging.ContainsKey(n.Node)) _lagging[n.Node] = (why, DateTimeOffset.UtcNow);
            return false;
        }
        _lagging.Remove(n.Node);
        _standbys[n.Node] = new StandbyRef(n.Node, n.AppActor);
        return true;
    }

    private void TellPrimaryStandbys() =>
        _primary?.AppActor.Tell(new OwnerProtocol.SetStandbys(_app, _epoch, _standbys.Values.ToList()));

    private string NameOf(string node) => _names.TryGetValue(node, out var n) ? n : node;
}
