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
    /// The shell performed the effects of every step through `throughStep` (`EngineOutput.step`), after
    /// committing their records. Sent only by a shell that set `EngineConfiguration.reportsReleases`.
    case released(throughStep: UInt64)
    /// The store can or cannot commit: while it cannot, the engine refuses writes (see `StorageCondition`).
    case storage(StorageCondition)
}

/// Whether the store commits. While it does not, the engine answers every client write with
/// `-MISCONF`, drops the peer frames that would need a commit (deltas and repair, never acknowledged,
/// so peers keep them for later), and keeps answering reads and membership probes.
public enum StorageCondition: Sendable, Equatable {
    case healthy
    /// Commits fail for a cause that may go away (a full disk); the shell retries the failed batch.
    case degraded(StorageFault)
}

/// Why the store cannot commit, as an operator reads it in `-MISCONF` replies.
public struct StorageFault: Sendable, Equatable {
    /// The data directory that cannot be written.
    public var directory: String
    /// The failure, for example "database or disk is full (ENOSPC)".
    public var cause: String
    /// When it started, as the shell prints time (UTC, ISO 8601).
    public var since: String
    public init(directory: String, cause: String, since: String) {
        self.directory = directory
        self.cause = cause
        self.since = since
    }
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
    /// Bytes to write to a client that no request asked for (a published message, a keyspace
    /// notification), in the client's protocol: RESP3 `>` pushes, RESP2 arrays. They come after every
    /// reply the engine gave the client before, and before every later one.
    case push(ClientID, Bytes)
    /// Bytes to write to a client, computed off the engine thread: `DeferredReply.encode` builds them
    /// from an immutable copy of what the command read. A read of a large object (`SMEMBERS`,
    /// `HGETALL` of 10,000 members or more) sorts and encodes its reply this way, so the engine goes on
    /// serving other clients meanwhile. The reply keeps its place among the client's replies.
    case deferredReply(ClientID, DeferredReply)
    /// Close the client connection after everything queued for it was written.
    case closeClient(ClientID)
    /// Send a frame to a peer.
    case send(Bytes, to: PeerEndpoint, via: FrameChannel)
    /// The node was asked to shut down (`SHUTDOWN`).
    case shutdown
}

/// A reply to build later, on any thread: a pure function of a copy of the state the command read
/// (copy-on-write, so taking it costs nothing; the engine's next write to that object copies its storage
/// once if the reply is still being built). Equal by `id`, unique per engine.
public struct DeferredReply: Sendable, Equatable {
    public let id: UInt64
    /// Members or fields the reply holds, for the metrics and the logs.
    public let elements: Int
    public let encode: @Sendable () -> Bytes

    public init(id: UInt64, elements: Int, encode: @escaping @Sendable () -> Bytes) {
        self.id = id
        self.elements = elements
        self.encode = encode
    }

    public static func == (lhs: DeferredReply, rhs: DeferredReply) -> Bool { lhs.id == rhs.id }
}

/// Something to persist before the step's effects are released.
public enum DurableRecord: Sendable, Equatable {
    /// A delta joined into `key`'s object: appended, so that a write costs O(delta).
    case delta(key: Bytes, bytes: Bytes)
    /// The whole object of `key`, replacing its earlier snapshot and deltas (amortised compaction).
    case snapshot(key: Bytes, bytes: Bytes)
    /// Starts a staged snapshot of a large object: it covers every record of `key` before this one, and
    /// is written as `snapshotPart`s over the following steps, a bounded amount per step, so no commit
    /// writes the object whole (docs/storage.md, "Staged snapshots").
    case snapshotBegin(key: Bytes)
    /// The next bytes of `key`'s staged snapshot.
    case snapshotPart(key: Bytes, bytes: Bytes)
    /// `key`'s staged snapshot is complete: it replaces the key's snapshot and the deltas before its begin.
    case snapshotSeal(key: Bytes)
    /// Small engine metadata (the Lamport clock, replication progress), keyed by name.
    case meta(name: String, value: Bytes)
    /// Every row of `key` is deleted: its tombstone was collected (docs/crdts.md, "Collecting deleted keys").
    case remove(key: Bytes)
}

/// What one engine step produced. The shell persists `records` in one transaction (group-committing
/// consecutive steps), and only then performs `effects`, in order: a client never hears of a write, and a
/// peer never sees a dot, that a crash could still take back.
///
/// `immediate` effects reveal nothing that is not durable already (a read of keys whose writes were all
/// released, a membership probe): the shell may perform them at once, before this step's records are
/// committed, and before the `effects` of earlier steps that are still waiting for the disk. The engine
/// keeps each client's replies in order across both lists.
public struct EngineOutput: Sendable, Equatable {
    public var records: [DurableRecord] = []
    public var effects: [Effect] = []
    public var immediate: [Effect] = []
    /// The step this output belongs to, set by `Engine.flush(into:)`: the shell reports it back in
    /// `EngineInput.released(throughStep:)` once the `effects` were performed.
    public var step: UInt64 = 0
    public init() {}

    public var isEmpty: Bool { records.isEmpty && effects.isEmpty && immediate.isEmpty }
    /// Whether anything here must wait for a commit (records to commit, or effects released after one).
    public var needsCommit: Bool { !records.isEmpty || !effects.isEmpty }
}
