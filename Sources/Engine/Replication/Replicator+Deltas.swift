import CRDT
import Wire

/// Delta dissemination: every delta this node joins is buffered under its own sequence, pushed at once to
/// `fanout` peers, and resent in gossip rounds until each live peer acknowledges it.
extension Replicator {
    /// A delta joined into `key` (local, or received from `source` and new to us): buffer it for peers and
    /// push it at the end of the batch.
    mutating func record(delta: Bytes, of key: Bytes, from source: String? = nil, reaching: [String] = []) {
        // A delta too large for one frame is not buffered; peers get the key by digest repair instead.
        guard delta.count + key.count < settings.maxFrameBytes / 2 else {
            needsSync.formUnion(membership.reachable.map(\.nodeID))
            return
        }
        let entry = DeltaBuffer.Entry(sequence: nextSequence, delta: KeyedBytes(key: key, bytes: delta), source: source,
                                      reaching: reaching)
        nextSequence += 1
        progressChanged = true
        if buffer.append(entry) { stats.bufferDrops += 1 }
        pendingEager.append(entry)
    }

    /// Ends a batch of inputs: records the progress it made (it rides in the same commit as the batch's
    /// deltas, before any of its frames leave) and pushes the batch's deltas to `fanout` random peers, one
    /// frame carrying every delta of the batch.
    ///
    /// Deltas received from a peer are pushed on only in clusters larger than the fanout: in a smaller
    /// one their origin pushed them to every member it reaches, and the gossip round carries them to the
    /// members it does not (an asymmetric partition) a round later.
    mutating func flush(into output: inout EngineOutput) {
        recordProgress(into: &output)
        guard !pendingEager.isEmpty else { return }
        let forward = membership.members.count > settings.fanout
        let entries = forward ? pendingEager : pendingEager.filter { $0.source == nil }
        pendingEager.removeAll(keepingCapacity: true)
        guard let first = entries.first else { return }
        var targets = targets
        targets.shuffle(using: &random)
        // Peers the deltas came from already hold them: push to the others first.
        let sources = Set(entries.compactMap(\.source))
        targets.sort { !sources.contains($0.nodeID) && sources.contains($1.nodeID) }
        // Named in every frame of this push; computed once, since pushing changes no acknowledgement.
        let reaching = membersKeepingUp()
        for member in targets.prefix(settings.fanout) {
            var flow = outflow(to: member)
            // A peer with a full window gets these in a gossip round, once its acknowledgements catch up.
            guard buffer.bytes(from: flow.acked) - buffer.bytes(from: flow.sentThrough) < settings.maxInFlightBytes else { continue }
            sendDeltas(entries[...], claimingFrom: first.sequence, to: member, reaching: reaching, into: &output)
            if flow.sentThrough == first.sequence, entries.count == Int(nextSequence - first.sequence) {
                flow.sentThrough = nextSequence
            }
            outflows[member.nodeID] = flow
        }
    }

    /// Members whose acknowledgements of our sequence advanced within the retransmit timeout (or that
    /// hold all of it): we deliver our buffered deltas to them ourselves, so receivers need not forward
    /// them. A member cut off from us one way stops acknowledging and drops out of the list.
    func membersKeepingUp() -> [String] {
        var names: [String] = []
        for member in targets where names.count < PeerCodec.maximumReaching {
            let flow = outflow(to: member)
            if flow.ackedAt > 0 && (flow.acked >= nextSequence || now < flow.ackedAt + settings.retransmitMilliseconds) {
                names.append(member.nodeID)
            }
        }
        return names
    }

    /// What was sent to `member` and not yet acknowledged, per its current identity.
    func outflow(to member: Membership.Member) -> Outflow {
        let acked = acknowledged(by: member)
        guard var flow = outflows[member.nodeID], flow.replica == member.replica else {
            return Outflow(replica: member.replica, acked: acked, sentThrough: acked, progressAt: now)
        }
        flow.acked = acked
        // An acknowledgement past what we sent (another path delivered it) or below it (the peer lost
        // commits, or was restored) moves the send point: resending from an ack costs only bytes.
        if flow.sentThrough < acked || flow.sentThrough > nextSequence { flow.sentThrough = acked }
        return flow
    }

    /// Sends `entries` (ascending sequences) to `member`, packed into as few frames as fit. The first
    /// frame claims the interval from `claimingFrom`, which may be below the first entry when the buffer no
    /// longer holds older deltas: the peer then skips them and is repaired by digest comparison. A gap
    /// between two entries starts a new claim, so a frame never claims a delta it does not carry, except
    /// one that came from `member` itself.
    mutating func sendDeltas(_ entries: ArraySlice<DeltaBuffer.Entry>, claimingFrom: UInt64, to member: Membership.Member,
                             reaching: [String], into output: inout EngineOutput) {
        let budget = settings.maxDatagramBytes - settings.envelope.overhead - 96 - selfID.utf8.count
            - reaching.reduce(0) { $0 + $1.utf8.count + 1 }
        var from = claimingFrom
        var batch: [KeyedBytes] = []
        var size = 0
        var last = claimingFrom
        // Below the first entry, a gap is a claimed skip (the buffer no longer holds those deltas).
        if let first = entries.first, first.sequence > claimingFrom { last = first.sequence }
        for entry in entries {
            // The peer a delta came from holds it, and its source delivers it to those it names as
            // reaching: the frame claims it without carrying it.
            guard entry.source != member.nodeID, !entry.reaching.contains(member.nodeID) else {
                last = entry.sequence + 1
                continue
            }
            let entrySize = entry.delta.key.count + entry.delta.bytes.count + 8
            if entry.sequence > last {
                // A gap (deltas left out of this push): never claim what the frame does not carry.
                if !batch.isEmpty || from < last {
                    send(.deltas(from: from, to: last, entries: batch, reaching: batch.isEmpty ? [] : reaching), to: member.endpoint, recipient: member.nodeID, into: &output)
                }
                from = entry.sequence
                batch.removeAll(keepingCapacity: true)
                size = 0
            } else if !batch.isEmpty && size + entrySize > budget {
                send(.deltas(from: from, to: last, entries: batch, reaching: batch.isEmpty ? [] : reaching), to: member.endpoint, recipient: member.nodeID, into: &output)
                from = last
                batch.removeAll(keepingCapacity: true)
                size = 0
            }
            batch.append(entry.delta)
            size += entrySize
            last = entry.sequence + 1
        }
        if !batch.isEmpty || from < last {
            send(.deltas(from: from, to: last, entries: batch, reaching: batch.isEmpty ? [] : reaching), to: member.endpoint, recipient: member.nodeID, into: &output)
        }
    }

