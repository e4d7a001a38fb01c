namespace Continuity.Core.Tests.Support;

/// <summary>For the in-process cluster tests: a cluster converges in its own time, so they poll what a user would ask.</summary>
internal static class Poll
{
    /// <summary>Asks <paramref name="probe"/> until its answer is <paramref name="ok"/>; a probe that throws (an Ask
    /// timing out while a singleton moves) counts as no answer yet.</summary>
    public static async Task<T> Eventually<T>(Func<Task<T?>> probe, Func<T, bool> ok, TimeSpan timeout, string what) where T : class
    {
        var deadline = DateTime.UtcNow + timeout;
        T? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await probe();
                if (last is not null && ok(last)) return last;
            }
            catch (Exception) { }
            await Task.Delay(200);
        }
        throw new TimeoutException($"{what}; last seen: {last}");
    }
}
