using System.Text;

namespace Continuity.Cmd;

/// <summary>Abstracts Console.ReadKey so the line editor can be driven by scripted keys in tests.</summary>
internal interface IKeySource
{
    ConsoleKeyInfo ReadKey();
}

internal sealed class SystemConsoleKeys : IKeySource
{
    public ConsoleKeyInfo ReadKey() => Console.ReadKey(intercept: true);
}

/// <summary>Command history persisted across sessions, like a shell's.</summary>
internal sealed class LineHistory
{
    private const int MaxEntries = 1000;
    private readonly List<string> _entries = new();
    private readonly string _file;

    public static string DefaultFile =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".continuity_history");

    public LineHistory(string file)
    {
        _file = file;
        try
        {
            if (File.Exists(file))
                _entries.AddRange(File.ReadAllLines(file).Where(l => l.Length > 0).TakeLast(MaxEntries));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A broken history file must never stop the operator from using the console.
        }
    }

    public IReadOnlyList<string> Entries => _entries;

    public void Add(string line)
    {
        if (string.IsNullOrWhiteSpace(line)) return;
        if (_entries.Count > 0 && _entries[^1] == line) return;
        _entries.Add(line);
        if (_entries.Count > MaxEntries) _entries.RemoveAt(0);
    }

    public void Save()
    {
        try
        {
            var dir = Path.GetDirectoryName(_file);
            if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
            File.WriteAllLines(_file, _entries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Same as loading: losing history is an inconvenience, not an error worth an exit code.
        }
    }
}

/// <summary>
/// Minimal readline: left/right, home/end, backspace/delete, up/down through history.
/// Redraws with carriage return and backspaces only, so it works on any ANSI-less terminal.
/// </summary>
internal sealed class LineEditor(IKeySource keys, TextWriter output, LineHistory history)
{
    /// <summary>Returns null on end of input (Ctrl-D on an empty line).</summary>
    public string? ReadLine(string prompt)
    {
        output.Write(prompt);
        output.Flush();
        var buffer = new StringBuilder();
        var cursor = 0;
        var historyIndex = history.Entries.Count;
        var pending = ""; // what the operator was typing before browsing history
        var lastDrawnLength = 0;

        void Redraw()
        {
            var text = buffer.ToString();
            output.Write('\r');
            output.Write(prompt);
            output.Write(text);
            // Blank out leftovers of a longer previous line, then walk back to the cursor.
            var leftover = Math.Max(0, lastDrawnLength - text.Length);
            output.Write(new string(' ', leftover));
            output.Write(new string('\b', leftover + text.Length - cursor));
            lastDrawnLength = text.Length;
            output.Flush();
        }

        void Replace(string text)
        {
            buffer.Clear().Append(text);
            cursor = buffer.Length;
            Redraw();
        }

        while (true)
        {
            var key = keys.ReadKey();
            switch (key.Key)
            {
                case ConsoleKey.Enter:
                    output.WriteLine();
                    return buffer.ToString();
                case ConsoleKey.Backspace:
                    if (cursor > 0)
                    {
                        buffer.Remove(--cursor, 1);
                        Redraw();
                    }
                    break;
                case ConsoleKey.Delete:
                    if (cursor < buffer.Length)
                    {
                        buffer.Remove(cursor, 1);
                        Redraw();
                    }
                    break;
                case ConsoleKey.LeftArrow:
                    if (cursor > 0)
                    {
                        cursor--;
                        output.Write('\b');
                        output.Flush();
                    }
                    break;
                case ConsoleKey.RightArrow:
                    if (cursor < buffer.Length)
                    {
                        output.Write(buffer[cursor]);
                        cursor++;
                        output.Flush();
                    }
                    break;
                case ConsoleKey.Home:
                    cursor = 0;
                    Redraw();
                    break;
                case ConsoleKey.End:
                    cursor = buffer.Length;
                    Redraw();
                    break;
                case ConsoleKey.UpArrow:
                    if (historyIndex > 0)
                    {
                        if (historyIndex == history.Entries.Count) pending = buffer.ToString();
                        historyIndex--;
                        Replace(history.Entries[historyIndex]);
                    }
                    break;
                case ConsoleKey.DownArrow:
                    if (historyIndex < history.Entries.Count)
                    {
                        historyIndex++;
                        Replace(historyIndex == history.Entries.Count ? pending : history.Entries[historyIndex]);
                    }
                    break;
                case ConsoleKey.D when key.Modifiers.HasFlag(ConsoleModifiers.Control):
                    if (buffer.Length == 0)
                    {
                        output.WriteLine();
                        return null;
                    }
                    break;
                default:
                    if (key.KeyChar >= ' ' && !char.IsControl(key.KeyChar))
                    {
                        buffer.Insert(cursor++, key.KeyChar);
                        if (cursor == buffer.Length)
                        {
                            output.Write(key.KeyChar);
                            lastDrawnLength = buffer.Length;
                            output.Flush();
                        }
                        else
                        {
                            Redraw();
                        }
                    }
                    break;
            }
        }
    }
}
