using System.Text.Json;
using Continuity.Core.Security;

namespace Continuity.Core.Switch;

/// <summary>
/// Where a checkpoint keeps the copies of the program's state directories: under <c>state/</c> in the checkpoint
/// directory, at the directory's absolute path (<c>/var/lib/app</c> → <c>CHECKPOINT/state/var/lib/app</c>), next to
/// the CRIU images. The copy must be taken while the program is frozen (the dump's whileFrozen): CRIU records the
/// size of every open file and refuses to restore one that changed.
/// </summary>
public static class CheckpointFiles
{
    public const string StateFolder = "state";

    /// <summary>The original modes of the copied files and directories (JSON: absolute path to octal mode), next to the
    /// copies. The copies themselves are root-only (0700/0600) like the rest of a checkpoint; the restore gives each
    /// entry its own mode back, so the program finds its files as it left them.</summary>
    public const string ModesFile = "state-modes.json";

    /// <summary>The copy of <paramref name="stateDir"/> inside <paramref name="checkpointDir"/>.</summary>
    public static string CopyOf(string checkpointDir, string stateDir)
    {
        var full = Path.GetFullPath(stateDir).TrimEnd('/');
        if (full.Length == 0)
            throw new ArgumentException("The root directory cannot be a state directory: name the program's own data directory.");
        return Path.Combine(checkpointDir, StateFolder, full.TrimStart('/'));
    }

    /// <summary>Copies each state directory into the checkpoint (run it in the dump's whileFrozen).</summary>
    public static void SaveStateDirs(string checkpointDir, IEnumerable<string> stateDirs)
    {
        var modes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var dir in stateDirs)
        {
            if (!Directory.Exists(dir))
                throw new DirectoryNotFoundException(
                    $"State directory {dir} does not exist: create it before the program starts, or remove it from the app's state-dirs.");
            var copy = CopyOf(checkpointDir, dir);
            if (Directory.Exists(copy)) Directory.Delete(copy, recursive: true);
            CopyTree(dir, copy);
            if (OperatingSystem.IsWindows()) continue;
            var full = Path.GetFullPath(dir).TrimEnd('/');
            foreach (var entry in new DirectoryInfo(full).EnumerateFileSystemInfos("*", SearchOption.AllDirectories))
                if (entry.LinkTarget is null)
                    modes[entry.FullName] = Convert.ToString((int)entry.UnixFileMode, 8);
        }
        var state = Path.Combine(checkpointDir, StateFolder);
        if (!Directory.Exists(state)) return;
        using (var f = RootOnly.CreateFile(Path.Combine(checkpointDir, ModesFile), FileMode.Create))
            JsonSerializer.Serialize(f, modes);
        RootOnly.Tree(state);
    }

    /// <summary>Puts each state directory back exactly as the checkpoint saw it (files created since are removed:
    /// the restored program never knew them).</summary>
    public static void RestoreStateDirs(string checkpointDir, IEnumerable<string> stateDirs)
    {
        foreach (var dir in stateDirs)
        {
            var copy = CopyOf(checkpointDir, dir);
            if (!Directory.Exists(copy))
                throw new DirectoryNotFoundException(
                    $"The checkpoint in {checkpointDir} has no copy of state directory {dir} (expected {copy}): it was taken " +
                    "with other state-dirs, or shipped incompletely. Take a new checkpoint, or fix the app's state-dirs.");
            // Empty the directory but keep it: it is often a mount point (a volume, or a lab node's private
            // copy), which cannot be removed or replaced.
            if (Directory.Exists(dir))
            {
                foreach (var sub in Directory.EnumerateDirectories(dir)) Directory.Delete(sub, recursive: true);
                foreach (var file in Directory.EnumerateFiles(dir)) File.Delete(file);
            }
            CopyTree(copy, dir);
        }
        RestoreModes(checkpointDir, stateDirs.Select(d => Path.GetFullPath(d).TrimEnd('/') + "/").ToList());
    }

    // A checkpoint taken before modes were recorded has none: its copies kept their own modes, which File.Copy carried over.
    private static void RestoreModes(string checkpointDir, IReadOnlyList<string> restored)
    {
        var file = Path.Combine(checkpointDir, ModesFile);
        if (OperatingSystem.IsWindows() || !File.Exists(file)) return;
        var modes = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(file)) ?? [];
        foreach (var (path, octal) in modes)
            if (restored.Any(d => path.StartsWith(d, StringComparison.Ordinal)) && (File.Exists(path) || Directory.Exists(path)))
                File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32(octal, 8));
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var sub in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, sub)));
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)), overwrite: true);
    }
}
