using Akka.Actor;
using Akka.Cluster;
using Continuity.Core.Apps;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Core.Tests.Election;

/// <summary>
/// A program that cannot start or exits on its own, on a one-node cluster with fake OS adapters: the owner starts it
/// again within max-restarts with a growing delay, then stops it and says why.
/// </summary>
[Collection("cluster")]
public sealed class AppOwnerRestartSpecs(ITestOutputHelper output) : IAsyncLifetime
{
    private ActorSystem _system = null!;
    private readonly FakePlatform _platform = new();
    private IActorRef _guardian = null!;
    private static readonly AppSpec App = TestConfig.App("kv") with
    {
        Restarts = new RestartPolicy(2, TimeSpan.FromMilliseconds(300), TimeSpan.FromMinutes(10)),
    };

    public async Task InitializeAsync()
    {
        _system = ActorSystem.Create("continuity", TestConfig.Node("""
            akka.cluster.roles = [data]
            akka.loglevel = WARNING
            """));
        var cluster = Cluster.Get(_system);
        await cluster.JoinAsync(cluster.SelfAddress);
    }

    private void Start() => _guardian = ContinuityApps.Start(_system, [App], _platform.Services, TestConfig.TempDir(), "n1");

    public async Task DisposeAsync() =>
        await _system.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });

    private async Task<AppView> Eventually(Func<AppView, bool> ok, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        AppView? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = (await _guardian.Ask<AppsView>(new AppsProtocol.GetApps(), TimeSpan.FromSeconds(5))).Apps[0];
                if (ok(last)) return last;
            }
            catch (Exception) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{what}; last seen: {last}");
    }

    [Fact]
    public async Task A_program_that_cannot_start_is_tried_max_restarts_times_with_backoff_then_shown_failed_with_the_reason()
    {
        _platform.Launcher.FailWith = "/bin/kv exited with code 3 right after start; last output: fatal: no config.";
        var started = DateTime.UtcNow;
        Start();

        var view = await Eventually(v => v.State == "failed", TimeSpan.FromSeconds(30), "the application shown failed");
        output.WriteLine(view.Alarm);
        var took = DateTime.UtcNow - started;
        // One start and two restarts, 0.3 s then 0.6 s apart: bounded, and not at machine speed.
        Assert.Equal(3, _platform.Launcher.Launched);
        Assert.True(took >= TimeSpan.FromMilliseconds(900), $"three attempts took only {took}");
        Assert.Null(view.Primary);
        Assert.StartsWith("failed: n1: could not start /bin/kv: /bin/kv exited with code 3 right after start; last output: fatal: no config; " +
            "stopped after 3 failure(s) within 10m (max-restarts = 2)", view.Alarm);
        Assert.Contains("restart continuity-node on a data node", view.Alarm);
        Assert.False(_platform.Vip.Up);

        await Task.Delay(1500);
        Assert.Equal(3, _platform.Launcher.Launched); // and then nothing more
    }

    [Fact]
    public async Task A_program_that_exits_after_starting_is_started_again_and_the_alarm_tells_what_happened()
    {
        _platform.Launcher.ExitAfterStart = 1;
        Start();

        // The alarm changes from "starting it again" to "started again" once the owner hears of the new start.
        var view = await Eventually(v => v.Primary is not null && _platform.Launcher.Launched == 2 && v.State == "unprotected"
                                         && v.Alarm?.Contains("started again") == true,
            TimeSpan.FromSeconds(30), "the program running again");
        output.WriteLine(view.Alarm);
        Assert.Equal(2, view.Epoch);
        Assert.Contains("n1: /bin/kv (pid ", view.Alarm);
        Assert.Contains("exited with code 3 after ", view.Alarm);
        Assert.Contains("last output: loading /etc/kv.conf | fatal: port 7000 is in use; started again (restart 1 of 2 within 10m)", view.Alarm);
        Assert.True(_platform.Vip.Up);
    }

    [Fact]
    public async Task While_the_restart_waits_the_application_is_down_with_the_reason()
    {
        _platform.Launcher.FailWith = "/bin/kv exited with code 1 right after start; no output.";
        Start();

        var view = await Eventually(v => v.State == "down" && v.Alarm?.Contains("starting it again in") == true,
            TimeSpan.FromSeconds(30), "the application down, waiting to restart");
        output.WriteLine(view.Alarm);
        Assert.Matches(@"; starting it again in \d(\.\d)? s \(restart [12] of 2 within 10m\)$", view.Alarm);
        Assert.Contains("exited with code 1 right after start", view.Alarm);
    }
}
