using System.Diagnostics;

namespace Continuity.Linux.Native;

/// <summary>Result of one command run by <see cref="Shell"/>.</summary>
internal readonly record struct CommandResult(int ExitCode, string StdOut, string StdErr, bool TimedOut = false)
{
    public bool Ok => ExitCode == 0;
}

/// <summary>
/// Runs ip/iptables/sysctl/criu and waits for them. The child inherits the calling thread's network namespace, which is
/// what lets the adapters work inside <see cref="Namespaces.NetNs.RunIn(string, Action)"/>.
/// </summary>
/// <remarks>
/// Callers block (actor handlers, a takeover's first phase), so nothing here may wait for the thread pool: the
/// output is drained by threads of our own. With an async read of stderr (<c>ReadToEndAsync().Result</c>) each
/// command whose output came after the call waited for a pool thread to finish, and on the 2-core lab machines, with
/// the pool busy with the takeover's other work, a takeover stalled 0.5-2 s between two <c>ip</c> commands (strace),
/// while the node's cluster heartbeats went late.
/// </remarks>
internal static class Shell
{
    public static CommandResult Run(string file, params string[] args) => Run(Timeout.InfiniteTimeSpan, file, args);

    /// <summary>Runs the command; after <paramref name="timeout"/> kills it and returns a result that says so.</summary>
    public static CommandResult Run(TimeSpan timeout, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"'{file}' could not be started ({e.Message}): run deploy/install-deps.sh.", e);
        }
        using (process)
        {
            var stderr = Drain(process.StandardError);
            var stdout = Drain(process.StandardOutput);
            if (!process.WaitForExit(timeout))
            {
                try { process.Kill(entireProcessTree: true); }
                catch (InvalidOperationException) { } // ended meanwhile
                process.WaitForExit();
                return new CommandResult(-1, stdout(), stderr(), TimedOut: true);
            }
            process.WaitForExit(); // the output too
            return new CommandResult(process.ExitCode, stdout(), stderr());
        }
    }

    /// <summary>Runs and throws with the command line and its stderr when it fails.</summary>
    public static string Check(string file, params string[] args)
    {
        var r = Run(file, args);
        if (!r.Ok)
            throw new InvalidOperationException(
                $"`{file} {string.Join(' ', args)}` failed (exit {r.ExitCode}): {r.StdErr.Trim()}");
        return r.StdOut;
    }

    /// <summary>Reads the stream to its end on a thread of its own; the function returned waits for the text.</summary>
    private static Func<string> Drain(StreamReader reader)
    {
        var text = "";
        var thread = new Thread(() => text = reader.ReadToEnd()) { IsBackground = true, Name = "shell-output" };
        thread.Start();
        return () =>
        {
            thread.Join();
            return text;
        };
    }
}
