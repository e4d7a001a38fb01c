using System.Formats.Tar;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Checkpoint;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Checkpoint;

public sealed class CheckpointStoreSpecs() : TestKit(ConfigurationFactory.ParseString("akka.loglevel = INFO"))
{
    private static (byte[] Archive, byte[] Sha) Archive()
    {
        var src = TestConfig.TempDir();
        File.WriteAllText(Path.Combine(src, "core-1.img"), "image");
        Directory.CreateDirectory(Path.Combine(src, "files", "0"));
        File.WriteAllText(Path.Combine(src, "files", "0", "data"), "state");
        using var ms = new MemoryStream();
        TarFile.CreateFromDirectory(src, ms, includeBaseDirectory: false);
        var bytes = ms.ToArray();
        return (bytes, SHA256.HashData(bytes));
    }

    private static IEnumerable<CheckpointChunk> Chunks(string id, byte[] archive, byte[] sha, int size = 1000)
    {
        var count = (archive.Length + size - 1) / size;
        for (var i = 0; i < count; i++)
            yield return new CheckpointChunk("kv", 1, id, 42, i, count, archive[(i * size)..Math.Min(archive.Length, (i + 1) * size)], sha);
    }

    /// <summary>Sends the chunks as the primary's shipper does, checking that the store acknowledges every one it wrote
    /// except the last (whose answer is the checkpoint stored or rejected): the shipper sends more only on those.</summary>
    private void Ship(IActorRef store, IEnumerable<CheckpointChunk> chunks)
    {
        foreach (var c in chunks)
        {
            store.Tell(c);
            if (c.Index < c.Count - 1)
                Assert.Equal(new CheckpointChunkReceived("kv", c.Epoch, "n2", c.Id, c.Index), ExpectMsg<CheckpointChunkReceived>());
        }
    }

