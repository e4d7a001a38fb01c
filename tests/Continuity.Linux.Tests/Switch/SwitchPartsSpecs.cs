using System.Buffers.Binary;
using System.Net;
using Continuity.Core.Platform;
using Continuity.Core.Switch;
using Continuity.Linux.Criu;
using Continuity.Linux.Injection;
using Xunit;

namespace Continuity.Linux.Tests.Switch;

/// <summary>The pure pieces the switch relies on, without namespaces.</summary>
public sealed class SwitchPartsSpecs
{
    private static readonly IPAddress Client = IPAddress.Parse("198.18.2.10"), Vip = IPAddress.Parse("198.18.2.50");

    [Fact]
    public void Built_segments_and_unreachables_carry_valid_checksums()
    {
        var inspector = PacketInspector.Instance;
        var rst = inspector.BuildTcp(Vip, 7000, Client, 40000, 1234, 0, PacketFields.Rst, 0);
        Assert.True(PacketRewriter.ChecksumsAreValid(rst));
        Assert.True(inspector.TryReadInbound(rst, out var f));
        Assert.Equal(1234u, f.Sequence);
        Assert.True(f.IsRst);

        var icmp = inspector.BuildHostUnreachable(Client, Vip, Vip, 7000, Client, 40000, 5678);
        Assert.Equal(0xffff, Fold(icmp.AsSpan(20))); // ICMP checksum over the whole message
        Assert.Equal(PacketRewriter.IpHeaderChecksum(icmp.AsSpan(0, 20)), BinaryPrimitives.ReadUInt16BigEndian(icmp.AsSpan(10)));
        Assert.Equal(5678u, BinaryPrimitives.ReadUInt32BigEndian(icmp.AsSpan(28 + 20 + 4))); // quoted sequence
    }

    [Fact]
    public void Removing_a_timestamp_leaves_nops_and_valid_checksums()
    {
        var p = PacketInspector.Instance.BuildTcp(Client, 40000, Vip, 7000, 1, 2, PacketFields.Ack, 100);
        // Grow the header by a NOP, NOP, TS option (12 bytes).
        var withTs = new byte[52];
        p.AsSpan(0, 40).CopyTo(withTs);
        withTs[32] = 8 << 4;
        withTs[40] = 1; withTs[41] = 1; withTs[42] = 8; withTs[43] = 10;
        BinaryPrimitives.WriteUInt16BigEndian(withTs.AsSpan(2), 52);
        PacketRewriter.RecomputeChecksums(withTs);

        Assert.True(PacketInspector.Instance.RemoveTimestamp(withTs));
        Assert.All(withTs.AsSpan(40, 12).ToArray(), b => Assert.Equal(1, b));
        Assert.True(PacketRewriter.ChecksumsAreValid(withTs));
        Assert.False(PacketInspector.Instance.RemoveTimestamp(withTs));
    }

    [Fact]
    public void The_timestamp_of_a_tcp_stream_image_moves_forward_and_the_queues_after_it_stay()
    {
        var dir = Directory.CreateTempSubdirectory("cts-tsimg-").FullName;
        try
        {
            // magics, length, { inq_len = 1: 5, timestamp = 9: 1000, nodelay = 11: true }, then 5 queue bytes
            byte[] message = [0x08, 5, 0x48, 0xe8, 0x07, 0x58, 1];
            var image = new List<byte>();
            image.AddRange(BitConverter.GetBytes(0x54564319u));
            image.AddRange(BitConverter.GetBytes(0x12345678u));
            image.AddRange(BitConverter.GetBytes((uint)message.Length));
            image.AddRange(message);
            image.AddRange("queue"u8.ToArray());
            var path = Path.Combine(dir, "tcp-stream-1.img");
            File.WriteAllBytes(path, image.ToArray());

            Assert.True(TcpTimestamps.Advance(path, 3_000_000));
            var b = File.ReadAllBytes(path);
            var size = (int)BitConverter.ToUInt32(b, 8);
            var i = 12 + 2;
            Assert.Equal(0x48, b[i++]);
            ulong v = 0;
            for (var shift = 0; ; shift += 7)
            {
                var x = b[i++];
                v |= (ulong)(x & 0x7f) << shift;
                if ((x & 0x80) == 0) break;
            }
            Assert.Equal(3_001_000ul, v);
            Assert.Equal(new byte[] { 0x58, 1 }, b[i..(12 + size)]);
            Assert.Equal("queue"u8.ToArray(), b[(12 + size)..]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void A_state_directory_that_is_a_mount_point_is_restored_in_place()
    {
        // Volumes and the lab's node-private copies are mount points: they cannot be deleted or renamed.
        var root = Directory.CreateTempSubdirectory("cts-mount-").FullName;
        var state = Path.Combine(root, "data");
        var backing = Path.Combine(root, "backing");
        Directory.CreateDirectory(state);
        Directory.CreateDirectory(backing);
        Run("mount", "--bind", backing, state);
        try
        {
            var checkpoint = Path.Combine(root, "cp");
            File.WriteAllText(Path.Combine(state, "aof"), "at checkpoint");
            CheckpointFiles.SaveStateDirs(checkpoint, [state]);
            File.WriteAllText(Path.Combine(state, "aof"), "at checkpoint, and later");
            Directory.CreateDirectory(Path.Combine(state, "later"));

            CheckpointFiles.RestoreStateDirs(checkpoint, [state]);

            Assert.Equal("at checkpoint", File.ReadAllText(Path.Combine(backing, "aof")));
            Assert.False(Directory.Exists(Path.Combine(backing, "later")));
        }
        finally
        {
            Run("umount", state);
            Directory.Delete(root, true);
        }
    }

    private static void Run(string program, params string[] args)
    {
        using var p = System.Diagnostics.Process.Start(program, args);
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)} exited {p.ExitCode}");
    }

    [Fact]
    public void State_directories_come_back_as_the_checkpoint_saw_them()
    {
        var root = Directory.CreateTempSubdirectory("cts-state-").FullName;
        try
        {
            var state = Path.Combine(root, "data");
            var checkpoint = Path.Combine(root, "cp");
            Directory.CreateDirectory(Path.Combine(state, "sub"));
            File.WriteAllText(Path.Combine(state, "sub", "a"), "at checkpoint");
            CheckpointFiles.SaveStateDirs(checkpoint, [state]);

            File.WriteAllText(Path.Combine(state, "sub", "a"), "later");
            File.WriteAllText(Path.Combine(state, "new"), "created after the checkpoint");
            CheckpointFiles.RestoreStateDirs(checkpoint, [state]);

            Assert.Equal("at checkpoint", File.ReadAllText(Path.Combine(state, "sub", "a")));
            Assert.False(File.Exists(Path.Combine(state, "new")));
            var e = Assert.Throws<DirectoryNotFoundException>(() => CheckpointFiles.RestoreStateDirs(checkpoint, [Path.Combine(root, "other")]));
            Assert.Contains("state-dirs", e.Message);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    private static int Fold(ReadOnlySpan<byte> data)
    {
        var sum = 0u;
        for (var i = 0; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return (int)sum;
    }
}
