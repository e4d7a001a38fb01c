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
    private LabApps? _appsDriver;
    private LabApps _apps => _appsDriver ??= new LabApps(_lab, output);

    public void Dispose()
    {
        _lab.Dispose();
        _appsDriver?.Dispose();
    }

    private string WriteAppConfig(string recovery = "replay", string interval = "2s", int ballastMb = 0)
    {
        var file = Path.Combine(_lab.StateDir, "kv.hocon");
        File.WriteAllText(file, $$"""
            continuity.apps.kv {
              command = ["{{_root}}/build/testserver/ct-kv", "--tcp", "7000", "--udp", "7001", "--ballast-mb", "{{ballastMb}}"]
              vip = "198.18.0.50/24"
              ports = ["tcp/7000", "udp/7001"]
              checkpoint-interval = {{interval}}
              recovery = {{recovery}}
            }
            """);
        return file;
    }

    /// <summary>Seconds after which every client connection is established and inside a checkpoint: a SYN dropped
    /// during a checkpoint is resent after 1 s, and checkpoints come every 2 s.</summary>
    private const int LongLived = 6;


    [RootFact]
    public void A_second_crash_fails_over_to_the_last_node()
    {
        // A witness keeps a majority (2 of 3 remaining members) once two of the three data nodes are gone.
        Assert.True(_lab.Run("up", "--nodes", "3", "--witness", "--config", WriteAppConfig(), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var first = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60));
        // Two detections and two switches back to back: a connection can wait twice as long as through one crash.
        var client = _apps.StartClient(connections: 10, durationSeconds: 75, replyTimeoutSeconds: 120);
        Thread.Sleep(TimeSpan.FromSeconds(LongLived));
        _lab.MustRun("crash", first);

        var survivors = nodes.Where(n => n != first).ToArray();
        var second = _apps.WaitUntilProtected(survivors, 1, TimeSpan.FromSeconds(60));
        output.WriteLine($"first switch: {first} -> {second}");
        Thread.Sleep(TimeSpan.FromSeconds(3));
        _lab.MustRun("crash", second);
        var last = survivors.Single(n => n != second);
        _apps.WaitForPrimary(last, [last], TimeSpan.FromSeconds(90));
        output.WriteLine($"second switch: {second} -> {last}");
        _apps.AssertEveryByteExactlyOnce(_apps.Finish(client, TimeSpan.FromSeconds(240)), connections: 10, udp: false);
    }

    [RootFact]
    public void A_revived_node_becomes_a_standby_that_a_later_crash_fails_over_to()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var first = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60));
        _lab.MustRun("crash", first);
        var survivors = nodes.Where(n => n != first).ToArray();
        var second = _apps.WaitUntilProtected(survivors, 1, TimeSpan.FromSeconds(60));

        // The crash left the VIP on the dead node's interface, as a frozen machine would; a reboot clears it, and so
        // does revive (a revived node answering ARP for the VIP would steal the new primary's clients).
        Assert.Contains("198.18.0.50/", AddressesOf(first));
        _lab.MustRun("revive", first);
        Assert.DoesNotContain("198.18.0.50/", AddressesOf(first));
        // Back as a standby only once it holds a complete checkpoint of the current epoch.
        _apps.WaitUntilProtected(survivors, 2, TimeSpan.FromSeconds(90));
        var client = _apps.StartClient(connections: 10, durationSeconds: 45);
        Thread.Sleep(TimeSpan.FromSeconds(LongLived));
        // Crash the other survivor too, so only the revived node can take over.
        _lab.MustRun("crash", second);
        var other = survivors.Single(n => n != second);
        _apps.AssertEveryByteExactlyOnce(_apps.Finish(client, TimeSpan.FromSeconds(120)), connections: 10, udp: false);
        output.WriteLine($"after the revive of {first}: {second} crashed, primary now {_apps.PrimaryNow([first, other]) ?? "(no answer)"}");
    }

    private static string AddressesOf(string node)
    {
        var ip = Process.Start(new ProcessStartInfo("ip", ["-n", $"ct-{node}", "-o", "addr", "show"]) { RedirectStandardOutput = true })!;
        var text = ip.StandardOutput.ReadToEnd();
        ip.WaitForExit();
        return text;
    }

    [RootFact]
    public void A_planned_switch_moves_the_application_without_losing_a_byte()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var from = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60));
        var to = nodes.First(n => n != from);
        var client = _apps.StartClient(connections: 20, durationSeconds: 30, extra: "--udp-flows 4 --udp-port 7001");
        Thread.Sleep(TimeSpan.FromSeconds(5));
        _apps.Post(from, "/v1/apps/kv/switch", $"{{\"to\":\"{to}\"}}");
        var clock = Stopwatch.StartNew();
        _apps.WaitForPrimary(to, nodes, TimeSpan.FromSeconds(60));
        output.WriteLine($"planned switch {from} -> {to} done after {clock.Elapsed.TotalSeconds:F1} s");
        _apps.AssertEveryByteExactlyOnce(_apps.Finish(client, TimeSpan.FromSeconds(120)), connections: 20, udp: true);
    }

    [RootFact]
    public void Restore_only_resets_established_connections_cleanly_instead_of_leaving_them_hanging()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(recovery: "restore-only"), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var primary = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60));
        var client = _apps.StartClient(connections: 5, durationSeconds: 60);
        Thread.Sleep(TimeSpan.FromSeconds(LongLived));
        _lab.MustRun("crash", primary);
        var clock = Stopwatch.StartNew();
        var result = _apps.Finish(client, TimeSpan.FromSeconds(120));
        // The client stops at the first reset: what matters is that it was a reset, not a hang.
        Assert.Matches(new Regex(@"RESULT ok=0 .*mismatches=0 resets=[1-9]\d* .*timeouts=0"), result);
        output.WriteLine($"client saw the reset {clock.Elapsed.TotalSeconds:F1} s after the crash");
    }

    [RootFact]
    public void An_unmodified_redis_server_keeps_its_client_its_counter_and_its_append_only_file_through_a_crash()
    {
        // Debian's redis-server, as shipped, driven by its own client tool: redis-cli in repeat mode sends INCR on
        // one connection every 50 ms and prints each reply, so the replies must read 1, 2, 3, ... with no gap,
        // repeat or error, whatever happens to the machine redis runs on. Its append-only file lives in a state
        // directory, which each lab node holds privately: the file must travel with the checkpoints and, on the
        // node that took over, hold every increment exactly once.
        var file = Path.Combine(_lab.StateDir, "redis.hocon");
        File.WriteAllText(file, """
            continuity.apps.redis {
              command = ["/usr/bin/redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
                         "--dir", "/var/lib/ct-redis", "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                         "--daemonize", "no", "--logfile", ""]
              vip = "198.18.0.50/24"
              ports = ["tcp/6379"]
              checkpoint-interval = 2s
              state-dirs = ["/var/lib/ct-redis"]
            }
            """);
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", file, "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var primary = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60), app: "redis");

        const int count = 700;
        var start = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in $"--net=/run/netns/ct-client redis-cli -h 198.18.0.50 -p 6379 -r {count} -i 0.05 INCR counter".Split(' '))
            start.ArgumentList.Add(a);
        var client = Process.Start(start)!;
        Thread.Sleep(TimeSpan.FromSeconds(LongLived + Random.Shared.NextDouble() * 4));
        _lab.MustRun("crash", primary);

        var replies = _apps.Finish(client, TimeSpan.FromSeconds(150)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(Enumerable.Range(1, count).Select(i => i.ToString()), replies); // redis-cli prints bare numbers when not on a terminal
        Assert.Equal(0, client.ExitCode);

        var next = _apps.WaitUntilProtected(nodes.Where(n => n != primary), 1, TimeSpan.FromSeconds(60), app: "redis");
        // The node-private copy of /var/lib/ct-redis on the new primary (the lab bind-mounts it from here).
        var aofDir = Path.Combine(_lab.StateDir, next, "fs", "var", "lib", "ct-redis");
        var aof = string.Concat(Directory.GetFiles(aofDir, "*.aof", SearchOption.AllDirectories).Select(File.ReadAllText));
        Assert.Equal(count, Regex.Matches(aof, @"\$4\r\nINCR\r\n\$7\r\ncounter\r\n", RegexOptions.IgnoreCase).Count);
    }

    /// <summary>Waits for the next line of <paramref name="node"/>'s log, written after this call, that matches.</summary>
    private Match WaitForLogLine(string node, Regex pattern, TimeSpan timeout) =>
        Continuity.Lab.Apps.NodeLogs.WaitForLine(_lab.StateDir, node, pattern, timeout)
        ?? throw new Xunit.Sdk.XunitException($"no line matching {pattern} in {node}'s log within {timeout.TotalSeconds} s\n{_apps.Diagnostics()}");

    /// <summary>Waits until every standby of kv holds checkpoint <paramref name="id"/> or a newer one (ids of one
    /// epoch sort by time).</summary>
    private void WaitUntilStandbysHold(string primary, string id, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (_apps.App(primary) is not { } app || !app.GetProperty("standbys").EnumerateArray().All(st =>
                   st.GetProperty("checkpointId").GetString() is { } held && string.CompareOrdinal(held, id) >= 0))
        {
            if (clock.Elapsed > timeout)
                throw new Xunit.Sdk.XunitException($"the standbys did not store checkpoint {id} within {timeout.TotalSeconds} s\n{_apps.Diagnostics()}");
            Thread.Sleep(100);
        }
        output.WriteLine($"every standby holds checkpoint {id} after {clock.Elapsed.TotalSeconds:F1} s");
    }

    [RootFact]
    public void Clients_keep_every_byte_when_the_primary_crashes_in_the_middle_of_a_checkpoint()
    {
        // 64 MB of resident memory makes each checkpoint long enough to aim at: the crash lands while the program
        // is frozen and being dumped, or while its image is on the way to the standbys. Either way the standbys
        // must fall back on the checkpoint before it and replay the longer log after its mark.
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(ballastMb: 64), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var primary = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(90));
        var client = _apps.StartClient(connections: 20, durationSeconds: 40, extra: "--udp-flows 4 --udp-port 7001");
        // SYNs that meet a freeze are dropped and resent with backoff: connecting may take a while. Only a reply
        // proves the server side is established too (a dropped handshake ACK leaves it half-open, and a half-open
        // connection is not in a checkpoint).
        var answered = Task.Run(() =>
        {
            while (client.StandardOutput.ReadLine() is { } line)
            {
                output.WriteLine(line);
                if (line.Contains("every connection answered")) return true;
            }
            return false;
        });
        Assert.True(answered.Wait(TimeSpan.FromSeconds(90)) && answered.Result, "the client's connections were not all answered within 90 s");
        // A checkpoint that covers every connection and that every standby holds: without it, the connections
        // would be younger than anything the standbys could restore, and reset by design.
        var covering = WaitForLogLine(primary, new Regex(@"\[kv\] checkpoint (\S+?): frozen"), TimeSpan.FromSeconds(30)).Groups[1].Value;
        WaitUntilStandbysHold(primary, covering, TimeSpan.FromSeconds(60));

        var phase = Random.Shared.Next(2) == 0 ? "dumping" : "shipping";
        var line = WaitForLogLine(primary, new Regex(@"\[kv\] checkpoint (\S+?):.*" + phase), TimeSpan.FromSeconds(30));
        _lab.MustRun("crash", primary);
        var interrupted = line.Groups[1].Value;
        output.WriteLine($"crashed {primary} while checkpoint {interrupted} was {phase}");

        var survivors = nodes.Where(n => n != primary).ToArray();
        var next = _apps.WaitUntilProtected(survivors, 1, TimeSpan.FromSeconds(90));
        var takeover = File.ReadLines(Path.Combine(_lab.StateDir, next, "node.log"))
            .Select(l => Regex.Match(l, @"\[kv\] taking over as primary of epoch \d+ from checkpoint (\S+) \(mark (\d+)\) with (\d+) logged packets"))
            .Last(m => m.Success);
        output.WriteLine($"{next} took over from checkpoint {takeover.Groups[1].Value}, mark {takeover.Groups[2].Value}, {takeover.Groups[3].Value} logged packets");
        // A checkpoint still being dumped was never shipped: the switch must have used an earlier one.
        if (phase == "dumping") Assert.NotEqual(interrupted, takeover.Groups[1].Value);

        _apps.AssertEveryByteExactlyOnce(_apps.Finish(client, TimeSpan.FromSeconds(150)), connections: 20, udp: true);
    }

    [RootFact]
    public void Connections_opened_after_the_last_checkpoint_are_reset_cleanly_while_older_ones_survive()
    {
        // No periodic checkpoint: the test decides which connections a checkpoint covers.
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(interval: "1h"), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var primary = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60));
        var covered = _apps.StartClient(connections: 5, durationSeconds: 40);
        Thread.Sleep(TimeSpan.FromSeconds(3));
        _apps.Post(primary, "/v1/apps/kv/checkpoint", "{}");
        var late = _apps.StartClient(connections: 5, durationSeconds: 40);
        Thread.Sleep(TimeSpan.FromSeconds(4));
        _lab.MustRun("crash", primary);
        var clock = Stopwatch.StartNew();

        var lateResult = _apps.Finish(late, TimeSpan.FromSeconds(120));
        output.WriteLine($"late client ended {clock.Elapsed.TotalSeconds:F1} s after the crash");
        // Reset, not left hanging until a timeout; and what they did get was right.
        Assert.Matches(new Regex(@"RESULT ok=0 .*mismatches=0 resets=[1-9]\d* .*timeouts=0"), lateResult);
        _apps.AssertEveryByteExactlyOnce(_apps.Finish(covered, TimeSpan.FromSeconds(120)), connections: 5, udp: false);
    }

    [RootFact]
    public void Clients_keep_their_connections_and_every_byte_when_the_primary_crashes()
    {
        Assert.True(_lab.Run("up", "--nodes", "3", "--config", WriteAppConfig(), "--timeout", "90") == 0, _lab.LastOutput + _lab.LastError);
        var nodes = new[] { "n1", "n2", "n3" };
        var primary = _apps.WaitUntilProtected(nodes, 2, TimeSpan.FromSeconds(60));
        output.WriteLine($"kv protected: primary {primary}");

        var client = _apps.StartClient(connections: 20, durationSeconds: 40, extra: "--udp-flows 4 --udp-port 7001");
        // Long-lived connections: established, then covered by a checkpoint (connections opened after the last
        // checkpoint are reset by design, see README), then a crash at a random moment.
        Thread.Sleep(TimeSpan.FromSeconds(LongLived + Random.Shared.NextDouble() * 4));
        _lab.MustRun("crash", "--primary-of", "kv");
        output.WriteLine(_lab.LastOutput.Trim());

        _apps.AssertEveryByteExactlyOnce(_apps.Finish(client, TimeSpan.FromSeconds(120)), connections: 20, udp: true);

        var survivors = nodes.Where(n => n != primary).ToArray();
        var next = _apps.WaitUntilProtected(survivors, 1, TimeSpan.FromSeconds(60));
        Assert.Contains(next, survivors);
    }
}
