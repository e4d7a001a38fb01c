using Akka.Event;
using Continuity.Core.Log;

namespace Continuity.Core.Replication;

/// <summary>
/// Data-path messages between a primary and its standbys. They do NOT implement IControlMessage:
/// they are hot (one per packet batch, two per 256 KiB of checkpoint) and have their own binary
/// serializer (<see cref="ReplicationSerializer"/>), bound in reference.conf.
/// </summary>
public static class ReplicationProtocol
{
    /// <summary>A batch of captured packets with consecutive Seq starting at <paramref name="FirstSeq"/>.
    /// Also the event the standby journal persists.</summary>
    public sealed record Append(string App, long Epoch, long FirstSeq, IReadOnlyList<LoggedPacket> Packets)
    {
        public long LastSeq => FirstSeq + Packets.Count - 1;
    }

    /// <summary>
    /// From a primary to a standby it (re)adds to its set: its batches to this standby start at <paramref name="FirstSeq"/>.
    /// A standby whose log ends before that accepts the hole instead of refusing every batch as a lost one, and is not
    /// elected until a checkpoint covers the hole. Rare (once per standby added), so it travels as a control message,
    /// in order with the batches (same sender, same receiver).
    /// </summary>
    public sealed record StreamFrom(string App, long Epoch, long FirstSeq) : Continuity.Core.Serialization.IControlMessage;

    /// <summary>The standby <paramref name="Node"/> has durably logged every packet up to <paramref name="Seq"/>.</summary>
    public sealed record Appended(string App, long Epoch, string Node, long Seq);

    /// <summary>One piece of a checkpoint archive. <paramref name="Sha256"/> is the hash of the whole archive,
    /// repeated in every chunk so the receiver needs no separate header message.</summary>
    public sealed record CheckpointChunk(string App, long Epoch, string Id, long Mark, int Index, int Count,
        byte[] Bytes, byte[] Sha256);

    /// <summary>The standby <paramref name="Node"/> wrote chunk <paramref name="Index"/> of checkpoint <paramref name="Id"/>:
    /// the primary sends the next one only then (a few in flight), so that an image never fills the connection the
    /// cluster's heartbeats and the packet log share.</summary>
    /// <remarks>A shipper stopped for a newer checkpoint still gets the acknowledgements of the chunks it had in flight:
    /// expected, so not logged as dead letters (a hundred lines an hour with a checkpoint every 2 s).</remarks>
    public sealed record CheckpointChunkReceived(string App, long Epoch, string Node, string Id, int Index) : IDeadLetterSuppression;

    /// <summary>The standby <paramref name="Node"/> holds checkpoint <paramref name="Id"/> complete and verified.</summary>
    /// <remarks>Not a dead letter when its shipper stopped for a newer checkpoint (see <see cref="CheckpointChunkReceived"/>).</remarks>
    public sealed record CheckpointStored(string App, long Epoch, string Node, string Id, long Mark) : IDeadLetterSuppression;

    /// <summary>The standby <paramref name="Node"/> refused a checkpoint (bad checksum, disk error).</summary>
    /// <remarks>Not a dead letter when its shipper stopped for a newer checkpoint (see <see cref="CheckpointChunkReceived"/>).</remarks>
    public sealed record CheckpointRejected(string App, long Epoch, string Node, string Id, string Reason) : IDeadLetterSuppression;

    /// <summary>Told to (and persisted by) a StandbyLog: the packets up to <paramref name="Mark"/> of
    /// <paramref name="Epoch"/> are inside a complete checkpoint and no longer needed.</summary>
    public sealed record CheckpointComplete(string App, long Epoch, string Id, long Mark);
}
