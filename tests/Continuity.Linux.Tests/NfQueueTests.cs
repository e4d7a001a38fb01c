using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Continuity.Core.Platform;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Netfilter;
using Continuity.Linux.Network;
using Xunit;

namespace Continuity.Linux.Tests;

public sealed class NfQueueTests
{
    private const int Port = 7001;
    private static readonly TimeSpan Held = TimeSpan.FromMilliseconds(500);

    private static (Lab lab, NfQueue queue, BlockingCollection<uint> ids, Socket server) Setup(int n, ushort queueNumber, NfQueueOptions? options = null)
    {
        var lab = new Lab(n);
        NetNs.RunIn(lab.Server, () =>
        {
            new VirtualIp().Add(lab.Vip, 24);
            new IptablesFilter().QueueInbound(new TrafficSelector(lab.Vip, [new PortSpec("udp", Port)]), queueNumber);
        });
        var queue = NetNs.RunIn(lab.Server, () => new NfQueue(queueNumber, options));
        var ids = new BlockingCollection<uint>();
        queue.Start(batch =>
        {
            foreach (var p in batch) ids.Add(p.PacketId);
        });
        return (lab, queue, ids, lab.UdpServer(Port));
    }

    private static void Send(Lab lab, Socket client, string text) =>
        client.SendTo(Encoding.ASCII.GetBytes(text), new IPEndPoint(lab.Vip, Port));

    private static uint NextHeld(BlockingCollection<uint> ids)
    {
        Assert.True(ids.TryTake(out var id, TimeSpan.FromSeconds(5)), "the client's packet never reached the queue");
        return id;
    }

