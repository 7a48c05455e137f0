/// How much a committed transaction survives. Both modes use SQLite's write-ahead log.
public enum StoreSynchronous: String, Sendable, Hashable {
    /// `PRAGMA synchronous=FULL`: the log is synced to disk at every commit. A committed batch survives
    /// a process crash *and* a power cut or kernel panic. Comparable to Redis `appendfsync always`.
    case full
    /// `PRAGMA synchronous=NORMAL`: the log is synced only at checkpoints. A committed batch survives
    /// a process crash (`kill -9`), because the bytes are in the OS page cache, but the last
    /// transactions before a power cut may be lost (never corrupted). Comparable to Redis
    /// `appendfsync everysec`.
    case normal
}

/// Settings of a ``Store``.
public struct StoreOptions: Sendable, Hashable {
    /// Durability of each commit. Default ``StoreSynchronous/full``, so that an acknowledged write
    /// survives power loss; choose ``StoreSynchronous/normal`` for about ten times the commit rate.
    public var synchronous: StoreSynchronous
    /// How long SQLite retries when another process holds a lock on the file. Default 5 s.
    public var busyTimeout: Duration
    var busyTimeoutMilliseconds: Int32 {
        Int32(clamping: busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000)
    }
    /// Whether `init` runs `PRAGMA quick_check` on an existing database and refuses a damaged one.
    /// Default true. Its cost grows with the file (it reads every page): see docs/storage.md.
    public var verifyOnOpen: Bool

    /// Superseded deltas (older than their key's snapshot) tolerated before commits start deleting
    /// them; collection also waits until they outnumber live deltas. Default 10,000.
    public var collectorThreshold: Int

    /// Parts of replaced staged snapshots a commit deletes at least (more when it writes more parts:
    /// twice as many as it writes). Default 4: with the engine's 256 KiB parts, 1 MiB freed a commit.
    public var doomedPartsPerCommit: Int

    /// Creates options; every parameter defaults to the documented default.
    public init(synchronous: StoreSynchronous = .full, busyTimeout: Duration = .seconds(5), verifyOnOpen: Bool = true,
                collectorThreshold: Int = 10_000, doomedPartsPerCommit: Int = 4) {
        self.synchronous = synchronous
        self.busyTimeout = busyTimeout
        self.verifyOnOpen = verifyOnOpen
        self.collectorThreshold = collectorThreshold
        self.doomedPartsPerCommit = doomedPartsPerCommit
    }
}

/// One change to persist. The store treats keys and bytes as opaque.
public enum StoreRecord: Sendable, Hashable {
    /// Appends a delta to `key`'s log. Costs O(size of the delta), whatever the object's size.
    case delta(key: [UInt8], bytes: [UInt8])
    /// Replaces `key`'s snapshot and drops every delta appended to `key` before it, so that loading
    /// yields this snapshot followed by the deltas appended after it.
    case snapshot(key: [UInt8], bytes: [UInt8])
    /// Starts a staged snapshot of `key`: a snapshot written in parts over several commits, so that no
    /// commit writes a large object whole. It covers every delta of `key` committed before this record
    /// (earlier in the same batch included); it replaces the key's snapshot only once sealed. A new begin
    /// discards a pending stage of the key that was never sealed.
    case snapshotBegin(key: [UInt8])
    /// Appends `bytes` to `key`'s pending staged snapshot (one row, written once).
    case snapshotPart(key: [UInt8], bytes: [UInt8])
    /// Makes `key`'s pending staged snapshot, the concatenation of its parts, the key's snapshot: the
    /// deltas committed before its begin are superseded, those committed since stay. A small update.
    case snapshotSeal(key: [UInt8])
    /// Forgets `key`: deletes its snapshot and all its deltas at once, in O(the key's stored rows).
    case remove(key: [UInt8])
    /// Sets a named value (node id, Lamport clock, ...), replacing any earlier value.
    case meta(name: String, value: [UInt8])
}

/// What the store holds for one key.
public struct RecoveredKey: Sendable, Hashable {
    /// The latest snapshot, if one was ever written.
    public var snapshot: [UInt8]?
    /// The deltas appended after that snapshot (or since the beginning), oldest first.
    public var deltas: [[UInt8]]

    /// Creates a key's recovered state.
    public init(snapshot: [UInt8]? = nil, deltas: [[UInt8]] = []) {
        self.snapshot = snapshot
        self.deltas = deltas
    }
}

/// Everything ``Store/load()`` found: the state to rebuild the engine from.
public struct RecoveredState: Sendable, Hashable {
    /// Per key, its snapshot and later deltas.
    public var keys: [[UInt8]: RecoveredKey]
    /// Every meta entry.
    public var meta: [String: [UInt8]]

    /// Creates a recovered state.
    public init(keys: [[UInt8]: RecoveredKey] = [:], meta: [String: [UInt8]] = [:]) {
        self.keys = keys
        self.meta = meta
    }
}
