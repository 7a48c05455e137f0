import CRDT
import RESP

/// What the engine needs to know about its node. Everything here is fixed for the life of the process.
public struct EngineConfiguration: Sendable {
    /// The node's human-readable name (`--node-id`).
    public var nodeID: String
    /// The node's replica identity: random at first start, then persisted, so a wiped node never reuses dots.
    public var replica: ReplicaID
    /// Accept `CRDT.PARTITION` and `CRDT.HEAL`.
    public var allowFaultInjection: Bool = false
    /// A key's appended deltas are folded into a snapshot once they outweigh the last snapshot (and this
    /// floor): storage stays within about twice the state while each write still costs O(delta), amortised.
    public var snapshotFloorBytes: Int = 4096
    /// An object whose snapshot would be at least this large is snapshotted in parts across steps
    /// (`DurableRecord.snapshotBegin`), so that no commit writes megabytes for one write.
    public var stagedSnapshotBytes: Int = 1 << 20
    /// The size of each part of a staged snapshot; each step writes at least one part, and at least
    /// twice the bytes of the deltas it persisted, so staging keeps ahead of the writes.
    public var snapshotPartBytes: Int = 256 << 10
    /// Runs the serialisation of a large object off the engine thread (the daemon gives a worker queue):
    /// the staged snapshot of a 1 M-member set begins with a copy-on-write copy instead of a second of
    /// serialising in the step. `nil` serialises inline, in the step (tests, the simulation).
    public var background: BackgroundRunner?
    /// Limits on decoding what peers send. A peer's state may be as large as
    /// `ReplicationSettings.maxObjectBytes`; element counts are bounded by the bytes that hold them.
    public var decodingLimits = DecodingLimits(maxBytes: 64 << 20, maxElements: .max, maxDepth: 8)
    /// Peers, gossip and repair; `nil` runs a single node that never talks to peers.
    public var replication: ReplicationSettings?
    /// Extra `INFO` fields the shell knows and the engine does not (process id, ports, commit latency),
    /// asked for by section name when a client runs `INFO`.
    public var shellInfo: @Sendable (String) -> [(String, String)] = { _ in [] }
    /// Whether the shell reports released steps, and how long writes may wait for the disk.
    public var commitWait = CommitWaitSettings()

    public init(nodeID: String, replica: ReplicaID) {
        self.nodeID = nodeID
        self.replica = replica
    }
}

/// What the store recovered at start: every key's snapshot and the deltas appended after it, and the
/// engine's metadata.
public struct EngineRecovery: Sendable {
    public struct Object: Sendable {
        public var key: Bytes
        public var snapshot: Bytes?
        public var deltas: [Bytes]
        public init(key: Bytes, snapshot: Bytes?, deltas: [Bytes]) {
            self.key = key
            self.snapshot = snapshot
            self.deltas = deltas
        }
    }
    public var objects: [Object]
    public var meta: [String: Bytes]
    public init(objects: [Object] = [], meta: [String: Bytes] = [:]) {
        self.objects = objects
        self.meta = meta
    }
}

/// A database the engine cannot recover from. The daemon stops with this message; it never resets data.
public struct RecoveryError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// The replication engine of one node, free of I/O.
///
/// It consumes `EngineInput`s (client commands, peer frames, timer ticks) one at a time and appends to an
/// `EngineOutput` the records to persist and the effects (replies, frames) to release once they are durable.
/// The daemon drives it from one thread; the deterministic simulation drives many of them from a test.
public struct Engine {
    public let configuration: EngineConfiguration
    /// This node's Lamport clock: ticks on every local write, advances past every timestamp observed.
    public internal(set) var clock: LamportClock
    /// Every key's object and its bookkeeping; changed only through `apply(local:)` and `join(remote:)`.
    var keyspace: Keyspace
    var sessions: [ClientID: Session] = [:]
    var stats = EngineStats()
    var replicator: Replicator?
    /// Tombstones collected by causal stability, and the floor their numbering left.
    var collection: CollectionState
    /// The Lamport value persisted: the clock may run up to it before it must be persisted again.
    var clockReservation: UInt64 = 0
    static let clockLease: UInt64 = 10_000
    static let storedLimits = DecodingLimits(maxBytes: .max, maxElements: .max, maxDepth: 8)
    /// For `SRANDMEMBER` and the like: seeded by the replica, so a simulation replays exactly.
    var random: SplitMix64
    /// The wall clock (Unix milliseconds) of the last tick; 0 until the first.
    public internal(set) var wallMilliseconds: UInt64 = 0
    /// Whether the last input asked the node to stop.
    public internal(set) var shutdownRequested = false
    /// Released steps, local writes not durable yet, and the store's condition.
    var commits = CommitTracker()
    /// Channel and pattern subscriptions of this node's clients.
    var pubSub = PubSub()
    /// Sharded channel subscriptions (`SSUBSCRIBE`), a namespace of their own.
    var shardPubSub = PubSub()
    /// `notify-keyspace-events`: which keyspace notifications are published.
    var notifyFlags: KeyspaceEventFlags = []
    /// What the writes being applied belong to, for their keyspace events.
    var eventSource: EventSource?
    /// Clients waiting in `WAIT`.
    var parkedClients: Set<ClientID> = []
    /// Large collections' scan orders, kept between the pages of an iteration (`collectionScan`).
    var scanOrders: [KeyName: ScanOrder] = [:]
    /// Orders being built off the engine thread for a first page (`deferredScan`), adopted at the next scan.
    var pendingScanOrders: [KeyName: PendingScanOrder] = [:]
    /// Scan orders built on the engine thread since start (tests).
    var scanOrderBuilds: UInt64 = 0
    /// Scan orders kept since start, built here or by a worker: the order in which kept ones are dropped.
    var scanOrdersKept: UInt64 = 0

