using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Continuity.Linux.Tests.Criu;

/// <summary>
/// Real namespaces, the real test server and the real client for the CRIU and launcher tests. Every name starts
/// with ctc- (this worktree's prefix) and every address is in 198.18.0.0/15.
/// </summary>
internal static partial class CriuLab
{
    private static readonly Lazy<string> Built = new(BuildTestServer);

    /// <summary>build/testserver under the repo root, with ct-kv and ct-kv-client freshly built.</summary>
    public static string TestServerDir => Built.Value;

    public static string CtKv => Path.Combine(TestServerDir, "ct-kv");
    public static string CtKvClient => Path.Combine(TestServerDir, "ct-kv-client");
    /// <summary>The benchmark's client: opens all its connections at once (non-blocking connects).</summary>
    public static string CtBench => Path.Combine(TestServerDir, "ct-bench");

    private static string BuildTestServer()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "tests", "testserver", "build.sh")))
            dir = dir.Parent;
        if (dir is null)
            throw new InvalidOperationException("tests/testserver/build.sh not found above " + AppContext.BaseDirectory);
        return Sh(Path.Combine(dir.FullName, "tests", "testserver", "build.sh")).Trim().Split('\n')[^1];
    }

    /// <summary>Runs a shell command; throws with its output when it fails.</summary>
    public static string Sh(string command)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"'{command}' failed (exit {p.ExitCode}): {stdout.Result}{stderr.Result}");
        return stdout.Result;
    }

    public static void RequireRoot()
    {
        if (Environment.UserName != "root" && geteuid() != 0)
            throw new InvalidOperationException("These tests use CRIU and network namespaces: run them as root.");
    }

    [DllImport("libc")]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    public static extern int kill(int pid, int sig);

    public const int SIGINT = 2, SIGKILL = 9, SIGCONT = 18, SIGSTOP = 19;

    /// <summary>A fresh network namespace (any old one of that name is deleted first), deleted on dispose.</summary>
    public sealed class Netns : IDisposable
    {
        public string Name { get; }
        public string Path => "/run/netns/" + Name;

        public Netns(string name)
        {
            RequireRoot();
            Name = name;
            Sh($"ip netns del {name} 2>/dev/null || true; ip netns add {name} && ip -n {name} link set lo up");
        }

        public void Dispose()
        {
            try
            {
                Sh($"ip netns del {Name}");
            }
            catch (InvalidOperationException)
            {
            }
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds; fails the test with <paramref name="what"/> otherwise.</summary>
    public static void Eventually(Func<bool> condition, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds} s waiting for: {what}");
            Thread.Sleep(20);
        }
    }

    public static string ProcStatusField(int pid, string field) =>
        File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":")).Split(':', 2)[1].Trim();

    /// <summary>ct-kv-client (or <paramref name="program"/>) running in a network namespace (nsenter: no fork, so the
    /// pid is the client's).</summary>
    public sealed class Client : IDisposable
    {
        private readonly Process _p;
        public ConcurrentQueue<string> Lines { get; } = new();

        public Client(string netnsPath, string arguments, string? program = null)
        {
            var psi = new ProcessStartInfo("nsenter")
            {
                RedirectStandardOutput = true, RedirectStandardError = true,
                Arguments = $"--net={netnsPath} {program ?? CtKvClient} {arguments}",
            };
            _p = new Process { StartInfo = psi };
            _p.OutputDataReceived += (_, e) => { if (e.Data is not null) Lines.Enqueue(e.Data); };
            _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) Lines.Enqueue("stderr: " + e.Data); };
            _p.Start();
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        public int Pid => _p.Id;
        public bool HasExited => _p.HasExited;
        public string Output => string.Join("\n", Lines);

        public void Signal(int sig) => kill(_p.Id, sig);

        /// <summary>Stops the client with SIGINT and returns its RESULT fields and exit code.</summary>
        public (int ExitCode, Dictionary<string, string> Result) Finish(TimeSpan timeout)
        {
            if (!_p.HasExited)
                Signal(SIGINT);
            if (!_p.WaitForExit(timeout))
                throw new TimeoutException("ct-kv-client did not exit after SIGINT. Output:\n" + Output);
            _p.WaitForExit();
            return (_p.ExitCode, ParseResult(Output));
        }

        public void Dispose()
        {
            if (!_p.HasExited)
                _p.Kill();
            _p.Dispose();
        }
    }

    public static Dictionary<string, string> ParseResult(string output)
    {
        var line = output.Split('\n').LastOrDefault(l => l.StartsWith("RESULT "))
                   ?? throw new InvalidOperationException("ct-kv-client printed no RESULT line. Output:\n" + output);
        return KeyValue().Matches(line).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
    }

    [GeneratedRegex(@"(\w+)=(\S+)")]
    private static partial Regex KeyValue();
}