    /// Sends every reachable peer the buffered deltas it has not been sent yet, within its window, and
    /// resends from its acknowledgement only when no acknowledgement advanced for `retransmitMilliseconds`:
    /// a peer that is slow to answer is not buried under copies of what it is still working through.
    /// Collects what every live peer has.
    mutating func gossipRound(into output: inout EngineOutput) {
        let next = nextSequence
        var lowest = next
        let reaching = membersKeepingUp()
        for member in targets {
            var flow = outflow(to: member)
            defer { outflows[member.nodeID] = flow }
            let acked = flow.acked
            lowest = min(lowest, acked)
            guard acked < next else {
                flow.progressAt = now
                continue
            }
            let stalled = flow.sentThrough > acked && now >= flow.progressAt + settings.retransmitMilliseconds
            if stalled {
                flow.sentThrough = acked
                flow.progressAt = now
            }
            if flow.sentThrough == acked && buffer.bytes(from: acked) > settings.maxReplayBytes {
                // Too far behind to replay: the peer skips the backlog and is repaired by digests.
                needsSync.insert(member.nodeID)
                stats.replaysSkipped += 1
                send(.deltas(from: acked, to: next, entries: []), to: member.endpoint, recipient: member.nodeID, into: &output)
                flow.sentThrough = next
                continue
            }
            if acked < buffer.firstSequence ?? next { needsSync.insert(member.nodeID) }
            let start = flow.sentThrough
            guard start < next else { continue }
            let inFlight = buffer.bytes(from: acked) - buffer.bytes(from: start)
            guard inFlight < settings.maxInFlightBytes else { continue }
            var entries = buffer.entries(from: start)
            var bytes = 0
            var end = entries.startIndex
            let budget = min(settings.maxDeltaBytesPerRound, settings.maxInFlightBytes - inFlight)
            while end < entries.endIndex && bytes < budget {
                bytes += entries[end].delta.bytes.count + entries[end].delta.key.count
                end += 1
            }
            entries = entries[entries.startIndex..<end]
            if entries.isEmpty {
                // Nothing buffered covers the gap: tell the peer to skip to `next`; repair fills it.
                send(.deltas(from: start, to: next, entries: []), to: member.endpoint, recipient: member.nodeID, into: &output)
                flow.sentThrough = next
            } else {
                sendDeltas(entries, claimingFrom: start, to: member, reaching: reaching, into: &output)
                flow.sentThrough = entries[entries.endIndex - 1].sequence + 1
            }
        }
        // Members that are dead or cut off do not hold back collection: they are repaired by digests.
        buffer.collect(below: lowest)
    }

    mutating func receiveDeltas(from: UInt64, to: UInt64, entries: [KeyedBytes], reaching: [String], header: PeerHeader,
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
            join(delta, bytes: bytes, into: key, keyspace: &keyspace, rebroadcastFrom: header.nodeID, reaching: reaching,
                 output: &output)
        }
        stats.deltasApplied += UInt64(decoded.count)
        if !decoded.isEmpty { lastDeltasAt[header.nodeID] = now }
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
        let before = acknowledged(by: member)
        if clamped != before || acknowledged[node]?.replica != member.replica {
            acknowledged[node] = PeerProgress(replica: member.replica, sequence: clamped)
        }
        if clamped > before {
            outflows[node]?.progressAt = now
            outflows[node]?.ackedAt = now
        }
    }

    /// Joins a delta or state from a peer into `key`; persists it and, if it was new and came from a peer
    /// as a delta (`rebroadcastFrom`), passes it on.
    /// Whether every write `content` reflects is applied here already (counted in `staleDropped`): it holds
    /// nothing new, and dropping it unjoined is what keeps a late copy (a resent delta, a state from a node
    /// yet to collect) from resurrecting a collected key.
    mutating func isStaleCopy(_ content: KeyObject) -> Bool {
        guard !content.stamps.isEmpty, content.stamps.isCovered(by: stability.vector) else { return false }
        stats.staleDropped += 1
        return true
    }

    mutating func join(_ delta: KeyObject, bytes: Bytes, into key: Bytes, keyspace: inout Keyspace,
                       rebroadcastFrom source: String?, reaching: [String] = [], output: inout EngineOutput) {
        guard !isStaleCopy(delta) else { return }
        // Counted whether or not it changes anything here: either way this node holds its writes' effects.
        stability.joined(delta.stamps)
        guard let record = keyspace.join(remote: delta, bytes: bytes, into: key) else { return }
        output.records.append(record)
        if let source { self.record(delta: bytes, of: key, from: source, reaching: reaching) }
    }
}
