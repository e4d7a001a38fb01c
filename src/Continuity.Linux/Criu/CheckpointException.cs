namespace Continuity.Linux.Criu;

/// <summary>A checkpoint or restore failed. The message names the problem, CRIU's own error lines and, when known,
/// the fix.</summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}
