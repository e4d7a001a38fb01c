using System.Net;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Election;
using Continuity.Core.Log;
using Continuity.Core.Platform;
using Continuity.Linux.Processes;
using Continuity.Linux.Tests.Criu;
using Xunit;

namespace Continuity.Linux.Tests.Processes;

/// <summary>
/// The primary's app actor over the real launcher (programs really start in their own pid namespace and really end);
/// the packet path and the VIP are stand-ins, so no namespace or firewall rule is touched.
/// </summary>
public sealed class ProgramFailureSpecs() : TestKit(ConfigurationFactory.ParseString("akka.loglevel = INFO"))
{
    private readonly NoNetwork _network = new();

    private IActorRef AppActor(params string[] command)
    {
        CriuLab.RequireRoot();
        var app = new AppSpec("kv", command, IPAddress.Parse("198.18.9.50"), 24, [new PortSpec("tcp", 7000)], TimeSpan.Zero, [],
            RecoveryPolicy.Replay, 100);
        var platform = new PlatformServices(_ => new NoQueue(), _ => new NoCriu(), _network, _network, new NamespacedLauncher(), new NoTakeover());
        var dir = Directory.CreateTempSubdirectory("ctc-app-").FullName;
        return Sys.ActorOf(Continuity.Core.Apps.AppActor.Props(app, platform, "node-1", "n1", dir, TimeSpan.FromMilliseconds(100)));
    }

    [Fact]
    public void A_program_that_prints_to_stderr_and_exits_3_is_reported_with_the_code_and_the_line()
    {
        var actor = AppActor("/bin/sh", "-c", "echo 'kv 1.0 starting'; sleep 0.5; echo 'fatal: cannot open /var/lib/kv/db' >&2; exit 3");
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);
        owner.ExpectMsg<OwnerProtocol.Started>(TimeSpan.FromSeconds(10));
        Assert.True(_network.VipUp);

        var failed = owner.ExpectMsg<OwnerProtocol.ProgramFailed>(TimeSpan.FromSeconds(10));
        Assert.Matches(@"^/bin/sh \(pid \d+\) exited with code 3 after \d+\.\d s; " +
            @"last output: kv 1\.0 starting \| fatal: cannot open /var/lib/kv/db$", failed.Reason);
        Assert.False(_network.VipUp);
        Assert.Equal(0, _network.Queued);
    }

    [Fact]
    public void A_command_that_does_not_exist_on_this_node_is_reported_as_a_start_failure_naming_it()
    {
        var actor = AppActor("/opt/missing/kv-server", "--port", "7000");
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);

        var failed = owner.ExpectMsg<OwnerProtocol.ProgramFailed>(TimeSpan.FromSeconds(10));
        Assert.StartsWith("could not start /opt/missing/kv-server --port 7000: /opt/missing/kv-server exited with code 127 right after start", failed.Reason);
        Assert.Contains("No such file or directory", failed.Reason);
        Assert.False(_network.VipUp);
    }

    [Fact]
    public void Bin_false_is_reported_as_failed_whether_it_ends_before_or_after_the_launch_returns()
    {
        var actor = AppActor("/bin/false");
        var owner = CreateTestProbe();
        actor.Tell(new OwnerProtocol.BecomePrimary("kv", 1, []), owner.Ref);

        var first = owner.ExpectMsg<object>(TimeSpan.FromSeconds(10));
        var failed = first as OwnerProtocol.ProgramFailed ?? owner.ExpectMsg<OwnerProtocol.ProgramFailed>(TimeSpan.FromSeconds(10));
        Assert.Contains("/bin/false", failed.Reason);
        Assert.Contains("exited with code 1", failed.Reason);
        Assert.False(_network.VipUp);
    }

    private sealed class NoNetwork : IPacketFilter, IVirtualIp
    {
        private int _queued;
        public volatile bool VipUp;
        public int Queued => Volatile.Read(ref _queued);
        // Like the real rules: adding one that is there, or removing one that is not, changes nothing (a node clears
        // leftovers at start by removing rules that are usually absent).
        public void QueueInbound(TrafficSelector selector, ushort queueNumber) => Interlocked.Exchange(ref _queued, 1);
        public void StopQueueing(TrafficSelector selector, ushort queueNumber) => Interlocked.Exchange(ref _queued, 0);
        public void BlockInbound(IPAddress vip) { }
        public void UnblockInbound(IPAddress vip) { }
        public void Add(IPAddress vip, int prefixLength) => VipUp = true;
        public void Remove(IPAddress vip, int prefixLength) => VipUp = false;
        public void Announce(IPAddress vip) { }
    }

    private sealed class NoQueue : IPacketQueue
    {
        public void Start(Action<IReadOnlyList<HeldPacket>> onBatch) { }
        public void AcceptUpTo(uint packetId) { }
        public void DropUpTo(uint packetId) { }
        public void Dispose() { }
    }

    private sealed class NoCriu : ICheckpointer
    {
        public Task<CheckpointImage> DumpAsync(int pid, string imageDir, Action whileFrozen, CancellationToken ct) =>
            Task.FromException<CheckpointImage>(new InvalidOperationException("no checkpoints in this test"));
        public Task<int> RestoreAsync(string imageDir, CancellationToken ct) => Task.FromResult(0);
    }

    private sealed class NoTakeover : ITakeover
    {
        public Task<TakeoverReport> RunAsync(AppSpec app, string checkpointDir, long mark, IReadOnlyList<LoggedPacket> logAfterMark,
            Func<Task> beforeOpen, CancellationToken ct) => Task.FromException<TakeoverReport>(new InvalidOperationException("no takeover in this test"));
    }
}
