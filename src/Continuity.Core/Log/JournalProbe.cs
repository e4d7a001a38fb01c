using Akka.Actor;
using Akka.Configuration;
using Akka.Event;

namespace Continuity.Core.Log;

/// <summary>
/// Checks at start-up that the journal database of the standby packet logs answers, and says so in one line: which
/// backend, where, and what went wrong. Akka.Persistence.Sql alone only logs a stack trace per failed table set-up and
/// keeps every journal request waiting, so a standby log would otherwise just time out its recovery. While the check
/// fails it is repeated every <c>retry</c> (the error logged again when the reason changes, or once a minute); the
/// actor stops once the database answers.
/// </summary>
public sealed class JournalProbe : ReceiveActor, IWithTimers
{
    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    private sealed record Result(string? Answer, Exception? Error);

    private static readonly TimeSpan RepeatAfter = TimeSpan.FromMinutes(1);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _journal;
    private readonly Func<CancellationToken, Task<string>> _check;
    private readonly TimeSpan _retry;
    private readonly CancellationTokenSource _stop = new();
    private string? _lastReason;
    private DateTime _lastLogged;
    private bool _failing;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props for the journal of <paramref name="config"/>, or null when it has no server to check (SQLite, in-memory).</summary>
    public static Props? PropsFor(Config config, TimeSpan? retry = null)
    {
        var check = JournalBackend.Check(config);
        if (check is null) return null;
        var journal = JournalBackend.Describe(config);
        var every = retry ?? TimeSpan.FromSeconds(10);
        return Props.Create(() => new JournalProbe(journal, check, every));
    }

    public JournalProbe(string journal, Func<CancellationToken, Task<string>> check, TimeSpan retry)
    {
        _journal = journal;
        _check = check;
        _retry = retry;

        Receive<Tick>(_ => Run());
        Receive<Result>(OnResult);
    }

    protected override void PreStart() => Self.Tell(Tick.Instance);

    protected override void PostStop() => _stop.Cancel();

    private void Run()
    {
        _check(_stop.Token).ContinueWith(t => t.IsCompletedSuccessfully
                ? new Result(t.Result, null)
                : new Result(null, t.Exception?.GetBaseException() ?? new TimeoutException("the check was cancelled")),
            TaskContinuationOptions.ExecuteSynchronously).PipeTo(Self);
    }

    private void OnResult(Result r)
    {
        if (r.Error is null)
        {
            _log.Info(_failing ? "packet-log journal: the {0} answers again ({1})" : "packet-log journal: the {0} answers ({1})", _journal, r.Answer);
            Context.Stop(Self);
            return;
        }
        var reason = JournalBackend.Reason(r.Error);
        var now = DateTime.UtcNow;
        if (reason != _lastReason || now - _lastLogged >= RepeatAfter)
        {
            _log.Error("packet-log journal: cannot reach the {0}: {1}. Until it answers, this node cannot keep packet logs as a " +
                "standby (they cannot recover or write, so the primary gets no acknowledgements from here); checking again every {2:0.#} s.",
                _journal, reason, _retry.TotalSeconds);
            _lastReason = reason;
            _lastLogged = now;
        }
        _failing = true;
        Timers.StartSingleTimer("retry", Tick.Instance, _retry);
    }
}
