using System.Formats.Tar;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Continuity.Core.Log;
using Continuity.Core.Tests.Log;
using Continuity.Core.Tests.Support;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Apps;

/// <summary>A standby's app actor whose SQLite journal is on a real file system that fills up.</summary>
// In the "cluster" collection: mounting and filling a file system is slow enough to upset timing-sensitive tests run alongside.
[Collection("cluster")]
public sealed class AppActorJournalFailureSpecs : TestKit
{
    private readonly TinyDisk _disk;
    private readonly FakePlatform _platform = new();
    private readonly AppSpec _app = TestConfig.App("kv");

    public AppActorJournalFailureSpecs() : this(new TinyDisk()) { }

    private AppActorJournalFailureSpecs(TinyDisk disk) : base(ConfigurationFactory.ParseString("continuity.persistence.retry-interval = 300ms")
        .WithFallback(StandbyLogJournalFailureSpecs.SqliteConfig(disk.Dir))) => _disk = disk;

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing) _disk.Dispose();
    }

    /// <summary>Stands in for the node's proxy to the owner singleton (a sibling of the app actor).</summary>
    private sealed class Forward : ReceiveActor
    {
        public Forward(IActorRef to) => ReceiveAny(m => to.Forward(m));
    }

    private static Append Batch(long first, int count, int size = 1) =>
        new("kv", 1, first, Enumerable.Range(0, count).Select(i => new LoggedPacket(first + i, Enumerable.Repeat((byte)1, size).ToArray())).ToArray());

    private OwnerProtocol.NodeStatus StatusOf(IActorRef actor)
    {
        actor.Tell(new OwnerProtocol.GetNodeStatus("kv"));
        return ExpectMsg<OwnerProtocol.NodeStatus>(TimeSpan.FromSeconds(5));
    }

    private static async Task<CheckpointChunk> Checkpoint(string id, long mark)
    {
        var src = TestConfig.TempDir();
        await File.WriteAllTextAsync(Path.Combine(src, "core-1.img"), id);
        var ms = new MemoryStream();
        await TarFile.CreateFromDirectoryAsync(src, ms, includeBaseDirectory: false);
        var archive = ms.ToArray();
        return new CheckpointChunk("kv", 1, id, mark, 0, 1, archive, SHA256.HashData(archive));
    }

    [Fact]
    public async Task A_standby_whose_disk_fills_reports_the_journal_and_its_error_to_the_owner_refuses_to_take_over_and_rejoins_once_space_is_freed()
    {
        var ownerProxy = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new Forward(ownerProxy.Ref)), AppsGuardian.OwnerProxyName("kv"));
        var actor = Sys.ActorOf(Continuity.Core.Apps.AppActor.Props(_app, _platform.Services, "node-2", "n2", TestConfig.TempDir()), "app-kv");
        var owner = CreateTestProbe();
        var primary = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomeStandby("kv", 1, "node-1"), owner.Ref);
        actor.Tell(Batch(1, 2), primary.Ref);
        Assert.Equal(2, primary.ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);
        Assert.True(StatusOf(actor).LogComplete);

        _disk.Fill();
        actor.Tell(Batch(3, 4, size: 16 * 1024), primary.Ref);

        var failed = ownerProxy.ExpectMsg<OwnerProtocol.JournalFailed>(TimeSpan.FromSeconds(20));
        Assert.Equal(("kv", "node-2"), (failed.App, failed.Node));
        Assert.StartsWith("SQLite journal", failed.Reason);
        Assert.EndsWith("SQLite Error 13: 'database or disk is full'", failed.Reason);
        primary.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // the batch that failed is not acknowledged
        var status = StatusOf(actor);
        Assert.Equal(failed.Reason, status.JournalFailure);
        Assert.False(status.LogComplete);

        // A decision that crossed the report: the node does not take over from a log it knows is incomplete.
        actor.Tell(new OwnerProtocol.TakeOver("kv", 2, [], false, "node-1", "primary removed"), owner.Ref);
        Assert.Contains("packet log is down", owner.ExpectMsg<OwnerProtocol.TakeoverFailed>(TimeSpan.FromSeconds(5)).Reason);
        Assert.False(_platform.Takeover.Called.Task.IsCompleted);
        // Retries while the disk is still full report nothing new to the owner.
        ownerProxy.ExpectNoMsg(TimeSpan.FromSeconds(1));

        _disk.Free();
        var back = ownerProxy.ExpectMsg<OwnerProtocol.JournalRecovered>(TimeSpan.FromSeconds(20));
        Assert.Equal("node-2", back.Node);
        status = StatusOf(actor);
        Assert.Null(status.JournalFailure);
        Assert.False(status.LogComplete); // not a successor before a fresh checkpoint

        // The primary went on without it: its next batch starts after a gap, which the rejoined log accepts.
        actor.Tell(Batch(9, 2), primary.Ref);
        Assert.Equal(10, primary.ExpectMsg<Appended>(TimeSpan.FromSeconds(20)).Seq);
        Assert.False(StatusOf(actor).LogComplete);

        actor.Tell(await Checkpoint("e1-fresh", 8), primary.Ref);
        primary.ExpectMsg<CheckpointStored>(TimeSpan.FromSeconds(20));
        AwaitAssert(() => Assert.True(StatusOf(actor).LogComplete), TimeSpan.FromSeconds(5));
    }
}
