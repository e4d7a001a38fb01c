using Continuity.Core.Checkpoint;
using Continuity.Core.Election;
using Continuity.Core.Serialization;

namespace Continuity.Core.Supervision;

/// <summary>
/// The management information base (MIB): what one node knows about itself and its applications, sampled by its
/// <see cref="NodeIntrospector"/> (at /user/continuity-introspection). The management API asks every member's
/// introspector over remoting, so these messages are control messages.
/// </summary>
public static class IntrospectionProtocol
{
    /// <summary>Replies the newest <see cref="NodeMib"/> (at most one sample interval old).</summary>
    public sealed record GetMib : IControlMessage;

    /// <param name="Node">The node's name (continuity.node.name).</param>
    /// <param name="Address">The node's cluster address.</param>
    /// <param name="SampledAt">When the figures were read.</param>
    public sealed record NodeMib(string Node, string Address, DateTimeOffset SampledAt, NodeFigures Figures,
        IReadOnlyList<AppFigures> Apps) : IControlMessage;

    /// <param name="CpuPercent">Busy share of all CPUs since the previous sample (since boot for the first), 0-100.</param>
    /// <param name="MemoryUsedBytes">MemTotal - MemAvailable.</param>
    /// <param name="DiskFreeBytes">Free space available to the node on the file system of its state directory.</param>
    /// <param name="JournalBytes">Size of the node's SQLite journal and snapshot files (0 with a PostgreSQL journal).</param>
    /// <param name="Error">Why some figure could not be read (the others are still reported), or null.</param>
    public sealed record NodeFigures(double CpuPercent, long MemoryUsedBytes, long MemoryTotalBytes, long DiskFreeBytes,
        long DiskTotalBytes, IReadOnlyList<QueueFigures> Queues, long JournalBytes, string? Error) : IControlMessage;

    /// <summary>One NFQUEUE of this node, from /proc/net/netfilter/nfnetlink_queue.</summary>
    /// <param name="Backlog">Packets waiting in the kernel for a verdict (queue_total).</param>
    /// <param name="QueueDropped">Packets the kernel dropped because the queue was full (queue_dropped).</param>
    /// <param name="UserDropped">Packets the kernel could not hand to the program, netlink buffer full (user_dropped).</param>
    public sealed record QueueFigures(int Queue, long Backlog, long QueueDropped, long UserDropped) : IControlMessage;

    /// <summary>What this node knows of one application.</summary>
    /// <param name="PacketsCaptured">Primary: last sequence number logged by the capture of this epoch (0 otherwise).</param>
    /// <param name="PacketsReleased">Primary: last sequence number released to the program after the standbys acknowledged it.</param>
    /// <param name="LogDepth">Standby: packets held after the newest checkpoint's mark. Primary: packets captured since the last checkpoint's mark.</param>
    /// <param name="LastCheckpoint">Primary: the newest checkpoint taken; standby: the newest one stored.</param>
    /// <param name="LastShip">Primary: time from the last checkpoint's archive being ready (after the dump) until every standby stored it.</param>
    /// <param name="CheckpointCount">Primary: checkpoints taken in the current epoch.</param>
    /// <param name="Takeovers">Takeovers this node completed since it started.</param>
    /// <param name="PacketsReplayedTotal">Packets replayed by those takeovers.</param>
    /// <param name="LastSwitch">The last takeover this node completed (with its phase durations), or null.</param>
    /// <param name="StandbyLags">Primary: how far each standby's journal trails the capture (null on other nodes).</param>
    /// <param name="DroppedBehind">Standby: why the owner dropped it for lagging, until a fresh checkpoint reached it.</param>
    /// <param name="CheckpointRefusals">Primary: the standbys refusing its checkpoints (null on other nodes).</param>
    /// <param name="Stages">Where the packets' hold goes, per stage (<see cref="Metrics.Stages"/>): the primary's capture,
    /// replicate (per standby), release and hold since its epoch began; a standby's journal and batch sizes since its log
    /// started. Null when the node has none.</param>
    public sealed record AppFigures(string App, AppRole Role, long Epoch, long PacketsCaptured, long PacketsReleased,
        long LogDepth, CheckpointInfo? LastCheckpoint, TimeSpan? LastShip, long CheckpointCount, long Takeovers,
        long PacketsReplayedTotal, SwitchInfo? LastSwitch, IReadOnlyList<Capture.StandbyLag>? StandbyLags = null,
        string? DroppedBehind = null, int? OpenConnections = null, IReadOnlyList<Metrics.StageFigures>? Stages = null,
        IReadOnlyList<Checkpoint.CheckpointerProtocol.Refusal>? CheckpointRefusals = null) : IControlMessage;

    /// <summary>Asked of a local app actor. Replies <see cref="AppFigures"/>. Never leaves the node.</summary>
    public sealed record GetAppFigures(string App);
}
