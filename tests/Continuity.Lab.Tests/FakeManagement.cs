using System.ComponentModel;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Continuity.Lab.Tests;

/// <summary>
/// Stands in for the nodes' management endpoints until the real node exists: one listener per
/// lab namespace on port 8558, created from a thread that joined that namespace (a socket stays
/// in the namespace it was created in), answering with whatever <see cref="Respond"/> says.
/// </summary>
public sealed class FakeManagement : IDisposable
{
    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    private const int CLONE_NEWNET = 0x40000000;

    private readonly List<Socket> _listeners = [];
    private volatile bool _stopped;

    /// <summary>(node, path) → (status, JSON body).</summary>
    public Func<string, string, (int Status, string Body)> Respond { get; set; } = (_, _) => (404, "{}");
    public List<string> AuthorizationHeaders { get; } = [];

    public void ServeIn(string node)
    {
        Socket? listener = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using (var ns = File.OpenHandle($"/run/netns/ct-{node}"))
                    if (setns((int)ns.DangerousGetHandle(), CLONE_NEWNET) != 0)
                        throw new Win32Exception(Marshal.GetLastPInvokeError(), $"setns into ct-{node}");
                listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                listener.Bind(new IPEndPoint(IPAddress.Any, 8558));
                listener.Listen(16);
            }
            catch (Exception e) { failure = e; }
        });
        thread.Start();
        thread.Join();
        if (failure is not null) throw new InvalidOperationException($"cannot serve in ct-{node}", failure);
        lock (_listeners) _listeners.Add(listener!);
        new Thread(() => AcceptLoop(node, listener!)) { IsBackground = true }.Start();
    }

    private void AcceptLoop(string node, Socket listener)
    {
        while (!_stopped)
        {
            Socket client;
            try { client = listener.Accept(); }
            catch (Exception) { return; }
            try { Handle(node, client); }
            catch (Exception) { /* a client that went away is not the test's concern */ }
            finally { client.Dispose(); }
        }
    }

    private void Handle(string node, Socket client)
    {
        var buffer = new byte[8192];
        var request = new StringBuilder();
        client.ReceiveTimeout = 2000;
        while (!request.ToString().Contains("\r\n\r\n"))
        {
            var n = client.Receive(buffer);
            if (n == 0) return;
            request.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        var lines = request.ToString().Split("\r\n");
        var path = lines[0].Split(' ')[1];
        var auth = lines.FirstOrDefault(l => l.StartsWith("Authorization:", StringComparison.OrdinalIgnoreCase));
        lock (AuthorizationHeaders) AuthorizationHeaders.Add(auth?["Authorization:".Length..].Trim() ?? "");
        var (status, body) = Respond(node, path);
        var bytes = Encoding.UTF8.GetBytes(body);
        var head = $"HTTP/1.1 {status} {(status == 200 ? "OK" : "Not Found")}\r\nContent-Type: application/json\r\n" +
                   $"Content-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
        client.Send([.. Encoding.ASCII.GetBytes(head), .. bytes]);
    }

    public static string ClusterJson(string self, int members, string leader) =>
        "{\"members\":[" + string.Join(",", Enumerable.Range(1, members).Select(i =>
            $"{{\"address\":\"akka.tcp://continuity@198.18.0.{10 + i}:4053\",\"status\":\"Up\",\"roles\":[\"data\"],\"reachable\":true}}")) +
        $"],\"leader\":\"akka.tcp://continuity@{leader}:4053\",\"self\":\"akka.tcp://continuity@{self}:4053\"}}";

    public void Dispose()
    {
        _stopped = true;
        lock (_listeners) foreach (var l in _listeners) l.Dispose();
    }
}
