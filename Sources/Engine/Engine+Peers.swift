import CRDT
import RESP
import Wire

/// Names of the replication metadata records.
extension MetaKey {
    static let deltaSequence = "delta_seq"
    static let incarnation = "incarnation"
    static let received = "received"
    static let acknowledged = "acknowledged"
}

extension Engine {
    /// Membership updates applied from one message; the rest are ignored (a sender gossips at most 8).
    static let maxUpdatesPerMessage = 64
    /// Large states assembled from chunks at once (one per peer at most).
    static let maxConcurrentAssemblies = 4

    // MARK: Recording local and received deltas

    /// A delta joined into `key` (local, or received from `source` and new to us): buffer it for peers and
    /// push it soon.
    mutating func disseminate(_ delta: Bytes, of key: Bytes, from source: String? = nil) {
        guard replicator != nil else { return }
        // A delta too large for one frame is not buffered; peers get the key by digest repair instead.
        guard delta.count + key.count < replicator!.settings.maxFrameBytes / 2 else {
            replicator!.needsSync.formUnion(replicator!.membership.reachable.map(\.nodeID))
            return
        }
        let entry = DeltaBuffer.Entry(sequence: replicator!.nextSequence, delta: KeyedBytes(key: key, bytes: delta))
        replicator!.nextSequence += 1
        replicator!.progressChanged = true
        if replicator!.buffer.append(sequence: entry.sequence, delta: entry.delta) { replicator!.stats.bufferDrops += 1 }
        replicator!.pendingEager.append(entry)
        if let source { replicator!.pendingSources.insert(source) }
    }

    /// Ends a batch of inputs: records the replication progress they made (once per batch, not per input:
    /// it rides in the same commit as the batch's deltas, before any of its frames leave) and pushes the
    /// deltas produced to `fanout` random peers, one frame carrying every delta of the batch.
    public mutating func flush(into output: inout EngineOutput) {
        defer { endStep(into: &output) }
        guard replicator != nil else { return }
        persistReplicationProgress(into: &output)
        guard !replicator!.pendingEager.isEmpty else { return }
        let entries = replicator!.pendingEager
        replicator!.pendingEager.removeAll(keepingCapacity: true)
        let sources = replicator!.pendingSources
        replicator!.pendingSources.removeAll(keepingCapacity: true)
        var targets = replicator!.targets
        targets.shuffle(using: &replicator!.random)
        // Peers the deltas came from already hold them: push to the others first.
        targets.sort { !sources.contains($0.nodeID) && sources.contains($1.nodeID) }
        for member in targets.prefix(replicator!.settings.fanout) {
            sendDeltas(entries[...], claimingFrom: entries[0].sequence, to: member, into: &output)
        }
    }

