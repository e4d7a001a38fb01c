using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Continuity.Core.Apps;
using Continuity.Core.Log;
using Continuity.Core.Platform;
using Continuity.Core.Switch;
using Continuity.Linux.Criu;
using Continuity.Linux.Injection;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Netfilter;
using Continuity.Linux.Network;
using Continuity.Linux.Processes;
using Continuity.Linux.Supervision;
using Continuity.Linux.Tests.Criu;

namespace Continuity.Linux.Tests.Switch;

/// <summary>
/// Three machines on one segment, as network namespaces: cts-a (the primary, VIP 198.18.2.50), cts-b (the
/// standby) and cts-c (the client), their veths joined by bridge ctsbr0 in a namespace of its own (cts-sw), so no
/// bridged frame ever meets the host's netfilter. The primary's capture is real (iptables NFQUEUE read by NfQueue);
/// a List stands in for the standbys' log. Everything is torn down on Dispose, whatever failed.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class SwitchLab : IDisposable
{
    public const string Primary = "cts-a", Standby = "cts-b", ClientNs = "cts-c", Segment = "cts-sw";
    public static readonly IPAddress Vip = IPAddress.Parse("198.18.2.50");
    public const int TcpPort = 7000, UdpPort = 7001;
    private const ushort QueueNumber = 7;

    private readonly Action<string> _out;
    private readonly NamespacedLauncher _launcher = new(NetNs.PathOf(Primary));
    private readonly List<IDisposable> _disposables = [];
    private readonly List<CriuLab.Client> _clients = [];
    private readonly object _logLock = new();
    private readonly List<LoggedPacket> _log = [];
    private NfQueue? _queue;
    private long _seq;
    private long _acceptedSeq;
    private uint _lastId;
    private bool _held;
    private bool _paused;
    private int _primaryPid;
    private int _restoredPid;
    private readonly string _imageDir;
    private Stopwatch? _crashed;

    /// <summary>From the primary's link going down to the end of the switch: the part of a client's stall that
    /// is not its own retransmission timer.</summary>
    public TimeSpan CrashToOpen { get; private set; }

    public ConcurrentQueue<string> ServerOutput { get; } = new();

    public SwitchLab(Action<string> output)
    {
        _out = output;
        CriuLab.RequireRoot();
        Teardown();
        _imageDir = Directory.CreateTempSubdirectory("cts-img-").FullName;
        foreach (var ns in new[] { Primary, Standby, ClientNs, Segment })
            CriuLab.Sh($"ip netns add {ns} && ip -n {ns} link set lo up");
        CriuLab.Sh($"ip -n {Segment} link add ctsbr0 type bridge && ip -n {Segment} link set ctsbr0 up");
        Attach(Primary, "cts-ea", "198.18.2.1");
        Attach(Standby, "cts-eb", "198.18.2.2");
        Attach(ClientNs, "cts-ec", "198.18.2.10");
        CriuLab.Sh($"ip -n {Primary} addr add {Vip}/24 dev cts-ea");
    }

    private static void Attach(string ns, string dev, string address) =>
        CriuLab.Sh($"ip link add {dev} netns {ns} type veth peer name {dev}p netns {Segment}" +
                   $" && ip -n {Segment} link set {dev}p master ctsbr0 up" +
                   $" && ip -n {ns} addr add {address}/24 dev {dev} && ip -n {ns} link set {dev} up");

    public static AppSpec App(RecoveryPolicy policy) => new(
        "kv", [CriuLab.CtKv, "--tcp", $"{TcpPort}", "--udp", $"{UdpPort}", "--bind", Vip.ToString()],
        Vip, 24, [new PortSpec("tcp", TcpPort), new PortSpec("udp", UdpPort)], TimeSpan.FromSeconds(5), [], policy,
        QueueNumber);

    /// <summary>ct-kv on the primary with every inbound packet held until logged.</summary>
    public void StartPrimary(AppSpec app)
    {
        _primaryPid = _launcher.Launch(app.Command, ServerOutput.Enqueue).Pid;
        CriuLab.Eventually(() => ServerOutput.Any(l => l.Contains("listening")), TimeSpan.FromSeconds(5), "ct-kv to listen");
        _queue = NetNs.RunIn(Primary, () =>
        {
            new IptablesFilter().QueueInbound(app.Traffic, app.QueueNumber);
            return new NfQueue(app.QueueNumber);
        });
        _queue.Start(batch =>
        {
            lock (_logLock)
            {
                foreach (var held in batch)
                {
                    _log.Add(new LoggedPacket(++_seq, held.Packet.ToArray()));
                    _lastId = held.PacketId;
                    _held = true;
                }
                if (!_paused) AcceptAll();
            }
        });
    }

    private void AcceptAll()
    {
        if (!_held) return;
        _queue!.AcceptUpTo(_lastId);
        _acceptedSeq = _seq;
        _held = false;
    }

    public CriuLab.Client StartClient(string arguments) =>
        Track(new CriuLab.Client(NetNs.PathOf(ClientNs), $"--server {Vip}:{TcpPort} {arguments}"));

    /// <summary>The benchmark's request/response client (ct-bench rr), which opens all its connections at once.</summary>
    public CriuLab.Client StartBenchClient(string arguments) =>
        Track(new CriuLab.Client(NetNs.PathOf(ClientNs), $"rr --server {Vip}:{TcpPort} {arguments}", CriuLab.CtBench));

    private CriuLab.Client Track(CriuLab.Client client)
    {
        _clients.Add(client);
        return client;
    }

    /// <summary>A checkpoint as the product takes it: verdicts withheld from the mark on, so the mark is exact; what
    /// arrives during the dump waits in the queue (logged after the mark) and is released after it.</summary>
    public async Task<long> CheckpointAsync(AppSpec app)
    {
        long mark;
        lock (_logLock)
        {
            _paused = true;
            mark = _acceptedSeq;
        }
        try
        {
            // CRIU keeps a TCP socket's queues but not a UDP socket's: let the program read the datagrams already
            // accepted, or the checkpoint would lose those up to the mark.
            await Task.Delay(50);
            var image = await new CriuCheckpointer(new CriuOptions { NetNsPath = NetNs.PathOf(Primary) })
                .DumpAsync(_primaryPid, _imageDir, () => CheckpointFiles.SaveStateDirs(_imageDir, app.StateDirs),
                    CancellationToken.None);
            _out($"checkpoint: mark {mark}, {image.Bytes / 1024} KiB, frozen {image.Freeze.TotalMilliseconds:F0} ms, " +
                 $"dump {image.Dump.TotalMilliseconds:F0} ms, {_seq - mark} packet(s) held after the mark");
        }
        finally
        {
            lock (_logLock)
            {
                _paused = false;
                AcceptAll();
            }
        }
        return mark;
    }

    /// <summary>Verdicts withheld for a while, as when a standby is slow to acknowledge: clients retransmit into the
    /// queue meanwhile. The next <see cref="CheckpointAsync"/> or <see cref="Release"/> lets them go.</summary>
    public async Task HoldAsync(TimeSpan duration)
    {
        lock (_logLock) _paused = true;
        await Task.Delay(duration);
    }

    public void Release()
    {
        lock (_logLock)
        {
            _paused = false;
            AcceptAll();
        }
    }

    /// <summary>The primary's machine dies: its link first, so no FIN or RST escapes the kill.</summary>
    public IReadOnlyList<LoggedPacket> Crash()
    {
        CriuLab.Sh($"ip -n {Primary} link set cts-ea down");
        _crashed = Stopwatch.StartNew();
        _launcher.Kill(_primaryPid);
        CriuLab.Eventually(() => !_launcher.IsAlive(_primaryPid), TimeSpan.FromSeconds(5), "the primary to die");
        lock (_logLock)
        {
            _paused = true; // what is still held dies with the machine
            return _log.ToList();
        }
    }

    /// <summary>The standby takes over with the real platform parts, each acting in cts-b.</summary>
    public async Task<SwitchReport> SwitchAsync(AppSpec app, long mark, IReadOnlyList<LoggedPacket> log,
        SwitchOptions options, List<SwitchProgress> progress, Func<CancellationToken, Task>? beforeOpen = null,
        IProgress<SwitchProgress>? observer = null)
    {
        var channel = NetNs.RunIn(Standby, () => new VethInjectionChannel(app.Vip, app.QueueNumber));
        _disposables.Add(channel);
        var sender = RawPacketSender.In(Standby);
        _disposables.Add(sender);
        var platform = new SwitchPlatform(
            new FilterIn(Standby, new IptablesFilter()),
            new VipIn(Standby, new VirtualIp()),
            new CriuCheckpointer(new CriuOptions { NetNsPath = NetNs.PathOf(Standby) },
                (_, line) => ServerOutput.Enqueue("restored: " + line)),
            channel, PacketInspector.Instance, sender, new ProcSocketTable());
        var report = await new Switchover(platform, options, _out)
            .RunAsync(app, _imageDir, mark, log, beforeOpen, new SyncProgress(progress, observer));
        _restoredPid = report.RestoredPid;
        CrashToOpen = _crashed?.Elapsed ?? TimeSpan.Zero;
        _out($"crash to open: {CrashToOpen.TotalMilliseconds:F0} ms");
        return report;
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; the test wants the reports in order, at once.</summary>
    private sealed class SyncProgress(List<SwitchProgress> sink, IProgress<SwitchProgress>? observer) : IProgress<SwitchProgress>
    {
        public void Report(SwitchProgress value)
        {
            lock (sink) sink.Add(value);
            observer?.Report(value);
        }
    }

    public void Dispose()
    {
        foreach (var c in _clients)
            c.Dispose();
        foreach (var pid in new[] { _primaryPid, _restoredPid }.Where(p => p > 1))
            if (_launcher.IsAlive(pid))
                _launcher.Kill(pid);
        _queue?.Dispose();
        foreach (var d in _disposables)
        {
            try
            {
                d.Dispose();
            }
            catch (Exception e)
            {
                _out($"cleanup: {e.Message}");
            }
        }
        Teardown();
        try
        {
            Directory.Delete(_imageDir, true);
        }
        catch (IOException)
        {
        }
    }

    private static void Teardown()
    {
        // Deleting a namespace deletes its veth ends, their peers, the bridge and every rule in it.
        foreach (var ns in new[] { Primary, Standby, ClientNs, Segment })
            CriuLab.Sh($"ip netns del {ns} 2>/dev/null || true");
    }

    private sealed class FilterIn(string ns, IPacketFilter inner) : IPacketFilter
    {
        public void QueueInbound(TrafficSelector selector, ushort queueNumber) => NetNs.RunIn(ns, () => inner.QueueInbound(selector, queueNumber));
        public void StopQueueing(TrafficSelector selector, ushort queueNumber) => NetNs.RunIn(ns, () => inner.StopQueueing(selector, queueNumber));
        public void BlockInbound(IPAddress vip) => NetNs.RunIn(ns, () => inner.BlockInbound(vip));
        public void UnblockInbound(IPAddress vip) => NetNs.RunIn(ns, () => inner.UnblockInbound(vip));
    }

    private sealed class VipIn(string ns, IVirtualIp inner) : IVirtualIp
    {
        public void Add(IPAddress vip, int prefixLength) => NetNs.RunIn(ns, () => inner.Add(vip, prefixLength));
        public void Remove(IPAddress vip, int prefixLength) => NetNs.RunIn(ns, () => inner.Remove(vip, prefixLength));
        public void Announce(IPAddress vip) => NetNs.RunIn(ns, () => inner.Announce(vip));
    }

    public static Stopwatch Time() => Stopwatch.StartNew();
}
