using System.Collections.Concurrent;
using Continuity.Core.Platform;
using Continuity.Linux.Processes;
using Continuity.Linux.Tests.Criu;
using Xunit;

namespace Continuity.Linux.Tests.Processes;

public sealed class NamespacedLauncherSpecs
{
    [Fact]
    public void Launched_program_runs_as_init_of_its_own_pid_namespace_with_only_stdio_open()
    {
        using var ns = new CriuLab.Netns("ctc-l");
        var output = new ConcurrentQueue<string>();
        var launcher = new NamespacedLauncher(ns.Path);

        var program = launcher.Launch(["sh", "-c", "echo hello-out; echo hello-err >&2; exec sleep 60"], output.Enqueue);
        try
        {
            var pid = program.Pid;
            CriuLab.Eventually(() => File.ReadAllText($"/proc/{pid}/cmdline").StartsWith("sleep\0"),
                TimeSpan.FromSeconds(5), "the program to exec sleep");

            // Its own pid namespace, as its init: NSpid lists the root-namespace pid and then 1.
            Assert.Equal($"{pid}\t1", CriuLab.ProcStatusField(pid, "NSpid").Replace(' ', '\t'));
            // Session leader: the session id (field 6 of stat, after the command) is its own pid.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            Assert.Equal(pid.ToString(), fields[3]);

            // Only stdio: stdin /dev/null, stdout and stderr the same pipe.
            var fds = Directory.GetFileSystemEntries($"/proc/{pid}/fd").Select(Path.GetFileName).Order().ToArray();
            Assert.Equal(new[] { "0", "1", "2" }, fds.Select(f => f!));
            Assert.Equal("/dev/null", new FileInfo($"/proc/{pid}/fd/0").LinkTarget);
            var stdout = new FileInfo($"/proc/{pid}/fd/1").LinkTarget;
            Assert.StartsWith("pipe:[", stdout);
            Assert.Equal(stdout, new FileInfo($"/proc/{pid}/fd/2").LinkTarget);

            // The given network namespace, but the caller's mount namespace (CRIU cannot dump another one).
            var netnsInode = CriuLab.Sh($"stat -L -c %i {ns.Path}").Trim();
            Assert.Equal($"net:[{netnsInode}]", new FileInfo($"/proc/{pid}/ns/net").LinkTarget);
            Assert.Equal(new FileInfo("/proc/self/ns/mnt").LinkTarget, new FileInfo($"/proc/{pid}/ns/mnt").LinkTarget);

            CriuLab.Eventually(() => output.Contains("hello-out") && output.Contains("hello-err"),
                TimeSpan.FromSeconds(5), "stdout and stderr lines to reach the output callback");
            Assert.True(launcher.IsAlive(pid));
        }
        finally
        {
            launcher.Kill(program.Pid);
        }
        CriuLab.Eventually(() => !launcher.IsAlive(program.Pid), TimeSpan.FromSeconds(5), "the killed program to be gone");
    }

    [Fact]
    public void A_programs_identity_stays_the_same_while_it_runs_and_is_gone_with_it()
    {
        CriuLab.RequireRoot();
        var launcher = new NamespacedLauncher();
        var first = launcher.Launch(["sleep", "60"], _ => { });
        try
        {
            // Always read with its pid (apps/APP/program.pid keeps both): the start time counts 10 ms clock ticks, so
            // two programs started together may share it, but one pid never names two processes in one tick.
            var identity = launcher.Identity(first.Pid);
            Assert.NotNull(identity);
            Thread.Sleep(50);
            Assert.Equal(identity, launcher.Identity(first.Pid));
        }
        finally
        {
            launcher.Kill(first.Pid);
        }
        CriuLab.Eventually(() => launcher.Identity(first.Pid) is null, TimeSpan.FromSeconds(5), "the killed program's identity to be gone");
    }

    [Fact]
    public void Without_a_network_namespace_the_program_shares_the_callers()
    {
        CriuLab.RequireRoot();
        var launcher = new NamespacedLauncher();
        Assert.Equal("unshare", launcher.BuildArgv(["sleep", "60"])[0]);
        var program = launcher.Launch(["sleep", "60"], _ => { });
        try
        {
            Assert.Equal(new FileInfo("/proc/self/ns/net").LinkTarget, new FileInfo($"/proc/{program.Pid}/ns/net").LinkTarget);
            Assert.NotEqual(new FileInfo("/proc/self/ns/pid").LinkTarget, new FileInfo($"/proc/{program.Pid}/ns/pid").LinkTarget);
        }
        finally
        {
            launcher.Kill(program.Pid);
        }
    }

    [Fact]
    public void A_program_that_cannot_start_is_reported()
    {
        CriuLab.RequireRoot();
        var output = new ConcurrentQueue<string>();
        var e = Assert.ThrowsAny<Exception>(() => new NamespacedLauncher().Launch(["/nonexistent/program"], output.Enqueue));
        Assert.Contains("/nonexistent/program", e.Message);
    }