    /// Sends `entries` (consecutive sequences) to `member`, packed into as few frames as fit. The first
    /// frame claims the interval from `claimingFrom`, which may be below the first entry when the buffer no
    /// longer holds older deltas: the peer then skips them and is repaired by digest comparison.
    mutating func sendDeltas(_ entries: ArraySlice<DeltaBuffer.Entry>, claimingFrom: UInt64, to member: Membership.Member,
                             into output: inout EngineOutput) {
        let settings = replicator!.settings
        let budget = settings.maxDatagramBytes - settings.envelope.overhead - 96 - configuration.nodeID.utf8.count
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

    // MARK: Time

    /// Advances failure detection, gossip and repair to `now` (monotonic milliseconds).
    mutating func replicationTick(now: UInt64, into output: inout EngineOutput) {
        guard replicator != nil else { return }
        replicator!.now = max(replicator!.now, now)
        keyspace.now = replicator!.now
        let now = replicator!.now
        let settings = replicator!.settings
        let blocked = replicator!.blocked
        var random = replicator!.random
        let actions = replicator!.membership.tick(
            now: now, settings: settings, seeds: settings.seeds, blocked: blocked, random: &random)
        replicator!.random = random
        for action in actions { perform(action, into: &output) }

        // While writes are refused, rounds would only queue frames behind the stuck commit; they resume after.
        let refusing = writeRefusal != nil
        if now >= replicator!.lastGossipAt + replicator!.settings.gossipIntervalMilliseconds {
            replicator!.lastGossipAt = now
            if !refusing { gossipRound(into: &output) }
        }
        if now >= replicator!.lastSyncAt + replicator!.settings.syncIntervalMilliseconds {
            replicator!.lastSyncAt = now
            if !refusing { syncRound(into: &output) }
        }
    }

    /// Sends every reachable peer the buffered deltas it has not acknowledged, and collects what all have.
    mutating func gossipRound(into output: inout EngineOutput) {
        let next = replicator!.nextSequence
        var lowest = next
        for member in replicator!.targets {
            let acked = replicator!.acknowledged(by: member)
            lowest = min(lowest, acked)
            guard acked < next else { continue }
            if replicator!.buffer.bytes(from: acked) > replicator!.settings.maxReplayBytes {
                replicator!.needsSync.insert(member.nodeID)
                replicator!.stats.replaysSkipped += 1
                send(.deltas(from: acked, to: next, entries: []), to: member.endpoint, recipient: member.nodeID, into: &output)
                continue
            }
            if let first = replicator!.buffer.firstSequence, acked < first {
                replicator!.needsSync.insert(member.nodeID)
            } else if replicator!.buffer.firstSequence == nil {
                replicator!.needsSync.insert(member.nodeID)
            }
            var entries = replicator!.buffer.entries(from: acked)
            var bytes = 0
            var end = entries.startIndex
            while end < entries.endIndex && bytes < replicator!.settings.maxDeltaBytesPerRound {
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
        replicator!.buffer.collect(below: lowest)
    }

    /// Compares digests with one peer (one that may lack dropped deltas first, else a random one).
    mutating func syncRound(into output: inout EngineOutput) {
        let targets = replicator!.targets
        guard !targets.isEmpty else { return }
        let lagging = targets.filter { replicator!.needsSync.contains($0.nodeID) }
        replicator!.syncRounds += 1
        // Without a lagging peer, repair is a safety net: compare with a peer that has acknowledged every
        // delta we sent. While deltas are in flight the digests differ anyway and the comparison would
        // ship the states the deltas are already carrying. Every tenth round compares regardless, so a
        // difference the deltas will never fix is found even under continuous writes.
        let next = replicator!.nextSequence
        let settled = targets.filter { replicator!.acknowledged(by: $0) >= next }
        let pool = !lagging.isEmpty ? lagging : (replicator!.syncRounds % 10 == 0 ? targets : settled)
        guard let member = pool.randomElement(using: &replicator!.random) else { return }
        replicator!.needsSync.remove(member.nodeID)
        send(.syncRoot(keyspace.rootDigest()), to: member.endpoint, recipient: member.nodeID, into: &output)
    }

    // MARK: Receiving

    /// Authenticates, decodes and handles one frame from the network. Nothing a peer sends can crash the
    /// node: every failure is a counted rejection.
    mutating func receive(frame: Bytes, from source: PeerEndpoint, into output: inout EngineOutput) {
        guard replicator != nil else { return }
        replicator!.stats.bytesIn += UInt64(frame.count)
        let header: PeerHeader
        let message: PeerMessage
        do {
            let payload = try replicator!.settings.envelope.open(frame)
            (header, message) = try PeerCodec.decode(payload)
        } catch {
            replicator!.stats.rejected[error.rawValue, default: 0] += 1
            return
        }
        guard header.nodeID != configuration.nodeID else {
            replicator!.stats.rejected["self", default: 0] += 1
            return
        }
        guard !replicator!.blocked.contains(header.nodeID) else {
            replicator!.stats.rejected["partitioned", default: 0] += 1
            return
        }
        replicator!.stats.framesIn[message.name, default: 0] += 1
        clock.observe(LamportTimestamp(counter: header.lamport, replica: header.replica))
        let now = replicator!.now
        if case .leave = message {
            replicator!.membership.apply(MemberUpdate(nodeID: header.nodeID, replica: header.replica, endpoint: header.endpoint,
                                                      incarnation: header.incarnation, state: .left), now: now)
            return
        }
        replicator!.membership.observe(header, now: now)
        let sender = header.endpoint
        // What cannot be committed is not taken: unacknowledged, the peer keeps it and resends it later.
        if Self.needsCommit(message), writeRefusal != nil {
            replicator!.stats.rejected["storage_behind", default: 0] += 1
            return
        }

        switch message {
        case .ping(let sequence, let updates):
            for update in updates.prefix(Self.maxUpdatesPerMessage) { replicator!.membership.apply(update, now: now) }
            let piggyback = replicator!.membership.piggyback(to: header.nodeID)
            send(.ack(sequence: sequence, updates: piggyback), to: sender, recipient: header.nodeID, into: &output)
        case .ack(let sequence, let updates):
            for update in updates.prefix(Self.maxUpdatesPerMessage) { replicator!.membership.apply(update, now: now) }
            if let forward = replicator!.membership.acknowledged(sequence) { perform(forward, into: &output) }
        case .pingRequest(let sequence, let target):
            let action = replicator!.membership.relayProbe(for: sender, sequence: sequence, target: target, now: now)
            perform(action, into: &output)
        case .leave:
            break
        case .deltas(let from, let to, let entries):
            receiveDeltas(from: from, to: to, entries: entries, header: header, into: &output)
        case .deltaAck(let through):
            guard let member = replicator!.membership.member(header.nodeID) else { break }
            // Taken as it is, even when lower: a peer restored from a backup (or that lost its last commits) has
            // less than it once acknowledged, and resending from its mark costs only bytes. A stale ack that
            // arrives late does the same, once.
            let clamped = min(through, replicator!.nextSequence)
            if clamped != replicator!.acknowledged(by: member) || replicator!.acknowledged[header.nodeID]?.replica != member.replica {
                replicator!.acknowledged[header.nodeID] = PeerProgress(replica: member.replica, sequence: clamped)
            }
        case .syncRoot(let root):
            if root != keyspace.rootDigest() {
                send(.syncBuckets(keyspace.bucketDigests()), to: sender, recipient: header.nodeID, into: &output)
            }
        case .syncBuckets(let theirs):
            let ours = keyspace.bucketDigests()
            guard theirs.count == ours.count else {
                replicator!.stats.rejected["bucket_count", default: 0] += 1
                break
            }
            for bucket in ours.indices where ours[bucket] != theirs[bucket] {
                sendKeyDigests(bucket: bucket, to: sender, recipient: header.nodeID, into: &output)
            }
        case .syncKeys(let bucket, let after, let through, let theirs):
            compareKeys(bucket: Int(bucket), after: after, through: through, theirs: theirs, peer: sender,
                        recipient: header.nodeID, into: &output)
        case .requestStates(let keys):
            sendStates(keys, to: sender, recipient: header.nodeID, into: &output)
        case .states(let entries):
            applyStates(entries, into: &output)
        case .stateChunk(let key, let total, let offset, let bytes):
            receiveChunk(key: key, total: total, offset: offset, bytes: bytes, from: header.nodeID, into: &output)
        }
        gossipRefutationIfNeeded()
    }

    /// After learning of a rumour against us, gossip our own alive update (our real address and identity).
    mutating func gossipRefutationIfNeeded() {
        guard replicator!.membership.refutationPending else { return }
        let update = replicator!.membership.selfUpdate(endpoint: replicator!.settings.endpoint, replica: configuration.replica)
        replicator!.membership.enqueueSelf(update)
    }

    mutating func receiveDeltas(from: UInt64, to: UInt64, entries: [KeyedBytes], header: PeerHeader,
                                into output: inout EngineOutput) {
        // Decode everything first: a frame with one bad delta is rejected whole and not acknowledged.
        var decoded: [(Bytes, KeyObject, Bytes)] = []
        decoded.reserveCapacity(entries.count)
        for entry in entries {
            guard let delta = try? KeyObject(serialized: entry.bytes, limits: configuration.decodingLimits) else {
                replicator!.stats.rejected[FrameRejection.malformed.rawValue, default: 0] += 1
                return
            }
            decoded.append((entry.key, delta, entry.bytes))
        }
        for (key, delta, bytes) in decoded {
            join(delta, bytes: bytes, into: key, rebroadcast: header.nodeID, output: &output)
        }
        replicator!.stats.deltasApplied += UInt64(decoded.count)
        // Advance the gap-free mark only when this interval starts within what we hold: a later interval
        // is joined (joins commute) but acknowledged only once the gap before it is filled.
        var progress = replicator!.received[header.nodeID]
        if progress?.replica != header.replica { progress = PeerProgress(replica: header.replica, sequence: 0) }
        if from <= progress!.sequence && to > progress!.sequence {
            progress!.sequence = to
            replicator!.progressChanged = true
        }
        replicator!.received[header.nodeID] = progress
        send(.deltaAck(receivedThrough: progress!.sequence), to: header.endpoint, recipient: header.nodeID, into: &output)
    }

    /// Joins a delta or state from a peer into `key`; persists it and, if it was new and `rebroadcast`
    /// names the peer it came from, passes it on.
    mutating func join(_ delta: KeyObject, bytes: Bytes, into key: Bytes, rebroadcast source: String?, output: inout EngineOutput) {
        guard let record = keyspace.join(remote: delta, bytes: bytes, into: key) else { return }
        output.records.append(record)
        if let source { disseminate(bytes, of: key, from: source) }
    }

    /// Lists one bucket's keys and digests, in key order, split into frames that each name the key range
    /// they cover, so the peer never mistakes "not in this frame" for "absent".
    mutating func sendKeyDigests(bucket: Int, to peer: PeerEndpoint, recipient: String, into output: inout EngineOutput) {
        let keys = keyspace.keyDigests(inBucket: bucket)
        let budget = replicator!.settings.maxFrameBytes / 2
        var batch: [KeyDigest] = []
        var size = 0
        var after: Bytes?
        for (key, digest) in keys {
            if !batch.isEmpty && size + key.count + 20 > budget {
                let through = batch.last!.key
                send(.syncKeys(bucket: UInt32(bucket), after: after, through: through, keys: batch), to: peer,
                     recipient: recipient, into: &output)
                after = through
                batch.removeAll(keepingCapacity: true)
                size = 0
            }
            batch.append(KeyDigest(key: key, digest: digest))
            size += key.count + 20
        }
        // The last frame is open-ended; an empty bucket is still sent, so the peer learns we lack its keys.
        send(.syncKeys(bucket: UInt32(bucket), after: after, through: nil, keys: batch), to: peer, recipient: recipient,
             into: &output)
    }

    /// The peer listed one bucket's keys in `(after, through]`: ask for the states we lack or differ on,
    /// send ours (within that range) where it lacks or differs. Both sides join, so one exchange repairs
    /// both directions.
    mutating func compareKeys(bucket: Int, after: Bytes?, through: Bytes?, theirs: [KeyDigest], peer: PeerEndpoint,
                              recipient: String, into output: inout EngineOutput) {
        func inRange(_ key: Bytes) -> Bool {
            if let after, !after.lexicographicallyPrecedes(key) { return false }
            if let through, through.lexicographicallyPrecedes(key) { return false }
            return true
        }
        let ours = keyspace.keyDigests(inBucket: bucket).filter { inRange($0.key) }
        var ourDigests: [Bytes: Digest128] = [:]
        for (key, digest) in ours { ourDigests[key] = digest }
        var wanted: [Bytes] = []
        var theirKeys = Set<Bytes>()
        var deferred = Set<Bytes>()
        for entry in theirs where keyspace.bucket(of: entry.key) == bucket && inRange(entry.key) {
            theirKeys.insert(entry.key)
            guard let mine = ourDigests[entry.key] else {
                wanted.append(entry.key)
                continue
            }
            guard mine != entry.digest else {
                replicator!.repairDeferrals[recipient]?[entry.key] = nil
                continue
            }
            if deferRepair(of: entry.key, ours: mine, theirs: entry.digest, peer: recipient) {
                deferred.insert(entry.key)
            } else {
                wanted.append(entry.key)
            }
        }
        var start = 0
        while start < wanted.count {
            let end = min(wanted.count, start + 512)
            send(.requestStates(keys: Array(wanted[start..<end])), to: peer, recipient: recipient, into: &output)
            start = end
        }
        // Keys they lack entirely, or where digests differ (they asked, or will ask; sending now saves a trip).
        let wantedSet = Set(wanted)
        let push = ours.map(\.key).filter { !theirKeys.contains($0) || wantedSet.contains($0) }
        sendStates(push, to: peer, recipient: recipient, into: &output)
        replicator!.stats.repairsDeferred += UInt64(deferred.count)
    }

    /// Objects at least this large (members plus fields) are transferred whole by repair only once
    /// their difference holds still; smaller ones are cheaper to send than to track.
    static let deferrableObjectSize = 256
    /// A large key that keeps changing is still repaired after this many comparisons.
    static let maxRepairDeferrals = 4

    /// Whether to hold back the whole-state transfer of a large key whose digests differ. Under
    /// continuous writes two replicas are rarely equal at the instant they compare, because deltas are
    /// in flight; shipping a hot set of 100 k members every round is the storm this avoids. A key that
    /// has not changed here for two sync intervals, or whose two digests are unchanged since the last
    /// comparison, really differs and is repaired now; one in flux waits for its deltas, at most
    /// `maxRepairDeferrals` comparisons.
    mutating func deferRepair(of key: Bytes, ours: Digest128, theirs: Digest128, peer: String) -> Bool {
        guard let object = keyspace[key], object.set.count + object.hash.count >= Self.deferrableObjectSize else { return false }
        let quiet = 2 * replicator!.settings.syncIntervalMilliseconds
        guard let changed = keyspace.lastChange(of: key), changed + quiet > replicator!.now else {
            replicator!.repairDeferrals[peer]?[key] = nil
            return false
        }
        var deferrals = replicator!.repairDeferrals[peer] ?? [:]
        defer { replicator!.repairDeferrals[peer] = deferrals }
        guard var entry = deferrals[key] else {
            if deferrals.count < Replicator.maxDeferralsPerPeer {
                deferrals[key] = Replicator.Deferral(ours: ours, theirs: theirs, rounds: 1)
                return true
            }
            return false
        }
        if entry.ours == ours && entry.theirs == theirs || entry.rounds >= Self.maxRepairDeferrals {
            deferrals[key] = nil
            return false
        }
        entry = Replicator.Deferral(ours: ours, theirs: theirs, rounds: entry.rounds + 1)
        deferrals[key] = entry
        return true
    }

    mutating func sendStates(_ keys: [Bytes], to peer: PeerEndpoint, recipient: String, into output: inout EngineOutput) {
        let settings = replicator!.settings
        let budget = settings.maxFrameBytes / 2
        var batch: [KeyedBytes] = []
        var size = 0
        for key in keys.prefix(100_000) {
            guard let object = keyspace[key] else { continue }
            let state = object.serialized()
            if state.count > settings.chunkBytes {
                // One huge object travels in chunks, never in one message.
                var offset = 0
                while offset < state.count {
                    let end = min(state.count, offset + settings.chunkBytes)
                    send(.stateChunk(key: key, totalLength: UInt64(state.count), offset: UInt64(offset),
                                     bytes: Array(state[offset..<end])), to: peer, recipient: recipient, into: &output)
                    offset = end
                }
                continue
            }
            if !batch.isEmpty && size + state.count + key.count > budget {
                send(.states(batch), to: peer, recipient: recipient, into: &output)
                batch.removeAll(keepingCapacity: true)
                size = 0
            }
            batch.append(KeyedBytes(key: key, bytes: state))
            size += state.count + key.count
        }
        if !batch.isEmpty { send(.states(batch), to: peer, recipient: recipient, into: &output) }
    }

    mutating func applyStates(_ entries: [KeyedBytes], into output: inout EngineOutput) {
        for entry in entries {
            guard let state = try? KeyObject(serialized: entry.bytes, limits: configuration.decodingLimits) else {
                replicator!.stats.rejected[FrameRejection.malformed.rawValue, default: 0] += 1
                continue
            }
            replicator!.stats.statesApplied += 1
            join(state, bytes: entry.bytes, into: entry.key, rebroadcast: nil, output: &output)
        }
    }

    mutating func receiveChunk(key: Bytes, total: UInt64, offset: UInt64, bytes: Bytes, from node: String,
                               into output: inout EngineOutput) {
        guard total <= UInt64(replicator!.settings.maxObjectBytes) else {
            replicator!.stats.rejected[FrameRejection.oversized.rawValue, default: 0] += 1
            replicator!.assemblies[node] = nil
            return
        }
        let size = Int(total)
        guard !bytes.isEmpty, offset <= total, UInt64(bytes.count) <= total - offset else {
            replicator!.stats.rejected[FrameRejection.malformed.rawValue, default: 0] += 1
            return
        }
        // Chunks are placed by offset, so they may arrive in any order and more than once (the network
        // reorders, and a repair round may resend): the state is complete when every byte arrived.
        var assembly: Replicator.Assembly
        if let current = replicator!.assemblies[node], current.key == key, current.total == size {
            assembly = current
        } else {
            // One assembly per known member, and few at once: a peer cannot reserve memory under made-up names.
            guard replicator!.membership.member(node) != nil,
                  replicator!.assemblies[node] != nil || replicator!.assemblies.count < Self.maxConcurrentAssemblies else {
                replicator!.stats.rejected["chunk_refused", default: 0] += 1
                return
            }
            assembly = Replicator.Assembly(key: key, total: size, bytes: Bytes(repeating: 0, count: size))
        }
        replicator!.assemblies[node] = nil  // Owned locally while copying, so the copy does not duplicate it.
        if assembly.offsets.insert(offset).inserted {
            assembly.bytes.replaceSubrange(Int(offset)..<Int(offset) + bytes.count, with: bytes)
            assembly.received += bytes.count
        }
        if assembly.received >= assembly.total {
            applyStates([KeyedBytes(key: key, bytes: assembly.bytes)], into: &output)
        } else {
            replicator!.assemblies[node] = assembly
        }
    }

    // MARK: Sending

    mutating func perform(_ action: Membership.Action, into output: inout EngineOutput) {
        switch action {
        case .ping(let endpoint, let nodeID, let sequence):
            let updates = replicator!.membership.piggyback(to: nodeID)
            send(.ping(sequence: sequence, updates: updates), to: endpoint, recipient: nodeID, into: &output)
        case .pingRequest(let endpoint, let nodeID, let sequence, let target):
            send(.pingRequest(sequence: sequence, target: target), to: endpoint, recipient: nodeID, into: &output)
        case .forwardAck(let endpoint, let sequence):
            send(.ack(sequence: sequence, updates: []), to: endpoint, recipient: nil, into: &output)
        }
    }

    /// Seals and emits one frame; small frames go as datagrams, larger ones on the stream.
    mutating func send(_ message: PeerMessage, to endpoint: PeerEndpoint, recipient: String?, into output: inout EngineOutput) {
        if let recipient, replicator!.blocked.contains(recipient) { return }
        if recipient == nil, replicator!.membership.members.values.contains(where: {
            $0.endpoint == endpoint && replicator!.blocked.contains($0.nodeID)
        }) { return }
        let settings = replicator!.settings
        let header = PeerHeader(nodeID: configuration.nodeID, replica: configuration.replica, endpoint: settings.endpoint,
                                incarnation: replicator!.membership.incarnation, lamport: clock.counter)
        let frame = settings.envelope.seal(PeerCodec.encode(header, message))
        replicator!.stats.framesOut[message.name, default: 0] += 1
        replicator!.stats.bytesOut += UInt64(frame.count)
        let effect = Effect.send(frame, to: endpoint, via: frame.count <= settings.maxDatagramBytes ? .datagram : .stream)
        if Self.isMembershipProbe(message) { output.immediate.append(effect) } else { output.effects.append(effect) }
    }

    /// This node leaves the cluster gracefully: every reachable peer is told, so none waits to suspect it.
    public mutating func leave(into output: inout EngineOutput) {
        guard replicator != nil else { return }
        replicator!.membership.leave()
        // The raised incarnation is committed before the leave frames are released: a restart resumes above
        // it, so peers see the node come back instead of keeping it `left`.
        persistReplicationProgress(into: &output)
        for member in replicator!.targets {
            send(.leave, to: member.endpoint, recipient: member.nodeID, into: &output)
        }
    }

    // MARK: Persistence of replication progress

    mutating func persistReplicationProgress(into output: inout EngineOutput) {
        guard replicator != nil else { return }
        if replicator!.membership.incarnationChanged {
            replicator!.membership.incarnationChanged = false
            output.records.append(.meta(name: MetaKey.incarnation, value: Self.encodeCounter(replicator!.membership.incarnation)))
        }
        guard replicator!.progressChanged else { return }
        replicator!.progressChanged = false
        output.records.append(.meta(name: MetaKey.deltaSequence, value: Self.encodeCounter(replicator!.nextSequence)))
        output.records.append(.meta(name: MetaKey.received, value: Self.encodeProgress(replicator!.received)))
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

    // MARK: Administration

    /// `CRDT.PEERS`: one entry per known member.
    func peersReply() -> RESPReply {
        guard let replicator else { return .array([]) }
        let members = replicator.membership.members.values.sorted { $0.nodeID < $1.nodeID }
        return .array(members.map { member in
            .map([
                .init(key: .bulkString("node"), value: .bulkString(member.nodeID)),
                .init(key: .bulkString("address"), value: .bulkString(member.endpoint.description)),
                .init(key: .bulkString("state"), value: .bulkString(replicator.blocked.contains(member.nodeID)
                    ? "\(member.state) (partitioned here)" : member.state.description)),
                .init(key: .bulkString("incarnation"), value: .integer(Int64(clamping: member.incarnation))),
                .init(key: .bulkString("replica"), value: .bulkString(member.replica.description)),
                .init(key: .bulkString("acknowledged"), value: .integer(Int64(clamping: replicator.acknowledged(by: member)))),
                .init(key: .bulkString("received"), value: .integer(Int64(clamping: replicator.received[member.nodeID]?.sequence ?? 0))),
            ])
        })
    }
}
