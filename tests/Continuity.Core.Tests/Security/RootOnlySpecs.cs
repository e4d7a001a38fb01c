using Continuity.Core.Security;
using Continuity.Core.Tests.Support;
using Microsoft.Data.Sqlite;
using Xunit;

namespace Continuity.Core.Tests.Security;

/// <summary>The node's state directory on a real file system, under umask 000 (the worst case a unit file can give).</summary>
public sealed class RootOnlySpecs
{
    private const UnixFileMode Dir0700 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode File0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public void The_packet_log_database_and_its_wal_files_are_readable_by_root_only_whatever_the_umask()
    {
        var stateDir = Path.Combine(TestConfig.TempDir(), "state");
        using (FileAccessCheck.Umask(0))
        {
            RootOnly.PrepareStateDir(stateDir);
            // The same SQLite library as the journal plugin, in WAL mode: the -wal and -shm files exist while it is open.
            using var db = new SqliteConnection($"Data Source={Path.Combine(stateDir, "journal.db")};Pooling=False");
            db.Open();
            using (var cmd = db.CreateCommand())
            {
                cmd.CommandText = "PRAGMA journal_mode=WAL; CREATE TABLE journal(seq INTEGER, packet BLOB); INSERT INTO journal VALUES (1, x'45000014');";
                cmd.ExecuteNonQuery();
            }
            var files = Directory.GetFiles(stateDir).Select(Path.GetFileName).Order().ToList();
            Assert.Contains("journal.db-wal", files);
            Assert.Contains("journal.db-shm", files);
            Assert.Equal(Dir0700, FileAccessCheck.Mode(stateDir));
            foreach (var f in Directory.GetFiles(stateDir))
                Assert.True(FileAccessCheck.Mode(f) == File0600, $"{Path.GetFileName(f)} is {FileAccessCheck.Mode(f)}, not 0600");
            Assert.False(FileAccessCheck.NobodyCanRead(Path.Combine(stateDir, "journal.db-wal")));
        }
    }

    [Fact]
    public void Journal_files_left_readable_by_an_older_version_are_made_root_only_at_start()
    {
        var stateDir = TestConfig.TempDir();
        foreach (var name in new[] { "journal.db", "journal.db-wal", "snapshots.db" })
        {
            File.WriteAllText(Path.Combine(stateDir, name), "");
            File.SetUnixFileMode(Path.Combine(stateDir, name), File0600 | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        File.SetUnixFileMode(stateDir, Dir0700 | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        RootOnly.PrepareStateDir(stateDir);

        Assert.Equal(Dir0700, FileAccessCheck.Mode(stateDir));
        Assert.All(Directory.GetFiles(stateDir), f => Assert.Equal(File0600, FileAccessCheck.Mode(f)));
    }

    [Fact]
    public void A_postgresql_node_gets_no_stray_sqlite_files()
    {
        var stateDir = Path.Combine(TestConfig.TempDir(), "state");
        RootOnly.PrepareStateDir(stateDir, sqliteJournal: false);
        Assert.Equal(Dir0700, FileAccessCheck.Mode(stateDir));
        Assert.Empty(Directory.GetFileSystemEntries(stateDir));
    }

    [Fact]
    public void A_tree_is_made_root_only_but_its_symbolic_links_are_not_followed_out_of_it()
    {
        var root = TestConfig.TempDir();
        var outside = Path.Combine(TestConfig.TempDir(), "outside");
        File.WriteAllText(outside, "x");
        File.SetUnixFileMode(outside, File0600 | UnixFileMode.OtherRead);
        Directory.CreateDirectory(Path.Combine(root, "a", "b"));
        File.WriteAllText(Path.Combine(root, "a", "b", "f"), "x");
        File.SetUnixFileMode(Path.Combine(root, "a", "b", "f"), (UnixFileMode)0b110_110_110);
        File.CreateSymbolicLink(Path.Combine(root, "link"), outside);

        RootOnly.Tree(root);

        foreach (var (path, mode, isDir) in FileAccessCheck.Tree(root).Where(e => !e.Path.EndsWith("link")))
            Assert.True(mode == (isDir ? Dir0700 : File0600), $"{path} is {mode}");
        Assert.Equal(File0600 | UnixFileMode.OtherRead, FileAccessCheck.Mode(outside));
    }
}
