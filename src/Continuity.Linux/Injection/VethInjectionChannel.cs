using System.Collections.Concurrent;
using System.Net;
using System.Net.NetworkInformation;
using Continuity.Core.Platform;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Native;
using SharpPcap;
using SharpPcap.LibPcap;

namespace Continuity.Linux.Injection;

/// <summary>
/// <see cref="IInjectionChannel"/> over a veth pair in the network namespace of the constructing thread
/// (every later call acts there too, whichever thread makes it).
/// Frames written into the inject end (<c>ctinjN</c>) arrive on the receive end (<c>ctrplN</c>) as received
/// traffic. While replies are captured, a policy rule sends what the VIP emits to the logged clients through a
/// routing table of the channel's own, out of <c>ctrplN</c> (permanent neighbour entries, so no ARP is
/// needed), where it is read on <c>ctinjN</c> and discarded, after noting how far each TCP connection has sent.
/// <para>Only packets whose source is the switching application's VIP are captured: another application on the
/// same node keeps answering the same clients during the replay (a plain host route per client swallowed its
/// replies too). A UDP program bound to 0.0.0.0 that answers without IP_PKTINFO does not answer from the VIP
/// and is not captured; it could not serve clients of a VIP correctly anyway.</para>
/// <para>Each application switching at the same time needs its own channel number (the application's queue
/// number does), so that two takeovers on one node do not tear down each other's pair.</para>
/// The node's <see cref="Netfilter.IptablesFilter"/> must exempt the receive ends (its default,
/// <see cref="ReceiveInterfacePattern"/>), or injected packets would be queued or blocked again.
/// </summary>
public sealed class VethInjectionChannel : IInjectionChannel
{
    private const int EthernetHeader = 14;

    /// <summary>The iptables interface pattern matching the receive end of every channel.</summary>
    public const string ReceiveInterfacePattern = "ctrpl+";

    /// <summary>Channel N routes captured replies through table <c>RouteTableBase + N</c>.</summary>
    public const uint RouteTableBase = 3_950_000;

    /// <summary>
    /// The capture's ring. A takeover's replay probes the restored connections and learns from the burst of answers how
    /// far each socket has sent. With libpcap's default 2 MiB ring the channel missed most of such a burst
    /// (908-937 of 1000 answers in InjectionTests; 3-61 of 100 connections in the lab), and libpcap's drop counter
    /// said nothing: in immediate mode each frame takes a slot sized for the largest frame the 64 KiB MTU of the pair
    /// allows, some 31 slots in all. The replay, blind on those connections, injected ACKs the restored sockets had
    /// not reached; the kernel dropped those segments with their data, and clients that the dead primary had told it
    /// had their requests waited for replies that never came. 64 MiB (about a thousand such slots; the switch probes a
    /// few hundred sockets at a time) is kernel memory held only while a switch runs.
    /// </summary>
    private const int CaptureBufferBytes = 64 << 20;

    /// <summary>Ahead of the main table's rule (32766), behind the local table's (0).</summary>
    private const string RulePreference = "1000";

    private readonly string _inj0;
    private readonly string _inj1;
    private readonly LibPcapLiveDevice _device;
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _netns;
    private readonly byte[] _inj0Mac;
    private readonly byte[] _inj1Mac;
    private readonly string _inj0MacText;
    private readonly Lock _sendLock = new();
    private byte[] _frame = new byte[EthernetHeader + 65535];
    private readonly ConcurrentDictionary<ConnectionKey, uint> _highestSent = new();
    private readonly ConcurrentDictionary<ConnectionKey, uint> _highestAcknowledged = new();
    // The last data segments of each connection, for UnacknowledgedReplies; bounded so that a long replay of a
    // chatty connection costs a few of its segments, not all it sent.
    private readonly ConcurrentDictionary<ConnectionKey, Queue<byte[]>> _lastSegments = new();
    private const int SegmentsKeptPerConnection = 16;
    // And in all: a replay of many bulk senders must not hold gigabytes (a captured segment can be a 64 KiB GSO one).
    private const long MaxKeptBytes = 64L << 20;
    private long _keptBytes;
    private readonly HashSet<IPAddress> _captured = [];
    private readonly Lock _routesLock = new();
    private readonly IPAddress _vip;
    private readonly string _table;
    private long _repliesDiscarded;
    private bool _disposed;

