using Continuity.Core.Supervision;
using System.Collections;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Continuity.Core.Election;
using Continuity.Core.Placement;
using Continuity.Core.Serialization;
using Hyperion;
using Hyperion.Internal;
using Xunit;
using AkkaSerialization = Akka.Serialization.Serialization;

namespace Continuity.Core.Tests.Serialization;

/// <summary>Implements the control protocol's marker but lives outside Continuity.Core, so it is on no allow-list.</summary>
public sealed record ForeignControlMessage(string Text) : IControlMessage;

/// <summary>A control message with a field of a shape the allow-list has no rule for.</summary>
public sealed record MessageWithASet(HashSet<string> Names) : IControlMessage;

/// <summary>
/// Every control message crosses nodes through HyperionControlSerializer (reference.conf), and that serializer
/// refuses every type outside the project's allow-list. Remote provider, so actor references travel as full paths.
/// </summary>
public sealed class ControlMessageSerializationSpecs() : TestKit(TestConfig.Node("akka.actor.provider = remote\n"))
{
    private static readonly CheckpointInfo Newest = new(2, "e2-1", 10, DateTimeOffset.UtcNow, 100, TimeSpan.FromMilliseconds(3));

    // Built the way the nodes build them: AppOwner's ToList, the takeover's Dictionary, arrays from ToArray and
    // Task.WhenAll, an empty [] (Array.Empty). The collection types matter: each is a name on the allow-list.
    private static readonly SwitchInfo Switch = new("n1", "n2", DateTimeOffset.UtcNow, "primary removed", 2, 6,
        new Dictionary<string, TimeSpan> { ["restore"] = TimeSpan.FromMilliseconds(5), ["replay"] = TimeSpan.FromMilliseconds(2) });

    private static List<StandbyRef> Standbys(IActorRef actor) => new[] { "n2", "n3" }.Select(n => new StandbyRef(n, actor)).ToList();

    private static AppView View(string state) => new("kv", 2, "n1",
        new[] { new StandbyView("n2", "n2", true, 3, new CheckpointInfo(1, "e1-1", 7, DateTimeOffset.UnixEpoch, 1024, TimeSpan.FromMilliseconds(5))), new StandbyView("n3", "n3", false, 0) }.ToList(),
        state, Newest, 3, Switch, null);

    private static readonly IntrospectionProtocol.NodeFigures Figures = new(12.5, 1 << 30, 4L << 30, 10L << 30, 20L << 30,
        new[] { new IntrospectionProtocol.QueueFigures(0, 3, 1, 2), new IntrospectionProtocol.QueueFigures(1, 0, 0, 0) }.ToList(), 65536, null);

    private static List<Continuity.Core.Metrics.StageFigures> StagesOfAPrimary()
    {
        var capture = Continuity.Core.Metrics.Histogram.Latency();
        var replicate = Continuity.Core.Metrics.Histogram.Latency();
        capture.Record(System.Diagnostics.Stopwatch.Frequency / 10_000);
        replicate.Record(System.Diagnostics.Stopwatch.Frequency / 1_000);
        return [capture.Snapshot("capture"), replicate.Snapshot("replicate", "akka.tcp://continuity@10.0.0.2:4053")];
    }

    private static readonly IntrospectionProtocol.AppFigures PrimaryFigures = new("kv", AppRole.Primary, 2, 100, 98, 5, Newest,
        TimeSpan.FromMilliseconds(40), 7, 1, 6, Switch);

