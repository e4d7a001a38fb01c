using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Continuity.Core.Platform;
using Continuity.Linux.Injection;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Netfilter;
using Continuity.Linux.Network;
using Xunit;

namespace Continuity.Linux.Tests;

public sealed class InjectionTests
{
    private const int Port = 7100;

    [Fact]
    public void An_injected_client_packet_reaches_the_server_and_its_replies_are_swallowed()
    {
        using var lab = new Lab(41);
        const ushort queueNumber = 41;
        NetNs.RunIn(lab.Server, () =>
        {
            new VirtualIp().Add(lab.Vip, 24);
            new IptablesFilter().QueueInbound(new TrafficSelector(lab.Vip, [new PortSpec("tcp", Port)]), queueNumber);
        });

        // Let the handshake through, but hold back and drop every data segment: the first one is the
        // "logged packet" the server never saw, to be replayed through the injection channel.
        var logged = new BlockingCollection<byte[]>();
        using var queue = NetNs.RunIn(lab.Server, () => new NfQueue(queueNumber));
        queue.Start(batch =>
        {
            foreach (var held in batch)
            {
                var p = PacketRewriter.Parse(held.Packet.Span);
                if (p.PayloadLength > 0)
                {
                    if (logged.Count == 0) logged.Add(held.Packet.ToArray());
                    queue.DropUpTo(held.PacketId);
                }
                else queue.AcceptUpTo(held.PacketId);
            }
        });

        using var listener = NetNs.RunIn(lab.Server, () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(lab.Vip, Port));
            l.Listen();
            return l;
        });
        using var client = NetNs.RunIn(lab.Client, () =>
        {
            var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            c.Connect(new IPEndPoint(lab.Vip, Port));
            return c;
        });
        using var server = listener.Accept();

        client.Send("hello"u8);
        Assert.True(logged.TryTake(out var packet, TimeSpan.FromSeconds(5)), "the client's data segment never reached the queue");
        logged.Add(packet);
        Assert.False(server.Poll(TimeSpan.FromMilliseconds(300), SelectMode.SelectRead), "the dropped segment reached the server");

        // As during a switch: all inbound traffic to the VIP is blocked, yet the injection interface is exempt.
        var filter = new IptablesFilter();
        NetNs.RunIn(lab.Server, () => filter.BlockInbound(lab.Vip));
        using var channel = NetNs.RunIn(lab.Server, () => new VethInjectionChannel(lab.Vip));
        channel.CaptureRepliesTo([lab.ClientAddress]); // from the test's thread: the channel remembers its namespace

        var info = PacketRewriter.Parse(packet);
        var key = PacketRewriter.InboundKey(info);
        var replay = (byte[])packet.Clone();
        PacketRewriter.RecomputeChecksums(replay); // queued packets may carry offload's partial checksum
        channel.Inject(replay);

        Assert.True(server.Poll(TimeSpan.FromSeconds(3), SelectMode.SelectRead), "the injected segment never reached the server");
        var buffer = new byte[100];
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer, 0, server.Receive(buffer)));

        // The server had sent nothing before, so the client's ACK field is exactly where the server's data starts.
        server.Send("world"u8);
        var expectedEnd = info.Acknowledgment + 5;
        var deadline = DateTime.UtcNow.AddSeconds(3);
        uint end = 0;
        while (DateTime.UtcNow < deadline && !(channel.TryGetHighestSent(key, out end) && end == expectedEnd))
            Thread.Sleep(20);
        Assert.Equal(expectedEnd, end);
        Assert.True(channel.RepliesDiscarded > 0);

        // A copy of the swallowed reply is kept, ready to be sent to the client as it stands.
        var kept = channel.UnacknowledgedReplies(key, info.Acknowledgment);
        Assert.NotEmpty(kept);
        var reply = PacketRewriter.Parse(kept[0]);
        Assert.True(PacketRewriter.ChecksumsAreValid(kept[0]), "the kept reply's checksums are not complete");
        Assert.Equal(info.Acknowledgment, reply.Sequence);
        Assert.Equal("world", Encoding.ASCII.GetString(kept[0], reply.HeaderLength + reply.TransportHeaderLength, reply.PayloadLength));
        Assert.Empty(channel.UnacknowledgedReplies(key, expectedEnd));

        Assert.False(client.Poll(TimeSpan.FromMilliseconds(500), SelectMode.SelectRead), "a reply escaped the injection channel to the client");

        // Released: the server's retransmission of "world" reaches the client through the normal route.
        channel.ReleaseReplies();
        Assert.True(client.Poll(TimeSpan.FromSeconds(5), SelectMode.SelectRead), "after ReleaseReplies the server's data never reached the client");
        Assert.Equal("world", Encoding.ASCII.GetString(buffer, 0, client.Receive(buffer)));

    }

    [Fact]
    public void An_injected_segment_whose_ack_covers_unsent_data_is_accepted_once_clamped()
    {
        using var lab = new Lab(42);
        NetNs.RunIn(lab.Server, () => new VirtualIp().Add(lab.Vip, 24));
        // The hand-built segment carries no TCP timestamp option, so the connection must not negotiate one.
        NetNs.RunIn(lab.Client, () => Continuity.Linux.Native.Shell.Check("sysctl", "-q", "-w", "net.ipv4.tcp_timestamps=0"));
        using var listener = NetNs.RunIn(lab.Server, () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(lab.Vip, Port));
            l.Listen();
            return l;
        });
        using var client = NetNs.RunIn(lab.Client, () =>
        {
            var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            c.Connect(new IPEndPoint(lab.Vip, Port));
            return c;
        });
        using var server = listener.Accept();
        using var channel = NetNs.RunIn(lab.Server, () => new VethInjectionChannel(lab.Vip));
        channel.CaptureRepliesTo([lab.ClientAddress]); // from the test's thread: the channel remembers its namespace

        // Learn the connection's numbers from real exchanges seen on the channel: the client's next sequence
        // number (the server's ACK) and how far the server has sent.
        server.Send("x"u8);
        var key = new ConnectionKey(6, lab.ClientAddress, (ushort)((IPEndPoint)client.LocalEndPoint!).Port, lab.Vip, Port);
        Assert.True(SpinWait.SpinUntil(() => channel.TryGetHighestSent(key, out _), 3000), "the server's segment was not captured");
        var clientSeq = ClientNextSequence(client, server, channel);
        Assert.True(channel.TryGetHighestSent(key, out var serverEnd));

        // A client segment acknowledging 1000 bytes the server never sent, as a replay of a log taken while the
        // dead primary was further ahead than the restored checkpoint would be.
        var segment = BuildSegment(lab.ClientAddress, key.ClientPort, lab.Vip, Port, clientSeq, serverEnd + 1000, "late"u8);

        channel.Inject(segment);
        Assert.False(server.Poll(TimeSpan.FromMilliseconds(400), SelectMode.SelectRead), "Linux accepted data whose ACK covers unsent bytes (the lab notes say it discards it)");

        Assert.True(PacketRewriter.ClampAck(segment, serverEnd));
        channel.Inject(segment);
        Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead), "the clamped segment was not accepted");
        var buffer = new byte[16];
        Assert.Equal("late", Encoding.ASCII.GetString(buffer, 0, server.Receive(buffer)));

    }

    [Fact]
    public void During_a_switch_another_application_on_the_node_keeps_answering_the_same_client()
    {
        using var lab = new Lab(44);
        var otherVip = IPAddress.Parse("198.18.44.51");
        NetNs.RunIn(lab.Server, () =>
        {
            new VirtualIp().Add(lab.Vip, 24);
            new VirtualIp().Add(otherVip, 24);
        });
        (Socket Client, Socket Server) Connect(IPAddress vip)
        {
            using var listener = NetNs.RunIn(lab.Server, () =>
            {
                var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                l.Bind(new IPEndPoint(vip, Port));
                l.Listen();
                return l;
            });
            var c = NetNs.RunIn(lab.Client, () =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(new IPEndPoint(vip, Port));
                return s;
            });
            return (c, listener.Accept());
        }
        var switching = Connect(lab.Vip);
        var other = Connect(otherVip);
        using var c1 = switching.Client; using var s1 = switching.Server;
        using var c2 = other.Client; using var s2 = other.Server;

        // Two applications switching on one node at once each get their own pair.
        using var channel = NetNs.RunIn(lab.Server, () => new VethInjectionChannel(lab.Vip, 1));
        using var otherChannel = NetNs.RunIn(lab.Server, () => new VethInjectionChannel(otherVip, 2));
        channel.CaptureRepliesTo([lab.ClientAddress]);

        s1.Send("swallowed"u8);
        s2.Send("answered"u8);
        var buffer = new byte[32];
        Assert.True(c2.Poll(TimeSpan.FromSeconds(3), SelectMode.SelectRead),
            "the other application's reply to the same client was swallowed by the switching application's channel");
        Assert.Equal("answered", Encoding.ASCII.GetString(buffer, 0, c2.Receive(buffer)));
        Assert.False(c1.Poll(TimeSpan.FromMilliseconds(500), SelectMode.SelectRead), "the switching application's reply escaped its channel");
        Assert.True(channel.RepliesDiscarded > 0);
        Assert.Equal(0, otherChannel.RepliesDiscarded);

        channel.ReleaseReplies();
        Assert.True(c1.Poll(TimeSpan.FromSeconds(5), SelectMode.SelectRead), "after ReleaseReplies the server's data never reached the client");
        Assert.Equal("swallowed", Encoding.ASCII.GetString(buffer, 0, c1.Receive(buffer)));
        Assert.Empty(NetNs.RunIn(lab.Server, () => Continuity.Linux.Native.Shell.Check("ip", "rule", "show", "from", $"{lab.Vip}/32")).Trim());
    }

    [Fact]
    public void What_a_takeover_interrupted_by_a_dead_node_left_is_removed_and_replies_flow_again()
    {
        using var lab = new Lab(45);
        NetNs.RunIn(lab.Server, () => new VirtualIp().Add(lab.Vip, 24));
        using var channel = NetNs.RunIn(lab.Server, () => new VethInjectionChannel(lab.Vip, 3));
        channel.CaptureRepliesTo([lab.ClientAddress]);
        string Rules() => NetNs.RunIn(lab.Server, () => Continuity.Linux.Native.Shell.Check("ip", "rule", "show", "from", $"{lab.Vip}/32")).Trim();
        Assert.NotEmpty(Rules());

        // The node process died here; its next run clears what the channel left before serving again.
        NetNs.RunIn(lab.Server, () => VethInjectionChannel.RemoveLeftovers(lab.Vip, 3));

        Assert.Empty(Rules());
        Assert.False(NetNs.RunIn(lab.Server, () => Continuity.Linux.Native.Shell.Run("ip", "link", "show", "dev", "ctinj3").Ok));
        var route = NetNs.RunIn(lab.Server, () => Continuity.Linux.Native.Shell.Check("ip", "route", "get", lab.ClientAddress.ToString(), "from", lab.Vip.ToString()));
        Assert.Contains(lab.ServerDev, route);
    }

    [Fact]
    public void The_channel_learns_where_each_of_a_thousand_connections_stands_from_one_burst_of_answers()
    {
        // A takeover's replay probes hundreds of restored connections at once, and each answer tells it how far that
        // socket has sent. The answers arrive as one burst, faster than the channel reads them: a capture ring too small
        // for the burst (libpcap's default held 31 frames) loses some, and the replay goes blind on those connections.
        const int connections = 1000;
        using var lab = new Lab(53);
        NetNs.RunIn(lab.Server, () => new VirtualIp().Add(lab.Vip, 24));
        NetNs.RunIn(lab.Client, () => Continuity.Linux.Native.Shell.Check("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=20000 60999"));
        using var listener = NetNs.RunIn(lab.Server, () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(lab.Vip, 7102));
            l.Listen(connections);
            return l;
        });
        var clients = new List<Socket>();
        var accepted = new List<Socket>();
        try
        {
            for (var i = 0; i < connections; i++)
            {
                clients.Add(NetNs.RunIn(lab.Client, () =>
                {
                    var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    c.Connect(new IPEndPoint(lab.Vip, 7102));
                    return c;
                }));
                accepted.Add(listener.Accept());
            }
            var keys = clients.Select(c => new ConnectionKey(PacketFields.Tcp, lab.ClientAddress,
                (ushort)((IPEndPoint)c.LocalEndPoint!).Port, lab.Vip, 7102)).ToList();

            using var channel = NetNs.RunIn(lab.Server, () => new VethInjectionChannel(lab.Vip, 4));
            channel.CaptureRepliesTo([lab.ClientAddress]);
            // A SYN on an established socket draws a challenge ACK (RFC 5961), whatever its numbers.
            var inspector = new PacketInspector();
            foreach (var k in keys)
                channel.Inject(inspector.BuildTcp(k.Client, k.ClientPort, k.Server, k.ServerPort, 0, 0, PacketFields.Syn, 0));

            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (DateTime.UtcNow < deadline && !keys.All(k => channel.TryGetHighestSent(k, out _)))
                Thread.Sleep(20);
            var unknown = keys.Count(k => !channel.TryGetHighestSent(k, out _));
            Assert.True(unknown == 0, $"the channel learnt nothing of {unknown} of {connections} connections");
        }
        finally
        {
            foreach (var s in clients.Concat(accepted)) s.Dispose();
        }
    }

    [Fact]
    public void A_udp_datagram_larger_than_an_ethernet_mtu_can_be_injected()
    {
        using var lab = new Lab(43);
        NetNs.RunIn(lab.Server, () => new VirtualIp().Add(lab.Vip, 24));
        using var server = lab.UdpServer(7101);
        using var channel = NetNs.RunIn(lab.Server, () => new VethInjectionChannel(lab.Vip));

        var payload = Enumerable.Range(0, 8000).Select(i => (byte)i).ToArray();
        var packet = new byte[28 + payload.Length];
        packet[0] = 0x45;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = 17;
        lab.ClientAddress.TryWriteBytes(packet.AsSpan(12), out _);
        lab.Vip.TryWriteBytes(packet.AsSpan(16), out _);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), 40000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), 7101);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), (ushort)(8 + payload.Length));
        payload.CopyTo(packet, 28);
        PacketRewriter.RecomputeChecksums(packet);

        channel.Inject(packet);
        Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead), "the large injected datagram never reached the server");
        var buffer = new byte[10000];
        var n = server.Receive(buffer);
        Assert.Equal(payload, buffer[..n]);
    }

    /// <summary>
    /// The client's next sequence number, learnt without a capture on the client side: the server's ACK of one
    /// client byte (seen on the channel) tells it.
    /// </summary>
    private static uint ClientNextSequence(Socket client, Socket server, VethInjectionChannel channel)
    {
        var acks = new BlockingCollection<uint>();
        // Outbound replies carry the server's ACK, which is the client's next sequence number.
        channel.ObserveReplies = p => acks.Add(p.Acknowledgment);
        try
        {
            client.Send("!"u8);
            var buffer = new byte[1];
            Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead));
            server.Receive(buffer);
            server.Send("y"u8); // forces a segment carrying the ACK of "!"
            uint ack = 0;
            var deadline = DateTime.UtcNow.AddSeconds(3);
            while (DateTime.UtcNow < deadline && acks.TryTake(out var a, 200))
                ack = a;
            Assert.NotEqual(0u, ack);
            return ack;
        }
        finally
        {
            channel.ObserveReplies = null;
        }
    }

    private static byte[] BuildSegment(IPAddress src, ushort srcPort, IPAddress dst, int dstPort, uint seq, uint ack, ReadOnlySpan<byte> payload)
    {
        var p = new byte[40 + payload.Length];
        p[0] = 0x45;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        src.TryWriteBytes(p.AsSpan(12), out _);
        dst.TryWriteBytes(p.AsSpan(16), out _);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(20), srcPort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), (ushort)dstPort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(24), seq);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(28), ack);
        p[32] = 5 << 4;
        p[33] = IpPacketInfo.Ack | IpPacketInfo.Psh;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(34), 64240);
        payload.CopyTo(p.AsSpan(40));
        PacketRewriter.RecomputeChecksums(p);
        return p;
    }
}
