using System.Diagnostics;
using System.Text;
using Akka.Configuration.Hocon;
using Continuity.Core.Configuration;
using Xunit;
using Xunit.Abstractions;

namespace Continuity.Core.Tests.Configuration;

/// <summary>
/// Malformed node configuration files, built on purpose rather than by random characters alone (HoconFuzzTests does
/// that): every truncation, flipped bits, deep nesting, huge values, bad durations, wrong types and unknown keys on
/// every key Continuity defines. Each goes through the chain a node start and <c>continuity-node --check</c> run
/// (load, node settings, applications, placement, resource rules, persistence). The outcome must be settings or a
/// <see cref="ConfigurationException"/> whose message names the file, never another exception (the node would die
/// with a stack trace) and never a hang. A sample goes through the real <c>continuity-node --check</c> too. Seeds
/// are fixed, so a failure replays.
/// </summary>
public sealed class ConfigLoaderFuzzTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A node file using every section, with a comment holding a two-byte character to cut through.</summary>
    internal const string Base = """
        # Node n1 of the fuzz cluster (é)
        continuity {
          node {
            name = n1
            state-dir = "/tmp/continuity-fuzz/n1"
            join-timeout = 60s
            log-format = text
          }
          management { bind = "127.0.0.1:8558", token-file = "/tmp/continuity-fuzz/token", metrics-require-token = on }
          supervision { check-interval = 5s, min-free-disk-percent = 5, on-disk-full = switch, max-standby-lag = 10s }
          persistence { backend = sqlite, retry-interval = 10s }
          app-defaults { checkpoint-interval = 2s, recovery = replay }
          apps.kv {
            command = ["/bin/sh", "-c", "exec sleep 1000"]
            vip = "198.18.0.50/24"
            ports = ["tcp/7000", "udp/7001"]
            checkpoint-interval = 2s
            state-dirs = ["/var/lib/kv"]
            max-restarts = 3
            restart-backoff = 1s
            restart-window = 10m
          }
        }
        akka.remote.dot-netty.tcp.port = 4054
        akka.cluster.roles = [data]
        """;

    private enum Outcome { Loaded, Refused }

    /// <summary>The whole chain; a hang fails the case instead of stalling the run.</summary>
    private (Outcome Outcome, ConfigurationException? Error) Run(string path, string label)
    {
        var task = Task.Run(() =>
        {
            try
            {
                var loaded = ContinuityConfigLoader.Load(path);
                NodeSettings.From(loaded);
                // Not this machine's interfaces: the outcome must not depend on where the test runs.
                var apps = AppSettingsParser.Parse(loaded, localSubnet: _ => null);
                AppSettingsParser.ParsePlacement(loaded, apps);
                AppSettingsParser.ParseResourceRules(loaded);
                PersistenceSettings.Validate(loaded);
                return (Outcome.Loaded, (ConfigurationException?)null);
            }
            catch (ConfigurationException e)
            {
                return (Outcome.Refused, e);
            }
        });
        // WhenAny rather than Wait: Wait would throw the task's exception before it could be reported with its case.
        Assert.True(Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(20))).Result == task, $"{label}: loading hung\n---\n{Preview(path)}");
        if (task.Exception is { } ex)
            Assert.Fail($"{label}: {ex.InnerException!.GetType().FullName}: {ex.InnerException.Message}\n---\n{Preview(path)}");
        var result = task.Result;
        if (result.Item2 is { } error)
        {
            Assert.False(string.IsNullOrWhiteSpace(error.Message), $"{label}: an empty message");
            Assert.True(error.Message.Contains(Path.GetFileName(path), StringComparison.Ordinal),
                $"{label}: the message does not name the file: {error.Message}");
        }
        return result;
    }

    private static string Preview(string path)
    {
        var text = File.ReadAllText(path);
        return text.Length <= 2000 ? text : text[..2000] + $"... ({text.Length} characters)";
    }

    private string WriteBytes(byte[] bytes)
    {
        var path = Path.Combine(_dir.Path, "node.hocon");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string WriteText(string text) => WriteBytes(Encoding.UTF8.GetBytes(text));

    [Fact]
    public void Every_truncation_of_a_node_file_is_loaded_or_refused_with_the_file_named()
    {
        var bytes = Encoding.UTF8.GetBytes(Base);
        var refused = 0;
        // Every byte offset, so the cut also falls inside the two-byte character, a string, a key and an array.
        for (var length = 0; length <= bytes.Length; length++)
            if (Run(WriteBytes(bytes[..length]), $"truncated to {length} bytes").Outcome == Outcome.Refused) refused++;
        output.WriteLine($"{bytes.Length + 1} truncations, {refused} refused");
        Assert.True(refused > bytes.Length / 2, $"only {refused} refused: most cuts leave an unclosed brace and must be refused");
    }

    [Fact]
    public void Flipped_bits_and_bytes_are_loaded_or_refused_with_the_file_named()
    {
        var original = Encoding.UTF8.GetBytes(Base);
        var random = new Random(20261130);
        var refused = 0;
        const int cases = 1200;
        for (var i = 0; i < cases; i++)
        {
            var bytes = (byte[])original.Clone();
            for (var k = 1 + random.Next(3); k > 0; k--)
            {
                var at = random.Next(bytes.Length);
                // A single bit (a letter becomes another, '{' becomes '['), or any byte at all (NUL, invalid UTF-8).
                if (random.Next(2) == 0) bytes[at] ^= (byte)(1 << random.Next(8));
                else bytes[at] = (byte)random.Next(256);
            }
            if (Run(WriteBytes(bytes), $"flip case {i}").Outcome == Outcome.Refused) refused++;
        }
        output.WriteLine($"{cases} flipped files, {refused} refused");
        Assert.InRange(refused, cases / 10, cases);
    }

    public static TheoryData<string> NestingForms => new() { "object", "array", "objects-in-arrays", "unclosed-object", "unclosed-array" };

    [Theory]
    [MemberData(nameof(NestingForms))]
    public void Nesting_at_any_depth_is_loaded_or_refused_never_a_stack_overflow(string form)
    {
        foreach (var depth in new[] { 1, 2, 10, 63, 64, 65, 100, 1_000, 10_000, 200_000 })
        {
            var value = form switch
            {
                "object" => Repeat("{ a = ", depth) + "1" + new string('}', depth),
                "array" => new string('[', depth) + "1" + new string(']', depth),
                "objects-in-arrays" => Repeat("[{ a = ", depth) + "1" + Repeat("}]", depth),
                "unclosed-object" => Repeat("{ a = ", depth) + "1",
                _ => new string('[', depth) + "1",
            };
            // At the top level, as the value of a key Continuity reads, and inside an application block.
            foreach (var (where, text) in new[]
                     {
                         ("top", Base + "\nx = " + value + "\n"),
                         ("state-dir", Base + "\ncontinuity.node.state-dir = " + value + "\n"),
                         ("app", Base + "\ncontinuity.apps.kv.ports = " + value + "\n"),
                     })
            {
                var (outcome, _) = Run(WriteText(text), $"{form} nesting of depth {depth} at {where}");
                if (depth > 64 || form.StartsWith("unclosed", StringComparison.Ordinal))
                    Assert.True(outcome == Outcome.Refused, $"{form} nesting of depth {depth} at {where} was loaded");
            }
        }
    }

    [Fact]
    public void Long_dotted_keys_are_loaded_or_refused_with_the_file_named()
    {
        // A path expression nests as deep as braces do; past 64 segments (the whole path) it is refused.
        foreach (var depth in new[] { 2, 62, 64, 65, 500, 2_000 })
        {
            var key = string.Join('.', Enumerable.Repeat("a", depth));
            var (top, _) = Run(WriteText(Base + "\n" + key + " = 1\n"), $"dotted key of {depth} segments");
            var (under, _) = Run(WriteText(Base + "\ncontinuity.node." + key + " = 1\n"), $"dotted key of {depth} segments under continuity.node");
            Assert.Equal(depth > 64 ? Outcome.Refused : Outcome.Loaded, top);
            Assert.Equal(depth + 2 > 64 ? Outcome.Refused : Outcome.Loaded, under);
        }
    }

    /// <summary>
    /// A key of 20000 dotted segments took <c>continuity-node --check</c> 28 s and 1 GB: the checker built every prefix
    /// of the path (quadratic), then Akka's parser nested 20000 objects. Found by this fuzzing; a path deeper than
    /// 64 segments is now refused by the syntax checker, before either.
    /// </summary>
    [Fact]
    public void A_key_thousands_of_segments_deep_is_refused_at_once_with_its_line()
    {
        var key = string.Join('.', Enumerable.Repeat("a", 20_000));
        var path = WriteText(Base + "\n" + key + " = 1\n");
        var line = Base.Split('\n').Length + 1;

        var e = Assert.Throws<ConfigurationException>(() => ContinuityConfigLoader.Load(path));

        Assert.StartsWith($"{path}:{line}:1: key 'a.a.a.a.a.a.…' is 20000 segments deep, more than the limit of 64", e.Message);
        Assert.Contains("write the setting's real path", e.Message);
        Assert.True(e.Message.Length < 600, $"the message repeats the key: {e.Message.Length} characters");
    }

    [Fact]
    public void The_depth_limit_counts_the_keys_of_the_enclosing_blocks_too()
    {
        // 30 + 30 + 4 = 64 segments: the deepest path allowed.
        var a = string.Join('.', Enumerable.Repeat("a", 30));
        var loaded = ContinuityConfigLoader.LoadFromString($"{a} {{\n  {a} {{ b.c.d.e = 1 }}\n}}\n", "node.hocon");
        Assert.Equal("1", loaded.Config.GetString($"{a}.{a}.b.c.d.e"));

        var e = Assert.Throws<ConfigurationException>(() =>
            ContinuityConfigLoader.LoadFromString($"{a} {{\n  {a} {{ b.c.d.e.f = 1 }}\n}}\n", "node.hocon"));
        Assert.StartsWith("node.hocon:2:", e.Message);
        Assert.Contains("is 65 segments deep (inside '", e.Message);
        Assert.Contains("60 deep), more than the limit of 64", e.Message);
    }

    [Fact]
    public void An_included_file_continues_the_depth_of_the_block_it_is_included_in()
    {
        var inner = _dir.Path + "/deep.conf";
        File.WriteAllText(inner, string.Join('.', Enumerable.Repeat("b", 40)) + " = 1\n");
        var main = WriteText(string.Join('.', Enumerable.Repeat("a", 30)) + " {\n  include \"deep.conf\"\n}\n");

        var e = Assert.Throws<ConfigurationException>(() => ContinuityConfigLoader.Load(main));

        Assert.StartsWith(inner + ":1:1: key 'b.b.b.b.b.b.…' is 70 segments deep (inside '", e.Message);
    }

    [Fact]
    public void A_quoted_key_holding_many_dots_is_one_segment_and_loads()
    {
        var name = string.Join('.', Enumerable.Repeat("a", 200));
        var loaded = ContinuityConfigLoader.LoadFromString($"x.\"{name}\" = 1\ny {{ \"{name}\" {{ z = 2 }} }}\n", "node.hocon");

        Assert.Equal("1", loaded.Config.GetString($"x.\"{name}\""));
        Assert.Equal("2", loaded.Config.GetString($"y.\"{name}\".z"));
    }

    [Fact]
    public void A_substitution_thousands_of_segments_deep_is_refused_with_its_line()
    {
        var key = string.Join('.', Enumerable.Repeat("a", 20_000));

        var e = Assert.Throws<ConfigurationException>(() =>
            ContinuityConfigLoader.LoadFromString("x = 1\ny = ${" + key + "}\n", "node.hocon"));

        Assert.StartsWith("node.hocon:2:5: substitution '${a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a...}' names a path 20000 segments deep, " +
                          "more than the limit of 64", e.Message);
    }

    /// <summary>The shipped files load, and their deepest key leaves the limit a wide margin.</summary>
    [Fact]
    public void Every_shipped_configuration_loads_and_its_deepest_key_is_far_below_the_depth_limit()
    {
        var hocon = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(NodeProgram()!))!, "hocon");
        var files = Directory.GetFiles(hocon, "*.hocon").Concat(Directory.GetFiles(Path.Combine(hocon, "examples")))
            .Append(Path.Combine(hocon, "reference.conf")).ToList();
        Assert.True(files.Count >= 5, string.Join(", ", files));
        var deepest = 0;
        foreach (var file in files)
        {
            var loaded = ContinuityConfigLoader.Load(file);
            foreach (var key in loaded.Positions.Keys) deepest = Math.Max(deepest, Segments(key));
        }
        output.WriteLine($"deepest key in {files.Count} files: {deepest} segments");
        Assert.InRange(deepest, 4, 64 / 4);
    }

    /// <summary>Segments of a rendered key path: dots inside a quoted segment do not count.</summary>
    private static int Segments(string key)
    {
        var (count, quoted) = (1, false);
        for (var i = 0; i < key.Length; i++)
        {
            if (key[i] == '\\' && quoted) i++;
            else if (key[i] == '"') quoted = !quoted;
            else if (key[i] == '.' && !quoted) count++;
        }
        return count;
    }

    /// <summary>Every leaf key of the reference configuration under continuity, and every key of an application block.</summary>
    internal static IReadOnlyList<string> ContinuityKeys()
    {
        var keys = new List<string>();
        void Walk(string prefix, HoconValue value)
        {
            if (value.IsObject())
                foreach (var (name, child) in value.GetObject().Items)
                    Walk(prefix + "." + Quote(name), child);
            else keys.Add(prefix);
        }
        Walk("continuity", ContinuityConfigLoader.ReferenceConfig.GetValue("continuity"));
        keys.AddRange(ContinuityConfigLoader.AppKeys.Select(k => "continuity.apps.kv." + k));
        return keys.Distinct().Order(StringComparer.Ordinal).ToList();
    }

    private static string Quote(string segment) =>
        segment.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_') ? segment : "\"" + segment.Replace("\"", "\\\"") + "\"";

    private static readonly string[] HugeValues =
    [
        "\"" + new string('n', 1 << 20) + "\"", new string('9', 400), "1e400", "-1e400", "9223372036854775808", "-9223372036854775809",
        "4294967296", "-1", "-0", "NaN", "Infinity", "0.000000000000000000000000000001",
    ];

    private static readonly string[] BadDurations =
    [
        "-1s", "1 fortnight", "s", "1.5.3s", "99999999999999999999d", "1e400ms", "10 s s", "ms10", "0x10s", "\"\"", "1_000s", "1s2",
        "\"\\u0000s\"", "10000000000000000000000000000000000000000ns", "1.7976931348623157e308 d",
    ];

    private static readonly string[] WrongTypes =
    [
        "{ a = 1 }", "{}", "[]", "[1, [2]]", "[{ a = 1 }]", "true", "42", "\"x\"", "${?NO_SUCH_VARIABLE_FUZZ}",
        // null is left out: on a typed key it is a known crash (A_null_or_nested_value_on_a_typed_key_is_refused_...).
    ];

    public static TheoryData<string> ValueFamilies => new() { "huge", "bad-duration", "wrong-type" };

    [Theory]
    [MemberData(nameof(ValueFamilies))]
    public void A_bad_value_on_any_continuity_key_is_loaded_or_refused_naming_the_key(string family)
    {
        var values = family switch { "huge" => HugeValues, "bad-duration" => BadDurations, _ => WrongTypes };
        var keys = ContinuityKeys();
        Assert.True(keys.Count > 40, $"only {keys.Count} keys found in the reference configuration");
        var accepted = new List<string>();
        var cases = 0;
        foreach (var key in keys)
        foreach (var value in values)
        {
            cases++;
            var (outcome, error) = Run(WriteText(Base + "\n" + key + " = " + value + "\n"), $"{key} = {Shorten(value)}");
            if (outcome == Outcome.Loaded) { accepted.Add($"{key} = {Shorten(value)}"); continue; }
            // The problem is the key just set (or a key the bad value made unreadable, named by file and line).
            Assert.True(error!.Message.Contains(key, StringComparison.Ordinal) || error.Position is not null,
                $"{key} = {Shorten(value)} was refused without naming the key or a line: {error.Message}");
        }
        // Not failures: a key whose value any string satisfies, or that only a later part of the node reads. The
        // list is the material for whoever tightens the checks.
        output.WriteLine($"{cases} cases, {accepted.Count} accepted:\n{string.Join("\n", accepted)}");
        Assert.True(accepted.Count < cases, "every bad value was accepted: the loader is not being exercised");
    }

    private static string Shorten(string value) => value.Length <= 60 ? value : value[..30] + $"...({value.Length} characters)";

    [Fact]
    public void Unknown_keys_anywhere_under_continuity_are_warned_by_name_and_never_refused()
    {
        var random = new Random(77);
        const string letters = "abcdefghijklmnopqrstuvwxyz-";
        var sections = new[] { "continuity", "continuity.node", "continuity.management", "continuity.supervision", "continuity.persistence",
                               "continuity.apps.kv", "continuity.app-defaults", "continuity.placement" };
        for (var i = 0; i < 300; i++)
        {
            var name = "zz" + new string(Enumerable.Range(0, 1 + random.Next(12)).Select(_ => letters[random.Next(letters.Length)]).ToArray()).Trim('-') + "q";
            var key = sections[random.Next(sections.Length)] + "." + name;
            var path = WriteText(Base + "\n" + key + " = " + WrongTypes[random.Next(WrongTypes.Length - 1)] + "\n");
            var loaded = ContinuityConfigLoader.Load(path);
            Assert.Contains(loaded.Warnings, w => w.Key == key || key.StartsWith(w.Key + ".", StringComparison.Ordinal));
            Assert.Equal(Outcome.Loaded, Run(path, $"unknown key {key}").Outcome);
        }
    }

    // ------------------------------------------------------------------ the real command

    private static string? NodeProgram()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "hocon", "reference.conf")))
                return Path.Combine(d.FullName, "bin", "continuity-node");
        return null;
    }

    private (int Exit, string Output) Check(string path)
    {
        var program = NodeProgram();
        Assert.True(program is not null && File.Exists(program), $"bin/continuity-node is not there ({program}): build it with deploy/build.sh");
        var psi = new ProcessStartInfo(program!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--config", path, "--check" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), $"continuity-node --check hung on\n{Preview(path)}");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void The_node_check_command_answers_malformed_files_with_exit_2_and_a_message_never_a_crash()
    {
        var bytes = Encoding.UTF8.GetBytes(Base);
        var random = new Random(5);
        var cases = new List<(string Label, byte[] Bytes)>();
        foreach (var cut in new[] { 1, 40, 100, 250, bytes.Length - 3 }) cases.Add(($"truncated to {cut} bytes", bytes[..cut]));
        for (var i = 0; i < 4; i++)
        {
            var b = (byte[])bytes.Clone();
            b[random.Next(b.Length)] = (byte)random.Next(256);
            b[random.Next(b.Length)] ^= 0x20;
            cases.Add(($"flipped bytes {i}", b));
        }
        foreach (var text in new[]
                 {
                     Base + "\nx = " + new string('[', 200_000) + "\n",
                     Base + "\nx = " + Repeat("{ a = ", 200_000) + "\n",
                     Base + "\n" + string.Join('.', Enumerable.Repeat("a", 2_000)) + " = 1\n",
                     Base + "\ncontinuity.node.name = \"" + new string('n', 4 << 20) + "\"\n",
                     Base + "\ncontinuity.node.join-timeout = 99999999999999999999d\n",
                     Base + "\ncontinuity.apps.kv.checkpoint-interval = 1 fortnight\n",
                     Base + "\ncontinuity.apps.kv.ports = { tcp = 7000 }\n",
                     Base + "\ncontinuity.supervision.min-free-disk-percent = 1e400\n",
                     Base + "\ncontinuity.nod { name = n1 }\n",
                 })
            cases.Add(($"text of {text.Length} characters ending {Shorten(text[Base.Length..].Trim())}", Encoding.UTF8.GetBytes(text)));

        foreach (var (label, content) in cases)
        {
            var path = WriteBytes(content);
            var (exit, text) = Check(path);
            Assert.DoesNotContain("Unhandled exception", text);
            Assert.DoesNotContain("Stack overflow", text);
            Assert.True(exit is 0 or 2, $"{label}: continuity-node --check exited {exit}:\n{Shorten(text)}");
            if (exit == 2)
                Assert.True(text.StartsWith("continuity-node: configuration error: " + path, StringComparison.Ordinal),
                    $"{label}: the refusal does not start with the file: {Shorten(text)}");
        }
    }

    /// <summary>
    /// A substitution cycle through a key Continuity reads: Akka.NET's HOCON resolves it by recursion without end, and
    /// the process died of a stack overflow (exit 134), which no catch can turn into a message. Found by this fuzzing;
    /// the loader now refuses a cycle before Akka sees the text.
    /// </summary>
    [Fact]
    public void A_substitution_cycle_is_refused_with_a_message_not_a_stack_overflow()
    {
        foreach (var text in new[]
                 {
                     Base + "\ncontinuity.node.name = ${continuity.node.name}\n",
                     Base + "\ncontinuity.node.name = ${a}\na = ${b}\nb = ${a}\n",
                 })
        {
            var path = WriteText(text);
            var (exit, output) = Check(path);
            Assert.True(exit == 2, $"continuity-node --check exited {exit}: {Shorten(output)}");
            Assert.Contains("configuration error: " + path, output);
        }
    }

    /// <summary>
    /// HOCON null on a key Continuity reads with a typed getter: ConfigValues.String returns null for it, and
    /// ConfigValues.Duration (TryParseDuration's text.Trim()), ConfigValues.Bool, NodeSettings.TryParseHostPort and the
    /// state-dir check (Path.IsPathFullyQualified) dereference it; a seed that is a list reaches HostSettings.WithScheme
    /// as null. The node and --check died with "Unhandled exception" (exit 134) instead of naming the key. Found by this
    /// fuzzing; null is now an invalid value that names its key.
    /// </summary>
    [Fact]
    public void A_null_or_nested_value_on_a_typed_key_is_refused_with_a_message_not_an_unhandled_exception()
    {
        foreach (var (key, value) in new[]
                 {
                     ("continuity.node.join-timeout", "null"), ("continuity.apps.kv.checkpoint-interval", "null"),
                     ("continuity.supervision.check-interval", "null"), ("continuity.management.enabled", "null"),
                     ("continuity.cluster-tls.enabled", "null"), ("continuity.management.bind", "null"),
                     ("continuity.node.state-dir", "null"), ("akka.cluster.seed-nodes", "[[1]]"),
                 })
        {
            var path = WriteText(Base + "\n" + key + " = " + value + "\n");
            var (exit, text) = Check(path);
            Assert.True(exit == 2, $"{key} = {value}: continuity-node --check exited {exit}: {Shorten(text)}");
            Assert.Contains(key, text);
        }
    }

    private static string Repeat(string s, int times) => new StringBuilder(s.Length * times).Insert(0, s, times).ToString();
}
