using System.Text;

namespace Continuity.Core.Configuration;

/// <summary>A <c>${path}</c> or <c>${?path}</c> found in a value.</summary>
public sealed record HoconSubstitution(string Path, bool Optional, string Key, ConfigPosition Position);

/// <summary>What the checker learned about a well-formed file.</summary>
/// <param name="Keys">Every key path that was set (objects included), with where it was set last.</param>
/// <param name="Text">The text with every include inlined, ready for Akka's parser.</param>
/// <param name="Substitutions">Substitutions in the order they appear, so the loader can say which one cannot be resolved.</param>
/// <param name="Appends">Keys set with '+=', and where.</param>
public sealed record HoconCheckResult(
    IReadOnlyDictionary<string, ConfigPosition> Keys,
    string Text,
    IReadOnlyList<HoconSubstitution> Substitutions,
    IReadOnlyList<(string Key, ConfigPosition Position)> Appends);

/// <summary>
/// A strict checker for the HOCON subset Continuity supports. Akka's own parser accepts most
/// malformed text and silently drops what it does not understand, so a typo'd brace can turn a
/// whole application block into nothing; this checker runs first and fails with a position instead.
/// </summary>
/// <remarks>
/// Deliberately stricter than full HOCON: a value must start on the line of its key, ':' in an
/// unquoted value is refused (quote addresses), and object/array concatenation is not supported.
/// Every refusal says how to write the thing instead.
/// </remarks>
public static class HoconSyntaxChecker
{
    // Nesting deeper than this is never a real configuration; refusing it keeps a hostile or
    // corrupted file from exhausting the stack (a StackOverflowException cannot be caught).
    internal const int MaxDepth = 64;

    // A key path (a.b.c) nests as deep as braces do, and costs the checker and Akka's parser time and memory that grow
    // with the square of its length: 20000 segments took 28 s and 1 GB. The deepest key in the shipped files has 6
    // segments (Akka's own rarely more than 8), so a deeper path is a pasted or generated mistake, refused before
    // anything builds it.
    // The count is of the whole path: the enclosing objects' keys, array levels and the dotted segments of the key.
    internal const int MaxKeySegments = 64;

    /// <summary>Checks a file and everything it includes (relative to the including file).</summary>
    public static HoconCheckResult CheckFile(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new ConfigurationException($"configuration file '{path}' not found (looked for {full}); pass the path of an existing file");
        string text;
        try { text = File.ReadAllText(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"configuration file '{path}' cannot be read: {e.Message}", inner: e);
        }
        return Check(text, path, Path.GetDirectoryName(full), full);
    }

    /// <summary>Checks text; includes are resolved against <paramref name="baseDirectory"/> (default: the current directory).</summary>
    public static HoconCheckResult Check(string text, string sourceName, string? baseDirectory = null) =>
        Check(text, sourceName, baseDirectory ?? Directory.GetCurrentDirectory(), fullPath: null);

    private static HoconCheckResult Check(string text, string sourceName, string? baseDirectory, string? fullPath)
    {
        var keys = new Dictionary<string, ConfigPosition>(StringComparer.Ordinal);
        var subs = new List<HoconSubstitution>();
        var stack = new List<string>();
        if (fullPath != null) stack.Add(fullPath);
        var appends = new List<(string, ConfigPosition)>();
        var parser = new Parser(text ?? "", sourceName, baseDirectory ?? Directory.GetCurrentDirectory(), "", 0, 0, keys, subs, stack, appends);
        var expanded = parser.ParseDocument();
        return new HoconCheckResult(keys, expanded, subs, appends);
    }

    /// <summary>Renders a path segment the way a user would write it in a key.</summary>
    internal static string RenderSegment(string segment) =>
        segment.Length > 0 && segment.All(c => char.IsLetterOrDigit(c) || c is '-' or '_')
            ? segment
            : "\"" + segment.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    private enum Kind { LBrace, RBrace, LBracket, RBracket, Equals, Colon, PlusEquals, Comma, Newline, Quoted, Unquoted, Substitution, Eof }

    private readonly record struct Token(Kind Kind, string Text, int Start, int End, int Line, int Column, bool SpaceBefore)
    {
        public string Describe() => Kind switch
        {
            Kind.Eof => "end of file",
            Kind.Newline => "end of line",
            Kind.Quoted => $"\"{Shorten(Text)}\"",
            Kind.Substitution => "${" + Text + "}",
            _ => $"'{Shorten(Text)}'",
        };

        private static string Shorten(string s) => s.Length > 40 ? s[..37] + "..." : s;
    }

