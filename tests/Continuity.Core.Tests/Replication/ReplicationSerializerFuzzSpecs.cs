using System.Buffers.Binary;
using System.Diagnostics;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using Continuity.Core.Log;
using Continuity.Core.Replication;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace Continuity.Core.Tests.Replication;

/// <summary>
/// Malformed frames for the data-path serializer: it reads what remoting hands it from any peer and every row of the
/// standby journal, so whatever the bytes, it either returns the message they encode or throws a
/// SerializationException naming the message type, the field and its offset. Never another exception type, never a
/// hang, never a large allocation. Seeds are fixed: a failure names its case and reproduces.
/// </summary>
public sealed class ReplicationSerializerFuzzSpecs() : TestKit(TestConfig.Node())
{
    private SerializerWithStringManifest Serializer =>
        (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(Append));

    private static IEnumerable<object> Samples()
    {
        yield return new Append("kv", 7, 41, [new LoggedPacket(41, [1, 2, 3]), new LoggedPacket(42, []), new LoggedPacket(43, new byte[60])]);
        yield return new Append("", 0, 0, []);
        yield return new Append("ключ-значение", long.MaxValue, 1, [new LoggedPacket(1, [0xff])]);
        yield return new Appended("kv", 3, "akka.tcp://continuity@127.0.0.1:4053", 99);
        yield return new CheckpointChunk("kv", 3, "e3-20260101120000000-1", 12, 1, 4, [9, 8, 7], new byte[32]);
        yield return new CheckpointChunkReceived("kv", 3, "n2", "e3-1", 7);
        yield return new CheckpointStored("kv", 3, "n2", "e3-1", 12);
        yield return new CheckpointRejected("kv", 3, "n2", "e3-1", "SHA-256 mismatch");
        yield return new CheckpointComplete("kv", 3, "e3-1", 12);
    }

    private (byte[] Bytes, string Manifest)[] Encoded() =>
        Samples().Select(m => (Serializer.ToBinary(m), Serializer.Manifest(m))).ToArray();

