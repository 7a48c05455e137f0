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
        keyspace.stageSnapshots(into: &output.records)
        replicator?.lamport = clock.counter
        replicator?.flush(into: &output)
    }

    mutating func receive(frame: Bytes, from source: PeerEndpoint, into output: inout EngineOutput) {
        let accepting = writeRefusal == nil
        replicator?.receive(frame: frame, from: source, keyspace: &keyspace, clock: &clock,
                            acceptingWrites: accepting, into: &output)
    }

    mutating func replicationTick(now: UInt64, into output: inout EngineOutput) {
        guard let current = replicator?.now else { return }
        keyspace.now = max(current, now)
        let accepting = writeRefusal == nil
        replicator?.lamport = clock.counter
        replicator?.tick(now: now, keyspace: &keyspace, acceptingWrites: accepting, into: &output)
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
