using System.ComponentModel;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Xunit;

namespace Continuity.Lab.Tests;

/// <summary>A fact that needs root (namespaces, iptables); skipped with a reason otherwise.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    [DllImport("libc")]
    private static extern uint geteuid();

    public RootFactAttribute()
    {
        if (geteuid() != 0) Skip = "needs root: the lab creates network namespaces (run the tests as root)";
    }
}

/// <summary>
/// The lab's names are fixed (ct-n1, ctbr0), so tests that build a lab must never overlap: one
/// xunit collection within this run, and a file lock against test runs in other worktrees.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LabCollection : ICollectionFixture<LabLock>
{
    public const string Name = "lab";
}

public sealed class LabLock : IDisposable
{
    private const string LockPath = "/run/lock/continuity-lab-tests.lock";
    private readonly FileStream? _lock;

    public LabLock()
    {
        var deadline = DateTime.UtcNow.AddMinutes(10);
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive flock on Linux, released if this process dies.
                _lock = new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return;
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(500);
            }
            catch (UnauthorizedAccessException)
            {
                return; // not root: every lab test skips anyway
            }
        }
    }

    public void Dispose() => _lock?.Dispose();
}

/// <summary>Runs the lab's commands in-process against a private state directory.</summary>
public sealed class LabDriver : IDisposable
{
    public string StateDir { get; } = Directory.CreateTempSubdirectory("ct-lab-test-").FullName;
    public string LastOutput { get; private set; } = "";
    public string LastError { get; private set; } = "";

    public int Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = Program.Run(["--state-dir", StateDir, .. args], output, error);
        LastOutput = output.ToString();
        LastError = error.ToString();
        return code;
    }

    public void MustRun(params string[] args)
    {
        var code = Run(args);
        Assert.True(code == 0, $"'{string.Join(' ', args)}' exited {code}\nstdout: {LastOutput}\nstderr: {LastError}");
    }

    public void Dispose()
    {
        Run("down");
        try { Directory.Delete(StateDir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// ICMP echo from inside a lab namespace (the machine has no ping binary). The probe runs on a
/// dedicated thread that joins the namespace with setns: a thread's network namespace is its own,
/// and every socket it creates stays in that namespace.
/// </summary>
public static class NetnsProbe
{
    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    private const int CLONE_NEWNET = 0x40000000;

    public static bool Ping(string fromNamespace, string address, TimeSpan? timeout = null)
    {
        var result = false;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using (var ns = File.OpenHandle($"/run/netns/{fromNamespace}"))
                    if (setns((int)ns.DangerousGetHandle(), CLONE_NEWNET) != 0)
                        throw new Win32Exception(Marshal.GetLastPInvokeError(), $"setns into {fromNamespace}");
                result = Echo(IPAddress.Parse(address), timeout ?? TimeSpan.FromSeconds(1));
            }
            catch (Exception e) { failure = e; }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) throw new InvalidOperationException($"ping from {fromNamespace} to {address} failed to run", failure);
        return result;
    }

    public static bool Ping(string fromNamespace, string address, out string description)
    {
        var ok = Ping(fromNamespace, address);
        description = $"{fromNamespace} -> {address}: {(ok ? "answered" : "no answer")}";
        return ok;
    }

    private static bool Echo(IPAddress target, TimeSpan timeout)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Icmp);
        var id = (ushort)Random.Shared.Next(1, ushort.MaxValue);
        const ushort seq = 1;
        var request = new byte[16];
        request[0] = 8; // echo request
        request[4] = (byte)(id >> 8); request[5] = (byte)id;
        request[6] = seq >> 8; request[7] = seq & 0xff;
        "ctlab!!!"u8.CopyTo(request.AsSpan(8));
        var sum = Checksum(request);
        request[2] = (byte)(sum >> 8); request[3] = (byte)sum;
        try
        {
            socket.SendTo(request, new IPEndPoint(target, 0));
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AccessDenied or SocketError.NetworkUnreachable or SocketError.HostUnreachable)
        {
            // An iptables DROP in OUTPUT shows as EPERM, as ping's "Operation not permitted".
            return false;
        }

        var buffer = new byte[1500];
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            socket.ReceiveTimeout = Math.Max(1, (int)(deadline - DateTime.UtcNow).TotalMilliseconds);
            EndPoint from = new IPEndPoint(IPAddress.Any, 0);
            int n;
            try { n = socket.ReceiveFrom(buffer, ref from); }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock) { return false; }
            // A raw IPv4 socket hands over the IP header too.
            var ihl = (buffer[0] & 0x0f) * 4;
            if (n < ihl + 8 || !((IPEndPoint)from).Address.Equals(target)) continue;
            if (buffer[ihl] == 0 && buffer[ihl + 4] == (byte)(id >> 8) && buffer[ihl + 5] == (byte)id) return true;
        }
        return false;
    }

    private static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i + 1 < data.Length; i += 2) sum += (uint)(data[i] << 8 | data[i + 1]);
        if (data.Length % 2 == 1) sum += (uint)(data[^1] << 8);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }
}
