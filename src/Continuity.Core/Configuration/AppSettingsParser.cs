using System.Net;
using System.Text.RegularExpressions;
using Continuity.Core.Apps;
using Continuity.Core.Placement;
using Continuity.Core.Platform;
using Continuity.Core.Supervision;

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
    /// <param name="localSubnet">Seam for tests: the interface and prefix length this machine gives an address, or null
    /// when the address is not one of this machine's; defaults to the machine's network interfaces.</param>
    /// <exception cref="ConfigurationException">A value is invalid; the message names the key, where it was set, the value and what is expected.</exception>
    public static IReadOnlyList<AppSpec> Parse(
        LoadedConfig config,
        Func<string, bool>? fileExists = null,
        Func<string, bool>? isExecutable = null,
        string? searchPath = null,
        Func<IPAddress, (string Interface, int PrefixLength)?>? localSubnet = null)
    {
        fileExists ??= File.Exists;
        isExecutable ??= IsExecutable;
        searchPath ??= Environment.GetEnvironmentVariable("PATH") ?? "";
        localSubnet ??= LocalSubnet;
        var node = NodeAddress(config, localSubnet);

        var names = AppNames(config);
        var queueBase = QueueBase(config);
        if (queueBase + names.Count - 1 > ushort.MaxValue)
            throw ConfigValues.Bad(config, Defaults + ".queue-base",
                $"= {queueBase} is invalid: with {names.Count} applications the queue numbers would pass {ushort.MaxValue}");

        var specs = new List<AppSpec>(names.Count);
        for (var i = 0; i < names.Count; i++)
            specs.Add(ParseApp(config, names[i], (ushort)(queueBase + i), fileExists, isExecutable, searchPath, node));

        // Each application adds and removes its VIP on its own: two applications sharing one would take it away
        // from each other at the first switch.
        foreach (var same in specs.GroupBy(a => a.Vip).Where(g => g.Count() > 1))
        {
            var list = same.ToList();
            throw ConfigValues.Bad(config, $"{Apps}.{list[1].Name}.vip",
                $"= \"{same.Key}/{list[1].VipPrefixLength}\" is already the VIP of application {list[0].Name}: give each application its own VIP");
        }
        return specs;
    }

    /// <summary>continuity.placement, with every application's preference (from <see cref="Parse"/>'s result).</summary>
    /// <exception cref="ConfigurationException">A value is invalid; the message names the key and where it was set.</exception>
    public static PlacementSettings ParsePlacement(LoadedConfig config, IReadOnlyList<AppSpec> apps)
    {
        const string key = "continuity.placement.";
        return new PlacementSettings(
            ConfigValues.Bool(config, key + "rebalance"),
            ConfigValues.Duration(config, key + "rebalance-interval", TimeSpan.FromSeconds(1), "30s"),
            apps.ToDictionary(a => a.Name, a => a.Prefer));
    }

    /// <summary>continuity.supervision: the resource rules each owner applies to its primary.</summary>
    /// <exception cref="ConfigurationException">A value is invalid; the message names the key and where it was set.</exception>
    public static ResourceRules ParseResourceRules(LoadedConfig config)
    {
        const string key = "continuity.supervision.";
        var minText = ConfigValues.String(config, key + "min-free-disk-percent");
        if (!double.TryParse(minText, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var min)
            || min is < 0 or > 50)
            throw ConfigValues.Bad(config, key + "min-free-disk-percent", $"= \"{minText}\" is invalid: expected a number 0-50 (0 = off), e.g. 5");
        var action = ConfigValues.String(config, key + "on-disk-full") switch
        {
            "switch" => DiskFullAction.Switch,
            "alarm" => DiskFullAction.Alarm,
            var other => throw ConfigValues.Bad(config, key + "on-disk-full", $"= \"{other}\" is invalid: expected switch or alarm"),
        };
        var interval = ConfigValues.Duration(config, key + "check-interval", TimeSpan.FromSeconds(1), "5s");

        // Below a second the rule would drop standbys for what the capture's own resend (every 250 ms) repairs.
        var lag = ConfigValues.Duration(config, key + "max-standby-lag", TimeSpan.Zero, "10s");
        if (lag > TimeSpan.Zero && lag < TimeSpan.FromSeconds(1))
            throw ConfigValues.Bad(config, key + "max-standby-lag",
                $"= \"{ConfigValues.String(config, key + "max-standby-lag")}\" is invalid: expected 0 (off) or a duration of at least 1s, e.g. 10s");
        var packetsText = ConfigValues.String(config, key + "max-standby-lag-packets");
        if (!long.TryParse(packetsText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var packets))
            throw ConfigValues.Bad(config, key + "max-standby-lag-packets", $"= \"{packetsText}\" is invalid: expected a whole number of packets (0 = off), e.g. 5000");
        var onLag = ConfigValues.String(config, key + "on-standby-lag") switch
        {
            "drop" => StandbyLagAction.Drop,
            "alarm" => StandbyLagAction.Alarm,
            var other => throw ConfigValues.Bad(config, key + "on-standby-lag", $"= \"{other}\" is invalid: expected drop or alarm"),
        };
        return new ResourceRules(min, action, interval, lag, packets, onLag);
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
        Func<string, bool> fileExists, Func<string, bool> isExecutable, string searchPath, NodeAddressInfo? node)
    {
        var p = $"{Apps}.{name}.";
        // An application's own setting wins over app-defaults; both carry their position for errors.
        string Key(string k) => config.Config.HasPath(p + k) ? p + k : $"{Defaults}.{k}";

        var command = ConfigValues.StringList(config, p + "command", "a non-empty array of strings, e.g. [\"/usr/local/bin/kv-server\", \"--port\", \"7000\"]");
        if (command.Count == 0 || string.IsNullOrWhiteSpace(command[0]))
            throw ConfigValues.Bad(config, p + "command",
                $"= [{string.Join(", ", command.Select(c => $"\"{c}\""))}] is invalid: expected a non-empty array of strings whose first element is the program, e.g. [\"/usr/local/bin/kv-server\", \"--port\", \"7000\"]");
        CheckExecutable(config, p + "command", command[0], fileExists, isExecutable, searchPath);

        var vipKey = p + "vip";
        var vipText = ConfigValues.String(config, vipKey);
        if (!TryParseVip(vipText, out var vip, out var prefix))
            throw ConfigValues.Bad(config, vipKey, $"= \"{vipText}\" is invalid: expected an IPv4 address with prefix length \"A.B.C.D/N\" (N 1-30), e.g. \"198.18.0.50/24\"");
        CheckVip(config, vipKey, vipText, vip, prefix, node);

        var portsKey = p + "ports";
        var ports = new List<PortSpec>();
        foreach (var entry in ConfigValues.StringList(config, portsKey, "an array like [\"tcp/7000\", \"udp/7001\"]"))
        {
            if (!TryParsePort(entry, out var port))
                throw ConfigValues.Bad(config, portsKey, $"entry \"{entry}\" is invalid: {PortProblem(entry)}");
            if (ports.Contains(port))
                throw ConfigValues.Bad(config, portsKey, $"entry \"{entry}\" is listed twice: remove the duplicate");
            ports.Add(port);
        }
        if (ports.Count == 0)
            // Traffic to a port that is not listed reaches the program unlogged: a failover would lose what it acknowledged.
            throw ConfigValues.Bad(config, portsKey, "= [] is invalid: expected at least one \"tcp/PORT\" or \"udp/PORT\" clients connect to, e.g. [\"tcp/7000\"] (only listed ports are logged and survive a failover)");

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

        var maxRestartsKey = Key("max-restarts");
        var maxRestartsText = ConfigValues.String(config, maxRestartsKey);
        if (!int.TryParse(maxRestartsText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var maxRestarts)
            || maxRestarts > 100)
            throw ConfigValues.Bad(config, maxRestartsKey, $"= \"{maxRestartsText}\" is invalid: expected a whole number 0-100 (0 = never start a failed program again)");
        var backoff = ConfigValues.Duration(config, Key("restart-backoff"), MinCheckpointInterval, "1s");
        var windowKey = Key("restart-window");
        var window = ConfigValues.Duration(config, windowKey, TimeSpan.FromSeconds(1), "10m");
        if (window < backoff)
            throw ConfigValues.Bad(config, windowKey, $"= \"{ConfigValues.String(config, windowKey)}\" is invalid: expected a duration at least as long as restart-backoff ({ConfigValues.FormatDuration(backoff)})");

        var preferKey = Key("prefer");
        var prefer = ConfigValues.StringList(config, preferKey, "an array of node names, e.g. [\"n2\", \"n3\"]");
        foreach (var n in prefer)
            if (!NodeSettings.IsValidNodeName(n))
                throw ConfigValues.Bad(config, preferKey, $"entry \"{n}\" is invalid: expected a node name (continuity.node.name: letters, digits, '.', '_' or '-')");
        if (prefer.Distinct(StringComparer.Ordinal).Count() != prefer.Count)
            throw ConfigValues.Bad(config, preferKey, "lists a node twice: remove the duplicate");

        return new AppSpec(name, command, vip, prefix, ports, interval, dirs, recovery, queue)
        {
            Restarts = new RestartPolicy(maxRestarts, backoff, window),
            Prefer = prefer,
        };
    }

    private static string PortProblem(string entry)
    {
        const string expected = "expected \"tcp/PORT\" or \"udp/PORT\" with PORT 1-65535, e.g. \"tcp/7000\"";
        var slash = entry.IndexOf('/');
        if (slash < 0)
            return entry.All(char.IsAsciiDigit) && entry.Length > 0
                ? $"the protocol is missing: {expected} (write \"tcp/{entry}\" or \"udp/{entry}\")"
                : expected;
        var proto = entry[..slash];
        var number = entry[(slash + 1)..];
        if (proto.Length > 0 && proto.All(char.IsAsciiDigit))
            return number.ToLowerInvariant() is "tcp" or "udp"
                ? $"protocol and port are swapped: {expected} (write \"{number.ToLowerInvariant()}/{proto}\")"
                : expected;
        if (proto is not ("tcp" or "udp"))
            return proto.ToLowerInvariant() is "tcp" or "udp"
                ? $"protocol \"{proto}\" must be lower case: {expected}"
                : $"protocol \"{proto}\" is not supported (only tcp and udp are logged): {expected}";
        if (number.Length > 0 && number.All(char.IsAsciiDigit))
            return $"port {number.TrimStart('0')} is out of range: {expected}";
        return expected;
    }

    /// <summary>This node's own IPv4 address, when the configuration gives one that clients could reach it on.</summary>
    private sealed record NodeAddressInfo(IPAddress Address, string Key, ConfigPosition? Position, (string Interface, int PrefixLength)? Local);

    private static NodeAddressInfo? NodeAddress(LoadedConfig config, Func<IPAddress, (string Interface, int PrefixLength)?> localSubnet)
    {
        // Akka advertises public-hostname when it is set, hostname otherwise: that is the address the other nodes
        // (and the VIP's neighbours) know this node by.
        foreach (var key in new[] { "akka.remote.dot-netty.tcp.public-hostname", "akka.remote.dot-netty.tcp.hostname" })
        {
            string text;
            try
            {
                if (!config.Config.HasPath(key)) continue;
                var value = config.Config.GetValue(key);
                if (value is null || value.IsEmpty || !value.IsString()) continue;
                text = value.GetString().Trim();
            }
            catch (Exception)
            {
                continue; // not this parser's key to judge: Akka reports it when the node starts
            }
            if (text.Length == 0) continue;
            // A host name is not resolved here (a check must not depend on DNS), and loopback or "any" says nothing
            // about the subnet clients use.
            if (!TryParseDottedQuad(text, out var address) || IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any))
                return null;
            (string, int)? local = null;
            try { local = localSubnet(address); }
            catch (Exception) { }
            return new NodeAddressInfo(address, key, config.PositionOf(key), local);
        }
        return null;
    }

    private static void CheckVip(LoadedConfig config, string key, string text, IPAddress vip, int prefix, NodeAddressInfo? node)
    {
        var b = vip.GetAddressBytes();
        if (b[0] is 0 or 127 || b[0] >= 224)
            throw ConfigValues.Bad(config, key, $"= \"{text}\" is invalid: {vip} is {(b[0] == 127 ? "a loopback" : b[0] == 0 ? "a \"this network\"" : b[0] < 240 ? "a multicast" : "a reserved")} address; expected a unicast address in the subnet of the nodes, e.g. \"198.18.0.50/24\"");
        var value = ToUInt(vip);
        var mask = Mask(prefix);
        if (prefix > 30)
            throw ConfigValues.Bad(config, key, $"= \"{text}\" is invalid: a /{prefix} holds no other address, but the VIP must share the subnet of the nodes' own addresses; expected its prefix length (e.g. \"{vip}/24\")");
        if (value == (value & mask) || value == (value | ~mask))
            throw ConfigValues.Bad(config, key, $"= \"{text}\" is invalid: {vip} is the {(value == (value & mask) ? "network" : "broadcast")} address of {FromUInt(value & mask)}/{prefix}; expected a free host address in that subnet");
        if (node is null) return;

        var where = $"this node's address {node.Address} ('{node.Key}'{(node.Position is { } pos ? $" at {pos}" : "")})";
        if (vip.Equals(node.Address))
            throw ConfigValues.Bad(config, key, $"= \"{text}\" is invalid: it is {where}; the VIP moves between nodes and must be a free address of their subnet");
        if ((ToUInt(node.Address) & mask) != (value & mask))
            throw ConfigValues.Bad(config, key, $"= \"{text}\" is outside the subnet of {where}: {node.Address} is not in {FromUInt(value & mask)}/{prefix}; expected a free address in the nodes' subnet with its prefix length (or fix '{node.Key}')");
        if (node.Local is { } local)
        {
            var ifaceMask = Mask(local.PrefixLength);
            if ((ToUInt(node.Address) & ifaceMask) != (value & ifaceMask))
                throw ConfigValues.Bad(config, key, $"= \"{text}\" is outside the subnet of {where}: {local.Interface} carries {node.Address}/{local.PrefixLength}, which does not contain {vip}; expected a free address in {FromUInt(ToUInt(node.Address) & ifaceMask)}/{local.PrefixLength}");
        }
    }

    private static uint ToUInt(IPAddress a)
    {
        var b = a.GetAddressBytes();
        return (uint)b[0] << 24 | (uint)b[1] << 16 | (uint)b[2] << 8 | b[3];
    }

    private static IPAddress FromUInt(uint v) => new([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]);

    private static uint Mask(int prefix) => prefix <= 0 ? 0 : prefix >= 32 ? uint.MaxValue : uint.MaxValue << (32 - prefix);

    /// <summary>The interface that carries <paramref name="address"/> on this machine and its prefix length, if any.</summary>
    private static (string Interface, int PrefixLength)? LocalSubnet(IPAddress address)
    {
        foreach (var nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
            foreach (var u in nic.GetIPProperties().UnicastAddresses)
                if (u.Address.Equals(address))
                    return (nic.Name, u.PrefixLength);
        return null;
    }

    private static void CheckExecutable(LoadedConfig config, string key, string program,
        Func<string, bool> fileExists, Func<string, bool> isExecutable, string searchPath)
    {
        if (Path.IsPathFullyQualified(program))
        {
            if (Directory.Exists(program))
                throw ConfigValues.Bad(config, key, $"program \"{program}\" is a directory: expected the program file itself, e.g. \"{Path.Combine(program, "server")}\"");
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
        return TryParseDottedQuad(m.Groups[1].Value, out address);
    }

    private static bool TryParseDottedQuad(string text, out IPAddress address)
    {
        address = IPAddress.None;
        var octets = text.Split('.');
        if (octets.Length != 4 || octets.Any(o => o.Length is 0 or > 3 || !o.All(char.IsAsciiDigit) || int.Parse(o) > 255 || (o.Length > 1 && o[0] == '0')))
            return false;
        address = IPAddress.Parse(text);
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
