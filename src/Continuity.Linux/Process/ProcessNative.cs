using System.Runtime.InteropServices;

namespace Continuity.Linux.Processes;

/// <summary>The few libc calls the launcher and the checkpointer need.</summary>
internal static partial class ProcessNative
{
    public const int SIGKILL = 9;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;
    public const int SIGINT = 2;
    public const int O_RDWR = 2;
    public const int O_CLOEXEC = 0x80000;
    public const int ESRCH = 3;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MkFifo(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    /// <summary>Reads /proc/PID/stat's state letter; null when the process does not exist.</summary>
    public static char? State(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name in parentheses may contain spaces and ')' itself: the state follows the last ')'.
            var close = stat.LastIndexOf(')');
            return close >= 0 && close + 2 < stat.Length ? stat[close + 2] : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The boot and the start time (field 22 of /proc/PID/stat, in clock ticks since boot): together they name
    /// one process for good, whereas a pid is reused. Null when the process does not exist.</summary>
    public static string? Identity(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // fields[0] is field 3 (state): the start time, field 22, is fields[19].
            return fields.Length > 19 ? $"{File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim()}:{fields[19]}" : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Alive means it exists and is neither a zombie nor dead.</summary>
    public static bool IsAlive(int pid) => State(pid) is { } s && s != 'Z' && s != 'X' && s != 'x';
}