    private sealed class Parser
    {
        private readonly string _text;
        private readonly string _source;
        private readonly string _baseDir;
        private readonly string _prefix;
        private readonly Dictionary<string, ConfigPosition> _keys;
        private readonly List<HoconSubstitution> _subs;
        private readonly List<string> _includeStack;
        private readonly List<(string, ConfigPosition)> _appends;
        // Text edits that produce the expanded document: (start, end, replacement).
        private readonly List<(int Start, int End, string With)> _edits = new();

        private int _pos;
        private int _line = 1;
        private int _col = 1;
        private Token? _peeked;
        private string _context = "";
        private int _depth;
        // Segments in the path of the object being parsed (array levels count as one).
        private int _keyDepth;

        public Parser(string text, string source, string baseDir, string prefix, int keyDepth, int depth,
            Dictionary<string, ConfigPosition> keys, List<HoconSubstitution> subs, List<string> includeStack, List<(string, ConfigPosition)> appends)
        {
            // An included file continues the includer's nesting: a chain of includes cannot reset the limits.
            _keyDepth = keyDepth;
            _depth = depth;
            _appends = appends;
            _text = text;
            _source = source;
            _baseDir = baseDir;
            _prefix = prefix;
            _keys = keys;
            _subs = subs;
            _includeStack = includeStack;
        }

        public string ParseDocument()
        {
            SkipNewlines();
            if (Peek().Kind == Kind.LBrace)
            {
                // Root braces are legal HOCON but would be a keyless object once inlined by an
                // include, so they are blanked out of the expanded text.
                var open = Next();
                _edits.Add((open.Start, open.End, " "));
                ParseMembers(_prefix, open, record: true);
                var close = _lastClose;
                _edits.Add((close.Start, close.End, " "));
                SkipNewlinesAndCommas();
                var t = Peek();
                if (t.Kind != Kind.Eof)
                    throw Fail(t, $"unexpected {Found(t)} after the closing '}}' of the root object", "remove it, or move it inside the braces");
            }
            else
            {
                ParseMembers(_prefix, open: null, record: true);
            }
            return Expanded();
        }

        private Token _lastClose;

        private string Expanded()
        {
            if (_edits.Count == 0) return _text;
            var sb = new StringBuilder(_text.Length + 256);
            var at = 0;
            foreach (var (start, end, with) in _edits.OrderBy(e => e.Start))
            {
                sb.Append(_text, at, start - at);
                sb.Append(with);
                at = end;
            }
            sb.Append(_text, at, _text.Length - at);
            return sb.ToString();
        }

        // ---- structure ----

        private void ParseMembers(string prefix, Token? open, bool record)
        {
            Enter(open ?? Peek());
            while (true)
            {
                SkipNewlines();
                var t = Peek();
                if (t.Kind == Kind.RBrace)
                {
                    if (open is null)
                        throw Fail(t, "unexpected '}' with no matching '{'", "remove it, or add the '{' it was meant to close");
                    _lastClose = Next();
                    break;
                }
                if (t.Kind == Kind.Eof)
                {
                    if (open is { } o)
                        throw Fail(t, $"missing '}}' to close the '{{' opened at line {o.Line}, column {o.Column}" + KeyNote(prefix),
                            "add the closing '}'");
                    break;
                }
                if (t.Kind == Kind.Comma)
                    throw Fail(t, "unexpected ','" + KeyNote(prefix), "remove the extra comma");

                var endedWithObject = ParseMember(prefix, record);

                var after = Peek();
                switch (after.Kind)
                {
                    case Kind.Comma:
                        Next();
                        // Akka's parser refuses a comma after an object member ("a { } , b = 1"),
                        // which HOCON allows; a newline means the same to both.
                        if (endedWithObject) _edits.Add((after.Start, after.End, "\n"));
                        break;
                    case Kind.Newline: case Kind.RBrace: case Kind.Eof: break;
                    default:
                        throw Fail(after, $"expected ',' or a new line after the value of '{_context}', found {Found(after)}",
                            "put each setting on its own line, and quote values that contain spaces or special characters");
                }
            }
            _depth--;
        }

