namespace Continuity.Lab.Chaos;

/// <summary>
/// One run as the seed decides it. Only the decisions are replayable: the machine's timing (how long a
/// failover takes, where a checkpoint stands when the fault lands) varies from one replay to the next.
/// </summary>
/// <param name="Number">1-based position in the chaos session.</param>
/// <param name="Seed">The run's own seed: 'chaos --runs 1 --seed Seed --scenario Scenario' plans this run again.</param>
/// <param name="FaultDelay">How long after the clients' connections are covered by a checkpoint the fault begins.</param>
/// <param name="FaultLength">How long a timed fault (hang, partition, standby down, replication loss) lasts.</param>
/// <param name="Standby">Which standby (index into the standbys in name order) a standby fault hits.</param>
/// <param name="Share">The share of cluster-port segments dropped or duplicated.</param>
/// <param name="CheckpointPhase">"dumping" or "shipping": the phase a crash during a checkpoint aims at.</param>
internal sealed record PlannedRun(
    int Number, int Seed, Scenario Scenario, TimeSpan FaultDelay, TimeSpan FaultLength, int Standby, double Share, string CheckpointPhase)
{
    /// <summary>Set when the session's --fault-length overrode the seeded length: a replay must do the same.</summary>
    public bool FaultLengthGiven { get; init; }

    public string ReplayArguments => $"chaos --runs 1 --seed {Seed} --scenario {Scenario.Name}" +
        (FaultLengthGiven ? FaultLengthArgument(FaultLength) : "");

    /// <summary>" --fault-length S", as the command line takes it back.</summary>
    public static string FaultLengthArgument(TimeSpan length) =>
        $" --fault-length {length.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)}";
}

/// <summary>The seeded plan of a chaos session: the same seed and scenarios always give the same runs.</summary>
internal static class ChaosPlan
{
    /// <param name="scenarios">The scenarios to draw from; empty means every one.</param>
    public static IReadOnlyList<PlannedRun> Make(int seed, int runs, IReadOnlyList<string> scenarios)
    {
        var pool = scenarios.Count == 0
            ? Scenarios.All.ToList()
            : scenarios.Select(n => Scenarios.Find(n) ?? throw new ArgumentException($"unknown scenario '{n}'", nameof(scenarios))).ToList();
        var order = new Random(seed);
        var plan = new List<PlannedRun>(runs);
        var deck = new List<Scenario>();
        for (var i = 0; i < runs; i++)
        {
            // Drawn from a shuffled deck, refilled when empty: every scenario comes up as often as the others, and a
            // short session still covers them all, while their order stays random.
            if (deck.Count == 0)
            {
                deck.AddRange(pool);
                order.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(deck));
            }
            var scenario = deck[^1];
            deck.RemoveAt(deck.Count - 1);
            // The first run's seed is the session's own, so 'chaos --runs 1 --seed S --scenario X' replays any run
            // whose seed S was printed.
            var runSeed = i == 0 ? seed : Derive(seed, i);
            plan.Add(Details(i + 1, runSeed, scenario));
        }
        return plan;
    }

    private static PlannedRun Details(int number, int seed, Scenario scenario)
    {
        var r = new Random(seed);
        return new PlannedRun(
            number, seed, scenario,
            FaultDelay: TimeSpan.FromMilliseconds(r.Next(0, 5000)),
            // From under the failure detection time (the fault should pass unnoticed) to well over it.
            FaultLength: TimeSpan.FromMilliseconds(r.Next(3000, 30000)),
            Standby: r.Next(0, 2),
            Share: Math.Round(0.05 + r.NextDouble() * 0.25, 2),
            CheckpointPhase: r.Next(2) == 0 ? "dumping" : "shipping");
    }

    /// <summary>SplitMix64 of (seed, index): run seeds that look unrelated to each other and to the session's seed.</summary>
    internal static int Derive(int seed, int index)
    {
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index * 0xBF58476D1CE4E5B9UL + 0x94D049BB133111EBUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z & int.MaxValue);
    }
}
