using System.Diagnostics;

namespace Continuity.Linux.Native;

/// <summary>Result of one command run by <see cref="Shell"/>.</summary>
internal readonly record struct CommandResult(int ExitCode, string StdOut, string StdErr)
{
    public bool Ok => ExitCode == 0;
}

/// <summary>
/// Runs ip/iptables/sysctl. The child inherits the calling thread's network namespace, which is what
/// lets the adapters work inside <see cref="Namespaces.NetNs.RunIn(string, Action)"/>.
/// </summary>
internal static class Shell
{
    public static CommandResult Run(string file, params string[] args)
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
            var stderrTask = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return new CommandResult(process.ExitCode, stdout, stderrTask.Result);
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
}
