import CRDT
import RESP
import Wire

/// Replication progress with one peer, remembered per (node, replica) so that a node rebuilt with a new
/// identity starts from zero instead of inheriting the old one's progress.
struct PeerProgress: Equatable {
    var replica: ReplicaID
    var sequence: UInt64
}

/// Replication as a state machine, in the style of `Membership`: it consumes peer frames, timer ticks and
/// the keyspace's local changes, and produces frames to send and records to persist. It owns membership,
/// the delta buffer, per-peer progress and repair; it reads and joins into the `Keyspace` it is handed, and
/// does no I/O. The engine stamps nothing: every frame leaves sealed, with the Lamport value it was given.
///
/// Entry points: `receive(frame:...)`, `tick(now:...)`, `record(delta:of:from:)` (a local or newly joined
/// delta), `flush(into:)` (end of a batch), `leave(into:)`.
struct Replicator {
    let selfID: String
    let replica: ReplicaID
    let decodingLimits: DecodingLimits
    var settings: ReplicationSettings
    var membership: Membership
    var buffer: DeltaBuffer
    /// Sequence number the next buffered delta gets; persisted, so peers' acknowledgements stay meaningful.
    var nextSequence: UInt64
    /// Per peer: how many of *our* deltas it acknowledged (everything below is there).
    var acknowledged: [String: PeerProgress] = [:]
    /// Per peer: what we sent it beyond its acknowledgement, and when its acknowledgement last advanced.
    var outflows: [String: Outflow] = [:]
    /// Peers whose comparison with us in progress is a safety net (see `PeerMessage.syncRoot`).
    var safetyNetComparisons: Set<String> = []
    /// Per peer: when it last sent us deltas (a peer still sending is not compared with for repair).
    var lastDeltasAt: [String: UInt64] = [:]
    /// Per peer: how many of *its* deltas we hold without a gap; sent back as our acknowledgement.
    var received: [String: PeerProgress] = [:]
    /// Deltas buffered since the last flush: pushed at once to a few random peers.
    var pendingEager: [DeltaBuffer.Entry] = []
    /// Peers that may lack something the buffer no longer holds: compare digests with them first.
    var needsSync: Set<String> = []
    /// Nodes whose frames to us are dropped here (`CRDT.PARTITION` and `CRDT.PARTITION INBOUND`).
    var blockedInbound: Set<String> = []
    /// Nodes we send nothing to (`CRDT.PARTITION` and `CRDT.PARTITION OUTBOUND`); a two-way cut is both.
    var blocked: Set<String> = []
    var random: SplitMix64
    var now: UInt64 = 0
    /// The engine's Lamport counter, stamped on the frames sealed during the current input.
    var lamport: UInt64 = 0
    var lastGossipAt: UInt64 = 0
    var lastSyncAt: UInt64 = 0
    var syncRounds: UInt64 = 0
    /// Large states being received in chunks, one per peer at a time.
    var assemblies: [String: Assembly] = [:]
    var progressChanged = false
    /// When each forgotten identity was last told so (see `tellForgotten`).
    var forgottenNotices: [ReplicaID: UInt64] = [:]
    var stats = ReplicationStats()
    /// Which writes this node and every member have applied: the causal-stability frontier.
    var stability: Stability
    /// Per peer, the stability vector last reported to it and when (see `reportStability`).
    var stabilityReported: [String: (vector: [ReplicaID: UInt64], at: UInt64)] = [:]
    /// How often a changed stability vector is reported to each peer, and how often an unchanged one is
    /// repeated (a restarted peer has forgotten the reports it had).
    static let stabilityReportMilliseconds: UInt64 = 1_000
    static let stabilityRepeatMilliseconds: UInt64 = 3_000
    /// `PUBLISH`es received from peers since the engine last took them (it delivers them locally).
    var publications: [Publication] = []
    /// Bytes of `PUBLISH` frames sent in the current batch (see `publish(channel:message:)`).
    var publishedThisBatch = 0
    /// Per peer, large keys whose repair is held back while their difference is in flux (see
    /// `deferRepair`), with the digests last compared.
    var repairDeferrals: [String: [Bytes: Deferral]] = [:]
    static let maxDeferralsPerPeer = 1024
    /// Per peer, large states (sent in chunks) and when they may be sent again: a repair round that
    /// still finds the peer without the key does not push another whole copy while the last one is
    /// draining (docs/benchmarks.md, "Transfer of a 1 M-member set": 3 to 85 copies without this).
    var largeStatesInFlight: [String: [Bytes: UInt64]] = [:]
    /// Large states serialised off the engine thread and sent a few chunks per step (`LargeStateSender`).
    var largeStates = LargeStateSender()
    /// Membership updates applied from one message; the rest are ignored (a sender gossips at most 8).
    static let maxUpdatesPerMessage = 64
    /// Large states assembled from chunks at once (one per peer at most).
    static let maxConcurrentAssemblies = 4

