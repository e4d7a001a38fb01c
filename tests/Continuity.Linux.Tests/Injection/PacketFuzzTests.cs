using System.Buffers.Binary;
using System.Diagnostics;
using Continuity.Linux.Injection;
using Xunit;

namespace Continuity.Linux.Tests.Injection;

/// <summary>
/// Malformed packets for the replay's packet code: a logged packet comes from the kernel, but it travels through
/// the network and a journal before the replay reads it again, and a hostile client chooses its bytes. Whatever
/// they are, parsing raises only <see cref="MalformedPacketException"/> (with a reason), the rewriting functions
/// only their documented exceptions, and a packet that parses gets checksums the receiving stack accepts.
/// Pure functions: no namespaces, no root. Seeds are fixed.
/// </summary>
public sealed class PacketFuzzTests
{
    // 198.18.0.2:40000 -> 198.18.0.50:7000, PSH|ACK seq 1000 ack 2000, payload "hello" (see PacketRewriterTests).
    private const string Tcp = "4500002d1234400040069c3ec6120002c61200329c401b58000003e8000007d05018faf0215b000068656c6c6f";
    // The same with TCP options: NOP NOP timestamps(10) + MSS(4) + NOP x4 (data offset 40).
    private const string TcpOptions = "450000411234400040060000c6120002c61200329c401b58000003e8000007d0a018faf00000000001010" +
                                      "80a0000000100000002020405b4010101016869";
    // UDP 198.18.0.2:54321 -> 198.18.0.50:7001 "world".
    private const string Udp = "450000210000400040110000c6120002c6120032d4311b59000d0000776f726c64";
    // IP options (IHL 6: one NOP x4) before a TCP segment.
    private const string IpOptions = "460000311234400040060000c6120002c612003201010101" + "9c401b58000003e8000007d05018faf00000000068656c6c6f";
    // The first fragment (MF) of a UDP datagram, and a later one.
    private const string FirstFragment = "450000210000200040110000c6120002c6120032d4311b590100000061626364" + "65";
    private const string LaterFragment = "450000210000000540110000c6120002c6120032" + "000102030405060708090a0b0c";

    private static readonly byte[][] Samples =
        [.. new[] { Tcp, TcpOptions, Udp, IpOptions, FirstFragment, LaterFragment }.Select(Fix)];

    private static byte[] Fix(string hex)
    {
        var p = Convert.FromHexString(hex);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        try { PacketRewriter.RecomputeChecksums(p); } catch (MalformedPacketException) { }
        return p;
    }

