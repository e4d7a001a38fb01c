using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Node.Tests.Hosting;

/// <summary><c>continuity-node --config FILE --check</c> as a real process, the way an operator runs it.</summary>
public sealed class CheckCommandSpecs(ITestOutputHelper log) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("continuity-check-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>The node's build, copied next to this test assembly by the project reference.</summary>
    private static string NodeDll
    {
        get
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "continuity-node.dll");
            Assert.True(File.Exists(dll) && File.Exists(Path.ChangeExtension(dll, ".runtimeconfig.json")), $"{dll} (and its runtimeconfig) missing: build the test project");
            return dll;
        }
    }

    private (int Code, string Out, string Err) Run(string config, params string[] extra)
    {
        var file = Path.Combine(_dir, "bad.hocon");
        // The test run's cluster certificate, last so that the line numbers the expected messages name stay put.
        File.WriteAllText(file, $"{config}\ncontinuity.cluster-tls.certificate = \"{TestClusterCertificate.File}\"\n");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir };
        foreach (var a in new[] { NodeDll, "--config", "bad.hocon" }.Concat(extra)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("continuity-node did not exit within 60 s");
        }
        log.WriteLine($"exit {p.ExitCode}\nstdout: {stdout.Result}\nstderr: {stderr.Result}");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private const string Node = """
        continuity.node.name = "n1"
        continuity.node.state-dir = "/tmp/continuity-check-never-created"
        akka.remote.dot-netty.tcp.hostname = "198.18.0.11"

        """;

    private static string App(string body) => Node + "continuity.apps.kv {\n" + body + "\n}\n";

    private const string GoodApp = """
          command = ["/bin/sh", "-c", "exec sleep 600"]
          vip = "198.18.0.50/24"
          ports = ["tcp/7000", "udp/7001"]
        """;

    public static TheoryData<string, string> BadApps => new()
    {
        {
            GoodApp.Replace("\"tcp/7000\", \"udp/7001\"", "\"tcp/70000\""),
            "continuity-node: configuration error: bad.hocon:7:3: 'continuity.apps.kv.ports' entry \"tcp/70000\" is invalid: port 70000 is out of range: expected \"tcp/PORT\" or \"udp/PORT\" with PORT 1-65535, e.g. \"tcp/7000\""
        },
        {
            GoodApp.Replace("\"tcp/7000\", \"udp/7001\"", "\"sctp/1\""),
            "'continuity.apps.kv.ports' entry \"sctp/1\" is invalid: protocol \"sctp\" is not supported (only tcp and udp are logged)"
        },
        {
            GoodApp.Replace("\"tcp/7000\", \"udp/7001\"", "\"7000\""),
            "'continuity.apps.kv.ports' entry \"7000\" is invalid: the protocol is missing"
        },
        {
            GoodApp.Replace("198.18.0.50/24", "198.18.0.50"),
            "'continuity.apps.kv.vip' = \"198.18.0.50\" is invalid: expected an IPv4 address with prefix length \"A.B.C.D/N\" (N 1-30), e.g. \"198.18.0.50/24\""
        },
        {
            GoodApp.Replace("198.18.0.50/24", "198.18.0.50/32"),
            "'continuity.apps.kv.vip' = \"198.18.0.50/32\" is invalid: a /32 holds no other address"
        },
        {
            GoodApp.Replace("198.18.0.50/24", "10.1.0.50/24"),
            "continuity-node: configuration error: bad.hocon:6:3: 'continuity.apps.kv.vip' = \"10.1.0.50/24\" is outside the subnet of this node's address 198.18.0.11 ('akka.remote.dot-netty.tcp.hostname' at bad.hocon:3:1): 198.18.0.11 is not in 10.1.0.0/24"
        },
        {
            GoodApp.Replace("[\"/bin/sh\", \"-c\", \"exec sleep 600\"]", "[]"),
            "'continuity.apps.kv.command' = [] is invalid: expected a non-empty array of strings whose first element is the program"
        },
        {
            GoodApp.Replace("/bin/sh", "/opt/nowhere/kv-server"),
            "'continuity.apps.kv.command' program \"/opt/nowhere/kv-server\" does not exist: install it or fix the path"
        },
        {
            GoodApp.Replace("/bin/sh", "kv-server-not-installed"),
            "'continuity.apps.kv.command' program \"kv-server-not-installed\" was not found in PATH ("
        },
        {
            GoodApp.Replace("/bin/sh", "/etc/passwd"),
            "'continuity.apps.kv.command' program \"/etc/passwd\" is not executable: chmod +x it or fix the path"
        },
    };

    [Theory]
    [MemberData(nameof(BadApps))]
    public void Check_refuses_a_bad_application_with_exit_2_and_a_message_naming_key_value_and_fix(string app, string message)
    {
        var (code, stdout, stderr) = Run(App(app), "--check");
        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("is valid", stdout);
    }

    [Fact]
    public void Check_accepts_a_good_application_and_names_it()
    {
        var (code, stdout, _) = Run(App(GoodApp), "--check");
        Assert.Equal(0, code);
        Assert.Contains("configuration bad.hocon is valid: node n1", stdout);
        Assert.Contains("apps [kv]", stdout);
    }

    /// <summary>Found by configuration fuzzing: this took --check 28 s and 1 GB before it was refused by depth.</summary>
    [Fact]
    public void Check_refuses_a_key_thousands_of_segments_deep_at_once_naming_its_line_and_the_limit()
    {
        var (code, stdout, stderr) = Run(Node + string.Join('.', Enumerable.Repeat("a", 20_000)) + " = 1\n", "--check");
        Assert.Equal(2, code);
        Assert.StartsWith("continuity-node: configuration error: bad.hocon:4:1: key 'a.a.a.a.a.a.…' is 20000 segments deep, " +
                          "more than the limit of 64", stderr);
        Assert.Contains("write the setting's real path", stderr);
        Assert.DoesNotContain("is valid", stdout);
    }

    public static TheoryData<string, string> WrongTypes => new()
    {
        // Found by configuration fuzzing: accepted silently, and the node served its API in plain HTTP.
        { "continuity.management.tls.certificate = [1, [2]]", "'continuity.management.tls.certificate' = [\"1\", [\"2\"]] is an array where the absolute path of a PEM file (or \"\" for plain HTTP) is expected" },
        { "continuity.management.tls.key = { path = \"/etc/k.pem\" }", "'continuity.management.tls.key' is an object where the absolute path of a PEM file" },
        { "continuity.management.audit.max-file-bytes = [4096]", "'continuity.management.audit.max-file-bytes' = [\"4096\"] is an array where a size from 4 KiB to 1 GiB" },
        { "continuity.fencing.lease = [4s]", "'continuity.fencing.lease' = [\"4s\"] is an array where a duration such as 4s is expected" },
        { "continuity.fencing.enabled = { on = yes }", "'continuity.fencing.enabled' is an object where on or off is expected" },
        { "akka.cluster.split-brain-resolver.stable-after = [5s]", "'akka.cluster.split-brain-resolver.stable-after' = [\"5s\"] is an array where a duration such as 5s is expected" },
        { "akka.cluster.roles = data", "'akka.cluster.roles' = \"data\" is invalid: expected a list of role names, e.g. [data]" },
    };

    [Theory]
    [MemberData(nameof(WrongTypes))]
    public void Check_refuses_an_array_or_object_on_a_single_valued_key_naming_the_key_what_was_found_and_what_is_expected(string line, string message)
    {
        var (code, stdout, stderr) = Run(Node + line + "\n", "--check");
        Assert.Equal(2, code);
        Assert.StartsWith("continuity-node: configuration error: bad.hocon:4:1: " + message, stderr);
        Assert.DoesNotContain("is valid", stdout);
    }

    [Fact]
    public void Starting_a_node_with_a_bad_application_fails_the_same_way_before_anything_starts()
    {
        var (code, _, stderr) = Run(App(GoodApp.Replace("\"tcp/7000\", \"udp/7001\"", "\"tcp/70000\"")));
        Assert.Equal(2, code);
        Assert.Contains("continuity-node: configuration error: bad.hocon:7:3: 'continuity.apps.kv.ports' entry \"tcp/70000\" is invalid", stderr);
        Assert.False(Directory.Exists("/tmp/continuity-check-never-created"), "the node must not start (it would create its state dir)");
    }
}