    [Fact]
    public void A_program_that_is_not_there_fails_the_launch_with_exit_code_127_and_the_shells_complaint()
    {
        CriuLab.RequireRoot();
        var e = Assert.Throws<InvalidOperationException>(() => new NamespacedLauncher().Launch(["/nonexistent/kv-server", "--port", "7000"], _ => { }));
        Assert.StartsWith("/nonexistent/kv-server exited with code 127 right after start; last output: ", e.Message);
        Assert.Contains("/nonexistent/kv-server: No such file or directory", e.Message);
        Assert.EndsWith("/nonexistent/kv-server (or the interpreter on its #! line) was not found on this node: install it or fix the path.", e.Message);
    }

    [Fact]
    public void A_program_that_exits_at_once_is_reported_with_its_exit_code_and_last_lines_whichever_way_the_race_goes()
    {
        CriuLab.RequireRoot();
        var launcher = new NamespacedLauncher();
        ProgramExit? exit = null;
        try
        {
            var program = launcher.Launch(["/bin/sh", "-c", "echo 'reading /etc/kv.conf'; echo 'fatal: no such key' >&2; exit 3"], _ => { });
            // Seen running before it ended: the launcher remembers how it ended.
            CriuLab.Eventually(() => (exit = launcher.ExitOf(program.Pid)) is not null, TimeSpan.FromSeconds(5), "the exit status");
            Assert.Equal(3, exit!.ExitCode);
            Assert.Equal("exited with code 3", exit.Status);
            Assert.Equal("last output: reading /etc/kv.conf | fatal: no such key", exit.Output);
        }
        catch (InvalidOperationException e)
        {
            // Ended before it was seen running: Launch says the same.
            Assert.StartsWith("/bin/sh exited with code 3 right after start; last output: reading /etc/kv.conf | fatal: no such key. ", e.Message);
        }
    }

    [Fact]
    public void A_program_that_exits_later_leaves_its_exit_code_and_last_lines_with_the_launcher()
    {
        CriuLab.RequireRoot();
        var launcher = new NamespacedLauncher();
        var lines = new ConcurrentQueue<string>();
        var program = launcher.Launch(["/bin/sh", "-c", "i=0; while [ $i -lt 15 ]; do echo line $i; i=$((i+1)); done; sleep 0.5; echo 'fatal: disk full' >&2; exit 4"], lines.Enqueue);
        Assert.True(launcher.IsAlive(program.Pid));
        Assert.Null(launcher.ExitOf(program.Pid));

        ProgramExit? exit = null;
        CriuLab.Eventually(() => (exit = launcher.ExitOf(program.Pid)) is not null, TimeSpan.FromSeconds(5), "the exit status");
        Assert.False(launcher.IsAlive(program.Pid));
        Assert.Equal(4, exit!.ExitCode);
        // The last ten lines, oldest first; every line still went to the output callback.
        Assert.Equal(NamespacedLauncher.TailLines, exit.LastOutput.Count);
        Assert.Equal("fatal: disk full", exit.LastOutput[^1]);
        Assert.Equal("line 6", exit.LastOutput[0]);
        Assert.Equal(16, lines.Count);
    }

    [Fact]
    public void A_program_killed_by_a_signal_is_reported_as_such()
    {
        CriuLab.RequireRoot();
        var launcher = new NamespacedLauncher();
        var program = launcher.Launch(["sleep", "60"], _ => { });
        Assert.Equal(0, CriuLab.kill(program.Pid, CriuLab.SIGKILL));

        ProgramExit? exit = null;
        CriuLab.Eventually(() => (exit = launcher.ExitOf(program.Pid)) is not null, TimeSpan.FromSeconds(5), "the exit status");
        Assert.Equal("was killed by signal 9 (exit code 137)", exit!.Status);
    }

    [Fact]
    public void A_restored_programs_last_lines_are_kept_but_its_exit_code_is_unknown()
    {
        CriuLab.RequireRoot();
        var launcher = new NamespacedLauncher();
        // Stands in for a program criu restored: not a child of the launcher, its output passed in by the node.
        using var other = System.Diagnostics.Process.Start("sleep", "60")!;
        launcher.NoteOutput(other.Id, "serving on 7000");
        launcher.NoteOutput(other.Id, "fatal: out of memory");
        Assert.Null(launcher.ExitOf(other.Id)); // still running

        other.Kill();
        other.WaitForExit();
        var exit = launcher.ExitOf(other.Id);
        Assert.NotNull(exit);
        Assert.Null(exit!.ExitCode);
        Assert.Equal("exited (exit status unknown)", exit.Status);
        Assert.Equal("last output: serving on 7000 | fatal: out of memory", exit.Output);
    }
}
