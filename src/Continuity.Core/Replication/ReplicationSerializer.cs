using System.Buffers.Binary;
using System.Text;
using Akka.Actor;
using Akka.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;
using Continuity.Core.Log;
using static Continuity.Core.Replication.ReplicationProtocol;

namespace Continuity.Core.Replication;

/// <summary>
/// Binary serializer of the data path (packet batches, acks, checkpoint chunks). Every value is
/// little-endian and length-prefixed; a message is written into one array sized up front, so a batch
/// costs one allocation on the way out and one array per packet on the way in (the packets themselves).
/// It is also the serializer of the standby journal's events (Append, CheckpointComplete).
/// Manifests are one letter: renaming a C# type never breaks a journal or a rolling upgrade.
/// </summary>
public sealed class ReplicationSerializer : SerializerWithStringManifest
{
    // Unique among the serializers of the ActorSystem; registered in reference.conf. Never change it:
    // it is stored with every journal row.
    public const int Id = 747_301;

    private const string AppendManifest = "A";
    private const string AppendedManifest = "a";
    private const string ChunkManifest = "C";
    private const string ChunkReceivedManifest = "c";
    private const string StoredManifest = "S";
    private const string RejectedManifest = "R";
    private const string CompleteManifest = "K";

    public ReplicationSerializer(ExtendedActorSystem system) : base(system) { }

    public override int Identifier => Id;

    public override string Manifest(object o) => o switch
    {
        Append => AppendManifest,
        Appended => AppendedManifest,
        CheckpointChunk => ChunkManifest,
        CheckpointChunkReceived => ChunkReceivedManifest,
        CheckpointStored => StoredManifest,
        CheckpointRejected => RejectedManifest,
        CheckpointComplete => CompleteManifest,
        _ => throw new ArgumentException($"{o.GetType()} is not a replication message", nameof(o)),
    };

    public override byte[] ToBinary(object obj)
    {
        switch (obj)
        {
            case Append a:
            {
                var size = Str(a.App) + 8 + 8 + 4;
                foreach (var p in a.Packets) size += 4 + p.Packet.Length;
                var w = new Writer(size);
                w.String(a.App); w.Long(a.Epoch); w.Long(a.FirstSeq); w.Int(a.Packets.Count);
                foreach (var p in a.Packets) w.Bytes(p.Packet);
                return w.Done();
            }
            case Appended a:
            {
                var w = new Writer(Str(a.App) + 8 + Str(a.Node) + 8);
                w.String(a.App); w.Long(a.Epoch); w.String(a.Node); w.Long(a.Seq);
                return w.Done();
            }
            case CheckpointChunk c:
            {
                var w = new Writer(Str(c.App) + 8 + Str(c.Id) + 8 + 4 + 4 + 4 + c.Bytes.Length + 4 + c.Sha256.Length);
                w.String(c.App); w.Long(c.Epoch); w.String(c.Id); w.Long(c.Mark); w.Int(c.Index); w.Int(c.Count);
                w.Bytes(c.Bytes); w.Bytes(c.Sha256);
                return w.Done();
            }
            case CheckpointChunkReceived k:
            {
                var w = new Writer(Str(k.App) + 8 + Str(k.Node) + Str(k.Id) + 4);
                w.String(k.App); w.Long(k.Epoch); w.String(k.Node); w.String(k.Id); w.Int(k.Index);
                return w.Done();
            }
            case CheckpointStored s:
            {
                var w = new Writer(Str(s.App) + 8 + Str(s.Node) + Str(s.Id) + 8);
                w.String(s.App); w.Long(s.Epoch); w.String(s.Node); w.String(s.Id); w.Long(s.Mark);
                return w.Done();
            }
            case CheckpointRejected r:
            {
                var w = new Writer(Str(r.App) + 8 + Str(r.Node) + Str(r.Id) + Str(r.Reason));
                w.String(r.App); w.Long(r.Epoch); w.String(r.Node); w.String(r.Id); w.String(r.Reason);
                return w.Done();
            }
            case CheckpointComplete k:
            {
                var w = new Writer(Str(k.App) + 8 + Str(k.Id) + 8);
                w.String(k.App); w.Long(k.Epoch); w.String(k.Id); w.Long(k.Mark);
                return w.Done();
            }
            default:
                throw new ArgumentException($"{obj.GetType()} is not a replication message", nameof(obj));
        }
    }

