using System.Net;
using Continuity.Core.Platform;
using Continuity.Linux.Namespaces;
using Continuity.Linux.Native;
using Continuity.Linux.Netfilter;
using Continuity.Linux.Network;
using Xunit;

namespace Continuity.Linux.Tests;

public sealed class FilterAndVipTests
{
    private static string[] Rules(Lab lab) =>
        NetNs.RunIn(lab.Server, () => Shell.Check("iptables", "-t", "raw", "-S", "CONTINUITY"))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.StartsWith("-A")).ToArray();

    [Fact]
    public void The_block_rule_precedes_the_queue_rules_whichever_is_added_first()
    {
        using var lab = new Lab(31);
        var filter = new IptablesFilter();
        var selector = new TrafficSelector(lab.Vip, [new PortSpec("tcp", 7000), new PortSpec("udp", 7001)]);
        NetNs.RunIn(lab.Server, () =>
        {
            filter.QueueInbound(selector, 3);
            filter.BlockInbound(lab.Vip);
        });
        var rules = Rules(lab);
        Assert.Equal(3, rules.Length);
        Assert.Contains("-j DROP", rules[0]);
        Assert.All(rules[1..], r => Assert.Contains("NFQUEUE --queue-num 3", r));
        Assert.All(rules, r => Assert.Contains("! -i ctrpl+", r));
        Assert.DoesNotContain(rules, r => r.Contains("bypass"));

        NetNs.RunIn(lab.Server, () =>
        {
            filter.UnblockInbound(lab.Vip);
            filter.StopQueueing(selector, 3);
            filter.BlockInbound(lab.Vip);
            filter.QueueInbound(selector, 3);
        });
        rules = Rules(lab);
        Assert.Contains("-j DROP", rules[0]);
        Assert.Equal(3, rules.Length);
    }

    [Fact]
    public void Adding_and_removing_rules_is_idempotent()
    {
        using var lab = new Lab(32);
        var filter = new IptablesFilter();
        var selector = new TrafficSelector(lab.Vip, [new PortSpec("tcp", 7000)]);
        NetNs.RunIn(lab.Server, () =>
        {
            filter.QueueInbound(selector, 3);
            filter.QueueInbound(selector, 3);
            filter.BlockInbound(lab.Vip);
            filter.BlockInbound(lab.Vip);
        });
        Assert.Equal(2, Rules(lab).Length);
        var prerouting = NetNs.RunIn(lab.Server, () => Shell.Check("iptables", "-t", "raw", "-S", "PREROUTING"));
        Assert.Single(prerouting.Split('\n'), l => l.Contains("-j CONTINUITY"));

        NetNs.RunIn(lab.Server, () =>
        {
            filter.StopQueueing(selector, 3);
            filter.StopQueueing(selector, 3);
            filter.UnblockInbound(lab.Vip);
            filter.UnblockInbound(lab.Vip);
        });
        Assert.Empty(Rules(lab));
    }

    [Fact]
    public void The_vip_goes_on_the_interface_whose_subnet_contains_it()
    {
        using var lab = new Lab(33);
        var vip = new VirtualIp();
        NetNs.RunIn(lab.Server, () =>
        {
            vip.Add(lab.Vip, 24);
            vip.Add(lab.Vip, 24); // idempotent
            var owner = VirtualIp.Addresses().Single(a => a.Address.Equals(lab.Vip));
            Assert.Equal(lab.ServerDev, owner.Interface);
            vip.Announce(lab.Vip);
            vip.Remove(lab.Vip, 24);
            vip.Remove(lab.Vip, 24);
            Assert.DoesNotContain(VirtualIp.Addresses(), a => a.Address.Equals(lab.Vip));
        });
    }

    [Fact]
    public void A_vip_outside_every_local_subnet_is_refused_naming_the_subnets()
    {
        using var lab = new Lab(34);
        var e = Assert.Throws<InvalidOperationException>(() =>
            NetNs.RunIn(lab.Server, () => new VirtualIp().Add(IPAddress.Parse("198.19.99.50"), 24)));
        Assert.Contains("198.19.99.50", e.Message);
        Assert.Contains($"{lab.ServerDev} 198.18.34.1/24", e.Message);
    }
}
