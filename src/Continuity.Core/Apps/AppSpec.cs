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
}
