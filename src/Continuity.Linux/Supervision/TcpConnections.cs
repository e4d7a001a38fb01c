using System.Globalization;
using System.Net;

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
    public static int Count(IPAddress address, IReadOnlyCollection<int> ports, string table)
    {
        var v4 = address.GetAddressBytes();
        var count = 0;
        foreach (var line in table.Split('\n'))
        {
            // "  sl  local_address rem_address   st ...": fields 1 (ADDR:PORT, hex) and 3 (state, hex).
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 4 || fields[3] != Established) continue;
            var local = fields[1].Split(':');
            if (local.Length != 2 || !int.TryParse(local[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var port)) continue;
            if (ports.Contains(port) && LocalAddressIs(local[0], v4)) count++;
        }
        return count;
    }

    /// <summary>The kernel prints each 32-bit word of the address in host byte order (little-endian here).</summary>
    private static bool LocalAddressIs(string hex, byte[] v4)
    {
        if (hex.Length == 8) return Word(hex, 0) is { } w && w.SequenceEqual(v4);
        if (hex.Length != 32) return false;
        // IPv4-mapped IPv6 (::ffff:a.b.c.d): words 0 and 1 zero, word 2 0000ffff, word 3 the IPv4 address.
        return hex[..16] == "0000000000000000" && Word(hex, 16) is [0, 0, 0xff, 0xff] && Word(hex, 24) is { } a && a.SequenceEqual(v4);
    }

    private static byte[]? Word(string hex, int at)
    {
        if (!uint.TryParse(hex.AsSpan(at, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var word)) return null;
        var bytes = BitConverter.GetBytes(word); // host order, as the kernel printed it
        return BitConverter.IsLittleEndian ? bytes : [.. bytes.Reverse()];
    }

    private static string Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }
}
