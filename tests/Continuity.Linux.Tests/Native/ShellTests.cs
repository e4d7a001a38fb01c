using Continuity.Linux.Native;
using Xunit;

namespace Continuity.Linux.Tests.Native;

public class ShellTests
{
    [Fact]
    public void A_command_returns_its_exit_code_stdout_and_stderr()
    {
        var r = Shell.Run("sh", "-c", "echo out; echo err >&2; exit 3");

        Assert.Equal(new CommandResult(3, "out\n", "err\n"), r);
    }

    [Fact]
    public void A_command_that_outlives_its_timeout_is_killed_and_says_so()
    {
        var r = Shell.Run(TimeSpan.FromMilliseconds(300), "sh", "-c", "echo started; exec sleep 60");

        Assert.True(r.TimedOut);
        Assert.False(r.Ok);
        Assert.Equal("started\n", r.StdOut);
    }

    /// <summary>The node's actors call Shell from thread-pool threads; a command that needed another pool thread to
    /// finish stalled a takeover on the lab until the pool grew (1-2 s on 2 cores).</summary>
    [Fact]
    public void A_command_completes_while_every_thread_pool_thread_is_blocked()
    {
        ThreadPool.GetMinThreads(out var minWorkers, out var minIo);
        ThreadPool.GetMaxThreads(out var maxWorkers, out var maxIo);
        var workers = Environment.ProcessorCount;
        // Not disposed: a blocker the pool starts only after the test must still find it.
        var release = new ManualResetEventSlim();
        try
        {
            Assert.True(ThreadPool.SetMinThreads(workers, minIo));
            Assert.True(ThreadPool.SetMaxThreads(workers, maxIo));
            // Blockers until one waits for a thread: from then on so would any work Shell queued.
            var blockers = 0;
            var saturated = false;
            while (!saturated && blockers < 256)
            {
                using var running = new ManualResetEventSlim();
                ThreadPool.UnsafeQueueUserWorkItem(_ =>
                {
                    running.Set();
                    release.Wait();
                }, null);
                blockers++;
                saturated = !running.Wait(TimeSpan.FromSeconds(2));
            }
            Assert.True(saturated, $"the thread pool still ran work after {blockers} blocked items");
            CommandResult? result = null;
            // The output comes later than the call: a read that is already satisfied never reaches the pool.
            var caller = new Thread(() => result = Shell.Run("sh", "-c", "sleep 0.3; echo out; echo err >&2; exit 3")) { IsBackground = true };
            caller.Start();
            var finished = caller.Join(TimeSpan.FromSeconds(30));

            Assert.True(finished, "the command did not finish while the thread pool was busy: Shell waits for a pool thread");
            Assert.Equal(new CommandResult(3, "out\n", "err\n"), result);
        }
        finally
        {
            release.Set();
            ThreadPool.SetMaxThreads(maxWorkers, maxIo);
            ThreadPool.SetMinThreads(minWorkers, minIo);
        }
    }
}
