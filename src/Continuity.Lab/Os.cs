using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Continuity.Lab;

/// <summary>The result of one finished OS command.</summary>
internal sealed record CommandResult(string CommandLine, int ExitCode, string Stdout, string Stderr)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>
/// Every OS command the lab runs goes through here, so that tests and error messages see one
/// consistent picture (which command, which exit code, what it said).
/// </summary>
internal static class Os
{
    /// <summary>Tools the lab cannot work without.</summary>
    public static readonly string[] RequiredTools = ["ip", "nsenter", "unshare", "iptables", "setsid", "bash"];

    [DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    private static extern int sys_kill(int pid, int sig);

    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;

    public static bool IsRoot => geteuid() == 0;

    /// <summary>Sends a signal; true if it was delivered (the process existed).</summary>
    public static bool Kill(int pid, int signal) => pid > 1 && sys_kill(pid, signal) == 0;

    public static string? FindOnPath(string tool)
    {
        // sbin is not on every PATH (sudo, cron, test runners), but ip and iptables live there.
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"]);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, tool);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Runs a command to completion and captures its output.</summary>
    public static CommandResult Run(string file, params string[] args) => Run(file, (IEnumerable<string>)args);

    public static CommandResult Run(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(Resolve(file))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var commandLine = Describe(file, psi.ArgumentList);

        using var p = Process.Start(psi) ?? throw new LabException($"could not start {commandLine}");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromSeconds(30)))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new LabException($"{commandLine} did not finish within {(timeout ?? TimeSpan.FromSeconds(30)).TotalSeconds:0} s");
        }
        p.WaitForExit();
        return new CommandResult(commandLine, p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs a command that must succeed; a failure becomes a LabException naming the command.</summary>
    public static string RunChecked(string file, params string[] args)
    {
        var r = Run(file, args);
        if (!r.Succeeded)
            throw new LabException($"'{r.CommandLine}' failed (exit {r.ExitCode}): {r.Stderr.Trim()}");
        return r.Stdout;
    }

    /// <summary>Runs a command with the caller's stdin/stdout/stderr, returning its exit code.</summary>
    public static int RunInteractive(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(Resolve(file)) { UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new LabException($"could not start {file}");
        p.WaitForExit();
        return p.ExitCode;
    }

    /// <summary>
    /// Starts a process that outlives the lab command: it becomes a session leader (setsid) so a
    /// terminal hang-up or the end of the calling shell does not take it down.
    /// </summary>
    public static int StartDetached(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(Resolve("setsid")) { UseShellExecute = false };
        psi.ArgumentList.Add(Resolve(file));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new LabException($"could not start {file}");
        return p.Id;
    }

    private static string Resolve(string file) =>
        file.Contains('/') ? file : FindOnPath(file) ?? file;

    public static string Describe(string file, IEnumerable<string> args) =>
        string.Join(' ', new[] { file }.Concat(args).Select(ShellQuoteIfNeeded));

    /// <summary>Quotes a word for sh so that any path survives a generated script.</summary>
    public static string ShellQuote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    private static string ShellQuoteIfNeeded(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./=:,@+%".Contains(c)) ? s : ShellQuote(s);

    /// <summary>Process start time in clock ticks since boot (field 22 of /proc/PID/stat), or null if gone.</summary>
    public static long? ProcessStartTime(int pid)
    {
        var stat = ReadStat(pid);
        if (stat is null) return null;
        return long.TryParse(stat.Value.Fields[19], out var t) ? t : null;
    }

    /// <summary>The state letter of /proc/PID/stat ('T' for stopped), or null if gone.</summary>
    public static char? State(int pid) => ReadStat(pid)?.State;

    /// <summary>True if the process exists, is not a zombie and (when known) is the one started at <paramref name="startTime"/>.</summary>
    public static bool IsAlive(int pid, long? startTime)
    {
        if (pid <= 0) return false;
        var stat = ReadStat(pid);
        if (stat is null || stat.Value.State == 'Z' || stat.Value.State == 'X') return false;
        // A recycled pid must not pass for the node we started.
        return startTime is null || stat.Value.Fields[19] == startTime.Value.ToString();
    }

    /// <summary>The pid and every descendant, from /proc (children first walked breadth-first).</summary>
    public static IReadOnlyList<int> ProcessTree(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            var stat = ReadStat(pid);
            if (stat is null || !int.TryParse(stat.Value.Fields[1], out var ppid)) continue;
            if (!children.TryGetValue(ppid, out var list)) children[ppid] = list = [];
            list.Add(pid);
        }
        var result = new List<int>();
        if (!Directory.Exists($"/proc/{root}")) return result;
        var queue = new Queue<int>([root]);
        while (queue.Count > 0)
        {
            var pid = queue.Dequeue();
            result.Add(pid);
            if (children.TryGetValue(pid, out var kids)) foreach (var k in kids) queue.Enqueue(k);
        }
        return result;
    }

    // Fields after the command name, which may itself contain spaces and parentheses.
    private static (char State, string[] Fields)? ReadStat(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        var close = text.LastIndexOf(')');
        if (close < 0) return null;
        var fields = text[(close + 2)..].Split(' ');
        // fields[0] is the state (field 3); field 22 (starttime) is fields[19].
        return fields.Length > 19 ? (fields[0][0], fields) : null;
    }
}

/// <summary>A failure the user can act on; the message names the problem and the fix.</summary>
internal sealed class LabException(string message) : Exception(message);
