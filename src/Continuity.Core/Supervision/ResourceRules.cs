namespace Continuity.Core.Supervision;

/// <summary>What the owner does when a resource its primary needs is damaged (continuity.supervision).</summary>
public enum DiskFullAction
{
    /// <summary>A planned switch to a standby whose disk has room (restore, no loss), with an alarm if there is none.</summary>
    Switch,
    /// <summary>An alarm only: the operator decides.</summary>
    Alarm,
}

/// <param name="MinFreeDiskPercent">Below this share of free space on the primary's state-dir file system, the
/// <paramref name="OnDiskFull"/> rule applies; 0 switches the rule off.</param>
/// <param name="CheckInterval">How often the owner looks at its primary's resources.</param>
public sealed record ResourceRules(double MinFreeDiskPercent, DiskFullAction OnDiskFull, TimeSpan CheckInterval)
{
    public static readonly ResourceRules Default = new(5, DiskFullAction.Switch, TimeSpan.FromSeconds(5));
}