    /// Deltas in flight to one peer: sent up to `sentThrough`, acknowledged up to `acked`.
    struct Outflow {
        var replica: ReplicaID
        var acked: UInt64
        var sentThrough: UInt64
        /// When the peer's acknowledgement last advanced (or we last resent): the retransmit timer.
        var progressAt: UInt64
        /// When the peer's acknowledgement last advanced; 0 if never.
        var ackedAt: UInt64 = 0
    }

    struct Deferral {
        var ours: Digest128
        var theirs: Digest128
        var rounds: Int
    }

    struct Assembly {
        var key: Bytes
        var total: Int
        var bytes: Bytes
        /// Offsets of the chunks placed so far, and how many bytes they hold.
        var offsets: Set<UInt64> = []
        var received = 0
    }

    init(settings: ReplicationSettings, selfID: String, replica: ReplicaID, decodingLimits: DecodingLimits,
         incarnation: UInt64, nextSequence: UInt64, forgotten: [ReplicaID: String] = [:],
         applied: [ReplicaID: UInt64] = [:]) {
        self.selfID = selfID
        self.replica = replica
        self.decodingLimits = decodingLimits
        self.settings = settings
        self.membership = Membership(selfID: selfID, replica: replica, incarnation: incarnation, forgotten: forgotten)
        self.buffer = DeltaBuffer(capacityBytes: settings.deltaBufferBytes)
        self.nextSequence = nextSequence
        self.random = SplitMix64(seed: settings.randomSeed)
        self.stability = Stability(replica: replica, recovered: applied)
    }

    /// Live, reachable peers: alive or suspect, and not cut off by an injected partition.
    var targets: [Membership.Member] {
        membership.reachable.filter { !blocked.contains($0.nodeID) }
    }

    func acknowledged(by member: Membership.Member) -> UInt64 {
        guard let progress = acknowledged[member.nodeID], progress.replica == member.replica else { return 0 }
        return progress.sequence
    }

    // MARK: Time

    /// Advances failure detection, gossip and repair to `now` (monotonic milliseconds). While the store
    /// refuses writes, delta and repair rounds are skipped: they would only queue frames behind the stuck
    /// commit; they resume after.
    mutating func tick(now: UInt64, keyspace: inout Keyspace, acceptingWrites: Bool, into output: inout EngineOutput) {
        self.now = max(self.now, now)
        // A decommissioned identity stays silent: its peers refuse it, and probing them would only be refused.
        guard !membership.decommissioned else { return }
        let blocked = blocked
        let actions = membership.tick(now: self.now, settings: settings, seeds: settings.seeds, blocked: blocked,
                                      random: &random)
        for action in actions { perform(action, into: &output) }
        if self.now >= lastGossipAt + settings.gossipIntervalMilliseconds {
            lastGossipAt = self.now
            if acceptingWrites { gossipRound(into: &output) }
            reportStability(into: &output)
        }
        if self.now >= lastSyncAt + settings.syncIntervalMilliseconds {
            lastSyncAt = self.now
            if acceptingWrites { syncRound(keyspace: &keyspace, into: &output) }
        }
    }

    // MARK: Receiving

