using System.Diagnostics;
using System.Net;
using Continuity.Core.Apps;
using Continuity.Core.Log;
using Continuity.Core.Platform;

namespace Continuity.Core.Switch;

/// <summary>The step a switch is in, for <see cref="SwitchProgress"/>.</summary>
public enum SwitchPhase
{
    /// <summary>VIP up with inbound traffic dropped; replies towards clients captured.</summary>
    Vip,
    /// <summary>State directories put back and the program restored.</summary>
    Restore,
    /// <summary>Logged packets after the mark re-injected.</summary>
    Replay,
    /// <summary>Replies released, caller's beforeOpen, inbound unblocked, VIP announced, clients prompted or reset.</summary>
    Open,
    Done,
}

/// <summary>Where a switch is: its phase and, during the replay, how many packets went in.</summary>
public readonly record struct SwitchProgress(SwitchPhase Phase, int Replayed, int Total);

/// <summary>What a switch did and how long each phase took.</summary>
/// <param name="RestoredPid">The pid of the restored program (in this node's pid namespace).</param>
/// <param name="AcksClamped">Replayed TCP packets whose ACK had to be lowered to what the restored program had
/// re-sent (it never got that far within the pacing timeout).</param>
/// <param name="ConnectionsReset">TCP connections reset on purpose: all of them under RestoreOnly, those opened
/// after the checkpoint under Replay.</param>
/// <param name="ConnectionsPrompted">TCP connections whose client (and, for a replayed one, restored server) was
/// prompted to retransmit at once: the replayed ones and those restored with nothing logged since the mark.</param>
/// <param name="SynsUnanswered">Connections opened after the checkpoint whose replayed SYN the restored program never
/// answered, even sent again: what their clients sent did not reach it (they are reset with the others opened after
/// the checkpoint). Zero unless the restored program stopped accepting connections.</param>
/// <param name="ProbesUnanswered">Connections established at the checkpoint whose restored socket did not say how far
/// it had sent when probed: their packets were replayed without pacing, and any whose ACK was ahead of the socket lost
/// its data. Zero on a healthy injection channel.</param>
public sealed record SwitchReport(
    int RestoredPid,
    RecoveryPolicy Policy,
    TimeSpan Vip,
    TimeSpan Restore,
    TimeSpan Replay,
    TimeSpan Open,
    int PacketsReplayed,
    long RepliesDiscarded,
    int AcksClamped,
    int ConnectionsReset,
    int ConnectionsPrompted,
    int SynsUnanswered = 0,
    int ProbesUnanswered = 0)
{
    public TimeSpan Total => Vip + Restore + Replay + Open;

    public override string ToString() =>
        $"{Policy}: pid {RestoredPid}; vip {Vip.TotalMilliseconds:F0} ms, restore {Restore.TotalMilliseconds:F0} ms, " +
        $"replay {Replay.TotalMilliseconds:F0} ms, open {Open.TotalMilliseconds:F0} ms (total {Total.TotalMilliseconds:F0} ms); " +
        $"{PacketsReplayed} packets replayed, {AcksClamped} ACKs clamped, {RepliesDiscarded} replies discarded, " +
        $"{ConnectionsReset} connections reset, {ConnectionsPrompted} prompted" +
        (SynsUnanswered > 0 ? $", {SynsUnanswered} replayed SYNs never answered" : "") +
        (ProbesUnanswered > 0 ? $", {ProbesUnanswered} restored connections did not answer their probe" : "");
}

