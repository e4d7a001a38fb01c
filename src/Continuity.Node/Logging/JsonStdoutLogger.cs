using System.Text.Json;
using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace Continuity.Node.Logging;

/// <summary>
/// Writes Akka's log events as one JSON object per line (continuity.node.log-format = json),
/// for log collectors. Text format keeps Akka's own StandardOutLogger.
/// </summary>
public sealed class JsonStdoutLogger : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private static readonly object WriteLock = new();

    public JsonStdoutLogger()
    {
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(Write);
    }

    private static void Write(LogEvent e)
    {
        var line = JsonSerializer.Serialize(new
        {
            time = e.Timestamp.ToUniversalTime().ToString("O"),
            level = e.LogLevel().ToString().Replace("Level", "").ToLowerInvariant(),
            source = e.LogSource,
            thread = e.Thread.ManagedThreadId,
            message = e.Message?.ToString(),
            error = e is Error { Cause: not null } err ? err.Cause.ToString() : null,
        });
        lock (WriteLock) Console.Out.WriteLine(line);
    }
}
