using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Continuity.Core.Platform;
using Continuity.Linux.Native;
using Continuity.Linux.Processes;
using Microsoft.Win32.SafeHandles;

namespace Continuity.Linux.Criu;

/// <summary>Settings of <see cref="CriuCheckpointer"/>.</summary>
public sealed record CriuOptions
{
    public string CriuPath { get; init; } = "criu";

    /// <summary>Network namespace to run criu in (<c>/run/netns/NAME</c>, entered with nsenter). Null: criu runs where
    /// the node runs, which is where the program runs. criu must share the program's network namespace: in another
    /// one it dumps that namespace whole and a restore would create a new one.</summary>
    public string? NetNsPath { get; init; }

    /// <summary>How long the program stays frozen at most, waiting for <c>whileFrozen</c>. After that the action
    /// script lets it run again (a hung node must not hang the protected program) and the dump fails.</summary>
    public TimeSpan WhileFrozenTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How criu locks the program's TCP connections during a dump. "skip": the capture already holds every
    /// inbound packet of the application in its queue from the mark to the end of the dump, and the frozen program
    /// sends nothing new, so the connections cannot move while criu reads them. criu's own locks ("nftables", and
    /// "iptables", which also failed on restore on the lab machines) add a netfilter table and delete it afterwards,
    /// and the kernel drops every packet held in every NFQUEUE of the namespace whenever hooks are unregistered
    /// (nf_queue_nf_hook_drop): each dump silently discarded what every application on the node was holding.</summary>
    public string NetworkLock { get; init; } = "skip";

    /// <summary>criu -v level (0-4); null leaves criu's default (errors and warnings).</summary>
    public int? LogLevel { get; init; }

    /// <summary>Checks criu (present, version, <c>criu check</c>) once before the first dump or restore.</summary>
    public bool ProbeFirst { get; init; } = true;

    /// <summary>On restore, moves each TCP connection's timestamp clock forward by the time since the dump. criu
    /// restores it as it was at the dump, behind what the dead primary sent its clients since; their PAWS check
    /// (RFC 7323) then drops every segment of the restored program until its clock catches up: a stall as long as
    /// the time from the checkpoint to the crash.</summary>
    public bool AdvanceTcpTimestamps { get; init; } = true;
}