        /// <returns>Whether the member's value was an object.</returns>
        private bool ParseMember(string prefix, bool record)
        {
            var first = Peek();
            var segments = ReadKey(prefix);
            if (segments is ["include"] && Peek() is { Kind: Kind.Quoted or Kind.Unquoted, SpaceBefore: true })
            {
                ParseInclude(first, prefix);
                return true;
            }
            if (_keyDepth + segments.Count > MaxKeySegments) throw TooDeep(prefix, segments, first);
            var key = Join(prefix, segments);
            _context = key;
            if (record) RecordKey(prefix, segments, first);
            var outerKeyDepth = _keyDepth;
            _keyDepth += segments.Count;
            try { return ParseMemberValue(key, segments, record); }
            finally { _keyDepth = outerKeyDepth; }
        }

        private ConfigurationException TooDeep(string prefix, List<string> segments, Token at)
        {
            // The key itself may be thousands of segments long: the message shows its start and its length only.
            var total = _keyDepth + segments.Count;
            var shown = Join("", segments.Take(6)) + (segments.Count > 6 ? ".…" : "");
            _context = Join(prefix, segments.Take(6));
            var from = prefix.Length == 0 ? "" : $" (inside '{prefix}', {_keyDepth} deep)";
            return Fail(at, $"key '{shown}' is {total} segments deep{from}, more than the limit of {MaxKeySegments}: " +
                            "no setting Continuity or Akka reads is nested anywhere near that deep",
                "write the setting's real path (look for a key pasted or generated by mistake, e.g. a run of '.'), " +
                "or quote a name that itself contains dots (\"a.b\" is one segment)");
        }

        /// <returns>Whether the member's value was an object.</returns>
        private bool ParseMemberValue(string key, List<string> segments, bool record)
        {
            var sep = Peek();
            switch (sep.Kind)
            {
                case Kind.LBrace:
                    Next();
                    ParseMembers(key, sep, record);
                    _context = key;
                    return true;
                case Kind.Equals:
                case Kind.Colon:
                case Kind.PlusEquals:
                    Next();
                    if (sep.Kind == Kind.PlusEquals && record) _appends.Add((key, Pos(sep)));
                    var isObject = Peek().Kind == Kind.LBrace;
                    ParseValue(key, sep, record);
                    _context = key;
                    return isObject;
                default:
                    throw Fail(sep, $"expected '=' or '{{' after key '{key}', found {Found(sep)}",
                        $"write '{segments[^1]} = value' or '{segments[^1]} {{ ... }}'");
            }
        }

        private List<string> ReadKey(string prefix)
        {
            var t = Peek();
            if (t.Kind is not (Kind.Unquoted or Kind.Quoted))
                throw Fail(t, $"expected a key, found {Found(t)}" + KeyNote(prefix),
                    t.Kind == Kind.Substitution ? "substitutions are only allowed in values" : "start the line with a key such as 'name = value'");
            var segments = new List<string>();
            var current = new StringBuilder();
            var first = true;
            while (Peek() is { Kind: Kind.Unquoted or Kind.Quoted } k && (first || !k.SpaceBefore))
            {
                Next();
                first = false;
                if (k.Kind == Kind.Quoted)
                {
                    current.Append(k.Text);
                    continue;
                }
                foreach (var c in k.Text)
                {
                    if (c == '.')
                    {
                        if (current.Length == 0)
                            throw Fail(k, $"empty segment in key '{k.Text}'" + KeyNote(prefix), "remove the extra '.'");
                        segments.Add(current.ToString());
                        current.Clear();
                    }
                    else current.Append(c);
                }
                if (k.Text.EndsWith('.') && !(Peek() is { Kind: Kind.Quoted } q && !q.SpaceBefore))
                    throw Fail(k, $"key '{k.Text}' ends with '.'" + KeyNote(prefix), "remove the trailing '.'");
            }
            if (current.Length == 0 && segments.Count == 0)
                throw Fail(t, "empty key" + KeyNote(prefix), "give the setting a name");
            if (current.Length > 0 || segments.Count == 0) segments.Add(current.ToString());
            return segments;
        }

        private void ParseValue(string key, Token sep, bool record)
        {
            var t = Peek();
            switch (t.Kind)
            {
                case Kind.Newline: case Kind.Eof: case Kind.Comma: case Kind.RBrace: case Kind.RBracket:
                    throw Fail(t, $"value missing after '{sep.Text}' for key '{key}'",
                        $"write '{key} {sep.Text} <value>' on one line (quote an empty string as \"\"), or remove the line");
                case Kind.LBrace:
                    Next();
                    ParseMembers(key, t, record);
                    break;
                case Kind.LBracket:
                    ParseArray(key);
                    break;
                case Kind.Equals: case Kind.Colon: case Kind.PlusEquals:
                    throw Fail(t, $"unexpected {Found(t)} after '{sep.Text}' for key '{key}'", "use a single '=' between key and value");
                default:
                    ParseSimple(key);
                    break;
            }
        }

