using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Remote.Transport.DotNetty;
using Continuity.Core.Security;

namespace Continuity.Lab.Probe;

/// <summary>
/// One end of <c>continuity-lab probe</c>: a request of the size of a small packet batch and a reply of the size of an
/// acknowledgement, sent back and forth between two hosts' namespaces over one transport. The modes separate what the
/// replication round trip costs: the kernel's TCP path alone (<c>tcp</c>), with TLS as .NET does it (<c>tls</c>), and
/// Akka.Remote as the nodes use it, without and with TLS (<c>remoting</c>, <c>remoting-tls</c>: DotNetty, batching
/// off, the cluster certificate pinned with mutual authentication, as <c>continuity-node</c> configures it).
/// </summary>
internal static class TransportProbe
{
    public static IReadOnlyList<string> Modes { get; } = ["tcp", "tls", "remoting", "remoting-tls"];

    /// <summary>About one captured request packet with its headers, as an Append of one packet carries.</summary>
    public const int RequestBytes = 200;
    /// <summary>About an Appended.</summary>
    public const int ReplyBytes = 40;

    /// <summary>The echo's first line: where the pinging end connects.</summary>
    public const string ListeningPrefix = "listening ";

    public static int Run(ProbeEndCommand c, TextWriter output)
    {
        using var certificate = c.Mode.EndsWith("tls", StringComparison.Ordinal) ? Certificate(c.Certificate!) : null;
        if (c.Echo)
        {
            if (c.Mode.StartsWith("remoting", StringComparison.Ordinal)) RemotingEcho(c, certificate, output);
            else SocketEcho(c, certificate, output);
            return 0;
        }
        var samples = c.Mode.StartsWith("remoting", StringComparison.Ordinal)
            ? RemotingPing(c, certificate)
            : SocketPing(c, certificate);
        output.WriteLine(JsonSerializer.Serialize(new ProbeSamples(c.Mode, samples)));
        return 0;
    }

    private static X509Certificate2 Certificate(string path) =>
        File.Exists(path)
            ? ClusterCertificate.Load(path)
            : throw new FileNotFoundException($"no cluster certificate at {path} (the lab makes one at 'up')", path);

    /// <summary>Round trips timed after this many untimed ones (connections, TLS sessions, JIT and pools warm).</summary>
    public static int WarmUp(int roundTrips) => Math.Min(500, Math.Max(10, roundTrips / 5));

    private static void SocketEcho(ProbeEndCommand c, X509Certificate2? certificate, TextWriter output)
    {
        var listener = new TcpListener(IPAddress.Parse(c.Address), 0);
        listener.Start();
        output.WriteLine($"{ListeningPrefix}{c.Address}:{((IPEndPoint)listener.LocalEndpoint).Port}");
        output.Flush();
        using var client = listener.AcceptTcpClient();
        client.NoDelay = true;
        using var stream = Secure(client.GetStream(), certificate, server: true);
        var request = new byte[RequestBytes];
        var reply = new byte[ReplyBytes];
        try
        {
            while (true)
            {
                stream.ReadExactly(request);
                stream.Write(reply);
                stream.Flush();
            }
        }
        catch (EndOfStreamException) { }
        catch (IOException) { }
    }

    private static int[] SocketPing(ProbeEndCommand c, X509Certificate2? certificate)
    {
        var (host, port) = HostAndPort(c.Address);
        using var client = new TcpClient(new IPEndPoint(IPAddress.Parse(c.Bind!), 0)) { NoDelay = true };
        client.Connect(IPAddress.Parse(host), port);
        using var stream = Secure(client.GetStream(), certificate, server: false);
        var request = new byte[RequestBytes];
        var reply = new byte[ReplyBytes];
        var warmUp = WarmUp(c.RoundTrips);
        var samples = new int[c.RoundTrips];
        for (var i = 0; i < warmUp + c.RoundTrips; i++)
        {
            var start = Stopwatch.GetTimestamp();
            stream.Write(request);
            stream.Flush();
            stream.ReadExactly(reply);
            if (i >= warmUp) samples[i - warmUp] = Micros(start);
        }
        return samples;
    }

