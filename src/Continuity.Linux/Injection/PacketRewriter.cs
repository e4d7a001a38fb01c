using System.Buffers.Binary;
using System.Net;
using Continuity.Core.Platform;

namespace Continuity.Linux.Injection;

/// <summary>A packet that cannot be parsed as IPv4 TCP/UDP; the message says which field is wrong.</summary>
public sealed class MalformedPacketException(string reason) : Exception(reason);

/// <summary>The fields of an IPv4 packet the replay needs. Addresses are in host order.</summary>
public readonly record struct IpPacketInfo(
    byte Protocol,
    uint SourceAddress,
    uint DestinationAddress,
    int HeaderLength,
    int TotalLength,
    bool IsFragment,
    ushort SourcePort,
    ushort DestinationPort,
    uint Sequence,
    uint Acknowledgment,
    byte TcpFlags,
    int TransportHeaderLength,
    int PayloadLength)
{
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10;

    public bool IsTcp => Protocol == Tcp && TransportHeaderLength > 0;
    public bool IsUdp => Protocol == Udp && TransportHeaderLength > 0;
    public bool HasAck => IsTcp && (TcpFlags & Ack) != 0;

    /// <summary>The sequence number after this segment: SYN and FIN each take one.</summary>
    public uint SequenceEnd => unchecked(Sequence + (uint)PayloadLength + ((TcpFlags & Syn) != 0 ? 1u : 0u) + ((TcpFlags & Fin) != 0 ? 1u : 0u));
}

/// <summary>
/// Pure functions over IPv4 TCP/UDP packets for the replay: parsing, connection keys, ACK clamping and
/// checksums. Span-based and allocation-free except for the <see cref="ConnectionKey"/>'s addresses.
/// </summary>
public static class PacketRewriter
{
    private const int IpMinHeader = 20;

    public static IpPacketInfo Parse(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < IpMinHeader)
            throw new MalformedPacketException($"Packet of {packet.Length} bytes is shorter than an IPv4 header (20 bytes).");
        var version = packet[0] >> 4;
        if (version != 4)
            throw new MalformedPacketException($"Packet is not IPv4: its version field is {version}.");
        var ihl = (packet[0] & 0x0f) * 4;
        if (ihl < IpMinHeader)
            throw new MalformedPacketException($"IPv4 header length (IHL) is {ihl} bytes: at least 20 are required.");
        if (ihl > packet.Length)
            throw new MalformedPacketException($"IPv4 header length (IHL) is {ihl} bytes but the packet has only {packet.Length}.");
        int total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        if (total < ihl)
            throw new MalformedPacketException($"IPv4 total length {total} is smaller than its header length {ihl}.");
        if (total > packet.Length)
            throw new MalformedPacketException($"IPv4 total length {total} exceeds the {packet.Length} bytes present: the packet is truncated.");

        var flagsFragment = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
        var moreFragments = (flagsFragment & 0x2000) != 0;
        var fragmentOffset = flagsFragment & 0x1fff;
        var protocol = packet[9];
        var src = BinaryPrimitives.ReadUInt32BigEndian(packet[12..]);
        var dst = BinaryPrimitives.ReadUInt32BigEndian(packet[16..]);
        var isFragment = moreFragments || fragmentOffset != 0;
        var info = new IpPacketInfo(protocol, src, dst, ihl, total, isFragment, 0, 0, 0, 0, 0, 0, total - ihl);
        if (fragmentOffset != 0) return info; // no transport header in a later fragment

