using Continuity.Core.Switch;
using Continuity.Core.Tests.Support;
using Xunit;

namespace Continuity.Core.Tests.Switch;

/// <summary>State directory copies on a real file system: root-only inside the checkpoint, their own modes again
/// once restored.</summary>
public sealed class CheckpointFilesSpecs
{
    [Fact]
    public void State_copies_are_root_only_in_the_checkpoint_and_get_their_own_modes_back_on_restore()
    {
        var stateDir = Path.Combine(TestConfig.TempDir(), "kv");
        Directory.CreateDirectory(Path.Combine(stateDir, "sub"));
        File.WriteAllText(Path.Combine(stateDir, "data"), "acknowledged state");
        File.WriteAllText(Path.Combine(stateDir, "sub", "run.sh"), "#!/bin/sh\n");
        File.SetUnixFileMode(Path.Combine(stateDir, "data"), (UnixFileMode)0b110_100_100);            // 0644
        File.SetUnixFileMode(Path.Combine(stateDir, "sub", "run.sh"), (UnixFileMode)0b111_101_101);   // 0755
        File.SetUnixFileMode(Path.Combine(stateDir, "sub"), (UnixFileMode)0b111_101_000);             // 0750
        var checkpoint = Path.Combine(TestConfig.TempDir(), "image");
        Directory.CreateDirectory(checkpoint);

        using (FileAccessCheck.Umask(0)) CheckpointFiles.SaveStateDirs(checkpoint, [stateDir]);

        var copies = FileAccessCheck.Tree(Path.Combine(checkpoint, CheckpointFiles.StateFolder)).ToList();
        Assert.Contains(copies, e => e.Path.EndsWith("run.sh"));
        foreach (var (path, mode, isDir) in copies)
            Assert.True(mode == (isDir ? (UnixFileMode)0b111_000_000 : (UnixFileMode)0b110_000_000), $"{path} is {mode}");
        Assert.Equal((UnixFileMode)0b110_000_000, FileAccessCheck.Mode(Path.Combine(checkpoint, CheckpointFiles.ModesFile)));
        Assert.False(FileAccessCheck.NobodyCanRead(Path.Combine(CheckpointFiles.CopyOf(checkpoint, stateDir), "data")));

        File.WriteAllText(Path.Combine(stateDir, "data"), "changed after the checkpoint");
        CheckpointFiles.RestoreStateDirs(checkpoint, [stateDir]);

        Assert.Equal("acknowledged state", File.ReadAllText(Path.Combine(stateDir, "data")));
        Assert.Equal((UnixFileMode)0b110_100_100, FileAccessCheck.Mode(Path.Combine(stateDir, "data")));
        Assert.Equal((UnixFileMode)0b111_101_101, FileAccessCheck.Mode(Path.Combine(stateDir, "sub", "run.sh")));
        Assert.Equal((UnixFileMode)0b111_101_000, FileAccessCheck.Mode(Path.Combine(stateDir, "sub")));
    }
}
