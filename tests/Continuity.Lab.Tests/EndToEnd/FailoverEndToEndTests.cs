using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// The product's promise, end to end: an unmodified stateful server protected by a 3-node lab
/// cluster, clients in the client namespace verifying every reply, and the primary's machine
/// crashed under them. Separate node processes, real NFQUEUE, real CRIU, real namespaces.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class FailoverEndToEndTests(ITestOutputHelper output) : IDisposable
{
    private readonly LabDriver _lab = new();
    private readonly string _root = Lab.FindRepoRoot() ?? throw new InvalidOperationException("repository root not found");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(3) };

    public void Dispose()
    {
        _lab.Dispose();
        _http.Dispose();
    }

    private string WriteAppConfig(string recovery = "replay", string interval = "2s")
    {
        var file = Path.Combine(_lab.StateDir, "kv.hocon");
        File.WriteAllText(file, $$"""
            continuity.apps.kv {
              command = ["{{_root}}/build/testserver/ct-kv", "--tcp", "7000", "--udp", "7001"]
              vip = "198.18.0.50/24"
              ports = ["tcp/7000", "udp/7001"]
              checkpoint-interval = {{interval}}
              recovery = {{recovery}}
            }
            """);
        return file;
    }

    private JsonElement? App(string node)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"http://198.18.0.1{node[1..]}:8558/v1/apps/kv");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(_lab.StateDir, "token")).Trim());
            using var response = _http.Send(request);
            if (!response.IsSuccessStatusCode) return null;
            return JsonDocument.Parse(response.Content.ReadAsStream()).RootElement.Clone();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException) { return null; }
    }

    /// <summary>Waits until the app has a primary and every other data node is a ready standby.</summary>
    private string WaitUntilProtected(IEnumerable<string> askNodes, int standbys, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            foreach (var node in askNodes)
            {
                if (App(node) is not { } app) continue;
                var primary = app.TryGetProperty("primary", out var p) ? p.GetString() : null;
                var ready = app.TryGetProperty("standbys", out var s) ? s.EnumerateArray().Count(x => x.GetProperty("ready").GetBoolean()) : 0;
                if (primary is not null && ready >= standbys) return primary;
            }
            Thread.Sleep(500);
        }
        throw new Xunit.Sdk.XunitException($"kv not protected by {standbys} ready standbys within {timeout.TotalSeconds} s");
    }

    private Process StartClient(int connections, int durationSeconds, string extra = "")
    {
        var start = new ProcessStartInfo("nsenter")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var a in $"--net=/run/netns/ct-client {_root}/build/testserver/ct-kv-client --server 198.18.0.50:7000 --connections {connections} --interval-ms 50 --duration-s {durationSeconds} --timeout-s 60 {extra}"
                     .Split(' ', StringSplitOptions.RemoveEmptyEntries))
            start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    private string Finish(Process client, TimeSpan timeout)
    {
        var stdout = client.StandardOutput.ReadToEndAsync();
        var stderr = client.StandardError.ReadToEndAsync();
        if (!client.WaitForExit(timeout)) { client.Kill(); throw new Xunit.Sdk.XunitException("client did not finish"); }
        var text = stdout.Result + stderr.Result;
        output.WriteLine(text.Trim());
        return text;
    }

    [RootFact]
    public void Clients_keep_their_connections_and_every_byte_when_the_primary_crashes()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var primary = WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60));
        output.WriteLine($"kv protected: primary {primary}");

        var client = StartClient(connections: 20, durationSeconds: 40, extra: "--udp-flows 4 --udp-port 7001");
        Thread.Sleep(TimeSpan.FromSeconds(3 + Random.Shared.NextDouble() * 4));
        _lab.MustRun("crash", "--primary-of", "kv");
        output.WriteLine(_lab.LastOutput.Trim());

        var result = Finish(client, TimeSpan.FromSeconds(120));
        Assert.Matches(new Regex(@"RESULT ok=1 .*mismatches=0 resets=0 eofs=0 timeouts=0"), result);
        // The client must really have talked through the crash: every request answered, UDP too.
        var requests = int.Parse(Regex.Match(result, @" requests=(\d+)").Groups[1].Value);
        Assert.True(requests > 1000, $"only {requests} requests were made");
        Assert.Equal(requests, int.Parse(Regex.Match(result, @" replies=(\d+)").Groups[1].Value));
        Assert.Matches(new Regex(@"udp_replies=[1-9]\d* .*udp_mismatches=0"), result);
        var stall = Regex.Match(result, @"longest_stall_ms=(\d+)").Groups[1].Value;
        output.WriteLine($"longest client stall through the crash: {stall} ms");

        var survivors = nodes.Where(n => n != primary).ToArray();
        var next = WaitUntilProtected(survivors, 1, TimeSpan.FromSeconds(60));
        Assert.Contains(next, survivors);
    }
}