        private void ParseSimple(string key)
        {
            while (Peek() is { Kind: Kind.Unquoted or Kind.Quoted or Kind.Substitution } t)
            {
                Next();
                if (t.Kind == Kind.Substitution)
                {
                    var optional = t.Text.StartsWith('?');
                    _subs.Add(new HoconSubstitution(optional ? t.Text[1..] : t.Text, optional, key, Pos(t)));
                }
            }
            var next = Peek();
            switch (next.Kind)
            {
                case Kind.Equals: case Kind.Colon: case Kind.PlusEquals:
                    throw Fail(next, $"unexpected {Found(next)} in the value of '{key}'",
                        "quote values that contain ':' or '=' (for example \"127.0.0.1:8558\")");
                case Kind.LBrace: case Kind.LBracket:
                    throw Fail(next, $"unexpected {Found(next)} in the value of '{key}'",
                        "an object or array must be the whole value; put it on its own key");
            }
        }

        private void ParseArray(string key)
        {
            var open = Next();
            Enter(open);
            _keyDepth++;
            var index = 0;
            while (true)
            {
                SkipNewlines();
                var t = Peek();
                switch (t.Kind)
                {
                    case Kind.RBracket:
                        Next();
                        _depth--;
                        _keyDepth--;
                        return;
                    case Kind.Eof:
                        throw Fail(t, $"missing ']' to close the '[' opened at line {open.Line}, column {open.Column} for key '{key}'", "add the closing ']'");
                    case Kind.LBrace:
                        // Keys inside array elements are not settings of their own: not recorded.
                        Next();
                        ParseMembers($"{key}[{index}]", t, record: false);
                        break;
                    case Kind.LBracket:
                        ParseArray($"{key}[{index}]");
                        break;
                    case Kind.Unquoted: case Kind.Quoted: case Kind.Substitution:
                        ParseSimple(key);
                        break;
                    case Kind.RBrace:
                        throw Fail(t, $"missing ']' to close the '[' opened at line {open.Line}, column {open.Column} for key '{key}', found '}}'",
                            "add the closing ']' before the '}'");
                    default:
                        throw Fail(t, $"expected a value in the array of '{key}', found {Found(t)}",
                            t.Kind == Kind.RBrace ? "a ']' is probably missing before this '}'" : "separate elements with ',' and close the array with ']'");
                }
                _context = key;
                index++;
                var after = Peek();
                switch (after.Kind)
                {
                    case Kind.Comma: Next(); break;
                    case Kind.Newline: case Kind.RBracket: break;
                    case Kind.Eof:
                        throw Fail(after, $"missing ']' to close the '[' opened at line {open.Line}, column {open.Column} for key '{key}'", "add the closing ']'");
                    default:
                        throw Fail(after, $"expected ',' or ']' in the array of '{key}', found {Found(after)}",
                            after.Kind == Kind.RBrace ? "a ']' is probably missing before this '}'" : "separate elements with ','");
                }
            }
        }

        private void ParseInclude(Token includeTok, string prefix)
        {
            var target = Next();
            var where = prefix.Length == 0 ? "" : $" (inside '{prefix}')";
            if (target.Kind != Kind.Quoted)
                throw Fail(target, $"unsupported include form {Found(target)}{where}",
                    "only include \"relative/or/absolute/path.conf\" is supported");
            var name = target.Text;
            if (name.Length == 0)
                throw Fail(target, $"include with an empty file name{where}", "name the file to include");
            string full;
            try { full = Path.GetFullPath(Path.IsPathRooted(name) ? name : Path.Combine(_baseDir, name)); }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                throw Fail(target, $"include \"{name}\" is not a valid path{where}: {e.Message}", "fix the file name");
            }
            if (!File.Exists(full))
                throw Fail(target, $"included file \"{name}\" not found (looked for {full}){where}",
                    "fix the name; relative includes are resolved from the directory of the including file");
            if (_includeStack.Contains(full, StringComparer.Ordinal))
                throw Fail(target, $"include cycle: {string.Join(" -> ", _includeStack.Append(full))}", "remove one of the includes");
            string text;
            try { text = File.ReadAllText(full); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw Fail(target, $"included file \"{name}\" cannot be read: {e.Message}", "check its permissions");
            }
            var display = Path.IsPathRooted(name) ? name : Path.Combine(Path.GetDirectoryName(_source) ?? "", name);
            _includeStack.Add(full);
            var child = new Parser(text, display, Path.GetDirectoryName(full)!, prefix, _keyDepth, _depth, _keys, _subs, _includeStack, _appends);
            var inlined = child.ParseDocument();
            _includeStack.RemoveAt(_includeStack.Count - 1);
            _edits.Add((includeTok.Start, target.End, "\n" + inlined + "\n"));
        }

