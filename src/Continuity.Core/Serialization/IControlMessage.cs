namespace Continuity.Core.Serialization;

/// <summary>
/// Marks a message of the project's own control protocol. Only types implementing it are
/// serialized with Hyperion between nodes (its allow-list names this interface), so a peer
/// cannot make a node instantiate arbitrary types. Hot-path data (packet batches, checkpoint
/// chunks) does not use this: it has its own binary serializer.
/// </summary>
public interface IControlMessage;
