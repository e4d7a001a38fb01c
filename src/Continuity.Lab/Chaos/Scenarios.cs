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
    /// <summary>A share of the small cluster-port segments between nodes held back in a slow lane (tc htb), so they arrive after later ones.</summary>
    ReorderReplication,
    /// <summary>The primary crashes, then the standby taking over crashes while CRIU restores the checkpoint.</summary>
    CrashTakeoverDuringRestore,
    /// <summary>The primary crashes, then the standby taking over crashes while it replays the log (after the restore).</summary>
    CrashTakeoverDuringReplay,
    /// <summary>{primary, one standby, w1} (3 of 5) cut off from {the other standby, w2}: the primary keeps the majority.</summary>
    SplitPrimaryInMajority,
    /// <summary>{primary, one standby} (2 of 5) cut off from {the other standby, w1, w2}: the primary is in the minority.</summary>
    SplitPrimaryInMinority,
    /// <summary>A UDP flood from the client namespace to the VIP's logged port, faster than the capture can release it.</summary>
    FloodQueue,
    /// <summary>A standby's state file system (its journal's) filled to the last block, freed later.</summary>
    FillStandbyJournal,
    /// <summary>The primary crashes with packets every standby has logged and the program has not been given: a fail
    /// point freezes its node just before their verdict, then the lab crash follows.</summary>
    CrashPrimaryBetweenAckAndVerdict,
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
        new("replication-reorder", FaultKind.ReorderReplication, false, "small cluster-port segments between nodes delayed at random behind later ones (reordering)"),
        new("crash-restore", FaultKind.CrashTakeoverDuringRestore, false, "primary crash, then the standby taking over crashes during its CRIU restore; the third data node takes over"),
        new("crash-replay", FaultKind.CrashTakeoverDuringReplay, false, "primary crash, then the standby taking over crashes during its log replay; the third data node takes over"),
        new("split-majority", FaultKind.SplitPrimaryInMajority, false, "split: primary, one standby and a witness (3 of 5) vs the other standby and the other witness, then healed"),
        new("split-minority", FaultKind.SplitPrimaryInMinority, false, "split: primary and one standby (2 of 5) vs the other standby and both witnesses, then healed"),
        new("queue-full", FaultKind.FloodQueue, false, "UDP flood of the VIP's logged port from the client namespace: the primary's NFQUEUE fills"),
        new("journal-full", FaultKind.FillStandbyJournal, false, "a standby's journal disk filled to the last block, then freed"),
        new("crash-ack-verdict", FaultKind.CrashPrimaryBetweenAckAndVerdict, false, "primary crash between the standbys' acknowledgement of packets and their release to the program (a fail point stops the node there)"),
    ];

    public static Scenario? Find(string name) => All.FirstOrDefault(s => s.Name == name);
}
