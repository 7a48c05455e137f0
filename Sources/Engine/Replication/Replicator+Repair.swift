import CRDT
import Wire

/// Anti-entropy repair: digests compared root, then buckets, then keys; the states that differ travel whole
/// (large ones in chunks), and both sides join, so one exchange repairs both directions.
extension Replicator {
    /// Objects at least this large (members plus fields) are transferred whole by repair only once
    /// their difference holds still; smaller ones are cheaper to send than to track.
    static let deferrableObjectSize = 256
    /// A large key that keeps changing is still repaired after this many comparisons.
    static let maxRepairDeferrals = 4
    /// Bytes of states packed into one `states` frame.
    static let statesFrameBytes = 64 << 10

    /// Compares digests with one peer (one that may lack dropped deltas first, else a random one).
    mutating func syncRound(keyspace: inout Keyspace, into output: inout EngineOutput) {
        let targets = targets
        guard !targets.isEmpty else { return }
        let lagging = targets.filter { needsSync.contains($0.nodeID) }
        syncRounds += 1
        // Without a lagging peer, repair is a safety net: compare with a peer that is quiet both ways (it
        // acknowledged every delta we sent, and sent us none for a sync interval). While deltas are in
        // flight either way the digests differ anyway, and the comparison would ship the states the
        // deltas are already carrying: under load, that was most of a receiver's work. Every tenth round
        // compares regardless, so a difference the deltas will never fix is found even under continuous
        // writes.
        let next = nextSequence
        let settled = targets.filter {
            acknowledged(by: $0) >= next && (lastDeltasAt[$0.nodeID] ?? 0) + settings.syncIntervalMilliseconds <= now
        }
        let pool = !lagging.isEmpty ? lagging : (syncRounds % 10 == 0 ? targets : settled)
        guard let member = pool.randomElement(using: &random) else { return }
        let urgent = needsSync.remove(member.nodeID) != nil
        send(.syncRoot(keyspace.rootDigest(), urgent: urgent, applied: stability.vector), to: member.endpoint,
             recipient: member.nodeID, into: &output)
    }

    /// Handles one repair message from `node`, reachable at `peer`.
    mutating func receiveRepair(_ message: PeerMessage, from node: String, at peer: PeerEndpoint,
                                keyspace: inout Keyspace, into output: inout EngineOutput) {
        switch message {
        case .syncRoot(let root, let urgent, let applied):
            if urgent { safetyNetComparisons.remove(node) } else { safetyNetComparisons.insert(node) }
            if root != keyspace.rootDigest() {
                send(.syncBuckets(keyspace.bucketDigests()), to: peer, recipient: node, into: &output)
            } else {
                // The same state holds the effects of the same writes: what the peer had applied when it
                // computed its root is applied here too (writes that only repair delivered count this way).
                stability.adopt(applied)
            }
        case .syncBuckets(let theirs):
            let ours = keyspace.bucketDigests()
            guard theirs.count == ours.count else {
                stats.rejected["bucket_count", default: 0] += 1
                return
            }
            for bucket in ours.indices where ours[bucket] != theirs[bucket] {
                sendKeyDigests(bucket: bucket, keyspace: &keyspace, to: peer, recipient: node, into: &output)
            }
        case .syncKeys(let bucket, let after, let through, let theirs):
            compareKeys(bucket: Int(bucket), after: after, through: through, theirs: theirs, keyspace: &keyspace,
                        peer: peer, recipient: node, into: &output)
        case .requestStates(let keys):
            sendStates(keys, keyspace: keyspace, to: peer, recipient: node, into: &output)
        case .states(let entries):
            applyStates(entries, keyspace: &keyspace, into: &output)
        case .stateChunk(let key, let total, let offset, let bytes):
            receiveChunk(key: key, total: total, offset: offset, bytes: bytes, from: node, keyspace: &keyspace, into: &output)
        default:
            break
        }
    }

