using System.Buffers.Binary;
using System.Net;
using Continuity.Core.Platform;

namespace Continuity.Linux.Injection;

/// <summary><see cref="IPacketInspector"/> over <see cref="PacketRewriter"/>.</summary>
public sealed class PacketInspector : IPacketInspector
{
    public static readonly PacketInspector Instance = new();

    public bool TryReadInbound(ReadOnlySpan<byte> ipPacket, out PacketFields fields)
    {
        fields = default;
        IpPacketInfo p;
        try
        {
            p = PacketRewriter.Parse(ipPacket);
        }
        catch (MalformedPacketException)
        {
            return false;
        }
        if (p.IsFragment || !(p.IsTcp || p.IsUdp)) return false;
        fields = new PacketFields(PacketRewriter.InboundKey(p), p.TcpFlags, p.Sequence,
            p.IsTcp ? p.SequenceEnd : 0, p.Acknowledgment, p.PayloadLength,
            p.IsTcp ? BinaryPrimitives.ReadUInt16BigEndian(ipPacket[(p.HeaderLength + 14)..]) : (ushort)0);
        return true;
    }

    public void SetAcknowledgment(Span<byte> ipPacket, uint ack)
    {
        var p = PacketRewriter.Parse(ipPacket);
        if (!p.IsTcp)
            throw new ArgumentException("Only a TCP packet has an acknowledgment number to set.", nameof(ipPacket));
        BinaryPrimitives.WriteUInt32BigEndian(ipPacket[(p.HeaderLength + 8)..], ack);
        PacketRewriter.RecomputeChecksums(ipPacket);
    }

    public bool RemoveTimestamp(Span<byte> ipPacket)
    {
        var p = PacketRewriter.Parse(ipPacket);
        if (!p.IsTcp || p.IsFragment) return false;
        var options = ipPacket[(p.HeaderLength + 20)..(p.HeaderLength + p.TransportHeaderLength)];
        for (var i = 0; i < options.Length;)
        {
            var kind = options[i];
            if (kind == 0) break;          // end of options
            if (kind == 1) { i++; continue; } // NOP
            if (i + 1 >= options.Length || options[i + 1] < 2 || i + options[i + 1] > options.Length) break;
            var length = options[i + 1];
            if (kind == 8)
            {
                options.Slice(i, length).Fill(1);
                PacketRewriter.RecomputeChecksums(ipPacket);
                return true;
            }
            i += length;
        }
        return false;
    }

    public void RecomputeChecksums(Span<byte> ipPacket) => PacketRewriter.RecomputeChecksums(ipPacket);

    public byte[] BuildHostUnreachable(IPAddress source, IPAddress destination, IPAddress segmentSource,
        ushort segmentSourcePort, IPAddress segmentDestination, ushort segmentDestinationPort, uint sequence)
    {
        // ICMP quotes the offending datagram's IP header and its first 8 bytes: enough for ports and sequence.
        var quoted = BuildTcp(segmentSource, segmentSourcePort, segmentDestination, segmentDestinationPort, sequence, 0,
            IpPacketInfo.Ack, 0).AsSpan(0, 28);
        var packet = new byte[20 + 8 + 28];
        var s = packet.AsSpan();
        s[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(s[2..], (ushort)packet.Length);
        s[8] = 64;
        s[9] = 1; // ICMP
        if (!source.TryWriteBytes(s[12..16], out _) || !destination.TryWriteBytes(s[16..20], out _))
            throw new ArgumentException($"Only IPv4 packets can be built ({source} -> {destination}).");
        var icmp = s[20..];
        icmp[0] = 3; // destination unreachable
        icmp[1] = 1; // host unreachable: RFC 6069 lets it revert one RTO back-off step
        quoted.CopyTo(icmp[8..]);
        var sum = 0u;
        for (var i = 0; i < icmp.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(icmp[i..]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], (ushort)~sum);
        BinaryPrimitives.WriteUInt16BigEndian(s[10..], PacketRewriter.IpHeaderChecksum(s[..20]));
        return packet;
    }

    public byte[] BuildTcp(IPAddress source, ushort sourcePort, IPAddress destination, ushort destinationPort,
        uint sequence, uint acknowledgment, byte flags, ushort window)
    {
        var packet = new byte[40];
        var s = packet.AsSpan();
        s[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(s[2..], 40);
        BinaryPrimitives.WriteUInt16BigEndian(s[6..], 0x4000); // DF
        s[8] = 64;
        s[9] = IpPacketInfo.Tcp;
        if (!source.TryWriteBytes(s[12..16], out _) || !destination.TryWriteBytes(s[16..20], out _))
            throw new ArgumentException($"Only IPv4 packets can be built ({source} -> {destination}).");
        var tcp = s[20..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], acknowledgment);
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], window);
        PacketRewriter.RecomputeChecksums(s);
        return packet;
    }
}
