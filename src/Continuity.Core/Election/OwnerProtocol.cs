using Akka.Actor;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Continuity.Core.Serialization;

namespace Continuity.Core.Election;

/// <summary>What a node currently is for one application.</summary>
public enum AppRole { Idle, Standby, Primary, TakingOver, Releasing }

/// <summary>A completed switch, as shown by the console.</summary>
/// <param name="From">The node replaced: its cluster address, or its node name when it had already left the
/// cluster (a crash), since a removed member's address no longer maps to a name.</param>
public sealed record SwitchInfo(string? From, string To, DateTimeOffset At, string Reason, long Epoch,
    int PacketsReplayed, IReadOnlyDictionary<string, TimeSpan> Phases) : IControlMessage;

/// <summary>
/// Between an application's AppOwner (cluster singleton) and the app actor on every data node.
/// Every command carries the epoch of the decision: a node ignores commands older than what it has seen,
/// and a primary that learns of a newer epoch stops delivering input at once (fencing).
/// </summary>
public static class OwnerProtocol
{
    public sealed record BecomePrimary(string App, long Epoch, IReadOnlyList<StandbyRef> Standbys) : IControlMessage;
    public sealed record BecomeStandby(string App, long Epoch, string PrimaryNode) : IControlMessage;
    /// <param name="Planned">A switch asked for by an operator (the old primary shipped a final checkpoint and stopped).</param>
    public sealed record TakeOver(string App, long Epoch, IReadOnlyList<StandbyRef> Standbys, bool Planned, string? From, string Reason) : IControlMessage;
    public sealed record SetStandbys(string App, long Epoch, IReadOnlyList<StandbyRef> Standbys) : IControlMessage;

    /// <summary>Planned switch, first half: final checkpoint shipped to every standby, then stop serving. Replies Released or Failed.</summary>
    public sealed record Release(string App, long Epoch) : IControlMessage;
    public sealed record Released(string App, long Epoch, CheckpointInfo Checkpoint) : IControlMessage;

    public sealed record GetNodeStatus(string App) : IControlMessage;

    /// <param name="Newest">The newest complete checkpoint this node holds (a primary: the last it took).</param>
    /// <param name="LogEpoch">Epoch of the newest logged packets; <paramref name="LogTail"/> the seq of the newest one.</param>
    /// <param name="JournalFailure">Why this node's packet log cannot be kept (its journal failed), or null: such a node
    /// is no standby and is never elected until it reports <see cref="JournalRecovered"/>.</param>
    /// <param name="DiskFreePercent">Free share of the file system holding this node's state for the app, if readable.</param>
    /// <param name="LogComplete">False while its log misses packets (it rejoined after a journal failure, or joined
    /// mid-epoch) and no fresh checkpoint has covered them: it stays a standby but is not elected.</param>
    /// <param name="Lags">Primary: how far each standby's acknowledgement trails its capture (null on other nodes).</param>
    /// <param name="Behind">Why the owner dropped this node from the standbys because its journal lagged (null when it
    /// was not): its log then misses what the primary released meanwhile, so it reports itself not complete.</param>
    /// <param name="LogBacklog">Standby: batches received and not yet written to the journal (packets).</param>
    public sealed record NodeStatus(string App, string Node, string NodeName, IActorRef AppActor, AppRole Role, long Epoch,
        CheckpointInfo? Newest, long LogEpoch, long LogTail, int LogDepth, string? JournalFailure = null, bool LogComplete = true,
        bool RecoveryPaused = false, double? DiskFreePercent = null, IReadOnlyList<StandbyLag>? Lags = null, string? Behind = null,
        long LogBacklog = 0) : IControlMessage;

    /// <summary>From the owner to a standby whose journal lags beyond the bound, before the primary is told to stop
    /// waiting for it: the node notes (on disk too) that its log is about to miss packets, so that it is not elected
    /// (by this owner or a later incarnation) until a checkpoint taken after it was added back reached it. The owner
    /// drops it only once it answered <see cref="StandbyDropped"/>.</summary>
    public sealed record DropStandby(string App, long Epoch, string Reason) : IControlMessage;

    public sealed record StandbyDropped(string App, long Epoch, string Node) : IControlMessage;

    /// <summary>To every data node's app actor: the owner's recovery is paused (or resumed). Kept there because the owner
    /// keeps nothing: a new incarnation of it learns the pause from the nodes' statuses.</summary>
    public sealed record SetRecoveryPaused(string App, bool Paused) : IControlMessage;

    /// <summary>From a standby's app actor: its packet log stopped because the journal failed (<paramref name="Reason"/>
    /// names the journal and its error). It acknowledges nothing more, so the owner drops it from the standbys.</summary>
    public sealed record JournalFailed(string App, string Node, string Reason) : IControlMessage;

    /// <summary>From that node once a fresh log recovered and a test write went through: it can be a standby again.</summary>
    public sealed record JournalRecovered(string App, string Node) : IControlMessage;

    public sealed record TookOver(string App, long Epoch, string Node, SwitchInfo Switch) : IControlMessage;

    /// <summary>From the owner to every data node's app actor after a switch: keep it in the node's durable switch history
    /// (<see cref="SwitchHistory"/>).</summary>
    public sealed record RecordSwitch(string App, SwitchInfo Switch) : IControlMessage;

    /// <summary>Asked of a data node's app actor. Replies <see cref="SwitchesKept"/>.</summary>
    public sealed record GetSwitchHistory(string App) : IControlMessage;

    /// <param name="Node">The node's name.</param>
    /// <param name="Switches">What its history file holds, oldest first.</param>
    public sealed record SwitchesKept(string App, string Node, IReadOnlyList<SwitchInfo> Switches) : IControlMessage;
    public sealed record TakeoverFailed(string App, long Epoch, string Node, string Reason) : IControlMessage;

    /// <summary>The program of <paramref name="Epoch"/> could not be started on <paramref name="Node"/>, or exited there on
    /// its own; that node has already stopped serving (VIP and queue rules removed). <paramref name="Reason"/> gives the
    /// exit status and last output lines.</summary>
    public sealed record ProgramFailed(string App, long Epoch, string Node, string Reason) : IControlMessage;

    /// <summary>The program of <paramref name="Epoch"/> was started fresh on <paramref name="Node"/> (after BecomePrimary).</summary>
    public sealed record Started(string App, long Epoch, string Node) : IControlMessage;

    /// <summary>Generic failure reply (switch refused, checkpoint failed, ...).</summary>
    public sealed record Failed(string App, string Reason) : IControlMessage;

    public sealed record GetOwnerView(string App) : IControlMessage;
    /// <param name="Failed">The program failed more often than max-restarts allows: nothing is started until a data node joins.</param>
    public sealed record OwnerView(string App, long Epoch, string? PrimaryNode, IActorRef? Primary,
        IReadOnlyList<StandbyRef> Standbys, SwitchInfo? LastSwitch, string? Alarm, bool Failed = false, bool RecoveryPaused = false) : IControlMessage;
}
