using System.Buffers.Binary;
using System.Globalization;

namespace Continuity.Linux.Criu;

/// <summary>
/// Moves the TCP timestamp clock of restored connections forward (see <see cref="CriuOptions.AdvanceTcpTimestamps"/>)
/// by patching criu's tcp-stream images: 4-byte magics, a 4-byte length, then a protobuf TcpStreamEntry whose field
/// 9 (<c>timestamp</c>, varint) is the TCP_TIMESTAMP value criu gives back to the socket in repair mode.
/// </summary>
internal static class TcpTimestamps
{
    public const string DumpTimeFile = "continuity-dumped-at";
    private const int TimestampField = 9;
    private const uint ImgCommonMagic = 0x54564319, ImgServiceMagic = 0x55105940;

    public static void RecordDumpTime(string imageDir) =>
        File.WriteAllText(Path.Combine(imageDir, DumpTimeFile),
            DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));

    /// <summary>Adds the milliseconds since the dump (Linux TCP timestamps tick in ms) to every connection.</summary>
    public static int AdvanceSinceDump(string imageDir)
    {
        var path = Path.Combine(imageDir, DumpTimeFile);
        if (!File.Exists(path)) return 0;
        var elapsed = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - long.Parse(File.ReadAllText(path), CultureInfo.InvariantCulture);
        if (elapsed <= 0) return 0;
        var patched = 0;
        foreach (var image in Directory.EnumerateFiles(imageDir, "tcp-stream-*.img"))
            if (Advance(image, (uint)Math.Min(elapsed, int.MaxValue)))
                patched++;
        // Once only: a second restore from the same images must not add the time twice.
        File.Delete(path);
        return patched;
    }

    internal static bool Advance(string image, uint milliseconds)
    {
        var b = File.ReadAllBytes(image);
        var header = BinaryPrimitives.ReadUInt32LittleEndian(b) is ImgCommonMagic or ImgServiceMagic ? 8 : 4;
        var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(header));
        var start = header + 4;
        var message = b.AsSpan(start, size);
        var i = 0;
        while (i < message.Length)
        {
            var fieldStart = i;
            var key = ReadVarint(message, ref i);
            var wire = (int)(key & 7);
            if ((int)(key >> 3) == TimestampField && wire == 0)
            {
                var valueStart = i;
                var value = (uint)ReadVarint(message, ref i);
                var encoded = Varint(unchecked(value + milliseconds));
                var rebuilt = new List<byte>(b.Length + 5);
                rebuilt.AddRange(b.AsSpan(0, header).ToArray());
                var newSize = size - (i - valueStart) + encoded.Length;
                var sizeBytes = new byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(sizeBytes, (uint)newSize);
                rebuilt.AddRange(sizeBytes);
                rebuilt.AddRange(message[..valueStart].ToArray());
                rebuilt.AddRange(encoded);
                rebuilt.AddRange(message[i..].ToArray());
                rebuilt.AddRange(b.AsSpan(start + size).ToArray());
                File.WriteAllBytes(image, rebuilt.ToArray());
                return true;
            }
            switch (wire)
            {
                case 0: ReadVarint(message, ref i); break;
                case 1: i += 8; break;
                case 2: i += (int)ReadVarint(message, ref i); break;
                case 5: i += 4; break;
                default:
                    throw new CheckpointException(
                        $"{image}: unexpected protobuf wire type {wire} at byte {fieldStart}: not a criu tcp-stream image " +
                        "this version understands; set CriuOptions.AdvanceTcpTimestamps = false.");
            }
        }
        return false; // no timestamp option on this connection
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> b, ref int i)
    {
        ulong v = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var x = b[i++];
            v |= (ulong)(x & 0x7f) << shift;
            if ((x & 0x80) == 0) break;
        }
        return v;
    }

    private static byte[] Varint(uint value)
    {
        var r = new List<byte>(5);
        while (value >= 0x80)
        {
            r.Add((byte)(value | 0x80));
            value >>= 7;
        }
        r.Add((byte)value);
        return r.ToArray();
    }
}
