using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Continuity.Core.Platform;
using Xunit;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Tests.Checkpoint;

/// <summary>
/// CRIU dumps one program at a time per working directory, and programs of several applications share their node's.
/// The checkpointer withholds its program's input from the pause to the end of the dump, so it must wait for its turn
/// before it pauses: on the chaos lab a primary hung in the middle of its dump held the turn for 24 s, and the new
/// primary, which paused first and waited after, held its clients' input all that time.
/// </summary>
public sealed class CheckpointerDumpTurnSpecs() : TestKit(ConfigurationFactory.ParseString("akka.loglevel = INFO"))
{
    [Fact]
    public void A_checkpoint_holds_no_input_while_it_waits_for_another_programs_dump()
    {
        var criu = new TurnTakingCheckpointer();
        var capture = CreateTestProbe();
        var standby = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            TestConfig.TempDir(), new[] { new StandbyRef("n2", standby.Ref) }, null)));

        // Another program of the directory is being dumped: no pause yet, the capture keeps releasing.
        AwaitCondition(() => criu.Waiting == 1);
        capture.ExpectNoMsg(TimeSpan.FromMilliseconds(500));

        criu.GrantTurn();
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(17));
        capture.ExpectMsg<CaptureProtocol.Resume>();
        Assert.Equal((17L, 0), standby.ExpectMsg<CheckpointChunk>() is var c ? (c.Mark, c.Index) : default);
        Assert.Equal(1, criu.Dumps);
        AwaitCondition(() => criu.TurnsGivenBack == 1);
    }

    [Fact]
    public void A_checkpointer_stopped_while_it_waits_gives_the_turn_back_when_it_comes()
    {
        var criu = new TurnTakingCheckpointer();
        var capture = CreateTestProbe();
        var checkpointer = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            TestConfig.TempDir(), new[] { new StandbyRef("n2", CreateTestProbe().Ref) }, null)));
        AwaitCondition(() => criu.Waiting == 1);
        Watch(checkpointer);
        Sys.Stop(checkpointer);   // a new epoch, or the application stopped
        ExpectTerminated(checkpointer);

        criu.GrantTurn();
        AwaitCondition(() => criu.TurnsGivenBack == 1);
        Assert.Equal(0, criu.Dumps);
        capture.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void A_checkpointer_stopped_during_its_dump_gives_the_turn_back_only_when_the_dump_is_done()
    {
        var criu = new TurnTakingCheckpointer { HoldDump = true };
        var capture = CreateTestProbe();
        var checkpointer = Sys.ActorOf(Props.Create(() => new Checkpointer(TestConfig.App("kv", null), 1, () => 42, criu, capture.Ref,
            TestConfig.TempDir(), new[] { new StandbyRef("n2", CreateTestProbe().Ref) }, null)));
        AwaitCondition(() => criu.Waiting == 1);
        criu.GrantTurn();
        capture.ExpectMsg<CaptureProtocol.Pause>();
        capture.Reply(new CaptureProtocol.Paused(5));
        AwaitCondition(() => criu.Dumps == 1);
        Watch(checkpointer);
        Sys.Stop(checkpointer);
        ExpectTerminated(checkpointer);

        // Two dumps must never meet in one directory: the turn stays taken while criu still runs.
        Thread.Sleep(200);
        Assert.Equal(0, criu.TurnsGivenBack);
        criu.FinishDump();
        AwaitCondition(() => criu.TurnsGivenBack == 1);
    }

    /// <summary>A checkpointer whose turns come when the test grants them, and says when they are given back.</summary>
    private sealed class TurnTakingCheckpointer : ICheckpointer
    {
        private readonly TaskCompletionSource _turn = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _dumpDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _waiting, _dumps, _givenBack;
        public bool HoldDump { get; init; }
        public int Waiting => Volatile.Read(ref _waiting);
        public int Dumps => Volatile.Read(ref _dumps);
        public int TurnsGivenBack => Volatile.Read(ref _givenBack);

        public void GrantTurn() => _turn.TrySetResult();
        public void FinishDump() => _dumpDone.TrySetResult();

        public async Task<IDumpTurn> WaitForDumpTurnAsync(int pid, CancellationToken ct)
        {
            Interlocked.Increment(ref _waiting);
            await _turn.Task;
            return new Turn(this);
        }

        public Task<CheckpointImage> DumpAsync(int pid, string imageDir, Action whileFrozen, CancellationToken ct) =>
            throw new InvalidOperationException("the checkpointer must dump in its turn");

        public Task<int> RestoreAsync(string imageDir, CancellationToken ct) => Task.FromResult(4242);

        private sealed class Turn(TurnTakingCheckpointer owner) : IDumpTurn
        {
            private int _disposed;

            public async Task<CheckpointImage> DumpAsync(string imageDir, Action whileFrozen, CancellationToken ct)
            {
                Interlocked.Increment(ref owner._dumps);
                if (owner.HoldDump) await owner._dumpDone.Task;
                Directory.CreateDirectory(imageDir);
                await File.WriteAllBytesAsync(Path.Combine(imageDir, "pages-1.img"), new byte[1000], ct);
                whileFrozen();
                return new CheckpointImage(imageDir, 1000, TimeSpan.FromMilliseconds(3), TimeSpan.FromMilliseconds(5));
            }

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _disposed, 1) == 0) Interlocked.Increment(ref owner._givenBack);
            }
        }
    }
}
