using Continuity.Core.Supervision;
using Continuity.Core.Tests.Support;
using Xunit;

namespace Continuity.Core.Tests.Supervision;

public sealed class DiskSpaceSpecs
{
    [Fact]
    public void The_free_share_of_a_real_file_system_drops_below_the_default_threshold_when_it_fills()
    {
        using var disk = new TinyDisk();
        var empty = DiskSpace.Of(disk.Dir)!;
        Assert.Equal(512 * 1024, empty.TotalBytes);
        Assert.True(empty.FreePercent > 90, $"an empty tmpfs shows {empty.FreePercent:0.#}% free");

        disk.Fill();
        var full = DiskSpace.Of(disk.Dir)!;
        Assert.True(full.FreePercent < ResourceRules.Default.MinFreeDiskPercent, $"a full tmpfs shows {full.FreePercent:0.#}% free");
    }

    [Fact]
    public void A_directory_that_does_not_exist_reads_as_unknown_not_as_an_error() =>
        Assert.Null(DiskSpace.Of("/nonexistent/continuity/state"));
}
