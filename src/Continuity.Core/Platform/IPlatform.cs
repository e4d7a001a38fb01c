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

/// <summary>
/// A lease on a VIP enforced by the kernel, so that it holds even when the node process is frozen or gone: while the
/// fence is armed the node neither answers ARP for the VIP nor lets a packet to or from it through, except during a
/// lease granted by <see cref="Renew"/>. A node the cluster gave up on stops renewing (no majority vouches for it), and
/// its VIP goes quiet by itself before a successor can carry it.
/// </summary>
public interface IVipFence
{
    /// <summary>Installs the fence for <paramref name="vip"/> with no lease yet; <paramref name="id"/> tells the fences of
    /// this node's applications apart. Idempotent.</summary>
    void Arm(IPAddress vip, ushort id);

    /// <summary>Lets the VIP's traffic through for <paramref name="validFor"/> from now, replacing the previous lease.</summary>
    void Renew(IPAddress vip, ushort id, TimeSpan validFor);

    /// <summary>Removes the fence (a no-op when absent): the VIP's traffic flows freely again.</summary>
    void Disarm(IPAddress vip, ushort id);
}

/// <summary>No fence (continuity.fencing.enabled = off, or a host without the kernel's support).</summary>
public sealed class NoVipFence : IVipFence
{
    public static readonly NoVipFence Instance = new();
    public void Arm(IPAddress vip, ushort id) { }
    public void Renew(IPAddress vip, ushort id, TimeSpan validFor) { }
    public void Disarm(IPAddress vip, ushort id) { }
}

/// <summary>A protected program running on this node.</summary>
public sealed record ProtectedProcess(int Pid, DateTimeOffset StartedAt);

/// <summary>How a protected program ended.</summary>
/// <param name="ExitCode">Its exit status; null when unknown (a restored program is no child of the node).</param>
/// <param name="LastOutput">Its last lines of output (stderr is merged into stdout), oldest first.</param>
public sealed record ProgramExit(int? ExitCode, IReadOnlyList<string> LastOutput)
{
    /// <summary>"exited with code 3", "was killed by signal 9", "exited (exit status unknown)".</summary>
    public string Status => ExitCode switch
    {
        null => "exited (exit status unknown)",
        // unshare re-raises the signal that killed the program; .NET reports that as 128 + signal.
        > 128 and < 160 => $"was killed by signal {ExitCode - 128} (exit code {ExitCode})",
        var c => $"exited with code {c}",
    };

    /// <summary>The last lines as one line, or a note that there were none.</summary>
    public string Output => LastOutput.Count == 0
        ? "no output"
        : "last output: " + string.Join(" | ", LastOutput.Select(l => l.Length > 300 ? l[..300] + "..." : l));
}

/// <summary>Starts and stops protected programs in a way CRIU can later dump them.</summary>
public interface IProcessLauncher
{
    /// <summary>Starts <paramref name="command"/> as init of its own PID namespace and as session
    /// leader, with only fds 0-2 open, stdout/stderr piped to <paramref name="output"/>.</summary>
    /// <exception cref="InvalidOperationException">The program could not be started or exited at once; the message
    /// gives its exit code and last output lines.</exception>
    ProtectedProcess Launch(IReadOnlyList<string> command, Action<string> output);
    bool IsAlive(int pid);
    void Kill(int pid);

    /// <summary>How the program <paramref name="pid"/> ended, once it has and the launcher knows; null otherwise
    /// (still running, not yet reaped, or a pid this launcher knows nothing of).</summary>
    ProgramExit? ExitOf(int pid) => null;

    /// <summary>What tells this very process apart from a later one given the same pid (after the program ended, or
    /// after a reboot); null when <paramref name="pid"/> does not exist or the launcher cannot tell.</summary>
    string? Identity(int pid) => null;
}

public sealed record CheckpointImage(string Directory, long Bytes, TimeSpan Freeze, TimeSpan Dump);

/// <summary>Whole-process checkpoint and restore (CRIU).</summary>
public interface ICheckpointer
{
    /// <summary>Dumps the process tree of <paramref name="pid"/> into <paramref name="imageDir"/> and leaves it
    /// running. <paramref name="whileFrozen"/> runs while the program is still frozen (copy its files then).</summary>
    Task<CheckpointImage> DumpAsync(int pid, string imageDir, Action whileFrozen, CancellationToken ct);

