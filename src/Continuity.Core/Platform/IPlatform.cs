using System.Net;

namespace Continuity.Core.Platform;

// The small interfaces behind which the OS lives (implemented in Continuity.Linux).
// The actors in Continuity.Core only ever see these, so they read as the algorithm of the patent.

/// <summary>One inbound packet held by the kernel until a verdict is given.</summary>
/// <param name="PacketId">The kernel's id for the verdict (NFQUEUE packet id, increasing).</param>
/// <param name="Packet">The whole IPv4 packet, header included.</param>
public readonly record struct HeldPacket(uint PacketId, ReadOnlyMemory<byte> Packet);

/// <summary>
/// A kernel queue that holds every inbound packet of a protected application until released
/// (iptables NFQUEUE). Nothing is let through without a verdict: the queue never fails open.
/// </summary>
public interface IPacketQueue : IDisposable
{
    /// <summary>Starts delivering held packets to <paramref name="onBatch"/> from a reader thread.
    /// The memory of each batch is only valid during the call: copy what must be kept.</summary>
    void Start(Action<IReadOnlyList<HeldPacket>> onBatch);

    /// <summary>Accepts every held packet with an id up to and including <paramref name="packetId"/>.</summary>
    void AcceptUpTo(uint packetId);

    /// <summary>Drops every held packet with an id up to and including <paramref name="packetId"/>.</summary>
    void DropUpTo(uint packetId);
}

/// <summary>Which inbound traffic belongs to an application.</summary>
public sealed record TrafficSelector(IPAddress Vip, IReadOnlyList<PortSpec> Ports);

/// <summary>A protocol and port, parsed from "tcp/7000" or "udp/7001".</summary>
public sealed record PortSpec(string Protocol, int Port)
{
    public override string ToString() => $"{Protocol}/{Port}";
}

/// <summary>Packet filter rules the algorithm needs (iptables in Continuity.Linux).</summary>
public interface IPacketFilter
{
    /// <summary>Sends the selected inbound traffic to NFQUEUE number <paramref name="queueNumber"/>, before conntrack.</summary>
    void QueueInbound(TrafficSelector selector, ushort queueNumber);

    /// <summary>Removes the queue rules of <see cref="QueueInbound"/>.</summary>
    void StopQueueing(TrafficSelector selector, ushort queueNumber);

    /// <summary>Drops all inbound traffic to the VIP (a switch in progress).</summary>
    void BlockInbound(IPAddress vip);

    /// <summary>Removes the rule of <see cref="BlockInbound"/>.</summary>
    void UnblockInbound(IPAddress vip);
}

/// <summary>The virtual IP of an application on this node.</summary>
public interface IVirtualIp
{
    void Add(IPAddress vip, int prefixLength);
    void Remove(IPAddress vip, int prefixLength);
    /// <summary>Announces that this node now owns the VIP (gratuitous ARP).</summary>
    void Announce(IPAddress vip);
}

/// <summary>A protected program running on this node.</summary>
public sealed record ProtectedProcess(int Pid, DateTimeOffset StartedAt);

/// <summary>Starts and stops protected programs in a way CRIU can later dump them.</summary>
public interface IProcessLauncher
{
    /// <summary>Starts <paramref name="command"/> as init of its own PID namespace and as session
    /// leader, with only fds 0-2 open, stdout/stderr piped to <paramref name="output"/>.</summary>
    ProtectedProcess Launch(IReadOnlyList<string> command, Action<string> output);
    bool IsAlive(int pid);
    void Kill(int pid);
}

public sealed record CheckpointImage(string Directory, long Bytes, TimeSpan Freeze, TimeSpan Dump);

/// <summary>Whole-process checkpoint and restore (CRIU).</summary>
public interface ICheckpointer
{
    /// <summary>Dumps the process tree of <paramref name="pid"/> into <paramref name="imageDir"/> and leaves it
    /// running. <paramref name="whileFrozen"/> runs while the program is still frozen (copy its files then).</summary>
    Task<CheckpointImage> DumpAsync(int pid, string imageDir, Action whileFrozen, CancellationToken ct);

    /// <summary>Restores the program from <paramref name="imageDir"/>, detached; returns its new pid.</summary>
    Task<int> RestoreAsync(string imageDir, CancellationToken ct);
}

/// <summary>
/// The injection channel: a way to hand logged packets to the local IP stack as if they had
/// just arrived, while every reply towards clients is swallowed (a veth pair driven with pcap).
/// </summary>
public interface IInjectionChannel : IDisposable
{
    /// <summary>Routes replies to these client addresses into the channel instead of the network.</summary>
    void CaptureRepliesTo(IReadOnlyCollection<IPAddress> clients);

    /// <summary>Injects one IPv4 packet as received traffic.</summary>
    void Inject(ReadOnlySpan<byte> ipPacket);

    /// <summary>The highest TCP sequence end the local program has sent per connection so far (for ACK clamping).</summary>
    bool TryGetHighestSent(ConnectionKey connection, out uint sequenceEnd);

    /// <summary>Removes the reply routes; replies go to the network again.</summary>
    void ReleaseReplies();
}

/// <summary>A TCP or UDP connection seen from the server: client endpoint and server endpoint.</summary>
public readonly record struct ConnectionKey(byte Protocol, IPAddress Client, ushort ClientPort, IPAddress Server, ushort ServerPort);
