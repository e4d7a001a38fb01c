using System.Globalization;
using System.Text.Json.Nodes;

namespace Continuity.Cmd;

internal static class TextFormat
{
    /// <summary>Left-aligned columns separated by two spaces; the layout `kubectl get` made familiar.</summary>
    public static void Table(TextWriter w, IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        void Row(IReadOnlyList<string> cells) =>
            w.WriteLine(string.Join("  ", cells.Select((c, i) => i == cells.Count - 1 ? c : c.PadRight(widths[i]))).TrimEnd());
        Row(headers);
        foreach (var r in rows) Row(r);
    }

    public static string Str(JsonNode? node, string fallback = "-")
    {
        if (node is null) return fallback;
        if (node is JsonValue v)
        {
            if (v.TryGetValue<string>(out var s)) return s;
            if (v.TryGetValue<bool>(out var b)) return b ? "yes" : "no";
        }
        return node.ToJsonString();
    }

    public static long? Long(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<double>(out var d) ? (long)d : null;

    public static bool Bool(JsonNode? node) => node is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    public static JsonArray Array(JsonNode? node) => node as JsonArray ?? new JsonArray();

    /// <summary>Durations at the scale operators reason about: "850ms", "1.2s", "3m12s", "2h05m".</summary>
    public static string Duration(long? ms)
    {
        if (ms is null) return "-";
        var value = ms.Value;
        if (value < 1000) return $"{value}ms";
        if (value < 60_000) return (value / 1000.0).ToString("0.0", CultureInfo.InvariantCulture) + "s";
        if (value < 3_600_000) return $"{value / 60_000}m{value / 1000 % 60:00}s";
        return $"{value / 3_600_000}h{value / 60_000 % 60:00}m";
    }

    public static string Bytes(long? bytes)
    {
        if (bytes is null) return "-";
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes.Value;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : value.ToString("0.0", CultureInfo.InvariantCulture) + " " + units[unit];
    }

    /// <summary>"[#########-----------]" for <paramref name="done"/> of <paramref name="total"/>.</summary>
    public static string Bar(int done, int total, int width = 20)
    {
        var filled = total <= 0 ? width : (int)Math.Round(width * Math.Clamp(done, 0, total) / (double)total);
        return "[" + new string('#', filled) + new string('-', width - filled) + "]";
    }
}

/// <summary>
/// One line of progress: redrawn in place on a terminal, written as a new line per change otherwise, so a log file
/// or a pipe gets every step once and no carriage returns.
/// </summary>
internal sealed class ProgressLine(TextWriter w, bool terminal)
{
    private string? _last;
    private int _width;

    public void Show(string line)
    {
        if (line == _last) return;
        _last = line;
        if (terminal)
        {
            w.Write("\r" + line.PadRight(_width));
            _width = Math.Max(_width, line.Length);
            w.Flush();
        }
        else w.WriteLine(line);
    }

    /// <summary>Leaves the last line on screen and moves on.</summary>
    public void End()
    {
        if (terminal && _last is not null) w.WriteLine();
        _last = null;
        _width = 0;
    }
}