    /// Authenticates, decodes and handles one frame from the network. Nothing a peer sends can crash the
    /// node: every failure is a counted rejection. Messages that join state are dropped, unacknowledged,
    /// while the store refuses writes: the peer keeps them and resends later.
    mutating func receive(frame: Bytes, from source: PeerEndpoint, keyspace: inout Keyspace, clock: inout LamportClock,
                          acceptingWrites: Bool, into output: inout EngineOutput) {
        stats.bytesIn += UInt64(frame.count)
        let header: PeerHeader
        let message: PeerMessage
        do {
            let payload = try settings.envelope.open(frame)
            (header, message) = try PeerCodec.decode(payload)
        } catch {
            stats.rejected[error.rawValue, default: 0] += 1
            return
        }
        guard header.nodeID != selfID else {
            stats.rejected["self", default: 0] += 1
            return
        }
        guard !blockedInbound.contains(header.nodeID) else {
            stats.rejected["partitioned", default: 0] += 1
            return
        }
        guard !membership.decommissioned else {
            stats.rejected["decommissioned", default: 0] += 1
            return
        }
        guard !membership.isForgotten(header.replica) else {
            stats.rejected["forgotten", default: 0] += 1
            tellForgotten(header, into: &output)
            return
        }
        stats.framesIn[message.name, default: 0] += 1
        clock.observe(LamportTimestamp(counter: header.lamport, replica: header.replica))
        lamport = clock.counter
        if case .leave = message {
            membership.apply(MemberUpdate(nodeID: header.nodeID, replica: header.replica, endpoint: header.endpoint,
                                          incarnation: header.incarnation, state: .left), now: now)
            return
        }
        membership.observe(header, now: now)
        if Self.needsCommit(message), !acceptingWrites {
            stats.rejected["storage_behind", default: 0] += 1
            return
        }
        let sender = header.endpoint
        switch message {
        case .ping(let sequence, let updates):
            for update in updates.prefix(Self.maxUpdatesPerMessage) { membership.apply(update, now: now) }
            let piggyback = membership.piggyback(to: header.nodeID)
            send(.ack(sequence: sequence, updates: piggyback), to: sender, recipient: header.nodeID, into: &output)
        case .ack(let sequence, let updates):
            for update in updates.prefix(Self.maxUpdatesPerMessage) { membership.apply(update, now: now) }
            if let forward = membership.acknowledged(sequence) { perform(forward, into: &output) }
        case .pingRequest(let sequence, let target):
            perform(membership.relayProbe(for: sender, sequence: sequence, target: target, now: now), into: &output)
        case .leave:
            break
        case .deltas(let from, let to, let entries, let reaching):
            receiveDeltas(from: from, to: to, entries: entries, reaching: reaching, header: header, keyspace: &keyspace,
                          into: &output)
        case .deltaAck(let through):
            receiveDeltaAck(through: through, from: header.nodeID)
        case .syncRoot, .syncBuckets, .syncKeys, .requestStates, .states, .stateChunk:
            receiveRepair(message, from: header.nodeID, at: sender, keyspace: &keyspace, into: &output)
        case .publish(let channel, let payload, let sharded):
            // Delivered to this node's subscribers by the engine; never forwarded (the origin sends to all).
            publications.append(Publication(channel: channel, message: payload, sharded: sharded))
        case .stability(let applied):
            stability.receive(report: applied, from: header.nodeID, replica: header.replica)
        }
        if membership.refutationPending {
            // A rumour against us: gossip our own alive update (our real address and identity).
            membership.enqueueSelf(membership.selfUpdate(endpoint: settings.endpoint, replica: replica))
        }
    }

    /// Peer messages that need a commit to be handled (they join state, or answer with state that may
    /// not be durable).
    static func needsCommit(_ message: PeerMessage) -> Bool {
        switch message {
        case .ping, .ack, .pingRequest, .leave, .deltaAck, .publish, .stability: false
        case .deltas, .syncRoot, .syncBuckets, .syncKeys, .requestStates, .states, .stateChunk: true
        }
    }

    static func isPublication(_ message: PeerMessage) -> Bool {
        if case .publish = message { return true }
        return false
    }

    /// Frames that carry only membership (SWIM probes): they reveal no data, so they leave at once and a
    /// node whose disk is stuck is not declared dead.
    static func isMembershipProbe(_ message: PeerMessage) -> Bool {
        switch message {
        case .ping, .ack, .pingRequest: true
        default: false
        }
    }

    // MARK: Sending