/// <summary>Tuning of <see cref="Switchover"/>; the defaults suit a LAN.</summary>
public sealed record SwitchOptions
{
    /// <summary>How long a replayed TCP packet waits for the restored program to have re-sent what the packet
    /// acknowledges, before its ACK is clamped. Long enough for the program to answer the previous request.</summary>
    public TimeSpan PacingTimeout { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How long the replay may wait for the restored program, all connections together, before it stops
    /// waiting and clamps every later ACK at once. Each stuck connection costs <see cref="PacingTimeout"/> once; without
    /// a bound, hundreds of connections (those opened since the checkpoint, on a loaded machine) cost minutes (seen:
    /// 421 connections, a 102 s replay). Clamping loses no byte: the restored server re-sends what the clamped ACKs
    /// left unacknowledged, and the clients discard the copies. But it can stall a connection: with no waiting at all
    /// (a budget of zero), one connection in two lab runs stayed below full rate for over 25 s after the switch.</summary>
    public TimeSpan PacingBudget { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long to wait for the restored sockets of one burst of probes (a few hundred) to reveal how far they had sent.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>After opening, make both ends of each replayed connection retransmit at once, and the client of each
    /// restored connection the log says nothing of, instead of waiting for their backed-off retransmission timers.</summary>
    public bool PromptClients { get; init; } = true;

    /// <summary>ICMP host unreachables per prompt, each undoing one step of a sender's RTO back-off (RFC 6069):
    /// enough for the back-off a few seconds of outage builds up.</summary>
    public int BackoffReverts { get; init; } = 8;

    /// <summary>How long after the first gratuitous ARP the clients are prompted.</summary>
    public TimeSpan PromptDelay { get; init; } = TimeSpan.FromMilliseconds(30);

    /// <summary>A replayed datagram waits while the restored program's UDP sockets hold more than this unread. TCP
    /// has flow control; UDP has none, and a datagram that meets a full receive queue is dropped by the kernel: lost
    /// from the program's state though the client was answered for it. Seen on the chaos lab at load 20 (two labs on 2
    /// cores): the program, just restored and slow to run, read nothing while a hundred datagrams went in, and one flow's
    /// count came out one short, in 3 double takeovers of 184 runs. Well under the 208 KiB a socket gets by default.</summary>
    public int UdpQueueLimit { get; init; } = 32 * 1024;

    /// <summary>How long the replay waits in all for the restored program to read its datagrams (see
    /// <see cref="UdpQueueLimit"/>) before it injects the rest without waiting: a program that stopped reading must not
    /// hold the switch forever, and one that reads slowly gets that long.</summary>
    public TimeSpan UdpPacingBudget { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Duplicate ACKs per prompt: fast retransmit needs three, the first may count as a window update.</summary>
    public int DuplicateAcks { get; init; } = 4;
}

/// <summary>The platform parts a switch drives, all acting in the network namespace of the new primary.</summary>
/// <param name="Sender">Raw output towards clients, past the local stack (prompts and resets).</param>
/// <param name="Sockets">The restored program's connections, to prompt those the log says nothing of.</param>
public sealed record SwitchPlatform(
    IPacketFilter Filter,
    IVirtualIp VirtualIp,
    ICheckpointer Checkpointer,
    IInjectionChannel Channel,
    IPacketInspector Inspector,
    IPacketSender Sender,
    ISocketTable Sockets);

/// <summary>
/// The switch run by the elected standby to become the primary of one application: the checkpoint is restored,
/// the log after its mark replayed with every reply swallowed (the clients already have them), then the VIP opens.
/// <para>Order matters and is fixed: the VIP comes up with its inbound traffic already dropped, so no client packet
/// reaches the program before the replay has brought it to where the dead primary was; replies are captured
/// before the restore, since a restored socket retransmits at once. The caller's <c>beforeOpen</c> runs after the
/// replay and before inbound traffic is unblocked: install the queue rules of the new primary there, so the first
/// new client packet is already held and logged.</para>
/// <para>Connections opened after the checkpoint are replayed (their bytes change the program's state, and the
/// clients were told they arrived) and then reset on both sides: the restored kernel chose another initial
/// sequence number than the dead primary, so they cannot continue.</para>
/// <para>Not thread-safe; one switch per instance at a time. The caller owns the platform objects and disposes the
/// injection channel afterwards.</para>
/// </summary>
public sealed class Switchover
{
    private readonly SwitchPlatform _platform;
    private readonly SwitchOptions _options;
    private readonly Action<string> _log;
    // The replay's time spent waiting for the restored program, against SwitchOptions.PacingBudget.
    private TimeSpan _pacingWaited;
    private bool _pacingBudgetSpent;
    private TimeSpan _synWaited;
    private TimeSpan _udpWaited;

    /// <param name="log">Diagnostics (packets that could not be parsed, connections given up on).</param>
    public Switchover(SwitchPlatform platform, SwitchOptions? options = null, Action<string>? log = null)
    {
        _platform = platform ?? throw new ArgumentNullException(nameof(platform));
        _options = options ?? new SwitchOptions();
        _log = log ?? (_ => { });
    }

    /// <summary>Makes this node the primary of <paramref name="app"/>.</summary>
    /// <param name="checkpointDir">The CRIU images with the copies of the state directories (<see cref="CheckpointFiles"/>).</param>
    /// <param name="mark">The log sequence number of the last packet the checkpointed program had received.</param>
    /// <param name="log">The application's logged inbound packets; those up to the mark are ignored, the rest are
    /// replayed in Seq order.</param>
    /// <param name="beforeOpen">Runs after the replay, with replies already released, before inbound traffic to the
    /// VIP is unblocked: start queueing for the new primary here.</param>
    /// <returns>The report; the program keeps running whatever happens after the restore.</returns>
    public async Task<SwitchReport> RunAsync(
        AppSpec app,
        string checkpointDir,
        long mark,
        IReadOnlyList<LoggedPacket> log,
        Func<CancellationToken, Task>? beforeOpen = null,
        IProgress<SwitchProgress>? progress = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(log);
        var p = _platform;
        _pacingWaited = TimeSpan.Zero;
        _pacingBudgetSpent = false;
        _synWaited = TimeSpan.Zero;
        _udpWaited = TimeSpan.Zero;
        var replay = Prepare(log, mark, app.Vip);
        var clients = replay.Select(r => r.Fields?.Connection.Client).OfType<IPAddress>().Distinct().ToList();
        var watch = Stopwatch.StartNew();

        // a-b. VIP up but closed; replies captured before anything can emit one.
        progress?.Report(new SwitchProgress(SwitchPhase.Vip, 0, replay.Count));
        p.Filter.BlockInbound(app.Vip);
        p.VirtualIp.Add(app.Vip, app.VipPrefixLength);
        if (clients.Count > 0)
            p.Channel.CaptureRepliesTo(clients);
        var vipTime = Lap(watch);

        // c. State directories first: the restored program reopens its files by path.
        progress?.Report(new SwitchProgress(SwitchPhase.Restore, 0, replay.Count));
        CheckpointFiles.RestoreStateDirs(checkpointDir, app.StateDirs);
        var tcp = app.Recovery == RecoveryPolicy.Replay ? TcpRestore.Established : TcpRestore.Closed;
        var pid = await p.Checkpointer.RestoreAsync(checkpointDir, tcp, ct).ConfigureAwait(false);
        var restoreTime = Lap(watch);

        // d-e. Replay on a thread of its own: pacing polls the channel at millisecond granularity.
        var connections = new Dictionary<ConnectionKey, Connection>();
        var replayed = 0;
        var clamped = 0;
        var synsUnanswered = 0;
        var probesUnanswered = 0;
        if (app.Recovery == RecoveryPolicy.Replay)
        {
            var udpPorts = app.Ports.Where(port => port.Protocol == "udp").Select(port => port.Port).ToList();
            (replayed, clamped, probesUnanswered) = await Task.Run(() => Replay(replay, connections, new UdpTarget(pid, app.Vip, udpPorts),
                progress, ct), ct).ConfigureAwait(false);
            synsUnanswered = connections.Values.Count(c => c.OpenedAfterMark && !p.Channel.TryGetHighestSent(c.Key, out _));
            ResetLocally(connections.Values.Where(c => c.OpenedAfterMark));
            if (_options.PromptClients)
                await Task.Run(() => ProbeQuietConnections(pid, app.Vip, connections), ct).ConfigureAwait(false);
        }
        else
        {
            // Nothing replayed: note the connections only, to reset their clients.
            foreach (var r in replay)
                if (r.Fields is { IsTcp: true } f)
                    Track(connections, f, f.Acknowledgment);
        }
        var replayTime = Lap(watch);

        // f. Open: replies out, caller's queue in, then inbound in, then the world told.
        progress?.Report(new SwitchProgress(SwitchPhase.Open, replayed, replay.Count));
        p.Channel.ReleaseReplies();
        if (beforeOpen is not null)
            await beforeOpen(ct).ConfigureAwait(false);
        p.Filter.UnblockInbound(app.Vip);
        var announce = Task.Run(() => p.VirtualIp.Announce(app.Vip), CancellationToken.None);

        // g. Resets and prompts go straight to the clients; their answers reach us now that inbound is open.
        var toReset = app.Recovery == RecoveryPolicy.Replay
            ? connections.Values.Where(c => c.OpenedAfterMark).ToList()
            : connections.Values.ToList();
        foreach (var c in toReset)
            ResetClient(c);
        var prompted = 0;
        var toPrompt = app.Recovery == RecoveryPolicy.Replay && _options.PromptClients
            ? connections.Values.Where(c => !c.OpenedAfterMark && !c.Closed).ToList()
            : [];
        if (toPrompt.Count > 0)
        {
            // The clients answer a prompt at once, to the VIP's MAC they know: give the first gratuitous ARP a head
            // start, and prompt again once the announcement is over in case they still had the dead primary's.
            await Task.WhenAny(announce, Task.Delay(_options.PromptDelay, ct)).ConfigureAwait(false);
            foreach (var c in toPrompt)
                Prompt(c);
            prompted = toPrompt.Count;
        }
        await announce.ConfigureAwait(false);
        foreach (var c in toPrompt)
            Prompt(c);
        var openTime = Lap(watch);

        progress?.Report(new SwitchProgress(SwitchPhase.Done, replayed, replay.Count));
        return new SwitchReport(pid, app.Recovery, vipTime, restoreTime, replayTime, openTime, replayed,
            p.Channel.RepliesDiscarded, clamped, toReset.Count, prompted, synsUnanswered, probesUnanswered);
    }

    private sealed record Packet(LoggedPacket Logged, PacketFields? Fields);

    /// <summary>What the replay learned of one TCP connection.</summary>
    private sealed class Connection(ConnectionKey key)
    {
        public ConnectionKey Key { get; } = key;
        public bool OpenedAfterMark { get; set; }
        public bool Seen { get; set; }
        /// <summary>Next client sequence number: what the restored server has received once all is replayed.</summary>
        public uint ClientNext { get; set; }
        /// <summary>The highest ACK the client sent in the dead primary's numbering: what the client expects next.</summary>
        public uint ClientAcked { get; set; }
        /// <summary>The highest ACK injected (translated, clamped): the restored server's snd_una.</summary>
        public uint InjectedAck { get; set; }
        public ushort Window { get; set; }
        public bool Closed { get; set; }
        public bool PacingGivenUp { get; set; }
        /// <summary>Its replayed SYN drew no SYN-ACK, even sent again: its ISN offset cannot be learnt.</summary>
        public bool SynUnanswered { get; set; }
        /// <summary>For a connection opened after the mark: restored ISN minus the dead primary's, once known.</summary>
        public uint? IsnOffset { get; set; }
        /// <summary>The ACK of the client's first ACK after its SYN: the dead primary's ISN + 1.</summary>
        public uint? OldIsnPlusOne { get; set; }
        /// <summary>Established at the checkpoint with nothing logged since: only <see cref="ClientNext"/> is known,
        /// learnt from the restored socket itself.</summary>
        public bool Quiet { get; init; }
    }

    private List<Packet> Prepare(IReadOnlyList<LoggedPacket> log, long mark, IPAddress vip)
    {
        var result = new List<Packet>();
        foreach (var l in log.Where(l => l.Seq > mark).OrderBy(l => l.Seq))
        {
            if (_platform.Inspector.TryReadInbound(l.Packet, out var f))
            {
                if (!f.Connection.Server.Equals(vip))
                    _log($"Logged packet {l.Seq} is addressed to {f.Connection.Server}, not the VIP {vip}: replayed anyway.");
                result.Add(new Packet(l, f));
            }
            else
            {
                // A fragment or another protocol: the stack reassembles or ignores it as it would have.
                result.Add(new Packet(l, null));
            }
        }
        return result;
    }

    /// <summary>Where replayed datagrams go: the restored program's sockets on the VIP's UDP ports.</summary>
    private sealed record UdpTarget(int Pid, IPAddress Vip, IReadOnlyCollection<int> Ports);

    private (int Replayed, int Clamped, int ProbesUnanswered) Replay(List<Packet> packets, Dictionary<ConnectionKey, Connection> connections,
        UdpTarget udp, IProgress<SwitchProgress>? progress, CancellationToken ct)
    {
        var p = _platform;
        // Which connections start with a SYN in the log, and the dead primary's ISN as their clients saw it.
        foreach (var pk in packets)
        {
            if (pk.Fields is not { IsTcp: true } f) continue;
            if (!connections.TryGetValue(f.Connection, out var c))
                connections[f.Connection] = c = new Connection(f.Connection) { OpenedAfterMark = f.IsSyn };
            if (c.OpenedAfterMark && c.OldIsnPlusOne is null && f.HasAck && !f.IsRst)
                c.OldIsnPlusOne = f.Acknowledgment;
        }

        var probesUnanswered = ProbeRestoredSockets(packets, connections);

        var replayed = 0;
        var clamped = 0;
        foreach (var pk in packets)
        {
            ct.ThrowIfCancellationRequested();
            var bytes = (byte[])pk.Logged.Packet.Clone();
            if (pk.Fields is { IsTcp: true } f)
            {
                var c = connections[f.Connection];
                var ack = f.Acknowledgment;
                if (f.HasAck)
                {
                    if (c.OpenedAfterMark && c.IsnOffset is null && c.OldIsnPlusOne is { } old && !c.SynUnanswered &&
                        WaitForSent(f.Connection, null, out var synAckEnd))
                        c.IsnOffset = unchecked(synAckEnd - old);
                    if (c.IsnOffset is { } offset)
                        ack = unchecked(ack + offset);
                    // A connection that let one packet wait in vain is not waited for again: one stuck socket must not
                    // cost the timeout on each of its packets while every client waits.
                    var known = c.PacingGivenUp
                        ? p.Channel.TryGetHighestSent(f.Connection, out var sent)
                        : WaitForSent(f.Connection, ack, out sent);
                    if (!known)
                    {
                        if (!c.PacingGivenUp)
                            _log($"Replay of {pk.Logged.Seq}: the restored program sent nothing on {Describe(f.Connection)} " +
                                 $"within {_options.PacingTimeout.TotalMilliseconds} ms; its packets go in unclamped.");
                        c.PacingGivenUp = true;
                    }
                    else if (PacketFields.IsAfter(ack, sent))
                    {
                        if (!c.PacingGivenUp)
                            _log($"Replay of {pk.Logged.Seq}: the restored program sent only up to {sent}, not {ack}, on " +
                                 $"{Describe(f.Connection)} within {_options.PacingTimeout.TotalMilliseconds} ms; ACKs clamped without waiting from now on.");
                        c.PacingGivenUp = true;
                        ack = sent;
                        clamped++;
                    }
                }
                try
                {
                    if (c.OpenedAfterMark) p.Inspector.RemoveTimestamp(bytes);
                    if (ack != f.Acknowledgment) p.Inspector.SetAcknowledgment(bytes, ack);
                    else p.Inspector.RecomputeChecksums(bytes);
                }
                catch (Exception e) when (e is ArgumentException or NotSupportedException)
                {
                    _log($"Replay of {pk.Logged.Seq}: {e.Message}; injected as logged.");
                }
                Track(connections, f, ack);
            }
            else if (pk.Fields is not null)
            {
                WaitForRoomInUdpQueues(udp, pk.Logged.Seq);
                p.Inspector.RecomputeChecksums(bytes);
            }
            p.Channel.Inject(bytes);
            if (pk.Fields is { IsTcp: true, IsSyn: true, HasAck: false } syn && connections[syn.Connection].OpenedAfterMark)
                AwaitSynAck(connections[syn.Connection], bytes);
            replayed++;
            if ((replayed & 15) == 0)
                progress?.Report(new SwitchProgress(SwitchPhase.Replay, replayed, packets.Count));
        }
        progress?.Report(new SwitchProgress(SwitchPhase.Replay, replayed, packets.Count));
        return (replayed, clamped, probesUnanswered);
    }

    /// <summary>
    /// Waits for the restored program's SYN-ACK to a replayed SYN, sending the SYN again as a client would. Injected
    /// back to back, the SYNs of a burst of connections overflowed the listen backlog of a program just restored (slow
    /// to accept, its memory still faulting in) and the kernel dropped them without an answer: in the lab, 491 of 1000
    /// connections at 256 MB, each then costing the pacing timeout on every one of its packets, and a replay past
    /// two minutes. One at a time, each SYN finds room, or waits until the program accepted one.
    /// </summary>
    private void AwaitSynAck(Connection c, byte[] syn)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            for (var attempt = 1; attempt <= SynAttempts && _synWaited + watch.Elapsed < SynWaitBudget; attempt++)
            {
                if (WaitForSent(c.Key, null, out _)) return;
                if (attempt < SynAttempts) _platform.Channel.Inject(syn);
            }
            if (_platform.Channel.TryGetHighestSent(c.Key, out _)) return;
        }
        finally
        {
            _synWaited += watch.Elapsed;
        }
        c.SynUnanswered = true;
        _log($"Replay: the restored program did not answer the SYN of {Describe(c.Key)} (sent up to {SynAttempts} times, " +
             $"{_options.PacingTimeout.TotalMilliseconds} ms apart, within {SynWaitBudget.TotalSeconds:0} s for all SYNs); " +
             "what its client sent after it is injected unchanged.");
    }

    private const int SynAttempts = 5;
    // All SYNs together: a restored program that stopped accepting must not hold the switch for minutes.
    private static readonly TimeSpan SynWaitBudget = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The restored sockets of connections established at the checkpoint have sent nothing since: without knowing
    /// their snd_nxt, pacing would wait its whole timeout on each connection's first packet. A segment far below the
    /// receive window makes the kernel answer at once with a duplicate ACK carrying snd_nxt (RFC 793 §3.9), which
    /// the channel records and swallows.
    /// </summary>
    /// <returns>How many did not answer.</returns>
    private int ProbeRestoredSockets(List<Packet> packets, Dictionary<ConnectionKey, Connection> connections)
    {
        var firsts = packets.Where(pk => pk.Fields is { IsTcp: true })
            .Select(pk => pk.Fields!.Value)
            .GroupBy(f => f.Connection)
            .Select(g => g.First())
            .Where(f => !connections[f.Connection].OpenedAfterMark && !f.IsRst)
            .ToList();
        bool Answered(PacketFields f) => _platform.Channel.TryGetHighestSent(f.Connection, out _);
        ProbeInBursts(firsts, f =>
        {
            var k = f.Connection;
            _platform.Channel.Inject(_platform.Inspector.BuildTcp(k.Client, k.ClientPort, k.Server, k.ServerPort,
                unchecked(f.Sequence - 0x40000000), f.Acknowledgment, PacketFields.Ack, f.Window));
        }, Answered);
        var unanswered = firsts.Count(f => !Answered(f));
        if (unanswered > 0)
            _log($"{unanswered} of {firsts.Count} restored connections did not say how far they had sent within " +
                 $"{_options.ProbeTimeout.TotalMilliseconds} ms of being probed: their packets are not paced until the socket sends something.");
        return unanswered;
    }

    /// <summary>
    /// Connections the restored program holds that the log says nothing of since the mark: idle at the crash, or their
    /// client's next request went into the outage and waits for its backed-off retransmission, tens of seconds after
    /// a long detection. A SYN on an established socket draws a challenge ACK whatever its numbers (RFC 5961 §4), and
    /// that ACK carries the socket's rcv_nxt: where the client's oldest unacknowledged byte starts, which is all the
    /// client's prompt needs.
    /// </summary>
    private void ProbeQuietConnections(int pid, IPAddress vip, Dictionary<ConnectionKey, Connection> connections)
    {
        var quiet = _platform.Sockets.EstablishedTcp(pid, vip).Where(k => !connections.ContainsKey(k)).ToList();
        if (quiet.Count == 0) return;
        _platform.Channel.CaptureRepliesTo(quiet.Select(k => k.Client).Distinct().ToList());
        ProbeInBursts(quiet, k => _platform.Channel.Inject(_platform.Inspector.BuildTcp(k.Client, k.ClientPort, k.Server,
            k.ServerPort, 0, 0, PacketFields.Syn, 0)), k => _platform.Channel.TryGetHighestAcknowledged(k, out _));
        var answered = 0;
        foreach (var k in quiet)
        {
            if (!_platform.Channel.TryGetHighestAcknowledged(k, out var next)) continue;
            connections[k] = new Connection(k) { Quiet = true, Seen = true, ClientNext = next };
            answered++;
        }
        _log($"{quiet.Count} restored connections had nothing logged since the checkpoint; {answered} told where their " +
             $"client stands{(answered < quiet.Count ? $", {quiet.Count - answered} did not answer within {_options.ProbeTimeout.TotalMilliseconds} ms and are not prompted" : "")}.");
    }

    /// <summary>
    /// Probes a few hundred sockets at a time, each burst waited for (until all answered, or
    /// <see cref="SwitchOptions.ProbeTimeout"/>): every probe draws an answer at once, and the channel reads a burst of
    /// answers into a buffer of bounded size (about a thousand frames); a burst beyond it loses answers, and the replay
    /// is blind on those connections.
    /// </summary>
    private void ProbeInBursts<T>(IReadOnlyList<T> sockets, Action<T> probe, Func<T, bool> answered)
    {
        foreach (var burst in sockets.Chunk(ProbeBurst))
        {
            foreach (var s in burst) probe(s);
            var watch = Stopwatch.StartNew();
            while (watch.Elapsed < _options.ProbeTimeout && !burst.All(answered))
                Thread.Sleep(1);
        }
    }

    private const int ProbeBurst = 256;

    /// <summary>Holds a datagram back while the restored program has more than <see cref="SwitchOptions.UdpQueueLimit"/>
    /// unread (see there), within <see cref="SwitchOptions.UdpPacingBudget"/> for the whole replay.</summary>
    private void WaitForRoomInUdpQueues(UdpTarget udp, long seq)
    {
        if (udp.Ports.Count == 0 || _udpWaited >= _options.UdpPacingBudget) return;
        var watch = Stopwatch.StartNew();
        while (_platform.Sockets.UnreadDatagrams(udp.Pid, udp.Vip, udp.Ports) > _options.UdpQueueLimit)
        {
            if (_udpWaited + watch.Elapsed >= _options.UdpPacingBudget)
            {
                _log($"Replay of {seq}: the restored program still leaves more than {_options.UdpQueueLimit / 1024} KiB of datagrams " +
                     $"unread after {watch.Elapsed.TotalMilliseconds:F0} ms, and the replay has waited {_options.UdpPacingBudget.TotalSeconds:0} s " +
                     "in all for it to read: the rest go in without waiting, and any that meets a full receive queue is lost.");
                break;
            }
            Thread.Sleep(1);
        }
        _udpWaited += watch.Elapsed;
    }

    /// <summary>Waits until the restored program has sent up to <paramref name="ack"/> (null: anything at all, the
    /// kernel's SYN-ACK, which is always waited for: without it a connection opened since the checkpoint cannot be
    /// replayed at all). Waits for an ACK count against <see cref="SwitchOptions.PacingBudget"/>.</summary>
    private bool WaitForSent(ConnectionKey key, uint? ack, out uint sent)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                var known = _platform.Channel.TryGetHighestSent(key, out sent);
                if (known && (ack is null || !PacketFields.IsAfter(ack.Value, sent))) return true;
                if (watch.Elapsed >= _options.PacingTimeout) return known;
                if (ack is not null && _pacingWaited + watch.Elapsed >= _options.PacingBudget)
                {
                    if (!_pacingBudgetSpent)
                        _log($"The replay waited {_options.PacingBudget.TotalMilliseconds} ms in all for the restored program: " +
                             "from now on ACKs are clamped to what it has sent, without waiting.");
                    _pacingBudgetSpent = true;
                    return known;
                }
                Thread.Sleep(1);
            }
        }
        finally
        {
            if (ack is not null) _pacingWaited += watch.Elapsed;
        }
    }

    private static void Track(Dictionary<ConnectionKey, Connection> connections, PacketFields f, uint injectedAck)
    {
        if (!connections.TryGetValue(f.Connection, out var c))
            connections[f.Connection] = c = new Connection(f.Connection) { OpenedAfterMark = f.IsSyn };
        if (!c.Seen || PacketFields.IsAfter(f.SequenceEnd, c.ClientNext)) c.ClientNext = f.SequenceEnd;
        if (f.HasAck)
        {
            if (!c.Seen || PacketFields.IsAfter(f.Acknowledgment, c.ClientAcked)) c.ClientAcked = f.Acknowledgment;
            if (!c.Seen || PacketFields.IsAfter(injectedAck, c.InjectedAck)) c.InjectedAck = injectedAck;
        }
        c.Window = f.Window;
        if ((f.TcpFlags & (PacketFields.Fin | PacketFields.Rst)) != 0) c.Closed = true;
        c.Seen = true;
    }

    /// <summary>A RST at exactly the restored socket's rcv_nxt, injected: the program sees the connection reset
    /// (anything else in the window would only draw a challenge ACK).</summary>
    private void ResetLocally(IEnumerable<Connection> connections)
    {
        foreach (var c in connections)
        {
            var k = c.Key;
            _platform.Channel.Inject(_platform.Inspector.BuildTcp(k.Client, k.ClientPort, k.Server, k.ServerPort,
                c.ClientNext, 0, PacketFields.Rst, 0));
        }
    }

    /// <summary>A RST at the sequence number the client expects (its last ACK, in the dead primary's numbering).
    /// Should the client have received more since, the RST draws a challenge ACK that our kernel, holding no such
    /// connection, answers with an exact RST: a reset either way, never a hang.</summary>
    private void ResetClient(Connection c)
    {
        var k = c.Key;
        _platform.Sender.Send(_platform.Inspector.BuildTcp(k.Server, k.ServerPort, k.Client, k.ClientPort,
            c.ClientAcked, 0, PacketFields.Rst, 0));
    }

    /// <summary>
    /// Duplicate ACKs both ways. To the client, from the server's snd_nxt acknowledging the last client byte
    /// replayed: the client fast-retransmits what it sent after the crash. To the restored server, through the
    /// channel: it fast-retransmits the replies the channel swallowed and the client never got.
    /// </summary>
    private void Prompt(Connection c)
    {
        var k = c.Key;
        var clientUnreachable = _platform.Inspector.BuildHostUnreachable(k.Server, k.Client,
            k.Client, k.ClientPort, k.Server, k.ServerPort, c.ClientNext);
        if (c.Quiet)
        {
            // Neither end's window nor the server's unacknowledged data is known: a duplicate ACK could shut the
            // client's window, and the restored server has not backed off: its timers started at the restore.
            for (var i = 0; i < _options.BackoffReverts; i++)
                _platform.Sender.Send(clientUnreachable);
            return;
        }
        // The replies to replayed requests were swallowed during the replay; the restored socket would send them
        // again only when its retransmission timer fires (seen: 6 s after opening, the first checkpoints holding it
        // back). A copy that the client already has is dropped by its TCP.
        foreach (var reply in _platform.Channel.UnacknowledgedReplies(k, c.ClientAcked))
            _platform.Sender.Send(reply);
        var toServer = _platform.Inspector.BuildTcp(k.Client, k.ClientPort, k.Server, k.ServerPort,
            c.ClientNext, c.InjectedAck, PacketFields.Ack, c.Window);
        // The duplicate ACK towards the client needs the server's next sequence number, known only if the restored
        // server sent something during the replay. A connection whose logged tail is a bare ACK (its next request
        // was sent into the outage) sends nothing, yet its client is the one sleeping in RTO back-off: it still gets
        // the ICMP prompts below, which need only the client's own numbers.
        var toClient = _platform.Channel.TryGetHighestSent(k, out var serverNext)
            ? _platform.Inspector.BuildTcp(k.Server, k.ServerPort, k.Client, k.ClientPort, serverNext, c.ClientNext, PacketFields.Ack, c.Window)
            : null;
        for (var i = 0; i < _options.DuplicateAcks; i++)
        {
            if (toClient is not null) _platform.Sender.Send(toClient);
            _platform.Channel.Inject(toServer);
        }
        // SACK-enabled peers (all Linux ones) do not fast-retransmit on bare duplicate ACKs. What does work is RFC
        // 6069: each ICMP host unreachable about the oldest unacknowledged segment undoes one step of the sender's
        // RTO back-off, and when the reverted timeout has already passed, the kernel retransmits on the spot.
        var serverUnreachable = _platform.Inspector.BuildHostUnreachable(k.Client, k.Server,
            k.Server, k.ServerPort, k.Client, k.ClientPort, c.InjectedAck);
        for (var i = 0; i < _options.BackoffReverts; i++)
        {
            _platform.Sender.Send(clientUnreachable);
            _platform.Channel.Inject(serverUnreachable);
        }
    }

    private static string Describe(ConnectionKey k) => $"{k.Client}:{k.ClientPort} -> {k.Server}:{k.ServerPort}";

    private static TimeSpan Lap(Stopwatch watch)
    {
        var t = watch.Elapsed;
        watch.Restart();
        return t;
    }
}
