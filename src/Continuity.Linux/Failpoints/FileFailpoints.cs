using System.Diagnostics;
using Continuity.Core.Platform;
using Continuity.Linux.Processes;

namespace Continuity.Linux.Failpoints;

/// <summary>
/// Fail points armed by files: a file named after the point in <see cref="Directory"/> arms it for one hit. On the
/// hit the file is removed, <c>NAME.reached</c> is written with what the node was doing, and the process stops itself
/// (SIGSTOP), so the lab can crash it exactly there.
/// </summary>
public sealed class FileFailpoints : IFailpoints
{
    /// <summary>The environment variable naming the directory; unset, the node has no fail points.</summary>
    public const string EnvironmentVariable = "CONTINUITY_FAILPOINTS";

    // A point sits on the data path (every release): look at the directory at most this often, not on every call.
    private static readonly TimeSpan LookEvery = TimeSpan.FromMilliseconds(20);

    private readonly Action _stop;
    private readonly object _lock = new();
    private readonly Dictionary<string, long> _lookedAt = new();

    /// <param name="stop">What a hit does after recording it; the default stops this process.</param>
    public FileFailpoints(string directory, Action? stop = null)
    {
        Directory = directory;
        _stop = stop ?? (() => ProcessNative.Kill(Environment.ProcessId, ProcessNative.SIGSTOP));
        System.IO.Directory.CreateDirectory(directory);
    }

    public string Directory { get; }

    /// <summary>The fail points of <see cref="EnvironmentVariable"/>, or null when it is unset or empty.</summary>
    public static FileFailpoints? FromEnvironment() =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } dir ? new FileFailpoints(dir) : null;

    public void Reach(string name, Func<string> describe)
    {
        var armed = Path.Combine(Directory, name);
        lock (_lock)
        {
            var now = Stopwatch.GetTimestamp();
            if (_lookedAt.TryGetValue(name, out var last) && Stopwatch.GetElapsedTime(last, now) < LookEvery) return;
            _lookedAt[name] = now;
            if (!File.Exists(armed)) return;
            File.Delete(armed);
            File.WriteAllText(armed + ".reached", describe() + "\n");
        }
        _stop();
    }
}
