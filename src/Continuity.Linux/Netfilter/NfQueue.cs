using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Continuity.Core.Platform;
using Continuity.Linux.Native;
using static Continuity.Linux.Netfilter.LibNetfilterQueue;

namespace Continuity.Linux.Netfilter;

/// <summary>Tuning of an <see cref="NfQueue"/>.</summary>
/// <param name="MaxQueueLength">Packets the kernel holds before it drops new ones (never accepts them).</param>
/// <param name="SocketReceiveBuffer">Netlink receive buffer; too small a buffer loses packets under bursts (ENOBUFS).</param>
/// <param name="MaxBatch">Upper bound of packets per onBatch call, so one burst cannot delay the verdicts of all.</param>
public sealed record NfQueueOptions(uint MaxQueueLength = 16384, int SocketReceiveBuffer = 16 * 1024 * 1024, int MaxBatch = 512)
{
    public static readonly NfQueueOptions Default = new();
}

/// <summary>
/// An iptables NFQUEUE read with libnetfilter_queue. The netlink socket belongs to the network namespace
/// of the thread that constructs this object (see <see cref="Namespaces.NetNs"/>). The queue never fails
/// open: a packet without a verdict stays held, and one the kernel cannot queue is dropped, so the client
/// retransmits it instead of a server seeing a packet the standbys never logged.
/// </summary>
public sealed unsafe class NfQueue : IPacketQueue
{
    private const int RecvBufferSize = 256 * 1024; // one netlink datagram holds at most one 64 KiB packet plus attributes
    private const int PollTimeoutMs = 100;          // how quickly Dispose is noticed by the reader

    private readonly ushort _queueNumber;
    private readonly NfQueueOptions _options;
    // libnetfilter_queue's handle is not safe for concurrent use: verdicts and packet parsing are serialized by this lock.
    private readonly Lock _handleLock = new();
    private GCHandle _self;
    private readonly int _fd;
    private nint _h;
    private nint _qh;
    private byte* _recvBuffer;

    private Thread? _reader;
    private volatile bool _stopping;
    private Action<IReadOnlyList<HeldPacket>>? _onBatch;

    // The batch and its payload arena are reused across batches; see IPacketQueue.Start for the lifetime contract.
    private readonly List<HeldPacket> _batch = new(64);
    private byte[] _arena = new byte[1024 * 1024];
    private int _arenaUsed;
    private Exception? _callbackFailure;

    private long _enobufs;
    private long _packets;
    private long _batches;

    /// <summary>Kernel-side losses: the socket buffer overflowed and the kernel dropped queued packets.</summary>
    public long EnobufsCount => Interlocked.Read(ref _enobufs);
    public long PacketsReceived => Interlocked.Read(ref _packets);
    public long BatchesDelivered => Interlocked.Read(ref _batches);
    public ushort QueueNumber => _queueNumber;

    /// <summary>Called on the reader thread with errors that do not stop the queue (ENOBUFS, a failing onBatch).</summary>
    public Action<string>? Log { get; set; }

    public NfQueue(ushort queueNumber, NfQueueOptions? options = null)
    {
        _queueNumber = queueNumber;
        _options = options ?? NfQueueOptions.Default;
        if (!IsAvailable())
            throw new DllNotFoundException($"{Library} not found: run deploy/install-deps.sh (Debian package libnetfilter-queue1).");

        _self = GCHandle.Alloc(this);
        try
        {
            _h = nfq_open();
            if (_h == 0)
                throw Failure("nfq_open", "opening the netfilter netlink socket needs root (CAP_NET_ADMIN)");
            // Kernels >= 3.8 ignore these, older ones need them; failures are harmless on new kernels.
            nfq_unbind_pf(_h, AF_INET);
            nfq_bind_pf(_h, AF_INET);

            _qh = nfq_create_queue(_h, queueNumber, &OnPacket, GCHandle.ToIntPtr(_self));
            if (_qh == 0)
                throw Failure("nfq_create_queue",
                    $"queue {queueNumber} is probably bound by another process in this network namespace, or this process is not root");
            if (nfq_set_mode(_qh, NFQNL_COPY_PACKET, 0xffff) < 0)
                throw Failure("nfq_set_mode", "the kernel refused to copy whole packets");
            if (nfq_set_queue_maxlen(_qh, _options.MaxQueueLength) < 0)
                throw Failure("nfq_set_queue_maxlen", $"the kernel refused a queue length of {_options.MaxQueueLength}");
            // Explicitly clear fail-open: with it set, the kernel would ACCEPT packets when the queue is full,
            // letting the server see traffic no standby has logged.
            if (nfq_set_queue_flags(_qh, NFQA_CFG_F_FAIL_OPEN, 0) < 0)
                throw Failure("nfq_set_queue_flags", "could not make sure the queue does not fail open");

            _fd = nfq_fd(_h);
            EnlargeReceiveBuffer(_fd, _options.SocketReceiveBuffer);
            _recvBuffer = (byte*)NativeMemory.Alloc(RecvBufferSize);
        }
        catch
        {
            Close();
            throw;
        }
    }

