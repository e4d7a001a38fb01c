using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Continuity.Lab.Apps;

/// <summary>
/// The verifying client ct-kv-client run in the lab's client namespace, with its output followed as it comes: when
/// every connection has been answered, and how old the oldest unanswered request was at the last progress line
/// (--verbose prints one a second), which tells a connection that recovered from one left hanging.
/// </summary>
internal sealed class KvClient : IDisposable
{
    public const string Program = "build/testserver/ct-kv-client";

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Thread _reader;
    private readonly object _gate = new();

    public int Connections { get; }
    public bool Udp { get; }
    public DateTime? AllAnsweredAt { get; private set; }
    /// <summary>The last progress line's time, replies and oldest pending request.</summary>
    public (DateTime At, long Replies, long OldestPendingMs)? Progress { get; private set; }

    /// <summary>The client's arguments (after the program): shared with the end-to-end tests.</summary>
    public static List<string> Arguments(string server, int connections, int intervalMs, int durationSeconds, int replyTimeoutSeconds,
        int udpFlows = 0, int udpPort = 0, bool verbose = false)
    {
        var args = new List<string>
        {
            "--server", server, "--connections", Str(connections), "--interval-ms", Str(intervalMs),
            "--duration-s", Str(durationSeconds), "--timeout-s", Str(replyTimeoutSeconds),
        };
        if (udpFlows > 0) args.AddRange(["--udp-flows", Str(udpFlows), "--udp-port", Str(udpPort)]);
        if (verbose) args.Add("--verbose");
        return args;
    }

    private static string Str(int n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>Starts the client in <paramref name="clientNamespace"/> (nsenter, never 'ip netns exec', see the lab's README).</summary>
    public KvClient(string repoRoot, string clientNamespace, IReadOnlyList<string> arguments, int connections, bool udp)
    {
        Connections = connections;
        Udp = udp;
        var program = Path.Combine(repoRoot, Program);
        if (!File.Exists(program))
            throw new LabException($"the test client {program} is not built: build it with {Path.Combine(repoRoot, "deploy/build.sh")}");
        var start = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add($"--net={Network.NetnsPath(clientNamespace)}");
        start.ArgumentList.Add("--");
        start.ArgumentList.Add(program);
        foreach (var a in arguments) start.ArgumentList.Add(a);
        _process = Process.Start(start) ?? throw new LabException("could not start the test client");
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_gate) _output.AppendLine(e.Data); };
        _process.BeginErrorReadLine();
        _reader = new Thread(Read) { IsBackground = true, Name = "ct-kv-client output" };
        _reader.Start();
    }

    private static readonly Regex ProgressLine = new(@"replies=(\d+) .*oldest_pending_ms=(-?\d+)", RegexOptions.CultureInvariant);

    private void Read()
    {
        while (_process.StandardOutput.ReadLine() is { } line)
        {
            lock (_gate)
            {
                _output.AppendLine(line);
                if (line.Contains("every connection answered")) AllAnsweredAt = DateTime.UtcNow;
                if (line.StartsWith("ct-kv-client: t=", StringComparison.Ordinal) && ProgressLine.Match(line) is { Success: true } m)
                    Progress = (DateTime.UtcNow, long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
                        long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public string Output
    {
        get { lock (_gate) return _output.ToString(); }
    }

    /// <summary>SIGINT (the client then prints its RESULT line), and its whole output once it has ended.</summary>
    public string Stop(TimeSpan timeout)
    {
        if (!_process.HasExited) Os.Kill(_process.Id, Os.SIGINT);
        if (!_process.WaitForExit(timeout))
        {
            // nsenter passes SIGINT on to the client; if neither ends, the output says so (no RESULT line).
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        }
        _process.WaitForExit();
        _reader.Join(TimeSpan.FromSeconds(5));
        return Output;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
