using System.Diagnostics;
using Microsoft.Data.Sqlite;

namespace Continuity.Core.Tests.Support;

/// <summary>
/// A real, tiny file system (tmpfs of 512 KiB, mounted by the test; needs root) that a test can fill to the last
/// block, so a journal on it fails the way a full disk fails (SQLite Error 13: database or disk is full).
/// </summary>
public sealed class TinyDisk : IDisposable
{
    public string Dir { get; }
    private string Filler => Path.Combine(Dir, "filler");

    public TinyDisk(string size = "512k")
    {
        Dir = TestConfig.TempDir();
        Run(true, "mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", Dir);
    }

    /// <summary>Writes a filler file until the file system refuses another byte.</summary>
    public void Fill()
    {
        using var f = new FileStream(Filler, FileMode.Append, FileAccess.Write, FileShare.None, 1);
        var block = new byte[4096];
        try
        {
            while (true) { f.Write(block); f.Flush(); }
        }
        catch (IOException) { }
        // Smaller pieces for what a block-sized write left.
        try
        {
            while (true) { f.Write(block, 0, 64); f.Flush(); }
        }
        catch (IOException) { }
    }

    public void Free() => File.Delete(Filler);

    public void Dispose()
    {
        // Pooled SQLite connections keep the file open: the mount would be busy.
        SqliteConnection.ClearAllPools();
        if (!Run(false, "umount", Dir)) Run(false, "umount", "-l", Dir);
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }

    private static bool Run(bool check, string file, params string[] list)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in list) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0 && check)
            throw new InvalidOperationException($"{file} {string.Join(' ', list)} failed ({p.ExitCode}): {err.Trim()} (these tests need root)");
        return p.ExitCode == 0;
    }
}
