using System.Runtime.InteropServices;

namespace Continuity.Linux.Native;

/// <summary>The few libc calls the adapters need that .NET does not expose.</summary>
internal static partial class Libc
{
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int ENOBUFS = 105;
    public const int EPERM = 1;
    public const int MSG_DONTWAIT = 0x40;
    public const int SOL_SOCKET = 1;
    public const int SO_RCVBUF = 8;
    public const int SO_RCVBUFFORCE = 33;
    public const short POLLIN = 1;
    public const int CLONE_NEWNET = 0x40000000;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial nint recv(int fd, void* buf, nint len, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int poll(PollFd* fds, nuint nfds, int timeoutMs);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int setsockopt(int fd, int level, int name, void* value, uint len);

    [LibraryImport("libc", SetLastError = true)]
    public static unsafe partial int getsockopt(int fd, int level, int name, void* value, uint* len);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setns(int fd, int nstype);

    public static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
