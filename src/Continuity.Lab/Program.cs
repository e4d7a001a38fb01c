[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Continuity.Lab;

public static class Program
{
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    internal const int ExitFailure = 1;
    internal const int ExitUsage = 2;

    internal static int Run(IReadOnlyList<string> args, TextWriter output, TextWriter error)
    {
        LabCommand command;
        try
        {
            command = CommandLine.Parse(args);
        }
        catch (UsageException e)
        {
            error.WriteLine($"continuity-lab: {e.Message}");
            error.WriteLine();
            error.WriteLine(CommandLine.Usage);
            return ExitUsage;
        }

        if (command is HelpCommand)
        {
            output.WriteLine(CommandLine.Usage);
            return 0;
        }

        // Runs inside a host's namespace on behalf of 'probe': no lab state, no lock, no tool checks.
        if (command is ProbeEndCommand end)
        {
            try { return Probe.TransportProbe.Run(end, output); }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or System.Security.Authentication.AuthenticationException
                                          or System.Security.Cryptography.CryptographicException or Akka.Actor.ActorNotFoundException
                                          or TimeoutException or FormatException)
            {
                error.WriteLine($"continuity-lab probe-end {(end.Echo ? "echo" : "ping")} {end.Mode}: {e.Message}");
                return ExitFailure;
            }
        }

        try
        {
            Preflight();
            var topology = Lab.ResolveTopology(command.Instance);
            var lab = new Lab(Lab.ResolveStateDir(command.StateDir, topology), topology, output, error);
            using var _ = command is StatusCommand or ExecCommand or ProbeCommand ? null : lab.Lock();
            return command switch
            {
                UpCommand c => lab.Up(c),
                StatusCommand c => lab.Status(c),
                ExecCommand c => lab.Exec(c),
                CrashCommand c => lab.Crash(c),
                ReviveCommand c => lab.Revive(c),
                PartitionCommand c => lab.Partition(c),
                HealCommand c => lab.Heal(c),
                DownCommand => lab.Down(),
                ChaosCommand c => new Chaos.ChaosRunner(lab, c, output).Run(),
                ProbeCommand c => lab.Probe(c),
                _ => throw new InvalidOperationException($"unhandled command {command.GetType().Name}"),
            };
        }
        catch (LabException e)
        {
            error.WriteLine($"continuity-lab: {e.Message}");
            return ExitFailure;
        }
    }

    private static void Preflight()
    {
        if (!Os.IsRoot)
            throw new LabException("must run as root: the lab creates network namespaces, links and iptables rules (try: sudo continuity-lab ...)");
        var missing = Os.RequiredTools.Where(t => Os.FindOnPath(t) is null).ToList();
        if (missing.Count > 0)
            throw new LabException($"required tool{(missing.Count > 1 ? "s" : "")} not found: {string.Join(", ", missing)}; " +
                                   "install them with deploy/install-deps.sh (packages iproute2, util-linux, iptables)");
    }
}
