using Continuity.Core.Checkpoint;
using Continuity.Core.Election;
using Continuity.Core.Serialization;

namespace Continuity.Core.Apps;

/// <summary>What the management API asks the node's AppsGuardian.</summary>
public static class AppsProtocol
{
    /// <summary>Replies <see cref="AppsView"/>.</summary>
    public sealed record GetApps : IControlMessage;

    /// <summary>Planned switch of <paramref name="App"/> to <paramref name="ToNode"/> (a node name or cluster address).
    /// Replies <see cref="SwitchStarted"/> once the target was told to take over, or <see cref="Rejected"/>.</summary>
    /// <param name="Reason">Why, as the switch report shows it (an operator's request, or a rebalancing move).</param>
    public sealed record Switch(string App, string ToNode, string Reason = "planned switch") : IControlMessage;

    /// <summary>Replies <see cref="CheckpointTaken"/> or <see cref="Rejected"/>.</summary>
    public sealed record CheckpointNow(string App) : IControlMessage;

    /// <summary>Pause (or resume) the owner's automatic recovery of <paramref name="App"/>: while paused, a lost primary is
    /// not replaced, a failed program is not started again and nothing is rebalanced; capture, logging and checkpoints go
    /// on, so resuming recovers without loss. Replies <see cref="RecoveryPaused"/> or <see cref="Rejected"/>.</summary>
    public sealed record PauseRecovery(string App, bool Pause) : IControlMessage;

    /// <param name="Changed">False when it already was in that state.</param>
    public sealed record RecoveryPaused(string App, bool Paused, bool Changed) : IControlMessage;

    public sealed record SwitchStarted(string App, string From, string To, long Epoch) : IControlMessage;

    /// <summary>Every switch of every application kept by the data nodes (merged). Replies <see cref="SwitchHistory"/>.</summary>
    public sealed record GetSwitchHistory : IControlMessage;

    /// <param name="Switches">Oldest first, one per application and epoch.</param>
    /// <param name="Gaps">Data nodes that did not answer (what only they kept is missing).</param>
    public sealed record SwitchHistory(IReadOnlyList<AppSwitch> Switches, IReadOnlyList<string> Gaps) : IControlMessage;

    public sealed record AppSwitch(string App, SwitchInfo Switch) : IControlMessage;
    public sealed record CheckpointTaken(string App, CheckpointInfo Checkpoint) : IControlMessage;
    public sealed record Rejected(string App, string Reason) : IControlMessage;
}

public sealed record AppsView(IReadOnlyList<AppView> Apps) : IControlMessage;

/// <param name="State">paused (automatic recovery paused by an operator: see <see cref="AppsProtocol.PauseRecovery"/>),
/// protected (every standby ready), unprotected (no ready standby), degraded (some not ready),
/// switching, down (no primary; the alarm says why, e.g. the program exited and is started again after a back-off),
/// failed (the program failed more often than max-restarts allows: it is not started again until a data node joins),
/// unknown (owner not reachable).</param>
/// <param name="LogDepth">Packets logged since the last checkpoint's mark (the most any standby holds).</param>
public sealed record AppView(
    string Name,
    long Epoch,
    string? Primary,
    IReadOnlyList<StandbyView> Standbys,
    string State,
    CheckpointInfo? LastCheckpoint,
    long LogDepth,
    SwitchInfo? LastSwitch,
    string? Alarm) : IControlMessage;

/// <param name="Ready">Holds a complete checkpoint of the current epoch (can take over without loss).</param>
/// <param name="Checkpoint">The newest complete checkpoint this standby holds, if any.</param>
public sealed record StandbyView(string Node, string NodeName, bool Ready, long LogDepth, CheckpointInfo? Checkpoint = null) : IControlMessage;
