using System.Globalization;
using System.Net;
using Continuity.Core.Platform;

namespace Continuity.Linux.Supervision;

/// <summary>
/// Established TCP connections to a local address and ports, read from the kernel's socket tables of the calling
/// thread's network namespace (<c>/proc/thread-self/net/tcp</c> and <c>tcp6</c>, where a dual-stack listener's
/// connections appear with IPv4-mapped addresses).
/// </summary>
public static class TcpConnections
{
    private const string Established = "01";

    public static int Count(IPAddress address, IReadOnlyCollection<int> ports) =>
        Count(address, ports, Read("/proc/thread-self/net/tcp")) + Count(address, ports, Read("/proc/thread-self/net/tcp6"));

    /// <summary>Counts the lines of one table (its text, header included) whose local end is
    /// <paramref name="address"/>:one of <paramref name="ports"/> and whose state is ESTABLISHED.</summary>
    public static int Count(IPAddress address, IReadOnlyCollection<int> ports, string table) =>
        List(address, table).Count(c => ports.Contains(c.ServerPort));

    /// <summary>The established connections in the network namespace of process <paramref name="pid"/> whose local
    /// end is <paramref name="address"/>, on any port.</summary>
    public static IReadOnlyList<ConnectionKey> OfProcess(int pid, IPAddress address) =>
        [.. List(address, Read($"/proc/{pid}/net/tcp")), .. List(address, Read($"/proc/{pid}/net/tcp6"))];

    /// <summary>The lines of one table (its text, header included) whose local end is <paramref name="address"/>
    /// and whose state is ESTABLISHED, as connections seen from that end.</summary>
    public static IReadOnlyList<ConnectionKey> List(IPAddress address, string table)
    {
        var v4 = address.GetAddressBytes();
        var found = new List<ConnectionKey>();
        foreach (var line in table.Split('\n'))
        {
            // "  sl  local_address rem_address   st ...": fields 1 and 2 (ADDR:PORT, hex) and 3 (state, hex).
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 4 || fields[3] != Established) continue;
            if (Endpoint(fields[1]) is not ({ } local, var port) || !local.SequenceEqual(v4)) continue;
            if (Endpoint(fields[2]) is not ({ } remote, var remotePort)) continue;
            found.Add(new ConnectionKey(PacketFields.Tcp, new IPAddress(remote), remotePort, address, port));
        }
        return found;
    }

    /// <summary>An IPv4 endpoint, plain or IPv4-mapped IPv6; null for anything else.</summary>
    private static (byte[]? Address, ushort Port) Endpoint(string field)
    {
        var parts = field.Split(':');
        if (parts.Length != 2 || !ushort.TryParse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port))
            return (null, 0);
        return (V4(parts[0]), port);
    }

    /// <summary>Whether a table's hex address (plain IPv4 or IPv4-mapped IPv6) is <paramref name="address"/>.</summary>
    internal static bool IsAddress(string hex, IPAddress address) => V4(hex) is { } v4 && v4.SequenceEqual(address.GetAddressBytes());

    /// <summary>The kernel prints each 32-bit word of the address in host byte order (little-endian here).</summary>
    private static byte[]? V4(string hex)
    {
        if (hex.Length == 8) return Word(hex, 0);
        if (hex.Length != 32) return null;
        // IPv4-mapped IPv6 (::ffff:a.b.c.d): words 0 and 1 zero, word 2 0000ffff, word 3 the IPv4 address.
        return hex[..16] == "0000000000000000" && Word(hex, 16) is [0, 0, 0xff, 0xff] ? Word(hex, 24) : null;
    }

    private static byte[]? Word(string hex, int at)
    {
        if (!uint.TryParse(hex.AsSpan(at, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var word)) return null;
        var bytes = BitConverter.GetBytes(word); // host order, as the kernel printed it
        return BitConverter.IsLittleEndian ? bytes : [.. bytes.Reverse()];
    }

    /// <summary>A kernel table's text, or "" when it cannot be read (no such namespace or process).</summary>
    internal static string Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }
}

/// <summary><see cref="ISocketTable"/> over the kernel's <c>/proc/PID/net/tcp</c> tables.</summary>
public sealed class ProcSocketTable : ISocketTable
{
    public IReadOnlyList<ConnectionKey> EstablishedTcp(int pid, IPAddress localAddress) =>
        TcpConnections.OfProcess(pid, localAddress);

    public long UnreadDatagrams(int pid, IPAddress localAddress, IReadOnlyCollection<int> ports)
    {
        try
        {
            return UdpReceiveQueues.UnreadIn($"/proc/{pid}/net", localAddress, ports);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0; // the program is gone: the replay finds out on its own
        }
    }
}