    /// <summary>Parses and checks the contract: success means the bytes are exactly the encoding of what came back
    /// (so nothing was skipped or invented); failure is a SerializationException that says where.</summary>
    private void Check(byte[] bytes, string manifest, string what)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        try
        {
            var message = Serializer.FromBinary(bytes, manifest);
            Assert.Equal(manifest, Serializer.Manifest(message));
            Assert.True(bytes.AsSpan().SequenceEqual(Serializer.ToBinary(message)),
                $"{what}: parsed, but re-encoding gives other bytes (something was skipped or invented)");
        }
        catch (SerializationException e)
        {
            Assert.Contains($"'{manifest}'", e.Message);
            if (manifest.Length == 1 && "AaCSRK".Contains(manifest[0])) Assert.Contains("offset", e.Message);
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name} instead of SerializationException: {e.Message}\nbytes: {Convert.ToHexString(bytes)}");
        }
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"{what}: took {watch.Elapsed}");
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 64 * 1024 + 16L * bytes.Length, $"{what}: allocated {allocated} bytes for a {bytes.Length}-byte frame");
    }

    [Fact]
    public void Every_truncation_of_every_message_is_refused_as_truncated()
    {
        var cases = 0;
        foreach (var (bytes, manifest) in Encoded())
            for (var n = 0; n < bytes.Length; n++, cases++)
            {
                var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes[..n], manifest));
                Assert.Contains("truncated", e.Message);
            }
        Assert.True(cases > 300, $"only {cases} cases");
    }

    [Fact]
    public void Random_bytes_under_every_manifest_never_raise_anything_but_a_SerializationException()
    {
        var random = new Random(6_0001);
        string[] manifests = ["A", "a", "C", "S", "R", "K", "", "Z"];
        for (var i = 0; i < 4000; i++)
        {
            var bytes = new byte[random.Next(0, 200)];
            random.NextBytes(bytes);
            Check(bytes, manifests[i % manifests.Length], $"random case {i}");
        }
    }

    [Fact]
    public void Bit_flips_of_valid_messages_parse_to_what_they_encode_or_are_refused()
    {
        var random = new Random(6_0002);
        var samples = Encoded();
        for (var i = 0; i < 6000; i++)
        {
            var (original, manifest) = samples[i % samples.Length];
            var bytes = original.ToArray();
            var flips = 1 + random.Next(3);
            for (var f = 0; f < flips; f++) bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
            Check(bytes, manifest, $"bit-flip case {i}");
        }
    }

    [Fact]
    public void Huge_or_negative_length_fields_at_every_offset_are_refused_without_allocating_them()
    {
        int[] values = [int.MaxValue, int.MinValue, -1, 0x7fff_fff0, 1 << 30, 65_536];
        var cases = 0;
        foreach (var (original, manifest) in Encoded())
            for (var at = 0; at + 4 <= original.Length; at++)
                foreach (var v in values)
                {
                    var bytes = original.ToArray();
                    BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(at), v);
                    Check(bytes, manifest, $"length {v} at offset {at} of '{manifest}'");
                    cases++;
                }
        Assert.True(cases > 2000, $"only {cases} cases");
    }

    [Fact]
    public void A_truncated_batch_is_refused_with_its_offset()
    {
        var bytes = Serializer.ToBinary(new Append("kv", 1, 1, [new LoggedPacket(1, new byte[100])]));
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes[..^10], "A"));
        // app (4+2), epoch 8, first 8, count 4: the packet's length is at offset 26, its bytes at 30.
        Assert.Equal("malformed replication message 'A' (Append, 120 bytes): packet 0 at offset 26 needs 100 bytes but only 90 remain: " +
                     "the message is truncated", e.Message);
    }

    [Fact]
    public void A_batch_claiming_more_packets_than_its_bytes_can_hold_is_refused_before_allocating_them()
    {
        var bytes = Serializer.ToBinary(new Append("kv", 1, 1, [new LoggedPacket(1, [1])]));
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(22), int.MaxValue);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes, "A"));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024);
        Assert.Contains("packet count at offset 22 is 2147483647 but only 5 bytes follow", e.Message);
    }

    [Fact]
    public void A_batch_whose_sequence_numbers_would_overflow_is_refused()
    {
        var bytes = Serializer.ToBinary(new Append("kv", 1, long.MaxValue - 1, [new LoggedPacket(1, [1]), new LoggedPacket(2, [2]), new LoggedPacket(3, [3])]));
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes, "A"));
        Assert.Contains("overflows the sequence numbers", e.Message);
    }

    [Fact]
    public void Bytes_after_the_last_field_are_refused_rather_than_ignored()
    {
        var bytes = Serializer.ToBinary(new CheckpointComplete("kv", 3, "e3-1", 12)).Concat(new byte[] { 0, 0 }).ToArray();
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes, "K"));
        Assert.Contains("2 unexpected bytes follow the last field", e.Message);
    }

    [Fact]
    public void An_app_name_that_is_not_UTF8_is_refused_rather_than_replaced()
    {
        var bytes = Serializer.ToBinary(new CheckpointComplete("kv", 3, "e3-1", 12));
        bytes[4] = 0xff; // first byte of "kv"
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes, "K"));
        Assert.Contains("app at offset 0 is not valid UTF-8", e.Message);
    }

    [Theory]
    [InlineData("../../etc")]
    [InlineData("/")]
    [InlineData("..")]
    [InlineData("")]
    [InlineData("a/b")]
    public void A_checkpoint_chunk_whose_id_is_not_a_plain_directory_name_is_refused(string id)
    {
        var bytes = Serializer.ToBinary(new CheckpointChunk("kv", 1, id, 1, 0, 1, [1], new byte[32]));
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(bytes, "C"));
        Assert.Contains("checkpoint id at offset 14", e.Message);
        Assert.Contains("is not a safe directory name", e.Message);
    }

    [Fact]
    public void An_unknown_manifest_is_refused_naming_the_known_ones()
    {
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary([1, 2, 3], "Q"));
        Assert.Equal("unknown replication manifest 'Q' (3 bytes): expected one of A, a, C, c, S, R, K", e.Message);
    }
}
