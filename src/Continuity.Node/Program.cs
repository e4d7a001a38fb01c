using System.Runtime.InteropServices;
using Continuity.Node.Hosting;

namespace Continuity.Node;

public static class Program
{
    /// <summary>The exit status of a node the cluster downed: it should be started again (and rejoins as a new member).</summary>
    public const int ExitDowned = 3;

    public static async Task<int> Main(string[] args)
    {
        var options = NodeOptions.Parse(args, out var error);
        if (options is null)
        {
            if (error == "") { Console.WriteLine(NodeOptions.Usage); return 0; }
            Console.Error.WriteLine($"continuity-node: {error}\n\n{NodeOptions.Usage}");
            return 2;
        }

        if (options.CreateClusterCert is { } certFile)
        {
            try
            {
                using var cert = Core.Security.ClusterCertificate.Create(certFile);
                Console.WriteLine($"cluster certificate written to {certFile} (mode 0600, thumbprint {cert.Thumbprint}, valid until " +
                                  $"{cert.NotAfter.ToUniversalTime():yyyy-MM-dd}): copy this same file to every node");
                return 0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                Console.Error.WriteLine($"continuity-node: cannot create the cluster certificate: {e.Message}");
                return 1;
            }
        }

        HostSettings settings;
        try
        {
            settings = HostSettings.Load(options.ConfigPath);
        }
        catch (Core.Configuration.ConfigurationException e)
        {
            Console.Error.WriteLine($"continuity-node: configuration error: {e.Message}");
            return 2;
        }
        foreach (var warning in settings.Warnings)
            Console.Error.WriteLine($"continuity-node: warning: {warning.Message}");

        if (options.CheckOnly)
        {
            Console.WriteLine($"configuration {options.ConfigPath} is valid: node {settings.NodeName}, roles [{string.Join(", ", settings.Roles)}], seeds [{string.Join(", ", settings.SeedNodes)}], management {settings.ManagementBind}, apps [{string.Join(", ", settings.Apps.Select(a => a.Name))}]");
            return 0;
        }

        NodeHost host;
        try
        {
            host = await NodeHost.StartAsync(settings);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
        {
            Console.Error.WriteLine($"continuity-node: cannot start: {e.Message}");
            return 1;
        }

        // SIGTERM and SIGINT mean "leave the cluster gracefully", never "vanish": members then
        // see this node leave at once instead of waiting for the failure detector.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; _ = host.LeaveAndStopAsync(); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; _ = host.LeaveAndStopAsync(); });

        await host.Terminated;
        var reason = Akka.Actor.CoordinatedShutdown.Get(host.System).ShutdownReason;
        await host.DisposeAsync();
        switch (reason)
        {
            case Akka.Actor.CoordinatedShutdown.ClusterDowningReason:
                // Not an error of this node, but it must come back: the cluster wants it as a standby again. A non-zero
                // status is what makes a supervisor (systemd's Restart=on-failure) start it again.
                Console.Error.WriteLine($"continuity-node: this node was downed by the cluster (a partition, a pause longer than failure " +
                    $"detection, or an operator's 'cluster down'); exiting with status {ExitDowned} so that its supervisor starts it again");
                return ExitDowned;
            case Akka.Actor.CoordinatedShutdown.ClusterJoinUnsuccessfulReason:
                return 1; // the join watchdog said why
            default:
                return 0;
        }
    }
}
