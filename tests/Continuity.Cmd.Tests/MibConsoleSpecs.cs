using System.Text.Json;
using Xunit;

namespace Continuity.Cmd.Tests;

public sealed class MibConsoleSpecs : IAsyncLifetime
{
    private readonly FakeNode _node = new();
    private readonly ConsoleRun _run = new();

    public Task InitializeAsync()
    {
        _node.Json("GET", "/v1/mib", CannedMib.Json);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _run.Dispose();
    }

    private string[] Lines => _run.Out.Split('\n');

    [Fact]
    public async Task Mib_show_prints_every_node_with_its_figures_and_marks_the_one_that_did_not_answer()
    {
        var code = await _run.Run(_node, "mib", "show");

        Assert.Equal(0, code);
        Assert.Contains(Lines, l => l.StartsWith("NODE") && l.Contains("CPU") && l.Contains("MEMORY") && l.Contains("QUEUE BACKLOG"));
        Assert.Contains(Lines, l => l.StartsWith("n1 ") && l.Contains("yes") && l.Contains("12.5%") && l.Contains("3.0 GiB / 8.0 GiB")
                                    && l.Contains("5.0 MiB"));
        Assert.Contains(Lines, l => l.StartsWith("n2 ") && l.Contains("3.3%") || l.StartsWith("n2 ") && l.Contains("3.2%"));
        Assert.Contains(Lines, l => l.StartsWith("n3 ") && l.Contains("NO"));
        Assert.Contains("n3: did not answer within 2 s", _run.Out);
    }

    [Fact]
    public async Task Mib_show_lists_each_apps_counters_per_node()
    {
        await _run.Run(_node, "mib", "show");

        Assert.Contains(Lines, l => l.StartsWith("APP") && l.Contains("ROLE") && l.Contains("LOG DEPTH") && l.Contains("FREEZE") && l.Contains("TAKEOVERS"));
        Assert.Contains(Lines, l => l.StartsWith("kv ") && l.Contains(" n1 ") && l.Contains("Primary") && l.Contains("1057") && l.Contains("120.6 KiB") && l.Contains("80ms") && l.Contains("35ms"));
        Assert.Contains(Lines, l => l.StartsWith("kv ") && l.Contains(" n2 ") && l.Contains("Standby"));
    }

    [Fact]
    public async Task Mib_show_prints_how_far_each_standby_lags_behind_the_primary()
    {
        await _run.Run(_node, "mib", "show");

        Assert.Contains(Lines, l => l.StartsWith("kv: standby lag n2 7 packets, oldest waiting ") && l.Contains("1.5"));
    }

    [Fact]
    public async Task Mib_show_names_a_standby_that_refuses_checkpoints_with_its_reason()
    {
        await _run.Run(_node, "mib", "show");

        Assert.Contains(Lines, l => l.StartsWith("kv: standby n2 refused 3 checkpoint(s) in a row since 2026-11-27T09:59:30")
                                    && l.EndsWith("No space left on device"));
    }

    [Fact]
    public async Task Mib_show_json_prints_the_nodes_json()
    {
        var code = await _run.Run(_node, "mib", "show", "--json");

        Assert.Equal(0, code);
        var root = JsonDocument.Parse(_run.Out).RootElement;
        Assert.Equal(["n1", "n2", "n3"], root.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("node").GetString()));
        Assert.Equal(57, root.GetProperty("nodes")[0].GetProperty("apps")[0].GetProperty("logDepth").GetInt64());
    }

    [Fact]
    public async Task Node_show_describes_the_node_answering_with_its_queues_apps_and_last_takeover()
    {
        var code = await _run.Run(_node, "node", "show");

        Assert.Equal(0, code);
        Assert.Contains("node:        n1", _run.Out);
        Assert.Contains("cpu:         12.5%", _run.Out);
        Assert.Contains("memory:      3.0 GiB / 8.0 GiB used", _run.Out);
        Assert.Contains("disk:        40.0 GiB / 100.0 GiB free", _run.Out);
        Assert.Contains(Lines, l => l.StartsWith("QUEUE") && l.Contains("BACKLOG"));
        Assert.Contains(Lines, l => l.StartsWith("0 ") && l.Contains(" 7 ") && l.Contains(" 3 ") && l.TrimEnd().EndsWith("4"));
        Assert.Contains("kv: last takeover n2 -> n1", _run.Out);
        Assert.Contains("57 packets replayed; vip 3ms, restore 120ms, replay 40ms, open 2ms", _run.Out);
    }

    [Fact]
    public async Task Node_show_of_a_node_that_did_not_answer_says_so()
    {
        var code = await _run.Run(_node, "node", "show", "n3");

        Assert.Equal(0, code);
        Assert.Contains("reachable:   NO (did not answer within 2 s", _run.Out);
    }

    [Fact]
    public async Task Node_show_of_an_unknown_node_fails_naming_the_known_ones()
    {
        var code = await _run.Run(_node, "node", "show", "n9");

        Assert.Equal(1, code);
        Assert.Contains("no node named 'n9' in the MIB (known: n1, n2, n3)", _run.Err);
    }

    [Fact]
    public async Task Node_show_json_prints_only_that_nodes_object()
    {
        await _run.Run(_node, "node", "show", "n2", "--json");

        var node = JsonDocument.Parse(_run.Out).RootElement;
        Assert.Equal("n2", node.GetProperty("node").GetString());
        Assert.Equal("Standby", node.GetProperty("apps")[0].GetProperty("role").GetString());
    }
}
