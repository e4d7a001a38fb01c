namespace Continuity.Core.Security;

/// <summary>
/// What a node keeps on disk holds its clients' traffic (the packet log) and the protected program's memory and files
/// (checkpoint images, state copies): directories 0700 and files 0600, owned by the node's user (root). Modes are set
/// explicitly after creation because the umask the node was started with (022, or 000 in a careless unit file) would
/// otherwise decide them.
/// </summary>
public static class RootOnly
{
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode PrivateFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>SQLite files of the packet log (ContinuityApps.PersistenceConfig puts them in the state directory).</summary>
    public static readonly IReadOnlyList<string> JournalFiles = ["journal.db", "snapshots.db"];

    /// <summary>Creates <paramref name="path"/> (and missing parents, with the usual modes) and makes it 0700.</summary>
    public static string CreateDirectory(string path)
    {
        Directory.CreateDirectory(path, DirectoryMode);
        Restrict(path, DirectoryMode);
        return path;
    }

    /// <summary>Creates a new file open for writing, 0600 from its first byte.</summary>
    public static FileStream CreateFile(string path, System.IO.FileMode mode = System.IO.FileMode.CreateNew)
    {
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = mode, Access = FileAccess.ReadWrite, Share = FileShare.None,
            UnixCreateMode = OperatingSystem.IsWindows() ? null : PrivateFileMode,
        });
        Restrict(path, PrivateFileMode);
        return stream;
    }

    /// <summary>Makes every directory under <paramref name="root"/> (itself included) 0700 and every file 0600.
    /// Symbolic links are left alone: chmod would follow them out of the tree.</summary>
    public static void Tree(string root)
    {
        if (OperatingSystem.IsWindows() || !Directory.Exists(root)) return;
        Restrict(root, DirectoryMode);
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", SearchOption.AllDirectories))
        {
            if (entry.LinkTarget is not null) continue;
            Restrict(entry.FullName, entry is DirectoryInfo ? DirectoryMode : PrivateFileMode);
        }
    }

    /// <summary>
    /// The node's state directory: 0700, and the packet log's SQLite files 0600. The database files are created empty
    /// (SQLite takes an empty file for an empty database) because SQLite gives its -wal, -shm and -journal files the
    /// mode of the database file: created by SQLite itself, they would all get 0644 minus the umask.
    /// </summary>
    public static void PrepareStateDir(string stateDir, bool sqliteJournal = true)
    {
        CreateDirectory(stateDir);
        if (!sqliteJournal) return;
        foreach (var name in JournalFiles)
        {
            var db = Path.Combine(stateDir, name);
            if (!File.Exists(db)) CreateFile(db, System.IO.FileMode.OpenOrCreate).Dispose();
            foreach (var file in Directory.EnumerateFiles(stateDir, name + "*")) Restrict(file, PrivateFileMode);
        }
    }

    private static void Restrict(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, mode);
    }
}
