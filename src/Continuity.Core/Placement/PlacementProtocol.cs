using Continuity.Core.Election;
using Continuity.Core.Serialization;

namespace Continuity.Core.Placement;

/// <summary>Between an application's owner and the AppsGuardian of every data node: what each node serves.</summary>
public static class PlacementProtocol
{
    /// <summary>Replies <see cref="Serving"/>.</summary>
    public sealed record GetServing : IControlMessage;

    /// <param name="Apps">Every application this node is primary of, or is becoming or ceasing to be primary of
    /// (<see cref="AppRole.TakingOver"/>, <see cref="AppRole.Releasing"/>): the load an owner weighs.</param>
    public sealed record Serving(string Node, List<ServedApp> Apps) : IControlMessage;

    public sealed record ServedApp(string App, AppRole Role) : IControlMessage;
}
