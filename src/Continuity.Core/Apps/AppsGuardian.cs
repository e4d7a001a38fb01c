using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Event;
using Continuity.Core.Election;
using Continuity.Core.Placement;

namespace Continuity.Core.Apps;

/// <summary>
/// The per-node parent of everything Continuity runs for its applications: the app actor of every application
/// (data nodes only), the application's AppOwner singleton manager (data nodes only) and a proxy to it (every node,
/// so the management API of a witness node answers too). It also assembles the management view.
/// </summary>
public sealed class AppsGuardian : ReceiveActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IReadOnlyList<AppSpec> _apps;
    private readonly PlatformServices _platform;
    private readonly string _stateDir;
    private readonly string _nodeName;
    private readonly PlacementSettings _placement;
    private readonly Supervision.ResourceRules _supervision;
    private readonly Dictionary<string, IActorRef> _owners = new();
    private readonly Dictionary<string, IActorRef> _appActors = new();

    public AppsGuardian(IReadOnlyList<AppSpec> apps, PlatformServices platform, string stateDir, string nodeName, PlacementSettings placement,
        Supervision.ResourceRules supervision)
    {
        _supervision = supervision;
        _apps = apps;
        _platform = platform;
        _stateDir = stateDir;
        _nodeName = nodeName;
        _placement = placement;

        Receive<AppsProtocol.GetApps>(_ => BuildView().PipeTo(Sender));
        Receive<AppsProtocol.Switch>(s => ToOwner(s.App, s));
        Receive<AppsProtocol.CheckpointNow>(c => ToOwner(c.App, c));
        Receive<AppsProtocol.PauseRecovery>(p => ToOwner(p.App, p));
        Receive<PlacementProtocol.GetServing>(_ => Serving().PipeTo(Sender));
        Receive<AppsProtocol.GetSwitchHistory>(_ => SwitchHistory().PipeTo(Sender));
    }

    public static Props Props(IReadOnlyList<AppSpec> apps, PlatformServices platform, string stateDir, string nodeName,
        PlacementSettings? placement = null, Supervision.ResourceRules? supervision = null) =>
        Akka.Actor.Props.Create(() => new AppsGuardian(apps, platform, stateDir, nodeName, placement ?? PlacementSettings.Default,
            supervision ?? Supervision.ResourceRules.Default));

    protected override void PreStart()
    {
        var cluster = Cluster.Get(Context.System);
        var isData = cluster.SelfRoles.Contains(AppOwner.DataRole);
        var node = cluster.SelfAddress.ToString();
        // Set here: Akka.NET's settings ignore akka.cluster.singleton.removal-margin and fall back to the downing
        // provider's margin, which is stable-after (see ElectionSettings).
        var singletonSettings = ClusterSingletonManagerSettings.Create(Context.System)
            .WithRole(AppOwner.DataRole).WithSingletonName("owner")
            .WithRemovalMargin(ElectionSettings.OwnerRemovalMargin(Context.System.Settings.Config));
        var proxySettings = ClusterSingletonProxySettings.Create(Context.System)
            .WithRole(AppOwner.DataRole).WithSingletonName("owner");
        foreach (var app in _apps)
        {
            var appActorName = AppActorName(app.Name);
            if (isData)
            {
                var appDir = Path.Combine(_stateDir, "apps", app.Name);
                Security.RootOnly.CreateDirectory(appDir);
                _appActors[app.Name] = Context.ActorOf(AppActor.Props(app, _platform, node, _nodeName, appDir), appActorName);
                // Every node sorts the applications alike, so an application's index is the same on whichever node its owner runs.
                var index = _apps.Select(a => a.Name).Order(StringComparer.Ordinal).ToList().IndexOf(app.Name);
                Context.ActorOf(ClusterSingletonManager.Props(
                    AppOwner.Props(app.Name, Self.Path.ToStringWithoutAddress() + "/" + appActorName, app.Restarts, _placement, index, _supervision),
                    PoisonPill.Instance, singletonSettings), $"owner-{app.Name}");
            }
            _owners[app.Name] = Context.ActorOf(ClusterSingletonProxy.Props(
                Self.Path.ToStringWithoutAddress() + $"/owner-{app.Name}", proxySettings), OwnerProxyName(app.Name));
        }
        _log.Info("Continuity apps started on {0} ({1}): {2}", _nodeName, isData ? "data node" : "no data role",
            string.Join(", ", _apps.Select(a => a.Name)));
    }

    public static string AppActorName(string app) => $"app-{app}";

    /// <summary>Name of the proxy to <paramref name="app"/>'s owner singleton, a sibling of the app actor.</summary>
    public static string OwnerProxyName(string app) => $"owner-{app}-proxy";

    private void ToOwner(string app, object message)
    {
        if (_owners.TryGetValue(app, out var owner)) owner.Forward(message);
        else Sender.Tell(new AppsProtocol.Rejected(app, $"no application named '{app}'"));
    }

    /// <summary>The applications this node serves (or is becoming or ceasing to be primary of): the load placement weighs.</summary>
    private async Task<PlacementProtocol.Serving> Serving()
    {
        var node = Cluster.Get(Context.System).SelfAddress.ToString();
        var statuses = await Task.WhenAll(_appActors.Select(kv =>
            AskOrNull<OwnerProtocol.NodeStatus>(kv.Value, new OwnerProtocol.GetNodeStatus(kv.Key), TimeSpan.FromSeconds(3)))).ConfigureAwait(false);
        return new PlacementProtocol.Serving(node, statuses
            .Where(st => st is { Role: AppRole.Primary or AppRole.TakingOver or AppRole.Releasing })
            .Select(st => new PlacementProtocol.ServedApp(st!.App, st.Role)).ToList());
    }

    /// <summary>The switches every up data node keeps on disk, merged (one per application, epoch and time), oldest first.</summary>
    private async Task<AppsProtocol.SwitchHistory> SwitchHistory()
    {
        var cluster = Cluster.Get(Context.System);
        var members = cluster.State.Members.Where(m => m.Status == MemberStatus.Up && m.HasRole(AppOwner.DataRole)).ToList();
        var guardian = Self.Path.ToStringWithoutAddress();
        var asks = members.SelectMany(m => _apps.Select(a => (Member: m, App: a.Name, Reply: AskOrNull<OwnerProtocol.SwitchesKept>(
            Context.ActorSelection(m.Address + guardian + "/" + AppActorName(a.Name)), new OwnerProtocol.GetSwitchHistory(a.Name),
            TimeSpan.FromSeconds(3))))).ToList();
        await Task.WhenAll(asks.Select(x => x.Reply)).ConfigureAwait(false);
        var gaps = asks.Where(x => x.Reply.Result is null)
            .Select(x => $"{Membership.NodeNames.NameOf(x.Member)} did not answer: the switches of {x.App} only it kept are missing")
            .ToList();
        var merged = new Dictionary<(string, long, DateTimeOffset), AppsProtocol.AppSwitch>();
        foreach (var kept in asks.Select(x => x.Reply.Result).OfType<OwnerProtocol.SwitchesKept>())
            foreach (var s in kept.Switches)
                merged.TryAdd((kept.App, s.Epoch, s.At), new AppsProtocol.AppSwitch(kept.App, s));
        return new AppsProtocol.SwitchHistory(merged.Values.OrderBy(x => x.Switch.At).ToList(), gaps);
    }

    private static async Task<T?> AskOrNull<T>(ActorSelection to, object message, TimeSpan timeout) where T : class
    {
        try { return await to.Ask<T>(message, timeout).ConfigureAwait(false); }
        catch (Exception) { return null; }
    }

    private async Task<AppsView> BuildView()
    {
        var views = await Task.WhenAll(_apps.Select(a => BuildAppView(a.Name, _owners[a.Name]))).ConfigureAwait(false);
        return new AppsView(views);
    }

    private static async Task<AppView> BuildAppView(string app, IActorRef ownerProxy)
    {
        var timeout = TimeSpan.FromSeconds(3);
        OwnerProtocol.OwnerView owner;
        try { owner = await ownerProxy.Ask<OwnerProtocol.OwnerView>(new OwnerProtocol.GetOwnerView(app), timeout).ConfigureAwait(false); }
        catch (Exception) { return new AppView(app, 0, null, [], "unknown", null, 0, null, "the application's owner does not answer"); }

        var primaryTask = owner.Primary is { } p
            ? AskOrNull<AppActorProtocol.PrimaryStatus>(p, new AppActorProtocol.GetPrimaryStatus(app), timeout)
            : Task.FromResult<AppActorProtocol.PrimaryStatus?>(null);
        var standbyTasks = owner.Standbys
            .Select(s => AskOrNull<OwnerProtocol.NodeStatus>(s.AppActor, new OwnerProtocol.GetNodeStatus(app), timeout)).ToList();
        var primary = await primaryTask.ConfigureAwait(false);
        var standbyStatus = await Task.WhenAll(standbyTasks).ConfigureAwait(false);

        var standbys = owner.Standbys.Select((s, i) =>
        {
            var st = standbyStatus[i];
            // A log with a hole (it was added back after lagging, or joined mid-epoch) is no successor even with a
            // checkpoint of this epoch from before the hole: not ready until a checkpoint covers it.
            var ready = st?.LogComplete != false && ((primary?.Ready.Contains(s.Node) ?? false) || st?.Newest?.Epoch == owner.Epoch);
            return new StandbyView(s.Node, st?.NodeName ?? s.Node, ready, st?.LogDepth ?? 0, st?.Newest);
        }).ToList();
        var state = owner.Failed ? "failed"
            : owner.RecoveryPaused ? "paused"
            : owner.PrimaryNode is null ? "down"
            : primary is null ? "unknown"
            : primary.Role is AppRole.TakingOver or AppRole.Releasing ? "switching"
            : primary.Role != AppRole.Primary ? "switching"
            : standbys.Count(s => s.Ready) == 0 ? "unprotected"
            : standbys.All(s => s.Ready) ? "protected"
            : "degraded";
        return new AppView(app, owner.Epoch, owner.PrimaryNode, standbys, state, primary?.Last,
            standbys.Select(s => s.LogDepth).DefaultIfEmpty(0).Max(), NewerSwitch(owner.LastSwitch, primary?.LastSwitch),
            // Both: an owner's alarm (a lagging standby, say) must not hide the primary's (a standby refusing checkpoints).
            owner.Alarm is { } ownerAlarm && primary?.Alarm is { } primaryAlarm ? $"{ownerAlarm}; {primaryAlarm}" : owner.Alarm ?? primary?.Alarm);
    }

    /// <summary>
    /// The switch of the later epoch: a new primary serves (and is asked) before its report of the switch reaches the
    /// owner, and a view that shows it serving must not show the switch before as the last one.
    /// </summary>
    private static SwitchInfo? NewerSwitch(SwitchInfo? owners, SwitchInfo? primarys) =>
        primarys is not null && (owners is null || primarys.Epoch > owners.Epoch) ? primarys : owners;

    private static async Task<T?> AskOrNull<T>(IActorRef to, object message, TimeSpan timeout) where T : class
    {
        try { return await to.Ask<T>(message, timeout).ConfigureAwait(false); }
        catch (Exception) { return null; }
    }
}
