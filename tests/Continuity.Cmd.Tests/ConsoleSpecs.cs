using System.Text.Json;
using Xunit;

namespace Continuity.Cmd.Tests;

public sealed class ConsoleSpecs : IAsyncLifetime
{
    private readonly FakeNode _node = new();
    private readonly ConsoleRun _run = new();

    public Task InitializeAsync()
    {
        _node.Json("GET", "/v1/cluster", Canned.Cluster)
             .Json("GET", "/v1/apps", Canned.Apps)
             .Json("GET", "/v1/apps/kv", JsonDocument.Parse(Canned.Apps).RootElement.GetProperty("apps")[0].GetRawText())
             .Json("GET", "/v1/apps/nope", """{"error":"unknown app 'nope'"}""", 404)
             .Json("POST", "/v1/cluster/down", """{"result":"downing"}""", 202)
             .Json("POST", "/v1/cluster/leave", """{"result":"leaving"}""", 202)
             .Json("POST", "/v1/apps/kv/switch", """{"result":"switching","to":"n2"}""", 202);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        _run.Dispose();
    }

    [Fact]
    public async Task Cluster_show_prints_every_member_with_status_and_roles()
    {
        var code = await _run.Run(_node, "cluster", "show");

        Assert.Equal(0, code);
        var lines = _run.Out.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("NODE") && l.Contains("ADDRESS") && l.Contains("STATUS") && l.Contains("ROLES") && l.Contains("REACHABLE"));
        Assert.Contains(lines, l => l.Contains("n1") && l.Contains(Canned.N1) && l.Contains("Up") && l.Contains("data") && l.TrimEnd().EndsWith("yes"));
        Assert.Contains(lines, l => l.Contains("n2") && l.Contains(Canned.N2) && l.Contains("data,standby"));
        Assert.Contains(lines, l => l.Contains("n3") && l.Contains("Leaving") && l.TrimEnd().EndsWith("NO"));
        Assert.Contains($"leader: n1 ({Canned.N1})", _run.Out);
        Assert.Contains($"oldest: n2 ({Canned.N2})", _run.Out);
    }

    [Fact]
    public async Task Wrong_token_exits_with_code_4_and_names_the_token_file()
    {
        using var run = new ConsoleRun(token: "not-the-token");

        var code = await run.Run(_node, "cluster", "show");

        Assert.Equal(4, code);
        Assert.Contains($"the node refused the token from {run.TokenFile}: check --token-file", run.Err);
    }

    [Fact]
    public async Task Missing_token_file_exits_with_code_4_and_lists_the_files_tried()
    {
        var env = _run.Environment();

        var code = await CmdApp.RunAsync(["--node", _node.Endpoint, "cluster", "show"], env);

        Assert.Equal(4, code);
        Assert.Contains("no-such-etc-token", _run.Err);
        Assert.Contains("no-such-lab-token", _run.Err);
        Assert.Empty(_node.Requests);
    }

    [Fact]
    public async Task Token_file_is_taken_from_the_environment_when_no_flag_is_given()
    {
        _run.Env["CONTINUITY_TOKEN_FILE"] = _run.TokenFile;
        _run.Env["CONTINUITY_NODE"] = _node.Endpoint;

        var code = await CmdApp.RunAsync(["cluster", "show"], _run.Environment());

        Assert.Equal(0, code);
        Assert.Contains(Canned.N2, _run.Out);
    }

    [Fact]
    public async Task Unreachable_node_exits_with_code_3_and_says_how_to_fix()
    {
        var endpoint = $"127.0.0.1:{FakeNode.FreePort()}";

        var code = await CmdApp.RunAsync(["--node", endpoint, "--token-file", _run.TokenFile, "cluster", "show"], _run.Environment());

        Assert.Equal(3, code);
        Assert.Contains($"cannot reach node at {endpoint}: ", _run.Err);
        Assert.Contains("Is continuity-node running there? Check --node or CONTINUITY_NODE.", _run.Err);
    }

    [Theory]
    [InlineData(new[] { "clustr", "show" }, "cluster show")]
    [InlineData(new[] { "cluster", "shwo" }, "cluster show")]
    [InlineData(new[] { "app", "lst" }, "app list")]
    [InlineData(new[] { "cluster", "down-unreachabel" }, "cluster down-unreachable")]
    public async Task Unknown_command_suggests_the_closest(string[] typed, string expected)
    {
        var code = await _run.Run(_node, typed);

        Assert.Equal(2, code);
        Assert.Contains($"did you mean '{expected}'?", _run.Err);
        Assert.Contains("usage: continuity-cmd", _run.Err);
        Assert.Empty(_node.Requests);
    }

    [Fact]
    public async Task Json_flag_prints_the_nodes_json()
    {
        var code = await _run.Run(_node, "--json", "app", "list");

        Assert.Equal(0, code);
        using var printed = JsonDocument.Parse(_run.Out);
        using var served = JsonDocument.Parse(Canned.Apps);
        Assert.Equal(served.RootElement.GetRawText().Replace(" ", "").Replace("\n", "").Replace("\r", ""),
            printed.RootElement.GetRawText().Replace(" ", "").Replace("\n", "").Replace("\r", ""));
        Assert.Contains("\n  \"apps\"", _run.Out); // pretty, not the node's one-liner
    }

    [Fact]
    public async Task Cluster_tail_prints_events_as_they_arrive()
    {
        var secondEventMayGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _node.Handle("GET", "/v1/cluster/events", async ctx =>
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.SendChunked = true;
            var w = new StreamWriter(ctx.Response.OutputStream) { AutoFlush = true };
            await w.WriteAsync($$"""{"time":"2026-11-27T10:00:00Z","event":"CurrentMember","member":"{{Canned.N1}}","node":"n1","status":"Up"}""" + "\n");
            // The second event is held back until the first is on screen: proves streaming, not buffering.
            await secondEventMayGo.Task.WaitAsync(TimeSpan.FromSeconds(20));
            await w.WriteAsync($$"""{"time":"2026-11-27T10:00:05Z","event":"UnreachableMember","member":"{{Canned.N2}}","node":"n2","status":"Up"}""" + "\n");
            await Task.Delay(Timeout.Infinite, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { });
        });
        var env = _run.Environment();

        var tail = _run.Run(_node, env, "cluster", "tail");
        await Eventually(() => _run.Out.Contains("CurrentMember"));
        Assert.DoesNotContain("UnreachableMember", _run.Out);
        secondEventMayGo.SetResult();
        await Eventually(() => _run.Out.Contains("UnreachableMember"));
        Assert.True(env.Interrupts.TryInterrupt(), "tail should be interruptible by Ctrl-C");
        var code = await tail.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, code);
        Assert.Contains(_run.Out.Split('\n'), l => l.Contains("UnreachableMember") && l.Contains("n2") && l.Contains(Canned.N2));
    }

    [Fact]
    public async Task Node_name_is_resolved_to_its_address_for_down()
    {
        var code = await _run.Run(_node, "cluster", "down", "n3");

        Assert.Equal(0, code);
        var post = Assert.Single(_node.Requests, r => r.Method == "POST");
        Assert.Equal("/v1/cluster/down", post.Path);
        Assert.Equal(Canned.N3, JsonDocument.Parse(post.Body).RootElement.GetProperty("address").GetString());
        Assert.Contains($"downing: {Canned.N3}", _run.Out);
    }

    [Fact]
    public async Task Unknown_node_name_fails_without_downing_anything()
    {
        var code = await _run.Run(_node, "cluster", "down", "n9");

        Assert.Equal(1, code);
        Assert.Contains("no cluster member named 'n9' (known: n1, n2, n3)", _run.Err);
        Assert.DoesNotContain(_node.Requests, r => r.Method == "POST");
    }

    [Fact]
    public async Task Node_error_exits_with_code_1_and_shows_its_message()
    {
        var code = await _run.Run(_node, "app", "status", "nope");

        Assert.Equal(1, code);
        Assert.Contains("error: unknown app 'nope'", _run.Err);
    }

    [Fact]
    public async Task App_list_marks_ready_standbys()
    {
        var code = await _run.Run(_node, "app", "list");

        Assert.Equal(0, code);
        var header = _run.Out.Split('\n')[0];
        Assert.Equal("APP  PRIMARY  STANDBYS  STATE      CHECKPOINT AGE  LOG DEPTH", header);
        Assert.Contains(_run.Out.Split('\n'), l => l.StartsWith("kv") && l.Contains("n2*,n3 ") && l.Contains("protected") && l.Contains("1.2s") && l.TrimEnd().EndsWith("57"));
    }

    [Fact]
    public async Task App_status_shows_the_last_switch_phases()
    {
        var code = await _run.Run(_node, "app", "status", "kv");

        Assert.Equal(0, code);
        Assert.Contains("last switch:     n1 -> n2 at 2026-11-27T09:59:00Z (crash)", _run.Out);
        Assert.Contains("phases:        vip 3ms, restore 120ms, replay 40ms, open 2ms (total 165ms)", _run.Out);
        Assert.Contains("replayed:      57 packets", _run.Out);
        Assert.Contains("n3 NOT READY, no checkpoint", _run.Out);
        Assert.Contains("n2 ready, checkpoint e3-20261127095900000-12 1.2s old, log depth 57", _run.Out);
        Assert.Contains("last checkpoint: e3-20261127095900000-12, 1.2s ago", _run.Out);
    }

    [Fact]
    public async Task App_switch_sends_the_target_node()
    {
        var code = await _run.Run(_node, "app", "switch", "kv", "--to", "n2", "--no-wait");

        Assert.Equal(0, code);
        var post = Assert.Single(_node.Requests);
        Assert.Equal("n2", JsonDocument.Parse(post.Body).RootElement.GetProperty("to").GetString());
        Assert.Contains("switching: kv -> n2", _run.Out);
        Assert.Contains("follow with 'app status kv'", _run.Out);
    }

    [Fact]
    public async Task App_switch_follows_the_switch_until_the_target_serves_and_shows_its_phases()
    {
        // The node as a switch goes: the old primary releasing, then the target serving the new epoch.
        var answers = new Queue<string>([
            """{"name":"kv","epoch":3,"primary":"n1","state":"switching","standbys":[],"logDepth":0}""",
            """{"name":"kv","epoch":3,"primary":"n1","state":"switching","standbys":[],"logDepth":0}""",
            """{"name":"kv","epoch":4,"primary":"n2","state":"unprotected","standbys":[],"logDepth":0,"lastSwitch":{"from":"n1","to":"n2","at":"2026-11-30T01:00:00Z","reason":"planned switch","epoch":4,"packetsReplayed":0,"phases":{"vipMs":30,"restoreMs":150,"replayMs":0,"openMs":500}}}""",
        ]);
        _node.Json("POST", "/v1/apps/kv/switch", """{"result":"switching","from":"n1","to":"n2","epoch":4}""", 202)
             .Handle("GET", "/v1/apps/kv", ctx => FakeNode.Reply(ctx, 200, answers.Count > 1 ? answers.Dequeue() : answers.Peek()));

        var code = await _run.Run(_node, "app", "switch", "kv", "--to", "n2");

        Assert.Equal(0, code);
        Assert.Contains("state switching, primary n1", _run.Out);
        Assert.Contains("state unprotected, primary n2", _run.Out);
        Assert.Contains("switched kv to n2 in ", _run.Out);
        Assert.Contains("vip 30ms, restore 150ms, replay 0ms, open 500ms (total 680ms)", _run.Out);
    }

    [Fact]
    public async Task App_switch_gives_up_after_its_timeout_and_says_where_it_stood()
    {
        var code = await _run.Run(_node, "app", "switch", "kv", "--to", "n2", "--timeout", "1");

        Assert.Equal(1, code);
        Assert.Contains("kv has not finished switching to n2 after 1 s (last seen: state protected, primary n1)", _run.Err);
    }

    [Fact]
    public async Task App_switch_without_a_target_is_bad_usage()
    {
        var code = await _run.Run(_node, "app", "switch", "kv");

        Assert.Equal(2, code);
        Assert.Contains("usage: continuity-cmd app switch NAME --to NODE", _run.Err);
        Assert.Empty(_node.Requests);
    }

    [Fact]
    public async Task Help_lists_every_command_in_the_table()
    {
        var code = await _run.Run(null, "help");

        Assert.Equal(0, code);
        foreach (var spec in CommandTable.All)
            Assert.Contains(spec.Usage, _run.Out);
    }

    [Fact]
    public async Task Piped_commands_run_in_interactive_mode()
    {
        var script = "cluster show\n# comments and blank lines are skipped\n\napp list\nexit\ncluster down n2\n";

        var code = await _run.Run(_node, _run.Environment(stdin: script));

        Assert.Equal(0, code);
        Assert.Contains(Canned.N3, _run.Out);
        Assert.Contains("CHECKPOINT AGE", _run.Out);
        Assert.DoesNotContain($"continuity@{_node.Endpoint}>", _run.Out); // no prompt noise in script output
        Assert.DoesNotContain(_node.Requests, r => r.Method == "POST"); // nothing after exit runs
    }

    [Fact]
    public async Task Piped_session_exits_with_the_first_failing_commands_code()
    {
        var code = await _run.Run(_node, _run.Environment(stdin: "app status nope\nclustr show\ncluster show\n"));

        Assert.Equal(1, code);
        Assert.Contains("did you mean 'cluster show'?", _run.Err);
        Assert.Contains("NODE", _run.Out);
    }

    [Fact]
    public async Task Interactive_session_shows_the_prompt_and_writes_the_history_file()
    {
        File.WriteAllLines(_run.HistoryFile, ["app list"]);
        var keys = new ScriptedKeys()
            .Line("cluster shw")
            // Up recalls "cluster shw"; fix the typo by editing in the middle of the line.
            .Press(ConsoleKey.UpArrow).Press(ConsoleKey.LeftArrow)
            .Type("o").Press(ConsoleKey.Enter)
            // Up twice reaches the previous session's entry.
            .Press(ConsoleKey.UpArrow).Press(ConsoleKey.UpArrow).Press(ConsoleKey.UpArrow).Press(ConsoleKey.Enter)
            .Type("helpx").Press(ConsoleKey.Backspace).Press(ConsoleKey.Enter)
            .Line("quit");

        var code = await _run.Run(_node, _run.Environment(keys: keys));

        Assert.Equal(0, code);
        Assert.Contains($"continuity@{_node.Endpoint}> ", _run.Out);
        Assert.Contains("did you mean 'cluster show'?", _run.Err);
        Assert.Contains(Canned.N3, _run.Out);
        Assert.Contains("CHECKPOINT AGE", _run.Out);
        Assert.Contains("commands:", _run.Out);
        Assert.Equal(["app list", "cluster shw", "cluster show", "app list", "help", "quit"], File.ReadAllLines(_run.HistoryFile));
    }

    [Fact]
    public async Task Down_unreachable_lists_the_members_being_downed()
    {
        _node.Json("POST", "/v1/cluster/down-unreachable", $$"""{"downed":["{{Canned.N3}}"]}""", 202);

        var code = await _run.Run(_node, "cluster", "down-unreachable");

        Assert.Equal(0, code);
        Assert.Contains("downing 1 member(s):", _run.Out);
        Assert.Contains(Canned.N3, _run.Out);
        Assert.Equal("/v1/cluster/down-unreachable", Assert.Single(_node.Requests).Path);
    }

    [Fact]
    public async Task App_pause_and_resume_say_what_recovery_does_now()
    {
        _node.Json("POST", "/v1/apps/kv/pause", """{"result":"recovery paused","changed":true}""")
             .Json("POST", "/v1/apps/kv/resume", """{"result":"recovery resumed","changed":false}""");

        Assert.Equal(0, await _run.Run(_node, "app", "pause", "kv"));
        Assert.Contains("kv: automatic recovery paused. A lost primary is not replaced", _run.Out);
        Assert.Equal(0, await _run.Run(_node, "app", "resume", "kv"));
        Assert.Contains("kv: automatic recovery was not paused", _run.Out);
        Assert.Equal(["/v1/apps/kv/pause", "/v1/apps/kv/resume"], _node.Requests.Select(r => r.Path));
    }

    [Fact]
    public async Task Leave_with_an_address_is_sent_without_a_lookup()
    {
        var code = await _run.Run(_node, "cluster", "leave", Canned.N2);

        Assert.Equal(0, code);
        var post = Assert.Single(_node.Requests);
        Assert.Equal("/v1/cluster/leave", post.Path);
        Assert.Contains($"leaving: {Canned.N2}", _run.Out);
    }

    [Fact]
    public void Interactive_lines_are_split_on_whitespace_honouring_quotes()
    {
        Assert.Equal(["app", "switch", "my app", "--to", "n2"], LineTokenizer.Split("  app switch 'my app'  --to \"n2\" "));
    }

    private static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met within 15s");
            await Task.Delay(20);
        }
    }
}
