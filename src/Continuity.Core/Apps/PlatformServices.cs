using Continuity.Core.Election;
using Continuity.Core.Platform;

namespace Continuity.Core.Apps;

/// <summary>
/// The OS, as the actors see it. Per-application pieces are factories (one queue / checkpointer per app);
/// node-wide ones are shared instances. Tests pass fakes; the node host passes the Continuity.Linux adapters
/// and an ITakeover over Switch/Switchover.
/// </summary>
public sealed record PlatformServices(
    Func<AppSpec, IPacketQueue> PacketQueue,
    Func<AppSpec, ICheckpointer> Checkpointer,
    IPacketFilter Filter,
    IVirtualIp VirtualIp,
    IProcessLauncher Launcher,
    ITakeover Takeover)
{
    /// <summary>Free space of the file system holding a directory (the supervision rule for a full disk).</summary>
    public Func<string, Supervision.DiskSpace?> Disk { get; init; } = Supervision.DiskSpace.Of;

    /// <summary>Established TCP connections to the application's VIP and ports on this node (the MIB's open
    /// connections, asked of the primary); null where the platform cannot tell.</summary>
    public Func<AppSpec, int?> OpenConnections { get; init; } = _ => null;

    /// <summary>Bytes of datagrams released to the application and still unread in its UDP sockets on this node; 0
    /// where the platform cannot tell. A checkpoint waits for 0: CRIU does not keep a UDP socket's queue.</summary>
    public Func<AppSpec, long> UnreadDatagrams { get; init; } = _ => 0;

    /// <summary>The kernel-enforced lease on each primary's VIP (see <see cref="IVipFence"/>); none by default.</summary>
    public IVipFence Fence { get; init; } = NoVipFence.Instance;

    /// <summary>Where fault injection can stop this node (see <see cref="IFailpoints"/>); none by default.</summary>
    public IFailpoints Failpoints { get; init; } = NoFailpoints.Instance;
}
