using System.Text.RegularExpressions;

namespace Continuity.Lab;

/// <summary>
/// Names and addresses of one lab instance. Instance 0 is the lab as it always was (ct-n1, ctbr0,
/// 198.18.0.0/24); instance N (1-255) gets ctN-n1, bridge ctNbr, ports ctNv-n1 and 198.18.N.0/24,
/// so two labs (the end-to-end tests and a benchmark, say) can run side by side on one machine
/// without ever touching each other's namespaces, links or rules.
/// </summary>
/// <remarks>
/// Not "ctbrN" for the bridge, and not a comment starting with "continuity-lab" for the rules:
/// labs built before instances existed clean up every ctbr\d+ link and every rule whose comment
/// starts with "continuity-lab", so they would tear down a running instance N.
/// </remarks>
internal sealed class Topology
{
    public const int MaxInstance = 255; // 198.18.N.0/24 must stay inside 198.18.0.0/15
    public const int PrefixLength = 24;
    public const string ClientName = "client";
    /// <summary>Witnesses take the free addresses below the first node's, w1 at .10 down to w9 at .2 (.1 is the bridge).</summary>
    public const int MaxWitnesses = 9;
    public const int ClusterPort = 4053;
    public const int ManagementPort = 8558;
    /// <summary>The interface name inside every namespace.</summary>
    public const string InnerInterface = "eth0";
    public const string InstanceVariable = "CONTINUITY_LAB_INSTANCE";
    public const string BaseStateDir = "/var/lib/continuity-lab";

    private static readonly Topology[] Instances = Enumerable.Range(0, MaxInstance + 1).Select(i => new Topology(i)).ToArray();

    public static Topology Default => Instances[0];

    public static Topology Of(int instance) =>
        instance is >= 0 and <= MaxInstance
            ? Instances[instance]
            : throw new LabException($"lab instance {instance} is out of range: expected 0-{MaxInstance}");

    public int Instance { get; }
    private readonly string _namespacePrefix;
    private readonly string _portPrefix;
    private readonly Regex _labNamespace;
    private readonly Regex _labLink;

    private Topology(int instance)
    {
        Instance = instance;
        _namespacePrefix = instance == 0 ? "ct-" : $"ct{instance}-";
        _portPrefix = instance == 0 ? "ctv-" : $"ct{instance}v-";
        // Only names this instance creates: other tools use "ct-" too (install-deps' ct-probe-PID),
        // and another instance's names must never match.
        _labNamespace = new Regex($@"^{Regex.Escape(_namespacePrefix)}(n\d+|w\d+|client)$", RegexOptions.CultureInvariant);
        _labLink = new Regex($@"^({Regex.Escape(Bridge)}|{Regex.Escape(_portPrefix)}(n\d+|w\d+|client))$", RegexOptions.CultureInvariant);
    }

    public string Bridge => Instance == 0 ? "ctbr0" : $"ct{Instance}br";
    public string Subnet => $"198.18.{Instance}.0/{PrefixLength}";
    public string BridgeAddress => Address(1);
    public string ClientAddress => Address(100);
    /// <summary>A free address of the subnet the lab never hands out (.50-.99 are left for VIPs).</summary>
    public string Address(int host) => $"198.18.{Instance}.{host}";

    /// <summary>Marks root-namespace iptables rules as this instance's, so down finds them without lab.json.</summary>
    public string RuleComment => Instance == 0 ? "continuity-lab" : $"ct{Instance}-continuity-lab";

    /// <summary>Where lab.json lives unless --state-dir or CONTINUITY_LAB_DIR say otherwise.</summary>
    public string DefaultStateDir => Instance == 0 ? BaseStateDir : $"{BaseStateDir}-{Instance}";

    public string NamespaceOf(string host) => _namespacePrefix + host;
    public string BridgePortOf(string host) => _portPrefix + host;
    public static string NodeName(int index) => "n" + index;
    public string NodeAddress(int index) => Address(10 + index);
    public static string WitnessName(int index) => "w" + index;
    /// <summary>w1 at .10 (as before there could be more than one), w2 at .9, and so on down to .2.</summary>
    public string WitnessAddress(int index) =>
        index is >= 1 and <= MaxWitnesses
            ? Address(11 - index)
            : throw new LabException($"witness {index} is out of range: expected 1-{MaxWitnesses}");

    public Regex LabNamespace() => _labNamespace;
    public Regex LabLink() => _labLink;

    public List<LabHost> Hosts(int nodes, int witnesses)
    {
        var hosts = new List<LabHost>();
        for (var i = 1; i <= witnesses; i++)
            hosts.Add(new LabHost { Name = WitnessName(i), Kind = HostKind.Witness, Address = WitnessAddress(i), Instance = Instance });
        for (var i = 1; i <= nodes; i++)
            hosts.Add(new LabHost { Name = NodeName(i), Kind = HostKind.Node, Address = NodeAddress(i), Instance = Instance });
        hosts.Add(new LabHost { Name = ClientName, Kind = HostKind.Client, Address = ClientAddress, Instance = Instance });
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
