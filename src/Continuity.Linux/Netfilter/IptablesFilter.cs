using System.Net;
using Continuity.Core.Platform;
using Continuity.Linux.Native;

namespace Continuity.Linux.Netfilter;

/// <summary>
/// <see cref="IPacketFilter"/> with iptables in the raw table (before conntrack, so even the first packet of
/// a connection is held), in the network namespace of the calling thread.
/// All rules live in one chain of our own, jumped to from raw PREROUTING: DROP rules are inserted at its top
/// and queue rules appended at its bottom, so during a switch the block always wins, whatever the order of
/// the calls. Queue rules never use --queue-bypass: with no reader bound, the kernel drops, it never accepts.
/// Packets arriving on the injection interface are exempt, so replayed packets reach the restored program.
/// </summary>
public sealed class IptablesFilter : IPacketFilter
{
    private readonly string _chain;
    private readonly string? _exemptInterface;
    private readonly Lock _gate = new();

    /// <param name="exemptInterface">The injection channels' receiving veth ends (default: all of them), or null for none.</param>
    /// <param name="chain">Name of the raw-table chain holding the rules.</param>
    public IptablesFilter(string? exemptInterface = Injection.VethInjectionChannel.ReceiveInterfacePattern, string chain = "CONTINUITY")
    {
        _exemptInterface = exemptInterface;
        _chain = chain;
    }

    public void QueueInbound(TrafficSelector selector, ushort queueNumber)
    {
        lock (_gate)
        {
            EnsureChain();
            foreach (var port in selector.Ports)
                Ensure(append: true, QueueRule(selector.Vip, port, queueNumber));
        }
    }

    public void StopQueueing(TrafficSelector selector, ushort queueNumber)
    {
        lock (_gate)
            foreach (var port in selector.Ports)
                Remove(QueueRule(selector.Vip, port, queueNumber));
    }

    public void BlockInbound(IPAddress vip)
    {
        lock (_gate)
        {
            EnsureChain();
            Ensure(append: false, BlockRule(vip));
        }
    }

    public void UnblockInbound(IPAddress vip)
    {
        lock (_gate) Remove(BlockRule(vip));
    }

    /// <summary>Removes the jump and the chain with all its rules (node shutdown, tests).</summary>
    public void RemoveAll()
    {
        lock (_gate)
        {
            while (Iptables("-C", "PREROUTING", "-j", _chain).Ok)
                Iptables("-D", "PREROUTING", "-j", _chain);
            Iptables("-F", _chain);
            Iptables("-X", _chain);
        }
    }

    private string[] QueueRule(IPAddress vip, PortSpec port, ushort queueNumber)
    {
        var protocol = port.Protocol.ToLowerInvariant();
        if (protocol is not ("tcp" or "udp"))
            throw new ArgumentException($"Port spec '{port}' has protocol '{port.Protocol}': only tcp and udp can be queued.");
        if (port.Port is < 1 or > 65535)
            throw new ArgumentException($"Port spec '{port}' has port {port.Port}: it must be 1..65535.");
        return [.. Match(vip), "-p", protocol, "--dport", port.Port.ToString(), "-j", "NFQUEUE", "--queue-num", queueNumber.ToString()];
    }

    private string[] BlockRule(IPAddress vip) => [.. Match(vip), "-j", "DROP"];

    private IEnumerable<string> Match(IPAddress vip)
    {
        if (vip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"VIP {vip} is not IPv4: only IPv4 VIPs are supported (iptables, not ip6tables).");
        if (_exemptInterface is not null)
            return ["!", "-i", _exemptInterface, "-d", $"{vip}/32"];
        return ["-d", $"{vip}/32"];
    }

    private void EnsureChain()
    {
        if (!Iptables("-S", _chain).Ok)
            Check(Iptables("-N", _chain), "-N", _chain);
        if (!Iptables("-C", "PREROUTING", "-j", _chain).Ok)
            Check(Iptables("-I", "PREROUTING", "1", "-j", _chain), "-I", "PREROUTING", "1", "-j", _chain);
    }

    private void Ensure(bool append, string[] rule)
    {
        if (Iptables(["-C", _chain, .. rule]).Ok) return;
        string[] add = append ? ["-A", _chain, .. rule] : ["-I", _chain, "1", .. rule];
        Check(Iptables(add), add);
    }

    private void Remove(string[] rule)
    {
        // Loop: a rule added twice by hand must not survive a single removal.
        while (Iptables(["-C", _chain, .. rule]).Ok)
        {
            string[] del = ["-D", _chain, .. rule];
            Check(Iptables(del), del);
        }
    }

    private static CommandResult Iptables(params string[] args) =>
        Shell.Run("iptables", ["-w", "5", "-t", "raw", .. args]);

    private static void Check(CommandResult result, params string[] args)
    {
        if (result.Ok) return;
        var hint = result.StdErr.Contains("Permission denied", StringComparison.OrdinalIgnoreCase)
            ? "run the node as root (CAP_NET_ADMIN)"
            : "check that iptables (nf_tables backend) and the NFQUEUE target are available: run deploy/install-deps.sh";
        throw new InvalidOperationException(
            $"`iptables -t raw {string.Join(' ', args)}` failed (exit {result.ExitCode}): {result.StdErr.Trim()}; {hint}.");
    }
}
