import CRDT
import RESP
import Wire

/// The engine's side of replication: it hands the `Replicator` its inputs (frames, ticks, local deltas,
/// the end of a batch) with the keyspace and the clock, and the replicator appends frames and records.
extension Engine {
    /// A local write's delta: replicated at the end of the batch.
    mutating func disseminate(_ delta: Bytes, of key: Bytes) {
        replicator?.record(delta: delta, of: key)
    }

    /// Ends a batch of inputs: the replication progress it made is recorded, and the deltas it produced
    /// are pushed to peers; then the step ends (see `CommitTracker`).
    public mutating func flush(into output: inout EngineOutput) {
        defer { endStep(into: &output) }
        replicator?.publishedThisBatch = 0
        if replicator?.largeStates.decoding.isEmpty == false {
            replicator?.joinDecodedStates(keyspace: &keyspace, into: &output)
            notifyRemoteChanges(into: &output)
        }
        keyspace.stageSnapshots(into: &output.records)
        replicator?.lamport = clock.counter
        replicator?.flush(into: &output)
        replicator?.sendLargeStateChunks(into: &output)
    }

    mutating func receive(frame: Bytes, from source: PeerEndpoint, into output: inout EngineOutput) {
        let accepting = writeRefusal == nil
        replicator?.receive(frame: frame, from: source, keyspace: &keyspace, clock: &clock,
                            acceptingWrites: accepting, into: &output)
        notifyRemoteChanges(into: &output)
        if replicator?.publications.isEmpty == false {
            for publication in replicator?.takePublications() ?? [] {
                publish(publication.channel, publication.message, sharded: publication.sharded, early: true, into: &output)
            }
        }
        // The frame may be an acknowledgement that a parked WAIT counts on.
        if !parkedClients.isEmpty { serveParkedWaits(into: &output) }
    }

    mutating func replicationTick(now: UInt64, into output: inout EngineOutput) {
        guard let current = replicator?.now else { return }
        keyspace.now = max(current, now)
        let accepting = writeRefusal == nil
        replicator?.lamport = clock.counter
        replicator?.tick(now: now, keyspace: &keyspace, acceptingWrites: accepting, into: &output)
        collectTombstones(now: now, into: &output)
        notifyRemoteChanges(into: &output)
    }

    /// This node leaves the cluster gracefully (SIGTERM): every reachable peer is told.
    public mutating func leave(into output: inout EngineOutput) {
        replicator?.lamport = clock.counter
        replicator?.leave(into: &output)
    }

    /// `CRDT.PEERS`: one entry per known member.
    func peersReply() -> RESPReply {
        replicator?.peersReply() ?? .array([])
    }
}

// MARK: Stability

extension Engine {
    /// `CRDT.STABILITY`: the frontier (per replica, the write stamps every member has applied), this
    /// node's own applied vector, the member holding the frontier back and by how many writes, and the
    /// members that have not reported yet.
    func stabilityReply() -> RESPReply {
        guard let replicator else {
            return .error("ERR this node runs without peers: the stability frontier is a cluster's")
        }
        let frontier = replicator.frontier
        func vector(_ vector: [ReplicaID: UInt64]) -> RESPReply {
            .map(vector.sorted { $0.key < $1.key }.map {
                .init(key: .bulkString($0.key.description), value: .integer(Int64(clamping: $0.value)))
            })
        }
        return .map([
            .init(key: .bulkString("frontier"), value: vector(frontier.vector)),
            .init(key: .bulkString("applied"), value: vector(replicator.stability.vector)),
            .init(key: .bulkString("holder"), value: frontier.holder.map { .bulkString($0) } ?? .null),
            .init(key: .bulkString("behind"), value: .integer(Int64(clamping: frontier.behind))),
            .init(key: .bulkString("unreported"), value: .array(frontier.unreported.map { .bulkString($0) })),
            .init(key: .bulkString("members"), value: .integer(Int64(replicator.membership.members.count + 1))),
        ])
    }
}

// MARK: Decommissioning

extension Engine {
    /// `CRDT.FORGET node`. The fact is persisted with this batch and gossiped; the reply follows the commit.
    mutating func forget(_ node: String) -> RESPReply {
        guard replicator != nil else {
            return .error("ERR this node runs without peers: CRDT.FORGET decommissions a member of a cluster")
        }
        switch replicator!.forget(node) {
        case .success:
            return .ok
        case .failure(.unknown):
            return .error("ERR no member named '\(node)' is known here (CRDT.PEERS lists the members)")
        case .failure(.selfNode):
            return .error("ERR a node cannot forget itself: run CRDT.FORGET \(node) on another member")
        case .failure(.reachable(let state)):
            return .error("ERR \(node) is \(state): CRDT.FORGET decommissions a node that is gone for good; stop it "
                + "first (a stopped node shows as left, a killed one as dead within seconds)")
        }
    }

    /// Why writes are refused on a node whose identity the cluster forgot: they would never replicate.
    public var decommissionedRefusal: String? {
        guard let replicator, replicator.membership.decommissioned else { return nil }
        return "DECOMMISSIONED this node's identity \(replicator.replica) was removed from the cluster (CRDT.FORGET): "
            + "its writes would never replicate. Stop it, wipe its data directory and start it again to rejoin as a new replica"
    }
}
