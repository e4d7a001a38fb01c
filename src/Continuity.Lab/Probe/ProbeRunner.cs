using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Continuity.Lab.Probe;

/// <summary>
/// <c>continuity-lab probe FROM TO</c>: times request/reply round trips between two lab hosts over each transport of
/// <see cref="TransportProbe"/>, the modes alternated round by round so that the machine's noise falls on all of them
/// alike. Each end is its own process in its host's namespace, as the nodes are. The bench uses it to tell what the
/// replication round trip costs in Akka.Remote from what the network and TLS cost by themselves.
/// </summary>
internal sealed class ProbeRunner(LabState state, string stateDir, TextWriter output)
{
    private static readonly TimeSpan EchoStartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PingTimeout = TimeSpan.FromMinutes(5);

    public int Run(ProbeCommand c)
    {
        var from = Live(c.From);
        var to = Live(c.To);
        var certificate = NodeConfig.ClusterCertificatePath(stateDir);
        var modes = c.Modes.Count > 0 ? c.Modes : TransportProbe.Modes;
        if (modes.Any(m => m.EndsWith("tls", StringComparison.Ordinal)) && !File.Exists(certificate))
            throw new LabException($"no cluster certificate at {certificate}: the TLS modes use the lab's (made by 'up'); bring the lab up first");

        var samples = modes.ToDictionary(m => m, _ => new List<int>());
        for (var round = 1; round <= c.Rounds; round++)
        {
            foreach (var mode in modes)
            {
                var taken = Once(mode, from, to, certificate, c.RoundTrips);
                samples[mode].AddRange(taken);
                if (!c.Json)
                    output.WriteLine($"round {round}/{c.Rounds} {mode}: {taken.Length} round trips, p50 {Quantile(Sorted(taken), 0.5)} µs");
            }
        }

        var results = modes.Select(m => Summary.Of(m, samples[m])).ToList();
        if (c.Json)
        {
            output.WriteLine(JsonSerializer.Serialize(new { from = from.Name, to = to.Name, requestBytes = TransportProbe.RequestBytes,
                replyBytes = TransportProbe.ReplyBytes, results }));
            return 0;
        }
        var baseline = results[0];
        output.WriteLine();
        output.WriteLine($"{from.Name} -> {to.Name}, {TransportProbe.RequestBytes}-byte request, {TransportProbe.ReplyBytes}-byte reply, " +
                         $"{c.Rounds} round(s) of {c.RoundTrips} per mode, alternated:");
        output.WriteLine($"{"mode",-14}{"p50 µs",10}{"p90 µs",10}{"p99 µs",10}{"p99.9 µs",10}{"mean µs",10}  p50 / {baseline.Mode}");
        foreach (var r in results)
            output.WriteLine($"{r.Mode,-14}{r.P50,10}{r.P90,10}{r.P99,10}{r.P999,10}{r.Mean,10:0}  {(double)r.P50 / Math.Max(1, baseline.P50),6:0.0}×");
        return 0;
    }

    private LabHost Live(string name)
    {
        var host = state.Hosts.FirstOrDefault(h => h.Name == name)
            ?? throw new LabException($"no lab host '{name}'; hosts: {string.Join(", ", state.Hosts.Select(h => h.Name))}");
        if (host.Crashed || !Network.NamespaceExists(host.Namespace))
            throw new LabException($"{name} is crashed or its namespace is gone: revive it first");
        return host;
    }

    private static int[] Once(string mode, LabHost from, LabHost to, string certificate, int roundTrips)
    {
        var self = typeof(ProbeRunner).Assembly.Location;
        using var echo = Start(to, [self, "probe-end", "echo", "--mode", mode, "--address", to.Address, "--certificate", certificate]);
        try
        {
            var listening = ReadListening(echo, mode, to);
            using var ping = Start(from, [self, "probe-end", "ping", "--mode", mode, "--address", listening, "--bind", from.Address,
                "--certificate", certificate, "--round-trips", roundTrips.ToString(CultureInfo.InvariantCulture)]);
            var stderr = ping.StandardError.ReadToEndAsync();
            var stdout = ping.StandardOutput.ReadToEndAsync();
            if (!ping.WaitForExit(PingTimeout))
            {
                ping.Kill(entireProcessTree: true);
                throw new LabException($"probe {mode}: {from.Name} got no answer from {to.Name} within {PingTimeout.TotalMinutes:0} min");
            }
            var line = stdout.Result.Split('\n').LastOrDefault(l => l.StartsWith('{'));
            if (ping.ExitCode != 0 || line is null)
                throw new LabException($"probe {mode}: the pinging end on {from.Name} failed (exit {ping.ExitCode}): {Tail(stderr.Result + stdout.Result)}");
            return JsonSerializer.Deserialize<ProbeSamples>(line)!.Micros;
        }
        finally
        {
            if (!echo.HasExited) echo.Kill(entireProcessTree: true);
            echo.WaitForExit();
        }
    }

    private static string ReadListening(Process echo, string mode, LabHost to)
    {
        var line = echo.StandardOutput.ReadLineAsync();
        if (!line.Wait(EchoStartTimeout) || line.Result is not { } text || !text.StartsWith(TransportProbe.ListeningPrefix, StringComparison.Ordinal))
        {
            if (!echo.HasExited) echo.Kill(entireProcessTree: true);
            throw new LabException($"probe {mode}: the echo on {to.Name} did not start: {Tail(echo.StandardError.ReadToEnd())}");
        }
        return text[TransportProbe.ListeningPrefix.Length..].Trim();
    }

    private static Process Start(LabHost host, IReadOnlyList<string> dotnetArgs)
    {
        var psi = new ProcessStartInfo("nsenter")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in (string[])[$"--net={Network.NetnsPath(host.Namespace)}", "--", "dotnet", .. dotnetArgs])
            psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new LabException($"could not start nsenter for {host.Name}");
    }

    private static string Tail(string text)
    {
        var lines = text.Trim().Split('\n');
        return string.Join(" | ", lines.TakeLast(3));
    }

    private static int[] Sorted(IEnumerable<int> samples)
    {
        var sorted = samples.ToArray();
        Array.Sort(sorted);
        return sorted;
    }

    private static int Quantile(int[] sorted, double q) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];

    /// <summary>One mode's round trips, in microseconds.</summary>
    internal sealed record Summary(string Mode, int RoundTrips, int P50, int P90, int P99, int P999, double Mean)
    {
        public static Summary Of(string mode, IReadOnlyCollection<int> samples)
        {
            var sorted = Sorted(samples);
            return new Summary(mode, sorted.Length, Quantile(sorted, 0.5), Quantile(sorted, 0.9), Quantile(sorted, 0.99),
                Quantile(sorted, 0.999), sorted.Length == 0 ? 0 : sorted.Average());
        }
    }
}