    /// <summary>One or more samples of every concrete control message; the argument is an actor reference to carry.</summary>
    private static readonly Dictionary<string, Func<IActorRef, object>> Samples = new()
    {
        ["StandbyRef"] = a => new StandbyRef("n2", a),
        ["CheckpointInfo"] = _ => Newest,
        ["SwitchInfo"] = _ => Switch,
        ["BecomePrimary"] = a => new OwnerProtocol.BecomePrimary("kv", 1, Standbys(a)),
        ["BecomePrimary with no standby"] = _ => new OwnerProtocol.BecomePrimary("kv", 1, new List<StandbyRef>()),
        ["BecomeStandby"] = _ => new OwnerProtocol.BecomeStandby("kv", 1, "n1"),
        ["Vouch"] = _ => new Continuity.Core.Fencing.LeaseProtocol.Vouch(42),
        ["Vouched"] = _ => new Continuity.Core.Fencing.LeaseProtocol.Vouched(42),
        ["Revoke"] = _ => new Continuity.Core.Fencing.LeaseProtocol.Revoke("akka.ssl.tcp://continuity@198.18.0.11:4053", 7),
        ["Revoked"] = _ => new Continuity.Core.Fencing.LeaseProtocol.Revoked("akka.ssl.tcp://continuity@198.18.0.11:4053", 7, 1234),
        ["TakeOver"] = a => new OwnerProtocol.TakeOver("kv", 2, Standbys(a), true, "n1", "planned switch"),
        ["SetStandbys"] = a => new OwnerProtocol.SetStandbys("kv", 1, Standbys(a)),
        ["Release"] = _ => new OwnerProtocol.Release("kv", 1),
        ["Released"] = _ => new OwnerProtocol.Released("kv", 1, Newest),
        ["GetNodeStatus"] = _ => new OwnerProtocol.GetNodeStatus("kv"),
        ["NodeStatus"] = a => new OwnerProtocol.NodeStatus("kv", "n1", "n1", a, AppRole.Standby, 1, Newest, 1, 5, 3),
        ["NodeStatus of an idle node"] = _ => new OwnerProtocol.NodeStatus("kv", "n1", "n1", ActorRefs.Nobody, AppRole.Idle, 0, null, 0, 0, 0),
        ["TookOver"] = _ => new OwnerProtocol.TookOver("kv", 2, "n2", Switch),
        ["TakeoverFailed"] = _ => new OwnerProtocol.TakeoverFailed("kv", 2, "n2", "restore failed"),
        ["Failed"] = _ => new OwnerProtocol.Failed("kv", "no standby"),
        ["GetOwnerView"] = _ => new OwnerProtocol.GetOwnerView("kv"),
        ["OwnerView"] = a => new OwnerProtocol.OwnerView("kv", 2, "n2", a, Standbys(a), Switch, "alarm"),
        ["OwnerView with no primary"] = _ => new OwnerProtocol.OwnerView("kv", 0, null, null, new List<StandbyRef>(), null, null),
        ["OwnerView of a failed app"] = _ => new OwnerProtocol.OwnerView("kv", 2, null, null, new List<StandbyRef>(), Switch, "failed: n1: /bin/kv exited with code 3", true),
        ["ProgramFailed"] = _ => new OwnerProtocol.ProgramFailed("kv", 2, "n1", "/bin/kv (pid 7) exited with code 3 after 0.1 s; last output: fatal"),
        ["Started"] = _ => new OwnerProtocol.Started("kv", 2, "n1"),
        ["NodeStatus of a node whose journal failed"] = a => new OwnerProtocol.NodeStatus("kv", "n2", "n2", a, AppRole.Standby, 1, Newest, 1, 5, 3,
            "SQLite journal (/var/lib/continuity/journal.db): SQLite Error 13: database or disk is full", false),
        ["NodeStatus of a rejoined node awaiting a checkpoint"] = a => new OwnerProtocol.NodeStatus("kv", "n2", "n2", a, AppRole.Standby, 1, Newest, 1, 9, 2, null, false),
        ["JournalFailed"] = _ => new OwnerProtocol.JournalFailed("kv", "akka.tcp://continuity@10.0.0.2:4053",
            "SQLite journal (/var/lib/continuity/journal.db): SQLite Error 13: database or disk is full"),
        ["StandbyLag"] = _ => new StandbyLag("akka.tcp://continuity@10.0.0.2:4053", 41, 12, TimeSpan.FromMilliseconds(10_400)),
        ["NodeStatus of a primary with its standbys' lag"] = a => new OwnerProtocol.NodeStatus("kv", "n1", "n1", a, AppRole.Primary, 2, Newest, 2, 0, 0,
            Lags: new[] { new StandbyLag("n2", 41, 12, TimeSpan.FromSeconds(11)), new StandbyLag("n3", 53, 0, TimeSpan.Zero) }.ToList()),
        ["NodeStatus of a standby dropped for lagging"] = a => new OwnerProtocol.NodeStatus("kv", "n2", "n2", a, AppRole.Standby, 2, Newest, 2, 41, 31,
            null, false, Behind: "its oldest unacknowledged packet has waited 11 s (12 packet(s) behind), beyond max-standby-lag = 10s", LogBacklog: 12),
        ["DropStandby"] = _ => new OwnerProtocol.DropStandby("kv", 2, "it has 6000 packets unacknowledged, beyond max-standby-lag-packets = 5000"),
        ["StandbyDropped"] = _ => new OwnerProtocol.StandbyDropped("kv", 2, "akka.tcp://continuity@10.0.0.2:4053"),
        ["AppFigures of a primary with lagging standbys"] = _ => PrimaryFigures with
        {
            StandbyLags = new[] { new StandbyLag("n2", 41, 12, TimeSpan.FromSeconds(11)) }.ToList(),
        },
        ["Refusal"] = _ => new CheckpointerProtocol.Refusal("akka.tcp://continuity@10.0.0.3:4053", 4,
            new DateTimeOffset(2026, 12, 1, 12, 36, 1, TimeSpan.Zero), "No space left on device : '/var/lib/continuity/checkpoints/kv/e2-1.partial'"),
        ["AppFigures of a primary whose standby refuses checkpoints"] = _ => PrimaryFigures with
        {
            CheckpointRefusals = new[] { new CheckpointerProtocol.Refusal("n3", 2, new DateTimeOffset(2026, 12, 1, 12, 36, 1, TimeSpan.Zero), "No space left on device") }.ToList(),
        },
        ["AppFigures of a primary with its stage histograms"] = _ => PrimaryFigures with { Stages = StagesOfAPrimary() },
        ["StageFigures"] = _ => StagesOfAPrimary()[1],
        ["AppFigures of a standby dropped for lagging"] = _ => new IntrospectionProtocol.AppFigures("kv", AppRole.Standby, 2, 0, 0, 31, Newest, null, 0, 0, 0, null,
            null, "its oldest unacknowledged packet has waited 11 s (12 packet(s) behind), beyond max-standby-lag = 10s"),
        ["RecordSwitch"] = _ => new OwnerProtocol.RecordSwitch("kv", Switch),
        ["OwnerProtocol.GetSwitchHistory"] = _ => new OwnerProtocol.GetSwitchHistory("kv"),
        ["SwitchesKept"] = _ => new OwnerProtocol.SwitchesKept("kv", "n2", new[] { Switch, Switch with { Epoch = 3, From = null } }.ToList()),
        ["SwitchesKept of a node that kept none"] = _ => new OwnerProtocol.SwitchesKept("kv", "n3", new List<SwitchInfo>()),
        ["AppsProtocol.GetSwitchHistory"] = _ => new AppsProtocol.GetSwitchHistory(),
        ["SwitchHistory"] = _ => new AppsProtocol.SwitchHistory(new[] { new AppsProtocol.AppSwitch("kv", Switch) }.ToList(),
            new[] { "n3 did not answer: the switches of kv only it kept are missing" }.ToList()),
        ["AppSwitch"] = _ => new AppsProtocol.AppSwitch("kv", Switch),
        ["JournalRecovered"] = _ => new OwnerProtocol.JournalRecovered("kv", "akka.tcp://continuity@10.0.0.2:4053"),
        ["GetPrimaryStatus"] = _ => new AppActorProtocol.GetPrimaryStatus("kv"),
        ["PrimaryStatus"] = _ => new AppActorProtocol.PrimaryStatus("kv", "n1", AppRole.Primary, 1, Newest, null,
            new HashSet<string> { "n2", "n3" }.ToArray(), false, 5, 5, Switch),
        ["PrimaryStatus of a node with no checkpointer"] = _ => new AppActorProtocol.PrimaryStatus("kv", "n1", AppRole.Idle, 0,
            null, null, [], true, 0, 0),
        ["AppActorProtocol.CheckpointNow"] = _ => new AppActorProtocol.CheckpointNow("kv"),
        ["GetApps"] = _ => new AppsProtocol.GetApps(),
        ["Switch"] = _ => new AppsProtocol.Switch("kv", "n2"),
        ["RebalanceSwitch"] = _ => new AppsProtocol.Switch("kv", "n2", "rebalance: n1 serves 3 applications, n2 0"),
        ["GetServing"] = _ => new PlacementProtocol.GetServing(),
        ["PauseRecovery"] = _ => new AppsProtocol.PauseRecovery("kv", true),
        ["RecoveryPaused"] = _ => new AppsProtocol.RecoveryPaused("kv", true, false),
        ["SetRecoveryPaused"] = _ => new OwnerProtocol.SetRecoveryPaused("kv", true),
        ["StreamFrom"] = _ => new Continuity.Core.Replication.ReplicationProtocol.StreamFrom("kv", 3, 1200),
        ["Serving"] = _ => new PlacementProtocol.Serving("akka.tcp://continuity@10.0.0.2:4053",
            [new PlacementProtocol.ServedApp("kv", AppRole.Primary), new PlacementProtocol.ServedApp("web", AppRole.TakingOver)]),
        ["ServedApp"] = _ => new PlacementProtocol.ServedApp("kv", AppRole.Releasing),
        ["AppsProtocol.CheckpointNow"] = _ => new AppsProtocol.CheckpointNow("kv"),
        ["SwitchStarted"] = _ => new AppsProtocol.SwitchStarted("kv", "n1", "n2", 2),
        ["CheckpointTaken"] = _ => new AppsProtocol.CheckpointTaken("kv", Newest),
        ["Rejected"] = _ => new AppsProtocol.Rejected("kv", "no primary"),
        // The MIB, as NodeIntrospector builds it: ToList of queues and apps, an empty [] on a witness.
        ["GetMib"] = _ => new IntrospectionProtocol.GetMib(),
        ["QueueFigures"] = _ => new IntrospectionProtocol.QueueFigures(0, 3, 1, 2),
        ["NodeFigures"] = _ => Figures,
        ["AppFigures"] = _ => PrimaryFigures,
        ["AppFigures of an idle node"] = _ => new IntrospectionProtocol.AppFigures("kv", AppRole.Idle, 0, 0, 0, 0, null, null, 0, 0, 0, null),
        ["NodeMib"] = _ => new IntrospectionProtocol.NodeMib("n1", "akka.tcp://continuity@10.0.0.1:4053", DateTimeOffset.UtcNow, Figures,
            new[] { PrimaryFigures }.ToList()),
        ["NodeMib of a witness"] = _ => new IntrospectionProtocol.NodeMib("n3", "akka.tcp://continuity@10.0.0.3:4053", DateTimeOffset.UtcNow,
            new IntrospectionProtocol.NodeFigures(0, 0, 0, 0, 0, [], 0, "/proc/stat: unreadable"), []),
        ["AppsView"] = _ => new AppsView(new[] { View("protected"), new AppView("db", 0, null, [], "unknown", null, 0, null, "no answer") }),
        ["AppView"] = _ => View("degraded"),
        ["StandbyView"] = _ => new StandbyView("n2", "n2", true, 3),
        ["ServingPrimaries"] = _ => new Continuity.Core.Membership.DowningProtocol.ServingPrimaries(2),
    };

