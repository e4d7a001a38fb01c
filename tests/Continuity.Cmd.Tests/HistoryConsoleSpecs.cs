using System.Text.Json;
using Xunit;

namespace Continuity.Cmd.Tests;

/// <summary>history, log stats and app checkpoint against a fake node answering in the node's shapes.</summary>
public sealed class HistoryConsoleSpecs : IAsyncLifetime
{
    private readonly FakeNode _node = new();
    private readonly ConsoleRun _run = new();

    private const string History = """
        {"node":"n1","limit":100,"total":3,"gaps":["n3 did not answer: its last takeover is missing"],"entries":[
          {"kind":"action","time":"2026-11-27T10:00:05.1234567Z","node":"n1","remote":"127.0.0.1:50412","token":"2bb80d53",
           "action":"app switch","target":"kv","detail":"to n3","outcome":"refused","status":409,
           "reason":"a planned switch of kv to n2 is in progress (requested 10:00:04 UTC): wait for it to finish"},
          {"kind":"action","time":"2026-11-27T10:00:04Z","node":"n1","remote":"127.0.0.1:50410","token":"2bb80d53",
           "action":"app switch","target":"kv","detail":"to n2","outcome":"accepted","status":202,"reason":null},
          {"kind":"switch","time":"2026-11-27T09:59:00Z","node":null,"app":"kv","from":"n2","to":"n1","reason":"primary removed",
           "epoch":3,"packetsReplayed":57,"phases":{"vipMs":3,"restoreMs":120,"replayMs":40,"openMs":2}}]}
        """;

    public Task InitializeAsync()
    {
        _node.Json("GET", "/v1/history", History).Json("GET", "/v1/mib", CannedMib.Json);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _run.Dispose();
    }

    private string[] Lines => _run.Out.Split('\n');

    [Fact]
    public async Task History_shows_who_asked_what_and_the_outcome_with_switches_among_them()
    {
        var code = await _run.Run(_node, "history");

        Assert.Equal(0, code);
        Assert.Equal("/v1/history", Assert.Single(_node.Requests).Path);
        Assert.Contains(Lines, l => l.StartsWith("TIME") && l.Contains("WHO") && l.Contains("WHAT") && l.Contains("OUTCOME"));
        Assert.Contains(Lines, l => l.StartsWith("2026-11-27 10:00:05Z") && l.Contains("127.0.0.1:50412 token 2bb80d53") &&
                                    l.Contains("app switch kv to n3") && l.Contains("refused 409: a planned switch of kv to n2 is in progress"));
        Assert.Contains(Lines, l => l.StartsWith("2026-11-27 10:00:04Z") && l.Contains("app switch kv to n2") && l.TrimEnd().EndsWith("accepted 202"));
        Assert.Contains(Lines, l => l.StartsWith("2026-11-27 09:59:00Z") && l.Contains("(cluster)") &&
                                    l.Contains("switch kv n2 -> n1 (primary removed), epoch 3, 57 packets replayed") && l.Contains("done in 165ms"));
        Assert.Contains("incomplete: n3 did not answer: its last takeover is missing", _run.Out);
        // Newest first, as the node sent them.
        Assert.True(_run.Out.IndexOf("10:00:05Z", StringComparison.Ordinal) < _run.Out.IndexOf("09:59:00Z", StringComparison.Ordinal));
    }

    [Fact]
    public async Task History_limit_is_passed_to_the_node_and_json_prints_its_answer()
    {
        var code = await _run.Run(_node, "history", "--limit", "2", "--json");

        Assert.Equal(0, code);
        Assert.Equal("/v1/history", Assert.Single(_node.Requests).Path);
        var root = JsonDocument.Parse(_run.Out).RootElement;
        Assert.Equal(3, root.GetProperty("entries").GetArrayLength());
        Assert.Equal("2bb80d53", root.GetProperty("entries")[0].GetProperty("token").GetString());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("ten")]
    [InlineData("10001")]
    public async Task A_bad_history_limit_is_bad_usage_and_asks_nothing(string limit)
    {
        var code = await _run.Run(_node, "history", "--limit", limit);

        Assert.Equal(2, code);
        Assert.Contains($"--limit must be a whole number from 1 to 10000, got '{limit}'", _run.Err);
        Assert.Contains("usage: continuity-cmd history [--limit N]", _run.Err);
        Assert.Empty(_node.Requests);
    }

