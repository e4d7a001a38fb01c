namespace Continuity.Lab;

/// <summary>The lab's network: bridge, namespaces, veth pairs, partition rules.</summary>
internal static class Network
{
    private const string PartitionChain = "CT-PARTITION";
    public static string NetnsPath(string ns) => "/run/netns/" + ns;

    public static void CreateBridge(Topology topology)
    {
        Os.RunChecked("ip", "link", "add", topology.Bridge, "type", "bridge");
        Os.RunChecked("ip", "addr", "add", $"{topology.BridgeAddress}/{Topology.PrefixLength}", "dev", topology.Bridge);
        Os.RunChecked("ip", "link", "set", topology.Bridge, "up");
    }

    public static void CreateHost(Topology topology, LabHost host)
    {
        var ns = host.Namespace;
        Os.RunChecked("ip", "netns", "add", ns);
        Os.RunChecked("ip", "link", "add", host.BridgePort, "type", "veth", "peer", "name", Topology.InnerInterface, "netns", ns);
        Os.RunChecked("ip", "link", "set", host.BridgePort, "master", topology.Bridge);
        Os.RunChecked("ip", "link", "set", host.BridgePort, "up");
        Os.RunChecked("ip", "-n", ns, "link", "set", "lo", "up");
        Os.RunChecked("ip", "-n", ns, "addr", "add", $"{host.Address}/{Topology.PrefixLength}", "dev", Topology.InnerInterface);
        Os.RunChecked("ip", "-n", ns, "link", "set", Topology.InnerInterface, "up");
        // The data plane re-injects logged packets whose source is the VIP's peer on a local
        // veth: reverse-path filtering would drop them, and local sources must be accepted.
        // The effective rp_filter is the maximum of "all" and the interface's own value.
        var sysctls = new[]
        {
            "ipv4/conf/all/rp_filter=0", "ipv4/conf/default/rp_filter=0", $"ipv4/conf/{Topology.InnerInterface}/rp_filter=0",
            "ipv4/conf/all/accept_local=1", "ipv4/conf/default/accept_local=1", $"ipv4/conf/{Topology.InnerInterface}/accept_local=1",
        };
        // /proc/sys/net shows the network namespace of the writer, so entering the netns is enough.
        var script = string.Join("; ", sysctls.Select(s =>
        {
            var (key, value) = (s.Split('=')[0], s.Split('=')[1]);
            return $"echo {value} > /proc/sys/net/{key}";
        }));
        InNamespace(ns, "sh", "-ec", script);
    }

    /// <summary>
    /// On hosts with br_netfilter loaded (Docker hosts, typically with FORWARD policy DROP),
    /// bridged frames traverse iptables: let the lab's own bridge traffic through.
    /// </summary>
    public static List<List<string>> AllowBridgedTraffic(Topology topology)
    {
        var rules = new List<List<string>>();
        const string knob = "/proc/sys/net/bridge/bridge-nf-call-iptables";
        if (!File.Exists(knob) || File.ReadAllText(knob).Trim() != "1") return rules;
        var rule = new List<string> { "FORWARD", "-i", topology.Bridge, "-o", topology.Bridge, "-m", "comment", "--comment", topology.RuleComment, "-j", "ACCEPT" };
        Os.RunChecked("iptables", ["-w", "-I", .. rule]);
        rules.Add(rule);
        return rules;
    }

    public static void SetLinks(LabHost host, bool up)
    {
        var state = up ? "up" : "down";
        // Inside first when going down: the node's own end is where its FIN/RST would leave.
        if (!up) TryRun("ip", "-n", host.Namespace, "link", "set", Topology.InnerInterface, state);
        TryRun("ip", "link", "set", host.BridgePort, state);
        if (up) TryRun("ip", "-n", host.Namespace, "link", "set", Topology.InnerInterface, state);
    }

