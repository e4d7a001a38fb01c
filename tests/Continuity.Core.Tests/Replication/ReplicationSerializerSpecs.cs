using Akka.Actor;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using Continuity.Core.Log;
using Continuity.Core.Replication;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Replication;

public sealed class ReplicationSerializerSpecs() : TestKit(TestConfig.Node())
{
    private object RoundTrip(object message)
    {
        var serialization = Sys.Serialization;
        var serializer = serialization.FindSerializerFor(message);
        Assert.IsType<ReplicationSerializer>(serializer); // bound by reference.conf
        var bytes = serializer.ToBinary(message);
        return serialization.Deserialize(bytes, serializer.Identifier, Akka.Serialization.Serialization.ManifestFor(serializer, message));
    }

    [Fact]
    public void Binary_serializer_round_trips_a_packet_batch()
    {
        var packets = new[] { new LoggedPacket(41, [1, 2, 3]), new LoggedPacket(42, []), new LoggedPacket(43, new byte[1500]) };
        var back = Assert.IsType<Append>(RoundTrip(new Append("kv", 7, 41, packets)));
        Assert.Equal(("kv", 7L, 41L, 43L), (back.App, back.Epoch, back.FirstSeq, back.LastSeq));
        Assert.Equal(packets.Select(p => (p.Seq, Convert.ToHexString(p.Packet))), back.Packets.Select(p => (p.Seq, Convert.ToHexString(p.Packet))));
    }

    [Fact]
    public void Binary_serializer_round_trips_acks_chunks_and_markers()
    {
        Assert.Equal(new Appended("kv", 3, "akka.tcp://continuity@127.0.0.1:4053", 99), RoundTrip(new Appended("kv", 3, "akka.tcp://continuity@127.0.0.1:4053", 99)));
        var chunk = Assert.IsType<CheckpointChunk>(RoundTrip(new CheckpointChunk("kv", 3, "e3-1", 12, 1, 4, [9, 8], new byte[32])));
        Assert.Equal(("e3-1", 12L, 1, 4, 2), (chunk.Id, chunk.Mark, chunk.Index, chunk.Count, chunk.Bytes.Length));
        Assert.Equal(new CheckpointComplete("kv", 3, "e3-1", 12), RoundTrip(new CheckpointComplete("kv", 3, "e3-1", 12)));
        Assert.Equal(new CheckpointStored("kv", 3, "n", "e3-1", 12), RoundTrip(new CheckpointStored("kv", 3, "n", "e3-1", 12)));
        Assert.Equal(new CheckpointChunkReceived("kv", 3, "n", "e3-1", 7), RoundTrip(new CheckpointChunkReceived("kv", 3, "n", "e3-1", 7)));
    }

    [Fact]
    public void A_truncated_frame_fails_cleanly()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(Append));
        var bytes = serializer.ToBinary(new Append("kv", 1, 1, [new LoggedPacket(1, new byte[100])]));
        Assert.ThrowsAny<Exception>(() => serializer.FromBinary(bytes[..^10], "A"));
    }
}