    public init(configuration: EngineConfiguration, recovery: EngineRecovery = EngineRecovery()) throws(RecoveryError) {
        self.configuration = configuration
        collection = CollectionState(floor: DotFloor(replica: configuration.replica))
        if let stored = recovery.meta[MetaKey.collectionFloor] {
            guard let floor = CollectionState.decode(stored, replica: configuration.replica) else {
                throw RecoveryError(description: "the stored collection floor is corrupt (meta '\(MetaKey.collectionFloor)')")
            }
            collection.floor = floor
        }
        var clock = LamportClock(replica: configuration.replica)
        if let stored = recovery.meta[MetaKey.lamport] {
            guard let counter = Self.decodeCounter(stored) else {
                throw RecoveryError(description: "the stored Lamport clock is corrupt (meta '\(MetaKey.lamport)')")
            }
            clock.observe(LamportTimestamp(counter: counter, replica: configuration.replica))
        }
        self.clock = clock
        self.clockReservation = clock.counter
        random = SplitMix64(seed: configuration.replica.rawValue)
        keyspace = Keyspace(digestBuckets: configuration.replication?.digestBuckets ?? 64,
                            snapshotFloorBytes: configuration.snapshotFloorBytes,
                            staging: StagingSettings(thresholdBytes: configuration.stagedSnapshotBytes,
                                                     partBytes: max(1, configuration.snapshotPartBytes),
                                                     background: configuration.background))
        for object in recovery.objects {
            var state = KeyObject()
            do {
                // This node wrote its own database: no size limit (a value accepted from a client must load).
                if let snapshot = object.snapshot {
                    state = try KeyObject(serialized: snapshot, limits: Self.storedLimits)
                }
                for delta in object.deltas {
                    state.join(try KeyObject(serialized: delta, limits: Self.storedLimits))
                }
            } catch {
                throw RecoveryError(description:
                    "the stored state of key '\(String(decoding: object.key.prefix(80), as: UTF8.self))' does not decode (\(error)); "
                    + "the database is corrupt or from another build. Restore it from a backup or a peer; crdtd does not reset data.")
            }
            keyspace.recover(key: object.key, object: state, snapshotBytes: object.snapshot?.count ?? 0,
                             deltaBytes: object.deltas.reduce(0) { $0 + $1.count })
        }
        if let settings = configuration.replication {
            func counter(_ name: String) throws(RecoveryError) -> UInt64 {
                guard let bytes = recovery.meta[name] else { return 0 }
                guard let value = Self.decodeCounter(bytes) else {
                    throw RecoveryError(description: "the stored replication metadata '\(name)' is corrupt")
                }
                return value
            }
            // A restarted node takes a new incarnation, which overrides any rumour of its death.
            var forgotten: [ReplicaID: String] = [:]
            if let bytes = recovery.meta[MetaKey.forgotten] {
                guard let decoded = Replicator.decodeForgotten(bytes) else {
                    throw RecoveryError(description: "the stored replication metadata '\(MetaKey.forgotten)' is corrupt")
                }
                forgotten = decoded
            }
            var applied: [ReplicaID: UInt64] = [:]
            if let bytes = recovery.meta[MetaKey.applied] {
                guard let decoded = Stability.decode(bytes) else {
                    throw RecoveryError(description: "the stored replication metadata '\(MetaKey.applied)' is corrupt")
                }
                applied = decoded
            }
            // Own stamps continue past every one a stored key carries, whatever the meta record says.
            for object in keyspace.allObjects {
                let own = object.stamps.stamp(of: configuration.replica)
                if own > applied[configuration.replica, default: 0] { applied[configuration.replica] = own }
            }
            var replicator = Replicator(settings: settings, selfID: configuration.nodeID, replica: configuration.replica,
                                        decodingLimits: configuration.decodingLimits,
                                        incarnation: try counter(MetaKey.incarnation) + 1,
                                        nextSequence: try counter(MetaKey.deltaSequence), forgotten: forgotten,
                                        applied: applied)
            replicator.membership.incarnationChanged = true
            replicator.largeStates.background = configuration.background
            if let bytes = recovery.meta[MetaKey.received] {
                guard let received = Replicator.decodeProgress(bytes) else {
                    throw RecoveryError(description: "the stored replication metadata '\(MetaKey.received)' is corrupt")
                }
                replicator.received = received
            }
            self.replicator = replicator
        }
    }

