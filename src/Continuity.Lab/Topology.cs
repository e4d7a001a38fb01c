using System.Text.RegularExpressions;

namespace Continuity.Lab;

/// <summary>Names and addresses of the lab. Fixed, so tools and people can rely on them.</summary>
internal static partial class Topology
{
    public const string Bridge = "ctbr0";
    public const string BridgeAddress = "198.18.0.1";
    public const int PrefixLength = 24;
    public const string ClientName = "client";
    public const string ClientAddress = "198.18.0.100";
    public const string WitnessName = "w1";
    public const string WitnessAddress = "198.18.0.10";
    public const int ClusterPort = 4053;
    public const int ManagementPort = 8558;
    /// <summary>The interface name inside every namespace.</summary>
    public const string InnerInterface = "eth0";

    public static string NamespaceOf(string host) => "ct-" + host;
    public static string BridgePortOf(string host) => "ctv-" + host;
    public static string NodeName(int index) => "n" + index;
    public static string NodeAddress(int index) => "198.18.0." + (10 + index);

    // Only names the lab itself creates: other tools use "ct-" too (install-deps' ct-probe-PID).
    [GeneratedRegex(@"^ct-(n\d+|w\d+|client)$")]
    public static partial Regex LabNamespace();

    [GeneratedRegex(@"^(ctbr\d+|ctv-(n\d+|w\d+|client))$")]
    public static partial Regex LabLink();

    public static List<LabHost> Hosts(int nodes, bool witness)
    {
        var hosts = new List<LabHost>();
        if (witness) hosts.Add(new LabHost { Name = WitnessName, Kind = HostKind.Witness, Address = WitnessAddress });
        for (var i = 1; i <= nodes; i++)
            hosts.Add(new LabHost { Name = NodeName(i), Kind = HostKind.Node, Address = NodeAddress(i) });
        hosts.Add(new LabHost { Name = ClientName, Kind = HostKind.Client, Address = ClientAddress });
        return hosts;
    }

    /// <summary>
    /// The first two data nodes. With a single data node the witness is the second seed, so a
    /// restarted n1 can still find the cluster.
    /// </summary>
    public static IReadOnlyList<LabHost> Seeds(IEnumerable<LabHost> hosts)
    {
        var members = hosts.Where(h => h.IsClusterMember).ToList();
        var seeds = members.Where(h => h.Kind == HostKind.Node).Take(2).ToList();
        if (seeds.Count < 2) seeds.AddRange(members.Where(h => h.Kind == HostKind.Witness).Take(2 - seeds.Count));
        return seeds;
    }

    public static string AkkaAddress(LabHost host) => $"akka.tcp://continuity@{host.Address}:{host.ClusterPort}";
}
