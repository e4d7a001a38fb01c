using System.Collections.Concurrent;
using System.Net;
using Akka.Configuration;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Continuity.Core.Log;
using Continuity.Core.Platform;

namespace Continuity.Core.Tests;

internal sealed class FakePacketQueue : IPacketQueue
{
    private Action<IReadOnlyList<HeldPacket>>? _onBatch;
    private uint _nextId = 100;
    private long _accepted = -1;

    public uint Accepted => (uint)Interlocked.Read(ref _accepted);
    public bool AnyAccepted => Interlocked.Read(ref _accepted) >= 0;
    public bool Started => _onBatch is not null;
    public bool Disposed { get; private set; }

    /// <summary>When set, Start throws InvalidOperationException with this message (the queue failed as the capture started).</summary>
    public volatile string? FailStartWith;

    public void Start(Action<IReadOnlyList<HeldPacket>> onBatch)
    {
        if (FailStartWith is { } message) throw new InvalidOperationException(message);
        _onBatch = onBatch;
    }

    /// <summary>Delivers a batch as the reader thread would; returns the kernel ids given to the packets.</summary>
    public uint[] Push(params byte[][] packets)
    {
        var held = packets.Select(p => new HeldPacket(_nextId++, p)).ToArray();
        _onBatch!(held);
        return held.Select(h => h.PacketId).ToArray();
    }

    public void AcceptUpTo(uint packetId) => Interlocked.Exchange(ref _accepted, packetId);
    public void DropUpTo(uint packetId) { }
    public void Dispose() => Disposed = true;
}

internal sealed class FakeCheckpointer : ICheckpointer
{
    public volatile bool Fail;
    public int Dumps;
    /// <summary>Runs while the program is "frozen", before the dump returns (e.g. traffic arriving meanwhile).</summary>
    public Action? WhileDumping;
    /// <summary>Size of the program's "memory" in the image.</summary>
    public int ImageBytes = 300_000;

    public Task<CheckpointImage> DumpAsync(int pid, string imageDir, Action whileFrozen, CancellationToken ct)
    {
        if (Fail) return Task.FromException<CheckpointImage>(new InvalidOperationException("criu: dump failed"));
        Interlocked.Increment(ref Dumps);
        Directory.CreateDirectory(imageDir);
        File.WriteAllBytes(Path.Combine(imageDir, "pages-1.img"), Enumerable.Range(0, ImageBytes).Select(i => (byte)i).ToArray());
        whileFrozen();
        WhileDumping?.Invoke();
        return Task.FromResult(new CheckpointImage(imageDir, ImageBytes, TimeSpan.FromMilliseconds(3), TimeSpan.FromMilliseconds(5)));
    }

    public Task<int> RestoreAsync(string imageDir, CancellationToken ct) => Task.FromResult(4242);
}

internal sealed class FakeFilter : IPacketFilter
{
    public readonly ConcurrentQueue<string> Calls = new();
    public void QueueInbound(TrafficSelector selector, ushort queueNumber) => Calls.Enqueue("queue");
    public void StopQueueing(TrafficSelector selector, ushort queueNumber) => Calls.Enqueue("stop-queue");
    public void BlockInbound(IPAddress vip) => Calls.Enqueue("block");
    public void UnblockInbound(IPAddress vip) => Calls.Enqueue("unblock");
}

internal sealed class FakeVip : IVirtualIp
{
    public volatile bool Up;
    public void Add(IPAddress vip, int prefixLength) => Up = true;
    public void Remove(IPAddress vip, int prefixLength) => Up = false;
    public void Announce(IPAddress vip) { }
}

/// <summary>Records the fence's calls in order, and whether the VIP was already up when it was armed.</summary>
internal sealed class FakeFence(FakeVip vip) : IVipFence
{
    public readonly ConcurrentQueue<string> Calls = new();
    public readonly ConcurrentQueue<TimeSpan> Leases = new();
    public void Arm(IPAddress address, ushort id) => Calls.Enqueue(vip.Up ? "arm-after-vip" : "arm");
    public void Renew(IPAddress address, ushort id, TimeSpan validFor)
    {
        Leases.Enqueue(validFor);
        Calls.Enqueue("renew");
    }
    public void Disarm(IPAddress address, ushort id) => Calls.Enqueue("disarm");
}

internal sealed class FakeLauncher : IProcessLauncher
{
    private static int _pid = 1000;
    private readonly ConcurrentDictionary<int, ProgramExit?> _ended = new();
    public readonly ConcurrentBag<int> Killed = new();
    public int Launched;
    public volatile int LastPid;

    /// <summary>When set, Launch throws InvalidOperationException with this message (the program could not start).</summary>
    public volatile string? FailWith;

    /// <summary>How many of the next launched programs end right after Launch returned, with this status.</summary>
    public int ExitAfterStart;
    public ProgramExit ExitAfterStartStatus = new(3, ["loading /etc/kv.conf", "fatal: port 7000 is in use"]);

