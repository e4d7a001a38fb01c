using System.Net;
using System.Net.Sockets;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Network;
using Continuity.Linux.Supervision;
using Xunit;

namespace Continuity.Linux.Tests.Supervision;

public sealed class UdpReceiveQueuesTests
{
    [Fact]
    public void Unread_bytes_count_for_sockets_on_the_vip_or_on_any_address_and_the_given_ports_only()
    {
        // 198.18.0.50 is printed as the little-endian word 320012C6; port 7001 is 1B59.
        const string udp = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
             1: 320012C6:1B59 00000000:0000 07 00000000:00000340 00:00000000 00000000     0        0 1 2 0000000000000000 0
             2: 00000000:1B59 00000000:0000 07 00000000:00000100 00:00000000 00000000     0        0 2 2 0000000000000000 0
             3: 330012C6:1B59 00000000:0000 07 00000000:00000200 00:00000000 00000000     0        0 3 2 0000000000000000 0
             4: 320012C6:1B5A 00000000:0000 07 00000000:00000400 00:00000000 00000000     0        0 4 2 0000000000000000 0
            """;
        Assert.Equal(0x340 + 0x100, UdpReceiveQueues.Unread(IPAddress.Parse("198.18.0.50"), [7001], udp));
    }

    [Fact]
    public void A_datagram_not_yet_read_by_a_real_server_is_seen_until_it_reads_it()
    {
        using var lab = new Lab(49);
        NetNs.RunIn(lab.Server, () => new VirtualIp().Add(lab.Vip, 24));
        using var server = NetNs.RunIn(lab.Server, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(lab.Vip, 7201));
            return s;
        });
        using var client = NetNs.RunIn(lab.Client, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        NetNs.RunIn(lab.Client, () => client.SendTo(new byte[100], new IPEndPoint(lab.Vip, 7201)));

        var deadline = DateTime.UtcNow.AddSeconds(5);
        long unread = 0;
        while (unread == 0 && DateTime.UtcNow < deadline)
        {
            unread = NetNs.RunIn(lab.Server, () => UdpReceiveQueues.Unread(lab.Vip, [7201]));
            Thread.Sleep(10);
        }
        Assert.True(unread > 0, "the datagram waits in the server's socket");
        Assert.Equal(0, NetNs.RunIn(lab.Server, () => UdpReceiveQueues.Unread(lab.Vip, [7202])));

        server.Receive(new byte[200]);
        Assert.Equal(0, NetNs.RunIn(lab.Server, () => UdpReceiveQueues.Unread(lab.Vip, [7201])));
    }
}