    /// <summary>
    /// Waits, freezing nothing, until <paramref name="pid"/> may be dumped (an implementation may allow one dump at a
    /// time among programs that share something, as CRIU does per working directory), and holds that right until the
    /// turn is disposed. A caller that withholds the program's input for the length of a dump takes its turn first,
    /// so that the wait for another program's dump is not part of the hold.
    /// </summary>
    Task<IDumpTurn> WaitForDumpTurnAsync(int pid, CancellationToken ct) => Task.FromResult<IDumpTurn>(new ImmediateDumpTurn(this, pid));

    /// <summary>Restores the program from <paramref name="imageDir"/>, detached; returns its new pid.</summary>
    Task<int> RestoreAsync(string imageDir, CancellationToken ct);

    /// <summary>Restores like <see cref="RestoreAsync(string, CancellationToken)"/>, choosing what becomes of the
    /// TCP connections that were established at the checkpoint.</summary>
    /// <remarks>The default keeps them (the only mode an implementation must support); a checkpointer that can
    /// restore them closed overrides it.</remarks>
    Task<int> RestoreAsync(string imageDir, TcpRestore tcp, CancellationToken ct) => tcp switch
    {
        TcpRestore.Established => RestoreAsync(imageDir, ct),
        _ => throw new NotSupportedException(
            $"{GetType().Name} cannot restore TCP connections closed: implement RestoreAsync(string, TcpRestore, CancellationToken) " +
            "or use the Replay recovery policy."),
    };
}

/// <summary>The right to dump one program now (see <see cref="ICheckpointer.WaitForDumpTurnAsync"/>); disposing it gives
/// the right back.</summary>
public interface IDumpTurn : IDisposable
{
    /// <summary>Dumps the program the turn was taken for, as <see cref="ICheckpointer.DumpAsync"/> does.</summary>
    Task<CheckpointImage> DumpAsync(string imageDir, Action whileFrozen, CancellationToken ct);
}

/// <summary>The turn of a checkpointer that never makes a dump wait.</summary>
public sealed class ImmediateDumpTurn(ICheckpointer checkpointer, int pid) : IDumpTurn
{
    public Task<CheckpointImage> DumpAsync(string imageDir, Action whileFrozen, CancellationToken ct) =>
        checkpointer.DumpAsync(pid, imageDir, whileFrozen, ct);

    public void Dispose() { }
}

/// <summary>What a restore does with the TCP connections established at the checkpoint.</summary>
public enum TcpRestore
{
    /// <summary>Reconnected as they were (they continue only if the log after the mark is replayed).</summary>
    Established,
    /// <summary>Restored closed: the program sees each one fail, the client's is reset by whoever answers it next.</summary>
    Closed,
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

    /// <summary>The highest TCP acknowledgment the local program has sent per connection so far: its rcv_nxt, where
    /// the client's oldest unacknowledged byte starts.</summary>
    bool TryGetHighestAcknowledged(ConnectionKey connection, out uint acknowledgment);

    /// <summary>
    /// Copies of the TCP segments the local program sent on <paramref name="connection"/> into the channel that end
    /// after <paramref name="acknowledged"/>, oldest first, checksums complete: replies to replayed requests the
    /// client may never have received. Sending them to the client spares it the restored socket's retransmission
    /// timer, which a takeover leaves at its initial second and the first checkpoints can hold back for several more.
    /// </summary>
    IReadOnlyList<byte[]> UnacknowledgedReplies(ConnectionKey connection, uint acknowledged) => [];

    /// <summary>Removes the reply routes; replies go to the network again.</summary>
    void ReleaseReplies();

    /// <summary>Replies swallowed so far (for reports); 0 from a channel that does not count them.</summary>
    long RepliesDiscarded => 0;
}

/// <summary>The TCP/UDP fields of one IPv4 packet that the switch reasons about.</summary>
/// <param name="Connection">The connection, seen from the server (for a packet from a client: client = source).</param>
/// <param name="SequenceEnd">The sequence number after this segment (SYN and FIN count one).</param>
public readonly record struct PacketFields(
    ConnectionKey Connection,
    byte TcpFlags,
    uint Sequence,
    uint SequenceEnd,
    uint Acknowledgment,
    int PayloadLength,
    ushort Window)
{
    public const byte Tcp = 6, Udp = 17;
    public const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10;

    public bool IsTcp => Connection.Protocol == Tcp;
    public bool IsSyn => IsTcp && (TcpFlags & (Syn | Ack)) == Syn;
    public bool HasAck => IsTcp && (TcpFlags & Ack) != 0;
    public bool IsRst => IsTcp && (TcpFlags & Rst) != 0;

    /// <summary>TCP serial-number order (RFC 1982 over 2^32): is <paramref name="a"/> after <paramref name="b"/>?</summary>
    public static bool IsAfter(uint a, uint b) => unchecked((int)(a - b)) > 0;
}

