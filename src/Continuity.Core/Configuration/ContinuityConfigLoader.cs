using System.Reflection;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Continuity.Core.Configuration;

/// <summary>A node's configuration: the user's file (includes inlined) over the reference.</summary>
/// <param name="Config">The merged Akka configuration (user file with the reference as fallback).</param>
/// <param name="Warnings">Suspicious but non-fatal findings (unknown keys), to be logged at start-up.</param>
/// <param name="Positions">Where each key was set; user keys win over reference keys.</param>
/// <param name="SourceName">The file the user passed (or the name given to <see cref="ContinuityConfigLoader.LoadFromString"/>).</param>
public sealed record LoadedConfig(
    Config Config,
    IReadOnlyList<ConfigurationWarning> Warnings,
    IReadOnlyDictionary<string, ConfigPosition> Positions,
    string SourceName)
{
    /// <summary>Where <paramref name="key"/> (or, failing that, its closest parent) was set.</summary>
    public ConfigPosition? PositionOf(string key)
    {
        for (var k = key; k.Length > 0; k = k.Contains('.') ? k[..k.LastIndexOf('.')] : "")
            if (Positions.TryGetValue(k, out var p)) return p;
        return null;
    }
}

/// <summary>Loads a node's configuration with errors a person can act on.</summary>
public static class ContinuityConfigLoader
{
    public const string ReferenceResourceName = "continuity.reference.conf";

    /// <summary>The keys an application block may hold. "placement" is reserved for a later version.</summary>
    public static readonly IReadOnlyList<string> AppKeys =
        ["command", "vip", "ports", "checkpoint-interval", "state-dirs", "recovery", "max-restarts", "restart-backoff", "restart-window", "placement"];

    private static readonly Lazy<(string Text, HoconCheckResult Check, Config Config)> Reference = new(LoadReference);

    /// <summary>Loads <paramref name="path"/> and everything it includes.</summary>
    /// <exception cref="ConfigurationException">The file is missing, malformed, or refers to keys that are not set.</exception>
    public static LoadedConfig Load(string path) => Build(HoconSyntaxChecker.CheckFile(path), path);

    /// <summary>Loads configuration text; includes resolve against <paramref name="baseDirectory"/> (default: the current directory).</summary>
    public static LoadedConfig LoadFromString(string text, string sourceName = "<string>", string? baseDirectory = null) =>
        Build(HoconSyntaxChecker.Check(text, sourceName, baseDirectory), sourceName);

    /// <summary>The reference configuration alone (every default).</summary>
    public static Config ReferenceConfig => Reference.Value.Config;

    /// <summary>
    /// Akka.NET's parser follows a substitution that leads back to its own key until the stack overflows, which kills the
    /// process (no exception to catch). A key depends on another when its value substitutes it, a part of it, or an
    /// object holding it; a loop in that relation is refused before Akka sees the text. Self-references count too:
    /// HOCON reads <c>a = ${a}</c> as "the previous value of a", but Akka.NET does not.
    /// </summary>
    private static void RefuseSubstitutionCycles(HoconCheckResult user)
    {
        static bool Related(string a, string b) => a == b || a.StartsWith(b + ".", StringComparison.Ordinal) || b.StartsWith(a + ".", StringComparison.Ordinal);
        var edges = user.Substitutions
            .GroupBy(s => s.Key)
            .ToDictionary(g => g.Key, g => g.SelectMany(s => user.Substitutions.Select(t => t.Key).Distinct().Where(k => Related(k, s.Path))
                .Select(k => (Next: k, Via: s))).ToList());
        var done = new HashSet<string>();
        foreach (var start in edges.Keys)
        {
            var path = new List<HoconSubstitution>();
            if (FindLoop(start, start, edges, path, new HashSet<string>(), done) is { } loop)
            {
                var first = loop[0];
                var chain = string.Join(" -> ", loop.Select(x => x.Key).Append(first.Key));
                throw new ConfigurationException(
                    $"substitution ${{{first.Path}}} in the value of '{first.Key}' leads back to '{first.Key}' ({chain}): a substitution " +
                    "cycle cannot be resolved; write the value itself instead of the substitution", first.Position, first.Key);
            }
            done.Add(start);
        }
    }

    private static List<HoconSubstitution>? FindLoop(string start, string at, Dictionary<string, List<(string Next, HoconSubstitution Via)>> edges,
        List<HoconSubstitution> path, HashSet<string> seen, HashSet<string> done)
    {
        if (!edges.TryGetValue(at, out var next) || !seen.Add(at)) return null;
        foreach (var (to, via) in next)
        {
            path.Add(via);
            if (to == start) return path;
            if (!done.Contains(to) && FindLoop(start, to, edges, path, seen, done) is { } loop) return loop;
            path.RemoveAt(path.Count - 1);
        }
        return null;
    }

