using System.Text.Json;
using Xunit;

namespace Continuity.Lab.Tests;

/// <summary>One network-only lab (up --nodes 3 --no-nodes) shared by the tests of this class.</summary>
public sealed class NetworkLabFixture : IDisposable
{
    public LabDriver Lab { get; } = new();

    public NetworkLabFixture()
    {
        if (!RootCheck.IsRoot) return;
        Lab.MustRun("up", "--nodes", "3", "--no-nodes");
    }

    public void Dispose() => Lab.Dispose();
}

internal static class RootCheck
{
    public static bool IsRoot => new RootFactAttribute().Skip is null;
}

[Collection(LabCollection.Name)]
public sealed class LabNetworkTests(NetworkLabFixture fixture) : IClassFixture<NetworkLabFixture>
{
    private readonly LabDriver _lab = fixture.Lab;

    private static void Reachable(string from, string address) =>
        Assert.True(NetnsProbe.Ping(from, address, out var d), d);

    private static void Unreachable(string from, string address) =>
        Assert.False(NetnsProbe.Ping(from, address, out var d), d);

    [RootFact]
    public void Up_gives_every_node_an_address_that_answers_ping_from_the_client()
    {
        foreach (var address in new[] { "198.18.0.11", "198.18.0.12", "198.18.0.13" })
            Reachable("ct-client", address);
        Reachable("ct-n1", "198.18.0.13");
        Reachable("ct-n3", "198.18.0.100");
    }

    [RootFact]
    public void Up_sets_the_namespace_sysctls_the_data_plane_needs()
    {
        Assert.Equal(0, _lab.Run("exec", "n2", "--", "sh", "-ec",
            "test $(cat /proc/sys/net/ipv4/conf/all/rp_filter) = 0; test $(cat /proc/sys/net/ipv4/conf/eth0/rp_filter) = 0; " +
            "test $(cat /proc/sys/net/ipv4/conf/all/accept_local) = 1; ip -o link show lo | grep -q UP"));
    }

    [RootFact]
    public void The_host_reaches_the_nodes_over_the_bridge()
    {
        Assert.Contains("inet 198.18.0.1/24", Os.RunChecked("ip", "-o", "addr", "show", "dev", "ctbr0"));
        // An answer from the host to a node proves the path in both directions.
        Reachable("ct-n1", "198.18.0.1");
    }

    [RootFact]
    public void Partition_isolates_the_named_node_from_the_rest()
    {
        _lab.MustRun("partition", "n1");
        try
        {
            Unreachable("ct-n2", "198.18.0.11");
            Unreachable("ct-n1", "198.18.0.13");
            Reachable("ct-n2", "198.18.0.13");
            Reachable("ct-n3", "198.18.0.12");
            // The host and the client still see both sides, so tests can watch the split.
            Reachable("ct-client", "198.18.0.11");
            Reachable("ct-client", "198.18.0.12");

            _lab.MustRun("status", "--json");
            using var doc = JsonDocument.Parse(_lab.LastOutput);
            var n1 = doc.RootElement.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == "n1");
            Assert.True(n1.GetProperty("partitioned").GetBoolean());
        }
        finally
        {
            _lab.MustRun("heal");
        }
    }

    [RootFact]
    public void Heal_restores_traffic_between_the_sides_of_a_partition()
    {
        _lab.MustRun("partition", "n1", "n2");
        try
        {
            Unreachable("ct-n3", "198.18.0.11");
            Reachable("ct-n1", "198.18.0.12");
        }
        finally
        {
            _lab.MustRun("heal");
        }
        Reachable("ct-n3", "198.18.0.11");
        Reachable("ct-n2", "198.18.0.13");
        // grep found nothing: exit code 1 from the command itself, passed through by exec.
        Assert.Equal(1, _lab.Run("exec", "n3", "--", "sh", "-c", "iptables -S | grep -q CT-PARTITION"));
    }

    [RootFact]
    public void Crash_takes_the_node_off_the_network_and_revive_brings_it_back()
    {
        _lab.MustRun("crash", "n2");
        try
        {
            Assert.Contains("Crashed n2", _lab.LastOutput);
            Unreachable("ct-client", "198.18.0.12");
            Unreachable("ct-n1", "198.18.0.12");
            Reachable("ct-client", "198.18.0.13");

            _lab.MustRun("status");
            Assert.Matches(@"n2\s+ct-n2\s+198\.18\.0\.12\s+data\s+-\s+crashed", _lab.LastOutput);
        }
        finally
        {
            _lab.MustRun("revive", "n2");
        }
        Reachable("ct-client", "198.18.0.12");
        _lab.MustRun("status");
        Assert.DoesNotContain("crashed", _lab.LastOutput);
    }

    [RootFact]
    public void Crash_kills_every_process_running_in_the_node_namespace()
    {
        var pid = StartSleeperIn("ct-n3");
        try
        {
            _lab.MustRun("crash", "n3");
            Assert.False(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "),
                $"pid {pid} survived the crash");
        }
        finally
        {
            _lab.MustRun("revive", "n3");
        }
    }

    [RootFact]
    public void Exec_runs_the_command_in_the_host_namespace_and_returns_its_exit_code()
    {
        Assert.Equal(0, _lab.Run("exec", "n2", "--", "sh", "-c", "ip -o addr show dev eth0 | grep -q ' 198.18.0.12/24 '"));
        Assert.Equal(0, _lab.Run("exec", "client", "--", "sh", "-c", "ip -o addr show dev eth0 | grep -q ' 198.18.0.100/24 '"));
        Assert.Equal(7, _lab.Run("exec", "client", "--", "sh", "-c", "exit 7"));
        Assert.Equal(1, _lab.Run("exec", "n9", "--", "true"));
        Assert.Contains("no lab host 'n9'", _lab.LastError);
    }

    [RootFact]
    public void Status_lists_every_host_with_namespace_address_and_state()
    {
        _lab.MustRun("status", "--json");
        using var doc = JsonDocument.Parse(_lab.LastOutput);
        var hosts = doc.RootElement.GetProperty("hosts").EnumerateArray()
            .Select(h => (h.GetProperty("name").GetString(), h.GetProperty("namespace").GetString(), h.GetProperty("address").GetString()))
            .ToList();
        Assert.Equal(
        [
            ("n1", "ct-n1", "198.18.0.11"), ("n2", "ct-n2", "198.18.0.12"),
            ("n3", "ct-n3", "198.18.0.13"), ("client", "ct-client", "198.18.0.100"),
        ], hosts);
    }

    [RootFact]
    public void Commands_on_unknown_nodes_fail_with_the_list_of_hosts()
    {
        Assert.Equal(1, _lab.Run("crash", "n7"));
        Assert.Contains("the lab has no host 'n7'; its hosts are: n1, n2, n3, client", _lab.LastError);
    }

    private static int StartSleeperIn(string ns)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("nsenter", [$"--net=/run/netns/{ns}", "--", "sleep", "600"]);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!Os.Run("ip", "netns", "pids", ns).Stdout.Contains(p.Id.ToString()) && DateTime.UtcNow < deadline)
            Thread.Sleep(20);
        return p.Id;
    }
}
