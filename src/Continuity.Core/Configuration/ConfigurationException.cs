namespace Continuity.Core.Configuration;

/// <summary>Where a key was set: the file (as the user named it), 1-based line and column.</summary>
public sealed record ConfigPosition(string File, int Line, int Column)
{
    public override string ToString() => $"{File}:{Line}:{Column}";
}

/// <summary>
/// A configuration the node cannot start with. The message always reads
/// "file:line:col: problem (key) + how to fix", because the person reading it is at a terminal
/// with the file open, not in a debugger.
/// </summary>
/// <remarks>
/// Not to be confused with <c>Akka.Configuration.ConfigurationException</c>, which Akka throws
/// with no position; the loader converts those into this type.
/// </remarks>
public sealed class ConfigurationException : Exception
{
    public ConfigurationException(string message, ConfigPosition? position = null, string? key = null, Exception? inner = null)
        : base(position is null ? message : $"{position}: {message}", inner)
    {
        Position = position;
        Key = key;
    }

    /// <summary>Where the problem is, when known.</summary>
    public ConfigPosition? Position { get; }

    /// <summary>The full key path being parsed or validated, when known.</summary>
    public string? Key { get; }
}

/// <summary>Something suspicious that does not stop the node (an unknown key is most likely a typo).</summary>
public sealed record ConfigurationWarning(string Key, ConfigPosition? Position, string Message)
{
    public override string ToString() => Position is null ? Message : $"{Position}: {Message}";
}
