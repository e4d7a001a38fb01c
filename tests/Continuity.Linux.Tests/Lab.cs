using System.Net;
using System.Net.Sockets;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Native;

namespace Continuity.Linux.Tests;

/// <summary>
/// A server namespace <c>ctt-qN</c> and a client namespace <c>ctt-cN</c> joined by a veth pair on 198.18.N.0/24:
/// server .1, client .2, VIP .50 (not added: the tests add it through VirtualIp).
/// </summary>
public sealed class Lab : IDisposable
{
    public string Server { get; }
    public string Client { get; }
    public string ServerDev { get; }
    public IPAddress ServerAddress { get; }
    public IPAddress ClientAddress { get; }
    public IPAddress Vip { get; }

    public Lab(int n)
    {
        Server = $"ctt-q{n}";
        Client = $"ctt-c{n}";
        ServerDev = $"cttq{n}";
        var clientDev = $"cttc{n}";
        ServerAddress = IPAddress.Parse($"198.18.{n}.1");
        ClientAddress = IPAddress.Parse($"198.18.{n}.2");
        Vip = IPAddress.Parse($"198.18.{n}.50");
        Delete();
        Sh("ip", "netns", "add", Server);
        Sh("ip", "netns", "add", Client);
        Sh("ip", "link", "add", ServerDev, "netns", Server, "type", "veth", "peer", "name", clientDev, "netns", Client);
        Sh("ip", "-n", Server, "addr", "add", $"{ServerAddress}/24", "dev", ServerDev);
        Sh("ip", "-n", Client, "addr", "add", $"{ClientAddress}/24", "dev", clientDev);
        foreach (var (ns, dev) in new[] { (Server, ServerDev), (Client, clientDev) })
        {
            Sh("ip", "-n", ns, "link", "set", "lo", "up");
            Sh("ip", "-n", ns, "link", "set", dev, "up");
        }
    }

    public Socket UdpServer(int port) => NetNs.RunIn(Server, () =>
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(Vip, port));
        return s;
    });

    public Socket UdpClient() =>
        NetNs.RunIn(Client, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));

    public static void Sh(string file, params string[] args) => Shell.Check(file, args);

    private void Delete()
    {
        Shell.Run("ip", "netns", "del", Server);
        Shell.Run("ip", "netns", "del", Client);
    }

    public void Dispose() => Delete();
}
