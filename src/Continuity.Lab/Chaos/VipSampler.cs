using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Continuity.Lab.Chaos;

/// <summary>
/// Asks, twice a second, from the client's namespace, who answers ARP for the VIP, and records every moment two nodes
/// did: two nodes that clients can reach could both deliver input to a copy of the program. This is what the clients
/// see, whatever the nodes believe: a crashed node (links down) does not answer, nor does a node whose lease on the
/// VIP ran out (frozen, cut off, or its node process killed), even though the address may still sit on its interface.
/// </summary>
internal sealed partial class VipSampler : IDisposable
{
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(500);
    private readonly IReadOnlyList<LabHost> _nodes;
    private readonly string _vip;
    private readonly string _clientNamespace;
    private readonly Action<string> _log;
    private readonly List<string> _problems = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Thread _thread;
    private volatile bool _stop;

    public int Samples { get; private set; }

    public VipSampler(IReadOnlyList<LabHost> nodes, string vip, string clientNamespace, Action<string> log)
    {
        _nodes = nodes;
        _vip = vip;
        _clientNamespace = clientNamespace;
        _log = log;
        _thread = new Thread(Loop) { IsBackground = true, Name = "VIP sampler" };
        _thread.Start();
    }

    /// <summary>The samples where more than one node answered for the VIP (consecutive identical ones reported once).</summary>
    public IReadOnlyList<string> Problems
    {
        get { lock (_problems) return _problems.ToList(); }
    }

    [GeneratedRegex(@"bytes from ([0-9a-f:]{17}) ")]
    private static partial Regex Reply();

    /// <summary>The nodes whose MAC answered one ARP request for the VIP (arping keeps listening after the first reply).</summary>
    private List<string> Answering()
    {
        var macs = Reply().Matches(Os.Run("ip", "netns", "exec", _clientNamespace, "arping", "-c", "1", _vip).Stdout)
            .Select(m => m.Groups[1].Value).ToHashSet();
        if (macs.Count == 0) return [];
        return _nodes.Where(n => macs.Contains(MacOf(n))).Select(n => n.Name).ToList();
    }

    private static string MacOf(LabHost node)
    {
        var fields = Os.Run("ip", "-n", node.Namespace, "-br", "link", "show", "dev", Topology.InnerInterface).Stdout
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields.Length > 2 ? fields[2] : "";
    }

    private void Loop()
    {
        string? previous = null;
        while (!_stop)
        {
            try
            {
                var holders = Answering();
                Samples++;
                var key = string.Join(",", holders);
                if (holders.Count > 1 && key != previous)
                {
                    var problem = $"{string.Join(" and ", holders)} both answered ARP for the VIP {_vip} at +{_clock.Elapsed.TotalSeconds:0.0} s of the sampling";
                    lock (_problems) _problems.Add(problem);
                    _log(problem);
                }
                if (key != previous) _log($"VIP {_vip} answered by: {(holders.Count == 0 ? "no node" : key)}");
                previous = key;
            }
            catch (LabException e) { _log($"VIP sample failed: {e.Message}"); }
            Thread.Sleep(Every);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join(TimeSpan.FromSeconds(10));
    }
}
