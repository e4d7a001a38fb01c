using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;
using Akka.Serialization;

namespace Continuity.Core.Serialization;

/// <summary>
/// Serializer of the project's control messages (every <see cref="IControlMessage"/>): JSON with the type in the
/// manifest. The allow-list is structural: a manifest is only turned into a type if that type lives in a Continuity
/// assembly and implements IControlMessage, so a peer can never make a node instantiate anything else.
///
/// It replaces Hyperion for these messages because Hyperion 0.12.2's allow-list (disallow-unsafe-type with
/// allowed-types) rejected every type on serialization here, even a type passed to TypeFilterBuilder.Include
/// directly (probed in a test); with the list off, Hyperion would accept any type from the wire.
/// </summary>
public sealed class ControlMessageSerializer : SerializerWithStringManifest
{
    public const int Id = 747_302;

    private static readonly ConcurrentDictionary<string, Type> Types = new();
    private readonly JsonSerializerOptions _options;

    public ControlMessageSerializer(ExtendedActorSystem system) : base(system)
    {
        _options = new JsonSerializerOptions
        {
            IncludeFields = false,
            Converters = { new ActorRefConverter(system) },
        };
    }

    public override int Identifier => Id;

    public override string Manifest(object o) => ManifestOf(o.GetType());

    private static string ManifestOf(Type t) => $"{t.FullName}, {t.Assembly.GetName().Name}";

    public override byte[] ToBinary(object obj) => JsonSerializer.SerializeToUtf8Bytes(obj, obj.GetType(), _options);

    public override object FromBinary(byte[] bytes, string manifest) =>
        JsonSerializer.Deserialize(bytes, Resolve(manifest), _options)
        ?? throw new System.Runtime.Serialization.SerializationException($"null control message {manifest}");

    private static Type Resolve(string manifest) => Types.GetOrAdd(manifest, m =>
    {
        var comma = m.LastIndexOf(',');
        var assembly = comma < 0 ? "" : m[(comma + 1)..].Trim();
        if (!assembly.StartsWith("Continuity.", StringComparison.Ordinal))
            throw new System.Runtime.Serialization.SerializationException($"control message from a foreign assembly refused: {m}");
        var type = Type.GetType(m, throwOnError: false);
        if (type is null || !typeof(IControlMessage).IsAssignableFrom(type) || type.IsAbstract)
            throw new System.Runtime.Serialization.SerializationException($"not a control message type: {m}");
        return type;
    });

    /// <summary>Actor references travel as their full path (with address) and are resolved by the receiving system.</summary>
    private sealed class ActorRefConverter(ExtendedActorSystem system) : JsonConverter<IActorRef>
    {
        private const string Nobody = "nobody";

        public override bool CanConvert(Type typeToConvert) => typeof(IActorRef).IsAssignableFrom(typeToConvert);

        public override IActorRef? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var path = reader.GetString();
            if (path is null) return null;
            return path == Nobody ? ActorRefs.Nobody : system.Provider.ResolveActorRef(path);
        }

        public override void Write(Utf8JsonWriter writer, IActorRef value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value is Nobody || value.IsNobody() ? Nobody : Akka.Serialization.Serialization.SerializedActorPath(value));
    }
}
