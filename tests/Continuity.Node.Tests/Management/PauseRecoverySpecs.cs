using System.Net;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Node.Tests.Management;

/// <summary>
/// Maintenance through the management API of a real node: pausing automatic recovery of an application whose program
/// cannot run (see <see cref="TestNode.UnstartableApp"/>) stops its restarts until recovery is resumed.
/// </summary>
public sealed class PauseRecoverySpecs(ITestOutputHelper log) : IAsyncLifetime
{
    private readonly string _programDir = Directory.CreateTempSubdirectory("continuity-node-paused-").FullName;
    private TestNode _node = null!;

    public async Task InitializeAsync()
    {
        var (_, app) = TestNode.UnstartableApp(_programDir, "198.18.99.50/24", "--port", "7000");
        // Long enough between the first failure and the restart to pause recovery in between.
        _node = await TestNode.StartAsync("solo", extra: app + "\ncontinuity.apps.kv.restart-backoff = 5s\n");
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        Directory.Delete(_programDir, recursive: true);
    }

    private Task<JsonElement> WaitForApp(Func<JsonElement, bool> ok, string what) => _node.WaitForApp("kv", ok, what);

    private static string? Alarm(JsonElement app) => app.GetProperty("alarm").GetString();

    [Fact]
    public async Task While_recovery_is_paused_a_failed_program_is_not_restarted_until_it_is_resumed()
    {
        await WaitForApp(a => Alarm(a)?.Contains("starting it again in") == true, "the first failure");

        var (status, body, _) = await _node.Post("/v1/apps/kv/pause", "{}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("\"result\":\"recovery paused\"", body);
        Assert.Contains("\"changed\":true", body);

        // The restart that was due after 5 s does not happen: the state says paused, the alarm why.
        var paused = await WaitForApp(a => a.GetProperty("state").GetString() == "paused" && Alarm(a)?.StartsWith("recovery paused and ") == true,
            "paused with the missed restart in the alarm");
        await Task.Delay(TimeSpan.FromSeconds(6));
        var still = await WaitForApp(_ => true, "the app");
        log.WriteLine(still.ToString());
        Assert.Equal("paused", still.GetProperty("state").GetString());
        Assert.DoesNotContain("stopped after", Alarm(still)); // no second start, so no second failure

        var again = await _node.Post("/v1/apps/kv/pause", "{}");
        Assert.Contains("\"changed\":false", again.Body);

        (status, body, _) = await _node.Post("/v1/apps/kv/resume", "{}");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("\"result\":\"recovery resumed\"", body);
        // Resumed, the owner starts it again at once; it fails a second time, beyond max-restarts = 1.
        var failed = await WaitForApp(a => a.GetProperty("state").GetString() == "failed", "failed after the resume");
        Assert.Contains("stopped after 2 failure(s)", Alarm(failed));
        log.WriteLine($"paused: {paused}");
    }

    [Fact]
    public async Task Pausing_an_unknown_application_is_refused_with_404()
    {
        var (status, body, _) = await _node.Post("/v1/apps/nope/pause", "{}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.StartsWith("no application 'nope'", JsonDocument.Parse(body).RootElement.GetProperty("error").GetString());
    }
}
