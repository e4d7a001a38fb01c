using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// Several applications on one cluster: three ct-kv servers, each with its own VIP, on three lab nodes. Placement
/// spreads their primaries, a crash moves one, and the revived node gets one back by a planned switch, while
/// clients of all three check every byte.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class PlacementEndToEndTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] Nodes = ["n1", "n2", "n3"];
    private static readonly (string Name, string Vip, int Port)[] Apps = [("a", "198.18.0.50", 7000), ("b", "198.18.0.51", 7010), ("c", "198.18.0.52", 7020)];

    private readonly LabDriver _lab = new();
    private LabApps? _appsDriver;
    private LabApps LabApps => _appsDriver ??= new LabApps(_lab, output);

    public void Dispose()
    {
        _lab.Dispose();
        _appsDriver?.Dispose();
    }

    private string WriteConfig()
    {
        var file = Path.Combine(_lab.StateDir, "apps.hocon");
        var blocks = Apps.Select(a => $$"""
              {{a.Name}} {
                command = ["{{LabApps.Root}}/build/testserver/ct-kv", "--tcp", "{{a.Port}}"]
                vip = "{{a.Vip}}/24"
                ports = ["tcp/{{a.Port}}"]
                checkpoint-interval = 2s
              }
            """);
        File.WriteAllText(file, $$"""
            continuity.placement.rebalance-interval = 5s
            continuity.apps {
            {{string.Join("\n", blocks)}}
            }
            """);
        return file;
    }

    /// <summary>Node name serving each application (in the order of <see cref="Apps"/>), once every one of them has a
    /// primary and <paramref name="standbys"/> ready standbys, and <paramref name="done"/> holds.</summary>
    private string[] WaitForPlacement(string[] ask, int standbys, Func<string[], bool> done, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        string[] last = [];
        while (clock.Elapsed < timeout)
        {
            var views = Apps.Select(a => ask.Select(n => LabApps.App(n, a.Name)).FirstOrDefault(v => v is not null)).ToList();
            last = views.Select(v => v?.TryGetProperty("primary", out var p) == true ? p.GetString() ?? "-" : "-").ToArray();
            var ready = views.All(v => v is { } view && view.GetProperty("standbys").EnumerateArray().Count(s => s.GetProperty("ready").GetBoolean()) >= standbys);
            if (ready && last.All(n => n != "-") && done(last)) return last;
            Thread.Sleep(500);
        }
        throw new Xunit.Sdk.XunitException($"{what} not reached within {timeout.TotalSeconds} s; primaries: {string.Join(" ", last)}\n" +
            string.Join("\n", Apps.Select(a => LabApps.Diagnostics(a.Name))));
    }

    [RootFact]
    public void Three_applications_spread_over_three_nodes_and_clients_keep_every_byte_through_a_crash_and_a_rebalance()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--witness", "--config", WriteConfig(), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);

        // 1. One primary per node (directly, or after rebalancing moves if the nodes came up one by one).
        var start = WaitForPlacement(Nodes, 2, p => p.Distinct().Count() == 3, TimeSpan.FromSeconds(120), "one application per node");
        output.WriteLine($"start: {string.Join(" ", start)}");

        var clients = Apps.Select(a => LabApps.StartClient(connections: 5, durationSeconds: 80, server: $"{a.Vip}:{a.Port}")).ToList();
        Thread.Sleep(TimeSpan.FromSeconds(6));

        // 2. The node of b crashes: b fails over to a survivor, which now serves two applications.
        var crashed = start[1];
        _lab.MustRun("crash", crashed);
        var survivors = Nodes.Where(n => n != crashed).ToArray();
        var afterCrash = WaitForPlacement(survivors, 1, p => !p.Contains(crashed), TimeSpan.FromSeconds(60), "b failed over");
        output.WriteLine($"after the crash of {crashed}: {string.Join(" ", afterCrash)}");

        // 3. The crashed node comes back: it serves none, a survivor serves two, so one application moves to it by a
        //    planned switch (no loss), and the spread is one per node again.
        _lab.MustRun("revive", crashed);
        var clock = Stopwatch.StartNew();
        var end = WaitForPlacement(Nodes, 2, p => p.Distinct().Count() == 3, TimeSpan.FromSeconds(120), "one application per node again");
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F0} s after the revive of {crashed}: {string.Join(" ", end)}");
        var moved = Apps.Select((a, i) => (a.Name, i)).Single(x => end[x.i] == crashed).Name;
        var view = LabApps.App(crashed, moved)!.Value;
        Assert.StartsWith("rebalance: ", view.GetProperty("lastSwitch").GetProperty("reason").GetString());

        for (var i = 0; i < Apps.Length; i++)
        {
            output.WriteLine($"client of {Apps[i].Name}:");
            var result = LabApps.Finish(clients[i], TimeSpan.FromSeconds(150));
            try { LabApps.AssertEveryByteExactlyOnce(result, connections: 5, udp: false); }
            catch (Exception e) when (e is Xunit.Sdk.XunitException)
            {
                throw new Xunit.Sdk.XunitException($"client of {Apps[i].Name}: {e.Message}\n{LabApps.Diagnostics(Apps[i].Name)}");
            }
        }
    }
}
