using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Continuity.Core.Security;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Checkpoint;

public static class CheckpointStoreProtocol
{
    public sealed record GetNewest;

    /// <summary>The newest complete checkpoint, or none. <paramref name="ImageDir"/> is what CRIU restores from
    /// (it holds the copies of the state directories laid out by Switch/CheckpointFiles).</summary>
    public sealed record Newest(CheckpointInfo? Info, string? ImageDir);
}

/// <summary>
/// A standby's checkpoint store: receives a checkpoint archive in chunks, verifies its SHA-256, and only then
/// makes it visible (rename of ID.partial to ID), so a takeover never starts from half a checkpoint. Keeps the
/// newest complete one only. Tells <paramref name="log"/> when a checkpoint is complete so the log can drop
/// the packets it covers.
/// </summary>
public sealed class CheckpointStore : ReceiveActor
{
    private const string ArchiveName = "archive.tar";
    private const string MetaName = "checkpoint.meta";
    private const string ImageName = "image";

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _app;
    private readonly string _node;
    private readonly string _dir;
    private readonly IActorRef _logActor;

    private CheckpointInfo? _newest;
    private Incoming? _incoming;
    // The last image refused: the chunks of it still in flight are dropped without another refusal.
    private string? _refused;

    private sealed class Incoming(string id, long epoch, string path, FileStream stream)
    {
        public string Id { get; } = id;
        public long Epoch { get; } = epoch;
        public string Path { get; } = path;
        public FileStream Stream { get; } = stream;
        public int Next { get; set; }
    }

    public CheckpointStore(string app, string node, string checkpointsDir, IActorRef log)
    {
        _app = app;
        _node = node;
        _dir = checkpointsDir;
        _logActor = log;

        Receive<CheckpointChunk>(OnChunk);
        Receive<CheckpointStoreProtocol.GetNewest>(_ => Sender.Tell(new CheckpointStoreProtocol.Newest(
            _newest, _newest is null ? null : Path.Combine(_dir, _newest.Id, ImageName))));
    }

    protected override void PreStart()
    {
        RootOnly.CreateDirectory(_dir);
        // Checkpoints stored by an older version got the umask's modes: they hold the program's memory.
        RootOnly.Tree(_dir);
        foreach (var partial in Directory.GetDirectories(_dir, "*.partial")) Directory.Delete(partial, true);
        foreach (var d in Directory.GetDirectories(_dir))
        {
            var info = ReadMeta(Path.Combine(d, MetaName));
            if (info is not null && CheckpointInfo.Compare(info, _newest) > 0) _newest = info;
        }
        if (_newest is not null)
        {
            _log.Info("[{0}] newest complete checkpoint on disk: {1} (epoch {2}, mark {3})", _app, _newest.Id, _newest.Epoch, _newest.Mark);
            // The log may have missed the completion (crash between rename and persist): tell it again, it is idempotent.
            _logActor.Tell(new CheckpointComplete(_app, _newest.Epoch, _newest.Id, _newest.Mark));
        }
    }

    protected override void PostStop() => _incoming?.Stream.Dispose();