    /// Processes one input, appending what it produced to `output`. Several inputs may share one output:
    /// the shell group-commits them together, and calls `flush(into:)` once at the end of the batch.
    public mutating func handle(_ input: EngineInput, into output: inout EngineOutput) {
        switch input {
        case .clientConnected(let client, let address):
            sessions[client] = Session(address: address, connectedAt: stats.lastTick)
            stats.connectionsAccepted += 1
        case .clientCommand(let client, let arguments):
            execute(arguments, for: client, into: &output)
        case .clientProtocolError(let client, let message):
            reply(.error(message), to: client, into: &output)
            output.effects.append(.closeClient(client))
            forget(client)
        case .clientDisconnected(let client):
            forget(client)
        case .peerFrame(let frame, let source):
            receive(frame: frame, from: source, into: &output)
        case .tick(let now, let wall):
            if stats.firstTick == nil { stats.firstTick = now }
            stats.lastTick = now
            wallMilliseconds = wall
            commits.ticked(now)
            expireDueKeys(into: &output)
            replicationTick(now: now, into: &output)
            if !parkedClients.isEmpty { serveParkedWaits(into: &output) }
        case .released, .storage:
            storageInput(input)
        }
        if clock.counter > clockReservation {
            // Persist a bound ahead of the clock instead of every tick: a restart resumes from the bound,
            // so its timestamps still exceed every one issued before, at one small write per `clockLease` events.
            let (bound, overflow) = clock.counter.addingReportingOverflow(Self.clockLease)
            clockReservation = overflow ? .max : bound
            output.records.append(.meta(name: MetaKey.lamport, value: Self.encodeCounter(clockReservation)))
        }
    }

    /// Counters of peer traffic, for the metrics.
    public var replicationStats: ReplicationStats {
        guard let replicator else { return ReplicationStats() }
        var stats = replicator.stats
        let frontier = replicator.frontier
        stats.stableWrites = frontier.vector.values.reduce(0, &+)
        stats.stabilityBehind = frontier.behind
        stats.tombstonesCollected = collection.collected
        return stats
    }

    /// Members by state, for the metrics.
    public var membersByState: [String: Int] {
        var counts: [String: Int] = [:]
        for member in replicator?.membership.members.values ?? [:].values { counts[member.state.description, default: 0] += 1 }
        if let forgotten = replicator?.membership.forgotten.count, forgotten > 0 { counts["forgotten"] = forgotten }
        return counts
    }

    /// Convenience for tests and tools: one input, its own output.
    public mutating func handle(_ input: EngineInput) -> EngineOutput {
        var output = EngineOutput()
        handle(input, into: &output)
        flush(into: &output)
        return output
    }

    // MARK: Writes

    /// Applies a local mutation to `key`: the closure mutates the object and returns the delta.
    /// The delta is persisted (and, once replication runs, shipped); the object is compacted when due.
    /// A key past its deadline is removed first, so the write sees it absent, as clients do.
    /// `touching`: the slots the write may number dots or counts in, which claim the collection floor
    /// first when they must (see `Keyspace.apply`); every slot unless the caller knows better. A write
    /// that only removes (`DEL`, `SREM`) numbers nothing: `[]`.
    mutating func mutate<Failure: Error>(
        _ key: Bytes, touching: KeyObject.SlotSet = .all, into output: inout EngineOutput,
        _ body: (inout KeyObject, inout Mutation) throws(Failure) -> KeyObject
    ) throws(Failure) {
        removeIfExpired(key, into: &output)
        try applyLocal(key, touching: touching, into: &output, body)
    }

