namespace Continuity.Core.Serialization;

/// <summary>
/// Marks a message of the project's own control protocol. Every type implementing it is serialized between
/// nodes with <see cref="HyperionControlSerializer"/>, whose allow-list (<see cref="ControlMessageAllowList"/>)
/// is built from these types, so a peer cannot make a node instantiate anything else. Collections in a field
/// travel as List&lt;T&gt; or T[] (ToList(), ToArray(), an empty []): a collection expression with elements makes a
/// compiler-generated type the receiver refuses. Hot-path data (packet batches, checkpoint chunks) does not use
/// this: it has its own binary serializer.
/// </summary>
public interface IControlMessage;
