using Akka.Actor;
using Akka.Serialization;

namespace Continuity.Core.Serialization;

/// <summary>
/// Serializer of the project's control messages (every <see cref="IControlMessage"/>): Hyperion, restricted to
/// <see cref="ControlMessageAllowList"/>. A peer can make a node instantiate only the project's control messages
/// and what their fields carry; any other type name in the stream fails the message with a SerializationException
/// naming the type (Hyperion's UserEvilDeserializationException inside).
///
/// Why a subclass, and not <c>allowed-types</c> in HOCON or a HyperionSerializerSetup: with
/// Akka.Serialization.Hyperion 1.5.73 and Hyperion 0.12.2 neither can enforce a list (pinned by
/// HyperionAllowListProbeSpecs):
/// <list type="number">
/// <item>Hyperion's <c>TypeFilter</c> (what both TypeFilterBuilder and Akka's <c>allowed-types</c> build) stores
/// each type under its short name ("Ns.Type, Assembly", version stripped) and compares names exactly.
/// <c>Serializer.Serialize</c> checks the message's type with <c>Options.TypeFilter.IsAllowed(type.AssemblyQualifiedName)</c>,
/// the long name with Version, Culture and PublicKeyToken, which never equals a short name: with
/// <c>disallow-unsafe-type = true</c> every type is refused on serialization, even one given to
/// TypeFilterBuilder.Include. Deserialization (<c>TypeEx.LoadTypeByName</c>) checks the short name the wire
/// carries and works. With <c>disallow-unsafe-type = false</c> the filter is never consulted at all.</item>
/// <item>The filter matches exact names, so an interface in the list (this project's earlier
/// <c>allowed-types = ["...IControlMessage, Continuity.Core"]</c>) allows none of its implementations, and every
/// type nested in a message (records, enums, the concrete list behind an IReadOnlyList, Akka's IActorRef
/// surrogate) must be listed too.</item>
/// <item><c>HyperionSerializerSetup.WithTypeFilter</c> is dropped: the HyperionSerializer constructor applies the
/// setup to its <c>Settings</c> property but builds the Hyperion serializer from its <c>settings</c> argument.</item>
/// </list>
/// So the filter is passed straight to the constructor, and it answers to both spellings (see ControlMessageAllowList).
/// </summary>
public sealed class HyperionControlSerializer : HyperionSerializer
{
    /// <summary>Unique among the ActorSystem's serializers. 747302 was the JSON control serializer this replaced:
    /// a new id makes a node of the older version refuse these messages by id instead of misreading them.</summary>
    public const int Id = 747_303;

    public HyperionControlSerializer(ExtendedActorSystem system)
        : base(system, HyperionSerializerSettings.Default
            // The filter is only consulted with disallow-unsafe-type on (Hyperion's own deny-list runs too).
            .WithDisallowUnsafeType(true)
            .WithTypeFilter(ControlMessageAllowList.Instance))
    {
    }

    public override int Identifier => Id;
}
