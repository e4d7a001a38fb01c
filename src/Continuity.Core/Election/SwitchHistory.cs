using System.Text;
using System.Text.Json;

namespace Continuity.Core.Election;

/// <summary>
/// The durable history of an application's switches on one data node: switches.jsonl in the application's state
/// directory (next to its checkpoints), one JSON line per switch, mode 0600, written only by that node's app actor.
///
/// Why a file per node and not Akka.Persistence: the owner that sees every switch is a singleton that keeps no state
/// on purpose (a new incarnation rebuilds everything from the nodes), and the journal is the hot packet log, truncated
/// at every checkpoint. Each switch is instead told by the owner to every data node, which appends it here (the new
/// primary also appends it itself, in case the owner is gone at that moment); a reader asks every member and merges
/// by (application, epoch, time). So the history survives a restart of any node and a move of the owner, and is complete as
/// long as one node that saw a switch still holds its file. Bounded like the audit trail: past max bytes the file
/// becomes switches.jsonl.1 (replacing the previous one), so at most twice that is kept and the oldest go first.
/// </summary>
public sealed class SwitchHistory
{
    public const string FileName = "switches.jsonl";
    public const long DefaultMaxFileBytes = 1 << 20;

    /// <summary>One line of the file. Phases in milliseconds.</summary>
    private sealed record Line(string? From, string To, DateTimeOffset At, string Reason, long Epoch, int PacketsReplayed,
        Dictionary<string, double> PhasesMs);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
    private readonly long _maxFileBytes;
    private readonly object _lock = new();

    public string Path { get; }
    public string PreviousPath => Path + ".1";

    public SwitchHistory(string appDir, long maxFileBytes = DefaultMaxFileBytes)
    {
        Path = System.IO.Path.Combine(appDir, FileName);
        _maxFileBytes = maxFileBytes;
    }

    /// <summary>Appends <paramref name="s"/> unless it is already kept (the owner and the new primary both report it: the
    /// same epoch and time; the epoch alone is no key, since a restart of the whole cluster numbers epochs from its nodes'
    /// memory again). False when it was already there.</summary>
    /// <exception cref="IOException">The state directory cannot be written (disk full, read-only).</exception>
    public bool Append(SwitchInfo s)
    {
        lock (_lock)
        {
            if (Read().Any(x => x.Epoch == s.Epoch && x.At == s.At)) return false;
            var line = new Line(s.From, s.To, s.At, s.Reason, s.Epoch, s.PacketsReplayed,
                s.Phases.ToDictionary(p => p.Key, p => p.Value.TotalMilliseconds));
            var bytes = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(line, Json) + "\n");
            var current = new FileInfo(Path);
            if (current.Exists && current.Length > 0 && current.Length + bytes.Length > _maxFileBytes)
                File.Move(Path, PreviousPath, overwrite: true);
            else if (current.Exists && current.Length > 0 && !EndsWithNewline(Path))
                bytes = [(byte)'\n', .. bytes]; // a crash tore the last line: this one starts a line of its own
            using (var stream = new FileStream(Path, new FileStreamOptions
                   {
                       Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.Read,
                       UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                   }))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            return true;
        }
    }

    private static bool EndsWithNewline(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        f.Seek(-1, SeekOrigin.End);
        return f.ReadByte() == '\n';
    }

    /// <summary>Every switch kept, oldest first. A line that does not parse (torn by a crash mid-write) is skipped.</summary>
    public IReadOnlyList<SwitchInfo> Read()
    {
        var list = new List<SwitchInfo>();
        lock (_lock)
        {
            foreach (var p in new[] { PreviousPath, Path })
            {
                if (!File.Exists(p)) continue;
                foreach (var text in File.ReadLines(p))
                {
                    if (text.Length == 0) continue;
                    try
                    {
                        if (JsonSerializer.Deserialize<Line>(text, Json) is { To: not null } l)
                            list.Add(new SwitchInfo(l.From, l.To, l.At, l.Reason ?? "", l.Epoch, l.PacketsReplayed,
                                (l.PhasesMs ?? []).ToDictionary(kv => kv.Key, kv => TimeSpan.FromMilliseconds(kv.Value))));
                    }
                    catch (JsonException) { }
                }
            }
        }
        return list;
    }
}