    /// Lists one bucket's keys and digests, in key order, split into frames that each name the key range
    /// they cover, so the peer never mistakes "not in this frame" for "absent".
    mutating func sendKeyDigests(bucket: Int, keyspace: inout Keyspace, to peer: PeerEndpoint, recipient: String,
                                 into output: inout EngineOutput) {
        let keys = keyspace.keyDigests(inBucket: bucket)
        let budget = settings.maxFrameBytes / 2
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
    mutating func compareKeys(bucket: Int, after: Bytes?, through: Bytes?, theirs: [KeyDigest], keyspace: inout Keyspace,
                              peer: PeerEndpoint, recipient: String, into output: inout EngineOutput) {
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
        var deferred = 0
        // In a safety-net round a key this node changed within two sync intervals is left out: its
        // digests differ because its deltas are in flight, and shipping its state would race them. After
        // `maxRepairDeferrals` such rounds in a row it is repaired anyway: a key written without pause is
        // always in flux, and a delta it missed for good would otherwise wait for the writes to stop. An
        // urgent comparison (the peer skipped deltas that will never come) defers nothing.
        let safetyNet = safetyNetComparisons.contains(recipient)
        let window = 2 * settings.syncIntervalMilliseconds
        let quietSince: UInt64? = safetyNet ? (now > window ? now - window : 0) : nil
        func inFlux(_ key: Bytes) -> Bool {
            guard let quietSince, let changed = keyspace.lastChange(of: key) else { return false }
            return changed > quietSince
        }
        for entry in theirs where keyspace.bucket(of: entry.key) == bucket && inRange(entry.key) {
            theirKeys.insert(entry.key)
            let mine = ourDigests[entry.key]
            if mine == entry.digest {
                repairDeferrals[recipient]?[entry.key] = nil
                continue
            }
            if inFlux(entry.key), deferInFlux(entry.key, ours: mine ?? entry.digest, theirs: entry.digest, peer: recipient) {
                deferred += 1
                continue
            }
            guard let mine else {
                wanted.append(entry.key)
                continue
            }
            if safetyNet, deferRepair(of: entry.key, in: keyspace, ours: mine, theirs: entry.digest, peer: recipient) {
                deferred += 1
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
        let push = ours.map(\.key).filter { (!theirKeys.contains($0) && !inFlux($0)) || wantedSet.contains($0) }
        sendStates(push, keyspace: keyspace, to: peer, recipient: recipient, into: &output)
        stats.repairsDeferred += UInt64(deferred)
    }

    /// Whether to hold back the whole-state transfer of a large key whose digests differ. Under
    /// continuous writes two replicas are rarely equal at the instant they compare, because deltas are
    /// in flight; shipping a hot set of 100 k members every round is the storm this avoids. A key that
    /// has not changed here for two sync intervals, or whose two digests are unchanged since the last
    /// comparison, really differs and is repaired now; one in flux waits for its deltas, at most
    /// `maxRepairDeferrals` comparisons.
    mutating func deferRepair(of key: Bytes, in keyspace: Keyspace, ours: Digest128, theirs: Digest128, peer: String) -> Bool {
        guard let object = keyspace[key],
              object.set.count + object.hash.count + object.sortedSet.count >= Self.deferrableObjectSize else { return false }
        let quiet = 2 * settings.syncIntervalMilliseconds
        guard let changed = keyspace.lastChange(of: key), changed + quiet > now else {
            repairDeferrals[peer]?[key] = nil
            return false
        }
        var deferrals = repairDeferrals[peer] ?? [:]
        defer { repairDeferrals[peer] = deferrals }
        guard let entry = deferrals[key] else {
            if deferrals.count < Self.maxDeferralsPerPeer {
                deferrals[key] = Deferral(ours: ours, theirs: theirs, rounds: 1)
                return true
            }
            return false
        }
        if entry.ours == ours && entry.theirs == theirs || entry.rounds >= Self.maxRepairDeferrals {
            deferrals[key] = nil
            return false
        }
        deferrals[key] = Deferral(ours: ours, theirs: theirs, rounds: entry.rounds + 1)
        return true
    }

    /// Whether to leave out a key in flux that differs in a safety-net comparison: yes for its first
    /// `maxRepairDeferrals` such comparisons in a row, then it is repaired.
    mutating func deferInFlux(_ key: Bytes, ours: Digest128, theirs: Digest128, peer: String) -> Bool {
        var deferrals = repairDeferrals[peer] ?? [:]
        defer { repairDeferrals[peer] = deferrals }
        let rounds = (deferrals[key]?.rounds ?? 0) + 1
        guard rounds <= Self.maxRepairDeferrals, deferrals[key] != nil || deferrals.count < Self.maxDeferralsPerPeer else {
            deferrals[key] = nil
            return false
        }
        deferrals[key] = Deferral(ours: ours, theirs: theirs, rounds: rounds)
        return true
    }

    mutating func sendStates(_ keys: [Bytes], keyspace: Keyspace, to peer: PeerEndpoint, recipient: String,
                             into output: inout EngineOutput) {
        // Small frames: the receiver joins a frame's states in one go, and its clients wait for at most one.
        let budget = min(settings.maxFrameBytes / 2, Self.statesFrameBytes)
        var batch: [KeyedBytes] = []
        var size = 0
        var inFlight = largeStatesInFlight[recipient] ?? [:]
        defer { largeStatesInFlight[recipient] = inFlight.isEmpty ? nil : inFlight }
        inFlight = inFlight.filter { $0.value > now }
        for key in keys.prefix(100_000) {
            guard let object = keyspace[key] else { continue }
            // A copy sent lately is still on its way: neither serialise nor send it again yet.
            if let until = inFlight[key], until > now { continue }
            if sendsPaced(key, keyspace: keyspace) {
                // Serialised off the engine thread and sent paced (`LargeStateSender`), one copy per peer.
                if !largeStates.contains(key, to: recipient), !largeStates.isFull {
                    largeStates.enqueue(key, object, to: peer, recipient: recipient)
                }
                continue
            }
            let state = object.serialized()
            if state.count > settings.chunkBytes {
                // Time for the chunks to drain at 4 MB/s, and at least two repair rounds.
                inFlight[key] = now + max(2 * settings.syncIntervalMilliseconds, UInt64(state.count / 4_000))
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

    mutating func applyStates(_ entries: [KeyedBytes], keyspace: inout Keyspace, into output: inout EngineOutput) {
        for entry in entries {
            guard let state = try? KeyObject(serialized: entry.bytes, limits: decodingLimits) else {
                stats.rejected[FrameRejection.malformed.rawValue, default: 0] += 1
                continue
            }
            stats.statesApplied += 1
            join(state, bytes: entry.bytes, into: entry.key, keyspace: &keyspace, rebroadcastFrom: nil, output: &output)
        }
    }

    mutating func receiveChunk(key: Bytes, total: UInt64, offset: UInt64, bytes: Bytes, from node: String,
                               keyspace: inout Keyspace, into output: inout EngineOutput) {
        guard total <= UInt64(settings.maxObjectBytes) else {
            stats.rejected[FrameRejection.oversized.rawValue, default: 0] += 1
            assemblies[node] = nil
            return
        }
        let size = Int(total)
        guard !bytes.isEmpty, offset <= total, UInt64(bytes.count) <= total - offset else {
            stats.rejected[FrameRejection.malformed.rawValue, default: 0] += 1
            return
        }
        // Chunks are placed by offset, so they may arrive in any order and more than once (the network
        // reorders, and a repair round may resend): the state is complete when every byte arrived.
        var assembly: Assembly
        if let current = assemblies[node], current.key == key, current.total == size {
            assembly = current
        } else {
            // One assembly per known member, and few at once: a peer cannot reserve memory under made-up names.
            guard membership.member(node) != nil,
                  assemblies[node] != nil || assemblies.count < Self.maxConcurrentAssemblies else {
                stats.rejected["chunk_refused", default: 0] += 1
                return
            }
            assembly = Assembly(key: key, total: size, bytes: Bytes(repeating: 0, count: size))
        }
        assemblies[node] = nil  // Owned locally while copying, so the copy does not duplicate it.
        if assembly.offsets.insert(offset).inserted {
            assembly.bytes.replaceSubrange(Int(offset)..<Int(offset) + bytes.count, with: bytes)
            assembly.received += bytes.count
        }
        if assembly.received >= assembly.total {
            // Decoded off the engine thread, joined at the end of a later step (`joinDecodedStates`); a few
            // at once, so states arriving faster than they decode are not all held (repair sends again).
            guard largeStates.decoding.count < Self.maxConcurrentAssemblies else {
                stats.rejected["chunk_refused", default: 0] += 1
                return
            }
            largeStates.decode(key: key, bytes: assembly.bytes, limits: decodingLimits)
        } else {
            assemblies[node] = assembly
        }
    }
}