    public void Start(Action<IReadOnlyList<HeldPacket>> onBatch)
    {
        ArgumentNullException.ThrowIfNull(onBatch);
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (_reader is not null)
            throw new InvalidOperationException($"NFQUEUE {_queueNumber} is already started; Start may be called once.");
        _onBatch = onBatch;
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = $"nfqueue-{_queueNumber}" };
        _reader.Start();
    }

    public void AcceptUpTo(uint packetId) => Verdict(packetId, NF_ACCEPT);

    public void DropUpTo(uint packetId) => Verdict(packetId, NF_DROP);

    private void Verdict(uint packetId, uint verdict)
    {
        lock (_handleLock)
        {
            ObjectDisposedException.ThrowIf(_qh == 0, this);
            if (nfq_set_verdict_batch(_qh, packetId, verdict) < 0)
                throw Failure("nfq_set_verdict_batch",
                    $"the verdict {(verdict == NF_ACCEPT ? "ACCEPT" : "DROP")} up to packet {packetId} could not be sent");
        }
    }

    private void ReadLoop()
    {
        try
        {
            ReadUntilStopped();
        }
        finally
        {
            // Dispose called from onBatch (this thread) leaves the closing to us.
            if (_stopping) Close();
        }
    }

    private void ReadUntilStopped()
    {
        var pfd = new Libc.PollFd { Fd = _fd, Events = Libc.POLLIN };
        while (!_stopping)
        {
            pfd.REvents = 0;
            var ready = Libc.poll(&pfd, 1, PollTimeoutMs);
            if (ready < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                Log?.Invoke($"NFQUEUE {_queueNumber}: poll failed: {Libc.ErrorText(errno)}; reader stops, held packets stay held.");
                return;
            }
            if (ready == 0) continue;

            // Drain what the kernel has now, then hand it over as one batch: one actor message and one
            // journal write per batch instead of per packet.
            while (!_stopping && _batch.Count < _options.MaxBatch)
            {
                var n = Libc.recv(_fd, _recvBuffer, RecvBufferSize, Libc.MSG_DONTWAIT);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.EAGAIN) break;
                    if (errno == Libc.EINTR) continue;
                    if (errno == Libc.ENOBUFS)
                    {
                        // The kernel dropped what it could not deliver (never accepted: fail-open is off); clients retransmit.
                        var count = Interlocked.Increment(ref _enobufs);
                        Log?.Invoke($"NFQUEUE {_queueNumber}: socket buffer overflow (ENOBUFS #{count}): packets were dropped by the kernel; enlarge SocketReceiveBuffer or verdict faster.");
                        continue;
                    }
                    Log?.Invoke($"NFQUEUE {_queueNumber}: recv failed: {Libc.ErrorText(errno)}; reader stops, held packets stay held.");
                    return;
                }
                lock (_handleLock)
                {
                    if (_h == 0) return;
                    nfq_handle_packet(_h, _recvBuffer, (int)n);
                }
                if (_callbackFailure is { } failure)
                {
                    _callbackFailure = null;
                    Log?.Invoke($"NFQUEUE {_queueNumber}: a packet could not be read: {failure.Message}");
                }
            }
            DeliverBatch();
        }
    }

    private void DeliverBatch()
    {
        if (_batch.Count == 0) return;
        Interlocked.Add(ref _packets, _batch.Count);
        Interlocked.Increment(ref _batches);
        try
        {
            _onBatch!(_batch);
        }
        catch (Exception e)
        {
            // The packets stay held (no verdict): the consumer's failure must never let them through.
            Log?.Invoke($"NFQUEUE {_queueNumber}: onBatch threw {e.GetType().Name}: {e.Message}; the batch stays held.");
        }
        finally
        {
            _batch.Clear();
            _arenaUsed = 0;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnPacket(nint qh, nint nfmsg, nint nfad, nint data)
    {
        // Exceptions must not cross into C: record and report them from the reader loop.
        var self = (NfQueue)GCHandle.FromIntPtr(data).Target!;
        try
        {
            self.Collect(nfad);
        }
        catch (Exception e)
        {
            self._callbackFailure = e;
        }
        return 0;
    }

    private void Collect(nint nfad)
    {
        var hdr = nfq_get_msg_packet_hdr(nfad);
        if (hdr == null) return;
        var id = BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(hdr, 4));
        byte* payload;
        var len = nfq_get_payload(nfad, &payload);
        if (len < 0) len = 0;

        if (_arena.Length - _arenaUsed < len)
        {
            // Earlier packets of this batch keep pointing into the old arena, which stays alive through them.
            _arena = new byte[Math.Max(_arena.Length * 2, len)];
            _arenaUsed = 0;
        }
        new ReadOnlySpan<byte>(payload, len).CopyTo(_arena.AsSpan(_arenaUsed));
        _batch.Add(new HeldPacket(id, new ReadOnlyMemory<byte>(_arena, _arenaUsed, len)));
        _arenaUsed += len;
    }

    private static void EnlargeReceiveBuffer(int fd, int bytes)
    {
        // SO_RCVBUFFORCE ignores net.core.rmem_max (root only); fall back to SO_RCVBUF, capped by rmem_max.
        if (Libc.setsockopt(fd, Libc.SOL_SOCKET, Libc.SO_RCVBUFFORCE, &bytes, sizeof(int)) == 0) return;
        Libc.setsockopt(fd, Libc.SOL_SOCKET, Libc.SO_RCVBUF, &bytes, sizeof(int));
    }

    private InvalidOperationException Failure(string call, string hint)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new InvalidOperationException(
            $"{call} failed for NFQUEUE {_queueNumber}: {Libc.ErrorText(errno)} (errno {errno}); {hint}.");
    }

    private void Close()
    {
        lock (_handleLock)
        {
            // Destroying the queue makes the kernel drop (not accept) every packet still held.
            if (_qh != 0) { nfq_destroy_queue(_qh); _qh = 0; }
            if (_h != 0) { nfq_close(_h); _h = 0; }
            if (_recvBuffer != null) { NativeMemory.Free(_recvBuffer); _recvBuffer = null; }
        }
        if (_self.IsAllocated) _self.Free();
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        if (_reader == Thread.CurrentThread) return;
        _reader?.Join();
        Close();
    }
}
