using Akka.Actor;
using Akka.Event;
using static Continuity.Core.Supervision.IntrospectionProtocol;

namespace Continuity.Core.Supervision;

/// <summary>
/// Samples this node every <c>continuity.supervision.sample-interval</c>: the OS figures through an
/// <see cref="INodeProbe"/>, and what each local app actor knows of its application. Answers
/// <see cref="GetMib"/> with the newest sample, so a question never waits for the OS or the app actors (except
/// before the first sample is complete).
/// </summary>
public sealed class NodeIntrospector : ReceiveActor, IWithTimers
{
    public const string Name = "continuity-introspection";

    private sealed record Sample;
    private sealed record Sampled(NodeMib Mib, CpuTicks? Ticks);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _nodeName;
    private readonly string _address;
    private readonly INodeProbe _probe;
    private readonly TimeSpan _interval;
    private readonly IReadOnlyList<string> _apps;
    private readonly string _appsPath;
    private readonly TimeSpan _appTimeout;
    private readonly List<IActorRef> _waiting = new();
    private CpuTicks? _previous;
    private NodeMib? _latest;
    private bool _sampling;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <param name="apps">The applications whose app actors run on this node (empty on a node without the data role).</param>
    /// <param name="appsPath">Path of the app actors' parent (the AppsGuardian, /user/continuity-apps); each is app-NAME below it.</param>
    public NodeIntrospector(string nodeName, string address, INodeProbe probe, TimeSpan interval, IReadOnlyList<string> apps,
        string appsPath, TimeSpan? appTimeout = null)
    {
        _nodeName = nodeName;
        _address = address;
        _probe = probe;
        _interval = interval;
        _apps = apps;
        _appsPath = appsPath.TrimEnd('/');
        _appTimeout = appTimeout ?? TimeSpan.FromSeconds(2);

        Receive<Sample>(_ => StartSample());
        Receive<Sampled>(s =>
        {
            _sampling = false;
            if (s.Ticks is not null) _previous = s.Ticks;
            _latest = s.Mib;
            foreach (var w in _waiting) w.Tell(s.Mib);
            _waiting.Clear();
        });
        Receive<GetMib>(_ =>
        {
            if (_latest is not null) Sender.Tell(_latest);
            else _waiting.Add(Sender);
        });
    }

    public static Props Props(string nodeName, string address, INodeProbe probe, TimeSpan interval, IReadOnlyList<string> apps,
        string appsPath, TimeSpan? appTimeout = null) =>
        Akka.Actor.Props.Create(() => new NodeIntrospector(nodeName, address, probe, interval, apps, appsPath, appTimeout));

    protected override void PreStart()
    {
        Self.Tell(new Sample());
        Timers.StartPeriodicTimer("sample", new Sample(), _interval);
    }

    private void StartSample()
    {
        if (_sampling) return; // a slow app actor must not pile up samples
        _sampling = true;
        var at = DateTimeOffset.UtcNow;
        NodeFigures figures;
        CpuTicks? ticks = null;
        try
        {
            var r = _probe.Read();
            ticks = r.Cpu;
            figures = new NodeFigures(CpuPercent(_previous, r.Cpu), Math.Max(0, r.MemoryTotalBytes - r.MemoryAvailableBytes),
                r.MemoryTotalBytes, r.DiskFreeBytes, r.DiskTotalBytes, r.Queues.ToList(), r.JournalBytes, r.Error);
        }
        catch (Exception e)
        {
            _log.Warning("reading the node's figures failed: {0}", e.Message);
            figures = new NodeFigures(0, 0, 0, 0, 0, [], 0, e.Message);
        }

        var asks = _apps.Select(app => AskApp(app)).ToArray();
        var (node, address) = (_nodeName, _address);
        Task.WhenAll(asks).ContinueWith(t =>
                new Sampled(new NodeMib(node, address, at, figures,
                    t.IsCompletedSuccessfully ? t.Result.OfType<AppFigures>().ToList() : []), ticks))
            .PipeTo(Self);
    }

    private async Task<AppFigures?> AskApp(string app)
    {
        try
        {
            return await Context.ActorSelection($"{_appsPath}/app-{app}")
                .Ask<AppFigures>(new GetAppFigures(app), _appTimeout).ConfigureAwait(false);
        }
        catch (Exception)
        {
            return null; // an app actor that does not answer is left out of this sample, not waited for
        }
    }

    /// <summary>Busy share between two readings; the first reading alone gives the average since boot.</summary>
    public static double CpuPercent(CpuTicks? previous, CpuTicks now)
    {
        var busy = now.Busy - (previous?.Busy ?? 0);
        var total = now.Total - (previous?.Total ?? 0);
        if (total <= 0 || busy < 0) return 0;
        return Math.Clamp(100.0 * busy / total, 0, 100);
    }
}
