using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Continuity.Core.Platform;

namespace Continuity.Linux.Netfilter;

/// <summary>
/// The VIP's lease in nftables: per application one table in the ip family (packets to or from the VIP) and one in
/// the arp family (ARP for the VIP, gratuitous ARP included), each with a set whose one element, the VIP, carries a
/// timeout. Traffic passes only while the element lives; the kernel expires it by itself, so a frozen or killed node
/// process cannot leave a live VIP behind. The ip chains sit at priority -250, before conntrack and before the
/// iptables rules that queue the VIP's packets, so a fenced node neither queues nor tracks what it drops.
/// </summary>
public sealed partial class NftVipFence : IVipFence
{
    private static string Table(ushort id) => $"continuity_fence_{id}";

    public void Arm(IPAddress vip, ushort id)
    {
        var t = Table(id);
        var v = V4(vip);
        // Re-created from scratch in one transaction: adding to a table that exists would duplicate its rules.
        Run($$"""
            add table ip {{t}}
            delete table ip {{t}}
            table ip {{t}} {
              set lease { type ipv4_addr; flags timeout; }
              chain inbound { type filter hook prerouting priority -250; policy accept; ip daddr {{v}} ip daddr != @lease drop; }
              chain outbound { type filter hook output priority -250; policy accept; ip saddr {{v}} ip saddr != @lease drop; }
            }
            add table arp {{t}}
            delete table arp {{t}}
            table arp {{t}} {
              set lease { type ipv4_addr; flags timeout; }
              chain inbound { type filter hook input priority 0; policy accept; arp daddr ip {{v}} arp daddr ip != @lease drop; }
              chain outbound { type filter hook output priority 0; policy accept; arp saddr ip {{v}} arp saddr ip != @lease drop; }
            }
            """, $"arming the fence of VIP {v}");
    }

    public void Renew(IPAddress vip, ushort id, TimeSpan validFor)
    {
        var t = Table(id);
        var v = V4(vip);
        var ms = Math.Max(1, (long)validFor.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        // Flush and add in one transaction: there is no moment without the element when the lease goes on.
        Run($$"""
            flush set ip {{t}} lease
            add element ip {{t}} lease { {{v}} timeout {{ms}}ms }
            flush set arp {{t}} lease
            add element arp {{t}} lease { {{v}} timeout {{ms}}ms }
            """, $"renewing the lease of VIP {v}");
    }

    public void Disarm(IPAddress vip, ushort id)
    {
        var t = Table(id);
        Run($"""
            add table ip {t}
            delete table ip {t}
            add table arp {t}
            delete table arp {t}
            """, $"removing the fence of VIP {V4(vip)}");
    }

    /// <summary>What the lease of application <paramref name="id"/> has left on this node's kernel, or null without an
    /// armed fence (for tests and diagnostics).</summary>
    public static TimeSpan? Remaining(ushort id)
    {
        string listing;
        try { listing = Run($"list set ip {Table(id)} lease", "reading the lease", output: true); }
        catch (InvalidOperationException) { return null; }
        var m = System.Text.RegularExpressions.Regex.Match(listing, @"expires ((?:\d+h)?(?:\d+m(?!s))?(?:\d+s)?(?:\d+ms)?)");
        if (!m.Success) return TimeSpan.Zero;
        var total = TimeSpan.Zero;
        foreach (System.Text.RegularExpressions.Match part in System.Text.RegularExpressions.Regex.Matches(m.Groups[1].Value, @"(\d+)(h|ms|m|s)"))
        {
            var n = long.Parse(part.Groups[1].Value, CultureInfo.InvariantCulture);
            total += part.Groups[2].Value switch
            {
                "h" => TimeSpan.FromHours(n),
                "m" => TimeSpan.FromMinutes(n),
                "s" => TimeSpan.FromSeconds(n),
                _ => TimeSpan.FromMilliseconds(n),
            };
        }
        return total;
    }

    private static string V4(IPAddress vip) =>
        vip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? vip.ToString()
            : throw new ArgumentException($"the VIP fence supports IPv4 VIPs only, not {vip}", nameof(vip));

    // A context per call: libnftables talks netlink in the network namespace of the calling thread, and the tests
    // (and the injection channel) move threads between namespaces.
    private static string Run(string commands, string what, bool output = false)
    {
        nint ctx;
        try { ctx = nft_ctx_new(0); }
        catch (DllNotFoundException)
        {
            throw new InvalidOperationException($"{what}: libnftables.so.1 is missing; install the nftables package " +
                "(deploy/install-deps.sh does), or set continuity.fencing.enabled = off to run without the VIP's lease");
        }
        if (ctx == 0) throw new InvalidOperationException($"{what}: libnftables could not create a context");
        try
        {
            nft_ctx_buffer_output(ctx);
            nft_ctx_buffer_error(ctx);
            if (nft_run_cmd_from_buffer(ctx, commands) != 0)
                throw new InvalidOperationException($"{what} failed: nft said: {Marshal.PtrToStringUTF8(nft_ctx_get_error_buffer(ctx))?.Trim()}");
            return output ? Marshal.PtrToStringUTF8(nft_ctx_get_output_buffer(ctx)) ?? "" : "";
        }
        finally { nft_ctx_free(ctx); }
    }

    private const string Lib = "libnftables.so.1";

    [LibraryImport(Lib)]
    private static partial nint nft_ctx_new(uint flags);

    [LibraryImport(Lib)]
    private static partial void nft_ctx_free(nint ctx);

    [LibraryImport(Lib)]
    private static partial int nft_ctx_buffer_output(nint ctx);

    [LibraryImport(Lib)]
    private static partial int nft_ctx_buffer_error(nint ctx);

    [LibraryImport(Lib)]
    private static partial nint nft_ctx_get_output_buffer(nint ctx);

    [LibraryImport(Lib)]
    private static partial nint nft_ctx_get_error_buffer(nint ctx);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int nft_run_cmd_from_buffer(nint ctx, string buffer);
}
