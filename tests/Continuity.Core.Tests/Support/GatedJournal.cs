using System.Collections.Concurrent;
using System.Collections.Immutable;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;

namespace Continuity.Core.Tests.Support;

/// <summary>
/// The in-memory journal whose writes can be made to hang, as they do on a stalled NFS mount or a database that stops
/// answering: a write waits while its gate is closed and goes through, in order, once it opens. Reads are not held.
/// Configured per ActorSystem with the name of its gate (<see cref="Config"/>).
/// </summary>
public sealed class GatedJournal : MemoryJournal
{
    /// <summary>A gate, open at first.</summary>
    public sealed class Gate
    {
        private volatile TaskCompletionSource _open = Opened();

        private static TaskCompletionSource Opened()
        {
            var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            t.SetResult();
            return t;
        }

        public void Close()
        {
            if (_open.Task.IsCompleted) _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public void Open() => _open.TrySetResult();

        public Task Passed => _open.Task;
    }

    private static readonly ConcurrentDictionary<string, Gate> Gates = new();

    public static Gate GateNamed(string name) => Gates.GetOrAdd(name, _ => new Gate());

    /// <summary>Journal settings for an ActorSystem whose writes pass <paramref name="gate"/>; put in front of its config.</summary>
    public static Akka.Configuration.Config Config(string gate) => ConfigurationFactory.ParseString($$"""
        akka.persistence.journal.plugin = "akka.persistence.journal.gated"
        akka.persistence.journal.gated {
          class = "{{typeof(GatedJournal).AssemblyQualifiedName}}"
          plugin-dispatcher = "akka.actor.default-dispatcher"
          gate = "{{gate}}"
          # A hung write is not failed by the journal's own time limit within a test: the lag rule is what is tested.
          circuit-breaker { max-failures = 10, call-timeout = 300s, reset-timeout = 30s }
        }
        """);

    private readonly Gate _gate;
    // Writes go through one after the other, in the order the journal was asked for them.
    private Task _previous = Task.CompletedTask;

    public GatedJournal(Akka.Configuration.Config config) => _gate = GateNamed(config.GetString("gate"));

    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        var batch = messages.ToList();
        var write = WriteAfter(_previous, batch, cancellationToken);
        _previous = write;
        return write;
    }

    private async Task<IImmutableList<Exception>> WriteAfter(Task previous, List<AtomicWrite> batch, CancellationToken ct)
    {
        try { await previous.ConfigureAwait(false); } catch { /* its own caller saw it */ }
        await _gate.Passed.ConfigureAwait(false);
        return await base.WriteMessagesAsync(batch, ct).ConfigureAwait(false);
    }
}
