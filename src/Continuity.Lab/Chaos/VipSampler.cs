using System.Diagnostics;

namespace Continuity.Lab.Chaos;

/// <summary>
/// Looks, twice a second, at which nodes carry the VIP on a link that is up, and records every moment two did: two
/// nodes able to receive the clients' packets could both deliver input to a copy of the program. A crashed node
/// (links down) and a node the run has frozen (SIGSTOP: nothing of it runs) cannot, and are not counted.
/// </summary>
internal sealed class VipSampler : IDisposable
{
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(500);
    private readonly IReadOnlyList<LabHost> _nodes;
    private readonly string _vip;
    private readonly Action<string> _log;
    private readonly HashSet<string> _frozen = [];
    private readonly List<string> _problems = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Thread _thread;
    private volatile bool _stop;

    public int Samples { get; private set; }

    public VipSampler(IReadOnlyList<LabHost> nodes, string vip, Action<string> log)
    {
        _nodes = nodes;
        _vip = vip;
        _log = log;
        _thread = new Thread(Loop) { IsBackground = true, Name = "VIP sampler" };
        _thread.Start();
    }

    public void Frozen(string node, bool frozen)
    {
        lock (_frozen)
            if (frozen) _frozen.Add(node);
            else _frozen.Remove(node);
    }

    /// <summary>The samples where more than one node carried the VIP (consecutive identical ones reported once).</summary>
    public IReadOnlyList<string> Problems
    {
        get { lock (_problems) return _problems.ToList(); }
    }

    private void Loop()
    {
        string? previous = null;
        while (!_stop)
        {
            try
            {
                HashSet<string> frozen;
                lock (_frozen) frozen = [.. _frozen];
                var holders = _nodes.Where(n => !frozen.Contains(n.Name) && Network.CarriesAddress(n, _vip)).Select(n => n.Name).ToList();
                Samples++;
                var key = string.Join(",", holders);
                if (holders.Count > 1 && key != previous)
                {
                    var problem = $"{string.Join(" and ", holders)} both carried the VIP {_vip} on a live link at +{_clock.Elapsed.TotalSeconds:0.0} s of the sampling";
                    lock (_problems) _problems.Add(problem);
                    _log(problem);
                }
                if (key != previous) _log($"VIP {_vip} on: {(holders.Count == 0 ? "no node" : key)}");
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
