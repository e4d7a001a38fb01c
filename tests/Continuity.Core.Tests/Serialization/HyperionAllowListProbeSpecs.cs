using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Serialization;
using Akka.Serialization.Hyperion;
using Continuity.Core.Apps;
using Continuity.Core.Checkpoint;
using Continuity.Core.Serialization;
using Hyperion;
using Hyperion.Internal;
using Xunit;
using HySerializer = Hyperion.Serializer;

namespace Continuity.Core.Tests.Serialization;

/// <summary>A message of no protocol, for probing Hyperion itself.</summary>
public sealed record ProbeMessage(string Text);

/// <summary>
/// What Hyperion 0.12.2 and Akka.Serialization.Hyperion 1.5.73 do with an allow-list, pinned so that the claims in
/// HyperionControlSerializer and reference.conf are checked, not asserted. If one of these fails after an upgrade,
/// the HOCON allowed-types route may have become usable: read those comments again.
/// </summary>
public sealed class HyperionAllowListProbeSpecs
{
    private static readonly string ProbeShortName = $"{typeof(ProbeMessage).FullName}, {typeof(ProbeMessage).Assembly.GetName().Name}";

    private static HySerializer Hyperion(ITypeFilter filter, bool disallowUnsafeTypes = true) =>
        new(new SerializerOptions(versionTolerance: true, preserveObjectReferences: true, surrogates: null,
            serializerFactories: null, knownTypes: null, ignoreISerializable: true, packageNameOverrides: null,
            disallowUnsafeTypes: disallowUnsafeTypes, typeFilter: filter));

    private static byte[] Bytes(object o)
    {
        using var ms = new MemoryStream();
        Hyperion(DisabledTypeFilter.Instance, disallowUnsafeTypes: false).Serialize(o, ms);
        return ms.ToArray();
    }

    private static object Read(HySerializer s, byte[] bytes) => s.Deserialize(new MemoryStream(bytes));

    /// <summary>Answers no to every name and counts the questions.</summary>
    private sealed class RefuseAll : ITypeFilter
    {
        public int Asked;
        public bool IsAllowed(string typeName) { Interlocked.Increment(ref Asked); return false; }
    }

    [Fact]
    public void Hyperion_refuses_to_serialize_a_type_its_own_TypeFilterBuilder_allowed()
    {
        var filter = TypeFilterBuilder.Create().Include<ProbeMessage>().Build();

        var e = Assert.Throws<UserEvilDeserializationException>(() => Hyperion(filter).Serialize(new ProbeMessage("x"), new MemoryStream()));

        Assert.Equal(typeof(ProbeMessage).FullName, e.BadTypeString);
        // Why: the filter keeps the short name, Serializer.Serialize asks with the assembly-qualified one.
        Assert.Equal(new[] { ProbeShortName }, filter.FilteredTypes.ToArray());
        Assert.True(filter.IsAllowed(ProbeShortName));
        Assert.Contains("Version=", typeof(ProbeMessage).AssemblyQualifiedName);
        Assert.False(filter.IsAllowed(typeof(ProbeMessage).AssemblyQualifiedName!));
    }

    [Fact]
    public void The_same_filter_lets_the_type_in_on_deserialization_because_the_wire_carries_the_short_name()
    {
        var filter = TypeFilterBuilder.Create().Include<ProbeMessage>().Build();

        Assert.Equal(new ProbeMessage("x"), Read(Hyperion(filter), Bytes(new ProbeMessage("x"))));
    }

    [Fact]
    public void Without_disallow_unsafe_type_Hyperion_never_consults_the_filter()
    {
        var filter = new RefuseAll();
        var s = Hyperion(filter, disallowUnsafeTypes: false);
        using var ms = new MemoryStream();

        s.Serialize(new ProbeMessage("x"), ms);

        Assert.Equal(new ProbeMessage("x"), Read(s, ms.ToArray()));
        Assert.Equal(0, filter.Asked);
    }

    [Fact]
    public void An_interface_in_the_allow_list_allows_none_of_its_implementations()
    {
        var filter = TypeFilterBuilder.Create().Include<IControlMessage>().Build();

        var e = Assert.Throws<UserEvilDeserializationException>(() => Read(Hyperion(filter), Bytes(new AppsProtocol.GetApps())));

        Assert.Contains(nameof(AppsProtocol.GetApps), e.BadTypeString);
    }

    [Fact]
    public void A_type_nested_in_an_allowed_message_must_be_allowed_too()
    {
        var filter = TypeFilterBuilder.Create().Include<AppsProtocol.CheckpointTaken>().Build();
        var message = new AppsProtocol.CheckpointTaken("kv", new CheckpointInfo(1, "e1-1", 2, DateTimeOffset.UnixEpoch, 3, TimeSpan.Zero));

        // A nested refusal comes wrapped by the reader of the enclosing object.
        var e = Assert.Throws<System.Runtime.Serialization.SerializationException>(() => Read(Hyperion(filter), Bytes(message)));

        var why = Assert.IsType<UserEvilDeserializationException>(e.InnerException);
        Assert.Contains(nameof(CheckpointInfo), why.BadTypeString);
    }

    [Fact]
    public void Akka_allowed_types_in_HOCON_make_every_bound_message_fail_to_serialize()
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.serializers.hyperion = "Akka.Serialization.HyperionSerializer, Akka.Serialization.Hyperion"
            akka.actor.serialization-bindings { "{{ProbeShortName}}" = hyperion }
            akka.actor.serialization-settings.hyperion {
              disallow-unsafe-type = true
              allowed-types = ["{{ProbeShortName}}"]
            }
            """);
        var system = ActorSystem.Create("probe", config);
        try
        {
            Assert.IsType<HyperionSerializer>(system.Serialization.FindSerializerFor(new ProbeMessage("x")));

            Assert.Throws<UserEvilDeserializationException>(() => system.Serialization.Serialize(new ProbeMessage("x")));
        }
        finally { system.Terminate().Wait(TimeSpan.FromSeconds(10)); }
    }

    [Fact]
    public void A_type_filter_given_through_HyperionSerializerSetup_never_reaches_Hyperion()
    {
        var filter = new RefuseAll();
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.serializers.hyperion = "Akka.Serialization.HyperionSerializer, Akka.Serialization.Hyperion"
            akka.actor.serialization-bindings { "{{ProbeShortName}}" = hyperion }
            """);
        var setup = BootstrapSetup.Create().WithConfig(config)
            .And(HyperionSerializerSetup.Empty.WithDisallowUnsafeType(true).WithTypeFilter(filter));
        var system = ActorSystem.Create("probe", setup);
        try
        {
            var serializer = Assert.IsType<HyperionSerializer>(system.Serialization.FindSerializerFor(new ProbeMessage("x")));

            var bytes = serializer.ToBinary(new ProbeMessage("x"));

            // The setup lands in Settings, but the Hyperion serializer was built from the constructor's argument.
            Assert.Same(filter, serializer.Settings.TypeFilter);
            Assert.Equal(new ProbeMessage("x"), serializer.FromBinary(bytes, typeof(ProbeMessage)));
            Assert.Equal(0, filter.Asked);
        }
        finally { system.Terminate().Wait(TimeSpan.FromSeconds(10)); }
    }
}
