using Continuity.Core.Election;
using Xunit;

namespace Continuity.Core.Tests.Election;

/// <summary>The history file a data node keeps of an application's switches (a real file in a temporary directory).</summary>
public sealed class SwitchHistorySpecs : IDisposable
{
    private readonly string _dir = TestConfig.TempDir();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static SwitchInfo Switch(long epoch, string reason = "planned switch") => new("n1", "n2",
        DateTimeOffset.Parse("2026-11-30T06:00:00Z").AddMinutes(epoch), reason, epoch, 7,
        new Dictionary<string, TimeSpan> { ["restore"] = TimeSpan.FromMilliseconds(120.5), ["replay"] = TimeSpan.FromMilliseconds(3) });

    [Fact]
    public void A_switch_kept_is_read_back_whole_by_a_new_reader_of_the_same_directory()
    {
        new SwitchHistory(_dir).Append(Switch(2));

        var back = Assert.Single(new SwitchHistory(_dir).Read());

        var expected = Switch(2);
        Assert.Equal((expected.From, expected.To, expected.At, expected.Reason, expected.Epoch, expected.PacketsReplayed),
            (back.From, back.To, back.At, back.Reason, back.Epoch, back.PacketsReplayed));
        Assert.Equal(expected.Phases.OrderBy(p => p.Key), back.Phases.OrderBy(p => p.Key));
    }

    [Fact]
    public void The_file_is_readable_by_its_owner_only()
    {
        new SwitchHistory(_dir).Append(Switch(2));

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, SwitchHistory.FileName)));
    }

    [Fact]
    public void A_switch_reported_twice_by_the_owner_and_the_new_primary_is_kept_once()
    {
        var history = new SwitchHistory(_dir);
        Assert.True(history.Append(Switch(2)));
        Assert.False(history.Append(Switch(2) with { From = "akka.tcp://continuity@10.0.0.1:4053" }));
        Assert.False(new SwitchHistory(_dir).Append(Switch(2)));
        Assert.True(history.Append(Switch(3)));

        Assert.Equal([2L, 3L], new SwitchHistory(_dir).Read().Select(s => s.Epoch));
    }

    [Fact]
    public void A_later_switch_that_reuses_an_epoch_after_a_restart_of_the_whole_cluster_is_kept_too()
    {
        var history = new SwitchHistory(_dir);
        history.Append(Switch(2));

        Assert.True(history.Append(Switch(2) with { At = Switch(2).At.AddDays(1), Reason = "primary removed" }));

        Assert.Equal(["planned switch", "primary removed"], new SwitchHistory(_dir).Read().Select(s => s.Reason));
    }

    [Fact]
    public void Past_its_size_the_file_rolls_over_once_and_the_oldest_switches_go_first()
    {
        var history = new SwitchHistory(_dir, maxFileBytes: 1000);
        for (var epoch = 1; epoch <= 40; epoch++) history.Append(Switch(epoch, new string('x', 100)));

        var kept = history.Read();
        Assert.InRange(kept.Count, 2, 39);
        Assert.Equal(40, kept[^1].Epoch);
        Assert.Equal(Enumerable.Range((int)kept[0].Epoch, kept.Count).Select(e => (long)e), kept.Select(s => s.Epoch));
        Assert.True(new FileInfo(history.Path).Length <= 1000 && new FileInfo(history.PreviousPath).Length <= 1000);
    }

    [Fact]
    public void A_line_torn_by_a_crash_is_skipped_and_the_next_switch_still_kept()
    {
        var history = new SwitchHistory(_dir);
        history.Append(Switch(2));
        File.AppendAllText(history.Path, "{\"from\":\"n2\",\"to\":\"n3\",\"at\":\"2026-11-");

        var fresh = new SwitchHistory(_dir);
        Assert.Equal([2L], fresh.Read().Select(s => s.Epoch));
        fresh.Append(Switch(3));
        Assert.Equal([2L, 3L], fresh.Read().Select(s => s.Epoch));
    }
}
