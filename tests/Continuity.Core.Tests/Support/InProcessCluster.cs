using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.TestKit;

namespace Continuity.Core.Tests.Support;

/// <summary>Members of one cluster in this process over real Akka.Remote, the test kit's own system first.</summary>
internal static class InProcessCluster
{
    /// <summary>Forms a cluster of the kit's system and <paramref name="others"/> more (each with
    /// <paramref name="configOf"/> its index), and waits until every member sees all of them Up, with a leader.</summary>
    public static async Task<List<ActorSystem>> FormAsync(TestKitBase kit, int others, Func<int, Config> configOf)
    {
        var members = new List<ActorSystem> { kit.Sys };
        var first = Cluster.Get(kit.Sys);
        await first.JoinAsync(first.SelfAddress);
        for (var i = 0; i < others; i++)
        {
            var system = ActorSystem.Create(kit.Sys.Name, configOf(i));
            await Cluster.Get(system).JoinAsync(first.SelfAddress);
            members.Add(system);
        }
        kit.AwaitCondition(() => members.All(s => Cluster.Get(s).State.Members.Count(m => m.Status == MemberStatus.Up) == members.Count
                                                  && Cluster.Get(s).State.Leader is not null),
            TimeSpan.FromSeconds(30));
        return members;
    }

    /// <summary>Ends every member but the kit's own, which the kit ends.</summary>
    public static async Task TerminateOthersAsync(IEnumerable<ActorSystem> members)
    {
        foreach (var s in members.Skip(1))
            await s.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
    }
}