    /// <exception cref="SerializationException">The bytes are not a well-formed message of <paramref name="manifest"/>:
    /// the message names the message type, the field and its offset (a truncated frame, a length that does not fit,
    /// trailing bytes, an unsafe checkpoint id).</exception>
    public override object FromBinary(byte[] bytes, string manifest)
    {
        var r = new Reader(bytes, manifest);
        object message;
        switch (manifest)
        {
            case AppendManifest:
            {
                var app = r.String("app"); var epoch = r.Long("epoch"); var first = r.Long("first seq"); var count = r.Int("packet count");
                // Each packet takes at least its 4-byte length: a count the frame cannot hold is refused before the
                // array is allocated, or one corrupt journal row could ask for gigabytes.
                if (count < 0 || count > r.Remaining / 4)
                    throw r.Malformed("packet count", r.Position - 4, $"is {count} but only {r.Remaining} bytes follow (at least 4 per packet): the message is truncated or its count is wrong");
                if (count > 0 && first > long.MaxValue - (count - 1))
                    throw r.Malformed("first seq", r.Position - 12, $"{first} + {count} packets overflows the sequence numbers");
                var packets = new LoggedPacket[count];
                for (var i = 0; i < count; i++) packets[i] = new LoggedPacket(first + i, r.Bytes($"packet {i}"));
                message = new Append(app, epoch, first, packets);
                break;
            }
            case AppendedManifest:
                message = new Appended(r.String("app"), r.Long("epoch"), r.String("node"), r.Long("seq"));
                break;
            case ChunkManifest:
                // Only a chunk's id becomes a path (the standby's checkpoint directory): it alone is held to a safe name.
                message = new CheckpointChunk(r.String("app"), r.Long("epoch"), r.CheckpointId(), r.Long("mark"), r.Int("index"),
                    r.Int("count"), r.Bytes("bytes"), r.Bytes("sha256"));
                break;
            case ChunkReceivedManifest:
                message = new CheckpointChunkReceived(r.String("app"), r.Long("epoch"), r.String("node"), r.String("checkpoint id"), r.Int("index"));
                break;
            case StoredManifest:
                message = new CheckpointStored(r.String("app"), r.Long("epoch"), r.String("node"), r.String("checkpoint id"), r.Long("mark"));
                break;
            case RejectedManifest:
                message = new CheckpointRejected(r.String("app"), r.Long("epoch"), r.String("node"), r.String("checkpoint id"), r.String("reason"));
                break;
            case CompleteManifest:
                message = new CheckpointComplete(r.String("app"), r.Long("epoch"), r.String("checkpoint id"), r.Long("mark"));
                break;
            default:
                throw new SerializationException(
                    $"unknown replication manifest '{manifest}' ({bytes?.Length ?? 0} bytes): expected one of A, a, C, c, S, R, K");
        }
        // Writers size every message exactly: bytes left over mean the frame is not what its manifest says.
        if (r.Remaining != 0)
            throw r.Malformed("end of message", r.Position, $"{r.Remaining} unexpected bytes follow the last field");
        return message;
    }

    /// <summary>Whether <paramref name="id"/> can name a checkpoint directory: a checkpoint id becomes a directory name
    /// on every standby, so one from the wire must not climb out of it ("..", "/") or be empty.</summary>
    public static bool IsSafeCheckpointId(string id) =>
        id.Length is > 0 and <= 128 && id != "." && id != ".." &&
        id.All(ch => ch is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-' or '_' or '.');

    private static int Str(string s) => 4 + Encoding.UTF8.GetByteCount(s);

    private struct Writer(int size)
    {
        private readonly byte[] _buffer = new byte[size];
        private int _pos;

        public void Int(int v) { BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(_pos), v); _pos += 4; }
        public void Long(long v) { BinaryPrimitives.WriteInt64LittleEndian(_buffer.AsSpan(_pos), v); _pos += 8; }
        public void Bytes(ReadOnlySpan<byte> b) { Int(b.Length); b.CopyTo(_buffer.AsSpan(_pos)); _pos += b.Length; }
        public void String(string s)
        {
            var n = Encoding.UTF8.GetBytes(s, _buffer.AsSpan(_pos + 4));
            Int(n); _pos += n;
        }
        public byte[] Done() => _pos == _buffer.Length ? _buffer : throw new InvalidOperationException("size mismatch");
    }

    // Every length is checked against what is left: a truncated or hostile frame fails cleanly, naming the message,
    // the field and its offset, instead of allocating a huge array or surfacing as an ArgumentOutOfRangeException.
    private ref struct Reader(byte[]? buffer, string manifest)
    {
        private readonly ReadOnlySpan<byte> _buffer = buffer;
        private int _pos;

        public readonly int Position => _pos;
        public readonly int Remaining => _buffer.Length - _pos;

        public readonly SerializationException Malformed(string field, int offset, string problem) =>
            new($"malformed replication message '{manifest}' ({Name(manifest)}, {_buffer.Length} bytes): {field} at offset {offset} {problem}");

        private ReadOnlySpan<byte> Take(int n, string field, int fieldOffset)
        {
            if (n < 0)
                throw Malformed(field, fieldOffset, $"has a negative length ({n})");
            if (n > Remaining)
                throw Malformed(field, fieldOffset, $"needs {n} bytes but only {Remaining} remain: the message is truncated");
            var s = _buffer.Slice(_pos, n); _pos += n; return s;
        }
        public int Int(string field) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, field, _pos));
        public long Long(string field) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, field, _pos));
        public byte[] Bytes(string field)
        {
            var at = _pos;
            return Take(Int(field + " length"), field, at).ToArray();
        }
        public string String(string field)
        {
            var at = _pos;
            var raw = Take(Int(field + " length"), field, at);
            try { return Strict.GetString(raw); }
            catch (DecoderFallbackException) { throw Malformed(field, at, "is not valid UTF-8"); }
        }
        public string CheckpointId()
        {
            var at = _pos;
            var id = String("checkpoint id");
            if (!IsSafeCheckpointId(id))
                throw Malformed("checkpoint id", at, $"\"{(id.Length > 64 ? id[..64] + "..." : id)}\" is not a safe directory name " +
                    "(1-128 characters of A-Z a-z 0-9 . _ -, not \".\" or \"..\")");
            return id;
        }

        private static string Name(string manifest) => manifest switch
        {
            AppendManifest => "Append", AppendedManifest => "Appended", ChunkManifest => "CheckpointChunk", ChunkReceivedManifest => "CheckpointChunkReceived",
            StoredManifest => "CheckpointStored", RejectedManifest => "CheckpointRejected", CompleteManifest => "CheckpointComplete",
            _ => "unknown",
        };
    }

    // Invalid UTF-8 is an error, not silently replaced: a replaced app name or checkpoint id would be a different one.
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
