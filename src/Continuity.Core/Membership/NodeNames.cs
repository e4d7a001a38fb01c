using Akka.Actor;
using Akka.Cluster;

namespace Continuity.Core.Membership;

/// <summary>
/// People name nodes ("n1"); Akka names them by address. Each node carries its name as a role
/// "name:NAME" so that every member can map addresses to names from the gossip alone, with no
/// extra protocol that could disagree with the membership.
/// </summary>
public static class NodeNames
{
    public const string RolePrefix = "name:";

    public static string RoleFor(string nodeName) => RolePrefix + nodeName;

    public static string NameOf(Member member) =>
        member.Roles.FirstOrDefault(r => r.StartsWith(RolePrefix, StringComparison.Ordinal))?[RolePrefix.Length..]
        ?? member.Address.Host ?? member.Address.ToString();

    /// <summary>The roles a person cares about: the naming role is an implementation detail.</summary>
    public static IEnumerable<string> VisibleRoles(Member member) =>
        member.Roles.Where(r => !r.StartsWith(RolePrefix, StringComparison.Ordinal)).OrderBy(r => r, StringComparer.Ordinal);

    /// <summary>The name of the member at <paramref name="address"/>, or the address itself once it is no member.</summary>
    public static string NameOfAddress(ClusterEvent.CurrentClusterState state, string address) =>
        state.Members.FirstOrDefault(m => m.Address.ToString() == address) is { } m ? NameOf(m) : address;

    public static Member? FindByName(ClusterEvent.CurrentClusterState state, string nodeName) =>
        state.Members.FirstOrDefault(m => NameOf(m) == nodeName);

    public static Address? ParseAddressOrNull(string text)
    {
        try { return Address.Parse(text); }
        catch (Exception) { return null; }
    }
}
