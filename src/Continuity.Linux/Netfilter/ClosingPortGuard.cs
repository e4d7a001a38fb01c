using Continuity.Linux.Native;

namespace Continuity.Linux.Netfilter;

/// <summary>
/// Makes a node that is shutting down refuse new connections to its cluster (Akka.Remote) port, in the network
/// namespace of the calling thread, so that a peer dialling it at that moment is refused instead of accepted and
/// then cut off in the middle of its TLS handshake. Akka.NET 1.5.73 and 1.5.74 shut down any node whose outbound
/// TLS handshake fails (exit 79, <c>TlsHandshakeFailureReason</c>), whatever the reason: in the chaos runs that took
/// the last data node of the majority with it, because it dialled a downed node as that node's remoting closed.
/// A refused connection is an ordinary association failure, retried after the gate.
/// </summary>
public sealed class ClosingPortGuard(int port)
{
    public int Port { get; } = port is >= 1 and <= 65535 ? port : throw new ArgumentOutOfRangeException(nameof(port), port, "a TCP port is 1..65535");

    private string[] Rule => ["INPUT", "-p", "tcp", "--dport", Port.ToString(), "--syn", "-j", "REJECT", "--reject-with", "tcp-reset"];

    /// <summary>From now on new connections to the port are refused (RST); established ones are left alone.</summary>
    public void Refuse()
    {
        if (Iptables(["-C", .. Rule]).Ok) return;
        string[] add = ["-I", .. Rule];
        var result = Iptables(add);
        if (!result.Ok)
            throw new InvalidOperationException($"`iptables {string.Join(' ', add)}` failed (exit {result.ExitCode}): {result.StdErr.Trim()}");
    }

    /// <summary>Whether new connections to the port are refused now.</summary>
    public bool Refusing => Iptables(["-C", .. Rule]).Ok;

    /// <summary>Removes the refusal (a node starting again on the port its previous run left refusing); true if one was there.</summary>
    public bool Clear()
    {
        var removed = false;
        while (Iptables(["-C", .. Rule]).Ok && Iptables(["-D", .. Rule]).Ok) removed = true;
        return removed;
    }

    private static CommandResult Iptables(string[] args) => Shell.Run("iptables", ["-w", "5", .. args]);
}