    [Fact]
    public void A_late_chunk_of_an_image_the_primary_gave_up_for_a_newer_one_does_not_spoil_the_newer_one()
    {
        var dir = TestConfig.TempDir();
        var log = CreateTestProbe();
        var store = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, log.Ref)));
        var (archive, sha) = Archive();
        var older = Chunks("e1-a", archive, sha).ToList();
        var newer = Chunks("e1-b", archive, sha).Select(c => c with { Mark = 50 }).ToList();

        Ship(store, older.Take(2));
        // The primary started shipping e1-b; one chunk of e1-a was still on its way and arrives after e1-b's first.
        Ship(store, newer.Take(1));
        store.Tell(older[2]);
        Ship(store, newer.Skip(1));

        Assert.Equal("e1-b", ExpectMsg<CheckpointStored>().Id);
        store.Tell(new CheckpointStoreProtocol.GetNewest());
        Assert.Equal(("e1-b", 50L), ExpectMsg<CheckpointStoreProtocol.Newest>().Info is { } i ? (i.Id, i.Mark) : default);
    }

    [Fact]
    public void Checkpoint_chunks_with_a_bad_checksum_are_rejected()
    {
        var dir = TestConfig.TempDir();
        var log = CreateTestProbe();
        var store = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, log.Ref)));
        var (archive, sha) = Archive();
        var badSha = sha.ToArray();
        badSha[0] ^= 0xff;

        Ship(store, Chunks("e1-bad", archive, badSha));
        var rejected = ExpectMsg<CheckpointRejected>();
        Assert.Equal("e1-bad", rejected.Id);
        Assert.Contains("SHA-256", rejected.Reason);
        log.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Empty(Directory.GetDirectories(dir));
        store.Tell(new CheckpointStoreProtocol.GetNewest());
        Assert.Null(ExpectMsg<CheckpointStoreProtocol.Newest>().Info);
    }

    [Fact]
    public void A_standby_refuses_an_image_once_not_once_for_each_of_its_chunks_still_in_flight()
    {
        var dir = TestConfig.TempDir();
        var store = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, CreateTestProbe().Ref)));
        var (archive, sha) = Archive();
        var chunks = Chunks("e1-a", archive, sha, size: 100).ToList();
        Assert.True(chunks.Count > 4);

        // Its first chunk never arrived (the standby restarted meanwhile); the primary's window is already on its way.
        foreach (var c in chunks.Skip(1).Take(4)) store.Tell(c);

        Assert.Equal("e1-a", ExpectMsg<CheckpointRejected>().Id);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        // The next image is taken as usual.
        Ship(store, Chunks("e1-b", archive, sha));
        Assert.Equal("e1-b", ExpectMsg<CheckpointStored>().Id);
    }

    [Fact]
    public void A_verified_checkpoint_becomes_the_newest_and_replaces_the_older_one()
    {
        var dir = TestConfig.TempDir();
        var log = CreateTestProbe();
        var store = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, log.Ref)));
        var (archive, sha) = Archive();

        Ship(store, Chunks("e1-a", archive, sha));
        Assert.Equal("e1-a", ExpectMsg<CheckpointStored>().Id);
        Assert.Equal(new CheckpointComplete("kv", 1, "e1-a", 42), log.ExpectMsg<CheckpointComplete>());
        Ship(store, Chunks("e1-b", archive, sha).Select(c => c with { Mark = 50 }));
        Assert.Equal("e1-b", ExpectMsg<CheckpointStored>().Id);

        store.Tell(new CheckpointStoreProtocol.GetNewest());
        var newest = ExpectMsg<CheckpointStoreProtocol.Newest>();
        Assert.Equal(("e1-b", 50L), (newest.Info!.Id, newest.Info.Mark));
        Assert.Equal("state", File.ReadAllText(Path.Combine(newest.ImageDir!, "files", "0", "data")));
        Assert.Equal(["e1-b"], Directory.GetDirectories(dir).Select(Path.GetFileName));

        // A restarted store finds it again on disk.
        Watch(store); Sys.Stop(store); ExpectTerminated(store);
        var again = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, log.Ref)));
        again.Tell(new CheckpointStoreProtocol.GetNewest());
        Assert.Equal("e1-b", ExpectMsg<CheckpointStoreProtocol.Newest>().Info!.Id);
    }

    [Fact]
    public void A_stored_checkpoint_is_dated_by_when_its_program_was_frozen_not_by_when_the_copy_arrived()
    {
        var dir = TestConfig.TempDir();
        var store = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, CreateTestProbe().Ref)));
        var (archive, sha) = Archive();
        var frozen = new DateTime(2026, 11, 30, 10, 3, 40, 71, DateTimeKind.Utc);
        var id = CheckpointInfo.NewId(6, frozen, 31);
        Assert.Equal("e6-20261130100340071-31", id);

        Ship(store, Chunks(id, archive, sha));
        ExpectMsg<CheckpointStored>();
        store.Tell(new CheckpointStoreProtocol.GetNewest());
        Assert.Equal(new DateTimeOffset(frozen), ExpectMsg<CheckpointStoreProtocol.Newest>().Info!.At);
        Assert.Null(CheckpointInfo.FrozenAt("e1-a")); // an id of another form: the arrival is all there is
    }

    [Fact]
    public void A_checkpoint_whose_id_climbs_out_of_the_store_is_rejected_and_touches_nothing_outside()
    {
        var parent = TestConfig.TempDir();
        var dir = Path.Combine(parent, "store");
        var victim = Path.Combine(parent, "victim");
        Directory.CreateDirectory(victim);
        File.WriteAllText(Path.Combine(victim, "keep"), "precious");
        var log = CreateTestProbe();
        var store = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, log.Ref)));
        var (archive, sha) = Archive();

        foreach (var c in Chunks("../victim", archive, sha)) store.Tell(c);
        var rejected = ExpectMsg<CheckpointRejected>();
        Assert.Contains("is not a safe directory name", rejected.Reason);
        Assert.Equal("precious", File.ReadAllText(Path.Combine(victim, "keep")));
        Assert.Equal(["store", "victim"], Directory.GetDirectories(parent).Select(Path.GetFileName).Order());
        log.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void A_stored_checkpoint_is_readable_by_root_only_whatever_the_umask_and_the_archive_modes()
    {
        // The archive as a careless primary might make it: world-readable files and directories.
        var src = TestConfig.TempDir();
        Directory.CreateDirectory(Path.Combine(src, "state", "var", "lib", "kv"));
        File.WriteAllText(Path.Combine(src, "pages-1.img"), "memory of the program");
        File.WriteAllText(Path.Combine(src, "state", "var", "lib", "kv", "data"), "state");
        foreach (var d in Directory.GetDirectories(src, "*", SearchOption.AllDirectories)) File.SetUnixFileMode(d, (UnixFileMode)0b111_111_111);
        foreach (var f in Directory.GetFiles(src, "*", SearchOption.AllDirectories)) File.SetUnixFileMode(f, (UnixFileMode)0b110_110_110);
        using var ms = new MemoryStream();
        TarFile.CreateFromDirectory(src, ms, includeBaseDirectory: false);
        var archive = ms.ToArray();

        var dir = Path.Combine(TestConfig.TempDir(), "checkpoints");
        using (Support.FileAccessCheck.Umask(0))
        {
            var store = Sys.ActorOf(Props.Create(() => new CheckpointStore("kv", "n2", dir, CreateTestProbe().Ref)));
            Ship(store, Chunks("e1-a", archive, SHA256.HashData(archive)));
            Assert.Equal("e1-a", ExpectMsg<CheckpointStored>().Id);
        }

        var entries = Support.FileAccessCheck.Tree(dir).ToList();
        Assert.True(entries.Count >= 8, string.Join(", ", entries.Select(e => e.Path)));
        foreach (var (path, mode, isDir) in entries)
            Assert.True(mode == (isDir ? (UnixFileMode)0b111_000_000 : (UnixFileMode)0b110_000_000), $"{path} is {mode}");
        var image = Directory.GetFiles(dir, "pages-1.img", SearchOption.AllDirectories).Single();
        Assert.False(Support.FileAccessCheck.NobodyCanRead(image));
    }
}
