using System.Net;
using Continuity.Core.Platform;

namespace Continuity.Core.Apps;

/// <summary>What to do with the log when a standby takes over (the patent's adaptable parameter).</summary>
public enum RecoveryPolicy
{
    /// <summary>Restore the checkpoint and re-inject every logged packet: clients keep their connections.</summary>
    Replay,
    /// <summary>Restore the checkpoint only: faster; connections established at the crash are reset cleanly.</summary>
    RestoreOnly,
}

/// <summary>A protected application, as declared under continuity.apps.NAME.</summary>
public sealed record AppSpec(
    string Name,
    IReadOnlyList<string> Command,
    IPAddress Vip,
    int VipPrefixLength,
    IReadOnlyList<PortSpec> Ports,
    TimeSpan CheckpointInterval,
    IReadOnlyList<string> StateDirs,
    RecoveryPolicy Recovery,
    ushort QueueNumber)
{
    public TrafficSelector Traffic => new(Vip, Ports);

    /// <summary>What the owner does when the program exits on its own or cannot be started.</summary>
    public RestartPolicy Restarts { get; init; } = RestartPolicy.Default;

    /// <summary>Node names the primary should run on, best first (continuity.apps.NAME.prefer); empty for none.</summary>
    public IReadOnlyList<string> Prefer { get; init; } = [];
}

/// <summary>
/// Bounded restarts of a program that exits on its own or fails to start (max-restarts, restart-backoff,
/// restart-window under continuity.apps.NAME or app-defaults).
/// </summary>
/// <param name="MaxRestarts">Starts allowed after failures within <paramref name="Window"/>; one more failure stops the
/// application (state "failed", with an alarm) until a data node (re)joins the cluster. 0: never start it again.</param>
/// <param name="Backoff">Delay before the first restart, doubled for each further failure within the window, at most
/// <see cref="MaxBackoff"/>.</param>
/// <param name="Window">Failures older than this are forgotten.</param>
public sealed record RestartPolicy(int MaxRestarts, TimeSpan Backoff, TimeSpan Window)
{
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(1);

    public static readonly RestartPolicy Default = new(3, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));

    /// <summary>The delay before restart number <paramref name="restart"/> (1-based).</summary>
    public TimeSpan DelayBefore(int restart)
    {
        var ms = Backoff.TotalMilliseconds * Math.Pow(2, Math.Clamp(restart - 1, 0, 30));
        return TimeSpan.FromMilliseconds(Math.Min(ms, MaxBackoff.TotalMilliseconds));
    }
}
