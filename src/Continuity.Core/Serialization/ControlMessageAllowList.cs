using System.Collections;
using System.Collections.Frozen;
using System.Reflection;
using Akka.Actor;
using Hyperion;

namespace Continuity.Core.Serialization;

/// <summary>
/// The only type names <see cref="HyperionControlSerializer"/> lets Hyperion turn into types: every concrete
/// <see cref="IControlMessage"/> of Continuity.Core, plus exactly what their fields can carry on the wire.
///
/// It is built in code, not listed in HOCON (<c>serialization-settings.hyperion.allowed-types</c>), because the
/// HOCON list cannot work with Hyperion 0.12.2 (see <see cref="HyperionControlSerializer"/> for the code path) and
/// because a hand-kept list drifts: a new message type is allowed the moment it implements IControlMessage, and a
/// field of a shape this list has no rule for stops the ActorSystem from starting (an exception naming the type
/// and field) instead of failing on a peer at run time.
///
/// Hyperion consults the filter for every type name in the stream, not only the message's: nested records, enums,
/// structs other than its primitives, the concrete collection behind an interface-typed field, and Akka's
/// surrogates for actor references. So the list follows each message's fields:
/// <list type="bullet">
/// <item>Hyperion's primitives (string, numbers, bool, char, Guid, DateTime, DateTimeOffset) never reach the filter.</item>
/// <item>Enums and TimeSpan are listed.</item>
/// <item>IActorRef: Akka's three surrogates (an ordinary reference, Nobody, the ignore reference).</item>
/// <item>IReadOnlyList/IReadOnlyCollection/IEnumerable of T: <c>List&lt;T&gt;</c> and <c>T[]</c>, what the project
/// sends (<c>ToList()</c>, <c>ToArray()</c>, an empty <c>[]</c>). A collection expression with elements makes a
/// compiler-generated list type in the calling assembly, which is not listed and is refused by the receiver.</item>
/// <item>IReadOnlyDictionary of K, V: <c>Dictionary&lt;K, V&gt;</c> and DictionaryEntry (Hyperion writes the pairs as entries).</item>
/// </list>
///
/// Each type is listed under two spellings, because Hyperion 0.12.2 asks under two: on deserialization the short
/// name the wire carries ("Ns.Type+Nested, Assembly", produced by Hyperion's own TypeFilterBuilder here so it
/// matches byte for byte), on serialization <see cref="Type.AssemblyQualifiedName"/> (with Version, Culture and
/// PublicKeyToken). Matching is exact: naming an interface or a base type allows nothing that implements it.
/// </summary>
public sealed class ControlMessageAllowList : ITypeFilter
{
    /// <summary>What an IActorRef field carries: Akka's surrogates, resolved back to a reference by the receiving system.</summary>
    private static readonly Type[] ActorRefSurrogates =
    [
        typeof(ActorRefBase.Surrogate),
        typeof(Nobody.NobodySurrogate),
        // ActorRefs.Ignore; its class is internal to Akka, hence the name (a rename in Akka fails at start-up, loudly).
        typeof(ActorRefBase).Assembly.GetType("Akka.Actor.IgnoreActorRef+IgnoreActorRefSurrogate", throwOnError: true)!,
    ];

    private static readonly HashSet<Type> HyperionPrimitives =
    [
        typeof(string), typeof(bool), typeof(char), typeof(byte), typeof(sbyte), typeof(short), typeof(ushort),
        typeof(int), typeof(uint), typeof(long), typeof(ulong), typeof(float), typeof(double), typeof(decimal),
        typeof(Guid), typeof(DateTime), typeof(DateTimeOffset),
    ];

    private static readonly Lazy<ControlMessageAllowList> Project = new(() => For(typeof(IControlMessage).Assembly));

    private readonly FrozenSet<string> _names;

    /// <summary>The allow-list of the project: the control messages declared in Continuity.Core, where the
    /// protocol lives (a type implementing IControlMessage in another assembly is refused when sent).</summary>
    public static ControlMessageAllowList Instance => Project.Value;

    /// <summary>The concrete IControlMessage types the list was built from.</summary>
    public IReadOnlySet<Type> MessageTypes { get; }

