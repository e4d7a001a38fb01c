using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Lab.Tests.EndToEnd;

/// <summary>
/// What the end-to-end tests do with the lab's applications: ask a node's management API, wait for protection,
/// run the verifying client ct-kv-client from the client namespace and judge what it printed.
/// </summary>
internal sealed class LabApps(LabDriver lab, ITestOutputHelper output) : IDisposable
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(3) };
    private readonly LabDriver _lab = lab;

    public string Root { get; } = Lab.FindRepoRoot() ?? throw new InvalidOperationException("repository root not found");

    public void Dispose() => _http.Dispose();

    public JsonElement? App(string node, string name = "kv") => Get(node, $"/v1/apps/{name}");

    /// <summary>Waits until the app has a primary and every other data node is a ready standby.</summary>
    public string WaitUntilProtected(IEnumerable<string> askNodes, int standbys, TimeSpan timeout, string app = "kv")
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            foreach (var node in askNodes)
            {
                if (App(node, app) is not { } view) continue;
                var primary = view.TryGetProperty("primary", out var p) ? p.GetString() : null;
                var ready = view.TryGetProperty("standbys", out var s) ? s.EnumerateArray().Count(x => x.GetProperty("ready").GetBoolean()) : 0;
                if (primary is not null && ready >= standbys) return primary;
            }
            Thread.Sleep(500);
        }
        throw new Xunit.Sdk.XunitException($"{app} not protected by {standbys} ready standbys within {timeout.TotalSeconds} s\n{Diagnostics(app)}");
    }

    /// <summary>What each node says of the app, and the app's lines of its log: the lab is deleted after the test.</summary>
    public string Diagnostics(string app = "kv")
    {
        var text = new System.Text.StringBuilder();
        // The lab (and its logs) is deleted after the test: a failure keeps every node's whole log.
        var kept = Continuity.Lab.Apps.NodeLogs.Keep(Root, _lab.StateDir, $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{app}");
        text.AppendLine($"(every node's log is kept in {kept})");
        foreach (var node in new[] { "n1", "n2", "n3" })
        {
            text.AppendLine($"--- {node}: {App(node, app)?.ToString() ?? "(no answer)"}");
            var log = Path.Combine(_lab.StateDir, node, "node.log");
            if (File.Exists(log))
                foreach (var line in File.ReadLines(log).Where(l => l.Contains($"[{app}]") || l.Contains("ERROR")).TakeLast(40))
                    text.AppendLine(line.Length > 300 ? line[..300] : line);
        }
        return text.ToString();
    }

    /// <param name="server">VIP:port of the application the client talks to.</param>
    /// <param name="replyTimeoutSeconds">How long the client waits for one reply before it counts a failure: a stall,
    /// not a loss, must stay under it (two crashes in a row on a loaded machine took up to 35 s).</param>
    public Process StartClient(int connections, int durationSeconds, string extra = "", string server = "198.18.0.50:7000",
        int replyTimeoutSeconds = 60)
    {
        var start = new ProcessStartInfo("nsenter")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        start.ArgumentList.Add("--net=/run/netns/ct-client");
        start.ArgumentList.Add($"{Root}/{Continuity.Lab.Apps.KvClient.Program}");
        var args = extra.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        foreach (var a in Continuity.Lab.Apps.KvClient.Arguments(server, connections, intervalMs: 50, durationSeconds, replyTimeoutSeconds).Concat(args))
            start.ArgumentList.Add(a);
        return Process.Start(start)!;
    }

    public string Finish(Process client, TimeSpan timeout)
    {
        var stdout = client.StandardOutput.ReadToEndAsync();
        var stderr = client.StandardError.ReadToEndAsync();
        if (!client.WaitForExit(timeout)) { client.Kill(); throw new Xunit.Sdk.XunitException("client did not finish"); }
        var text = stdout.Result + stderr.Result;
        output.WriteLine(text.Trim());
        return text;
    }


    public void AssertEveryByteExactlyOnce(string result, int connections, bool udp)
    {
        // The same judgement as 'continuity-lab chaos': the client must really have talked, every request answered.
        var verdict = Continuity.Lab.Apps.ClientResult.Parse(result);
        Assert.True(verdict is not null, $"the client printed no RESULT line:\n{result}");
        var problems = verdict.Problems(connections, udp, minRequests: 20L * connections);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        output.WriteLine($"longest client stall: {Regex.Match(result, @"longest_stall_ms=(\d+)").Groups[1].Value} ms");
    }

    /// <summary>The primary as the first answering node says, or null: a node may be slow to answer while the
    /// owner singleton moves or a takeover runs.</summary>
    public string? PrimaryNow(IEnumerable<string> ask) =>
        ask.Select(n => App(n)).FirstOrDefault(a => a is not null)?.GetProperty("primary").GetString();

    public void WaitForPrimary(string expected, IEnumerable<string> ask, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (PrimaryNow(ask) != expected)
        {
            if (clock.Elapsed > timeout)
                throw new Xunit.Sdk.XunitException($"{expected} did not become kv's primary within {timeout.TotalSeconds} s\n{Diagnostics()}");
            Thread.Sleep(500);
        }
    }

    /// <summary>GET <paramref name="path"/> of <paramref name="node"/>'s management API as JSON, or null when it does not answer.</summary>
    public JsonElement? Get(string node, string path)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"http://198.18.0.1{node[1..]}:8558{path}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(_lab.StateDir, "token")).Trim());
            using var response = _http.Send(request);
            if (!response.IsSuccessStatusCode) return null;
            return JsonDocument.Parse(response.Content.ReadAsStream()).RootElement.Clone();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException) { return null; }
    }

    public void Post(string node, string path, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://198.18.0.1{node[1..]}:8558{path}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(_lab.StateDir, "token")).Trim());
        request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = new HttpClient { Timeout = TimeSpan.FromSeconds(90) }.Send(request);
        var text = new StreamReader(response.Content.ReadAsStream()).ReadToEnd();
        Assert.True(response.IsSuccessStatusCode, $"POST {path} on {node}: {(int)response.StatusCode} {text}");
        output.WriteLine($"POST {path} on {node}: {text}");
    }}
