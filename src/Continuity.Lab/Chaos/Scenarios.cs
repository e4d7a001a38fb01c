namespace Continuity.Lab.Chaos;

/// <summary>What a chaos run does to the cluster. Each kind is carried out by <see cref="ChaosRunner"/>.</summary>
internal enum FaultKind
{
    /// <summary>The primary's machine loses power (lab crash: links down, then SIGKILL), later revived.</summary>
    CrashPrimary,
    /// <summary>The same, aimed at a checkpoint phase read from the primary's log (frozen/dumping or shipping).</summary>
    CrashPrimaryDuringCheckpoint,
    /// <summary>SIGSTOP of every process of the primary's machine (node and program), SIGCONT later.</summary>
    HangPrimary,
    /// <summary>A standby's machine crashes and is revived later: it must resynchronise.</summary>
    CrashStandby,
    /// <summary>The primary is cut off from the other nodes (the client still reaches it), healed later.</summary>
    PartitionPrimary,
    /// <summary>A share of the cluster-port segments between nodes dropped (iptables statistic).</summary>
    DropReplication,
    /// <summary>A share of the cluster-port segments between nodes sent twice (iptables statistic + TEE).</summary>
    DuplicateReplication,
    /// <summary>SIGKILL of the primary's continuity-node process only: the protected program lives on.</summary>
    KillPrimaryNode,
}

/// <param name="Idle">The clients send one request a second on few connections instead of a steady load.</param>
internal sealed record Scenario(string Name, FaultKind Fault, bool Idle, string Description);

/// <summary>The scenarios of 'continuity-lab chaos', in the order of the report.</summary>
internal static class Scenarios
{
    public static readonly IReadOnlyList<Scenario> All =
    [
        new("crash-idle", FaultKind.CrashPrimary, true, "primary crash while the clients are nearly idle"),
        new("crash-load", FaultKind.CrashPrimary, false, "primary crash under load"),
        new("crash-checkpoint", FaultKind.CrashPrimaryDuringCheckpoint, false, "primary crash while a checkpoint is dumped or shipped"),
        new("hang", FaultKind.HangPrimary, false, "primary hang (SIGSTOP of node and program), then SIGCONT"),
        new("standby-crash", FaultKind.CrashStandby, false, "standby crash, then revive and resynchronisation"),
        new("partition-primary", FaultKind.PartitionPrimary, false, "primary cut off from the other nodes, then healed"),
        new("replication-loss", FaultKind.DropReplication, false, "cluster-port segments between nodes dropped at random"),
        new("replication-dup", FaultKind.DuplicateReplication, false, "cluster-port segments between nodes duplicated at random"),
        new("node-kill", FaultKind.KillPrimaryNode, false, "SIGKILL of the primary's continuity-node while its program lives"),
    ];

    public static Scenario? Find(string name) => All.FirstOrDefault(s => s.Name == name);
}
