using System.Text;
using System.Text.Json;
using Continuity.Core.Checkpoint;
using Continuity.Core.Election;
using Continuity.Core.Supervision;
using Continuity.Node.Management;

namespace Continuity.Cmd.Tests;

/// <summary>One in-process run of the console with captured output and a temporary home for its files.</summary>
public sealed class ConsoleRun : IDisposable
{
    private readonly StringBuilder _out = new();
    private readonly StringBuilder _err = new();

    public string Dir { get; } = Directory.CreateTempSubdirectory("continuity-cmd-test-").FullName;
    public string TokenFile => Path.Combine(Dir, "token");
    public string HistoryFile => Path.Combine(Dir, ".continuity_history");
    public Dictionary<string, string> Env { get; } = new();

    public TextWriter OutWriter { get; }
    public TextWriter ErrWriter { get; }

    public ConsoleRun(string token = FakeNode.Token)
    {
        File.WriteAllText(TokenFile, token + "\n");
        // Synchronized: cluster tail writes from the request's continuation while the test polls.
        OutWriter = TextWriter.Synchronized(new StringWriter(_out));
        ErrWriter = TextWriter.Synchronized(new StringWriter(_err));
    }

    public string Out
    {
        get { lock (OutWriter) return _out.ToString(); }
    }

    public string Err
    {
        get { lock (ErrWriter) return _err.ToString(); }
    }

    /// <param name="terminal">Whether stdout counts as a terminal (progress drawn in place).</param>
    /// <param name="poll">How often a followed operation is polled (shorter than a person needs, to keep tests quick).</param>
    internal CmdEnvironment Environment(string stdin = "", IKeySource? keys = null, bool terminal = false, TimeSpan? poll = null) => new()
    {
        OutputIsTerminal = terminal,
        PollInterval = poll ?? TimeSpan.FromMilliseconds(500),
        In = new StringReader(stdin),
        Out = OutWriter,
        Err = ErrWriter,
        InputRedirected = keys is null,
        Keys = keys,
        GetEnv = name => Env.TryGetValue(name, out var v) ? v : null,
        DefaultTokenFiles = [Path.Combine(Dir, "no-such-etc-token"), Path.Combine(Dir, "no-such-lab-token")],
        HistoryFile = HistoryFile,
        RequestTimeout = TimeSpan.FromSeconds(10),
    };

    public Task<int> Run(FakeNode? node, params string[] args) => Run(node, Environment(), args);

