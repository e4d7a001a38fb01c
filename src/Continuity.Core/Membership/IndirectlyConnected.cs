using Akka.Actor;
using Akka.Cluster;

namespace Continuity.Core.Membership;

/// <summary>
/// Members that stopped hearing each other while the rest of the cluster still hears both ("indirectly connected"),
/// and the fewest of them to down so that what remains is consistent again.
/// <para>
/// Akka.NET's resolver downs every indirectly connected member. Under packet loss between every pair of data nodes
/// (chaos lab, replication-loss) that is every data node at once, although the witnesses still reached them all: the
/// protected applications die with nobody left to restore them. Downing a minimal set that removes every
/// inconsistency keeps as many data nodes, and primaries, as it can.
/// </para>
/// </summary>
public static class IndirectlyConnected
{
    /// <summary>Above this many members in inconsistent records the exact search is too slow for a downing actor.</summary>
    public const int MaxMembersSearched = 16;

    /// <summary>One observer's record that it cannot reach a subject.</summary>
    public readonly record struct Record(UniqueAddress Observer, UniqueAddress Subject);

    /// <summary>
    /// Akka's definition: a member that both records another unreachable and is recorded unreachable, or a pair of
    /// a record whose subject has seen the latest gossip (so it talks to somebody). Empty for clean partitions and
    /// crashed members, which the resolver's own strategy decides.
    /// </summary>
    public static IReadOnlySet<UniqueAddress> Members(IReadOnlyCollection<Record> records, IReadOnlySet<Address> seenBy)
    {
        var observers = records.Select(r => r.Observer).ToHashSet();
        var found = records.Select(r => r.Subject).Where(observers.Contains).ToHashSet();
        foreach (var r in records.Where(r => seenBy.Contains(r.Subject.Address)))
        {
            found.Add(r.Observer);
            found.Add(r.Subject);
        }
        return found;
    }

    /// <summary>A member that may be downed; <see cref="FewestToDown"/> takes them oldest first.</summary>
    /// <param name="Primaries">Applications it serves as primary, as it last said.</param>
    public readonly record struct Candidate(UniqueAddress Address, bool IsDataNode, int Primaries = 0);

    /// <summary>
    /// The members to down so that the records among the others hold no indirectly connected member, losing the fewest
    /// primaries that <paramref name="decider"/> still reaches (each costs its clients a failover; one it cannot reach
    /// is most likely lost already, like a crashed primary), then the fewest data nodes, then the fewest members, then
    /// the youngest (the oldest data node hosts the application owners, which are cluster singletons). Only
    /// <paramref name="liveOldestFirst"/> members are candidates and only records between them count (members already
    /// downed are on their way out with their records). Empty when the records are already consistent; beyond
    /// <see cref="MaxMembersSearched"/> members in records, every indirectly connected member (Akka's choice).
    /// </summary>
    public static IReadOnlySet<UniqueAddress> FewestToDown(IReadOnlyCollection<Record> records, IReadOnlySet<Address> seenBy,
        IReadOnlyList<Candidate> liveOldestFirst, UniqueAddress decider)
    {
        var lostToDecider = records.Where(r => r.Observer.Equals(decider)).Select(r => r.Subject).ToHashSet();
        var live = liveOldestFirst.Select(c => c.Address).ToHashSet();
        var liveRecords = records.Where(r => live.Contains(r.Observer) && live.Contains(r.Subject)).ToList();
        var inconsistent = Members(liveRecords, seenBy);
        if (inconsistent.Count == 0) return new HashSet<UniqueAddress>();

        // Oldest first, so that the age penalty of a member weighs more than every younger member's together.
        var inRecords = liveRecords.SelectMany(r => new[] { r.Observer, r.Subject }).ToHashSet();
        var candidates = liveOldestFirst.Where(c => inRecords.Contains(c.Address)).ToList();
        if (candidates.Count > MaxMembersSearched) return inconsistent.ToHashSet();

        // The cost of a choice is every member it loses: those downed now, and those the remaining records still
        // name unreachable, which the resolver downs next if this side holds the majority. Otherwise a live standby
        // that a crashed primary had recorded would be "cheaper" to down than the crashed primary itself.
        (int Primaries, int Data, int Count, long AgePenalty) bestCost = (int.MaxValue, int.MaxValue, int.MaxValue, long.MaxValue);
        var best = (1L << candidates.Count) - 1; // downing all of them always leaves no record
        for (var subset = 1L; subset < 1L << candidates.Count; subset++)
        {
            var downed = In(candidates, subset).Select(c => c.Address).ToHashSet();
            var rest = liveRecords.Where(r => !downed.Contains(r.Observer) && !downed.Contains(r.Subject)).ToList();
            var lost = subset;
            foreach (var subject in rest.Select(r => r.Subject))
                lost |= 1L << candidates.FindIndex(c => c.Address.Equals(subject));
            var lostMembers = In(candidates, lost).ToList();
            var cost = (lostMembers.Where(c => !lostToDecider.Contains(c.Address)).Sum(c => c.Primaries),
                lostMembers.Count(c => c.IsDataNode), lostMembers.Count, AgePenalty(candidates.Count, lost));
            if (cost.CompareTo(bestCost) >= 0 || Members(rest, seenBy).Count > 0) continue;
            (bestCost, best) = (cost, subset);
        }
        return In(candidates, best).Select(c => c.Address).ToHashSet();
    }

    private static IEnumerable<Candidate> In(IReadOnlyList<Candidate> candidates, long subset) =>
        candidates.Where((_, i) => (subset & (1L << i)) != 0);

    /// <summary>Downing the member at index i (oldest is 0) costs 2^(n-1-i): any older member outweighs all younger.</summary>
    private static long AgePenalty(int count, long subset)
    {
        var penalty = 0L;
        for (var i = 0; i < count; i++)
            if ((subset & (1L << i)) != 0) penalty += 1L << (count - 1 - i);
        return penalty;
    }
}
