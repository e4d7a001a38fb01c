using System.Net;
using System.Net.Sockets;
using Continuity.Core.Platform;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Network;
using Continuity.Linux.Supervision;
using Xunit;

namespace Continuity.Linux.Tests.Supervision;

public sealed class TcpConnectionsTests
{
    // 198.18.0.50 is 3212_0032 in network order; the kernel prints it as the little-endian word 320012C6.
    // Listening, ESTABLISHED from .100, TIME_WAIT, ESTABLISHED from .101 on another port, another local address.
    private const string Tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 320012C6:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
           1: 320012C6:1B58 640012C6:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1
           2: 320012C6:1B58 640012C6:9C41 06 00000000:00000000 00:00000000 00000000     0        0 3 1
           3: 320012C6:1B59 650012C6:9C42 01 00000000:00000000 00:00000000 00000000     0        0 4 1
           4: 330012C6:1B58 640012C6:9C43 01 00000000:00000000 00:00000000 00000000     0        0 5 1
        """;

    [Fact]
    public void Only_established_connections_to_the_vip_and_ports_count_ipv4_and_ipv4_mapped()
    {
        const string tcp6 = """
              sl  local_address                         remote_address                        st tx_queue rx_queue
               0: 0000000000000000FFFF0000320012C6:1B58 0000000000000000FFFF0000640012C6:9C44 01 00000000:00000000
               1: 00000000000000000000000001000000:1B58 00000000000000000000000001000000:9C45 01 00000000:00000000
            """;
        var vip = IPAddress.Parse("198.18.0.50");
        Assert.Equal(1, TcpConnections.Count(vip, [7000], Tcp)); // listening, TIME_WAIT, other port, other address: no
        Assert.Equal(1, TcpConnections.Count(vip, [7000], tcp6));
        Assert.Equal(2, TcpConnections.Count(vip, [7000, 7001], Tcp));
    }

    [Fact]
    public void Established_connections_to_an_address_are_listed_with_their_client_ends()
    {
        var vip = IPAddress.Parse("198.18.0.50");
        Assert.Equal(
            [
                new ConnectionKey(PacketFields.Tcp, IPAddress.Parse("198.18.0.100"), 40000, vip, 7000),
                new ConnectionKey(PacketFields.Tcp, IPAddress.Parse("198.18.0.101"), 40002, vip, 7001),
            ],
            TcpConnections.List(vip, Tcp));
    }

    [Fact]
    public void Connections_of_a_real_server_in_its_namespace_are_counted()
    {
        using var lab = new Lab(46);
        NetNs.RunIn(lab.Server, () => new VirtualIp().Add(lab.Vip, 24));
        using var listener = NetNs.RunIn(lab.Server, () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(IPAddress.Any, 7200)); // bound to every address, as most servers are
            l.Listen();
            return l;
        });
        var clients = Enumerable.Range(0, 3).Select(_ => NetNs.RunIn(lab.Client, () =>
        {
            var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            c.Connect(new IPEndPoint(lab.Vip, 7200));
            return c;
        })).ToList();
        var accepted = clients.Select(_ => listener.Accept()).ToList();
        try
        {
            Assert.Equal(3, NetNs.RunIn(lab.Server, () => TcpConnections.Count(lab.Vip, [7200])));
            Assert.Equal(0, NetNs.RunIn(lab.Server, () => TcpConnections.Count(lab.ServerAddress, [7200])));
        }
        finally
        {
            foreach (var s in clients.Concat(accepted)) s.Dispose();
        }
    }
}