        private void RecordKey(string prefix, List<string> segments, Token at)
        {
            var pos = Pos(at);
            var path = prefix;
            for (var i = 0; i < segments.Count; i++)
            {
                path = Join(path, segments[i]);
                // The last setting of a key wins, as in HOCON; an intermediate object keeps where it first appeared.
                if (i == segments.Count - 1) _keys[path] = pos;
                else _keys.TryAdd(path, pos);
            }
        }

        private static string Join(string prefix, IEnumerable<string> segments) =>
            segments.Aggregate(prefix, Join);

        private static string Join(string prefix, string segment)
        {
            var s = RenderSegment(segment);
            return prefix.Length == 0 ? s : prefix + "." + s;
        }

        private static string KeyNote(string prefix) => prefix.Length == 0 ? "" : $" in '{prefix}'";

        private void Enter(Token at)
        {
            if (++_depth > MaxDepth)
                throw Fail(at, $"nesting deeper than {MaxDepth} levels", "flatten the configuration");
        }

        private void SkipNewlines()
        {
            while (Peek().Kind == Kind.Newline) Next();
        }

        private void SkipNewlinesAndCommas()
        {
            while (Peek().Kind is Kind.Newline or Kind.Comma) Next();
        }

        private ConfigPosition Pos(Token t) => new(_source, t.Line, t.Column);

        // A token inside the value of a key that may hold a password is not quoted back: the error would print it.
        private string Found(Token t) =>
            ConfigValues.IsSecret(_context) && t.Kind is not (Kind.Eof or Kind.Newline)
                ? "a value (not shown: it may hold a password)"
                : t.Describe();

        private ConfigurationException Fail(Token t, string problem, string hint) => Fail(t.Line, t.Column, problem, hint);

        private ConfigurationException Fail(int line, int col, string problem, string hint) =>
            new($"{problem}; {hint}", new ConfigPosition(_source, line, col), _context.Length == 0 ? null : _context);

        // ---- tokens ----

        private Token Peek() => _peeked ??= Lex();

        private Token Next()
        {
            var t = Peek();
            _peeked = null;
            return t;
        }

        private char At(int i) => i < _text.Length ? _text[i] : '\0';

        private void Advance()
        {
            if (_text[_pos] == '\n') { _line++; _col = 1; }
            else _col++;
            _pos++;
        }

        private Token Lex()
        {
            var space = false;
            while (_pos < _text.Length)
            {
                var c = _text[_pos];
                if (c == '\n') break;
                if (c == '#' || (c == '/' && At(_pos + 1) == '/'))
                {
                    while (_pos < _text.Length && _text[_pos] != '\n') Advance();
                    continue;
                }
                if (char.IsWhiteSpace(c) || c == '\uFEFF') { Advance(); space = true; continue; }
                break;
            }
            int start = _pos, line = _line, col = _col;
            Token Make(Kind k, string text) => new(k, text, start, _pos, line, col, space);
            Token Punct(Kind k) { var s = _text[_pos].ToString(); Advance(); return Make(k, s); }

            if (_pos >= _text.Length) return Make(Kind.Eof, "");
            switch (_text[_pos])
            {
                case '\n': return Punct(Kind.Newline);
                case '{': return Punct(Kind.LBrace);
                case '}': return Punct(Kind.RBrace);
                case '[': return Punct(Kind.LBracket);
                case ']': return Punct(Kind.RBracket);
                case '=': return Punct(Kind.Equals);
                case ':': return Punct(Kind.Colon);
                case ',': return Punct(Kind.Comma);
                case '+':
                    if (At(_pos + 1) == '=') { Advance(); Advance(); return Make(Kind.PlusEquals, "+="); }
                    throw Fail(line, col, "unexpected '+'" + ContextNote(), "use '+=' to append, or quote the value");
                case '"':
                    return At(_pos + 1) == '"' && At(_pos + 2) == '"' ? Make(Kind.Quoted, LexTriple(line, col)) : Make(Kind.Quoted, LexQuoted(line, col));
                case '$':
                    return Make(Kind.Substitution, LexSubstitution(line, col));
            }
            var sb = new StringBuilder();
            while (_pos < _text.Length)
            {
                var c = _text[_pos];
                if (char.IsWhiteSpace(c) || c == '\uFEFF' || c is '{' or '}' or '[' or ']' or '=' or ':' or ',' or '"' or '#' or '$' or '+') break;
                if (c == '/' && At(_pos + 1) == '/') break;
                if (c is '`' or '^' or '?' or '!' or '@' or '*' or '&' or '\\')
                    throw Fail(_line, _col, $"character '{c}' is not allowed in an unquoted string" + ContextNote(), "put the value in double quotes");
                if (char.IsControl(c))
                    throw Fail(_line, _col, $"control character U+{(int)c:X4} in the text" + ContextNote(), "remove it");
                sb.Append(c);
                Advance();
            }
            return Make(Kind.Unquoted, sb.ToString());
        }