    /// `mutate` without the expiry check.
    mutating func applyLocal<Failure: Error>(
        _ key: Bytes, touching: KeyObject.SlotSet = .all, into output: inout EngineOutput,
        _ body: (inout KeyObject, inout Mutation) throws(Failure) -> KeyObject
    ) throws(Failure) {
        var mutation = Mutation(replica: configuration.replica, clock: clock)
        let stamp = replicator?.stability.nextStamp
        let written: Keyspace.LocalWrite?
        do throws(Failure) {
            written = try keyspace.apply(local: key, stamp: stamp, floor: collection.floor, touching: touching) {
                (object: inout KeyObject) throws(Failure) -> KeyObject in
                try body(&object, &mutation)
            }
        } catch {
            // The write failed after a floor claim changed the object: the claim is persisted and shipped.
            if let claim = keyspace.takeOrphanedClaim() { finish(claim, of: key, stamp: stamp, into: &output) }
            throw error
        }
        guard let write = written else { return }
        if let stamp { replicator?.stability.wrote(stamp) }
        clock = mutation.clock
        if clock.counter == mutation.startCounter { _ = clock.tick() }
        output.records.append(write.record)
        if keyspace.recordsChanges { notifyLocal(key, before: write.typeBefore, after: write.typeAfter, into: &output) }
        commits.wrote(key)
        disseminate(write.delta, of: key)
        stats.localWrites += 1
    }

    /// A claim that outlived a failed write: persisted and shipped, with the stamp the write would have had.
    private mutating func finish(_ claim: Keyspace.LocalWrite, of key: Bytes, stamp: Dot?, into output: inout EngineOutput) {
        if let stamp { replicator?.stability.wrote(stamp) }
        output.records.append(claim.record)
        commits.wrote(key)
        disseminate(claim.delta, of: key)
    }

    // MARK: Metadata encoding

    static func encodeCounter(_ value: UInt64) -> Bytes {
        var writer = BinaryWriter()
        writer.write(varint: value)
        return writer.bytes
    }

    static func decodeCounter(_ bytes: Bytes) -> UInt64? {
        guard var reader = try? BinaryReader(bytes), let value = try? reader.readVarint(), (try? reader.finish()) != nil else {
            return nil
        }
        return value
    }
}

/// What a local mutation may use: the replica that performs it and the clock that stamps it.
struct Mutation {
    let replica: ReplicaID
    var clock: LamportClock
    let startCounter: UInt64

    init(replica: ReplicaID, clock: LamportClock) {
        self.replica = replica
        self.clock = clock
        self.startCounter = clock.counter
    }
}

/// Names of the engine's metadata records.
enum MetaKey {
    static let lamport = "lamport"
}

/// One client connection's protocol state.
struct Session {
    var address: String
    var protocolVersion: RESPVersion = .resp2
    var name: Bytes?
    /// The last step in which a reply to this client waited for the disk: later replies may not overtake it.
    var heldThrough: UInt64 = 0
    /// Commands queued since `MULTI`, or `nil` outside a transaction.
    var queued: [QueuedCommand]?
    /// The delta sequence this node reaches after the client's last write: `WAIT` counts the peers that
    /// acknowledged it (0: the client wrote nothing yet).
    var writeSequence: UInt64 = 0
    /// A `WAIT` that has not answered yet, and the requests that arrived behind it.
    var parked: ParkedWait?
    /// The last (un)subscribing command of a subscribed client, for `CLIENT LIST`'s `cmd` (other
    /// commands are not recorded, to keep the common path free of it).
    var lastSubscription: String?
    /// A command queued since `MULTI` was refused: `EXEC` must abort the whole transaction.
    var transactionFailed = false
    /// The monotonic time of the tick before the client connected, for `CLIENT LIST`'s `age`.
    var connectedAt: UInt64 = 0
}

/// A command queued inside `MULTI`, with its arguments (they name its keyspace events).
struct QueuedCommand {
    var command: Command
    var arguments: [Bytes]
}

/// Counters reported by `INFO`.
struct EngineStats {
    var commandsProcessed: UInt64 = 0
    var connectionsAccepted: UInt64 = 0
    var localWrites: UInt64 = 0
    var lastTick: UInt64 = 0
    var firstTick: UInt64?
    var expiredKeys: UInt64 = 0
}

extension Engine {
    /// Live keys by the type they show, for the metrics. O(types): the counts are kept on every write.
    public var keysByType: [String: Int] {
        var counts: [String: Int] = [:]
        for (type, count) in keyspace.keysByType { counts[type.rawValue] = count }
        return counts
    }
}