    mutating func perform(_ action: Membership.Action, into output: inout EngineOutput) {
        switch action {
        case .ping(let endpoint, let nodeID, let sequence):
            let updates = membership.piggyback(to: nodeID)
            send(.ping(sequence: sequence, updates: updates), to: endpoint, recipient: nodeID, into: &output)
        case .pingRequest(let endpoint, let nodeID, let sequence, let target):
            send(.pingRequest(sequence: sequence, target: target), to: endpoint, recipient: nodeID, into: &output)
        case .forwardAck(let endpoint, let sequence):
            send(.ack(sequence: sequence, updates: []), to: endpoint, recipient: nil, into: &output)
        }
    }

    /// Seals and emits one frame; small frames go as datagrams, larger ones on the stream. Membership
    /// probes leave at once; everything else after the step's commit.
    mutating func send(_ message: PeerMessage, to endpoint: PeerEndpoint, recipient: String?, into output: inout EngineOutput) {
        if let recipient, blocked.contains(recipient) { return }
        if recipient == nil, !blocked.isEmpty, membership.members.values.contains(where: {
            $0.endpoint == endpoint && blocked.contains($0.nodeID)
        }) { return }
        let header = PeerHeader(nodeID: selfID, replica: replica, endpoint: settings.endpoint,
                                incarnation: membership.incarnation, lamport: lamport)
        let probe = Self.isMembershipProbe(message)
        let frame = settings.envelope.seal(PeerCodec.encode(header, message), probe: probe)
        stats.framesOut[message.name, default: 0] += 1
        stats.bytesOut += UInt64(frame.count)
        let effect = Effect.send(frame, to: endpoint, via: frame.count <= settings.maxDatagramBytes ? .datagram : .stream)
        // A published message reveals nothing stored either: it does not wait for the commit.
        if probe || Self.isPublication(message) { output.immediate.append(effect) } else { output.effects.append(effect) }
    }

    /// This node leaves the cluster gracefully: every reachable peer is told, so none waits to suspect it.
    /// The raised incarnation is committed before the leave frames are released: a restart resumes above
    /// it, so peers see the node come back instead of keeping it `left`.
    mutating func leave(into output: inout EngineOutput) {
        membership.leave()
        recordProgress(into: &output)
        for member in targets {
            send(.leave, to: member.endpoint, recipient: member.nodeID, into: &output)
        }
    }

    // MARK: Persistence of progress

    /// Appends the records of progress made since the last call (incarnation, delta sequence, what we
    /// received from each peer): once per batch, in the same commit as the batch's deltas.
    mutating func recordProgress(into output: inout EngineOutput) {
        if membership.forgottenChanged {
            membership.forgottenChanged = false
            output.records.append(.meta(name: MetaKey.forgotten, value: Self.encodeForgotten(membership.forgotten)))
            pruneDeparted()
        }
        if membership.incarnationChanged {
            membership.incarnationChanged = false
            output.records.append(.meta(name: MetaKey.incarnation, value: Engine.encodeCounter(membership.incarnation)))
        }
        if stability.changed {
            stability.changed = false
            output.records.append(.meta(name: MetaKey.applied, value: Stability.encode(stability.vector)))
        }
        guard progressChanged else { return }
        progressChanged = false
        output.records.append(.meta(name: MetaKey.deltaSequence, value: Engine.encodeCounter(nextSequence)))
        output.records.append(.meta(name: MetaKey.received, value: Self.encodeProgress(received)))
    }

    static func encodeForgotten(_ forgotten: [ReplicaID: String]) -> Bytes {
        var writer = BinaryWriter()
        writer.write(varint: UInt64(forgotten.count))
        for (replica, node) in forgotten.sorted(by: { $0.key < $1.key }) {
            writer.write(varint: replica.rawValue)
            writer.write(lengthPrefixed: Array(node.utf8))
        }
        return writer.bytes
    }

    static func decodeForgotten(_ bytes: Bytes) -> [ReplicaID: String]? {
        guard var reader = try? BinaryReader(bytes), let count = try? reader.readCount(minimumElementSize: 2) else { return nil }
        var forgotten: [ReplicaID: String] = [:]
        for _ in 0..<count {
            guard let replica = try? reader.readVarint(), let node = try? reader.readLengthPrefixed() else { return nil }
            forgotten[ReplicaID(replica)] = String(decoding: node, as: UTF8.self)
        }
        return (try? reader.finish()) != nil ? forgotten : nil
    }

