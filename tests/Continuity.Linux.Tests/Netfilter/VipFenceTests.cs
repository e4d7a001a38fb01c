using System.Net;
using System.Net.Sockets;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Native;
using Continuity.Linux.Netfilter;
using Continuity.Linux.Network;
using Xunit;

namespace Continuity.Linux.Tests.Netfilter;

/// <summary>The kernel's lease on a VIP (nftables), seen from a client on the same link.</summary>
public sealed class VipFenceTests
{
    private const ushort App = 7;

    private static bool AnswersArp(Lab lab) =>
        Shell.Run("ip", "netns", "exec", lab.Client, "arping", "-c", "1", "-w", "1", lab.Vip.ToString()).Ok;

    /// <summary>Whether a datagram from the client reaches a server bound to the VIP and its answer comes back.</summary>
    private static bool EchoesUdp(Lab lab, Socket server, Socket client)
    {
        client.SendTo([1, 2, 3], new IPEndPoint(lab.Vip, 7300));
        var buffer = new byte[16];
        if (!server.Poll(500_000, SelectMode.SelectRead)) return false;
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        server.ReceiveFrom(buffer, ref from);
        server.SendTo([4], from);
        return client.Poll(500_000, SelectMode.SelectRead) && client.Receive(buffer) == 1;
    }

    [Fact]
    public void The_vip_answers_arp_and_packets_only_while_its_lease_runs_and_the_kernel_ends_the_lease_by_itself()
    {
        using var lab = new Lab(47);
        var fence = new NftVipFence();
        NetNs.RunIn(lab.Server, () =>
        {
            fence.Arm(lab.Vip, App);
            new VirtualIp().Add(lab.Vip, 24);
        });
        using var server = lab.UdpServer(7300);
        using var client = lab.UdpClient();
        // The client knows the VIP's MAC already (its cache outlives a lease): only the IP rules stand in the way.
        var mac = Shell.Run("ip", "-n", lab.Server, "-br", "link", "show", lab.ServerDev).StdOut.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2];
        Lab.Sh("ip", "-n", lab.Client, "neigh", "replace", lab.Vip.ToString(), "lladdr", mac, "dev", lab.ServerDev.Replace("cttq", "cttc"));

        // Armed, no lease yet: a VIP that is up but quiet.
        Assert.False(AnswersArp(lab));
        Assert.False(EchoesUdp(lab, server, client));

        NetNs.RunIn(lab.Server, () => fence.Renew(lab.Vip, App, TimeSpan.FromSeconds(3)));
        Assert.True(AnswersArp(lab));
        Assert.True(EchoesUdp(lab, server, client));
        Assert.InRange(NetNs.RunIn(lab.Server, () => NftVipFence.Remaining(App))!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3));

        // Nobody renews (the node process froze or died): the kernel ends the lease on its own.
        Thread.Sleep(3500);
        Assert.False(AnswersArp(lab));
        Assert.False(EchoesUdp(lab, server, client));

        // Disarmed (the node gave the VIP up properly, or cleared what a dead run left): no rule stands in the way.
        NetNs.RunIn(lab.Server, () => fence.Disarm(lab.Vip, App));
        Assert.Null(NetNs.RunIn(lab.Server, () => NftVipFence.Remaining(App)));
        Assert.True(AnswersArp(lab));
        Assert.True(EchoesUdp(lab, server, client));
    }

    [Fact]
    public void Arming_twice_and_disarming_what_is_absent_are_harmless()
    {
        using var lab = new Lab(48);
        var fence = new NftVipFence();
        NetNs.RunIn(lab.Server, () =>
        {
            fence.Disarm(lab.Vip, App);
            fence.Arm(lab.Vip, App);
            fence.Arm(lab.Vip, App);
        });
        var rules = Shell.Run("ip", "netns", "exec", lab.Server, "nft", "list", "table", "ip", $"continuity_fence_{App}").StdOut;
        Assert.Single(rules.Split('\n'), l => l.Contains("ip daddr != @lease drop"));
        NetNs.RunIn(lab.Server, () => fence.Disarm(lab.Vip, App));
        Assert.False(Shell.Run("ip", "netns", "exec", lab.Server, "nft", "list", "table", "ip", $"continuity_fence_{App}").Ok);
    }
}