    /// <summary>Every entry point over one packet: only the documented exceptions, and consistent answers.</summary>
    private static void Check(byte[] original, string what)
    {
        var watch = Stopwatch.StartNew();
        IpPacketInfo info;
        try
        {
            info = PacketRewriter.Parse(original);
        }
        catch (MalformedPacketException e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Message), what);
            Assert.False(PacketInspector.Instance.TryReadInbound(original, out _), $"{what}: unparsable yet read as inbound");
            Assert.Throws<MalformedPacketException>(() => PacketRewriter.RecomputeChecksums(original.ToArray()));
            Assert.Throws<MalformedPacketException>(() => PacketRewriter.ClampAck(original.ToArray(), 0));
            Assert.Throws<MalformedPacketException>(() => PacketRewriter.ChecksumsAreValid(original));
            return;
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: Parse raised {e.GetType().Name}: {e.Message}\n{Convert.ToHexString(original)}");
            return;
        }

        Assert.InRange(info.HeaderLength, 20, original.Length);
        Assert.InRange(info.TotalLength, info.HeaderLength, original.Length);
        Assert.InRange(info.TransportHeaderLength + info.PayloadLength, 0, info.TotalLength - info.HeaderLength);
        var inbound = PacketInspector.Instance.TryReadInbound(original, out _);
        Assert.Equal(!info.IsFragment && (info.IsTcp || info.IsUdp), inbound);

        var fixedUp = original.ToArray();
        PacketRewriter.RecomputeChecksums(fixedUp);
        Assert.True(PacketRewriter.ChecksumsAreValid(fixedUp), $"{what}: recomputed checksums are not valid: {Convert.ToHexString(original)}");
        if (!info.IsFragment && (info.IsTcp || info.IsUdp))
            Assert.True(IndependentTransportChecksumIsValid(fixedUp), $"{what}: the stack would refuse the transport checksum");

        var clamped = original.ToArray();
        try
        {
            // ClampAck rewrites the TCP checksum only (the IP header is unchanged, bit flips and all).
            if (PacketRewriter.ClampAck(clamped, 0)) Assert.True(IndependentTransportChecksumIsValid(clamped), $"{what}: clamped with a bad checksum");
        }
        catch (NotSupportedException) { Assert.True(info.IsFragment, $"{what}: NotSupported for an unfragmented packet"); }

        var acked = original.ToArray();
        try { PacketInspector.Instance.SetAcknowledgment(acked, 12345); }
        catch (ArgumentException) { Assert.False(info.IsTcp, $"{what}: SetAcknowledgment refused a TCP packet"); }

        var stamped = original.ToArray();
        PacketInspector.Instance.RemoveTimestamp(stamped);
        Assert.Equal(original.Length, stamped.Length);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"{what}: took {watch.Elapsed}");
    }

    /// <summary>The TCP/UDP checksum as the receiving Linux stack checks it: over the segment (TCP) or the UDP
    /// length (a UDP datagram is trimmed to its own length first), with the pseudo-header.</summary>
    private static bool IndependentTransportChecksumIsValid(byte[] p)
    {
        var ihl = (p[0] & 0xf) * 4;
        var total = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(2));
        var length = p[9] == 17 ? BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(ihl + 4)) : total - ihl;
        if (p[9] == 17 && BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(ihl + 6)) == 0) return true;
        ulong sum = 0;
        for (var i = 12; i < 20; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(i));
        sum += p[9] + (ulong)length;
        for (var i = 0; i < length; i += 2)
            sum += i + 1 < length ? BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(ihl + i)) : (ulong)p[ihl + i] << 8;
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return sum == 0xffff;
    }

    [Fact]
    public void The_samples_are_well_formed()
    {
        foreach (var s in Samples) Check(s, "sample");
        Assert.All(Samples.Take(4), s => Assert.True(PacketInspector.Instance.TryReadInbound(s, out _)));
    }

    [Fact]
    public void Every_truncation_of_every_sample_is_refused_or_read_within_its_bounds()
    {
        var cases = 0;
        foreach (var s in Samples)
            for (var n = 0; n <= s.Length; n++, cases++)
                Check(s[..n], $"truncation to {n} bytes");
        Assert.True(cases > 250);
    }

    [Fact]
    public void Random_bytes_only_ever_raise_MalformedPacketException()
    {
        var random = new Random(6_1001);
        for (var i = 0; i < 5000; i++)
        {
            var p = new byte[random.Next(0, 120)];
            random.NextBytes(p);
            // Half of them get a plausible first byte and length, so the deeper paths are reached too.
            if (i % 2 == 0 && p.Length >= 20)
            {
                p[0] = (byte)(0x40 | random.Next(5, 16));
                BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)random.Next(0, p.Length + 2));
                p[9] = (byte)(random.Next(3) switch { 0 => 6, 1 => 17, _ => random.Next(256) });
            }
            Check(p, $"random case {i}");
        }
    }

    [Fact]
    public void Bit_flips_and_huge_length_fields_of_valid_packets_only_ever_raise_MalformedPacketException()
    {
        var random = new Random(6_1002);
        for (var i = 0; i < 8000; i++)
        {
            var p = Samples[i % Samples.Length].ToArray();
            if (i % 4 == 3)
            {
                // A length field set to an extreme: IP total length, UDP length, TCP data offset, IHL.
                switch (random.Next(4))
                {
                    case 0: BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)(random.Next(2) == 0 ? 0xffff : random.Next(0, 21))); break;
                    case 1: if (p.Length >= 28) BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), (ushort)random.Next(0, 0x10000)); break;
                    case 2: if (p.Length >= 33) p[32] = (byte)(random.Next(16) << 4); break;
                    case 3: p[0] = (byte)(0x40 | random.Next(16)); break;
                }
            }
            else
            {
                var flips = 1 + random.Next(3);
                for (var f = 0; f < flips; f++) p[random.Next(p.Length)] ^= (byte)(1 << random.Next(8));
            }
            Check(p, $"mutation case {i}");
        }
    }

    [Fact]
    public void A_udp_datagram_padded_inside_its_ip_packet_gets_the_checksum_the_stack_checks()
    {
        // UDP length 13 ("world"), IP payload 17: four bytes of padding after the datagram.
        var p = Convert.FromHexString("450000250000400040110000c6120002c6120032d4311b59000d0000776f726c64deadbeef");
        PacketRewriter.RecomputeChecksums(p);
        Assert.True(IndependentTransportChecksumIsValid(p));
        Assert.True(PacketRewriter.ChecksumsAreValid(p));
    }
}
