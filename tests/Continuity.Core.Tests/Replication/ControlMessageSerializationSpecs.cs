using Akka.Actor;
using Akka.TestKit.Xunit2;
using Continuity.Core.Apps;
using Continuity.Core.Capture;
using Continuity.Core.Checkpoint;
using Continuity.Core.Election;
using Xunit;

namespace Continuity.Core.Tests.Replication;

/// <summary>Every control message crosses nodes through the allow-listed control serializer (reference.conf).</summary>
public sealed class ControlMessageSerializationSpecs() : TestKit(TestConfig.Node("akka.actor.provider = local\n"))
{
    public static IEnumerable<object[]> Messages()
    {
        var cp = new CheckpointInfo(2, "e2-1", 10, DateTimeOffset.UtcNow, 100, TimeSpan.FromMilliseconds(3));
        var sw = new SwitchInfo("a", "b", DateTimeOffset.UtcNow, "primary removed", 2, 6, new Dictionary<string, TimeSpan> { ["restore"] = TimeSpan.FromMilliseconds(5) });
        IReadOnlyList<StandbyRef> standbys = [new StandbyRef("n2", ActorRefs.Nobody)];
        object[] all =
        [
            new OwnerProtocol.BecomePrimary("kv", 1, standbys),
            new OwnerProtocol.BecomeStandby("kv", 1, "n1"),
            new OwnerProtocol.TakeOver("kv", 2, standbys, false, null, "primary removed"),
            new OwnerProtocol.SetStandbys("kv", 1, standbys),
            new OwnerProtocol.Release("kv", 1),
            new OwnerProtocol.Released("kv", 1, cp),
            new OwnerProtocol.GetNodeStatus("kv"),
            new OwnerProtocol.NodeStatus("kv", "n1", "n1", ActorRefs.Nobody, AppRole.Standby, 1, cp, 1, 5, 3),
            new OwnerProtocol.NodeStatus("kv", "n1", "n1", ActorRefs.Nobody, AppRole.Idle, 0, null, 0, 0, 0),
            new OwnerProtocol.TookOver("kv", 2, "n2", sw),
            new OwnerProtocol.TakeoverFailed("kv", 2, "n2", "x"),
            new OwnerProtocol.Failed("kv", "x"),
            new OwnerProtocol.GetOwnerView("kv"),
            new OwnerProtocol.OwnerView("kv", 2, "n2", ActorRefs.Nobody, standbys, sw, null),
            new OwnerProtocol.OwnerView("kv", 2, null, null, standbys, sw, "failed: n1: /bin/kv exited with code 3", true),
            new OwnerProtocol.ProgramFailed("kv", 2, "n1", "/bin/kv (pid 7) exited with code 3 after 0.1 s; last output: fatal"),
            new OwnerProtocol.Started("kv", 2, "n1"),
            new AppActorProtocol.GetPrimaryStatus("kv"),
            new AppActorProtocol.PrimaryStatus("kv", "n1", AppRole.Primary, 1, cp, null, ["n2"], false, 5, 5),
            new AppActorProtocol.CheckpointNow("kv"),
            new AppsProtocol.GetApps(),
            new AppsProtocol.Switch("kv", "n2"),
            new AppsProtocol.CheckpointNow("kv"),
            new AppsProtocol.SwitchStarted("kv", "n1", "n2", 2),
            new AppsProtocol.CheckpointTaken("kv", cp),
            new AppsProtocol.Rejected("kv", "x"),
            new AppsView([new AppView("kv", 1, "n1", [new StandbyView("n2", "n2", true, 3)], "protected", cp, 3, sw, null)]),
        ];
        return all.Select(m => new[] { m });
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public void Control_messages_pass_the_hyperion_allow_list(object message)
    {
        var serializer = Sys.Serialization.FindSerializerFor(message);
        Assert.IsType<Continuity.Core.Serialization.ControlMessageSerializer>(serializer);
        var bytes = serializer.ToBinary(message);
        var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, Akka.Serialization.Serialization.ManifestFor(serializer, message));
        Assert.Equal(message.GetType(), back.GetType());
    }

    [Fact]
    public void A_manifest_naming_a_type_that_is_no_control_message_is_refused()
    {
        var serializer = (Akka.Serialization.SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(AppsProtocol.GetApps));
        Assert.ThrowsAny<Exception>(() => serializer.FromBinary("{}"u8.ToArray(), "System.IO.FileInfo, System.Private.CoreLib"));
        Assert.ThrowsAny<Exception>(() => serializer.FromBinary("{}"u8.ToArray(), "Continuity.Core.Apps.AppSpec, Continuity.Core"));
    }

    [Fact]
    public void A_failed_owner_view_keeps_its_failed_flag_and_alarm_across_nodes()
    {
        var m = new OwnerProtocol.OwnerView("kv", 2, null, null, [], null, "failed: n1: why", true);
        var serializer = Sys.Serialization.FindSerializerFor(m);
        var back = (OwnerProtocol.OwnerView)Sys.Serialization.Deserialize(serializer.ToBinary(m), serializer.Identifier,
            Akka.Serialization.Serialization.ManifestFor(serializer, m));
        Assert.True(back.Failed);
        Assert.Equal("failed: n1: why", back.Alarm);
    }

    [Fact]
    public void Actor_references_survive_the_round_trip()
    {
        var probe = CreateTestProbe();
        var m = new OwnerProtocol.NodeStatus("kv", "n1", "n1", probe.Ref, AppRole.Primary, 3, null, 0, 0, 0);
        var serializer = Sys.Serialization.FindSerializerFor(m);
        var back = (OwnerProtocol.NodeStatus)Sys.Serialization.Deserialize(serializer.ToBinary(m), serializer.Identifier,
            Akka.Serialization.Serialization.ManifestFor(serializer, m));
        Assert.Equal(probe.Ref, back.AppActor);
        Assert.Equal(AppRole.Primary, back.Role);
    }
}