    static func encodeProgress(_ progress: [String: PeerProgress]) -> Bytes {
        var writer = BinaryWriter()
        writer.write(varint: UInt64(progress.count))
        for (node, entry) in progress.sorted(by: { $0.key < $1.key }) {
            writer.write(lengthPrefixed: Array(node.utf8))
            writer.write(varint: entry.replica.rawValue)
            writer.write(varint: entry.sequence)
        }
        return writer.bytes
    }

    static func decodeProgress(_ bytes: Bytes) -> [String: PeerProgress]? {
        guard var reader = try? BinaryReader(bytes), let count = try? reader.readCount(minimumElementSize: 3) else { return nil }
        var progress: [String: PeerProgress] = [:]
        for _ in 0..<count {
            guard let node = try? reader.readLengthPrefixed(), let replica = try? reader.readVarint(),
                  let sequence = try? reader.readVarint() else { return nil }
            progress[String(decoding: node, as: UTF8.self)] = PeerProgress(replica: ReplicaID(replica), sequence: sequence)
        }
        return (try? reader.finish()) != nil ? progress : nil
    }

    // MARK: Decommissioning

    /// `CRDT.FORGET node`: decommissions a member that is gone for good. Its identity is refused from now
    /// on, here and (by gossip) on every member; the per-peer state kept for it is dropped at the end of
    /// the batch, with the fact persisted.
    mutating func forget(_ node: String) -> Result<ReplicaID, Membership.ForgetRefusal> {
        membership.forget(node)
    }

    /// Tells a forgotten identity that it is, at most once a second: it stops replicating and says why.
    mutating func tellForgotten(_ header: PeerHeader, into output: inout EngineOutput) {
        if let last = forgottenNotices[header.replica], now < last + 1000 { return }
        forgottenNotices[header.replica] = now
        send(.ack(sequence: 0, updates: [membership.forgottenUpdate(header.replica)]), to: header.endpoint, recipient: nil,
             into: &output)
    }

    /// Drops what is kept per peer for nodes that are no longer members (forgotten), or for an identity a
    /// node abandoned: without this, every decommissioned node would leave its entries behind for ever.
    mutating func pruneDeparted() {
        let members = membership.members
        func current(_ node: String, _ replica: ReplicaID?) -> Bool {
            guard let member = members[node] else { return false }
            return replica == nil || member.replica == replica
        }
        acknowledged = acknowledged.filter { current($0.key, $0.value.replica) }
        received = received.filter { current($0.key, $0.value.replica) }
        outflows = outflows.filter { current($0.key, $0.value.replica) }
        lastDeltasAt = lastDeltasAt.filter { current($0.key, nil) }
        safetyNetComparisons = safetyNetComparisons.filter { current($0, nil) }
        needsSync = needsSync.filter { current($0, nil) }
        assemblies = assemblies.filter { current($0.key, nil) }
        repairDeferrals = repairDeferrals.filter { current($0.key, nil) }
        forgottenNotices = forgottenNotices.filter { membership.isForgotten($0.key) }
        stability.prune { current($0, $1) }
        stabilityReported = stabilityReported.filter { current($0.key, nil) }
        progressChanged = true
    }

    // MARK: Administration

    /// How an injected partition cuts this node from `node`, for `CRDT.PEERS`.
    func partitionNote(_ node: String) -> String? {
        switch (blockedInbound.contains(node), blocked.contains(node)) {
        case (true, true): "partitioned here"
        case (true, false): "inbound cut here"
        case (false, true): "outbound cut here"
        case (false, false): nil
        }
    }

    /// `CRDT.PEERS`: one entry per known member.
    func peersReply() -> RESPReply {
        let members = membership.members.values.sorted { $0.nodeID < $1.nodeID }
        return .array(members.map { member in
            .map([
                .init(key: .bulkString("node"), value: .bulkString(member.nodeID)),
                .init(key: .bulkString("address"), value: .bulkString(member.endpoint.description)),
                .init(key: .bulkString("state"), value: .bulkString(partitionNote(member.nodeID).map { "\(member.state) (\($0))" }
                    ?? member.state.description)),
                .init(key: .bulkString("incarnation"), value: .integer(Int64(clamping: member.incarnation))),
                .init(key: .bulkString("replica"), value: .bulkString(member.replica.description)),
                .init(key: .bulkString("acknowledged"), value: .integer(Int64(clamping: acknowledged(by: member)))),
                .init(key: .bulkString("received"), value: .integer(Int64(clamping: received[member.nodeID]?.sequence ?? 0))),
            ])
        })
    }
}

