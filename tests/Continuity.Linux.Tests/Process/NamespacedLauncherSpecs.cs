using System.Collections.Concurrent;
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
}
