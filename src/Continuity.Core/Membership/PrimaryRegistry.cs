using System.Collections.Concurrent;
using Akka.Actor;

namespace Continuity.Core.Membership;

/// <summary>
/// The applications this node is primary of (or is taking over, or handing over), for the downing provider: among
/// equally good choices of members to down it keeps the members that serve applications, since downing a primary
/// costs its clients a failover and, if the standby taking over is downed next, the application itself.
/// </summary>
public sealed class PrimaryRegistry : IExtension
{
    private readonly ConcurrentDictionary<string, bool> _serving = new();

    public static PrimaryRegistry Get(ActorSystem system) => system.WithExtension<PrimaryRegistry, PrimaryRegistryProvider>();

    public void Set(string app, bool primary)
    {
        if (primary) _serving[app] = true;
        else _serving.TryRemove(app, out _);
    }

    public int Count => _serving.Count;
}

public sealed class PrimaryRegistryProvider : ExtensionIdProvider<PrimaryRegistry>
{
    public override PrimaryRegistry CreateExtension(ExtendedActorSystem system) => new();
}
