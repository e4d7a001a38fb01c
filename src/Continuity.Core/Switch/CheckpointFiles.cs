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
        foreach (var dir in stateDirs)
        {
            if (!Directory.Exists(dir))
                throw new DirectoryNotFoundException(
                    $"State directory {dir} does not exist: create it before the program starts, or remove it from the app's state-dirs.");
            var copy = CopyOf(checkpointDir, dir);
            if (Directory.Exists(copy)) Directory.Delete(copy, recursive: true);
            CopyTree(dir, copy);
        }
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