/// <summary>
/// Checkpoint and restore with the criu command.
/// <para>Dump: <c>criu dump -t PID -D DIR -o dump.log --tcp-established --leave-running --network-lock skip
/// --action-script S</c>. S reports pre-dump and post-dump through a FIFO; at post-dump (all tasks still frozen)
/// the node runs <c>whileFrozen</c> and answers through a second FIFO, then criu resumes the program.</para>
/// <para>Restore: <c>criu restore -D DIR -o restore.log --tcp-established --restore-detached --pidfile restore.pid --network-lock skip
/// --inherit-fd fd[1]:pipe:[INODE]</c>. The program's stdout pipe (recorded at dump time) is replaced by criu's own
/// stdout, a fresh pipe this node reads: the restored program's output reaches the node, and its writes never
/// hit a pipe without a reader.</para>
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CriuCheckpointer : ICheckpointer
{
    /// <summary>Written next to the images: which pipe each of the program's stdio fds was, for --inherit-fd.</summary>
    public const string StdioFile = "continuity-stdio";

    private readonly CriuOptions _options;
    private readonly Action<int, string> _restoredOutput;
    /// <summary>Successful probes per criu path: criu check takes from 0.1 s to tens of seconds on a loaded machine,
    /// and a working criu stays working. Failures are not kept, so installing criu fixes a running node.</summary>
    private static readonly ConcurrentDictionary<string, CriuProbeResult> UsableCriu = new();
    private readonly ConcurrentDictionary<int, System.Diagnostics.Process> _restorers = new();

    /// <param name="options">Settings; null for the defaults.</param>
    /// <param name="restoredOutput">Receives (restored pid, line) for every line a restored program writes to
    /// stdout/stderr. Launched programs report through <see cref="IProcessLauncher.Launch"/> instead.</param>
    public CriuCheckpointer(CriuOptions? options = null, Action<int, string>? restoredOutput = null)
    {
        _options = options ?? new CriuOptions();
        _restoredOutput = restoredOutput ?? ((_, _) => { });
    }

    /// <inheritdoc />
    /// <remarks><paramref name="whileFrozen"/> runs on a thread of its own, not the caller's, at criu's post-dump
    /// step; the program resumes when it returns or after <see cref="CriuOptions.WhileFrozenTimeout"/>.
    /// <paramref name="ct"/> is honoured until criu starts: stopping criu half way could leave the program
    /// stopped.</remarks>
    public async Task<CheckpointImage> DumpAsync(int pid, string imageDir, Action whileFrozen, CancellationToken ct)
    {
        using var turn = await WaitForDumpTurnAsync(pid, ct);
        return await turn.DumpAsync(imageDir, whileFrozen, ct);
    }

    /// <inheritdoc />
    /// <remarks>One dump at a time per working directory (see <see cref="DumpGate"/>), across the machine's processes:
    /// the turn holds the directory's gate. A program whose working directory cannot be read gets its turn at once
    /// (criu will say what is wrong with it).</remarks>
    public async Task<IDumpTurn> WaitForDumpTurnAsync(int pid, CancellationToken ct)
    {
        var workingDirectory = WorkingDirectoryOf(pid);
        var gate = workingDirectory is null ? null : await DumpGate.EnterAsync(workingDirectory, ct);
        return new DumpTurn(this, pid, workingDirectory, gate);
    }

    private sealed class DumpTurn(CriuCheckpointer criu, int pid, string? workingDirectory, DumpGate? gate) : IDumpTurn
    {
        public Task<CheckpointImage> DumpAsync(string imageDir, Action whileFrozen, CancellationToken ct) =>
            criu.DumpInTurnAsync(pid, workingDirectory, imageDir, whileFrozen, ct);

        public void Dispose() => gate?.Dispose();
    }

    private async Task<CheckpointImage> DumpInTurnAsync(int pid, string? workingDirectory, string imageDir, Action whileFrozen,
        CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        EnsureCriu();
        if (!ProcessNative.IsAlive(pid))
            throw new CheckpointException(
                $"Cannot dump pid {pid}: no such process (it exited, or the pid is not from this node's root pid " +
                "namespace). Dump the pid that IProcessLauncher.Launch or RestoreAsync returned.");

        Directory.CreateDirectory(imageDir);
        RemoveStaleImages(imageDir);
        // Taken before criu reads the timestamps, so the advance on restore is never short.
        TcpTimestamps.RecordDumpTime(imageDir);
        RecordStdio(pid, imageDir);
        var control = (DirectoryInfo?)null;
        try
        {
            if (workingDirectory is not null) RemoveStaleProcMountpoint(pid, workingDirectory);
            control = Directory.CreateTempSubdirectory("continuity-criu-");
            var notifyPath = Path.Combine(control.FullName, "notify");
            var resumePath = Path.Combine(control.FullName, "resume");
            var scriptPath = Path.Combine(control.FullName, "action.sh");
            MakeFifo(notifyPath);
            MakeFifo(resumePath);
            await File.WriteAllTextAsync(scriptPath, ActionScript(notifyPath, resumePath), CancellationToken.None);
            File.SetUnixFileMode(scriptPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

            // Both FIFOs are opened read-write: such an open never blocks, and the data stays buffered while we hold
            // an end, whichever side comes first.
            using var notifyRead = OpenFifo(notifyPath);
            using var notifyWrite = OpenFifo(notifyPath);
            using var resume = OpenFifo(resumePath);

            var args = new List<string>
            {
                "dump", "-t", pid.ToString(CultureInfo.InvariantCulture), "-D", imageDir, "-o", "dump.log",
                "--tcp-established", "--leave-running", "--network-lock", _options.NetworkLock,
                "--action-script", scriptPath,
            };
            AddLogLevel(args);

            var frozen = new FrozenPhase(notifyRead, resume, whileFrozen);
            var watcher = new Thread(frozen.Run) { IsBackground = true, Name = $"criu-dump-{pid}" };
            watcher.Start();

            var total = Stopwatch.StartNew();
            var (rc, stderr) = await RunCriuAsync(args, onStdout: null);
            total.Stop();
            frozen.CriuExited(notifyWrite);
            watcher.Join();

            if (rc != 0)
                throw Failure($"criu dump of pid {pid} failed (exit {rc})", Path.Combine(imageDir, "dump.log"), stderr,
                    frozen.Error);
            if (frozen.Error is not null)
                throw new CheckpointException(
                    $"The dump of pid {pid} succeeded but whileFrozen failed: {frozen.Error.Message}. The checkpoint " +
                    $"in {imageDir} must not be used (the files copied with it may not match).", frozen.Error);
            if (!frozen.SawPostDump)
                throw new CheckpointException(
                    $"criu dump of pid {pid} never ran the post-dump action script, so whileFrozen did not run while " +
                    "the program was frozen. Check that the action script in the temp directory may be executed " +
                    "(a noexec /tmp?).");
            if (frozen.WhileFrozenTime > _options.WhileFrozenTimeout)
                throw new CheckpointException(
                    $"whileFrozen took {frozen.WhileFrozenTime.TotalSeconds:F1} s, longer than WhileFrozenTimeout " +
                    $"({_options.WhileFrozenTimeout.TotalSeconds} s): the program resumed before it finished, so the " +
                    $"checkpoint in {imageDir} must not be used.");

            var freeze = ReadFrozenTime(imageDir) ?? frozen.MeasuredFreeze ?? total.Elapsed;
            return new CheckpointImage(imageDir, ImageBytes(imageDir), freeze, total.Elapsed);
        }
        finally
        {
            try
            {
                control?.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// One dump at a time per working directory, across the processes of the machine: CRIU's parasite needs
    /// <see cref="ProcMountpoint"/> there to itself, and programs often share one (those of several applications on a
    /// node inherit the node's; the lab's nodes share a host). Two dumps at once collided ("Can't create a directory
    /// (-17)"), and the removal of a leftover could take a live one from the other. An flock on a file named after the
    /// directory (in /run/lock, not in the program's directory); the kernel drops it if the node dies mid-dump.
    /// </summary>
    private sealed class DumpGate : IDisposable
    {
        private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(10);
        private readonly FileStream _lock;

        private DumpGate(FileStream lockFile) => _lock = lockFile;

        public static async Task<DumpGate> EnterAsync(string workingDirectory, CancellationToken ct)
        {
            var name = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(workingDirectory)))[..16];
            var dir = Directory.Exists("/run/lock") ? "/run/lock" : Path.GetTempPath();
            var path = Path.Combine(dir, $"continuity-criu-dump-{name}.lock");
            var waited = Stopwatch.StartNew();
            while (true)
            {
                // FileShare.None is an exclusive flock on Linux; it fails at once rather than waits while another holds it.
                try { return new DumpGate(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None)); }
                catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException))
                {
                    if (waited.Elapsed > MaxWait)
                        throw new CheckpointException($"Another dump of a program working in {workingDirectory} has held " +
                            $"{path} for {MaxWait.TotalSeconds:0} s: a criu that hangs? (see `ps -C criu`, `fuser {path}`)", e);
                    await Task.Delay(Poll, ct);
                }
            }
        }

        private static readonly TimeSpan MaxWait = TimeSpan.FromMinutes(2);

        public void Dispose() => _lock.Dispose();
    }

    private static string? WorkingDirectoryOf(int pid)
    {
        try { return new FileInfo($"/proc/{pid}/cwd").LinkTarget is { Length: > 0 } cwd ? cwd : null; }
        catch (IOException) { return null; } // gone: criu will say so
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <inheritdoc />
    /// <remarks>Needs the program's addresses (the VIP) and a route to its clients in this network namespace
    /// before it runs: criu reconnects each TCP socket in repair mode. <paramref name="ct"/> is honoured until
    /// criu starts.</remarks>
    public Task<int> RestoreAsync(string imageDir, CancellationToken ct) =>
        RestoreAsync(imageDir, TcpRestore.Established, ct);

    /// <inheritdoc />
    /// <remarks><see cref="TcpRestore.Closed"/> is criu's <c>--tcp-close</c>: the sockets come back closed, so the
    /// program sees its connections fail instead of waiting on peers whose bytes were never replayed.</remarks>
    public async Task<int> RestoreAsync(string imageDir, TcpRestore tcp, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        EnsureCriu();
        if (!File.Exists(Path.Combine(imageDir, "inventory.img")))
            throw new CheckpointException(
                $"{imageDir} holds no CRIU checkpoint (inventory.img is missing): was the dump copied completely?");

        var pidFile = Path.Combine(imageDir, "restore.pid");
        File.Delete(pidFile);
        var args = new List<string>
        {
            "restore", "-D", imageDir, "-o", "restore.log",
            tcp == TcpRestore.Closed ? "--tcp-close" : "--tcp-established", "--restore-detached",
            "--pidfile", "restore.pid",
            // The switch blocks inbound traffic to the VIP until the replay is over: criu's lock would add nothing but
            // the flush of every other application's held packets on this node when it removes its table.
            "--network-lock", _options.NetworkLock,
        };
        if (_options.AdvanceTcpTimestamps && tcp == TcpRestore.Established)
            TcpTimestamps.AdvanceSinceDump(imageDir);
        var stdio = ReadStdio(imageDir);
        // criu's stdout (and stderr when the program's stderr was another pipe) stand in for the program's pipes.
        if (stdio.TryGetValue(1, out var outPipe))
            args.AddRange(["--inherit-fd", $"fd[1]:{outPipe}"]);
        var errSeparate = stdio.TryGetValue(2, out var errPipe) && errPipe != outPipe;
        if (errSeparate)
            args.AddRange(["--inherit-fd", $"fd[2]:{errPipe}"]);
        AddLogLevel(args);

        var restoredPid = 0;
        var total = Stopwatch.StartNew();
        var (rc, stderr) = await RunCriuAsync(args, onStdout: line => _restoredOutput(Volatile.Read(ref restoredPid), line),
            keepAlive: true, errIsProgram: errSeparate);
        total.Stop();
        if (rc != 0)
            throw Failure($"criu restore from {imageDir} failed (exit {rc})", Path.Combine(imageDir, "restore.log"),
                stderr, null);
        if (!File.Exists(pidFile) || !int.TryParse((await File.ReadAllTextAsync(pidFile, CancellationToken.None)).Trim(), out var pid))
            throw new CheckpointException(
                $"criu restore from {imageDir} reported success but wrote no pid to {pidFile}.");
        Volatile.Write(ref restoredPid, pid);
        return pid;
    }

    private void EnsureCriu()
    {
        if (!_options.ProbeFirst)
            return;
        if (UsableCriu.ContainsKey(_options.CriuPath))
            return;
        var probe = CriuProbe.Probe(_options.CriuPath);
        if (!probe.Usable)
            throw new CheckpointException(probe.Diagnostic);
        UsableCriu[_options.CriuPath] = probe;
    }

    private void AddLogLevel(List<string> args)
    {
        if (_options.LogLevel is { } level)
            args.Add($"-v{level}");
    }

    private static void RemoveStaleImages(string dir)
    {
        // A leftover tcp-stream or pages image from an earlier dump into the same directory would be counted and
        // shipped with this one.
        foreach (var f in Directory.EnumerateFiles(dir))
        {
            var name = Path.GetFileName(f);
            if (name.EndsWith(".img", StringComparison.Ordinal) || name.StartsWith("stats-", StringComparison.Ordinal) ||
                name.EndsWith(".log", StringComparison.Ordinal) || name is StdioFile or "restore.pid" or TcpTimestamps.DumpTimeFile)
                File.Delete(f);
        }
    }

    /// <summary>
    /// CRIU's parasite mounts a /proc of the program's own pid namespace at <c>proc.crtools</c> in the program's working
    /// directory (the node's /proc belongs to another one) and removes it before it leaves. A dump killed halfway (its
    /// node crashed or its node process was killed) leaves the directory, and every later dump of a program working there
    /// fails ("Can't create a directory (-17)", "Can't get /proc fd"): on the chaos lab, whose programs all work in one
    /// directory, an application stayed unprotected from then on. Only CRIU uses the name; the leftover is removed, its
    /// mount first if the parasite died before detaching it. Called inside the directory's <see cref="DumpGate"/>, so
    /// what it finds there is never a dump under way.
    /// </summary>
    private static void RemoveStaleProcMountpoint(int pid, string workingDirectory)
    {
        var stale = Path.Combine(workingDirectory, ProcMountpoint);
        if (!Directory.Exists(stale)) return;
        try { Directory.Delete(stale, recursive: false); }
        catch (IOException)
        {
            Shell.Run("umount", "--lazy", stale);
            try { Directory.Delete(stale, recursive: false); }
            catch (IOException e)
            {
                throw new CheckpointException(
                    $"Cannot dump pid {pid}: {stale}, left by an earlier dump that was interrupted, cannot be removed " +
                    $"({e.Message}); CRIU needs that name free in the program's working directory. Remove it by hand.", e);
            }
        }
    }

    /// <summary>Where CRIU's parasite mounts /proc, relative to the dumped program's working directory.</summary>
    internal const string ProcMountpoint = "proc.crtools";

    private static void RecordStdio(int pid, string dir)
    {
        var sb = new StringBuilder();
        for (var fd = 0; fd <= 2; fd++)
        {
            try
            {
                var target = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget;
                if (target is not null && target.StartsWith("pipe:[", StringComparison.Ordinal))
                    sb.Append(fd).Append(' ').Append(target).Append('\n');
            }
            catch (IOException)
            {
            }
        }
        File.WriteAllText(Path.Combine(dir, StdioFile), sb.ToString());
    }

    private static Dictionary<int, string> ReadStdio(string dir)
    {
        var result = new Dictionary<int, string>();
        var path = Path.Combine(dir, StdioFile);
        if (!File.Exists(path))
            return result;
        foreach (var line in File.ReadAllLines(path))
        {
            var parts = line.Split(' ', 2);
            if (parts.Length == 2 && int.TryParse(parts[0], out var fd))
                result[fd] = parts[1];
        }
        return result;
    }

    private static long ImageBytes(string dir) =>
        Directory.EnumerateFiles(dir)
            .Where(f => !f.EndsWith(".log", StringComparison.Ordinal) && !f.EndsWith(".pid", StringComparison.Ordinal))
            .Sum(f => new FileInfo(f).Length);

    /// <summary>
    /// frozen_time from criu's stats-dump image: the time from freezing to resuming the tasks, as criu measured it.
    /// The image is 8 magic bytes, a 32-bit length, then StatsEntry { DumpStatsEntry dump = 1 { uint32
    /// freezing_time = 1; uint32 frozen_time = 2; ... } } in microseconds.
    /// </summary>
    internal static TimeSpan? ReadFrozenTime(string dir)
    {
        try
        {
            var b = File.ReadAllBytes(Path.Combine(dir, "stats-dump"));
            if (b.Length < 12)
                return null;
            var len = BitConverter.ToInt32(b, 8);
            var end = Math.Min(b.Length, 12 + len);
            var i = 12;
            if (i >= end || b[i++] != 0x0a)
                return null;
            var inner = (int)ReadVarint(b, ref i);
            var innerEnd = Math.Min(end, i + inner);
            while (i < innerEnd)
            {
                var key = ReadVarint(b, ref i);
                if ((key & 7) != 0)
                    return null; // only varints precede frozen_time; anything else means a layout we do not know
                var value = ReadVarint(b, ref i);
                if (key >> 3 == 2)
                    return TimeSpan.FromMicroseconds(value);
            }
            return null;
        }
        catch (Exception e) when (e is IOException or IndexOutOfRangeException or ArgumentException)
        {
            return null;
        }
    }

    private static ulong ReadVarint(byte[] b, ref int i)
    {
        ulong v = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var x = b[i++];
            v |= (ulong)(x & 0x7f) << shift;
            if ((x & 0x80) == 0)
                break;
        }
        return v;
    }

    private string ActionScript(string notify, string resume)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(_options.WhileFrozenTimeout.TotalSeconds));
        return $"""
            #!/bin/bash
            # criu action script written by Continuity for one dump. It tells the node when the dump starts and, at
            # post-dump (the program is still frozen), waits for the node to finish whileFrozen. It always exits 0:
            # a failure is reported by the node, and a non-zero exit could keep the program from resuming.
            case "$CRTOOLS_SCRIPT_ACTION" in
                pre-dump|post-dump) ;;
                *) exit 0 ;;
            esac
            exec 3<>'{notify}' || exit 0
            echo "$CRTOOLS_SCRIPT_ACTION" >&3
            [ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0
            exec 4<>'{resume}' || exit 0
            read -r -t {seconds} -u 4 answer || echo "continuity: no answer from the node within {seconds} s, resuming the program" >&2
            exit 0

            """;
    }

    /// <summary>The node's side of the action script's FIFOs, run on its own thread during the dump.</summary>
    private sealed class FrozenPhase(FileStream notify, FileStream resume, Action whileFrozen)
    {
        private const string Sentinel = "criu-exited";
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private TimeSpan? _preDump;

        public bool SawPostDump { get; private set; }
        public Exception? Error { get; private set; }
        public TimeSpan WhileFrozenTime { get; private set; }
        public TimeSpan? MeasuredFreeze { get; private set; }

        public void Run()
        {
            using var reader = new StreamReader(notify, Encoding.ASCII, false, 64, leaveOpen: true);
            while (reader.ReadLine() is { } line)
            {
                switch (line)
                {
                    case "pre-dump":
                        _preDump = _clock.Elapsed;
                        break;
                    case "post-dump":
                        SawPostDump = true;
                        var started = _clock.Elapsed;
                        try
                        {
                            whileFrozen();
                        }
                        catch (Exception e)
                        {
                            Error = e;
                        }
                        WhileFrozenTime = _clock.Elapsed - started;
                        resume.Write(Encoding.ASCII.GetBytes(Error is null ? "ok\n" : "failed\n"));
                        resume.Flush();
                        if (_preDump is { } p)
                            MeasuredFreeze = _clock.Elapsed - p;
                        break;
                    case Sentinel:
                        return;
                }
            }
        }

        /// <summary>Ends <see cref="Run"/>, which otherwise waits forever when criu failed before post-dump.</summary>
        public void CriuExited(FileStream notifyWrite)
        {
            notifyWrite.Write(Encoding.ASCII.GetBytes(Sentinel + "\n"));
            notifyWrite.Flush();
        }
    }

    private static void MakeFifo(string path)
    {
        if (ProcessNative.MkFifo(path, Convert.ToUInt32("600", 8)) != 0)
            throw new CheckpointException($"mkfifo {path} failed (errno {Marshal.GetLastPInvokeError()}).");
    }

    private static FileStream OpenFifo(string path)
    {
        var fd = ProcessNative.Open(path, ProcessNative.O_RDWR | ProcessNative.O_CLOEXEC);
        if (fd < 0)
            throw new CheckpointException($"open {path} failed (errno {Marshal.GetLastPInvokeError()}).");
        return new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.ReadWrite, bufferSize: 0);
    }

    /// <summary>Runs criu (through nsenter when a network namespace is set) and returns its exit code and stderr.</summary>
    /// <param name="keepAlive">Restore: criu's stdout becomes the restored program's stdout, so the Process object
    /// must live (and keep reading) as long as the program does; it is disposed at end of stream.</param>
    private async Task<(int ExitCode, string Stderr)> RunCriuAsync(List<string> args, Action<string>? onStdout,
        bool keepAlive = false, bool errIsProgram = false)
    {
        var argv = new List<string>();
        if (_options.NetNsPath is not null)
            argv.AddRange(["nsenter", $"--net={_options.NetNsPath}"]);
        argv.Add(_options.CriuPath);
        argv.AddRange(args);

        var psi = new ProcessStartInfo(argv[0])
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in argv.Skip(1))
            psi.ArgumentList.Add(a);

        var p = new System.Diagnostics.Process { StartInfo = psi };
        var stderr = new StringBuilder();
        var stdoutDone = new TaskCompletionSource();
        var stderrDone = new TaskCompletionSource();
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
                stdoutDone.TrySetResult();
            else
                onStdout?.Invoke(e.Data);
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                stderrDone.TrySetResult();
                return;
            }
            lock (stderr)
                stderr.AppendLine(e.Data);
            if (errIsProgram)
                onStdout?.Invoke(e.Data);
        };
        try
        {
            p.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            p.Dispose();
            throw new CheckpointException(
                $"Cannot run {argv[0]}: {e.Message}. Run deploy/install-deps.sh (criu 4.2+ and util-linux).", e);
        }
        p.StandardInput.Close();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();

        // Not cancellable once started: a criu killed in the middle of a dump can leave the program stopped, and one
        // killed in the middle of a restore leaves a half-restored tree. Both take well under a second.
        // WaitForExitAsync would also wait for the end of stdout, which after a restore comes only when the
        // restored program exits.
        while (!p.WaitForExit(0))
            await Task.Delay(10, CancellationToken.None);
        if (!keepAlive)
        {
            await Task.WhenAll(stdoutDone.Task, stderrDone.Task).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None)
                .ContinueWith(_ => { }, TaskScheduler.Default);
            var code = p.ExitCode;
            p.Dispose();
            return (code, Snapshot(stderr));
        }

        var exit = p.ExitCode;
        var key = p.Id;
        _restorers[key] = p;
        _ = Task.WhenAll(stdoutDone.Task, stderrDone.Task).ContinueWith(_ =>
        {
            if (_restorers.TryRemove(key, out var done))
                done.Dispose();
        }, TaskScheduler.Default);
        // criu's stderr ends with criu (unless the program inherited it): wait for its last lines, they explain failures.
        if (!errIsProgram)
            await stderrDone.Task.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None)
                .ContinueWith(_ => { }, TaskScheduler.Default);
        return (exit, Snapshot(stderr));
    }

    private static string Snapshot(StringBuilder sb)
    {
        lock (sb)
            return sb.ToString();
    }

    /// <summary>Builds the exception: what failed, criu's error lines and last log lines, and the fix if known.</summary>
    internal static CheckpointException Failure(string what, string logPath, string stderr, Exception? inner)
    {
        var log = File.Exists(logPath) ? File.ReadAllLines(logPath) : [];
        var all = log.Concat(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)).ToList();
        // Every criu run prints this one without CAP_SYS_RESOURCE; it is harmless and hides the real error.
        static bool Harmless(string l) => l.Contains("RLIMIT_NOFILE", StringComparison.Ordinal);
        var errors = all.Where(l => l.Contains("Error", StringComparison.Ordinal) && !Harmless(l)).Take(12).ToList();
        var tail = log.Where(l => !Harmless(l)).TakeLast(6).Where(l => !errors.Contains(l));
        var fixes = KnownFixes.Where(k => all.Any(l => l.Contains(k.Needle, StringComparison.Ordinal)))
            .Select(k => k.Fix).Distinct().ToList();

        var sb = new StringBuilder(what).Append('.');
        if (fixes.Count > 0)
            sb.Append(" Fix: ").AppendJoin(" Also: ", fixes);
        sb.Append("\ncriu errors:\n  ").AppendJoin("\n  ", errors.Count > 0 ? errors : ["(none logged)"]);
        sb.Append("\nlast log lines (").Append(logPath).Append("):\n  ").AppendJoin("\n  ", tail);
        return new CheckpointException(sb.ToString().TrimEnd(), inner);
    }

    private static readonly (string Needle, string Fix)[] KnownFixes =
    [
        ("No such process", "The process is gone or the pid is not from this pid namespace: dump the pid the launcher returned."),
        ("Can't get rlimit", "The program (or one of its processes) runs as a non-root user, and criu lacks CAP_SYS_RESOURCE here: configure it to keep running as root."),
        ("proper root mount", "The program runs in another mount namespace (started with 'ip netns exec'?): enter only the network namespace (nsenter --net) — use NamespacedLauncher."),
        ("unreachable sharing", "The program runs in another mount namespace (started with 'ip netns exec'?): enter only the network namespace (nsenter --net) — use NamespacedLauncher."),
        ("session leader", "The program's session leader is outside its pid namespace: start it with 'unshare -p -f setsid' (NamespacedLauncher)."),
        ("Can't lookup mount", "The program holds an fd opened in another mount namespace: launch it with only fds 0-2 open."),
        ("has bad size", "A file the program keeps open changed after the dump: copy its files in whileFrozen, while it is frozen."),
        ("kerndat_tcp_repair failed", "criu needs the loopback interface up in the network namespace it runs in: ip link set lo up."),
        ("Can't connect inet socket back", "The restoring node has no route to the connection's addresses: add the VIP (and bring the link up) before restoring."),
        ("Cannot assign requested address", "The restoring node lacks the program's address: add the VIP before restoring."),
        ("Address already in use", "Another process on this node already uses the program's port or pid: stop it before restoring."),
        ("Can't get 1:16 opt", "criu is too old for this kernel: install criu 4.2+ (deploy/install-deps.sh)."),
        ("Iptables configuration failed", "Use --network-lock skip (CriuOptions.NetworkLock, the default): the capture holds the traffic itself."),
    ];
}
