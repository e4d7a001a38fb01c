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

    private readonly string? _netNsPath;
    private readonly ConcurrentDictionary<int, System.Diagnostics.Process> _launchers = new();

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
        launcher.OutputDataReceived += (_, e) => { if (e.Data is not null) output(e.Data); };
        // unshare/nsenter/setsid report their own failures on stderr; the program's stderr is merged into stdout.
        launcher.ErrorDataReceived += (_, e) => { if (e.Data is not null) output(e.Data); };
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
        catch
        {
            TryKill(launcher);
            launcher.Dispose();
            throw;
        }
        _launchers[pid] = launcher;
        launcher.EnableRaisingEvents = true;
        launcher.Exited += (_, _) =>
        {
            if (_launchers.TryRemove(new KeyValuePair<int, System.Diagnostics.Process>(pid, launcher)))
                launcher.Dispose();
        };
        return new ProtectedProcess(pid, startedAt);
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
                    throw new InvalidOperationException(
                        $"{program} exited right after start (pid {child}); its output says why (not found? daemonized " +
                        "instead of staying in the foreground?).");
                // Past the wrapper chain (forked unshare, setsid, bash): not matched by the program's name, because
                // the program may already have exec'd something else by the time we look.
                var args = cmdline.Split('\0');
                if (args[0].Length > 0 && args[0] is not ("unshare" or "setsid" or "nsenter") && !args.Contains(WrapperName))
                    return child;
            }
            if (launcher.HasExited)
                throw new InvalidOperationException(
                    $"Launching {program} failed: unshare exited with code {launcher.ExitCode} (see the output " +
                    "callback; unshare --pid needs root or CAP_SYS_ADMIN).");
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
