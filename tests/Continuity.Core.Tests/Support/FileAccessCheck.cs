using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Continuity.Core.Tests.Support;

/// <summary>Real-file checks of "root only": the process umask (set for one test), and a read attempt by an
/// unprivileged user (nobody, through setpriv), which is what the modes are for.</summary>
internal static class FileAccessCheck
{
    [DllImport("libc", EntryPoint = "umask")]
    private static extern uint SetUmask(uint mask);

    /// <summary>Sets the process umask until disposed. 000 is the careless case: without explicit modes every file
    /// would be readable (and writable) by everyone.</summary>
    public static IDisposable Umask(uint mask)
    {
        var old = SetUmask(mask);
        return new Restore(() => SetUmask(old));
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    public static UnixFileMode Mode(string path) => File.GetUnixFileMode(path);

    /// <summary>Whether user nobody (65534) can read <paramref name="path"/>.</summary>
    public static bool NobodyCanRead(string path)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat", path }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    /// <summary>Every directory under <paramref name="root"/> (itself included) with its mode, then every file.</summary>
    public static IEnumerable<(string Path, UnixFileMode Mode, bool IsDirectory)> Tree(string root) =>
        new[] { (root, Mode(root), true) }.Concat(new DirectoryInfo(root)
            .EnumerateFileSystemInfos("*", SearchOption.AllDirectories)
            .Select(e => (e.FullName, e.UnixFileMode, e is DirectoryInfo)));
}
