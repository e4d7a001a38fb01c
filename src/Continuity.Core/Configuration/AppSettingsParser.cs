using System.Net;
using System.Text.RegularExpressions;
using Continuity.Core.Apps;
using Continuity.Core.Platform;

namespace Continuity.Core.Configuration;

/// <summary>Turns every block under continuity.apps into a validated <see cref="AppSpec"/>.</summary>
public static partial class AppSettingsParser
{
    private const string Apps = "continuity.apps";
    private const string Defaults = "continuity.app-defaults";
    private static readonly TimeSpan MinCheckpointInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>Parses the applications, sorted by name; queue numbers follow that order from app-defaults.queue-base.</summary>
    /// <param name="fileExists">Seam for tests; defaults to the real file system.</param>
    /// <param name="isExecutable">Seam for tests; defaults to checking the Unix execute bits.</param>
    /// <param name="searchPath">The PATH used for bare command names; defaults to the environment's.</param>
    /// <exception cref="ConfigurationException">A value is invalid; the message names the key, where it was set, the value and what is expected.</exception>
    public static IReadOnlyList<AppSpec> Parse(
        LoadedConfig config,
        Func<string, bool>? fileExists = null,
        Func<string, bool>? isExecutable = null,
        string? searchPath = null)
    {
        fileExists ??= File.Exists;
        isExecutable ??= IsExecutable;
        searchPath ??= Environment.GetEnvironmentVariable("PATH") ?? "";

        var names = AppNames(config);
        var queueBase = QueueBase(config);
        if (queueBase + names.Count - 1 > ushort.MaxValue)
            throw ConfigValues.Bad(config, Defaults + ".queue-base",
                $"= {queueBase} is invalid: with {names.Count} applications the queue numbers would pass {ushort.MaxValue}");

        var specs = new List<AppSpec>(names.Count);
        for (var i = 0; i < names.Count; i++)
            specs.Add(ParseApp(config, names[i], (ushort)(queueBase + i), fileExists, isExecutable, searchPath));
        return specs;
    }

