using Continuity.Linux.Native;
using System.Text.RegularExpressions;

namespace Continuity.Linux.Criu;

/// <summary>What <see cref="CriuProbe"/> found.</summary>
/// <param name="Usable">True when criu exists, is new enough and <c>criu check</c> passes.</param>
/// <param name="Version">The version criu reported, null when it could not be run.</param>
/// <param name="Diagnostic">One paragraph for a human: what is wrong and how to fix it, or what was found.</param>
public sealed record CriuProbeResult(bool Usable, Version? Version, string Diagnostic);

/// <summary>Checks that this machine can checkpoint: criu present, version at least 4.2, <c>criu check</c> passes.</summary>
/// <remarks>
/// 4.2 is the floor because on kernels from 6.16 the older releases fail to dump any TCP socket
/// ("Can't get 1:16 opt: Operation not supported": the kernel refuses SO_PASSCRED on TCP sockets), and Debian 12's
/// 3.17 does not even start on this kernel ("Unexpected rt vDSO area bounds").
/// </remarks>
public static partial class CriuProbe
{
    public static readonly Version MinimumVersion = new(4, 2);

    private const string Fix = "Run deploy/install-deps.sh (it installs criu 4.2+ from Debian unstable).";

    public static CriuProbeResult Probe(string criuPath = "criu")
    {
        var (rc, output) = Run(criuPath, ["--version"], TimeSpan.FromSeconds(10));
        if (rc is null)
            return new(false, null, $"criu was not found ({criuPath}: {output}). {Fix}");
        var m = VersionLine().Match(output);
        if (rc != 0 || !m.Success)
            return new(false, null, $"'{criuPath} --version' failed (exit {rc}): {Trim(output)}. {Fix}");
        var version = Version.Parse(m.Groups[1].Value);
        if (version < MinimumVersion)
            return new(false, version,
                $"criu {version} is too old: at least {MinimumVersion} is needed on kernels from 6.16 (older releases " +
                $"cannot dump TCP sockets there). {Fix}");

        (rc, output) = Run(criuPath, ["check"], TimeSpan.FromSeconds(60));
        if (rc != 0)
            return new(false, version,
                $"'criu check' failed (exit {rc}): {Trim(output)}. Run criu as root on a kernel with " +
                $"CONFIG_CHECKPOINT_RESTORE; {Fix}");
        return new(true, version, $"criu {version}: criu check passed.");
    }

    /// <summary>Throws a <see cref="CheckpointException"/> with the diagnostic when criu is not usable.</summary>
    public static CriuProbeResult EnsureUsable(string criuPath = "criu")
    {
        var result = Probe(criuPath);
        if (!result.Usable)
            throw new CheckpointException(result.Diagnostic);
        return result;
    }

    private static string Trim(string s)
    {
        s = s.Trim().ReplaceLineEndings(" | ");
        return s.Length > 600 ? s[..600] + "..." : s;
    }

    private static (int? ExitCode, string Output) Run(string file, string[] args, TimeSpan timeout)
    {
        try
        {
            var r = Shell.Run(timeout, file, args);
            return r.TimedOut
                ? (-1, $"timed out after {timeout.TotalSeconds} s")
                : (r.ExitCode, r.StdOut + r.StdErr);
        }
        catch (InvalidOperationException e) when (e.InnerException is System.ComponentModel.Win32Exception w)
        {
            return (null, w.Message);
        }
    }

    [GeneratedRegex(@"Version:\s*(\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionLine();
}
