@_exported import struct Wire.PeerEndpoint

/// Identifies one client connection for the life of the process. Assigned by the transport.
public struct ClientID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "client#\(rawValue)" }
}

/// What the engine consumes. Everything that happens to a node arrives as one of these, in order.
public enum EngineInput: Sendable {
    /// A client connected; `address` is for `CLIENT LIST`-style reporting only.
    case clientConnected(ClientID, address: String)
    /// One complete request from a client (arguments, the command name first).
    case clientCommand(ClientID, [Bytes])
    /// The client's byte stream broke a protocol rule or a limit: answer `message` and disconnect.
    case clientProtocolError(ClientID, message: String)
    /// The client is gone; forget its session.
    case clientDisconnected(ClientID)
    /// Bytes a peer sent (one datagram, or one frame from a stream), not yet authenticated.
    case peerFrame(Bytes, from: PeerEndpoint)
    /// Time passes. `monotonicMilliseconds` drives failure detection and gossip periods only; it never
    /// decides a conflict, and in simulation it is simulated time. `wallMilliseconds` (the Unix epoch
    /// clock) is how wall-clock time reaches the engine: it computes `EXPIRE` deadlines, triggers expiry
    /// and answers `TIME`, and never orders writes.
    case tick(monotonicMilliseconds: UInt64, wallMilliseconds: UInt64)
}

/// How a frame should travel: datagrams for small frames, the stream for anything larger than a datagram.
public enum FrameChannel: Sendable, Equatable {
    case datagram
    case stream
}

/// Something the shell must do once the records of the same step are durable.
public enum Effect: Sendable, Equatable {
    /// Bytes to write to a client, already encoded in the client's protocol version.
    case reply(ClientID, Bytes)
    /// Close the client connection after everything queued for it was written.
    case closeClient(ClientID)
    /// Send a frame to a peer.
    case send(Bytes, to: PeerEndpoint, via: FrameChannel)
    /// The node was asked to shut down (`SHUTDOWN`).
    case shutdown
}

/// Something to persist before the step's effects are released.
public enum DurableRecord: Sendable, Equatable {
    /// A delta joined into `key`'s object: appended, so that a write costs O(delta).
    case delta(key: Bytes, bytes: Bytes)
    /// The whole object of `key`, replacing its earlier snapshot and deltas (amortised compaction).
    case snapshot(key: Bytes, bytes: Bytes)
    /// Small engine metadata (the Lamport clock, replication progress), keyed by name.
    case meta(name: String, value: Bytes)
}

/// What one engine step produced. The shell persists `records` in one transaction (group-committing
/// consecutive steps), and only then performs `effects`, in order: a client never hears of a write, and a
/// peer never sees a dot, that a crash could still take back.
public struct EngineOutput: Sendable, Equatable {
    public var records: [DurableRecord] = []
    public var effects: [Effect] = []
    public init() {}

    public var isEmpty: Bool { records.isEmpty && effects.isEmpty }
}
