using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.Event;
using Continuity.Core.Apps;
using Continuity.Core.Membership;
using Continuity.Core.Supervision;
using Continuity.Linux;
using Continuity.Linux.Supervision;
using Continuity.Node.Management;

namespace Continuity.Node.Hosting;

/// <summary>
/// One Continuity node: an Akka.Cluster member plus its management endpoint. Seed or member is
/// decided by the HOCON alone (a node whose own address is the first seed forms the cluster).
/// </summary>
public sealed class NodeHost : IAsyncDisposable
{
    public const string SystemName = "continuity";

    private readonly HostSettings _settings;
    private ManagementServer? _management;
    private Linux.Netfilter.ClosingPortGuard? _closingPort;
    private readonly TaskCompletionSource _terminated = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ActorSystem System { get; }
    public HostSettings Settings => _settings;

    private NodeHost(HostSettings settings, ActorSystem system)
    {
        _settings = settings;
        System = system;
    }

    public static async Task<NodeHost> StartAsync(HostSettings settings, CancellationToken ct = default)
    {
        // Before the ActorSystem exists: the journal plugin must find its SQLite files already root-only.
        Core.Security.RootOnly.PrepareStateDir(settings.StateDir,
            sqliteJournal: settings.AkkaConfig.GetString(Core.Log.JournalBackend.BackendKey, "sqlite") == "sqlite");

        var config = ContinuityApps.PersistenceConfig(settings.AkkaConfig, settings.StateDir).WithFallback(settings.AkkaConfig);
        var system = ActorSystem.Create(SystemName, (settings.ClusterTls ?? ClusterTlsOptions.Off).Setup(config));
        var host = new NodeHost(settings, system);
        system.WhenTerminated.ContinueWith(_ =>
        {
            // Once remoting is closed the kernel refuses the port by itself: the refusal must not outlive the node, or a
            // later process on the same port (a test's, another node's) would be refused.
            host._closingPort?.Clear();
            host._terminated.TrySetResult();
        });

        var log = Akka.Event.Logging.GetLogger(system, "continuity.node");
        var cluster = Akka.Cluster.Cluster.Get(system);
        log.Info("node {0} starting: address {1}, roles [{2}], seeds [{3}], {4}",
            settings.NodeName, cluster.SelfAddress, string.Join(", ", settings.Roles), string.Join(", ", settings.SeedNodes),
            settings.ClusterTls is { Enabled: true } tls
                ? $"node-to-node TLS with the cluster certificate {tls.CertificateFile} (thumbprint {tls.Certificate!.Thumbprint[..8]}...)"
                : "node-to-node traffic IN CLEAR (continuity.cluster-tls.enabled = off)");

        if (settings.ClusterTls is { Enabled: true } && cluster.SelfAddress.Port is { } port)
            host._closingPort = GuardClosingPort(system, port, log);

        if (settings.SeedNodes.Count == 0)
            log.Warning("akka.cluster.seed-nodes is empty: this node will wait to be joined by 'continuity-cmd cluster join'. Set seed-nodes in {0} to join automatically.", settings.ConfigPath);

        system.ActorOf(Props.Create(() => new JoinWatchdog(settings.SeedNodes, settings.JoinTimeout)), "join-watchdog");

        // Every member vouches for the others (witnesses too: they are part of the majority a primary needs).
        var fencing = settings.Fencing ?? Core.Fencing.FencingSettings.Default;
        if (fencing.Enabled) system.ActorOf(Core.Fencing.LeaseKeeper.Props(fencing), Core.Fencing.LeaseKeeper.Name);
        else log.Warning("continuity.fencing.enabled = off: a primary the cluster gave up on keeps its VIP live until it learns it was downed");

        IActorRef? apps = null;
        if (settings.Apps.Count > 0 && settings.Roles.Contains("data"))
        {
            var appLog = Akka.Event.Logging.GetLogger(system, "continuity.apps");
            var platform = LinuxPlatform.Create(line => appLog.Info(line), (pid, line) => appLog.Info("[program {0}] {1}", pid, line),
                fencing: fencing.Enabled);
            if (Linux.Failpoints.FileFailpoints.FromEnvironment() is { } failpoints)
            {
                log.Warning("fail points are enabled ({0} = {1}): a file there stops this node on purpose; for fault injection only",
                    Linux.Failpoints.FileFailpoints.EnvironmentVariable, failpoints.Directory);
                platform = platform with { Failpoints = failpoints };
            }
            apps = ContinuityApps.Start(system, settings.Apps, platform, settings.StateDir, settings.NodeName, settings.Placement, settings.ResourceRules);
            log.Info("protecting {0} application(s): {1}", settings.Apps.Count, string.Join(", ", settings.Apps.Select(a => $"{a.Name} (vip {a.Vip}, ports {string.Join(" ", a.Ports)})")));
        }
        else if (settings.Apps.Count > 0)
            log.Info("{0} application(s) declared, but this node has no \"data\" role: it only votes", settings.Apps.Count);

        // Every node (witnesses too) samples itself for the MIB; the management API asks every member's introspector.
        var sampledApps = apps is null ? [] : settings.Apps.Select(a => a.Name).ToList();
        system.ActorOf(NodeIntrospector.Props(settings.NodeName, cluster.SelfAddress.ToString(),
            new ProcNodeProbe(settings.StateDir), settings.Node.Sampling.SampleInterval, sampledApps,
            "/user/" + ContinuityApps.GuardianName), NodeIntrospector.Name);

        if (settings.ManagementEnabled)
        {
            var token = TokenFile.ReadOrCreate(settings.TokenFile);
            host._management = new ManagementServer(system, settings, token, apps);
            await host._management.StartAsync(ct);
            log.Info("management endpoint listening on {0}://{1} (token in {2}; audit trail in {3})", settings.ManagementApi?.Tls == true ? "https" : "http",
                settings.ManagementBind, settings.TokenFile, host._management.AuditLog.Path);
        }
        return host;
    }