    public ProtectedProcess Launch(IReadOnlyList<string> command, Action<string> output)
    {
        Interlocked.Increment(ref Launched);
        if (FailWith is { } message) throw new InvalidOperationException(message);
        var pid = Interlocked.Increment(ref _pid);
        LastPid = pid;
        if (Interlocked.Decrement(ref ExitAfterStart) >= 0) _ended[pid] = ExitAfterStartStatus;
        else Interlocked.Exchange(ref ExitAfterStart, 0);
        return new ProtectedProcess(pid, DateTimeOffset.UtcNow);
    }

    /// <summary>The program ends on its own; a null status: the launcher does not know how (a restored program).</summary>
    public void End(int pid, ProgramExit? status) => _ended[pid] = status;

    public bool IsAlive(int pid) => !Killed.Contains(pid) && !_ended.ContainsKey(pid);
    public void Kill(int pid) => Killed.Add(pid);
    public string? Identity(int pid) => IsAlive(pid) ? $"started-{pid}" : null;
    public ProgramExit? ExitOf(int pid) => _ended.TryGetValue(pid, out var e) ? e : null;
}

internal sealed record TakeoverCall(string CheckpointDir, long Mark, IReadOnlyList<LoggedPacket> Log);

internal sealed class FakeTakeover : ITakeover
{
    public readonly TaskCompletionSource<TakeoverCall> Called = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public int LeftoversCleared;
    /// <summary>Set: the takeover raises the VIP with its inbound traffic blocked, as a switch does first, then fails
    /// with this message (a restore that failed).</summary>
    public string? FailAfterVip;
    public FakeVip? Vip;
    public FakeFilter? Filter;

    public void ClearLeftovers(AppSpec app) => Interlocked.Increment(ref LeftoversCleared);

    public async Task<TakeoverReport> RunAsync(AppSpec app, string checkpointDir, long mark, IReadOnlyList<LoggedPacket> logAfterMark,
        Func<Task> beforeOpen, CancellationToken ct)
    {
        var files = Directory.Exists(checkpointDir) ? Directory.GetFiles(checkpointDir, "*", SearchOption.AllDirectories).Length : 0;
        if (files == 0) throw new InvalidOperationException($"empty checkpoint dir {checkpointDir}");
        if (FailAfterVip is { } failure)
        {
            Filter?.BlockInbound(app.Vip);
            Vip?.Add(app.Vip, app.VipPrefixLength);
            throw new InvalidOperationException(failure);
        }
        await beforeOpen();
        Called.TrySetResult(new TakeoverCall(checkpointDir, mark, logAfterMark));
        return new TakeoverReport(4242, logAfterMark.Count, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(20),
            TimeSpan.FromMilliseconds(80), new Dictionary<string, TimeSpan> { ["restore"] = TimeSpan.FromMilliseconds(50) });
    }
}

internal sealed class FakePlatform
{
    public readonly FakePacketQueue Queue = new();
    public readonly FakeCheckpointer Criu = new();
    public readonly FakeFilter Filter = new();
    public readonly FakeVip Vip = new();
    public readonly FakeLauncher Launcher = new();
    public readonly FakeTakeover Takeover = new();
    public readonly FakeFence Fence;
    public readonly List<FakePacketQueue> Queues = new();

    public FakePlatform()
    {
        Fence = new FakeFence(Vip);
        Takeover.Vip = Vip;
        Takeover.Filter = Filter;
    }

    /// <summary>Free share of the disk this node reports for its state (the supervision rule for a full disk).</summary>
    public volatile int DiskFreePercent = 80;

    /// <summary>Opening the packet queue shows in <see cref="FakeFilter.Calls"/> as "open-queue", among the rules.</summary>
    public PlatformServices Services => new(_ =>
    {
        lock (Queues) { Queues.Add(Queue); }
        Filter.Calls.Enqueue("open-queue");
        return Queue;
    }, _ => Criu, Filter, Vip, Launcher, Takeover)
    {
        Disk = _ => new Continuity.Core.Supervision.DiskSpace(DiskFreePercent, 100),
        OpenConnections = _ => 7,
        Fence = Fence,
    };
}

internal static class TestConfig
{
    public static AppSpec App(string name = "kv", TimeSpan? interval = null) => new(name, ["/bin/kv"], IPAddress.Parse("198.18.0.50"), 24,
        [new PortSpec("tcp", 7000)], interval ?? TimeSpan.Zero, [], RecoveryPolicy.Replay, 100);

    public static Config Reference
    {
        get
        {
            using var s = typeof(ContinuityApps).Assembly.GetManifestResourceStream("continuity.reference.conf")!;
            using var r = new StreamReader(s);
            return ConfigurationFactory.ParseString(r.ReadToEnd());
        }
    }

    /// <summary>The project's reference.conf with what a test process must not do (exit the CLR) switched off.</summary>
    public static Config Node(string extra = "") => ConfigurationFactory.ParseString(extra + """

        akka.loglevel = INFO
        akka.coordinated-shutdown.exit-clr = off
        akka.cluster.run-coordinated-shutdown-when-down = off
        akka.remote.dot-netty.tcp.port = 0
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        """).WithFallback(Reference);

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "continuity-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(d);
        return d;
    }
}
