using System.Collections.Concurrent;
using System.Diagnostics;
using Continuity.Linux.Criu;
using Continuity.Linux.Processes;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Linux.Tests.Criu;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CriuCheckpointerSpecs(ITestOutputHelper log)
{
    [Fact]
    public void Criu_on_this_machine_is_usable()
    {
        var probe = CriuProbe.Probe();
        log.WriteLine(probe.Diagnostic);
        Assert.True(probe.Usable, probe.Diagnostic);
        Assert.True(probe.Version >= CriuProbe.MinimumVersion);
    }

    [Fact]
    public async Task A_missing_criu_is_reported_with_the_fix()
    {
        var probe = CriuProbe.Probe("/nonexistent/criu");
        Assert.False(probe.Usable);
        Assert.Contains("deploy/install-deps.sh", probe.Diagnostic);

        var e = await Assert.ThrowsAsync<CheckpointException>(() =>
            new CriuCheckpointer(new CriuOptions { CriuPath = "/nonexistent/criu" })
                .DumpAsync(Environment.ProcessId, "/nonexistent/images", () => { }, CancellationToken.None));
        Assert.Contains("deploy/install-deps.sh", e.Message);
    }

    [Fact]
    public async Task Dump_of_a_missing_pid_fails_with_a_clear_error()
    {
        CriuLab.RequireRoot();
        using var gone = Process.Start("true")!;
        gone.WaitForExit();
        var dir = Directory.CreateTempSubdirectory("ctc-missing-").FullName;
        try
        {
            var e = await Assert.ThrowsAsync<CheckpointException>(() =>
                new CriuCheckpointer().DumpAsync(gone.Id, dir, () => { }, CancellationToken.None));
            log.WriteLine(e.Message);
            Assert.Contains($"pid {gone.Id}", e.Message);
            Assert.Contains("no such process", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Criu_failures_carry_its_error_lines_and_the_fix()
    {
        var dir = Directory.CreateTempSubdirectory("ctc-log-").FullName;
        try
        {
            var logPath = Path.Combine(dir, "dump.log");
            File.WriteAllLines(logPath,
            [
                "(00.040680) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
                "(00.050000) Error (criu/mount.c:1234): mnt: 123:./ doesn't have a proper root mount",
                "(00.060000) Dumping FAILED.",
            ]);
            var e = CriuCheckpointer.Failure("criu dump of pid 42 failed (exit 1)", logPath, "", null);
            log.WriteLine(e.Message);
            Assert.Contains("proper root mount", e.Message);
            Assert.Contains("nsenter --net", e.Message);
            Assert.Contains("Dumping FAILED", e.Message);
            Assert.DoesNotContain("RLIMIT_NOFILE", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Dump_of_a_program_in_another_mount_namespace_fails_with_criu_s_error_and_the_fix()
    {
        using var ns = new CriuLab.Netns("ctc-m");
        // The mistake LAB-NOTES warns about: ip netns exec also makes a new mount namespace.
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "netns", "exec", "ctc-m", "unshare", "--pid", "--fork", "setsid", "sleep", "60" })
            psi.ArgumentList.Add(a);
        using var unshare = Process.Start(psi)!;
        var pid = 0;
        var dir = Directory.CreateTempSubdirectory("ctc-mnt-").FullName;
        try
        {
            CriuLab.Eventually(() =>
            {
                var children = File.ReadAllText($"/proc/{unshare.Id}/task/{unshare.Id}/children").Trim();
                return children.Length > 0 && int.TryParse(children.Split(' ')[0], out pid);
            }, TimeSpan.FromSeconds(5), "the program under ip netns exec to start");

            var e = await Assert.ThrowsAsync<CheckpointException>(() =>
                new CriuCheckpointer(new CriuOptions { NetNsPath = ns.Path })
                    .DumpAsync(pid, dir, () => { }, CancellationToken.None));
            log.WriteLine(e.Message);
            Assert.Contains($"criu dump of pid {pid} failed", e.Message);
            Assert.Contains("unreachable sharing", e.Message); // criu's own error line
            Assert.Contains("nsenter --net", e.Message);       // and the fix
            Assert.True(CriuLab.kill(pid, 0) == 0, "a failed dump must leave the program running");
        }
        finally
        {
            if (pid > 0)
                CriuLab.kill(pid, CriuLab.SIGKILL);
            Directory.Delete(dir, true);
        }
    }

    /// <summary>A node crashed in the middle of a dump leaves CRIU's /proc mountpoint in the program's working directory
    /// (chaos lab, crash-checkpoint seed 575945681): every later dump of a program working there failed.</summary>
    [Fact]
    public async Task A_dump_succeeds_where_an_interrupted_dump_left_its_proc_mountpoint_empty_or_mounted()
    {
        using var ns = new CriuLab.Netns("ctc-p");
        CriuLab.Sh("ip -n ctc-p addr add 198.18.2.1/32 dev lo");
        var launcher = new NamespacedLauncher(ns.Path);
        var output = new ConcurrentQueue<string>();
        var server = launcher.Launch([CriuLab.CtKv, "--tcp", "7100", "--bind", "198.18.2.1"], output.Enqueue);
        var dir = Directory.CreateTempSubdirectory("ctc-stale-proc-").FullName;
        var stale = Path.Combine(new FileInfo($"/proc/{server.Pid}/cwd").LinkTarget!, "proc.crtools");
        try
        {
            CriuLab.Eventually(() => output.Any(l => l.Contains("listening")), TimeSpan.FromSeconds(5), "ct-kv to listen");
            var checkpointer = new CriuCheckpointer(new CriuOptions { NetNsPath = ns.Path });

            Directory.CreateDirectory(stale);
            var first = await checkpointer.DumpAsync(server.Pid, Path.Combine(dir, "1"), () => { }, CancellationToken.None);
            Assert.True(first.Bytes > 0);
            Assert.False(Directory.Exists(stale));

            Directory.CreateDirectory(stale);
            CriuLab.Sh($"mount -t proc proc '{stale}'");
            var second = await checkpointer.DumpAsync(server.Pid, Path.Combine(dir, "2"), () => { }, CancellationToken.None);
            Assert.True(second.Bytes > 0);
            Assert.False(Directory.Exists(stale));
            Assert.True(launcher.IsAlive(server.Pid), "the program must keep running after the dumps");
        }
        finally
        {
            launcher.Kill(server.Pid);
            CriuLab.Sh($"umount --lazy '{stale}' 2>/dev/null; rmdir '{stale}' 2>/dev/null; true");
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Programs of several applications on one node share the node's working directory, where CRIU's
    /// parasite mounts /proc: dumps of them at the same moment collided there.</summary>
    [Fact]
    public async Task Programs_sharing_a_working_directory_can_be_dumped_at_the_same_moment()
    {
        using var ns = new CriuLab.Netns("ctc-s");
        CriuLab.Sh("ip -n ctc-s addr add 198.18.2.1/32 dev lo");
        var launcher = new NamespacedLauncher(ns.Path);
        var output = new ConcurrentQueue<string>();
        var servers = new[] { 7100, 7101, 7102 }
            .Select(port => launcher.Launch([CriuLab.CtKv, "--tcp", port.ToString(), "--bind", "198.18.2.1"], output.Enqueue)).ToList();
        var dir = Directory.CreateTempSubdirectory("ctc-shared-cwd-").FullName;
        try
        {
            Assert.Single(servers.Select(s => new FileInfo($"/proc/{s.Pid}/cwd").LinkTarget).Distinct());
            CriuLab.Eventually(() => output.Count(l => l.Contains("listening")) >= 3, TimeSpan.FromSeconds(5), "three ct-kv to listen");
            var checkpointer = new CriuCheckpointer(new CriuOptions { NetNsPath = ns.Path });
            for (var round = 0; round < 3; round++)
            {
                var dumps = servers.Select(s => checkpointer.DumpAsync(s.Pid, Path.Combine(dir, $"{s.Pid}-{round}"), () => { }, CancellationToken.None));
                var images = await Task.WhenAll(dumps);
                Assert.All(images, i => Assert.True(i.Bytes > 0));
            }
            Assert.All(servers, s => Assert.True(launcher.IsAlive(s.Pid), "the programs must keep running after the dumps"));
        }
        finally
        {
            foreach (var s in servers) launcher.Kill(s.Pid);
            Directory.Delete(dir, true);
        }
    }

    /// <summary>The turn is what a checkpointer takes before it holds its program's input (see Checkpointer): it must
    /// wait while another program of the directory is dumped, and only then.</summary>
    [Fact]
    public async Task A_program_gets_its_turn_to_dump_only_once_another_of_its_working_directory_gave_its_turn_back()
    {
        var shared = Directory.CreateTempSubdirectory("ctc-turn-shared-").FullName;
        var other = Directory.CreateTempSubdirectory("ctc-turn-other-").FullName;
        var programs = new[] { shared, shared, other }
            .Select(cwd => System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", "60") { WorkingDirectory = cwd })!)
            .ToList();
        try
        {
            var checkpointer = new CriuCheckpointer();
            var first = await checkpointer.WaitForDumpTurnAsync(programs[0].Id, CancellationToken.None);
            var second = checkpointer.WaitForDumpTurnAsync(programs[1].Id, CancellationToken.None);
            // A program working elsewhere is not held back.
            using (await checkpointer.WaitForDumpTurnAsync(programs[2].Id, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5))) { }
            await Task.Delay(300);
            Assert.False(second.IsCompleted, "the second program of the directory got its turn while the first held one");

            first.Dispose();
            using var turn = await second.WaitAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            foreach (var p in programs) { p.Kill(); p.WaitForExit(); }
            Directory.Delete(shared, true);
            Directory.Delete(other, true);
        }
    }

    [Fact]
    public async Task Whilefrozen_runs_while_the_program_is_frozen()
    {
        using var ns = new CriuLab.Netns("ctc-w");
        CriuLab.Sh("ip -n ctc-w addr add 198.18.2.1/32 dev lo");
        var launcher = new NamespacedLauncher(ns.Path);
        var output = new ConcurrentQueue<string>();
        var server = launcher.Launch([CriuLab.CtKv, "--tcp", "7100", "--bind", "198.18.2.1"], output.Enqueue);
        var dir = Directory.CreateTempSubdirectory("ctc-frozen-").FullName;
        try
        {
            CriuLab.Eventually(() => output.Any(l => l.Contains("listening")), TimeSpan.FromSeconds(5), "ct-kv to listen");
            using var client = new CriuLab.Client(ns.Path,
                "--server 198.18.2.1:7100 --connections 2 --interval-ms 20 --duration-s 0 --timeout-s 20");
            Thread.Sleep(1000);

            var states = new List<string>();
            var checkpointer = new CriuCheckpointer(new CriuOptions { NetNsPath = ns.Path });
            var image = await checkpointer.DumpAsync(server.Pid, dir, () =>
            {
                states.Add(CriuLab.ProcStatusField(server.Pid, "State"));
                Thread.Sleep(1500);
                states.Add(CriuLab.ProcStatusField(server.Pid, "State"));
            }, CancellationToken.None);
            log.WriteLine($"image {image}; states during whileFrozen: {string.Join(", ", states)}");

            Thread.Sleep(1000);
            var (exit, result) = client.Finish(TimeSpan.FromSeconds(10));
            log.WriteLine(client.Output.Split('\n').Last());

            // criu holds the program in a ptrace stop ("t (tracing stop)") for the whole callback.
            Assert.Equal(2, states.Count);
            Assert.All(states, s => Assert.StartsWith("t", s, StringComparison.OrdinalIgnoreCase));
            // And it did not answer: the client waited at least as long as the callback slept.
            Assert.True(exit == 0, client.Output);
            Assert.True(long.Parse(result["longest_stall_ms"]) >= 1400, client.Output);
            Assert.True(image.Freeze >= TimeSpan.FromMilliseconds(1400), $"freeze {image.Freeze}");
            Assert.True(image.Dump >= image.Freeze, $"dump {image.Dump} < freeze {image.Freeze}");
            Assert.True(image.Bytes > 0);
            Assert.True(launcher.IsAlive(server.Pid), "the program must keep running after the dump");
        }
        finally
        {
            launcher.Kill(server.Pid);
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task A_whilefrozen_that_overruns_its_timeout_fails_the_dump_and_the_program_runs_on()
    {
        using var ns = new CriuLab.Netns("ctc-o");
        var launcher = new NamespacedLauncher(ns.Path);
        var server = launcher.Launch(["sleep", "60"], _ => { });
        var dir = Directory.CreateTempSubdirectory("ctc-overrun-").FullName;
        try
        {
            var states = new List<string>();
            var checkpointer = new CriuCheckpointer(new CriuOptions
            {
                NetNsPath = ns.Path, WhileFrozenTimeout = TimeSpan.FromSeconds(1),
            });
            var e = await Assert.ThrowsAsync<CheckpointException>(() => checkpointer.DumpAsync(server.Pid, dir, () =>
            {
                // The action script gives up after 1 s and lets the program run again, whatever the node does.
                Thread.Sleep(2500);
                states.Add(CriuLab.ProcStatusField(server.Pid, "State"));
            }, CancellationToken.None));
            log.WriteLine(e.Message);
            Assert.Contains("WhileFrozenTimeout", e.Message);
            Assert.Contains("must not be used", e.Message);
            Assert.DoesNotContain("t (tracing stop)", states);
            Assert.True(launcher.IsAlive(server.Pid));
        }
        finally
        {
            launcher.Kill(server.Pid);
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public Task Checkpoint_and_restore_keep_an_established_tcp_connection() => FailOverAndVerify("ctc-s", 1, hops: 1);

    [Fact]
    public Task A_restored_program_can_be_checkpointed_and_restored_again() => FailOverAndVerify("ctc-r", 3, hops: 2);

    /// <summary>
    /// The server runs in namespace PREFIX, the client in PREFIX-c (198.18.SUBNET.2) across a veth pair. Each hop is
    /// a failover to a fresh namespace PREFIX-N: the current primary's link is cut before the kill so that no FIN or
    /// RST escapes, and its interface moves to the next namespace (same address, like a standby taking the VIP),
    /// where the restore happens. A fresh namespace each time, because the killed primary's orphaned sockets still
    /// hold the connections' addresses in the old one. The client is stopped from each dump until after the
    /// restore: bytes sent in between would need the packet log replay, which these tests leave out.
    /// </summary>
    private async Task FailOverAndVerify(string prefix, int subnet, int hops)
    {
        var servers = Enumerable.Range(0, hops + 1)
            .Select(i => new CriuLab.Netns(i == 0 ? prefix : $"{prefix}{i + 1}")).ToList();
        using var clientNs = new CriuLab.Netns($"{prefix}-c");
        var serverIp = $"198.18.{subnet}.1";
        CriuLab.Sh($"ip link add {prefix}-sv netns {servers[0].Name} type veth peer name {prefix}-cv netns {clientNs.Name}" +
                   $" && ip -n {servers[0].Name} addr add {serverIp}/24 dev {prefix}-sv && ip -n {servers[0].Name} link set {prefix}-sv up" +
                   $" && ip -n {clientNs.Name} addr add 198.18.{subnet}.2/24 dev {prefix}-cv && ip -n {clientNs.Name} link set {prefix}-cv up");

        var launcher = new NamespacedLauncher(servers[0].Path);
        var output = new ConcurrentQueue<string>();
        var restoredOutput = new ConcurrentQueue<string>();
        var pid = launcher.Launch([CriuLab.CtKv, "--tcp", "7000", "--udp", "7001"], output.Enqueue).Pid;
        var dirs = new List<string>();
        try
        {
            CriuLab.Eventually(() => output.Any(l => l.Contains("listening")), TimeSpan.FromSeconds(5), "ct-kv to listen");
            using var client = new CriuLab.Client(clientNs.Path,
                $"--server {serverIp}:7000 --connections 4 --interval-ms 50 --duration-s 0 --timeout-s 20 --verbose" +
                " --udp-flows 2 --udp-port 7001");
            CriuLab.Eventually(() => client.Lines.Any(l => l.Contains("t=1s")), TimeSpan.FromSeconds(10),
                "a second of verified requests");

            for (var hop = 1; hop <= hops; hop++)
            {
                var from = servers[hop - 1];
                var to = servers[hop];
                var dir = Directory.CreateTempSubdirectory($"{prefix}-img-").FullName;
                dirs.Add(dir);

                client.Signal(CriuLab.SIGSTOP);
                Thread.Sleep(300); // replies in flight land in the stopped client's socket buffers
                var image = await new CriuCheckpointer(new CriuOptions { NetNsPath = from.Path })
                    .DumpAsync(pid, dir, () => { }, CancellationToken.None);
                log.WriteLine($"hop {hop}: dumped {image}");

                CriuLab.Sh($"ip -n {from.Name} link set {prefix}-sv down");
                launcher.Kill(pid);
                var dead = pid;
                CriuLab.Eventually(() => !launcher.IsAlive(dead), TimeSpan.FromSeconds(5), "the primary to die");
                CriuLab.Sh($"ip -n {from.Name} link set {prefix}-sv netns {to.Name}" +
                           $" && ip -n {to.Name} addr add {serverIp}/24 dev {prefix}-sv && ip -n {to.Name} link set {prefix}-sv up");

                var restorer = new CriuCheckpointer(new CriuOptions { NetNsPath = to.Path },
                    (_, line) => restoredOutput.Enqueue(line));
                var sw = Stopwatch.StartNew();
                pid = await restorer.RestoreAsync(dir, CancellationToken.None);
                log.WriteLine($"hop {hop}: restored as pid {pid} in {sw.ElapsedMilliseconds} ms");
                Assert.True(launcher.IsAlive(pid));
                Assert.EndsWith("\t1", CriuLab.ProcStatusField(pid, "NSpid").Replace(' ', '\t'));
                // The restored program's stdio is the restoring node's pipe again, nothing else is open but sockets.
                Assert.StartsWith("pipe:[", new FileInfo($"/proc/{pid}/fd/1").LinkTarget);

                var repliesBefore = LastReplies(client.Lines);
                client.Signal(CriuLab.SIGCONT);
                // Progress, not a rate: on a loaded machine the client may run slower, never stop.
                CriuLab.Eventually(() => LastReplies(client.Lines) >= repliesBefore + 40,
                    TimeSpan.FromSeconds(20), "40 more verified replies after the restore");
                Assert.False(client.HasExited, client.Output);
            }

            var (exit, result) = client.Finish(TimeSpan.FromSeconds(10));
            log.WriteLine(client.Output);
            Assert.True(exit == 0, client.Output);
            Assert.Equal("1", result["ok"]);
            Assert.Equal("0", result["mismatches"]);
            Assert.Equal("0", result["resets"]);
            // UDP flows kept their per-flow counts across the restores too (a reset table would mismatch).
            Assert.Equal("0", result["udp_mismatches"]);
            Assert.True(long.Parse(result["udp_replies"]) > 0, client.Output);
            // The restored program's stdout reaches the restoring node (criu restore --inherit-fd).
            CriuLab.Eventually(() => restoredOutput.Any(l => l.Contains("closed (eof)")), TimeSpan.FromSeconds(5),
                "the restored server's output to reach the restoring node");
        }
        finally
        {
            if (launcher.IsAlive(pid))
                launcher.Kill(pid);
            foreach (var d in dirs)
                Directory.Delete(d, true);
            foreach (var ns in servers)
                ns.Dispose();
        }
    }

    /// <summary>The newest "replies=N" of the client's progress lines (0 before the first).</summary>
    private static long LastReplies(IEnumerable<string> lines) =>
        lines.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"\breplies=(\d+)")).Where(m => m.Success)
            .Select(m => long.Parse(m.Groups[1].Value)).LastOrDefault();
}