        var l4 = packet[ihl..total];
        switch (protocol)
        {
            case IpPacketInfo.Tcp:
            {
                if (l4.Length < 20)
                    throw new MalformedPacketException($"TCP header needs 20 bytes but only {l4.Length} follow the IPv4 header.");
                var dataOffset = (l4[12] >> 4) * 4;
                if (dataOffset < 20)
                    throw new MalformedPacketException($"TCP data offset is {dataOffset} bytes: at least 20 are required.");
                if (dataOffset > l4.Length)
                    throw new MalformedPacketException($"TCP data offset is {dataOffset} bytes but only {l4.Length} follow the IPv4 header.");
                return info with
                {
                    SourcePort = BinaryPrimitives.ReadUInt16BigEndian(l4),
                    DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]),
                    Sequence = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]),
                    Acknowledgment = BinaryPrimitives.ReadUInt32BigEndian(l4[8..]),
                    TcpFlags = l4[13],
                    TransportHeaderLength = dataOffset,
                    PayloadLength = l4.Length - dataOffset,
                };
            }
            case IpPacketInfo.Udp:
            {
                if (l4.Length < 8)
                    throw new MalformedPacketException($"UDP header needs 8 bytes but only {l4.Length} follow the IPv4 header.");
                int udpLength = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
                if (!isFragment && (udpLength < 8 || udpLength > l4.Length))
                    throw new MalformedPacketException($"UDP length field {udpLength} does not fit the {l4.Length} bytes after the IPv4 header.");
                return info with
                {
                    SourcePort = BinaryPrimitives.ReadUInt16BigEndian(l4),
                    DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]),
                    TransportHeaderLength = 8,
                    PayloadLength = (isFragment ? l4.Length : udpLength) - 8,
                };
            }
            default:
                return info;
        }
    }

    /// <summary>Key of a packet that a client sent to the server (the client is the source).</summary>
    public static ConnectionKey InboundKey(in IpPacketInfo p) =>
        new(p.Protocol, ToAddress(p.SourceAddress), p.SourcePort, ToAddress(p.DestinationAddress), p.DestinationPort);

    /// <summary>Key of a packet that the server sent to a client (the client is the destination).</summary>
    public static ConnectionKey OutboundKey(in IpPacketInfo p) =>
        new(p.Protocol, ToAddress(p.DestinationAddress), p.DestinationPort, ToAddress(p.SourceAddress), p.SourcePort);

    public static ConnectionKey InboundKey(ReadOnlySpan<byte> packet) => InboundKey(Parse(packet));

    /// <summary>TCP serial-number order (RFC 1982 over 2^32): is <paramref name="a"/> after <paramref name="b"/>?</summary>
    public static bool IsAfter(uint a, uint b) => unchecked((int)(a - b)) > 0;

    /// <summary>
    /// Lowers the ACK number of a TCP packet to <paramref name="limit"/> when it acknowledges more than that,
    /// and fixes the TCP checksum. Linux discards a segment that acknowledges data the (restored) server has not
    /// sent yet together with its payload ("ack of unsent data"); clamped, the payload is accepted.
    /// </summary>
    /// <returns>True when the packet was changed.</returns>
    public static bool ClampAck(Span<byte> packet, uint limit)
    {
        var p = Parse(packet);
        if (!p.HasAck || !IsAfter(p.Acknowledgment, limit)) return false;
        if (p.IsFragment)
            throw new NotSupportedException("Cannot clamp the ACK of a fragmented TCP packet: its checksum covers bytes in other fragments.");
        BinaryPrimitives.WriteUInt32BigEndian(packet[(p.HeaderLength + 8)..], limit);
        WriteTransportChecksum(packet, p);
        return true;
    }

    /// <summary>
    /// Recomputes the IPv4 header checksum and, for unfragmented TCP/UDP, the transport checksum. Needed before
    /// injection even of unmodified packets: a packet queued from a veth or loopback may carry only the partial
    /// checksum of checksum offload, which the receiving stack rejects once the packet is re-sent as a frame.
    /// </summary>
    public static void RecomputeChecksums(Span<byte> packet)
    {
        var p = Parse(packet);
        WriteIpChecksum(packet, p.HeaderLength);
        if (!p.IsFragment && (p.IsTcp || p.IsUdp))
            WriteTransportChecksum(packet, p);
    }

    /// <summary>True when the IPv4 header checksum and (unfragmented) TCP/UDP checksum are right.</summary>
    public static bool ChecksumsAreValid(ReadOnlySpan<byte> packet)
    {
        var p = Parse(packet);
        if (Fold(Sum(packet[..p.HeaderLength], 0)) != 0xffff) return false;
        if (p.IsFragment || !(p.IsTcp || p.IsUdp)) return true;
        var l4 = Transport(packet, p);
        if (p.IsUdp && BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) == 0) return true; // "no checksum" is legal in IPv4 UDP
        return Fold(Sum(l4, PseudoHeaderSum(packet, p))) == 0xffff;
    }

    public static ushort IpHeaderChecksum(ReadOnlySpan<byte> header)
    {
        // Sum with the checksum field taken as zero.
        var sum = Sum(header, 0) - BinaryPrimitives.ReadUInt16BigEndian(header[10..]);
        return (ushort)~Fold(sum);
    }

    private static void WriteIpChecksum(Span<byte> packet, int headerLength)
    {
        var header = packet[..headerLength];
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], (ushort)~Fold(Sum(header, 0)));
    }

    private static void WriteTransportChecksum(Span<byte> packet, in IpPacketInfo p)
    {
        var l4 = Transport(packet, p);
        var field = p.IsTcp ? 16 : 6;
        BinaryPrimitives.WriteUInt16BigEndian(l4[field..], 0);
        var checksum = (ushort)~Fold(Sum(l4, PseudoHeaderSum(packet, p)));
        if (p.IsUdp && checksum == 0) checksum = 0xffff; // 0 would mean "no checksum"
        BinaryPrimitives.WriteUInt16BigEndian(l4[field..], checksum);
    }

    private static ulong PseudoHeaderSum(ReadOnlySpan<byte> packet, in IpPacketInfo p) =>
        (p.SourceAddress >> 16) + (p.SourceAddress & 0xffff)
        + (p.DestinationAddress >> 16) + (p.DestinationAddress & 0xffff)
        + p.Protocol + (ulong)(p.TransportHeaderLength + p.PayloadLength);

    // The bytes a TCP/UDP checksum covers. For UDP that is the UDP length, not the IP payload: a datagram padded
    // inside its IP packet is trimmed by the receiving stack before the checksum is checked (Linux udp_rcv), so a
    // checksum over the padding would make the stack drop the replayed datagram.
    private static Span<byte> Transport(Span<byte> packet, in IpPacketInfo p) =>
        packet.Slice(p.HeaderLength, p.TransportHeaderLength + p.PayloadLength);

    private static ReadOnlySpan<byte> Transport(ReadOnlySpan<byte> packet, in IpPacketInfo p) =>
        packet.Slice(p.HeaderLength, p.TransportHeaderLength + p.PayloadLength);

    private static ulong Sum(ReadOnlySpan<byte> data, ulong sum)
    {
        var i = 0;
        for (; i + 1 < data.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length)
            sum += (ulong)data[i] << 8; // odd length: pad with a zero byte
        return sum;
    }

    private static ushort Fold(ulong sum)
    {
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)sum;
    }

    private static IPAddress ToAddress(uint hostOrder)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, hostOrder);
        return new IPAddress(bytes);
    }
}
