import CRDT
import Wire

/// Delta dissemination: every delta this node joins is buffered under its own sequence, pushed at once to
/// `fanout` peers, and resent in gossip rounds until each live peer acknowledges it.
extension Replicator {
    /// A delta joined into `key` (local, or received from `source` and new to us): buffer it for peers and
    /// push it at the end of the batch.
    mutating func record(delta: Bytes, of key: Bytes, from source: String? = nil) {
        // A delta too large for one frame is not buffered; peers get the key by digest repair instead.
        guard delta.count + key.count < settings.maxFrameBytes / 2 else {
            needsSync.formUnion(membership.reachable.map(\.nodeID))
            return
        }
        let entry = DeltaBuffer.Entry(sequence: nextSequence, delta: KeyedBytes(key: key, bytes: delta), source: source)
        nextSequence += 1
        progressChanged = true
        if buffer.append(entry) { stats.bufferDrops += 1 }
        pendingEager.append(entry)
    }

    /// Ends a batch of inputs: records the progress it made (it rides in the same commit as the batch's
    /// deltas, before any of its frames leave) and pushes the batch's deltas to `fanout` random peers, one
    /// frame carrying every delta of the batch.
    mutating func flush(into output: inout EngineOutput) {
        recordProgress(into: &output)
        guard !pendingEager.isEmpty else { return }
        let entries = pendingEager
        pendingEager.removeAll(keepingCapacity: true)
        var targets = targets
        targets.shuffle(using: &random)
        // Peers the deltas came from already hold them: push to the others first.
        let sources = Set(entries.compactMap(\.source))
        targets.sort { !sources.contains($0.nodeID) && sources.contains($1.nodeID) }
        for member in targets.prefix(settings.fanout) {
            sendDeltas(entries[...], claimingFrom: entries[0].sequence, to: member, into: &output)
        }
    }

    /// Sends `entries` (consecutive sequences) to `member`, packed into as few frames as fit. The first
    /// frame claims the interval from `claimingFrom`, which may be below the first entry when the buffer no
    /// longer holds older deltas: the peer then skips them and is repaired by digest comparison.
    mutating func sendDeltas(_ entries: ArraySlice<DeltaBuffer.Entry>, claimingFrom: UInt64, to member: Membership.Member,
                             into output: inout EngineOutput) {
        let budget = settings.maxDatagramBytes - settings.envelope.overhead - 96 - selfID.utf8.count
        var from = claimingFrom
        var batch: [KeyedBytes] = []
        var size = 0
        var last = claimingFrom
        for entry in entries {
            let entrySize = entry.delta.key.count + entry.delta.bytes.count + 8
            if !batch.isEmpty && size + entrySize > budget {
                send(.deltas(from: from, to: last, entries: batch), to: member.endpoint, recipient: member.nodeID, into: &output)
                from = last
                batch.removeAll(keepingCapacity: true)
                size = 0
            }
            batch.append(entry.delta)
            size += entrySize
            last = entry.sequence + 1
        }
        if !batch.isEmpty || from < last {
            send(.deltas(from: from, to: last, entries: batch), to: member.endpoint, recipient: member.nodeID, into: &output)
        }
    }

    /// Sends every reachable peer the buffered deltas it has not acknowledged, and collects what all have.
    mutating func gossipRound(into output: inout EngineOutput) {
        let next = nextSequence
        var lowest = next
        for member in targets {
            let acked = acknowledged(by: member)
            lowest = min(lowest, acked)
            guard acked < next else { continue }
            if buffer.bytes(from: acked) > settings.maxReplayBytes {
                needsSync.insert(member.nodeID)
                stats.replaysSkipped += 1
                send(.deltas(from: acked, to: next, entries: []), to: member.endpoint, recipient: member.nodeID, into: &output)
                continue
            }
            if let first = buffer.firstSequence, acked < first {
                needsSync.insert(member.nodeID)
            } else if buffer.firstSequence == nil {
                needsSync.insert(member.nodeID)
            }
            var entries = buffer.entries(from: acked)
            var bytes = 0
            var end = entries.startIndex
            while end < entries.endIndex && bytes < settings.maxDeltaBytesPerRound {
                bytes += entries[end].delta.bytes.count + entries[end].delta.key.count
                end += 1
            }
            entries = entries[entries.startIndex..<end]
            if entries.isEmpty {
                // Nothing buffered covers the gap: tell the peer to skip to `next`; repair fills it.
                send(.deltas(from: acked, to: next, entries: []), to: member.endpoint, recipient: member.nodeID, into: &output)
            } else {
                sendDeltas(entries, claimingFrom: acked, to: member, into: &output)
            }
        }
        // Members that are dead or cut off do not hold back collection: they are repaired by digests.
        buffer.collect(below: lowest)
    }

    mutating func receiveDeltas(from: UInt64, to: UInt64, entries: [KeyedBytes], header: PeerHeader,
                                keyspace: inout Keyspace, into output: inout EngineOutput) {
        // Decode everything first: a frame with one bad delta is rejected whole and not acknowledged.
        var decoded: [(Bytes, KeyObject, Bytes)] = []
        decoded.reserveCapacity(entries.count)
        for entry in entries {
            guard let delta = try? KeyObject(serialized: entry.bytes, limits: decodingLimits) else {
                stats.rejected[FrameRejection.malformed.rawValue, default: 0] += 1
                return
            }
            decoded.append((entry.key, delta, entry.bytes))
        }
        for (key, delta, bytes) in decoded {
            join(delta, bytes: bytes, into: key, keyspace: &keyspace, rebroadcastFrom: header.nodeID, output: &output)
        }
        stats.deltasApplied += UInt64(decoded.count)
        // Advance the gap-free mark only when this interval starts within what we hold: a later interval
        // is joined (joins commute) but acknowledged only once the gap before it is filled.
        var progress = received[header.nodeID].flatMap { $0.replica == header.replica ? $0 : nil }
            ?? PeerProgress(replica: header.replica, sequence: 0)
        if from <= progress.sequence && to > progress.sequence {
            progress.sequence = to
            progressChanged = true
        }
        received[header.nodeID] = progress
        send(.deltaAck(receivedThrough: progress.sequence), to: header.endpoint, recipient: header.nodeID, into: &output)
    }

    /// Taken as it is, even when lower: a peer restored from a backup (or that lost its last commits) has
    /// less than it once acknowledged, and resending from its mark costs only bytes. A stale ack that
    /// arrives late does the same, once.
    mutating func receiveDeltaAck(through: UInt64, from node: String) {
        guard let member = membership.member(node) else { return }
        let clamped = min(through, nextSequence)
        if clamped != acknowledged(by: member) || acknowledged[node]?.replica != member.replica {
            acknowledged[node] = PeerProgress(replica: member.replica, sequence: clamped)
        }
    }

    /// Joins a delta or state from a peer into `key`; persists it and, if it was new and came from a peer
    /// as a delta (`rebroadcastFrom`), passes it on.
    mutating func join(_ delta: KeyObject, bytes: Bytes, into key: Bytes, keyspace: inout Keyspace,
                       rebroadcastFrom source: String?, output: inout EngineOutput) {
        guard let record = keyspace.join(remote: delta, bytes: bytes, into: key) else { return }
        output.records.append(record)
        if let source { self.record(delta: bytes, of: key, from: source) }
    }
}