    private static List<string> AppNames(LoadedConfig config)
    {
        var prefix = Apps + ".";
        var names = config.Positions.Keys
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => k[prefix.Length..])
            // A quoted name renders with quotes and so fails the name rule below, as it should.
            .Select(rest => rest.StartsWith('"') ? rest : rest.Split('.')[0])
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();
        foreach (var name in names)
        {
            var key = prefix + name;
            if (!AppName().IsMatch(name))
                throw ConfigValues.Bad(config, key, "is not a valid application name: expected lower-case letters, digits and '-' (e.g. kv-store)");
            var raw = ConfigValues.Raw(config, key);
            if (raw is null || !raw.IsObject())
                throw ConfigValues.Bad(config, key, $"= {(raw is null ? "nothing" : ConfigValues.Show(raw))} is invalid: expected a block {name} {{ command = [...], vip = ..., ports = [...] }}");
        }
        return names;
    }

    private static int QueueBase(LoadedConfig config)
    {
        var key = Defaults + ".queue-base";
        var s = ConfigValues.String(config, key);
        if (!int.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) || n > ushort.MaxValue)
            throw ConfigValues.Bad(config, key, $"= \"{s}\" is invalid: expected an NFQUEUE number 0-{ushort.MaxValue}");
        return n;
    }

    private static AppSpec ParseApp(LoadedConfig config, string name, ushort queue,
        Func<string, bool> fileExists, Func<string, bool> isExecutable, string searchPath)
    {
        var p = $"{Apps}.{name}.";
        // An application's own setting wins over app-defaults; both carry their position for errors.
        string Key(string k) => config.Config.HasPath(p + k) ? p + k : $"{Defaults}.{k}";

        var command = ConfigValues.StringList(config, p + "command", "a non-empty array of strings, e.g. [\"/usr/local/bin/kv-server\", \"--port\", \"7000\"]");
        if (command.Count == 0 || command[0].Length == 0)
            throw ConfigValues.Bad(config, p + "command", "is invalid: expected a non-empty array of strings whose first element is the program");
        CheckExecutable(config, p + "command", command[0], fileExists, isExecutable, searchPath);

        var vipText = ConfigValues.String(config, p + "vip");
        if (!TryParseVip(vipText, out var vip, out var prefix))
            throw ConfigValues.Bad(config, p + "vip", $"= \"{vipText}\" is invalid: expected an IPv4 address with prefix length \"A.B.C.D/N\" (N 1-32), e.g. \"198.18.0.50/24\"");

        var portsKey = p + "ports";
        var ports = new List<PortSpec>();
        foreach (var entry in ConfigValues.StringList(config, portsKey, "an array like [\"tcp/7000\", \"udp/7001\"]"))
        {
            if (!TryParsePort(entry, out var port))
                throw ConfigValues.Bad(config, portsKey, $"entry \"{entry}\" is invalid: expected \"tcp/PORT\" or \"udp/PORT\" with PORT 1-65535, e.g. \"tcp/7000\"");
            if (ports.Contains(port))
                throw ConfigValues.Bad(config, portsKey, $"entry \"{entry}\" is listed twice: remove the duplicate");
            ports.Add(port);
        }

        var interval = ConfigValues.Duration(config, Key("checkpoint-interval"), MinCheckpointInterval, "2s");

        var dirsKey = Key("state-dirs");
        var dirs = ConfigValues.StringList(config, dirsKey, "an array of absolute paths, e.g. [\"/var/lib/kv\"]");
        foreach (var d in dirs)
            if (!Path.IsPathFullyQualified(d))
                throw ConfigValues.Bad(config, dirsKey, $"entry \"{d}\" is invalid: expected an absolute path");

        var recoveryKey = Key("recovery");
        var recovery = ConfigValues.String(config, recoveryKey) switch
        {
            "replay" => RecoveryPolicy.Replay,
            "restore-only" => RecoveryPolicy.RestoreOnly,
            var other => throw ConfigValues.Bad(config, recoveryKey, $"= \"{other}\" is invalid: expected replay or restore-only"),
        };

        return new AppSpec(name, command, vip, prefix, ports, interval, dirs, recovery, queue);
    }

    private static void CheckExecutable(LoadedConfig config, string key, string program,
        Func<string, bool> fileExists, Func<string, bool> isExecutable, string searchPath)
    {
        if (Path.IsPathFullyQualified(program))
        {
            if (!fileExists(program))
                throw ConfigValues.Bad(config, key, $"program \"{program}\" does not exist: install it or fix the path");
            if (!isExecutable(program))
                throw ConfigValues.Bad(config, key, $"program \"{program}\" is not executable: chmod +x it or fix the path");
            return;
        }
        if (program.Contains('/'))
            // The node's working directory is not the user's shell's, so a relative path would
            // silently name a different file under systemd.
            throw ConfigValues.Bad(config, key, $"program \"{program}\" is a relative path: expected an absolute path or a bare name found in PATH");
        foreach (var dir in searchPath.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, program);
            if (fileExists(candidate) && isExecutable(candidate)) return;
        }
        throw ConfigValues.Bad(config, key, $"program \"{program}\" was not found in PATH ({searchPath}): use an absolute path or install it");
    }

    private static bool IsExecutable(string path)
    {
        if (OperatingSystem.IsWindows()) return true;
        try
        {
            const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            return !Directory.Exists(path) && (File.GetUnixFileMode(path) & anyExecute) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    internal static bool TryParseVip(string text, out IPAddress address, out int prefix)
    {
        address = IPAddress.None;
        prefix = 0;
        // IPAddress.TryParse accepts "10" or "10.1" as IPv4, so the dotted quad is checked first.
        var m = VipSyntax().Match(text);
        if (!m.Success || !int.TryParse(m.Groups[2].Value, out prefix) || prefix is < 1 or > 32) return false;
        var octets = m.Groups[1].Value.Split('.');
        if (octets.Any(o => o.Length > 3 || int.Parse(o) > 255 || (o.Length > 1 && o[0] == '0'))) return false;
        address = IPAddress.Parse(m.Groups[1].Value);
        return true;
    }

    internal static bool TryParsePort(string text, out PortSpec port)
    {
        port = null!;
        var m = PortSyntax().Match(text);
        if (!m.Success || !int.TryParse(m.Groups[2].Value, out var n) || n is < 1 or > 65535) return false;
        port = new PortSpec(m.Groups[1].Value, n);
        return true;
    }

    [GeneratedRegex("^[a-z0-9-]+$")]
    private static partial Regex AppName();

    [GeneratedRegex(@"^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})/(\d{1,2})$")]
    private static partial Regex VipSyntax();

    [GeneratedRegex(@"^(tcp|udp)/(\d{1,5})$")]
    private static partial Regex PortSyntax();
}
