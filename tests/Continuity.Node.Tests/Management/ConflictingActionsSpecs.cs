using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Akka.Actor;
using Continuity.Core.Apps;
using Continuity.Core.Checkpoint;
using Continuity.Node.Management;
using Xunit;

namespace Continuity.Node.Tests.Management;

/// <summary>
/// Two people (or a person and a script) ask for conflicting actions on one application at the same moment. The node's
/// real management server (its Kestrel, its audit trail, its actor system) answers; the applications guardian behind it
/// is scripted, because a primary with standbys needs CRIU, a VIP and firewall rules, which these in-process tests never
/// install. The script answers like the owner does, after a delay as long as a real release or dump.
/// </summary>
public sealed class ConflictingActionsSpecs : IAsyncLifetime
{
    private static readonly TimeSpan ActionTakes = TimeSpan.FromSeconds(1.5);

    private TestNode _node = null!;
    private ManagementServer _server = null!;
    private HttpClient _http = null!;
    private IActorRef _guardian = null!;
    private ScriptedGuardian.Counts _counts = null!;
    private string _stateDir = "";

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync("n1", role: "witness");
        await _node.WaitForUp(1);
        _stateDir = Path.Combine(_node.Dir, "scripted-state");
        var port = TestNode.FreePort();
        var s = _node.Host.Settings;
        var settings = s with { Node = s.Node with { StateDir = _stateDir, Management = s.Node.Management with { BindPort = port } } };
        _counts = new ScriptedGuardian.Counts();
        _guardian = _node.Host.System.ActorOf(Props.Create(() => new ScriptedGuardian(_counts, ActionTakes)));
        _server = new ManagementServer(_node.Host.System, settings, _node.Token, _guardian);
        await _server.StartAsync(CancellationToken.None);
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _node.Token);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await _node.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, string? Error)> Post(string path, string? body = null)
    {
        using var response = await _http.PostAsync(path, new StringContent(body ?? "{}", Encoding.UTF8, "application/json"));
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return (response.StatusCode, json.TryGetProperty("error", out var e) ? e.GetString() : null);
    }

    private static string Switch(string to) => $"{{\"to\":\"{to}\"}}";

    private List<AuditEntry> Audited() => _server.AuditLog.ReadNewestFirst().Reverse().ToList();

    [Fact]
    public async Task Two_switches_of_one_app_at_once_one_wins_and_the_other_gets_409_with_the_reason_both_audited()
    {
        var toN2 = Post("/v1/apps/kv/switch", Switch("n2"));
        var toN3 = Post("/v1/apps/kv/switch", Switch("n3"));
        var answers = await Task.WhenAll(toN2, toN3);

        Assert.Single(answers, a => a.Status == HttpStatusCode.Accepted);
        var refused = Assert.Single(answers, a => a.Status == HttpStatusCode.Conflict);
        var winner = answers[0].Status == HttpStatusCode.Accepted ? "n2" : "n3";
        var loser = winner == "n2" ? "n3" : "n2";
        Assert.Equal($"a planned switch of kv to {winner} is in progress", refused.Error![..$"a planned switch of kv to {winner} is in progress".Length]);
        Assert.Contains("wait for it to finish ('continuity-cmd app status kv')", refused.Error);
        // Only the winner reached the owner: the loser was not queued behind it to run against a changed cluster.
        Assert.Equal(1, _counts.Switches);

        var entries = Audited();
        Assert.Equal(2, entries.Count);
        var accepted = Assert.Single(entries, e => e.Outcome == "accepted");
        var conflict = Assert.Single(entries, e => e.Outcome == "refused");
        Assert.Equal(("app switch", "kv", $"to {winner}", 202), (accepted.Action, accepted.Target, accepted.Detail, accepted.Status));
        Assert.Equal(("app switch", "kv", $"to {loser}", 409), (conflict.Action, conflict.Target, conflict.Detail, conflict.Status));
        Assert.Equal(refused.Error, conflict.Reason);
        Assert.Equal(AuditLog.Fingerprint(_node.Token), conflict.Token);
    }

    [Fact]
    public async Task A_switch_asked_while_a_checkpoint_runs_gets_409_and_so_does_a_checkpoint_asked_while_a_switch_runs()
    {
        var checkpoint = Post("/v1/apps/kv/checkpoint");
        await Eventually(() => _counts.Checkpoints == 1);
        var switchMeanwhile = await Post("/v1/apps/kv/switch", Switch("n2"));
        Assert.Equal(HttpStatusCode.Accepted, (await checkpoint).Status);

        var switching = Post("/v1/apps/kv/switch", Switch("n2"));
        await Eventually(() => _counts.Switches == 1);
        var checkpointMeanwhile = await Post("/v1/apps/kv/checkpoint");
        Assert.Equal(HttpStatusCode.Accepted, (await switching).Status);

        Assert.Equal(HttpStatusCode.Conflict, switchMeanwhile.Status);
        Assert.StartsWith("a checkpoint of kv is in progress", switchMeanwhile.Error);
        Assert.Equal(HttpStatusCode.Conflict, checkpointMeanwhile.Status);
        Assert.StartsWith("a planned switch of kv to n2 is in progress", checkpointMeanwhile.Error);
        Assert.Equal((1, 1), (_counts.Switches, _counts.Checkpoints));
        Assert.Equal([("app checkpoint", 409), ("app checkpoint", 202), ("app switch", 409), ("app switch", 202)],
            Audited().Select(e => (e.Action, e.Status)).OrderBy(x => x.Action).ThenByDescending(x => x.Status));
    }

    [Fact]
    public async Task Once_an_action_is_over_the_next_one_is_accepted()
    {
        Assert.Equal(HttpStatusCode.Accepted, (await Post("/v1/apps/kv/checkpoint")).Status);
        Assert.Equal(HttpStatusCode.Accepted, (await Post("/v1/apps/kv/switch", Switch("n3"))).Status);

        Assert.All(Audited(), e => Assert.Equal("accepted", e.Outcome));
    }

    [Fact]
    public async Task A_switch_of_an_app_that_is_switching_gets_409_naming_its_state()
    {
        _counts.State = "switching";

        var (status, error) = await Post("/v1/apps/kv/switch", Switch("n2"));

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Equal("kv is switching (primary n1): wait until it is protected again ('continuity-cmd app status kv'), then ask again", error);
        Assert.Equal(0, _counts.Switches);
        Assert.Equal(error, Assert.Single(Audited()).Reason);
    }

    private static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met within 10 s");
            await Task.Delay(10);
        }
    }

    /// <summary>Answers the management API's questions the way the AppsGuardian and the owner do, one app kv on n1 with standbys n2 and n3.</summary>
    private sealed class ScriptedGuardian : ReceiveActor
    {
        public sealed class Counts
        {
            private int _switches, _checkpoints;
            public int Switches => Volatile.Read(ref _switches);
            public int Checkpoints => Volatile.Read(ref _checkpoints);
            public volatile string State = "protected";
            public void Switched() => Interlocked.Increment(ref _switches);
            public void Checkpointed() => Interlocked.Increment(ref _checkpoints);
        }

        public ScriptedGuardian(Counts counts, TimeSpan takes)
        {
            // Plain node names as addresses: NodeNames maps an address it does not know to itself.
            Receive<AppsProtocol.GetApps>(_ => Sender.Tell(new AppsView([
                new AppView("kv", 3, "n1", [new StandbyView("n2", "n2", true, 0), new StandbyView("n3", "n3", true, 0)],
                    counts.State, null, 0, null, null)])));
            Receive<AppsProtocol.Switch>(s =>
            {
                counts.Switched();
                Task.Delay(takes).ContinueWith(_ => (object)new AppsProtocol.SwitchStarted(s.App, "n1", s.ToNode, 4)).PipeTo(Sender);
            });
            Receive<AppsProtocol.CheckpointNow>(c =>
            {
                counts.Checkpointed();
                Task.Delay(takes).ContinueWith(_ => (object)new AppsProtocol.CheckpointTaken(c.App,
                    new CheckpointInfo(3, "e3-1", 10, DateTimeOffset.UtcNow, 4096, TimeSpan.FromMilliseconds(20)))).PipeTo(Sender);
            });
        }
    }
}