    /// <summary>
    /// What a power loss does to a machine and the lab's crash does not (its namespace survives): addresses other than
    /// its own, the node's netfilter rules (raw table) and the links a switch created are gone when it comes back.
    /// Without this a revived node still carried the VIP of its previous life, answered ARP for it and queued
    /// packets nobody read. The partition chain (filter table) is the lab's network, not the machine's: it stays.
    /// </summary>
    public static void Reboot(LabHost host)
    {
        var ns = host.Namespace;
        TryRun("ip", "-n", ns, "addr", "flush", "dev", Topology.InnerInterface);
        Os.RunChecked("ip", "-n", ns, "addr", "add", $"{host.Address}/{Topology.PrefixLength}", "dev", Topology.InnerInterface);
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", "raw", "-F");
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", "raw", "-X");
        // The VIP fences (nftables tables of continuity-node) do not survive a reboot either.
        foreach (var table in Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "nft", "list", "tables").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (table.Contains("continuity_fence_", StringComparison.Ordinal))
                Os.Run("nsenter", [$"--net={NetnsPath(ns)}", "--", "nft", "delete", .. table.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..]]);
        foreach (var line in Os.Run("ip", "-n", ns, "-o", "link", "show").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // "3: inj0@inj1: <...>": the name is the second field, up to '@' or ':'.
            var name = line.Split(':', 3) is { Length: 3 } f ? f[1].Trim().Split('@')[0] : "";
            if (name is "" or "lo" || name == Topology.InnerInterface) continue;
            TryRun("ip", "-n", ns, "link", "del", name);
        }
    }

    public static CommandResult InNamespace(string ns, string file, params string[] args)
    {
        var r = Os.Run("nsenter", [$"--net={NetnsPath(ns)}", "--", file, .. args]);
        if (!r.Succeeded)
            throw new LabException($"'{r.CommandLine}' failed (exit {r.ExitCode}): {r.Stderr.Trim()}");
        return r;
    }

    /// <summary>
    /// Cuts <paramref name="group"/> off from every cluster member outside it, in both directions, and as nearly at
    /// once as the machine allows: the chains are hooked in first (empty, they change nothing), then each member of
    /// the group drops everything from the other side with one rule (iptables expands the address list in one
    /// commit), which alone completes the cut; the opposite rules follow. Cutting pair by pair, as this did first,
    /// took several seconds on a loaded machine (a dozen iptables runs per pair): members saw the other side go
    /// unreachable seconds apart, some saw a node unreachable that others still reached, and the resolver took that
    /// for an unstable or indirectly connected cluster and downed the primary of the majority (split-majority seed
    /// 606, docs/chaos.md).
    /// </summary>
    public static void Partition(IReadOnlyList<LabHost> group, IReadOnlyList<LabHost> others)
    {
        foreach (var host in group.Concat(others)) EnsurePartitionChain(host.Namespace);
        var groupAddresses = string.Join(",", group.Select(h => h.Address));
        var otherAddresses = string.Join(",", others.Select(h => h.Address));
        foreach (var inside in group) Drop(inside, "-s", otherAddresses);
        foreach (var outside in others) Drop(outside, "-s", groupAddresses);
        foreach (var inside in group) Drop(inside, "-d", otherAddresses);
        foreach (var outside in others) Drop(outside, "-d", groupAddresses);
    }

    /// <summary>Drops what comes from (-s) or goes to (-d) the peers; a repeated partition may add the rules twice, heal flushes them all.</summary>
    private static void Drop(LabHost host, string direction, string peers) =>
        InNamespace(host.Namespace, "iptables", "-w", "-A", PartitionChain, direction, peers, "-j", "DROP");

    private static void EnsurePartitionChain(string ns)
    {
        // A chain of our own, so the node's rules (NFQUEUE, VIP blocking) are never touched by heal.
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-N", PartitionChain);
        foreach (var hook in new[] { "INPUT", "OUTPUT" })
        {
            if (!Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-C", hook, "-j", PartitionChain).Succeeded)
                InNamespace(ns, "iptables", "-w", "-I", hook, "1", "-j", PartitionChain);
        }
    }

    public static void Heal(string ns)
    {
        if (!NamespaceExists(ns)) return;
        foreach (var hook in new[] { "INPUT", "OUTPUT" })
            while (Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-D", hook, "-j", PartitionChain).Succeeded) { }
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-F", PartitionChain);
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-X", PartitionChain);
    }

    private const string ImpairChain = "CT-CHAOS";

    /// <summary>
    /// Makes a <paramref name="share"/> of the TCP segments between <paramref name="host"/> and
    /// <paramref name="peers"/> on the cluster <paramref name="ports"/> disappear (dropped on the way in) or arrive
    /// twice (a TEE copy of the outgoing ones): the iptables statistic match, as this kernel has no netem. Chains of
    /// their own (CT-CHAOS in filter and mangle), so that neither the node's rules nor a partition are touched.
    /// </summary>
    public static void Impair(LabHost host, IReadOnlyList<LabHost> peers, IReadOnlyList<int> ports, double share, bool duplicate)
    {
        var ns = host.Namespace;
        var (table, hook) = duplicate ? ("mangle", "OUTPUT") : ("filter", "INPUT");
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", table, "-N", ImpairChain);
        if (!Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", table, "-C", hook, "-j", ImpairChain).Succeeded)
            InNamespace(ns, "iptables", "-w", "-t", table, "-I", hook, "1", "-j", ImpairChain);
        var portList = string.Join(',', ports.Distinct());
        var probability = share.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
        foreach (var peer in peers)
        {
            string[] rule = duplicate
                ? ["-d", peer.Address, "-p", "tcp", "-m", "multiport", "--ports", portList, "-m", "statistic", "--mode", "random",
                   "--probability", probability, "-j", "TEE", "--gateway", peer.Address]
                : ["-s", peer.Address, "-p", "tcp", "-m", "multiport", "--ports", portList, "-m", "statistic", "--mode", "random",
                   "--probability", probability, "-j", "DROP"];
            InNamespace(ns, "iptables", ["-w", "-t", table, "-A", ImpairChain, .. rule]);
        }
    }

    /// <summary>
    /// Makes a <paramref name="share"/> of the cluster-port segments of at most one MTU that <paramref name="host"/> sends
    /// to <paramref name="peers"/> overtaken by the others: they are classified (iptables CLASSIFY, chosen by the
    /// statistic match) into a slow lane of an htb qdisc on the host's eth0 (<paramref name="slowRate"/>, a short
    /// fifo), everything else goes through a lane too fast to matter. This kernel has neither netem nor prio, and htb
    /// is what gives a delay that other segments pass. Segments larger than an MTU (checkpoint chunks sent with
    /// segmentation offload) stay in the fast lane, so the shipping of checkpoints is not starved. The fifo's limit
    /// bounds the delay; what overflows it is dropped (read by <see cref="SlowLaneDrops"/>).
    /// </summary>
    public static void Reorder(LabHost host, IReadOnlyList<LabHost> peers, IReadOnlyList<int> ports, double share, string slowRate = "1mbit")
    {
        var ns = host.Namespace;
        var dev = Topology.InnerInterface;
        InNamespace(ns, "tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1");
        InNamespace(ns, "tc", "class", "replace", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit");
        InNamespace(ns, "tc", "class", "replace", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", slowRate, "ceil", slowRate,
            "burst", "2k", "cburst", "2k");
        InNamespace(ns, "tc", "qdisc", "replace", "dev", dev, "parent", "1:2", "handle", "2:", "pfifo", "limit", "200");
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", "mangle", "-N", ImpairChain);
        if (!Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", "mangle", "-C", "OUTPUT", "-j", ImpairChain).Succeeded)
            InNamespace(ns, "iptables", "-w", "-t", "mangle", "-I", "OUTPUT", "1", "-j", ImpairChain);
        var portList = string.Join(',', ports.Distinct());
        var probability = share.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
        foreach (var peer in peers)
            InNamespace(ns, "iptables", "-w", "-t", "mangle", "-A", ImpairChain, "-d", peer.Address, "-p", "tcp", "-m", "multiport",
                "--ports", portList, "-m", "length", "--length", "0:1500", "-m", "statistic", "--mode", "random", "--probability", probability,
                "-j", "CLASSIFY", "--set-class", "1:2");
    }

    /// <summary>Packets the slow lane of <see cref="Reorder"/> dropped because its fifo was full (0 without one).</summary>
    public static long SlowLaneDrops(string ns)
    {
        // "qdisc pfifo 2: parent 1:2 limit 200p\n Sent 1234 bytes 10 pkt (dropped 0, overlimits 0 requeues 0)"
        var text = Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "tc", "-s", "qdisc", "show", "dev", Topology.InnerInterface).Stdout;
        var m = System.Text.RegularExpressions.Regex.Match(text, @"qdisc pfifo 2:.*?\(dropped (\d+)", System.Text.RegularExpressions.RegexOptions.Singleline);
        return m.Success ? long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>
    /// TcpExt counters of the namespace (/proc/net/netstat as a process inside it sees it), e.g. TCPOFOQueue: segments
    /// that arrived out of order and were queued, which is how a reordering shows on the receiving side.
    /// </summary>
    public static IReadOnlyDictionary<string, long> TcpExtCounters(string ns)
    {
        var lines = Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "cat", "/proc/net/netstat").Stdout.Split('\n');
        var counters = new Dictionary<string, long>();
        for (var i = 0; i + 1 < lines.Length; i++)
        {
            if (!lines[i].StartsWith("TcpExt:", StringComparison.Ordinal) || !lines[i + 1].StartsWith("TcpExt:", StringComparison.Ordinal)) continue;
            var names = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var values = lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            for (var k = 1; k < Math.Min(names.Length, values.Length); k++)
                if (long.TryParse(values[k], out var v)) counters[names[k]] = v;
            break;
        }
        return counters;
    }

    /// <summary>Removes what <see cref="Impair"/> and <see cref="Reorder"/> added; a no-op where there is nothing.</summary>
    public static void Unimpair(string ns)
    {
        if (!NamespaceExists(ns)) return;
        Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "tc", "qdisc", "del", "dev", Topology.InnerInterface, "root");
        foreach (var (table, hook) in new[] { ("filter", "INPUT"), ("mangle", "OUTPUT") })
        {
            while (Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", table, "-D", hook, "-j", ImpairChain).Succeeded) { }
            Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", table, "-F", ImpairChain);
            Os.Run("nsenter", $"--net={NetnsPath(ns)}", "--", "iptables", "-w", "-t", table, "-X", ImpairChain);
        }
    }

    /// <summary>True if <paramref name="address"/> is on the host's eth0 and eth0 is up (a crashed node's is down).</summary>
    public static bool CarriesAddress(LabHost host, string address) =>
        Os.Run("ip", "-n", host.Namespace, "-o", "-4", "addr", "show", "dev", Topology.InnerInterface, "up").Stdout
            .Contains($" {address}/", StringComparison.Ordinal);

    public static bool NamespaceExists(string ns) => File.Exists(NetnsPath(ns));

    /// <summary>Namespaces that look like this lab instance's, whatever lab.json says.</summary>
    public static IReadOnlyList<string> LabNamespaces(Topology topology) =>
        Os.Run("ip", "netns", "list").Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')[0])
            .Where(n => topology.LabNamespace().IsMatch(n))
            .ToList();

    /// <summary>Root-namespace links that look like this lab instance's.</summary>
    public static IReadOnlyList<string> LabLinks(Topology topology) =>
        Os.Run("ip", "-o", "link", "show").Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 3))
            .Where(p => p.Length >= 2)
            .Select(p => p[1].Trim().Split('@')[0])
            .Where(n => topology.LabLink().IsMatch(n))
            .ToList();

    /// <summary>Root-namespace iptables rules carrying this instance's comment, as delete commands.</summary>
    public static IReadOnlyList<string[]> LabHostRules(Topology topology) =>
        HostRulesOf(topology, Os.Run("iptables", "-w", "-S").Stdout);

    /// <summary>
    /// The rules of <paramref name="iptablesS"/> (the output of iptables -S) whose comment is
    /// exactly this instance's: a prefix match would let one instance take another's rules.
    /// </summary>
    internal static IReadOnlyList<string[]> HostRulesOf(Topology topology, string iptablesS) =>
        iptablesS
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.StartsWith("-A ", StringComparison.Ordinal))
            .Select(l => l[3..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(words => Enumerable.Range(0, words.Length - 1)
                .Any(i => words[i] == "--comment" && words[i + 1].Trim('"') == topology.RuleComment))
            .ToList();

    public static IReadOnlyList<int> PidsIn(string ns) =>
        Os.Run("ip", "netns", "pids", ns).Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => int.TryParse(s.Trim(), out var p) ? p : 0)
            .Where(p => p > 1 && p != Environment.ProcessId)
            .ToList();

    /// <summary>
    /// SIGKILLs everything in the namespace plus the given process trees, repeating until nothing
    /// is left, because a process may fork between the listing and the kill.
    /// </summary>
    public static int KillAll(string ns, IEnumerable<int> roots)
    {
        var killed = new HashSet<int>();
        var rootList = roots.ToList();
        for (var round = 0; round < 50; round++)
        {
            var targets = (NamespaceExists(ns) ? PidsIn(ns) : [])
                .Concat(rootList.SelectMany(Os.ProcessTree))
                .Where(p => p > 1 && p != Environment.ProcessId && Os.IsAlive(p, null))
                .Distinct()
                .ToList();
            if (targets.Count == 0) break;
            foreach (var pid in targets)
                if (Os.Kill(pid, Os.SIGKILL)) killed.Add(pid);
            Thread.Sleep(20);
        }
        return killed.Count;
    }

    private static void TryRun(string file, params string[] args) => Os.Run(file, args);
}
