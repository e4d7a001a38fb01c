namespace Continuity.Core.Log;

/// <summary>
/// One inbound packet in an application's log. <paramref name="Seq"/> is the log sequence number
/// given by the primary's capture (increasing by one per packet within an epoch); a checkpoint's
/// mark is the Seq of the last packet the checkpointed program had received.
/// </summary>
public sealed record LoggedPacket(long Seq, byte[] Packet);
