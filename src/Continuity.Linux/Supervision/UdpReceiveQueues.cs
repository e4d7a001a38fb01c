using System.Globalization;
using System.Net;

namespace Continuity.Linux.Supervision;

/// <summary>
/// Bytes waiting unread in the receive queues of UDP sockets bound to an address (or to any address) and ports, from
/// the kernel's tables of the calling thread's network namespace (<c>/proc/thread-self/net/udp</c> and <c>udp6</c>).
/// </summary>
public static class UdpReceiveQueues
{
    public static long Unread(IPAddress address, IReadOnlyCollection<int> ports) =>
        UnreadIn("/proc/thread-self/net", address, ports);

    /// <summary>The same, from the tables of another namespace's <paramref name="netDirectory"/> (/proc/PID/net).</summary>
    public static long UnreadIn(string netDirectory, IPAddress address, IReadOnlyCollection<int> ports) =>
        Unread(address, ports, TcpConnections.Read(Path.Combine(netDirectory, "udp"))) +
        Unread(address, ports, TcpConnections.Read(Path.Combine(netDirectory, "udp6")));

    /// <summary>The rx_queue column summed over one table's sockets (its text, header included) bound to
    /// <paramref name="address"/> or to the wildcard address, on one of <paramref name="ports"/>.</summary>
    public static long Unread(IPAddress address, IReadOnlyCollection<int> ports, string table)
    {
        var total = 0L;
        foreach (var line in table.Split('\n'))
        {
            // "  sl  local_address rem_address   st tx_queue:rx_queue ...": fields 1 (ADDR:PORT, hex) and 4 (hex:hex).
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 5 || fields[0] == "sl") continue;
            var local = fields[1].Split(':');
            if (local.Length != 2 || !int.TryParse(local[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port)) continue;
            if (!ports.Contains(port) || !(IsWildcard(local[0]) || TcpConnections.IsAddress(local[0], address))) continue;
            var queues = fields[4].Split(':');
            if (queues.Length == 2 && long.TryParse(queues[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var rx))
                total += rx;
        }
        return total;
    }

    private static bool IsWildcard(string hex) => hex.All(c => c == '0');
}
