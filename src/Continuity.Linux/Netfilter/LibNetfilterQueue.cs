using System.Runtime.InteropServices;

namespace Continuity.Linux.Netfilter;

/// <summary>P/Invoke surface of libnetfilter_queue (Debian package libnetfilter-queue1; no -dev needed).</summary>
internal static unsafe partial class LibNetfilterQueue
{
    public const string Library = "libnetfilter_queue.so.1";
    public const ushort AF_INET = 2;
    public const byte NFQNL_COPY_PACKET = 2;
    public const uint NF_DROP = 0;
    public const uint NF_ACCEPT = 1;
    public const uint NFQA_CFG_F_FAIL_OPEN = 1;

    [LibraryImport(Library, SetLastError = true)] public static partial nint nfq_open();
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_close(nint h);
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_bind_pf(nint h, ushort pf);
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_unbind_pf(nint h, ushort pf);

    [LibraryImport(Library, SetLastError = true)]
    public static partial nint nfq_create_queue(nint h, ushort num, delegate* unmanaged[Cdecl]<nint, nint, nint, nint, int> cb, nint data);

    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_destroy_queue(nint qh);
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_set_mode(nint qh, byte mode, uint range);
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_set_queue_maxlen(nint qh, uint queueLength);
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_set_queue_flags(nint qh, uint mask, uint flags);
    [LibraryImport(Library)] public static partial int nfq_fd(nint h);
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_handle_packet(nint h, byte* buf, int len);
    [LibraryImport(Library)] public static partial byte* nfq_get_msg_packet_hdr(nint nfad);
    [LibraryImport(Library)] public static partial int nfq_get_payload(nint nfad, byte** data);
    [LibraryImport(Library, SetLastError = true)] public static partial int nfq_set_verdict_batch(nint qh, uint id, uint verdict);

    public static bool IsAvailable() =>
        NativeLibrary.TryLoad(Library, typeof(LibNetfilterQueue).Assembly, null, out _);
}