/// Names of the replication metadata records.
extension MetaKey {
    static let deltaSequence = "delta_seq"
    static let incarnation = "incarnation"
    static let received = "received"
    static let forgotten = "forgotten"
    static let acknowledged = "acknowledged"
    static let applied = "applied"
}

/// Counters the daemon exports as metrics.
/// A message published on another node.
struct Publication: Equatable {
    var channel: Bytes
    var message: Bytes
    var sharded = false
}

extension Replicator {
    /// Bytes of `PUBLISH` frames one batch may send to peers; past it a message reaches this node's
    /// subscribers only (counted in `publishDropped`). Publishing never delays replication: the
    /// frames leave at once, outside the commit, and are never resent.
    static let maxPublishBytesPerBatch = 1 << 20
    /// A message larger than this (channel and payload) is delivered on this node only.
    static let maxPublishBytes = 64 << 10

    /// Sends a `PUBLISH` to every reachable peer, best effort: once, as a datagram when it fits and on
    /// the stream otherwise, unacknowledged. Returns whether it was sent.
    @discardableResult
    mutating func publish(channel: Bytes, message: Bytes, sharded: Bool = false, into output: inout EngineOutput) -> Bool {
        let members = targets
        guard !members.isEmpty else { return true }
        let size = channel.count + message.count
        guard size <= Self.maxPublishBytes, publishedThisBatch + size * members.count <= Self.maxPublishBytesPerBatch else {
            stats.publishDropped += 1
            return false
        }
        publishedThisBatch += size * members.count
        for member in members {
            send(.publish(channel: channel, message: message, sharded: sharded), to: member.endpoint, recipient: member.nodeID,
                 into: &output)
        }
        return true
    }

    mutating func takePublications() -> [Publication] {
        defer { publications.removeAll(keepingCapacity: true) }
        return publications
    }
}

public struct ReplicationStats: Sendable, Equatable {
    /// `PUBLISH`es not sent to peers: over the per-batch budget or too large (they reached local subscribers).
    public var publishDropped: UInt64 = 0
    public var framesIn: [String: UInt64] = [:]
    public var framesOut: [String: UInt64] = [:]
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    /// Frames dropped, by reason (`FrameRejection` raw values, plus `partitioned` and `self`).
    public var rejected: [String: UInt64] = [:]
    public var deltasApplied: UInt64 = 0
    public var statesApplied: UInt64 = 0
    public var bufferDrops: UInt64 = 0
    /// Peers told to skip a backlog larger than `maxReplayBytes` and repaired by digests instead.
    public var replaysSkipped: UInt64 = 0
    /// Whole-state transfers of large keys held back because their difference was still changing.
    public var repairsDeferred: UInt64 = 0
    /// Derived when read (`Engine.replicationStats`): writes summed over replicas at or below the
    /// stability frontier, and how many writes the member holding it back lags behind.
    public var stableWrites: UInt64 = 0
    /// Deltas and states dropped unjoined because every write they reflect was applied here already.
    public var staleDropped: UInt64 = 0
    /// Tombstones collected (filled in by `Engine.replicationStats`).
    public var tombstonesCollected: UInt64 = 0
    public var stabilityBehind: UInt64 = 0
    public init() {}
}

// MARK: Stability

extension Replicator {
    /// Reports this node's applied vector to every reachable member: at most once a second when it
    /// changed, and every three seconds regardless (a lost datagram costs that long). A few bytes per replica, as a datagram.
    mutating func reportStability(into output: inout EngineOutput) {
        let vector = stability.vector
        for member in targets {
            let last = stabilityReported[member.nodeID]
            if let last {
                let due = last.vector == vector ? Self.stabilityRepeatMilliseconds : Self.stabilityReportMilliseconds
                guard now >= last.at + due else { continue }
            }
            stabilityReported[member.nodeID] = (vector, now)
            send(.stability(applied: vector), to: member.endpoint, recipient: member.nodeID, into: &output)
        }
    }

    /// The frontier over this node and every current member.
    var frontier: Stability.Frontier {
        stability.frontier(selfID: selfID, members: Array(membership.members.values))
    }
}
