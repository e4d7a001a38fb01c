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

    public override object FromBinary(byte[] bytes, string manifest)
    {
        var r = new Reader(bytes);
        switch (manifest)
        {
            case AppendManifest:
            {
                var app = r.String(); var epoch = r.Long(); var first = r.Long(); var count = r.Int();
                if (count < 0) throw new SerializationException("negative packet count");
                var packets = new LoggedPacket[count];
                for (var i = 0; i < count; i++) packets[i] = new LoggedPacket(first + i, r.Bytes());
                return new Append(app, epoch, first, packets);
            }
            case AppendedManifest:
                return new Appended(r.String(), r.Long(), r.String(), r.Long());
            case ChunkManifest:
                return new CheckpointChunk(r.String(), r.Long(), r.String(), r.Long(), r.Int(), r.Int(), r.Bytes(), r.Bytes());
            case StoredManifest:
                return new CheckpointStored(r.String(), r.Long(), r.String(), r.String(), r.Long());
            case RejectedManifest:
                return new CheckpointRejected(r.String(), r.Long(), r.String(), r.String(), r.String());
            case CompleteManifest:
                return new CheckpointComplete(r.String(), r.Long(), r.String(), r.Long());
            default:
                throw new SerializationException($"unknown replication manifest '{manifest}'");
        }
    }

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

    // Every length is checked against what is left: a truncated or hostile frame fails cleanly
    // instead of allocating a huge array.
    private ref struct Reader(byte[] buffer)
    {
        private readonly ReadOnlySpan<byte> _buffer = buffer;
        private int _pos;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || n > _buffer.Length - _pos) throw new SerializationException("truncated replication message");
            var s = _buffer.Slice(_pos, n); _pos += n; return s;
        }
        public int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public long Long() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public byte[] Bytes() => Take(Int()).ToArray();
        public string String() => Encoding.UTF8.GetString(Take(Int()));
    }
}