    /// <summary>Frames read (and discarded) on inj0 that came from the local stack.</summary>
    public long RepliesDiscarded => Interlocked.Read(ref _repliesDiscarded);

    /// <summary>Sees every reply before it is discarded, on the capture thread (e.g. to prompt clients with
    /// duplicate ACKs after a switch). Keep it short: it delays the capture.</summary>
    public Action<IpPacketInfo>? ObserveReplies { get; set; }

    /// <summary>Reports replies that could not be parsed; they are still discarded.</summary>
    public Action<string>? Log { get; set; }

    public string InjectInterface => _inj0;
    public string ReceiveInterface => _inj1;

    /// <param name="vip">The switching application's VIP: only what it emits is captured.</param>
    /// <param name="channel">Distinct per application switching at the same time (0..65535).</param>
    public VethInjectionChannel(IPAddress vip, ushort channel = 0)
    {
        ArgumentNullException.ThrowIfNull(vip);
        _vip = vip;
        var inj0 = _inj0 = $"ctinj{channel}";
        var inj1 = _inj1 = $"ctrpl{channel}";
        _table = (RouteTableBase + channel).ToString();
        _netns = NetNs.Current();
        try
        {
            // A leftover pair from a crashed node would carry stale routes: start from a fresh one.
            RemoveLeftovers(vip, channel);
            // The largest MTU, so that a packet logged from a jumbo-frame interface can be injected whole.
            // Replies are discarded anyway, and TCP segment sizes still come from the MSS the client announced.
            if (!Shell.Run("ip", "link", "add", inj0, "mtu", "65535", "type", "veth", "peer", "name", inj1, "mtu", "65535").Ok)
                Shell.Check("ip", "link", "add", inj0, "type", "veth", "peer", "name", inj1);
        }
        catch
        {
            _netns.Dispose();
            throw;
        }
        try
        {
            // inj0 must never forward what it reads back into inj1 (a loop until TTL expiry); no IPv6 chatter either.
            Sysctl($"net.ipv4.conf.{inj0}.forwarding", "0");
            Sysctl($"net.ipv6.conf.{inj0}.disable_ipv6", "1");
            Sysctl($"net.ipv6.conf.{inj1}.disable_ipv6", "1");
            // Injected packets carry client source addresses that are routed elsewhere (reverse path check)
            // and may carry local ones (accept_local); the effective rp_filter is max(all, interface).
            Sysctl("net.ipv4.conf.all.rp_filter", "0");
            Sysctl($"net.ipv4.conf.{inj1}.rp_filter", "0");
            Sysctl($"net.ipv4.conf.{inj1}.accept_local", "1");
            Sysctl("net.ipv4.conf.all.accept_local", "1");
            Shell.Check("ip", "link", "set", inj1, "up");
            Shell.Check("ip", "link", "set", inj0, "up");

            _inj0Mac = MacOf(inj0);
            _inj1Mac = MacOf(inj1);
            _inj0MacText = string.Join(':', _inj0Mac.Select(b => b.ToString("x2")));

            // pcap opens its packet socket in the calling thread's namespace: list devices afresh here,
            // not through the process-wide cached CaptureDeviceList.Instance.
            _device = LibPcapLiveDeviceList.New().FirstOrDefault(d => d.Name == inj0)
                      ?? throw new InvalidOperationException($"libpcap does not list {inj0}: is libpcap0.8 installed? run deploy/install-deps.sh.");
            _device.Open(new DeviceConfiguration
            {
                Mode = DeviceModes.None, ReadTimeout = 100, Immediate = true, BufferSize = CaptureBufferBytes,
            });
            _device.OnPacketArrival += OnFrame;
            _device.StartCapture();
        }
        catch
        {
            Shell.Run("ip", "link", "del", "dev", inj0);
            _netns.Dispose();
            throw;
        }
    }

