using Continuity.Core.Platform;
using Continuity.Linux.Failpoints;
using Xunit;

namespace Continuity.Linux.Tests.Failpoints;

public sealed class FileFailpointsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ct-failpoints-").FullName;

    [Fact]
    public void A_fail_point_stops_the_node_only_once_armed_and_only_once_per_arming()
    {
        var stops = 0;
        var failpoints = new FileFailpoints(_dir, () => stops++);

        failpoints.Reach(Core.Platform.Failpoints.AckedNotReleased, () => "not armed");
        Assert.Equal(0, stops);

        File.WriteAllText(Path.Combine(_dir, Core.Platform.Failpoints.AckedNotReleased), "");
        // Armed files are looked for every few milliseconds, not on every call of a hot path.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (stops == 0 && DateTime.UtcNow < deadline)
        {
            failpoints.Reach(Core.Platform.Failpoints.AckedNotReleased, () => "packets up to 7 held");
            Thread.Sleep(5);
        }

        Assert.Equal(1, stops);
        Assert.Equal("packets up to 7 held\n", File.ReadAllText(Path.Combine(_dir, "acked-not-released.reached")));
        Assert.False(File.Exists(Path.Combine(_dir, "acked-not-released")), "one arming, one stop: the file is consumed");
        Thread.Sleep(50);
        failpoints.Reach(Core.Platform.Failpoints.AckedNotReleased, () => "again");
        Assert.Equal(1, stops);
    }

    [Fact]
    public void Without_the_environment_variable_a_node_has_no_fail_points()
    {
        var before = Environment.GetEnvironmentVariable(FileFailpoints.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(FileFailpoints.EnvironmentVariable, null);
            Assert.Null(FileFailpoints.FromEnvironment());
            Environment.SetEnvironmentVariable(FileFailpoints.EnvironmentVariable, _dir);
            Assert.Equal(_dir, FileFailpoints.FromEnvironment()?.Directory);
        }
        finally
        {
            Environment.SetEnvironmentVariable(FileFailpoints.EnvironmentVariable, before);
        }
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
