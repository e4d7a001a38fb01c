using Continuity.Core.Apps;
using Continuity.Core.Election;
using Continuity.Core.Log;

namespace Continuity.Core.Switch;

/// <summary>
/// The election's <see cref="ITakeover"/> seam over <see cref="Switchover"/>. Each takeover gets a
/// fresh <see cref="SwitchPlatform"/> made for its application (its injection channel tracks only that
/// switch's connections and captures only that application's replies) and disposes the channel afterwards.
/// </summary>
/// <param name="clearLeftovers">Removes an injection channel an interrupted takeover of the app left (see
/// <see cref="ITakeover.ClearLeftovers"/>).</param>
public sealed class SwitchoverTakeover(Func<AppSpec, SwitchPlatform> platform, SwitchOptions? options = null, Action<string>? log = null,
    Action<AppSpec>? clearLeftovers = null) : ITakeover
{
    public void ClearLeftovers(AppSpec app) => clearLeftovers?.Invoke(app);

    public async Task<TakeoverReport> RunAsync(AppSpec app, string checkpointDir, long mark,
        IReadOnlyList<LoggedPacket> logAfterMark, Func<Task> beforeOpen, CancellationToken ct)
    {
        var p = platform(app);
        try
        {
            var switchover = new Switchover(p, options, log);
            var report = await switchover.RunAsync(app, checkpointDir, mark, logAfterMark, _ => beforeOpen(), progress: null, ct);
            log?.Invoke($"takeover of {app.Name}: {report}");
            return new TakeoverReport(report.RestoredPid, report.PacketsReplayed, report.Restore, report.Replay, report.Total,
                new Dictionary<string, TimeSpan>
                {
                    ["vip"] = report.Vip, ["restore"] = report.Restore, ["replay"] = report.Replay, ["open"] = report.Open,
                });
        }
        finally
        {
            p.Channel.Dispose();
        }
    }
}