/// <summary>Reads and rewrites IPv4 TCP/UDP packets (pure code; in Continuity.Linux over PacketRewriter).</summary>
public interface IPacketInspector
{
    /// <summary>The fields of a packet a client sent to the server; false for anything but unfragmented TCP/UDP.</summary>
    bool TryReadInbound(ReadOnlySpan<byte> ipPacket, out PacketFields fields);

    /// <summary>Sets the TCP acknowledgment number and recomputes the checksums.</summary>
    void SetAcknowledgment(Span<byte> ipPacket, uint ack);

    /// <summary>Overwrites a TCP timestamp option with NOPs and recomputes the checksums: a restored kernel that
    /// answered a replayed SYN chose its own timestamp offset, and rejects a handshake ACK echoing another.</summary>
    /// <returns>True when the packet carried a timestamp.</returns>
    bool RemoveTimestamp(Span<byte> ipPacket);

    /// <summary>Recomputes the IPv4 and TCP/UDP checksums (logged packets may carry offloaded partial ones).</summary>
    void RecomputeChecksums(Span<byte> ipPacket);

    /// <summary>An ICMP host unreachable from <paramref name="source"/> to <paramref name="destination"/> about the TCP
    /// segment <paramref name="segmentSource"/>:port → <paramref name="segmentDestination"/>:port at
    /// <paramref name="sequence"/> that <paramref name="destination"/> sent.</summary>
    byte[] BuildHostUnreachable(IPAddress source, IPAddress destination, IPAddress segmentSource, ushort segmentSourcePort,
        IPAddress segmentDestination, ushort segmentDestinationPort, uint sequence);

    /// <summary>A TCP segment without payload or options, checksums set.</summary>
    byte[] BuildTcp(IPAddress source, ushort sourcePort, IPAddress destination, ushort destinationPort,
        uint sequence, uint acknowledgment, byte flags, ushort window);
}

/// <summary>Sends raw IPv4 packets out of this node's own interfaces, past the local TCP stack (to prompt or
/// reset clients on behalf of a restored program).</summary>
public interface IPacketSender
{
    void Send(ReadOnlySpan<byte> ipPacket);
}

/// <summary>
/// Places in the algorithm where a fault-injection run can stop this node at a moment no outside fault can aim at
/// (as FreeBSD's fail points or etcd's gofail do): the chaos lab arms one, the node freezes there, the lab crashes it.
/// Off unless the node is started with <c>CONTINUITY_FAILPOINTS</c>.
/// </summary>
public interface IFailpoints
{
    /// <summary>Returns at once unless <paramref name="name"/> is armed; then records <paramref name="describe"/>'s text
    /// and stops the whole process, to be resumed or killed from outside.</summary>
    void Reach(string name, Func<string> describe);
}

/// <summary>The fail points the product defines.</summary>
public static class Failpoints
{
    /// <summary>In the primary's capture, when every standby has logged packets the program has not been given yet:
    /// just before their verdict.</summary>
    public const string AckedNotReleased = "acked-not-released";
}

/// <summary>No fail point is ever armed: the production default.</summary>
public sealed class NoFailpoints : IFailpoints
{
    public static readonly NoFailpoints Instance = new();
    public void Reach(string name, Func<string> describe) { }
}

/// <summary>The kernel's table of TCP sockets, as a restored program sees it.</summary>
public interface ISocketTable
{
    /// <summary>The established TCP connections in the network namespace of process <paramref name="pid"/> whose local
    /// end is <paramref name="localAddress"/>, seen from that end (client = remote).</summary>
    IReadOnlyList<ConnectionKey> EstablishedTcp(int pid, IPAddress localAddress);

    /// <summary>Bytes (as the kernel charges them) waiting unread in the receive queues of the UDP sockets, in the
    /// network namespace of process <paramref name="pid"/>, bound to <paramref name="localAddress"/> or to any address
    /// on one of <paramref name="ports"/>. Zero where the table cannot tell.</summary>
    long UnreadDatagrams(int pid, IPAddress localAddress, IReadOnlyCollection<int> ports) => 0;
}

/// <summary>A TCP or UDP connection seen from the server: client endpoint and server endpoint.</summary>
public readonly record struct ConnectionKey(byte Protocol, IPAddress Client, ushort ClientPort, IPAddress Server, ushort ServerPort);
