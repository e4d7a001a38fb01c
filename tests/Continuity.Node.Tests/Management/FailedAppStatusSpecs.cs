using System.Net;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Node.Tests.Management;

/// <summary>
/// A real node (one data member, the real launcher) protecting a program that cannot run: an executable script whose
/// interpreter does not exist passes the configuration check and fails only when it is started. The exec fails before
/// the program ever runs, so no VIP or firewall rule is ever installed.
/// </summary>
public sealed class FailedAppStatusSpecs(ITestOutputHelper log) : IAsyncLifetime
{
    private readonly string _programDir = Directory.CreateTempSubdirectory("continuity-node-failed-").FullName;
    private TestNode _node = null!;
    private string _program = "";

    public async Task InitializeAsync()
    {
        (_program, var app) = TestNode.UnstartableApp(_programDir, "198.18.99.50/24", "--port", "7000");
        _node = await TestNode.StartAsync("solo", extra: app);
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        Directory.Delete(_programDir, recursive: true);
    }

    [Fact]
    public async Task The_app_status_shows_failed_with_the_exit_code_and_output_instead_of_pretending_it_runs()
    {
        var app = await _node.WaitForApp("kv", a => a.GetProperty("state").GetString() == "failed", "state failed");
        log.WriteLine(app.ToString());
        Assert.Equal("failed", app.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, app.GetProperty("primary").ValueKind);
        var alarm = app.GetProperty("alarm").GetString()!;
        Assert.StartsWith($"failed: solo: could not start {_program} --port 7000: {_program} exited with code 127 right after start; " +
            $"last output: continuity-launch: line 1: {_program}: ", alarm);
        Assert.Contains("stopped after 2 failure(s) within 10m (max-restarts = 1)", alarm);
    }
}
