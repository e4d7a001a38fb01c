using System.Collections.Concurrent;
using System.Diagnostics;
using Continuity.Core.Platform;

namespace Continuity.Linux.Processes;

/// <summary>
/// Starts protected programs the way CRIU can later dump and restore them on another node:
/// <c>[nsenter --net=NS] unshare --pid --fork setsid bash -c 'close fds above 2; exec "$@" &lt;/dev/null 2&gt;&amp;1'
/// continuity-launch CMD...</c>.
/// </summary>
/// <remarks>
/// Why each piece:
/// <list type="bullet">
/// <item>Init of its own PID namespace: a restore on another node gets the same pids back without colliding with
/// that node's processes, and killing init kills the whole tree.</item>
/// <item>Session leader (setsid): otherwise CRIU refuses ("a session leader of PID is outside of its pid
/// namespace") or needs --shell-job.</item>
/// <item>No new mount namespace (never <c>ip netns exec</c>): CRIU cannot dump a mount namespace it cannot reach
/// ("doesn't have a proper root mount").</item>
/// <item>stdin /dev/null, stderr merged into stdout: the program holds exactly one pipe, whose read end the node
/// owns; a restore maps that single pipe onto a fresh one (<c>criu restore --inherit-fd</c>).</item>
/// <item>Only fds 0-2: the wrapper closes everything else (see <see cref="Wrapper"/>).</item>
/// </list>
/// The returned pid is the root-namespace pid of the namespace's init, which is what <c>criu dump -t</c> needs.
/// </remarks>
public sealed class NamespacedLauncher : IProcessLauncher
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(10);

    /// <summary>$0 of the wrapper shell, which tells it apart from the program.</summary>
    private const string WrapperName = "continuity-launch";

    /// <summary>
    /// Closes every inherited fd above 2, then execs the program with stdin /dev/null and stderr on stdout.
    /// .NET opens its own fds close-on-exec, but fds the node itself inherited (from its service manager, a shell,
    /// a test runner) reach the program: a stray one opened in another mount namespace fails the dump ("Can't
    /// lookup mount"). bash, because dash cannot close fds above 9.
    /// </summary>
    private const string Wrapper =
        "for f in /proc/self/fd/*; do n=${f##*/}; if [ \"$n\" -gt 2 ]; then exec {n}>&-; fi; done; " +
        "exec \"$@\" </dev/null 2>&1";

    /// <summary>Lines of output kept per program, to say why it ended.</summary>
    public const int TailLines = 10;

    /// <summary>How many ended programs (and restored programs' outputs) are remembered.</summary>
    private const int Remembered = 64;

    private readonly string? _netNsPath;
    private readonly ConcurrentDictionary<int, System.Diagnostics.Process> _launchers = new();
    private readonly ConcurrentDictionary<int, ProgramExit> _exits = new();
    private readonly ConcurrentQueue<int> _exitOrder = new();
    private readonly ConcurrentDictionary<int, OutputTail> _restoredOutput = new();
    private readonly ConcurrentQueue<int> _restoredOrder = new();

    /// <param name="netNsPath">Network namespace to start the program in (e.g. <c>/run/netns/NAME</c>), entered with
    /// nsenter so the mount namespace stays the caller's. Null: the caller's own network namespace (the node
    /// already runs inside its node's namespaces).</param>
    public NamespacedLauncher(string? netNsPath = null)
    {
        _netNsPath = netNsPath;
    }

    /// <summary>The argv that is executed for <paramref name="command"/>.</summary>
    public IReadOnlyList<string> BuildArgv(IReadOnlyList<string> command)
    {
        if (command.Count == 0)
            throw new ArgumentException("The command to launch is empty.", nameof(command));
        var argv = new List<string>();
        if (_netNsPath is not null)
            argv.AddRange(["nsenter", $"--net={_netNsPath}"]);
        // No --kill-child: it sets PR_SET_PDEATHSIG, which CRIU would restore, killing the restored program as soon
        // as criu restore exits.
        argv.AddRange(["unshare", "--pid", "--fork", "setsid",
            "bash", "-c", Wrapper, WrapperName]);
        argv.AddRange(command);
        return argv;
    }

    public ProtectedProcess Launch(IReadOnlyList<string> command, Action<string> output)
    {
        if (_netNsPath is not null && !File.Exists(_netNsPath))
            throw new InvalidOperationException(
                $"Network namespace {_netNsPath} does not exist: create it first (ip netns add NAME).");

        var argv = BuildArgv(command);
        var psi = new ProcessStartInfo(argv[0])
        {
            UseShellExecute = false,
            // Redirected and closed at once so that nothing in the chain ever reads the node's own stdin.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in argv.Skip(1))
            psi.ArgumentList.Add(a);

        var launcher = new System.Diagnostics.Process { StartInfo = psi };
        var tail = new OutputTail();
        launcher.OutputDataReceived += (_, e) => { if (e.Data is not null) { tail.Add(e.Data); output(e.Data); } };
        // unshare/nsenter/setsid report their own failures on stderr; the program's stderr is merged into stdout.
        launcher.ErrorDataReceived += (_, e) => { if (e.Data is not null) { tail.Add(e.Data); output(e.Data); } };
        try
        {
            launcher.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"Cannot start {argv[0]}: {e.Message}. It comes with util-linux: run deploy/install-deps.sh.", e);
        }
        var startedAt = DateTimeOffset.UtcNow;
        launcher.StandardInput.Close();
        launcher.BeginOutputReadLine();
        launcher.BeginErrorReadLine();

        int pid;
        try
        {
            pid = WaitForInit(launcher, command[0]);
        }
        catch (StartFailed f)
        {
            // Wait for the exit status and the last lines: they are the only explanation the user gets.
            var exit = EndedAt(launcher, tail, TimeSpan.FromSeconds(2));
            TryKill(launcher);
            launcher.Dispose();
            throw f.Describe(command[0], exit);
        }
        catch
        {
            TryKill(launcher);
            launcher.Dispose();
            throw;
        }
        _exits.TryRemove(pid, out _);
        _restoredOutput.TryRemove(pid, out _);
        _launchers[pid] = launcher;
        launcher.EnableRaisingEvents = true;
        launcher.Exited += async (_, _) =>
        {
            try
            {
                // unshare --fork exits with the program's status (see ExitFrom for a program killed by SIGKILL). The
                // wait lets the last lines arrive: the output is read on other threads.
                using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
                {
                    try { await launcher.WaitForExitAsync(cts.Token).ConfigureAwait(false); }
                    catch (OperationCanceledException) { }
                }
                Remember(_exits, _exitOrder, pid, ExitFrom(launcher, tail));
            }
            catch (Exception)
            {
                // An event handler must not bring the node down; ExitOf then says the status is unknown.
            }
            if (_launchers.TryRemove(new KeyValuePair<int, System.Diagnostics.Process>(pid, launcher)))
                launcher.Dispose();
        };
        return new ProtectedProcess(pid, startedAt);
    }

    /// <inheritdoc />
    /// <remarks>For a program started by <see cref="Launch"/>: its exit status and last lines. For a restored program
    /// whose output was passed to <see cref="NoteOutput"/>: its last lines, the status being unknown (criu restores it
    /// detached: it is no child of the node).</remarks>
    public ProgramExit? ExitOf(int pid)
    {
        if (_exits.TryGetValue(pid, out var exit)) return exit;
        if (_restoredOutput.TryGetValue(pid, out var tail) && !ProcessNative.IsAlive(pid))
            return new ProgramExit(null, tail.Lines);
        return null;
    }

    /// <summary>Records a line a restored program wrote (its output reaches the node through criu, not through
    /// <see cref="Launch"/>), so that <see cref="ExitOf"/> can tell its last lines.</summary>
    public void NoteOutput(int pid, string line)
    {
        if (pid <= 0) return;
        if (!_restoredOutput.TryGetValue(pid, out var tail))
        {
            tail = new OutputTail();
            Remember(_restoredOutput, _restoredOrder, pid, tail);
        }
        tail.Add(line);
    }

    private static void Remember<T>(ConcurrentDictionary<int, T> map, ConcurrentQueue<int> order, int pid, T value)
    {
        map[pid] = value;
        order.Enqueue(pid);
        while (order.Count > Remembered && order.TryDequeue(out var old))
            if (!order.Contains(old)) map.TryRemove(old, out _);
    }

    private static int? SafeExitCode(System.Diagnostics.Process p)
    {
        try { return p.HasExited ? p.ExitCode : null; }
        catch (InvalidOperationException) { return null; }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the launcher to end and its output to drain.</summary>
    private static ProgramExit EndedAt(System.Diagnostics.Process launcher, OutputTail tail, TimeSpan timeout)
    {
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            launcher.WaitForExitAsync(cts.Token).Wait(timeout + TimeSpan.FromMilliseconds(100));
        }
        catch (AggregateException) { }
        catch (OperationCanceledException) { }
        return ExitFrom(launcher, tail);
    }

    /// <summary>unshare's line when its child was killed by SIGKILL: it tries to re-raise the signal, cannot reset
    /// SIGKILL's handler, and exits 1 with this complaint instead.</summary>
    private const string UnshareSigkill = "unshare: sigprocmask unblock failed";

    private static ProgramExit ExitFrom(System.Diagnostics.Process launcher, OutputTail tail)
    {
        var code = SafeExitCode(launcher);
        var lines = tail.Lines;
        if (code == 1 && lines.Any(l => l.StartsWith(UnshareSigkill, StringComparison.Ordinal)))
            return new ProgramExit(128 + ProcessNative.SIGKILL, lines.Where(l => !l.StartsWith(UnshareSigkill, StringComparison.Ordinal)).ToArray());
        return new ProgramExit(code, lines);
    }

    /// <summary>The last <see cref="TailLines"/> lines of a program's output.</summary>
    private sealed class OutputTail
    {
        private readonly Queue<string> _lines = new();

        public void Add(string line)
        {
            lock (_lines)
            {
                _lines.Enqueue(line);
                while (_lines.Count > TailLines) _lines.Dequeue();
            }
        }

        public IReadOnlyList<string> Lines
        {
            get { lock (_lines) return _lines.ToArray(); }
        }
    }

    /// <summary>The program never ran, or stopped before it could be seen running.</summary>
    private sealed class StartFailed(string program) : Exception(program)
    {
        public InvalidOperationException Describe(string program, ProgramExit exit)
        {
            var unshareFailed = exit.LastOutput.Any(l => l.StartsWith("unshare:", StringComparison.Ordinal)
                || l.StartsWith("nsenter:", StringComparison.Ordinal) || l.StartsWith("setsid:", StringComparison.Ordinal));
            var hint = unshareFailed
                ? "The launcher itself failed: unshare --pid needs root or CAP_SYS_ADMIN, and util-linux (run deploy/install-deps.sh)."
                : exit.ExitCode switch
                {
                    127 => $"{program} (or the interpreter on its #! line) was not found on this node: install it or fix the path.",
                    126 => $"{program} cannot be executed: check its execute bits and its #! line.",
                    _ => "A protected program must stay in the foreground (a daemon that forks away ends its pid namespace); " +
                         "run the command by hand to see why it stops.",
                };
            return new InvalidOperationException(
                $"{program} {exit.Status} right after start; {exit.Output}. {hint}");
        }
    }

    /// <summary>
    /// The program is the child that <c>unshare --fork</c> made (nsenter execs, it does not fork for a network
    /// namespace). Waits until that child has exec'd the program itself, so that a dump taken right after
    /// <see cref="Launch"/> sees the program and not the wrapper.
    /// </summary>
    private static int WaitForInit(System.Diagnostics.Process launcher, string program)
    {
        var unsharePid = launcher.Id;
        var deadline = Stopwatch.StartNew();
        int child = 0;
        while (deadline.Elapsed < StartTimeout)
        {
            if (child == 0)
            {
                var children = ReadOrNull($"/proc/{unsharePid}/task/{unsharePid}/children")?
                    .Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (children is { Length: > 0 })
                    child = int.Parse(children[0]);
            }
            if (child != 0)
            {
                var cmdline = ReadOrNull($"/proc/{child}/cmdline");
                // A zombie: the exec failed or the program quit at once (a daemon that forks and exits takes its
                // whole pid namespace with it: protected programs must stay in the foreground). An empty cmdline
                // alone means nothing: it reads empty while an exec is under way.
                if (cmdline is null || !ProcessNative.IsAlive(child))
                    throw new StartFailed(program);
                // Past the wrapper chain (forked unshare, setsid, bash): not matched by the program's name, because
                // the program may already have exec'd something else by the time we look.
                var args = cmdline.Split('\0');
                if (args[0].Length > 0 && args[0] is not ("unshare" or "setsid" or "nsenter") && !args.Contains(WrapperName))
                    return child;
            }
            if (launcher.HasExited)
                throw new StartFailed(program);
            Thread.Sleep(5);
        }
        throw new TimeoutException(
            $"{program} did not start within {StartTimeout.TotalSeconds} s as init of a new pid namespace " +
            $"(unshare pid {unsharePid}, child {child}).");
    }

    private static string? ReadOrNull(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    public bool IsAlive(int pid) => ProcessNative.IsAlive(pid);

    public string? Identity(int pid) => ProcessNative.IsAlive(pid) ? ProcessNative.Identity(pid) : null;

    /// <summary>SIGKILL to the init of the program's pid namespace: the kernel then kills every process in it.</summary>
    public void Kill(int pid)
    {
        if (pid <= 1)
            throw new ArgumentOutOfRangeException(nameof(pid), pid, "Refusing to signal pid <= 1.");
        if (ProcessNative.Kill(pid, ProcessNative.SIGKILL) != 0)
        {
            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno != ProcessNative.ESRCH)
                throw new InvalidOperationException($"kill -9 {pid} failed with errno {errno}.");
        }
    }

    private static void TryKill(System.Diagnostics.Process p)
    {
        try
        {
            p.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }
}