    public void CaptureRepliesTo(IReadOnlyCollection<IPAddress> clients) => NetNs.RunIn(_netns, () =>
    {
        lock (_routesLock)
        {
            foreach (var client in clients)
            {
                Shell.Check("ip", "neigh", "replace", client.ToString(), "lladdr", _inj0MacText, "dev", _inj1, "nud", "permanent");
                Shell.Check("ip", "route", "replace", $"{client}/32", "dev", _inj1, "table", _table);
                _captured.Add(client);
            }
            if (_captured.Count > 0 && !HasRule())
                Shell.Check("ip", "rule", "add", "from", $"{_vip}/32", "lookup", _table, "pref", RulePreference);
        }
    });

    public void ReleaseReplies() => NetNs.RunIn(_netns, () =>
    {
        lock (_routesLock)
        {
            // The rule first: from then on nothing new is routed into the channel.
            DeleteRules();
            Shell.Run("ip", "route", "flush", "table", _table);
            foreach (var client in _captured)
                Shell.Run("ip", "neigh", "del", client.ToString(), "dev", _inj1);
            _captured.Clear();
        }
    });

    /// <summary>Removes, in the calling thread's network namespace, the pair, reply routes and policy rule that channel
    /// <paramref name="channel"/> of <paramref name="vip"/> left when its node process died during a takeover: the rule
    /// would keep sending the VIP's replies to logged clients into the pair. A no-op when nothing is left.</summary>
    public static void RemoveLeftovers(IPAddress vip, ushort channel)
    {
        var inj0 = $"ctinj{channel}";
        if (Shell.Run("ip", "link", "show", "dev", inj0).Ok)
            Shell.Run("ip", "link", "del", "dev", inj0);
        var table = (RouteTableBase + channel).ToString();
        DeleteRules(vip, table);
        Shell.Run("ip", "route", "flush", "table", table);
    }

    private bool HasRule() =>
        Shell.Run("ip", "rule", "show", "from", $"{_vip}/32", "lookup", _table).StdOut.Trim().Length > 0;

    private void DeleteRules() => DeleteRules(_vip, _table);

    private static void DeleteRules(IPAddress vip, string table)
    {
        // A crashed node may have left several; each del removes one.
        for (var i = 0; i < 16 && Shell.Run("ip", "rule", "del", "from", $"{vip}/32", "lookup", table).Ok; i++) { }
    }

    public void Inject(ReadOnlySpan<byte> ipPacket)
    {
        if (ipPacket.Length == 0 || ipPacket[0] >> 4 != 4)
            throw new MalformedPacketException($"Only IPv4 packets can be injected; got {(ipPacket.Length == 0 ? "an empty packet" : $"IP version {ipPacket[0] >> 4}")}.");
        lock (_sendLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var length = EthernetHeader + ipPacket.Length;
            if (_frame.Length < length) _frame = new byte[length];
            var frame = _frame.AsSpan(0, length);
            _inj1Mac.CopyTo(frame);
            _inj0Mac.CopyTo(frame[6..]);
            frame[12] = 0x08; // ethertype IPv4
            frame[13] = 0x00;
            ipPacket.CopyTo(frame[EthernetHeader..]);
            _device.SendPacket(frame);
        }
    }

    public bool TryGetHighestSent(ConnectionKey connection, out uint sequenceEnd) =>
        _highestSent.TryGetValue(connection, out sequenceEnd);

