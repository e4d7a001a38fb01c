using Continuity.Linux.Native;
using System.Runtime.InteropServices;

namespace Continuity.Linux.Namespaces;

/// <summary>
/// Runs code inside a named network namespace (<c>/run/netns/NAME</c>, as made by <c>ip netns add</c>).
/// setns(CLONE_NEWNET) moves only the calling thread, so the code runs on a dedicated thread and the
/// rest of the process stays where it was. Sockets (netlink, packet, TCP) keep the namespace they
/// were created in, so an object opened here may be used from any thread afterwards; child processes
/// started from here (ip, iptables) inherit the namespace too.
/// </summary>
public static class NetNs
{
    public static string PathOf(string nsName) =>
        nsName.StartsWith('/') ? nsName : Path.Combine("/run/netns", nsName);

    public static void RunIn(string nsName, Action action) => RunIn<object?>(nsName, () => { action(); return null; });

    public static T RunIn<T>(string nsName, Func<T> func) => RunOnThread($"netns:{nsName}", () => Enter(nsName), func);

    private static T RunOnThread<T>(string threadName, Action enter, Func<T> func)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                enter();
                result = func();
            }
            catch (Exception e)
            {
                failure = e;
            }
        })
        { IsBackground = true, Name = threadName };
        thread.Start();
        thread.Join();
        if (failure is not null)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return result;
    }

    /// <summary>
    /// A handle on the calling thread's network namespace, to come back to it later from any thread
    /// (<see cref="RunIn{T}(SafeHandle, Func{T})"/>) even if it has no name.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle Current() =>
        File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read);

    public static void RunIn(SafeHandle ns, Action action) => RunIn<object?>(ns, () => { action(); return null; });

    public static T RunIn<T>(SafeHandle ns, Func<T> func) => RunOnThread("netns:handle", () => Enter(ns, "(by handle)"), func);

    /// <summary>Starts a long-lived background thread inside the namespace.</summary>
    public static Thread StartThreadIn(string nsName, Action body, string? threadName = null)
    {
        var thread = new Thread(() => { Enter(nsName); body(); })
        { IsBackground = true, Name = threadName ?? $"netns:{nsName}" };
        thread.Start();
        return thread;
    }

    /// <summary>Moves the calling thread into the namespace; only for threads this code owns.</summary>
    internal static void Enter(string nsName)
    {
        var path = PathOf(nsName);
        if (!File.Exists(path))
            throw new InvalidOperationException($"Network namespace '{nsName}' not found at {path}: create it with `ip netns add {nsName}`.");
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        Enter(handle, nsName);
    }

    private static void Enter(SafeHandle handle, string nsName)
    {
        if (Libc.setns((int)handle.DangerousGetHandle(), Libc.CLONE_NEWNET) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new InvalidOperationException(
                $"setns into network namespace '{nsName}' failed: {Libc.ErrorText(errno)} (errno {errno}); it needs root (CAP_SYS_ADMIN).");
        }
    }
}