    private void OnChunk(CheckpointChunk c)
    {
        try
        {
            // The id names a directory under _dir: "..", "/" or "" would make the store write or delete elsewhere.
            // The serializer refuses such ids from the wire; this guards the in-process path too.
            if (!Replication.ReplicationSerializer.IsSafeCheckpointId(c.Id))
            {
                Reject(c, $"checkpoint id \"{c.Id}\" is not a safe directory name");
                return;
            }
            if (c.Index == 0)
            {
                Abandon();
                var partial = Path.Combine(_dir, c.Id + ".partial");
                if (Directory.Exists(partial)) Directory.Delete(partial, true);
                RootOnly.CreateDirectory(partial);
                _incoming = new Incoming(c.Id, c.Epoch, partial, RootOnly.CreateFile(Path.Combine(partial, ArchiveName)));
            }
            if (_incoming is not null && _incoming.Id != c.Id)
            {
                // A chunk of an image the primary stopped shipping for a newer one (its last chunks in flight can
                // arrive after the newer one's first): dropping it must not abandon the newer one.
                _log.Debug("[{0}] chunk {1} of superseded checkpoint {2} ignored (receiving {3})", _app, c.Index, c.Id, _incoming.Id);
                return;
            }
            if (_incoming is null && c.Id == _refused)
            {
                // The rest of the window the primary sent before it heard of the refusal: one refusal per image.
                _log.Debug("[{0}] chunk {1} of refused checkpoint {2} ignored", _app, c.Index, c.Id);
                return;
            }
            if (_incoming is null || _incoming.Next != c.Index)
            {
                Reject(c, $"chunk {c.Index} of {c.Count} out of order");
                return;
            }
            _incoming.Stream.Write(c.Bytes);
            _incoming.Next++;
            if (c.Index < c.Count - 1)
            {
                // The primary sends the next chunk only on this (CheckpointShipper).
                Sender.Tell(new CheckpointChunkReceived(_app, c.Epoch, _node, c.Id, c.Index));
                return;
            }

            _incoming.Stream.Flush(true);
            _incoming.Stream.Position = 0;
            var hash = SHA256.HashData(_incoming.Stream);
            var bytes = _incoming.Stream.Length;
            _incoming.Stream.Dispose();
            if (!hash.AsSpan().SequenceEqual(c.Sha256))
            {
                Reject(c, "SHA-256 mismatch");
                return;
            }
            var partialDir = _incoming.Path;
            Directory.CreateDirectory(Path.Combine(partialDir, ImageName));
            TarFile.ExtractToDirectory(Path.Combine(partialDir, ArchiveName), Path.Combine(partialDir, ImageName), overwriteFiles: false);
            File.Delete(Path.Combine(partialDir, ArchiveName));
            var info = CheckpointInfo.Received(c.Epoch, c.Id, c.Mark, bytes);
            WriteMeta(Path.Combine(partialDir, MetaName), info);
            // The archive's entries carry the primary's modes; the extracted image is the program's memory and files.
            RootOnly.Tree(partialDir);
            var final = Path.Combine(_dir, c.Id);
            if (Directory.Exists(final)) Directory.Delete(final, true);
            Directory.Move(partialDir, final);
            _incoming = null;

            if (CheckpointInfo.Compare(info, _newest) >= 0)
            {
                _newest = info;
                foreach (var d in Directory.GetDirectories(_dir).Where(d => Path.GetFileName(d) != c.Id && !d.EndsWith(".partial")))
                    Directory.Delete(d, true);
            }
            _log.Info("[{0}] checkpoint {1} stored ({2} bytes, mark {3})", _app, c.Id, bytes, c.Mark);
            _logActor.Tell(new CheckpointComplete(_app, c.Epoch, c.Id, c.Mark));
            var stored = new CheckpointStored(_app, c.Epoch, _node, c.Id, c.Mark);
            Sender.Tell(stored);
            Context.Parent.Tell(stored);
        }
        catch (Exception e)
        {
            _log.Error(e, "[{0}] storing checkpoint {1} failed", _app, c.Id);
            Reject(c, e.Message);
        }
    }

    private void Reject(CheckpointChunk c, string reason)
    {
        _log.Warning("[{0}] checkpoint {1} rejected: {2}", _app, c.Id, reason);
        _refused = c.Id;
        Abandon();
        Sender.Tell(new CheckpointRejected(_app, c.Epoch, _node, c.Id, reason));
    }

    private void Abandon()
    {
        if (_incoming is null) return;
        _incoming.Stream.Dispose();
        try { Directory.Delete(_incoming.Path, true); } catch (IOException) { }
        _incoming = null;
    }

    internal static void WriteMeta(string path, CheckpointInfo i) => File.WriteAllLines(path,
    [
        $"epoch={i.Epoch}", $"id={i.Id}", $"mark={i.Mark}", $"at={i.At:O}", $"bytes={i.Bytes}",
    ]);

    internal static CheckpointInfo? ReadMeta(string path)
    {
        if (!File.Exists(path)) return null;
        var kv = File.ReadAllLines(path).Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        try
        {
            return new CheckpointInfo(long.Parse(kv["epoch"]), kv["id"], long.Parse(kv["mark"]),
                DateTimeOffset.Parse(kv["at"], CultureInfo.InvariantCulture), long.Parse(kv["bytes"]), TimeSpan.Zero);
        }
        catch (Exception) { return null; }
    }
}