    private static LoadedConfig Build(HoconCheckResult user, string sourceName)
    {
        var reference = Reference.Value;
        // Akka.NET 1.5's parser accepts '+=' and then drops the value (the list stays as it was),
        // which is the silent failure this loader exists to prevent.
        foreach (var (key, pos) in user.Appends)
            throw new ConfigurationException(
                $"'+=' on key '{key}' is not applied by Akka.NET's parser; write the whole value instead ({key} = [...])", pos, key);
        var needsReference = false;
        var optionalMisses = new List<ConfigurationWarning>();
        foreach (var s in user.Substitutions)
        {
            // Akka.NET does not read environment variables, so a substitution can only name a key.
            if (user.Keys.ContainsKey(s.Path)) continue;
            if (reference.Check.Keys.ContainsKey(s.Path)) { needsReference = true; continue; }
            if (s.Optional)
            {
                optionalMisses.Add(new ConfigurationWarning(s.Key, s.Position,
                    $"${{?{s.Path}}} in the value of '{s.Key}' names no key, so '{s.Key}' is left unset " +
                    "(Akka.NET does not read environment variables)"));
                continue;
            }
            throw new ConfigurationException(
                $"substitution ${{{s.Path}}} in the value of '{s.Key}' refers to a key that is set nowhere; " +
                $"set '{s.Path}', or write ${{?{s.Path}}} if it is optional", s.Position, s.Key);
        }

        RefuseSubstitutionCycles(user);

        Config config;
        try
        {
            // Akka resolves substitutions while parsing, so one that points into the reference
            // only resolves if the reference text is parsed first, in the same document.
            config = needsReference
                ? ConfigurationFactory.ParseString(reference.Text + "\n" + user.Text)
                : ConfigurationFactory.ParseString(user.Text).WithFallback(reference.Config);
        }
        catch (Exception e) when (e is not ConfigurationException)
        {
            // Akka names a character offset in the text it parsed ("Unknown token at position N"): turn it into a line.
            var offset = System.Text.RegularExpressions.Regex.Match(e.Message, @"position (\d+)");
            if (offset.Success && int.TryParse(offset.Groups[1].Value, out var at))
            {
                if (needsReference) at -= reference.Text.Length + 1;
                if (at >= 0 && at <= user.Text.Length)
                {
                    var line = 1 + user.Text.AsSpan(0, at).Count('\n');
                    var column = at - (user.Text.LastIndexOf('\n', Math.Max(0, at - 1)) + 1) + 1;
                    throw new ConfigurationException(
                        $"Akka cannot read this construct ({e.Message.Split('\n')[0].Trim()}); the syntax checker accepted it: " +
                        "rewrite the line in plain HOCON (quote the value), and please report it with the file",
                        new ConfigPosition(sourceName, line, column), inner: e);
                }
            }
            throw new ConfigurationException(
                $"{sourceName}: Akka could not read the configuration: {e.Message}; the syntax checker accepted it, so this is a construct " +
                "Akka does not support (please report it with the file)", inner: e);
        }

        var positions = new Dictionary<string, ConfigPosition>(reference.Check.Keys, StringComparer.Ordinal);
        foreach (var (k, p) in user.Keys) positions[k] = p;

        var warnings = UnknownKeys(user.Keys, reference.Check.Keys);
        warnings.AddRange(optionalMisses);
        return new LoadedConfig(config, warnings, positions, sourceName);
    }

    private static List<ConfigurationWarning> UnknownKeys(
        IReadOnlyDictionary<string, ConfigPosition> user, IReadOnlyDictionary<string, ConfigPosition> reference)
    {
        var warnings = new List<ConfigurationWarning>();
        foreach (var (key, pos) in user.OrderBy(k => k.Value.File, StringComparer.Ordinal).ThenBy(k => k.Value.Line).ThenBy(k => k.Value.Column))
        {
            if (!key.StartsWith("continuity.", StringComparison.Ordinal)) continue;
            var segs = key.Split('.');
            if (segs.Length >= 3 && segs[1] == "apps")
            {
                // Application names are the user's own; only the keys inside a block are known.
                if (segs.Length != 4 || AppKeys.Contains(segs[3])) continue;
                warnings.Add(Unknown(key, pos, segs[3], AppKeys, string.Join('.', segs[..3])));
                continue;
            }
            if (reference.ContainsKey(key)) continue;
            var parent = string.Join('.', segs[..^1]);
            // Only the outermost unknown key is reported: its children are unknown by consequence.
            if (!reference.ContainsKey(parent)) continue;
            var siblings = reference.Keys
                .Where(k => k.StartsWith(parent + ".", StringComparison.Ordinal) && k.IndexOf('.', parent.Length + 1) < 0)
                .Select(k => k[(parent.Length + 1)..])
                .ToList();
            warnings.Add(Unknown(key, pos, segs[^1], siblings, parent));
        }
        return warnings;
    }

