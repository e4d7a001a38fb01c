using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Continuity.Node.Management;

/// <summary>One management action as the audit trail keeps it (one JSON line in audit.jsonl).</summary>
/// <param name="Time">When the request arrived (UTC, ISO 8601).</param>
/// <param name="Remote">The caller's IP address and port.</param>
/// <param name="Token">First 8 hex digits of the SHA-256 of the token presented (null: none): tells callers apart
/// without keeping anything that could be replayed.</param>
/// <param name="Action">What was asked ("app switch", "cluster down", ...; "POST /path" for an unknown resource).</param>
/// <param name="Target">The application or member acted on, when known.</param>
/// <param name="Detail">More of the request ("to n2"), when there is more.</param>
/// <param name="Outcome">"accepted" (2xx) or "refused" (anything else).</param>
/// <param name="Reason">Why it was refused: the error the caller was given.</param>
public sealed record AuditEntry(string Time, string Remote, string? Token, string Action, string? Target, string? Detail,
    string Outcome, int Status, string? Reason);

/// <summary>
/// The append-only audit trail of the management API: audit.jsonl in the node's state directory, mode 0600 (it names
/// callers and what they did). Bounded: once the file reaches max-file-bytes it becomes audit.jsonl.1 (replacing the
/// previous one) and a new file starts, so at most twice that is kept on disk and the oldest entries go first.
/// </summary>
public sealed class AuditLog
{
    public const string FileName = "audit.jsonl";
    private const int MaxField = 512;

    private readonly object _lock = new();
    private readonly long _maxFileBytes;

    public string Path { get; }
    public string PreviousPath => Path + ".1";

    public AuditLog(string stateDir, long maxFileBytes)
    {
        Directory.CreateDirectory(stateDir);
        Path = System.IO.Path.Combine(stateDir, FileName);
        _maxFileBytes = maxFileBytes;
        // A file left by hand or by an older version may be readable by others; it names callers, so tighten it.
        foreach (var p in new[] { Path, PreviousPath })
            if (File.Exists(p)) File.SetUnixFileMode(p, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        // A crash in the middle of a write leaves a torn last line: end it, so the next entry starts a line of its own.
        if (File.Exists(Path) && new FileInfo(Path).Length > 0)
        {
            using var f = new FileStream(Path, FileMode.Open, FileAccess.ReadWrite);
            f.Seek(-1, SeekOrigin.End);
            if (f.ReadByte() != '\n') f.WriteByte((byte)'\n');
        }
    }

    /// <summary>The fingerprint kept instead of the token: first 8 hex digits of its SHA-256; null when none was sent.</summary>
    public static string? Fingerprint(string? token) =>
        string.IsNullOrEmpty(token) ? null : Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)))[..8].ToLowerInvariant();

    /// <exception cref="IOException">The state directory cannot be written (disk full, read-only).</exception>
    public void Append(AuditEntry entry)
    {
        // Fields can come from a hostile caller (a path, a member name): bounded, and JSON-encoded, so one request is one line.
        entry = entry with
        {
            Action = Cap(entry.Action)!, Target = Cap(entry.Target), Detail = Cap(entry.Detail), Reason = Cap(entry.Reason),
        };
        var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entry, ManagementServer.Json) + "\n");
        lock (_lock)
        {
            var current = new FileInfo(Path);
            if (current.Exists && current.Length > 0 && current.Length + line.Length > _maxFileBytes)
                File.Move(Path, PreviousPath, overwrite: true);
            using var stream = new FileStream(Path, new FileStreamOptions
            {
                Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.Read,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            stream.Write(line);
        }
    }

    /// <summary>Every entry kept, newest first. A line that does not parse (torn by a crash mid-write) is skipped.</summary>
    public IReadOnlyList<AuditEntry> ReadNewestFirst()
    {
        var entries = new List<AuditEntry>();
        lock (_lock)
        {
            foreach (var p in new[] { PreviousPath, Path })
            {
                if (!File.Exists(p)) continue;
                foreach (var line in File.ReadLines(p))
                {
                    if (line.Length == 0) continue;
                    try
                    {
                        if (JsonSerializer.Deserialize<AuditEntry>(line, ManagementServer.Json) is { } e) entries.Add(e);
                    }
                    catch (JsonException) { }
                }
            }
        }
        entries.Reverse();
        return entries;
    }

    private static string? Cap(string? s) => s is null || s.Length <= MaxField ? s : s[..MaxField] + "…";
}