    public static TheoryData<string> SampleNames => new(Samples.Keys);

    private HyperionControlSerializer Serializer =>
        Assert.IsType<HyperionControlSerializer>(Sys.Serialization.FindSerializerForType(typeof(IControlMessage)));

    /// <summary>Serializes as remoting does: actor references with this system's address.</summary>
    private byte[] Send(object message, Akka.Serialization.Serializer serializer) =>
        AkkaSerialization.WithTransport((ExtendedActorSystem)Sys, () => serializer.ToBinary(message));

    private object Receive(byte[] bytes) => Sys.Serialization.Deserialize(bytes, HyperionControlSerializer.Id, "");

    private static byte[] UnfilteredHyperionBytes(object o)
    {
        var hyperion = new Hyperion.Serializer(new SerializerOptions(versionTolerance: true, preserveObjectReferences: true,
            surrogates: null, serializerFactories: null, knownTypes: null, ignoreISerializable: true,
            packageNameOverrides: null, disallowUnsafeTypes: false, typeFilter: DisabledTypeFilter.Instance));
        using var ms = new MemoryStream();
        hyperion.Serialize(o, ms);
        return ms.ToArray();
    }

    [Fact]
    public void Every_concrete_control_message_type_in_Continuity_Core_has_a_sample_here()
    {
        var declared = typeof(IControlMessage).Assembly.GetTypes()
            .Where(t => typeof(IControlMessage).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .ToHashSet();
        var sampled = Samples.Values.Select(f => f(ActorRefs.Nobody).GetType()).ToHashSet();

        Assert.Empty(declared.Except(sampled).Select(t => t.FullName));
        Assert.True(declared.SetEquals(ControlMessageAllowList.Instance.MessageTypes), "the allow-list is built from every one of them");
    }

    [Theory]
    [MemberData(nameof(SampleNames))]
    public void A_control_message_round_trips_through_the_serializer_the_system_picks_for_it(string sample)
    {
        var probe = CreateTestProbe();
        var message = Samples[sample](probe.Ref);

        var serializer = Sys.Serialization.FindSerializerFor(message);
        Assert.IsType<HyperionControlSerializer>(serializer);
        var back = Receive(Send(message, serializer));

        AssertSameValue(message, back, message.GetType().Name);
    }

    [Fact]
    public void An_actor_reference_in_a_control_message_comes_back_as_the_same_actor_and_still_answers()
    {
        var probe = CreateTestProbe();
        var message = new OwnerProtocol.NodeStatus("kv", "n1", "n1", probe.Ref, AppRole.Primary, 3, null, 0, 0, 0);

        var back = (OwnerProtocol.NodeStatus)Receive(Send(message, Serializer));

        Assert.Equal(probe.Ref, back.AppActor);
        back.AppActor.Tell("ping");
        probe.ExpectMsg("ping");
    }

    public static TheoryData<string> Foreign => new() { "test record", "foreign control message", "FileInfo" };

    private static object ForeignSample(string name) => name switch
    {
        "test record" => new ProbeMessage("x"),
        "foreign control message" => new ForeignControlMessage("x"),
        _ => new FileInfo("/etc/hostname"),
    };

    [Theory]
    [MemberData(nameof(Foreign))]
    public void A_type_that_is_not_on_the_allow_list_is_refused_on_deserialization(string sample)
    {
        var payload = ForeignSample(sample);
        var bytes = UnfilteredHyperionBytes(payload);

        var e = Assert.Throws<SerializationException>(() => Receive(bytes));

        // The message names the refused type; Hyperion's own exception says why.
        Assert.Contains(payload.GetType().FullName!, e.Message);
        var why = Assert.IsAssignableFrom<EvilDeserializationException>(e.InnerException);
        Assert.Contains(payload.GetType().FullName!, why.BadTypeString);
    }

    [Fact]
    public void A_type_that_is_not_on_the_allow_list_is_refused_even_nested_in_an_allowed_message()
    {
        // SwitchInfo's Phases is declared IReadOnlyDictionary; only Dictionary is on the list.
        var message = Switch with { Phases = new SortedDictionary<string, TimeSpan> { ["restore"] = TimeSpan.FromSeconds(1) } };

        var e = Assert.Throws<SerializationException>(() => Receive(Send(message, Serializer)));

        Assert.Contains("SortedDictionary", e.Message);
    }

    [Fact]
    public void A_list_made_by_a_collection_expression_with_elements_is_refused_by_the_receiver()
    {
        // The compiler makes a list type of its own in the calling assembly; senders use ToList() or arrays instead.
        IReadOnlyList<StandbyRef> standbys = [new StandbyRef("n2", ActorRefs.Nobody)];
        var message = new OwnerProtocol.SetStandbys("kv", 1, standbys);

        var e = Assert.Throws<SerializationException>(() => Receive(Send(message, Serializer)));

        Assert.Contains("z__ReadOnly", e.Message);
    }

    [Fact]
    public void A_control_message_declared_outside_Continuity_Core_is_refused_already_when_sent()
    {
        var message = new ForeignControlMessage("x");

        Assert.IsType<HyperionControlSerializer>(Sys.Serialization.FindSerializerFor(message));
        Assert.Throws<UserEvilDeserializationException>(() => Send(message, Serializer));
    }

    [Fact]
    public void The_allow_list_answers_to_both_spellings_Hyperion_asks_with_and_to_nothing_else()
    {
        var list = ControlMessageAllowList.Instance;
        static string Short(Type t) => $"{t.FullName}, {t.Assembly.GetName().Name}";

        Assert.True(list.IsAllowed(Short(typeof(AppsProtocol.GetApps))));
        Assert.True(list.IsAllowed(typeof(AppsProtocol.GetApps).AssemblyQualifiedName!));
        Assert.False(list.IsAllowed(Short(typeof(IControlMessage))));
        Assert.False(list.IsAllowed(Short(typeof(ProbeMessage))));
        Assert.False(list.IsAllowed(Short(typeof(ForeignControlMessage))));
        Assert.False(list.IsAllowed(Short(typeof(AppSpec))));
        Assert.False(list.IsAllowed(Short(typeof(FileInfo))));
    }

    [Fact]
    public void A_message_field_the_allow_list_has_no_rule_for_stops_the_list_from_being_built()
    {
        var e = Assert.Throws<NotSupportedException>(() => ControlMessageAllowList.ForTypes([typeof(MessageWithASet)]));

        Assert.Contains(nameof(MessageWithASet), e.Message);
        Assert.Contains("HashSet", e.Message);
    }

    /// <summary>Structural equality: records compare collections by reference, so walk them; the concrete
    /// collection type must survive too (it is what the allow-list names).</summary>
    private static void AssertSameValue(object? expected, object? actual, string path)
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {expected ?? "null"}, got {actual ?? "null"}");
            return;
        }
        if (expected is IActorRef)
        {
            Assert.Equal(expected, actual);
            return;
        }
        Assert.True(expected.GetType() == actual.GetType(), $"{path}: expected a {expected.GetType()}, got a {actual.GetType()}");
        switch (expected)
        {
            case string or ValueType:
                Assert.True(Equals(expected, actual), $"{path}: expected {expected}, got {actual}");
                return;
            case IDictionary e:
                var a = (IDictionary)actual;
                Assert.Equal(e.Keys.Cast<object>(), a.Keys.Cast<object>());
                foreach (DictionaryEntry entry in e) AssertSameValue(entry.Value, a[entry.Key], $"{path}[{entry.Key}]");
                return;
            case IEnumerable e:
                var xs = e.Cast<object?>().ToList();
                var ys = ((IEnumerable)actual).Cast<object?>().ToList();
                Assert.True(xs.Count == ys.Count, $"{path}: expected {xs.Count} items, got {ys.Count}");
                for (var i = 0; i < xs.Count; i++) AssertSameValue(xs[i], ys[i], $"{path}[{i}]");
                return;
            default:
                foreach (var p in expected.GetType().GetProperties())
                    AssertSameValue(p.GetValue(expected), p.GetValue(actual), $"{path}.{p.Name}");
                return;
        }
    }
}