    private static ConfigurationWarning Unknown(string key, ConfigPosition pos, string name, IReadOnlyList<string> known, string parent)
    {
        var best = known.Select(k => (Key: k, Distance: Levenshtein(name, k)))
            .OrderBy(x => x.Distance).ThenBy(x => x.Key, StringComparer.Ordinal).FirstOrDefault();
        var suggestion = best.Key != null && best.Distance <= Math.Max(2, name.Length / 3)
            ? $"; did you mean '{parent}.{best.Key}'?"
            : $"; known keys here: {string.Join(", ", known)}";
        return new ConfigurationWarning(key, pos, $"unknown key '{key}' is ignored{suggestion}");
    }

    internal static int Levenshtein(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) prev[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (var j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    private static (string, HoconCheckResult, Config) LoadReference()
    {
        using var stream = typeof(ContinuityConfigLoader).Assembly.GetManifestResourceStream(ReferenceResourceName)
            ?? throw new InvalidOperationException($"embedded resource {ReferenceResourceName} missing from {typeof(ContinuityConfigLoader).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        var text = reader.ReadToEnd();
        var check = HoconSyntaxChecker.Check(text, ReferenceResourceName);
        return (text, check, ConfigurationFactory.ParseString(text));
    }
}

/// <summary>Typed reads of single values, each failure naming the key, where it was set, the value and what was expected.</summary>
public static class ConfigValues
{
    public const string StableAfterKey = "akka.cluster.split-brain-resolver.stable-after";

    /// <summary>The split brain resolver's stable-after (Akka's 5 s where unset): the earliest the majority downs a
    /// member it stopped hearing from, which other durations must stay below.</summary>
    public static TimeSpan StableAfter(LoadedConfig c) =>
        c.Config.HasPath(StableAfterKey) ? Duration(c, StableAfterKey, TimeSpan.Zero, "5s") : TimeSpan.FromSeconds(5);

    public static ConfigurationException Bad(LoadedConfig c, string key, string problem) =>
        new($"'{key}' {problem}", c.PositionOf(key), key);

    public static HoconValue? Raw(LoadedConfig c, string key)
    {
        try { return c.Config.HasPath(key) ? c.Config.GetValue(key) : null; }
        catch (Exception e)
        {
            // Akka's message may quote the value: not for a key that may hold a password (nor the inner exception then).
            if (IsSecret(key)) throw new ConfigurationException($"'{key}' cannot be read (its value is not shown: it may hold a password): expected a string", c.PositionOf(key), key);
            throw new ConfigurationException($"'{key}' cannot be read: {e.Message}", c.PositionOf(key), key, e);
        }
    }

    /// <summary>Keys whose value may hold a password: an error about them never repeats the value.</summary>
    public static bool IsSecret(string key) =>
        key.EndsWith("connection-string", StringComparison.Ordinal) || key.Contains("password", StringComparison.OrdinalIgnoreCase);

    /// <summary><see cref="Show(HoconValue)"/>, or a placeholder for a key that may hold a password.</summary>
    public static string Show(string key, HoconValue v) => IsSecret(key) ? "(value not shown: it may hold a password)" : Show(v);

    public static string Show(HoconValue v)
    {
        try
        {
            if (v.IsString()) return "\"" + v.GetString() + "\"";
            if (v.IsArray()) return "[" + string.Join(", ", v.GetArray().Select(Show)) + "]";
            if (v.Values.Any(e => e is HoconArray)) return "an array";
            return "an object";
        }
        catch { return v.ToString() ?? "?"; }
    }

    /// <summary>What a value is, for an error saying what was found instead of what was expected.</summary>
    public static string KindOf(HoconValue v)
    {
        if (v.IsString()) return "a string";
        var parts = v.Values.Where(e => !(e is HoconLiteral l && string.IsNullOrWhiteSpace(l.Value))).ToList();
        if (parts.Count > 0 && parts.All(e => e is HoconArray)) return "an array";
        if (parts.Count > 0 && parts.All(e => e is HoconObject)) return "an object";
        return "a mix of text, arrays and objects";
    }

    /// <summary>
    /// A key's value as one string (numbers, booleans and durations are strings to HOCON). An array or object is
    /// refused naming the key and what was found: read every single-valued key through here, never with Akka's
    /// <c>Config.GetString</c>, which returns null for them.
    /// </summary>
    /// <param name="required">When false, an unset key or null reads as "" (the caller's "not set").</param>
    /// <param name="expected">What the value should be, for the error ("on or off", "a duration such as 5s").</param>
    public static string String(LoadedConfig c, string key, bool required = true, string expected = "a string")
    {
        var v = Raw(c, key);
        // An empty object ("key = {}") is empty to Akka, but it is not a missing value.
        if (v is null || (v.IsEmpty && !v.Values.Any(e => e is HoconObject or HoconArray)))
        {
            if (required) throw Bad(c, key, $"is missing: expected {expected}");
            return "";
        }
        // An array or object where one value is expected: Akka's own getter returns null for it, and a caller
        // that took null for "unset" ignored the setting without a word (tls.certificate = [1, [2]] served plain HTTP).
        if (!v.IsString())
        {
            var (kind, shown) = (KindOf(v), Show(key, v));
            throw Bad(c, key, $"{(shown == kind ? "" : $"= {shown} ")}is {kind} where {expected} is expected: " +
                              "write one value, in double quotes if it contains spaces or special characters");
        }
        // 'key = null' parses as a string value whose text is null.
        if (v.GetString() is not { } text)
        {
            if (required) throw Bad(c, key, "= null is invalid: expected a value; remove the line to keep the default");
            return "";
        }
        return text;
    }

    public static IReadOnlyList<string> StringList(LoadedConfig c, string key, string expected)
    {
        var v = Raw(c, key);
        if (v is null) throw Bad(c, key, $"is missing: expected {expected}");
        // Akka keeps the blank between an array and a closing '}' as a whitespace literal
        // concatenated to the array ("p = [] }"), so the value is an array plus blanks.
        var parts = v.Values.Where(e => !(e is HoconLiteral l && string.IsNullOrWhiteSpace(l.Value))).ToList();
        if (parts.Count == 0 || !parts.All(e => e is HoconArray))
            throw Bad(c, key, $"= {Show(key, v)} is invalid: expected {expected}");
        var list = new List<string>();
        foreach (var e in parts.SelectMany(a => ((HoconArray)a).GetArray()))
        {
            if (!e.IsString()) throw Bad(c, key, $"= {Show(key, v)} is invalid: element {Show(key, e)} is not a string; expected {expected}");
            list.Add(e.GetString());
        }
        return list;
    }

    public static bool Bool(LoadedConfig c, string key)
    {
        var s = String(c, key, expected: "on or off");
        return s.ToLowerInvariant() switch
        {
            "on" or "true" or "yes" => true,
            "off" or "false" or "no" => false,
            _ => throw Bad(c, key, $"= \"{s}\" is invalid: expected on or off"),
        };
    }

    public static TimeSpan Duration(LoadedConfig c, string key, TimeSpan min, string example)
    {
        var s = String(c, key, expected: $"a duration such as {example}");
        if (!TryParseDuration(s, out var d))
            throw Bad(c, key, $"= \"{s}\" is invalid: expected a duration such as {example} (units: ms, s, m, h, d)");
        if (d < min)
            throw Bad(c, key, $"= \"{s}\" is invalid: expected a duration of at least {FormatDuration(min)}");
        return d;
    }

    public static string FormatDuration(TimeSpan t) =>
        t.TotalMilliseconds < 1000 ? $"{t.TotalMilliseconds}ms" : $"{t.TotalSeconds}s";

    // HOCON duration syntax: a number (milliseconds when bare) and an optional unit.
    internal static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        var s = text.Trim();
        var i = 0;
        while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '.')) i++;
        if (i == 0 || !double.TryParse(s[..i], System.Globalization.NumberStyles.AllowDecimalPoint,
                System.Globalization.CultureInfo.InvariantCulture, out var n)) return false;
        double? ms = s[i..].Trim() switch
        {
            "" or "ms" or "millis" or "milliseconds" or "millisecond" => n,
            "us" or "micros" or "microseconds" or "microsecond" => n / 1000,
            "ns" or "nanos" or "nanoseconds" or "nanosecond" => n / 1_000_000,
            "s" or "second" or "seconds" => n * 1000,
            "m" or "minute" or "minutes" => n * 60_000,
            "h" or "hour" or "hours" => n * 3_600_000,
            "d" or "day" or "days" => n * 86_400_000,
            _ => null,
        };
        if (ms is not { } v || v > TimeSpan.MaxValue.TotalMilliseconds / 2) return false;
        value = TimeSpan.FromMilliseconds(v);
        return true;
    }
}
