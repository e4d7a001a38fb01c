using System.Buffers.Binary;
using System.Net;
using Continuity.Core.Platform;
using Continuity.Linux.Injection;
using PacketDotNet;
using Xunit;

namespace Continuity.Linux.Tests;

public sealed class PacketRewriterTests
{
    // 198.18.0.2:40000 -> 198.18.0.50:7000, PSH|ACK seq 1000 ack 2000, payload "hello".
    // tcpdump -vv reports "cksum 0x215b (correct)" for it and accepts the IPv4 header checksum 0x9c3e.
    private const string KnownGoodTcp = "4500002d1234400040069c3ec6120002c61200329c401b58000003e8000007d05018faf0215b000068656c6c6f";

    private static byte[] Known() => Convert.FromHexString(KnownGoodTcp);

    private static byte[] Tcp(uint seq, uint ack, byte flags, int payload = 0)
    {
        var p = Known().AsSpan(0, 40).ToArray().Concat(new byte[payload]).ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(24), seq);
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(28), ack);
        p[33] = flags;
        PacketRewriter.RecomputeChecksums(p);
        return p;
    }

    [Fact]
    public void Parsing_a_tcp_packet_reads_addresses_ports_and_sequence_numbers()
    {
        var p = PacketRewriter.Parse(Known());
        Assert.True(p.IsTcp);
        Assert.Equal(20, p.HeaderLength);
        Assert.Equal(45, p.TotalLength);
        Assert.Equal((ushort)40000, p.SourcePort);
        Assert.Equal((ushort)7000, p.DestinationPort);
        Assert.Equal(1000u, p.Sequence);
        Assert.Equal(2000u, p.Acknowledgment);
        Assert.Equal(5, p.PayloadLength);
        Assert.Equal(1005u, p.SequenceEnd);
        Assert.True(p.HasAck);
    }

    [Fact]
    public void The_inbound_key_names_the_client_as_source_and_the_outbound_key_as_destination()
    {
        var p = PacketRewriter.Parse(Known());
        var expected = new ConnectionKey(6, IPAddress.Parse("198.18.0.2"), 40000, IPAddress.Parse("198.18.0.50"), 7000);
        Assert.Equal(expected, PacketRewriter.InboundKey(p));
        var reply = p with { SourceAddress = p.DestinationAddress, DestinationAddress = p.SourceAddress, SourcePort = 7000, DestinationPort = 40000 };
        Assert.Equal(expected, PacketRewriter.OutboundKey(reply));
    }

    [Fact]
    public void A_known_good_packet_has_valid_checksums_and_recomputing_them_changes_nothing()
    {
        var packet = Known();
        Assert.True(PacketRewriter.ChecksumsAreValid(packet));
        PacketRewriter.RecomputeChecksums(packet);
        Assert.Equal(KnownGoodTcp, Convert.ToHexString(packet).ToLowerInvariant());
    }

    [Fact]
    public void Recomputing_checksums_repairs_zeroed_ones()
    {
        var packet = Known();
        packet[10] = packet[11] = 0;  // IP
        packet[36] = packet[37] = 0;  // TCP
        Assert.False(PacketRewriter.ChecksumsAreValid(packet));
        PacketRewriter.RecomputeChecksums(packet);
        Assert.Equal(KnownGoodTcp, Convert.ToHexString(packet).ToLowerInvariant());
    }

    [Fact]
    public void The_ip_header_checksum_matches_the_textbook_example()
    {
        // The classic worked example (RFC 1071 style, used by Wikipedia): checksum 0xb861.
        var header = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Assert.Equal(0xb861, PacketRewriter.IpHeaderChecksum(header));
    }

    [Fact]
    public void An_ack_after_the_limit_is_clamped_to_it_with_a_valid_checksum()
    {
        var packet = Known();
        Assert.True(PacketRewriter.ClampAck(packet, 1990));
        var p = PacketRewriter.Parse(packet);
        Assert.Equal(1990u, p.Acknowledgment);
        Assert.True(PacketRewriter.ChecksumsAreValid(packet));
        // An independent implementation agrees.
        var tcp = (TcpPacket)new IPv4Packet(new PacketDotNet.Utils.ByteArraySegment(packet)).PayloadPacket;
        Assert.True(tcp.ValidChecksum);
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(tcp.PayloadData));
    }

    [Fact]
    public void An_ack_at_or_before_the_limit_is_left_alone()
    {
        var packet = Known();
        Assert.False(PacketRewriter.ClampAck(packet, 2000));
        Assert.False(PacketRewriter.ClampAck(packet, 5000));
        Assert.Equal(KnownGoodTcp, Convert.ToHexString(packet).ToLowerInvariant());
    }

    [Fact]
    public void Clamping_uses_serial_number_arithmetic_across_the_wrap()
    {
        // ack 5 is 21 bytes after 0xfffffff0: clamped.
        var wrapped = Tcp(seq: 1, ack: 5, flags: IpPacketInfo.Ack);
        Assert.True(PacketRewriter.ClampAck(wrapped, 0xfffffff0));
        Assert.Equal(0xfffffff0u, PacketRewriter.Parse(wrapped).Acknowledgment);
        Assert.True(PacketRewriter.ChecksumsAreValid(wrapped));

        // ack 0xfffffff0 is before 5: untouched.
        var before = Tcp(seq: 1, ack: 0xfffffff0, flags: IpPacketInfo.Ack);
        Assert.False(PacketRewriter.ClampAck(before, 5));
    }

    [Fact]
    public void A_packet_without_the_ack_flag_is_never_clamped()
    {
        var syn = Tcp(seq: 100, ack: 9999, flags: IpPacketInfo.Syn);
        Assert.False(PacketRewriter.ClampAck(syn, 1));
        Assert.Equal(101u, PacketRewriter.Parse(syn).SequenceEnd);
    }

    [Fact]
    public void Syn_and_fin_each_count_one_in_the_sequence_end()
    {
        Assert.Equal(111u, PacketRewriter.Parse(Tcp(100, 0, IpPacketInfo.Fin | IpPacketInfo.Ack, payload: 10)).SequenceEnd);
        Assert.Equal(0u, PacketRewriter.Parse(Tcp(0xffffffff, 0, IpPacketInfo.Syn)).SequenceEnd);
    }

    [Fact]
    public void Udp_checksums_are_computed_over_the_pseudo_header()
    {
        var udp = Convert.FromHexString("45000021000040004011000 0c6120002c6120032d4311b59000d0000776f726c64".Replace(" ", ""));
        PacketRewriter.RecomputeChecksums(udp);
        Assert.True(PacketRewriter.ChecksumsAreValid(udp));
        var parsed = (UdpPacket)new IPv4Packet(new PacketDotNet.Utils.ByteArraySegment(udp)).PayloadPacket;
        Assert.True(parsed.ValidChecksum);
        var p = PacketRewriter.Parse(udp);
        Assert.True(p.IsUdp);
        Assert.Equal(5, p.PayloadLength);
    }

    public static TheoryData<string, string> Malformed => new()
    {
        { "", "shorter than an IPv4 header" },
        { "4500001c", "shorter than an IPv4 header" },
        { "6000000000000000000000000000000000000000", "not IPv4" },
        { "4400001400000000400600000000000000000000", "(IHL) is 16 bytes" },
        { "4f00001400000000400600000000000000000000", "but the packet has only 20" },
        { "4500003000000000400600000000000000000000", "truncated" },
        { "4500000a00000000400600000000000000000000", "smaller than its header length" },
        { "4500001a00000000400600000000000000000000" + "000000000000", "TCP header needs 20 bytes" },
        { "4500002800000000400600000000000000000000" + "0000000000000000000000004000000000000000", "TCP data offset is 16" },
        { "4500002800000000400600000000000000000000" + "000000000000000000000000f000000000000000", "TCP data offset is 60" },
        { "4500001a00000000401100000000000000000000" + "000000000000", "UDP header needs 8 bytes" },
        { "4500001c00000000401100000000000000000000" + "0000000000ff0000", "UDP length field 255" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_packets_are_rejected_with_the_reason(string hex, string reason)
    {
        var e = Assert.Throws<MalformedPacketException>(() => PacketRewriter.Parse(Convert.FromHexString(hex)));
        Assert.Contains(reason, e.Message);
        Assert.Throws<MalformedPacketException>(() => PacketRewriter.ClampAck(Convert.FromHexString(hex), 0));
        Assert.Throws<MalformedPacketException>(() => PacketRewriter.RecomputeChecksums(Convert.FromHexString(hex)));
    }
}
