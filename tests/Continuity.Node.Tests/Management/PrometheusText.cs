using System.Globalization;
using System.Text.RegularExpressions;

namespace Continuity.Node.Tests.Management;

/// <summary>A strict little reader of the Prometheus text exposition format, for the tests: every sample belongs to a
/// family declared by a TYPE line before it, label syntax is valid, every value is a number.</summary>
public static partial class PrometheusText
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    public sealed record Family(string Name, string Type, string Help, List<Sample> Samples);

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)( -?\d+)?$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""\G(?<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?<v>(?:[^"\\]|\\[\\"n])*)"(,|$)""")]
    private static partial Regex LabelPair();

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    public static Dictionary<string, Family> Parse(string text)
    {
        var families = new Dictionary<string, Family>();
        var helps = new Dictionary<string, string>();
        var lineNo = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNo++;
            if (line.Length == 0) continue;
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                var rest = line["# HELP ".Length..];
                var name = rest.Split(' ', 2)[0];
                if (!MetricName().IsMatch(name)) throw new FormatException($"line {lineNo}: bad metric name in HELP: {line}");
                helps[name] = rest.Length > name.Length ? rest[(name.Length + 1)..] : "";
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                if (parts.Length != 4 || !MetricName().IsMatch(parts[2]) || parts[3] is not ("counter" or "gauge" or "histogram" or "summary" or "untyped"))
                    throw new FormatException($"line {lineNo}: bad TYPE line: {line}");
                if (families.ContainsKey(parts[2])) throw new FormatException($"line {lineNo}: {parts[2]} declared twice");
                families[parts[2]] = new Family(parts[2], parts[3], helps.GetValueOrDefault(parts[2], ""), []);
                continue;
            }
            if (line.StartsWith('#')) continue;
            var m = SampleLine().Match(line);
            if (!m.Success) throw new FormatException($"line {lineNo}: not a sample: {line}");
            var sampleName = m.Groups["name"].Value;
            if (!families.TryGetValue(sampleName, out var family) && !HistogramSample(families, sampleName, out family))
                throw new FormatException($"line {lineNo}: sample {sampleName} has no TYPE declared before it");
            var labels = new Dictionary<string, string>();
            var labelText = m.Groups["labels"].Value;
            var at = 0;
            while (at < labelText.Length)
            {
                var p = LabelPair().Match(labelText, at);
                if (!p.Success || p.Index != at) throw new FormatException($"line {lineNo}: bad labels: {labelText}");
                if (!labels.TryAdd(p.Groups["k"].Value, p.Groups["v"].Value)) throw new FormatException($"line {lineNo}: label repeated");
                at = p.Index + p.Length;
            }
            var valueText = m.Groups["value"].Value;
            double value = valueText switch
            {
                "NaN" => double.NaN,
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                _ => double.TryParse(valueText, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
                    : throw new FormatException($"line {lineNo}: value is not a number: {valueText}"),
            };
            family.Samples.Add(new Sample(sampleName, labels, value));
        }
        return families;
    }

    // A histogram's samples are NAME_bucket (with le), NAME_sum and NAME_count.
    private static bool HistogramSample(Dictionary<string, Family> families, string sampleName, out Family family)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
            if (sampleName.EndsWith(suffix, StringComparison.Ordinal)
                && families.TryGetValue(sampleName[..^suffix.Length], out family!) && family.Type == "histogram")
                return true;
        family = null!;
        return false;
    }
}