    public bool TryGetHighestAcknowledged(ConnectionKey connection, out uint acknowledgment) =>
        _highestAcknowledged.TryGetValue(connection, out acknowledgment);

    public IReadOnlyList<byte[]> UnacknowledgedReplies(ConnectionKey connection, uint acknowledged)
    {
        if (!_lastSegments.TryGetValue(connection, out var kept)) return [];
        lock (kept)
            return kept.Where(s => PacketRewriter.IsAfter(PacketRewriter.Parse(s).SequenceEnd, acknowledged)).ToList();
    }

    private void OnFrame(object sender, PacketCapture e)
    {
        var frame = e.Data;
        // Our own injected frames are seen leaving inj0 too; only frames from the stack (src = inj1) are replies.
        if (frame.Length < EthernetHeader || !frame.Slice(6, 6).SequenceEqual(_inj1Mac)) return;
        if (frame[12] != 0x08 || frame[13] != 0x00) return;
        Interlocked.Increment(ref _repliesDiscarded);
        try
        {
            var p = PacketRewriter.Parse(frame[EthernetHeader..]);
            ObserveReplies?.Invoke(p);
            if (!p.IsTcp) return;
            var key = PacketRewriter.OutboundKey(p);
            KeepHighest(_highestSent, key, p.SequenceEnd);
            if (p.HasAck) KeepHighest(_highestAcknowledged, key, p.Acknowledgment);
            if (p.SequenceEnd != p.Sequence && (p.TcpFlags & (IpPacketInfo.Syn | IpPacketInfo.Rst)) == 0)
            {
                var kept = _lastSegments.GetOrAdd(key, _ => new Queue<byte[]>());
                lock (kept)
                {
                    if (kept.Count == SegmentsKeptPerConnection) Interlocked.Add(ref _keptBytes, -kept.Dequeue().Length);
                    if (Interlocked.Read(ref _keptBytes) + frame.Length <= MaxKeptBytes)
                    {
                        var segment = frame[EthernetHeader..].ToArray();
                        // Captured on a veth, the stack's output may carry an offloaded (partial) checksum.
                        PacketRewriter.RecomputeChecksums(segment);
                        kept.Enqueue(segment);
                        Interlocked.Add(ref _keptBytes, segment.Length);
                    }
                }
            }
        }
        catch (MalformedPacketException ex)
        {
            Log?.Invoke($"Injection channel {_inj0}: unparsable reply discarded: {ex.Message}");
        }
        catch (Exception ex)
        {
            // An exception escaping into SharpPcap's capture thread would end the process.
            Log?.Invoke($"Injection channel {_inj0}: ObserveReplies threw {ex.GetType().Name}: {ex.Message}");
        }
    }

    private static void KeepHighest(ConcurrentDictionary<ConnectionKey, uint> highest, ConnectionKey key, uint value) =>
        highest.AddOrUpdate(key, value, (_, previous) => PacketRewriter.IsAfter(value, previous) ? value : previous);

    private static byte[] MacOf(string dev)
    {
        // Not /sys/class/net: sysfs shows the namespace it was mounted in, not this thread's.
        using var doc = System.Text.Json.JsonDocument.Parse(Shell.Check("ip", "-j", "link", "show", "dev", dev));
        var text = doc.RootElement[0].GetProperty("address").GetString()!;
        return PhysicalAddress.Parse(text.Replace(':', '-').ToUpperInvariant()).GetAddressBytes();
    }

    private static void Sysctl(string key, string value) => Shell.Check("sysctl", "-q", "-w", $"{key}={value}");

    public void Dispose()
    {
        lock (_sendLock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        ReleaseReplies();
        try { _device.StopCapture(); } catch (PcapException) { }
        _device.Close();
        // Deleting one end deletes the pair, and with it the routes and neighbour entries on the receive end.
        NetNs.RunIn(_netns, () => Shell.Run("ip", "link", "del", "dev", _inj0));
        _netns.Dispose();
    }
}
