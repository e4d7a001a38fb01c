using Akka.Actor;
using Akka.Event;
using Continuity.Core.Capture;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Checkpoint;

/// <summary>
/// Sends one checkpoint archive to the standbys, at most <see cref="Window"/> chunks in flight to each: the next chunk
/// leaves only once the standby wrote one (<see cref="CheckpointChunkReceived"/>). A standby's chunks, its packet log
/// and the cluster's heartbeats share one connection: an image told all at once (256 MB: a thousand chunks per
/// standby) queued ahead of every heartbeat for seconds, and members were downed as unreachable before any failure
/// (lab, 256 MB program on a quiet machine: heartbeats 6-7 s late). Stores and rejections go on to the checkpointer.
/// Deletes the archive when it stops: once every standby stored or rejected it, or when its parent stops it for a
/// newer checkpoint.
/// </summary>
public sealed class CheckpointShipper : ReceiveActor
{
    /// <summary>Chunks in flight per standby: 8 MiB, well under a second of the link ahead of a heartbeat. 8 chunks
    /// (2 MiB) were too few to keep the link busy while the standby writes: 100 MB took 7 s to reach two standbys in
    /// the lab, and a crash in that time fell back to the checkpoint before.</summary>
    public const int Window = 32;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _app;
    private readonly long _epoch;
    private readonly CheckpointInfo _info;
    private readonly string _archive;
    private readonly byte[] _sha256;
    private readonly int _count;
    private readonly FileStream _file;
    // Per standby still receiving: where it is, and the next chunk to send it.
    private readonly Dictionary<string, (IActorRef AppActor, int Next)> _pending;

    public static Props Props(string app, long epoch, CheckpointInfo info, string archive, byte[] sha256,
        IReadOnlyList<StandbyRef> standbys) =>
        Akka.Actor.Props.Create(() => new CheckpointShipper(app, epoch, info, archive, sha256, standbys));

    public CheckpointShipper(string app, long epoch, CheckpointInfo info, string archive, byte[] sha256,
        IReadOnlyList<StandbyRef> standbys)
    {
        _app = app;
        _epoch = epoch;
        _info = info;
        _archive = archive;
        _sha256 = sha256;
        _file = File.OpenRead(archive);
        _count = (int)Math.Max(1, (_file.Length + Checkpointer.ChunkSize - 1) / Checkpointer.ChunkSize);
        _pending = standbys.ToDictionary(s => s.Node, s => (s.AppActor, 0));

        Receive<CheckpointChunkReceived>(r =>
        {
            if (r.Id != _info.Id || !_pending.TryGetValue(r.Node, out var standby)) return;
            SendUpTo(r.Node, standby, r.Index + 1 + Window);
        });
        Receive<CheckpointStored>(s => Done(s, s.Node, s.Id));
        Receive<CheckpointRejected>(r => Done(r, r.Node, r.Id));
    }

    protected override void PreStart()
    {
        foreach (var (node, standby) in _pending.ToList()) SendUpTo(node, standby, Window);
    }

    protected override void PostStop()
    {
        _file.Dispose();
        try { File.Delete(_archive); }
        catch (IOException e) { _log.Warning("[{0}] could not delete {1}: {2}", _app, _archive, e.Message); }
    }

    /// <summary>Sends the standby's chunks below <paramref name="end"/> that it has not had yet.</summary>
    private void SendUpTo(string node, (IActorRef AppActor, int Next) standby, int end)
    {
        var next = standby.Next;
        for (; next < Math.Min(end, _count); next++)
        {
            var offset = (long)next * Checkpointer.ChunkSize;
            var buffer = new byte[(int)Math.Min(Checkpointer.ChunkSize, _file.Length - offset)];
            _file.Position = offset;
            _file.ReadExactly(buffer);
            standby.AppActor.Tell(new CheckpointChunk(_app, _epoch, _info.Id, _info.Mark, next, _count, buffer, _sha256));
        }
        _pending[node] = (standby.AppActor, next);
    }

    private void Done(object outcome, string node, string id)
    {
        // Only a standby's first answer: once it refused one chunk it may refuse the others already in flight too.
        if (id != _info.Id || !_pending.Remove(node)) return;
        Context.Parent.Tell(outcome);
        if (_pending.Count == 0) Context.Stop(Self);
    }
}