    private static Stream Secure(NetworkStream stream, X509Certificate2? certificate, bool server)
    {
        if (certificate is null) return stream;
        // The cluster's rule: both ends present the one cluster certificate, pinned by thumbprint.
        var tls = new SslStream(stream, false, (_, remote, _, _) =>
            remote is not null && remote.GetCertHashString() == certificate.GetCertHashString());
        if (server)
            tls.AuthenticateAsServer(new SslServerAuthenticationOptions { ServerCertificate = certificate, ClientCertificateRequired = true });
        else
            tls.AuthenticateAsClient(new SslClientAuthenticationOptions { TargetHost = "continuity", ClientCertificates = [certificate] });
        return tls;
    }

    private static ActorSystem RemotingSystem(X509Certificate2? certificate, string hostname)
    {
        var config = ConfigurationFactory.ParseString($"""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp.hostname = "{hostname}"
            akka.remote.dot-netty.tcp.port = 0
            akka.remote.dot-netty.tcp.batching.enabled = false
            akka.remote.dot-netty.tcp.enable-ssl = {(certificate is null ? "off" : "on")}
            akka.loglevel = WARNING
            akka.stdout-loglevel = WARNING
            """);
        var bootstrap = BootstrapSetup.Create().WithConfig(config);
        var setup = certificate is null
            ? ActorSystemSetup.Create(bootstrap)
            : bootstrap.And(new DotNettySslSetup(certificate, suppressValidation: false, requireMutualAuthentication: true,
                validateCertificateHostname: false, CertificateValidation.PinnedCertificate(certificate.Thumbprint)));
        return ActorSystem.Create("probe", setup);
    }

    private static void RemotingEcho(ProbeEndCommand c, X509Certificate2? certificate, TextWriter output)
    {
        var system = RemotingSystem(certificate, c.Address);
        system.ActorOf(Props.Create(() => new Echo()), "echo");
        var address = ((ExtendedActorSystem)system).Provider.DefaultAddress;
        output.WriteLine($"{ListeningPrefix}{c.Address}:{address.Port}");
        output.Flush();
        // Ended by the probe (the process is killed once the pinging end is done).
        system.WhenTerminated.Wait();
    }

    private static int[] RemotingPing(ProbeEndCommand c, X509Certificate2? certificate)
    {
        var system = RemotingSystem(certificate, c.Bind!);
        try
        {
            var scheme = certificate is null ? "akka.tcp" : "akka.ssl.tcp";
            var echo = system.ActorSelection($"{scheme}://probe@{c.Address}/user/echo")
                .ResolveOne(TimeSpan.FromSeconds(20)).GetAwaiter().GetResult();
            var done = new TaskCompletionSource<int[]>(TaskCreationOptions.RunContinuationsAsynchronously);
            system.ActorOf(Props.Create(() => new Pinger(echo, WarmUp(c.RoundTrips), c.RoundTrips, done)));
            return done.Task.WaitAsync(TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
        }
        finally
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
        }
    }

    private static int Micros(long start) => (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(start).TotalMicroseconds);

    public static (string Host, int Port) HostAndPort(string address)
    {
        var colon = address.LastIndexOf(':');
        return (address[..colon], int.Parse(address[(colon + 1)..], CultureInfo.InvariantCulture));
    }

    private sealed class Echo : ReceiveActor
    {
        public Echo()
        {
            var reply = new byte[ReplyBytes];
            Receive<byte[]>(_ => Sender.Tell(reply));
        }
    }

    private sealed class Pinger : ReceiveActor
    {
        private sealed record Start;

        public Pinger(IActorRef echo, int warmUp, int roundTrips, TaskCompletionSource<int[]> done)
        {
            var request = new byte[RequestBytes];
            var samples = new int[roundTrips];
            var sent = 0L;
            var count = 0;
            Receive<Start>(_ =>
            {
                sent = Stopwatch.GetTimestamp();
                echo.Tell(request);
            });
            Receive<byte[]>(_ =>
            {
                if (count >= warmUp) samples[count - warmUp] = Micros(sent);
                if (++count == warmUp + roundTrips)
                {
                    done.TrySetResult(samples);
                    Context.Stop(Self);
                    return;
                }
                sent = Stopwatch.GetTimestamp();
                echo.Tell(request);
            });
        }

        protected override void PreStart() => Self.Tell(new Start());
    }
}

/// <summary>What a pinging end prints: its round trips, in microseconds, in the order they were taken.</summary>
internal sealed record ProbeSamples(string Mode, int[] Micros);
