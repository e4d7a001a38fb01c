using Continuity.Core.Apps;
using Continuity.Core.Log;

namespace Continuity.Core.Election;

/// <summary>How long each phase of a takeover took, and what it did.</summary>
public sealed record TakeoverReport(
    int Pid,
    int PacketsReplayed,
    TimeSpan Restore,
    TimeSpan Replay,
    TimeSpan Total,
    IReadOnlyDictionary<string, TimeSpan> Phases);

/// <summary>
/// The takeover procedure of a standby (restore the checkpoint, replay the log after its mark,
/// open the VIP). Implemented by Switch/Switchover; the election only needs this seam, so it can be
/// tested with a fake and the OS-heavy procedure can evolve on its own.
/// </summary>
public interface ITakeover
{
    /// <param name="beforeOpen">Called after replay and before the VIP is opened: the caller installs
    /// its packet capture there, so no packet reaches the restored program unlogged.</param>
    Task<TakeoverReport> RunAsync(AppSpec app, string checkpointDir, long mark,
        IReadOnlyList<LoggedPacket> logAfterMark, Func<Task> beforeOpen, CancellationToken ct);

    /// <summary>Removes what a takeover of <paramref name="app"/> interrupted by the death of an earlier run of this
    /// node left behind (the injection channel routes the VIP's replies into a dead end while it exists).
    /// A no-op when nothing is left.</summary>
    void ClearLeftovers(AppSpec app) { }
}