        private string ContextNote() => _context.Length == 0 ? "" : $" (while parsing key '{_context}')";

        private string LexQuoted(int line, int col)
        {
            Advance();
            var sb = new StringBuilder();
            while (true)
            {
                if (_pos >= _text.Length || _text[_pos] == '\n')
                    throw Fail(line, col, "unterminated string" + ContextNote(), "close it with '\"' on the same line, or use \"\"\" for text over several lines");
                var c = _text[_pos];
                if (c == '"') { Advance(); return sb.ToString(); }
                if (c == '\\')
                {
                    int eline = _line, ecol = _col;
                    Advance();
                    var e = At(_pos);
                    if (_pos >= _text.Length) continue; // reported as unterminated above
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            var hex = _pos + 5 <= _text.Length ? _text.Substring(_pos + 1, 4) : "";
                            if (hex.Length != 4 || !hex.All(Uri.IsHexDigit))
                                throw Fail(eline, ecol, "invalid \\u escape in string" + ContextNote(), "write \\u followed by four hex digits");
                            sb.Append((char)Convert.ToInt32(hex, 16));
                            for (var i = 0; i < 4; i++) Advance();
                            break;
                        default:
                            throw Fail(eline, ecol, $"invalid escape '\\{(e == '\n' ? "n" : e.ToString())}' in string" + ContextNote(),
                                "write a backslash as \\\\ (Windows-style paths need doubled backslashes)");
                    }
                    Advance();
                    continue;
                }
                sb.Append(c);
                Advance();
            }
        }

        private string LexTriple(int line, int col)
        {
            Advance(); Advance(); Advance();
            var begin = _pos;
            var end = _text.IndexOf("\"\"\"", _pos, StringComparison.Ordinal);
            if (end < 0)
                throw Fail(line, col, "unterminated triple-quoted string" + ContextNote(), "close it with \"\"\"");
            // As in HOCON, extra quotes just before the closing """ belong to the string.
            while (end + 3 < _text.Length && _text[end + 3] == '"') end++;
            while (_pos < end + 3) Advance();
            return _text.Substring(begin, end - begin);
        }

        private string LexSubstitution(int line, int col)
        {
            if (At(_pos + 1) != '{')
                throw Fail(line, col, "'$' not followed by '{'" + ContextNote(), "write a substitution as ${path}, or quote the value");
            Advance(); Advance();
            var sb = new StringBuilder();
            while (true)
            {
                if (_pos >= _text.Length || _text[_pos] == '\n')
                    throw Fail(line, col, "unterminated substitution" + ContextNote(), "close it with '}' on the same line");
                var c = _text[_pos];
                if (c == '}') { Advance(); break; }
                sb.Append(c);
                Advance();
            }
            var body = sb.ToString();
            var path = body.StartsWith('?') ? body[1..] : body;
            if (path.Length == 0 || path.StartsWith('.') || path.EndsWith('.') || path.Contains("..") ||
                path.Any(ch => char.IsWhiteSpace(ch) || ch is '{' or '$' or '?' or '['))
                throw Fail(line, col, $"invalid substitution '${{{body}}}'" + ContextNote(), "write ${a.b} or ${?a.b}");
            if (path.Count(ch => ch == '.') + 1 is var depth && depth > MaxKeySegments)
                throw Fail(line, col, $"substitution '${{{(body.Length > 40 ? body[..37] + "..." : body)}}}' names a path {depth} segments deep, " +
                                      $"more than the limit of {MaxKeySegments}" + ContextNote(), "substitute the setting's real path");
            return body;
        }
    }
}