    [Fact]
    public async Task Log_stats_shows_each_apps_log_per_node_and_each_nodes_journal()
    {
        var code = await _run.Run(_node, "log", "stats");

        Assert.Equal(0, code);
        Assert.Contains(Lines, l => l.StartsWith("APP") && l.Contains("LOG DEPTH") && l.Contains("CAPTURED") && l.Contains("RELEASED") &&
                                    l.Contains("CHECKPOINTS") && l.Contains("SIZE") && l.Contains("AGE"));
        var primary = Assert.Single(Lines, l => l.StartsWith("kv ") && l.Contains(" n1 "));
        Assert.Equal(["kv", "n1", "Primary", "57", "1057", "1050", "12", "e3-20261127095900000-12", "120.6", "KiB", "1.0s"],
            primary.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(Lines, l => l.StartsWith("kv ") && l.Contains(" n2 ") && l.Contains("Standby"));
        Assert.Contains(Lines, l => l.StartsWith("n1 ") && l.TrimEnd().EndsWith("5.0 MiB"));
        Assert.Contains(Lines, l => l.StartsWith("n3 ") && l.Contains("did not answer within 2 s"));
    }

    [Fact]
    public async Task Log_stats_json_holds_only_the_log_figures_in_the_mibs_names()
    {
        var code = await _run.Run(_node, "--json", "log", "stats");

        Assert.Equal(0, code);
        var n1 = JsonDocument.Parse(_run.Out).RootElement.GetProperty("nodes")[0];
        Assert.Equal(5 << 20, n1.GetProperty("journalBytes").GetInt64());
        var kv = n1.GetProperty("apps")[0];
        Assert.Equal((57, 1057, 1050, 12), (kv.GetProperty("logDepth").GetInt64(), kv.GetProperty("packetsCaptured").GetInt64(),
            kv.GetProperty("packetsReleased").GetInt64(), kv.GetProperty("checkpointCount").GetInt64()));
        Assert.Equal(123456, kv.GetProperty("lastCheckpoint").GetProperty("bytes").GetInt64());
        Assert.False(n1.TryGetProperty("cpuPercent", out _));
    }

    private void CheckpointNode(params string[] views)
    {
        var answers = new Queue<string>(views);
        _node.Json("POST", "/v1/apps/kv/checkpoint", """{"result":"checkpointed","id":"e3-20261127100000000-13","mark":1100,"bytes":2097152,"freezeMs":85}""", 202)
             .Handle("GET", "/v1/apps/kv", ctx => FakeNode.Reply(ctx, 200, answers.Count > 1 ? answers.Dequeue() : answers.Peek()));
    }

    private static string View(params (string Node, string? Checkpoint)[] standbys) =>
        JsonSerializer.Serialize(new
        {
            name = "kv", state = "protected", primary = "n1",
            standbys = standbys.Select(s => new { node = s.Node, ready = true, logDepth = 0, checkpointId = s.Checkpoint }),
        });

    private const string Old = "e3-20261127095900000-12";
    private const string New = "e3-20261127100000000-13";
    private const string Newer = "e3-20261127100002000-14";

    [Fact]
    public async Task App_checkpoint_follows_dumping_then_shipping_one_plain_line_per_change()
    {
        CheckpointNode(View(("n2", Old), ("n3", Old)), View(("n2", New), ("n3", Old)), View(("n2", New), ("n3", Newer)));

        var code = await _run.Run(_node, _run.Environment(poll: TimeSpan.FromMilliseconds(20)), "app", "checkpoint", "kv");

        Assert.Equal(0, code);
        Assert.Equal([
            "checkpoint kv: frozen, dumping ...",
            "checkpoint kv: dumped e3-20261127100000000-13, 2.0 MiB, the program was frozen 85ms",
            "checkpoint kv: shipping [--------------------] 0/2 standbys",
            "checkpoint kv: shipping [##########----------] 1/2 standbys (n2)",
            "checkpoint kv: shipping [####################] 2/2 standbys (n2, n3)",
            "checkpoint kv: e3-20261127100000000-13 is on every standby",
        ], Lines.Where(l => l.Length > 0).Select(l => l.Contains(" (") && l.Contains(" s)") ? l[..l.LastIndexOf(" (", StringComparison.Ordinal)] : l)
            .Select(l => l.Contains(", ") && l.EndsWith("after it was asked for") ? l[..l.IndexOf(", ", StringComparison.Ordinal)] : l));
        Assert.DoesNotContain("\r", _run.Out);
    }

    [Fact]
    public async Task App_checkpoint_on_a_terminal_redraws_its_progress_bar_in_place()
    {
        CheckpointNode(View(("n2", Old)), View(("n2", New)));

        var code = await _run.Run(_node, _run.Environment(terminal: true, poll: TimeSpan.FromMilliseconds(20)),
            "app", "checkpoint", "kv");

        Assert.Equal(0, code);
        Assert.Contains("\rcheckpoint kv: shipping [--------------------] 0/1 standbys", _run.Out);
        Assert.Contains("\rcheckpoint kv: shipping [####################] 1/1 standbys (n2)", _run.Out);
    }

    [Fact]
    public async Task App_checkpoint_gives_up_after_its_timeout_saying_where_shipping_stood()
    {
        CheckpointNode(View(("n2", New), ("n3", Old)));

        var code = await _run.Run(_node, "app", "checkpoint", "kv", "--timeout", "1");

        Assert.Equal(1, code);
        Assert.Contains("checkpoint e3-20261127100000000-13 of kv has not reached every standby after 1 s (last seen: checkpoint kv: shipping [##########----------] 1/2 standbys (n2))", _run.Err);
    }

    [Fact]
    public async Task App_checkpoint_of_an_unprotected_app_says_it_stays_on_the_primary()
    {
        CheckpointNode(View());

        var code = await _run.Run(_node, "app", "checkpoint", "kv");

        Assert.Equal(0, code);
        Assert.Contains("checkpoint kv: no standby to ship to (state protected): the checkpoint stays on the primary", _run.Out);
    }

    [Fact]
    public async Task App_checkpoint_refused_by_the_node_exits_1_with_its_reason()
    {
        _node.Json("POST", "/v1/apps/kv/checkpoint", """{"error":"a planned switch of kv to n2 is in progress (requested 10:00:04 UTC): wait for it to finish"}""", 409);

        var code = await _run.Run(_node, "app", "checkpoint", "kv");

        Assert.Equal(1, code);
        Assert.Contains("error: a planned switch of kv to n2 is in progress", _run.Err);
    }

    [Fact]
    public async Task Every_command_answers_in_json_help_included()
    {
        var code = await _run.Run(null, "help", "--json");

        Assert.Equal(0, code);
        var names = JsonDocument.Parse(_run.Out).RootElement.GetProperty("commands").EnumerateArray()
            .Select(c => c.GetProperty("name").GetString()).ToList();
        Assert.Equal(CommandTable.All.Where(s => !s.EndsSession).Select(s => s.Name), names);
        Assert.Contains("history", names);
        Assert.Contains("log stats", names);
    }
}
