using Continuity.Core.Apps;
using Continuity.Core.Switch;
using Continuity.Linux.Criu;
using Continuity.Linux.Injection;
using Continuity.Linux.Netfilter;
using Continuity.Linux.Network;
using Continuity.Linux.Processes;

namespace Continuity.Linux;

/// <summary>
/// The real platform: every adapter acts in the network and mount namespace the node process runs
/// in, which is where its protected programs run.
/// </summary>
public static class LinuxPlatform
{
    /// <param name="fencing">Each primary's VIP is live only while the node's lease runs (continuity.fencing).</param>
    public static PlatformServices Create(Action<string> log, Action<int, string>? programOutput = null, bool fencing = true)
    {
        var filter = new IptablesFilter();
        var vip = new VirtualIp();
        var launcher = new NamespacedLauncher();
        // A restored program's output arrives through criu: the launcher keeps its last lines too, to tell why it ended.
        var criu = new CriuCheckpointer(new CriuOptions(), (pid, line) =>
        {
            launcher.NoteOutput(pid, line);
            programOutput?.Invoke(pid, line);
        });
        return new PlatformServices(
            PacketQueue: app => new NfQueue(app.QueueNumber),
            Checkpointer: _ => criu,
            Filter: filter,
            VirtualIp: vip,
            Launcher: launcher,
            Takeover: new SwitchoverTakeover(
                // One channel per application: two takeovers on this node at once must not share a veth pair.
                app => new SwitchPlatform(filter, vip, criu, new VethInjectionChannel(app.Vip, app.QueueNumber),
                    new PacketInspector(), new RawPacketSender(), new Supervision.ProcSocketTable()),
                log: log,
                clearLeftovers: app => VethInjectionChannel.RemoveLeftovers(app.Vip, app.QueueNumber)))
        {
            OpenConnections = app => Supervision.TcpConnections.Count(app.Vip,
                app.Ports.Where(p => p.Protocol == "tcp").Select(p => p.Port).ToList()),
            UnreadDatagrams = app => Supervision.UdpReceiveQueues.Unread(app.Vip,
                app.Ports.Where(p => p.Protocol == "udp").Select(p => p.Port).ToList()),
            Fence = fencing ? new NftVipFence() : Core.Platform.NoVipFence.Instance,
        };
    }
}