    internal Task<int> Run(FakeNode? node, CmdEnvironment env, params string[] args)
    {
        var all = new List<string>();
        if (node is not null) all.AddRange(["--node", node.Endpoint]);
        all.AddRange(["--token-file", TokenFile]);
        all.AddRange(args);
        return CmdApp.RunAsync(all.ToArray(), env);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Plays back keystrokes as if typed at a terminal.</summary>
internal sealed class ScriptedKeys : IKeySource
{
    private readonly Queue<ConsoleKeyInfo> _keys = new();

    public ScriptedKeys Type(string text)
    {
        foreach (var c in text) _keys.Enqueue(new ConsoleKeyInfo(c, ConsoleKey.NoName, false, false, false));
        return this;
    }

    public ScriptedKeys Press(ConsoleKey key, bool control = false)
    {
        var ch = key switch { ConsoleKey.Enter => '\r', ConsoleKey.Backspace => '\b', _ => '\0' };
        _keys.Enqueue(new ConsoleKeyInfo(ch, key, false, false, control));
        return this;
    }

    public ScriptedKeys Line(string text) => Type(text).Press(ConsoleKey.Enter);

    public ConsoleKeyInfo ReadKey() =>
        _keys.Count > 0 ? _keys.Dequeue() : new ConsoleKeyInfo('\u0004', ConsoleKey.D, false, false, true);
}

internal static class Canned
{
    public const string N1 = "akka.tcp://continuity@198.18.0.11:4053";
    public const string N2 = "akka.tcp://continuity@198.18.0.12:4053";
    public const string N3 = "akka.tcp://continuity@198.18.0.13:4053";

    public const string Cluster = $$"""
        {"self":"{{N1}}","leader":"{{N1}}","oldest":"{{N2}}",
         "members":[
           {"address":"{{N1}}","node":"n1","status":"Up","roles":["data"],"reachable":true,"upNumber":1},
           {"address":"{{N2}}","node":"n2","status":"Up","roles":["data","standby"],"reachable":true,"upNumber":2},
           {"address":"{{N3}}","node":"n3","status":"Leaving","roles":[],"reachable":false,"upNumber":3}],
         "unreachable":["{{N3}}"]}
        """;

    public const string Apps = $$$"""
        {"apps":[{"name":"kv","primary":"n1",
          "standbys":[{"node":"n2","address":"{{{N2}}}","ready":true,"logDepth":57,"checkpointId":"e3-20261127095900000-12","checkpointAgeMs":1234},
                      {"node":"n3","address":"{{{N3}}}","ready":false,"logDepth":900,"checkpointId":null,"checkpointAgeMs":null}],
          "state":"protected",
          "lastCheckpoint":{"id":"e3-20261127095900000-12","epoch":3,"mark":1000,"at":"2026-11-27T09:59:00Z","ageMs":1234,"bytes":123456,"freezeMs":80},
          "logDepth":57,
          "lastSwitch":{"from":"n1","to":"n2","at":"2026-11-27T09:59:00Z","reason":"crash",
            "phases":{"vipMs":3,"restoreMs":120,"replayMs":40,"openMs":2},"packetsReplayed":57}}]}
        """;
}

/// <summary>
/// GET /v1/mib as a real node answers it: produced by the node's own conversion (MibJson) and serializer settings from
/// the MIB records the introspection actors exchange, so the console is tested against the real shape.
/// </summary>
internal static class CannedMib
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-11-27T10:00:00Z");

    public static string Json
    {
        get
        {
            var switchInfo = new SwitchInfo(Canned.N2, Canned.N1, Now.AddMinutes(-5), "primary removed", 3, 57,
                new Dictionary<string, TimeSpan> { ["vip"] = TimeSpan.FromMilliseconds(3), ["restore"] = TimeSpan.FromMilliseconds(120),
                    ["replay"] = TimeSpan.FromMilliseconds(40), ["open"] = TimeSpan.FromMilliseconds(2) });
            var checkpoint = new CheckpointInfo(3, "e3-20261127095900000-12", 1000, Now.AddSeconds(-1), 123456, TimeSpan.FromMilliseconds(80));
            var n1 = new IntrospectionProtocol.NodeMib("n1", Canned.N1, Now,
                new IntrospectionProtocol.NodeFigures(12.5, 3L << 30, 8L << 30, 40L << 30, 100L << 30,
                    [new IntrospectionProtocol.QueueFigures(0, 7, 3, 4)], 5 << 20, null),
                [new IntrospectionProtocol.AppFigures("kv", AppRole.Primary, 3, 1057, 1050, 57, checkpoint, TimeSpan.FromMilliseconds(35), 12, 1, 57, switchInfo,
                    [new Continuity.Core.Capture.StandbyLag(Canned.N2, 1050, 7, TimeSpan.FromMilliseconds(1500))],
                    CheckpointRefusals: [new Continuity.Core.Checkpoint.CheckpointerProtocol.Refusal(Canned.N2, 3, Now.AddSeconds(-30), "No space left on device")])]);
            var n2 = new IntrospectionProtocol.NodeMib("n2", Canned.N2, Now,
                new IntrospectionProtocol.NodeFigures(3.25, 1L << 30, 8L << 30, 50L << 30, 100L << 30, [], 4 << 20, null),
                [new IntrospectionProtocol.AppFigures("kv", AppRole.Standby, 3, 0, 0, 57, checkpoint, null, 0, 0, 0, null)]);
            string NameOf(string address) => address == Canned.N1 ? "n1" : address == Canned.N2 ? "n2" : address;
            var dto = new MibJson.MibDto("n1",
            [
                MibJson.FromMib(n1, NameOf, Now), MibJson.FromMib(n2, NameOf, Now),
                MibJson.Unreachable("n3", Canned.N3, "did not answer within 2 s (continuity.supervision.ask-timeout)"),
            ]);
            return JsonSerializer.Serialize(dto, ManagementServer.Json);
        }
    }
}
