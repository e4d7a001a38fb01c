namespace Continuity.Cmd;

/// <summary>
/// Everything the console touches outside itself: streams, environment variables, files and the
/// keyboard. Injected so tests can run the whole console in-process against a fake node.
/// </summary>
internal sealed class CmdEnvironment
{
    public required TextReader In { get; init; }
    public required TextWriter Out { get; init; }
    public required TextWriter Err { get; init; }

    /// <summary>True when stdin is a pipe or file: line editing would fight with the script.</summary>
    public bool InputRedirected { get; init; } = true;

    /// <summary>Key source for the line editor; only used when input is not redirected.</summary>
    public IKeySource? Keys { get; init; }

    public Func<string, string?> GetEnv { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>Token files tried when neither --token-file nor CONTINUITY_TOKEN_FILE names one.</summary>
    public IReadOnlyList<string> DefaultTokenFiles { get; init; } = TokenSource.WellKnownFiles;

    public string HistoryFile { get; init; } = LineHistory.DefaultFile;

    /// <summary>Ctrl-C handling: a long-running command (cluster tail) is stopped, not the process.</summary>
    public CommandInterrupts Interrupts { get; } = new();

    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>True when stdout is a terminal: progress is drawn in place; a pipe or a file gets one plain line per change.</summary>
    public bool OutputIsTerminal { get; init; }

    /// <summary>How often a followed operation (switch, checkpoint) is polled.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    public static CmdEnvironment FromSystemConsole() => new()
    {
        In = Console.In,
        Out = Console.Out,
        Err = Console.Error,
        InputRedirected = Console.IsInputRedirected,
        OutputIsTerminal = !Console.IsOutputRedirected,
        Keys = Console.IsInputRedirected ? null : new SystemConsoleKeys(),
    };
}

/// <summary>
/// Hands out a cancellation token per running command so Ctrl-C can end `cluster tail` and return
/// to the prompt instead of killing the interactive session.
/// </summary>
internal sealed class CommandInterrupts
{
    private readonly object _lock = new();
    private CancellationTokenSource? _current;

    public CancellationToken Begin()
    {
        lock (_lock)
        {
            _current?.Dispose();
            _current = new CancellationTokenSource();
            return _current.Token;
        }
    }

    public void End()
    {
        lock (_lock)
        {
            _current?.Dispose();
            _current = null;
        }
    }

    /// <summary>Returns false when no command is running, so the caller lets Ctrl-C end the process.</summary>
    public bool TryInterrupt()
    {
        lock (_lock)
        {
            if (_current is null || _current.IsCancellationRequested) return false;
            _current.Cancel();
            return true;
        }
    }
}
