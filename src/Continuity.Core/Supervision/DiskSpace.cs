namespace Continuity.Core.Supervision;

/// <summary>Free and total bytes of the file system holding a directory, as an unprivileged process may use them.</summary>
public sealed record DiskSpace(long FreeBytes, long TotalBytes)
{
    public double FreePercent => TotalBytes <= 0 ? 100 : 100.0 * FreeBytes / TotalBytes;

    /// <summary>statvfs of <paramref name="path"/> (DriveInfo takes any path on Unix), or null when it cannot be read.</summary>
    public static DiskSpace? Of(string path)
    {
        try
        {
            var d = new DriveInfo(path);
            return new DiskSpace(d.AvailableFreeSpace, d.TotalSize);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}
