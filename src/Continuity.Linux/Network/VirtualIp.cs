using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Continuity.Core.Platform;
using Continuity.Linux.Native;

namespace Continuity.Linux.Network;

/// <summary>
/// <see cref="IVirtualIp"/> with iproute2 and arping, in the network namespace of the calling thread.
/// The VIP goes on the interface whose subnet contains it, so that gratuitous ARP reaches the clients' segment.
/// </summary>
public sealed class VirtualIp : IVirtualIp
{
    /// <summary>One IPv4 address configured on an interface.</summary>
    public readonly record struct InterfaceAddress(string Interface, IPAddress Address, int PrefixLength)
    {
        public bool Contains(IPAddress ip) => SameSubnet(Address, ip, PrefixLength);
        public override string ToString() => $"{Interface} {Address}/{PrefixLength}";
    }

    public void Add(IPAddress vip, int prefixLength)
    {
        RequireIPv4(vip, prefixLength);
        var addresses = Addresses();
        if (addresses.Any(a => a.Address.Equals(vip))) return; // already ours: idempotent
        var dev = InterfaceFor(vip, addresses);
        var r = Shell.Run("ip", "-4", "addr", "add", $"{vip}/{prefixLength}", "dev", dev);
        if (!r.Ok && !r.StdErr.Contains("File exists"))
            throw new InvalidOperationException(
                $"Adding VIP {vip}/{prefixLength} to {dev} failed: {r.StdErr.Trim()}; run the node as root (CAP_NET_ADMIN).");
    }

    public void Remove(IPAddress vip, int prefixLength)
    {
        RequireIPv4(vip, prefixLength);
        foreach (var a in Addresses().Where(a => a.Address.Equals(vip)))
        {
            var r = Shell.Run("ip", "-4", "addr", "del", $"{vip}/{a.PrefixLength}", "dev", a.Interface);
            if (!r.Ok && !r.StdErr.Contains("Cannot assign requested address"))
                throw new InvalidOperationException(
                    $"Removing VIP {vip} from {a.Interface} failed: {r.StdErr.Trim()}; run the node as root (CAP_NET_ADMIN).");
        }
    }

    public void Announce(IPAddress vip)
    {
        var owner = Addresses().FirstOrDefault(a => a.Address.Equals(vip));
        if (owner.Interface is null)
            throw new InvalidOperationException($"Cannot announce VIP {vip}: it is not configured on any interface here; Add it first.");
        // Unsolicited ARP (sender = target = VIP, broadcast): switches and clients update their tables now,
        // instead of after their ARP entry for the old owner expires.
        // arping exits 1 when nobody answers, which is normal for unsolicited ARP: only stderr means failure.
        // -W 0.2: its default one-second spacing would add seconds to every switch.
        var r = Shell.Run("arping", "-q", "-U", "-c", "2", "-W", "0.2", "-w", "2", "-i", owner.Interface, "-S", vip.ToString(), vip.ToString());
        if (r.ExitCode > 1 || (r.ExitCode == 1 && r.StdErr.Trim().Length > 0))
            throw new InvalidOperationException(
                $"Gratuitous ARP for VIP {vip} on {owner.Interface} failed (exit {r.ExitCode}): {r.StdErr.Trim()}; is arping installed? run deploy/install-deps.sh.");
    }

    /// <summary>The IPv4 addresses of this network namespace, from <c>ip -j addr</c>.</summary>
    public static IReadOnlyList<InterfaceAddress> Addresses()
    {
        var json = Shell.Check("ip", "-j", "-4", "addr", "show");
        var result = new List<InterfaceAddress>();
        using var doc = JsonDocument.Parse(json);
        foreach (var link in doc.RootElement.EnumerateArray())
        {
            var name = link.GetProperty("ifname").GetString()!;
            if (!link.TryGetProperty("addr_info", out var infos)) continue;
            foreach (var info in infos.EnumerateArray())
            {
                if (!info.TryGetProperty("local", out var local)) continue;
                result.Add(new InterfaceAddress(name, IPAddress.Parse(local.GetString()!), info.GetProperty("prefixlen").GetInt32()));
            }
        }
        return result;
    }

    /// <summary>The interface whose subnet contains <paramref name="vip"/> (the longest prefix wins).</summary>
    public static string InterfaceFor(IPAddress vip, IReadOnlyList<InterfaceAddress> addresses)
    {
        var best = addresses
            .Where(a => a.Interface != "lo" && a.Contains(vip))
            .OrderByDescending(a => a.PrefixLength)
            .FirstOrDefault();
        if (best.Interface is null)
            throw new InvalidOperationException(
                $"VIP {vip} is outside every local subnet ({string.Join(", ", addresses.Where(a => a.Interface != "lo"))}): " +
                "choose a VIP in the subnet of the interface that faces the clients, or give that interface an address in the VIP's subnet.");
        return best.Interface;
    }

    public static bool SameSubnet(IPAddress a, IPAddress b, int prefixLength)
    {
        if (a.AddressFamily != AddressFamily.InterNetwork || b.AddressFamily != AddressFamily.InterNetwork) return false;
        var mask = prefixLength == 0 ? 0u : uint.MaxValue << (32 - prefixLength);
        return (ToUInt32(a) & mask) == (ToUInt32(b) & mask);
    }

    private static uint ToUInt32(IPAddress ip)
    {
        Span<byte> bytes = stackalloc byte[4];
        ip.TryWriteBytes(bytes, out _);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    private static void RequireIPv4(IPAddress vip, int prefixLength)
    {
        if (vip.AddressFamily != AddressFamily.InterNetwork)
            throw new ArgumentException($"VIP {vip} is not IPv4: only IPv4 VIPs are supported.");
        if (prefixLength is < 1 or > 32)
            throw new ArgumentException($"Prefix length {prefixLength} of VIP {vip} must be 1..32.");
    }
}
