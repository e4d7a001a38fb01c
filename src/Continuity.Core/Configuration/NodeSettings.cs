using System.Net;
using System.Text.RegularExpressions;

namespace Continuity.Core.Configuration;

public enum LogFormat { Text, Json }

/// <summary>The management HTTP endpoint (continuity.management).</summary>
/// <param name="MetricsRequireToken">Whether GET /metrics needs the bearer token like every other resource
/// (continuity.management.metrics-require-token).</param>
public sealed record ManagementSettings(bool Enabled, string BindHost, int BindPort, string TokenFile, bool MetricsRequireToken = true)
{
    /// <summary>An <see cref="IPEndPoint"/> when the host is an address, otherwise a <see cref="DnsEndPoint"/>.</summary>
    public EndPoint BindEndPoint =>
        IPAddress.TryParse(BindHost, out var ip) ? new IPEndPoint(ip, BindPort) : new DnsEndPoint(BindHost, BindPort);
}

/// <summary>The node's self-observation (continuity.supervision): how often the MIB is sampled, how long the
/// management API waits for another member's MIB before listing it as unreachable.</summary>
public sealed record SupervisionSettings(TimeSpan SampleInterval, TimeSpan AskTimeout)
{
    public static readonly SupervisionSettings Default = new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2));
}

/// <summary>Typed, validated continuity.node and continuity.management settings.</summary>
public sealed partial record NodeSettings(
    string Name,
    string StateDir,
    TimeSpan JoinTimeout,
    LogFormat LogFormat,
    ManagementSettings Management,
    SupervisionSettings? Supervision = null)
{
    /// <summary>continuity.supervision, or its defaults.</summary>
    public SupervisionSettings Sampling => Supervision ?? SupervisionSettings.Default;

    /// <exception cref="ConfigurationException">A value is invalid; the message names the key and where it was set.</exception>
    public static NodeSettings From(LoadedConfig config)
    {
        const string node = "continuity.node.";
        const string mgmt = "continuity.management.";

        var name = ConfigValues.String(config, node + "name", required: false);
        if (name.Length == 0) name = Environment.MachineName;
        else if (!NodeName().IsMatch(name))
            throw ConfigValues.Bad(config, node + "name", $"= \"{name}\" is invalid: expected letters, digits, '.', '_' or '-' (or \"\" for the host name)");

        var stateDir = ConfigValues.String(config, node + "state-dir");
        if (!Path.IsPathFullyQualified(stateDir))
            throw ConfigValues.Bad(config, node + "state-dir", $"= \"{stateDir}\" is invalid: expected an absolute path");

        var joinTimeout = ConfigValues.Duration(config, node + "join-timeout", TimeSpan.Zero, "60s (0 = keep trying forever)");

        // Akka.Remote reads it only when the node starts, and dies there with a bare exception: checked here instead.
        const string clusterPort = "akka.remote.dot-netty.tcp.port";
        if (config.Config.HasPath(clusterPort))
        {
            var portText = ConfigValues.String(config, clusterPort);
            if (!int.TryParse(portText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var p) || p > 65535)
                throw ConfigValues.Bad(config, clusterPort, $"= \"{portText}\" is invalid: expected a port 0-65535 (0 = any free port), e.g. 4053");
        }

        var logFormat = ConfigValues.String(config, node + "log-format") switch
        {
            "text" => LogFormat.Text,
            "json" => LogFormat.Json,
            var other => throw ConfigValues.Bad(config, node + "log-format", $"= \"{other}\" is invalid: expected \"text\" or \"json\""),
        };

        var enabled = ConfigValues.Bool(config, mgmt + "enabled");
        var bind = ConfigValues.String(config, mgmt + "bind");
        if (!TryParseHostPort(bind, out var host, out var port))
            throw ConfigValues.Bad(config, mgmt + "bind", $"= \"{bind}\" is invalid: expected \"host:port\" with a port 1-65535 (e.g. \"127.0.0.1:8558\", \"[::1]:8558\")");
        var tokenFile = ConfigValues.String(config, mgmt + "token-file");
        if (!Path.IsPathFullyQualified(tokenFile))
            throw ConfigValues.Bad(config, mgmt + "token-file", $"= \"{tokenFile}\" is invalid: expected an absolute path");

        var metricsRequireToken = ConfigValues.Bool(config, mgmt + "metrics-require-token");
        const string sup = "continuity.supervision.";
        var supervision = new SupervisionSettings(
            ConfigValues.Duration(config, sup + "sample-interval", TimeSpan.FromMilliseconds(100), "5s"),
            ConfigValues.Duration(config, sup + "ask-timeout", TimeSpan.FromMilliseconds(100), "2s"));

        return new NodeSettings(name, stateDir, joinTimeout, logFormat,
            new ManagementSettings(enabled, host, port, tokenFile, metricsRequireToken), supervision);
    }

    internal static bool TryParseHostPort(string text, out string host, out int port)
    {
        host = "";
        port = 0;
        int colon;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0 || close + 1 >= text.Length || text[close + 1] != ':') return false;
            host = text[1..close];
            if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6) return false;
            colon = close + 1;
        }
        else
        {
            colon = text.LastIndexOf(':');
            if (colon <= 0 || text.IndexOf(':') != colon) return false;
            host = text[..colon];
            if (!HostName().IsMatch(host)) return false;
        }
        var portText = text[(colon + 1)..];
        return portText.All(char.IsAsciiDigit) && int.TryParse(portText, out port) && port is >= 1 and <= 65535;
    }

    public static bool IsValidNodeName(string name) => NodeName().IsMatch(name);

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex NodeName();

    [GeneratedRegex("^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")]
    private static partial Regex HostName();
}
