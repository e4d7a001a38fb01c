using System.Net;
using System.Net.Sockets;
using Continuity.Core.Platform;
using Continuity.Linux.Namespaces;

namespace Continuity.Linux.Network;

/// <summary>
/// <see cref="IPacketSender"/> over a raw IPv4 socket (IP_HDRINCL) of the network namespace of the constructing
/// thread: the packet is routed like any local output, so the VIP must be configured and the injection channel's
/// reply routes released first, or it ends up swallowed.
/// </summary>
public sealed class RawPacketSender : IPacketSender, IDisposable
{
    private readonly Socket _socket;

    public RawPacketSender()
    {
        try
        {
            _socket = new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Raw);
            _socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.HeaderIncluded, true);
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException(
                $"Opening a raw IPv4 socket failed ({e.SocketErrorCode}): the node needs root (CAP_NET_RAW).", e);
        }
    }

    /// <summary>A sender whose socket lives in the named network namespace.</summary>
    public static RawPacketSender In(string netns) => NetNs.RunIn(netns, () => new RawPacketSender());

    public void Send(ReadOnlySpan<byte> ipPacket)
    {
        if (ipPacket.Length < 20 || ipPacket[0] >> 4 != 4)
            throw new ArgumentException("Only IPv4 packets can be sent raw.", nameof(ipPacket));
        var destination = new IPAddress(ipPacket.Slice(16, 4));
        _socket.SendTo(ipPacket, SocketFlags.None, new IPEndPoint(destination, 0));
    }

    public void Dispose() => _socket.Dispose();

}
