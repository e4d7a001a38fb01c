namespace Continuity.Core.Supervision;

/// <summary>What the owner does when a resource its primary needs is damaged (continuity.supervision).</summary>
public enum DiskFullAction
{
    /// <summary>A planned switch to a standby whose disk has room (restore, no loss), with an alarm if there is none.</summary>
    Switch,
    /// <summary>An alarm only: the operator decides.</summary>
    Alarm,
}

/// <summary>What the owner does when a standby's journal trails the primary beyond max-standby-lag.</summary>
public enum StandbyLagAction
{
    /// <summary>The standby leaves the application's standby set (the primary stops waiting for it), with an alarm; it
    /// comes back through the resynchronisation path once its log has caught up with what it received.</summary>
    Drop,
    /// <summary>An alarm only: the primary keeps waiting for it (the program gets no input meanwhile).</summary>
    Alarm,
}

/// <param name="MinFreeDiskPercent">Below this share of free space on the primary's state-dir file system, the
/// <paramref name="OnDiskFull"/> rule applies; 0 switches the rule off.</param>
/// <param name="CheckInterval">How often the owner looks at its primary's resources.</param>
/// <param name="MaxStandbyLag">A standby whose oldest unacknowledged packet has waited longer than this lags: the
/// <paramref name="OnStandbyLag"/> rule applies; zero switches the time bound off.</param>
/// <param name="MaxStandbyLagPackets">A standby with more packets than this unacknowledged lags too; 0 = off.</param>
public sealed record ResourceRules(double MinFreeDiskPercent, DiskFullAction OnDiskFull, TimeSpan CheckInterval,
    TimeSpan? MaxStandbyLag = null, long MaxStandbyLagPackets = 0, StandbyLagAction OnStandbyLag = StandbyLagAction.Drop)
{
    public static readonly TimeSpan DefaultMaxStandbyLag = TimeSpan.FromSeconds(10);

    public static readonly ResourceRules Default = new(5, DiskFullAction.Switch, TimeSpan.FromSeconds(5));

    /// <summary>The time bound in force (the default when not given); zero when off.</summary>
    public TimeSpan StandbyLagBound => MaxStandbyLag ?? DefaultMaxStandbyLag;

    public bool WatchesStandbyLag => StandbyLagBound > TimeSpan.Zero || MaxStandbyLagPackets > 0;

    /// <summary>Why <paramref name="lag"/> is beyond a bound (as the alarm words it), or null when it is within both.</summary>
    public string? Exceeded(Capture.StandbyLag lag)
    {
        var bound = StandbyLagBound;
        if (bound > TimeSpan.Zero && lag.OldestWait > bound)
            return $"its oldest unacknowledged packet has waited {lag.OldestWait.TotalSeconds:0.#} s ({lag.Packets} packet(s) behind), " +
                   $"beyond max-standby-lag = {Show(bound)}";
        if (MaxStandbyLagPackets > 0 && lag.Packets > MaxStandbyLagPackets)
            return $"it has {lag.Packets} packets unacknowledged, beyond max-standby-lag-packets = {MaxStandbyLagPackets}";
        return null;
    }

    private static string Show(TimeSpan t) => t.TotalSeconds >= 1 && t.TotalSeconds == Math.Floor(t.TotalSeconds)
        ? $"{t.TotalSeconds}s" : $"{t.TotalMilliseconds}ms";
}