    [Fact]
    public void Held_packets_reach_the_server_only_after_AcceptUpTo()
    {
        var (lab, queue, ids, server) = Setup(21, 21);
        using (lab) using (queue) using (server)
        using (var client = lab.UdpClient())
        {
            Send(lab, client, "hello");
            var id = NextHeld(ids);

            Assert.False(server.Poll(Held, SelectMode.SelectRead), "the server received a packet that is still held");

            queue.AcceptUpTo(id);
            Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead), "the accepted packet never reached the server");
            var buffer = new byte[100];
            var n = server.Receive(buffer);
            Assert.Equal("hello", Encoding.ASCII.GetString(buffer, 0, n));
        }
    }

    [Fact]
    public void Held_packets_carry_the_whole_ip_packet_in_increasing_id_order()
    {
        var (lab, queue, ids, server) = Setup(22, 22);
        var packets = new BlockingCollection<byte[]>();
        using (lab) using (queue) using (server)
        using (var client = lab.UdpClient())
        {
            var first = 0u;
            for (var i = 0; i < 3; i++)
            {
                Send(lab, client, $"p{i}");
                var id = NextHeld(ids);
                if (i > 0) Assert.True(id > first, $"packet ids must increase: {id} after {first}");
                first = id;
            }
            queue.AcceptUpTo(first);
            var buffer = new byte[100];
            for (var i = 0; i < 3; i++)
            {
                Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead), $"packet {i} was not released by AcceptUpTo");
                Assert.Equal($"p{i}", Encoding.ASCII.GetString(buffer, 0, server.Receive(buffer)));
            }
        }
    }

    [Fact]
    public void A_burst_is_delivered_whole_and_each_batch_keeps_its_own_payloads()
    {
        var lab = new Lab(27);
        NetNs.RunIn(lab.Server, () =>
        {
            new VirtualIp().Add(lab.Vip, 24);
            new IptablesFilter().QueueInbound(new TrafficSelector(lab.Vip, [new PortSpec("udp", Port)]), 27);
        });
        using var queue = NetNs.RunIn(lab.Server, () => new NfQueue(27, new NfQueueOptions(MaxBatch: 16)));
        var held = new BlockingCollection<(uint Id, string Text)>();
        queue.Start(batch =>
        {
            Assert.InRange(batch.Count, 1, 16);
            foreach (var p in batch)
            {
                // UDP payload after 20 bytes of IPv4 and 8 of UDP header.
                held.Add((p.PacketId, Encoding.ASCII.GetString(p.Packet.Span[28..])));
            }
        });
        using (lab)
        using (var server = lab.UdpServer(Port))
        using (var client = lab.UdpClient())
        {
            const int count = 300;
            for (var i = 0; i < count; i++) Send(lab, client, $"burst-{i:D4}-" + new string('x', i));
            var received = new List<(uint Id, string Text)>();
            while (received.Count < count && held.TryTake(out var h, TimeSpan.FromSeconds(5))) received.Add(h);

            Assert.Equal(count, received.Count);
            for (var i = 0; i < count; i++)
            {
                Assert.Equal($"burst-{i:D4}-" + new string('x', i), received[i].Text);
                if (i > 0) Assert.True(received[i].Id > received[i - 1].Id);
            }
            Assert.True(queue.BatchesDelivered >= count / 16);

            // Released in two halves, so the server's default socket buffer is not what is tested.
            var buffer = new byte[1000];
            foreach (var (from, to) in new[] { (0, count / 2), (count / 2, count) })
            {
                queue.AcceptUpTo(received[to - 1].Id);
                for (var i = from; i < to; i++)
                {
                    Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead), $"datagram {i} was not released");
                    var n = server.Receive(buffer);
                    Assert.Equal(received[i].Text, Encoding.ASCII.GetString(buffer, 0, n));
                }
                Assert.False(server.Poll(TimeSpan.FromMilliseconds(100), SelectMode.SelectRead), "AcceptUpTo released packets after the given id");
            }
        }
    }

    [Fact]
    public void Dropped_packets_never_reach_the_server()
    {
        var (lab, queue, ids, server) = Setup(23, 23);
        using (lab) using (queue) using (server)
        using (var client = lab.UdpClient())
        {
            Send(lab, client, "doomed");
            queue.DropUpTo(NextHeld(ids));
            Assert.False(server.Poll(Held, SelectMode.SelectRead), "a dropped packet reached the server");

            // The verdict covered only what was held: later packets are held again, not dropped.
            Send(lab, client, "later");
            queue.AcceptUpTo(NextHeld(ids));
            Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead));
            var buffer = new byte[100];
            Assert.Equal("later", Encoding.ASCII.GetString(buffer, 0, server.Receive(buffer)));
        }
    }

    [Fact]
    public void Queue_does_not_fail_open_when_no_verdict_is_given()
    {
        // A tiny queue overflows at once: the overflow must be dropped, not accepted.
        var (lab, queue, ids, server) = Setup(24, 24, new NfQueueOptions(MaxQueueLength: 4));
        using (lab) using (server)
        using (var client = lab.UdpClient())
        {
            for (var i = 0; i < 20; i++) Send(lab, client, $"n{i}");
            Assert.False(server.Poll(Held, SelectMode.SelectRead), "a packet without a verdict reached the server (queue overflow failed open)");
            Assert.InRange(ids.Count, 1, 4);

            // Closing the reader drops what it held, and with no reader bound the rule drops everything.
            queue.Dispose();
            Assert.False(server.Poll(TimeSpan.FromMilliseconds(200), SelectMode.SelectRead), "packets held by a closed queue reached the server");
            for (var i = 0; i < 5; i++) Send(lab, client, $"unbound{i}");
            Assert.False(server.Poll(Held, SelectMode.SelectRead), "with no queue reader bound, packets reached the server (fail-open / --queue-bypass)");
        }
    }

    [Fact]
    public void Blocked_traffic_reaches_neither_the_queue_nor_the_server()
    {
        var (lab, queue, ids, server) = Setup(26, 26);
        using (lab) using (queue) using (server)
        using (var client = lab.UdpClient())
        {
            NetNs.RunIn(lab.Server, () => new IptablesFilter().BlockInbound(lab.Vip));
            Send(lab, client, "blocked");
            Assert.False(ids.TryTake(out _, Held), "a blocked packet reached the queue");

            NetNs.RunIn(lab.Server, () => new IptablesFilter().UnblockInbound(lab.Vip));
            Send(lab, client, "open");
            queue.AcceptUpTo(NextHeld(ids));
            Assert.True(server.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead));
            var buffer = new byte[100];
            Assert.Equal("open", Encoding.ASCII.GetString(buffer, 0, server.Receive(buffer)));
        }
    }

    [Fact]
    public void A_second_reader_on_the_same_queue_number_fails_with_a_clear_message()
    {
        using var lab = new Lab(25);
        using var first = NetNs.RunIn(lab.Server, () => new NfQueue(25));
        var e = Assert.Throws<InvalidOperationException>(() => NetNs.RunIn(lab.Server, () => new NfQueue(25)));
        Assert.Contains("queue 25", e.Message);
        Assert.Contains("nfq_create_queue", e.Message);
        Assert.Contains("bound by another process", e.Message);
    }
}
