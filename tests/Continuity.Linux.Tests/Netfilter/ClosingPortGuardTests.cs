using System.Net;
using System.Net.Sockets;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Netfilter;
using Xunit;

namespace Continuity.Linux.Tests.Netfilter;

/// <summary>The refusal a node puts on its cluster port as it shuts down, seen from a peer in another namespace.</summary>
public sealed class ClosingPortGuardTests
{
    private const int Port = 4057;

    private static Socket Dial(Lab lab) => NetNs.RunIn(lab.Client, () =>
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            s.Connect(new IPEndPoint(lab.ServerAddress, Port));
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    });

    [Fact]
    public void A_closing_node_refuses_new_peers_at_once_keeps_the_connected_ones_and_a_restart_lets_peers_in_again()
    {
        using var lab = new Lab(52);
        using var listener = NetNs.RunIn(lab.Server, () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(IPAddress.Any, Port));
            l.Listen();
            return l;
        });
        using var connected = Dial(lab);
        using var accepted = listener.Accept();
        var guard = new ClosingPortGuard(Port);

        NetNs.RunIn(lab.Server, guard.Refuse);
        NetNs.RunIn(lab.Server, guard.Refuse); // twice, as a shutdown retried would: still one rule

        // Refused, not accepted and cut: the listener is still open, yet no connection is made.
        var refused = Assert.Throws<SocketException>(() => Dial(lab));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        connected.Send([42]);
        var buffer = new byte[1];
        Assert.True(accepted.Poll(TimeSpan.FromSeconds(2), SelectMode.SelectRead), "an established peer was cut off");
        Assert.Equal(1, accepted.Receive(buffer));

        Assert.True(NetNs.RunIn(lab.Server, guard.Clear));
        using var again = Dial(lab);
        Assert.False(NetNs.RunIn(lab.Server, guard.Clear));
    }
}