    private ControlMessageAllowList(IReadOnlySet<Type> messageTypes, IReadOnlySet<Type> types)
    {
        MessageTypes = messageTypes;
        var shortNames = types.Aggregate(TypeFilterBuilder.Create(), (b, t) => b.Include(t)).Build().FilteredTypes;
        _names = shortNames.Concat(types.Select(t => t.AssemblyQualifiedName!)).ToFrozenSet(StringComparer.Ordinal);
    }

    public bool IsAllowed(string typeName) => _names.Contains(typeName);

    /// <summary>Builds the list from the concrete IControlMessage types of <paramref name="assemblies"/>.</summary>
    /// <exception cref="NotSupportedException">A message has a field whose type no rule covers.</exception>
    public static ControlMessageAllowList For(params Assembly[] assemblies) =>
        ForTypes(assemblies.SelectMany(a => a.GetTypes())
            .Where(t => typeof(IControlMessage).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }));

    internal static ControlMessageAllowList ForTypes(IEnumerable<Type> messageTypes)
    {
        var messages = messageTypes.ToHashSet();
        var allowed = new HashSet<Type>();
        foreach (var m in messages) AddMessage(m, allowed);
        return new ControlMessageAllowList(messages, allowed);
    }

    private static void AddMessage(Type message, HashSet<Type> allowed)
    {
        if (!allowed.Add(message)) return;
        // Hyperion writes fields (a record's backing fields included), private and inherited ones too.
        for (var t = message; t is not null && t != typeof(object); t = t.BaseType)
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                AddCarried(f.FieldType, allowed, message, f);
    }

    private static void AddCarried(Type declared, HashSet<Type> allowed, Type message, FieldInfo field)
    {
        if (HyperionPrimitives.Contains(declared)) return;
        if (Nullable.GetUnderlyingType(declared) is { } inner) { AddCarried(inner, allowed, message, field); return; }
        if (declared.IsEnum || declared == typeof(TimeSpan)) { allowed.Add(declared); return; }
        if (declared == typeof(IActorRef)) { allowed.UnionWith(ActorRefSurrogates); return; }
        if (typeof(IControlMessage).IsAssignableFrom(declared))
        {
            // Every concrete control message is listed on its own; a concrete field type is walked here too.
            if (declared is { IsAbstract: false, IsInterface: false }) AddMessage(declared, allowed);
            return;
        }
        if (ElementOf(declared) is { } element)
        {
            allowed.Add(typeof(List<>).MakeGenericType(element));
            allowed.Add(element.MakeArrayType());
            AddCarried(element, allowed, message, field);
            return;
        }
        if (KeyAndValueOf(declared) is var (key, value))
        {
            allowed.Add(typeof(Dictionary<,>).MakeGenericType(key, value));
            allowed.Add(typeof(DictionaryEntry));
            AddCarried(key, allowed, message, field);
            AddCarried(value, allowed, message, field);
            return;
        }
        throw new NotSupportedException(
            $"Control message {message.FullName} has field {field.Name} of type {declared}, which the Hyperion allow-list " +
            "has no rule for. Use a Hyperion primitive, an enum, TimeSpan, IActorRef, a sealed IControlMessage, " +
            "IReadOnlyList<T>/IReadOnlyCollection<T> or IReadOnlyDictionary<K, V> of those (see ControlMessageAllowList).");
    }

    private static Type? ElementOf(Type t)
    {
        if (t.IsArray) return t.GetElementType();
        if (!t.IsGenericType) return null;
        var d = t.GetGenericTypeDefinition();
        return d == typeof(IReadOnlyList<>) || d == typeof(IReadOnlyCollection<>) || d == typeof(IEnumerable<>) || d == typeof(List<>)
            ? t.GetGenericArguments()[0]
            : null;
    }

    private static (Type Key, Type Value)? KeyAndValueOf(Type t)
    {
        if (!t.IsGenericType) return null;
        var d = t.GetGenericTypeDefinition();
        if (d != typeof(IReadOnlyDictionary<,>) && d != typeof(Dictionary<,>)) return null;
        var a = t.GetGenericArguments();
        return (a[0], a[1]);
    }
}