    /// <summary>
    /// Just before remoting closes, new connections to the cluster port are refused, and in-flight handshakes are
    /// given a moment to finish: a peer whose TLS handshake is cut by the closing is shut down by Akka.NET (exit 79),
    /// and in the chaos runs that peer was the majority's last data node (see <see cref="Linux.Netfilter.ClosingPortGuard"/>).
    /// </summary>
    private static Linux.Netfilter.ClosingPortGuard GuardClosingPort(ActorSystem system, int port, ILoggingAdapter log)
    {
        var guard = new Linux.Netfilter.ClosingPortGuard(port);
        if (guard.Clear()) log.Info("removed the refusal of cluster connections on port {0} that an earlier run of this node left (it was killed as it shut down)", port);
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate, "refuse-cluster-connections", async () =>
        {
            try
            {
                guard.Refuse();
                log.Info("refusing new cluster connections on port {0} while remoting closes", port);
                await Task.Delay(HandshakeGrace);
            }
            catch (InvalidOperationException e)
            {
                log.Warning("could not refuse new cluster connections on port {0} ({1}): a peer dialling this node now may fail its TLS handshake", port, e.Message);
            }
            return Akka.Done.Instance;
        });
        return guard;
    }

    /// <summary>How long handshakes already under way get to finish before remoting closes.</summary>
    private static readonly TimeSpan HandshakeGrace = TimeSpan.FromMilliseconds(500);

    /// <summary>Completes when the actor system has terminated (left the cluster, downed, or stopped).</summary>
    public Task Terminated => _terminated.Task;

    /// <summary>Leaves the cluster gracefully (members see Leaving, Exiting, Removed: no failure detection wait).</summary>
    public Task LeaveAndStopAsync() =>
        CoordinatedShutdown.Get(System).Run(CoordinatedShutdown.ClrExitReason.Instance);

    public async ValueTask DisposeAsync()
    {
        if (_management is not null) await _management.DisposeAsync();
        await System.Terminate();
    }
}

/// <summary>
/// Akka keeps retrying unreachable seeds quietly; an operator needs to hear about it. This
/// actor says every few seconds which seeds it is still trying, and gives up after
/// continuity.node.join-timeout if one is set.
/// </summary>
internal sealed class JoinWatchdog : ReceiveActor, IWithTimers
{
    private sealed class Tick { public static readonly Tick Instance = new(); }

    private readonly DateTime _started = DateTime.UtcNow;
    public ITimerScheduler Timers { get; set; } = null!;

    public JoinWatchdog(IReadOnlyList<string> seeds, TimeSpan joinTimeout)
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var log = Context.GetLogger();
        cluster.RegisterOnMemberUp(() => Self.Tell(PoisonPill.Instance));

        Receive<Tick>(_ =>
        {
            if (cluster.SelfMember.Status == MemberStatus.Up) { Context.Stop(Self); return; }
            var waited = DateTime.UtcNow - _started;
            if (joinTimeout > TimeSpan.Zero && waited > joinTimeout)
            {
                log.Error("could not join the cluster within continuity.node.join-timeout = {0}: no seed of [{1}] answered. Check that a seed node runs and that its address is reachable from here; shutting down.",
                    joinTimeout, string.Join(", ", seeds));
                CoordinatedShutdown.Get(Context.System).Run(CoordinatedShutdown.ClusterJoinUnsuccessfulReason.Instance);
                return;
            }
            log.Warning("still joining after {0:F0} s: no seed of [{1}] has let this node in yet. Is a seed node running, and is akka.remote.dot-netty.tcp.hostname reachable from the seeds?",
                waited.TotalSeconds, string.Join(", ", seeds));
        });
    }

    protected override void PreStart() => Timers.StartPeriodicTimer("tick", Tick.Instance, TimeSpan.FromSeconds(10));
}
