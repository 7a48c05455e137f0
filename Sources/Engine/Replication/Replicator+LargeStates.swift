import CRDT
import Wire

/// Large states sent by repair, serialised off the engine thread and paced. `sendStates` used to
/// serialise a 1 M-member set (a second of CPU) and seal its 27 MB of chunks in the step that found the
/// difference, so every client of the sender waited behind it, and a peer stream (8 MiB at most) dropped
/// what did not fit. Now that step takes a copy-on-write copy and queues it; a worker serialises it, and
/// the end of every later step sends the chunks that a byte budget refilled over time allows.
struct LargeStateSender {
    /// One large state on its way to one peer.
    struct Outgoing {
        var key: Bytes
        var peer: PeerEndpoint
        var recipient: String
        var serialisation: PendingSerialisation
        var bytes: Bytes?
        var offset = 0
    }

    /// Where states are serialised; `nil` (tests, the simulation): in the step, and sent at once, as before.
    var background: BackgroundRunner?
    /// FIFO: a receiver assembles one large state per sender at a time, so the chunks of two states to
    /// the same peer must not interleave.
    private(set) var queue: [Outgoing] = []
    /// States whose last chunk was sent (tests, `INFO`).
    private(set) var statesSent = 0
    /// Chunk bytes that may be sent now: refilled at `bytesPerMillisecond`, up to `burstBytes`.
    private var allowance = 0
    private var refilledAt: UInt64 = 0
    /// 32 MB/s: a 27 MB state in under a second, in slices that a peer stream drains between steps.
    static let bytesPerMillisecond = 32 << 10
    static let burstBytes = 1 << 20
    /// States queued at once (each holds its serialised bytes until sent).
    static let maxQueued = 4

    var isFull: Bool { queue.count >= Self.maxQueued }

    func contains(_ key: Bytes, to recipient: String) -> Bool {
        queue.contains { $0.key == key && $0.recipient == recipient }
    }

    mutating func enqueue(_ key: Bytes, _ object: KeyObject, to peer: PeerEndpoint, recipient: String) {
        queue.append(Outgoing(key: key, peer: peer, recipient: recipient,
                              serialisation: PendingSerialisation(object, background: background)))
    }

    /// The next chunk the budget allows at `now`, if the state at the head is serialised: (state, chunk range).
    mutating func nextChunk(now: UInt64, chunkBytes: Int) -> (Outgoing, Range<Int>, started: Bool)? {
        if now > refilledAt {
            let refill = Int(min(now - refilledAt, 1_000)) * Self.bytesPerMillisecond
            allowance = min(Self.burstBytes, allowance + refill)
            refilledAt = now
        }
        guard !queue.isEmpty, allowance > 0 else { return nil }
        if queue[0].bytes == nil {
            guard let bytes = queue[0].serialisation.bytes else { return nil }
            queue[0].bytes = bytes
        }
        let head = queue[0]
        let total = head.bytes!.count
        let end = min(total, head.offset + chunkBytes)
        let range = head.offset..<end
        allowance -= range.count
        if end == total {
            queue.removeFirst()
            statesSent += 1
        } else {
            queue[0].offset = end
        }
        return (head, range, head.offset == 0)
    }

    /// Large states received whole, being decoded off the engine thread, in arrival order.
    private(set) var decoding: [(key: Bytes, bytes: Bytes, decode: PendingDecode)] = []

    mutating func decode(key: Bytes, bytes: Bytes, limits: DecodingLimits) {
        decoding.append((key, bytes, PendingDecode(bytes, limits: limits, background: background)))
    }

    /// The next received state whose decoding finished, in arrival order.
    mutating func nextDecoded() -> (key: Bytes, bytes: Bytes, outcome: PendingDecode.Outcome)? {
        guard let first = decoding.first, let outcome = first.decode.take() else { return nil }
        decoding.removeFirst()
        return (first.key, first.bytes, outcome)
    }

    /// Drops what is queued for `recipient` (it left, or was cut off).
    mutating func drop(to recipient: String) { queue.removeAll { $0.recipient == recipient } }
}

extension Replicator {
    /// Whether `sendStates` hands `key` to the paced sender: a worker exists and the key is large.
    func sendsPaced(_ key: Bytes, keyspace: Keyspace) -> Bool {
        largeStates.background != nil && keyspace.storedBytes(of: key) > settings.chunkBytes
    }

    /// Joins the large states received whole whose decoding finished: into a key that holds nothing here
    /// as a staged snapshot of the received bytes (`Keyspace.joinStaged`), otherwise as any state.
    mutating func joinDecodedStates(keyspace: inout Keyspace, into output: inout EngineOutput) {
        while let (key, bytes, outcome) = largeStates.nextDecoded() {
            guard case .decoded(let state) = outcome else {
                stats.rejected[FrameRejection.malformed.rawValue, default: 0] += 1
                continue
            }
            stats.statesApplied += 1
            guard !isStaleCopy(state) else { continue }
            if keyspace.joinStaged(remote: state, bytes: bytes, into: key, records: &output.records) {
                stability.joined(state.stamps)
                continue
            }
            join(state, bytes: bytes, into: key, keyspace: &keyspace, rebroadcastFrom: nil, output: &output)
        }
    }

    /// Ends a step for the large states on their way: sends the chunks the budget allows. Chunks of a
    /// state whose recipient is no longer reachable are dropped with it.
    mutating func sendLargeStateChunks(into output: inout EngineOutput) {
        guard !largeStates.queue.isEmpty else { return }
        let reachable = Set(targets.map(\.nodeID))
        for recipient in Set(largeStates.queue.map(\.recipient)) where !reachable.contains(recipient) {
            largeStates.drop(to: recipient)
        }
        while let (state, range, started) = largeStates.nextChunk(now: now, chunkBytes: settings.chunkBytes) {
            let bytes = state.bytes!
            if started {
                // The window in which repair does not push this state again runs from its first chunk: time
                // for the chunks to drain at 4 MB/s, and at least two repair rounds.
                largeStatesInFlight[state.recipient, default: [:]][state.key] =
                    now + max(2 * settings.syncIntervalMilliseconds, UInt64(bytes.count / 4_000))
            }
            send(.stateChunk(key: state.key, totalLength: UInt64(bytes.count), offset: UInt64(range.lowerBound),
                             bytes: Array(bytes[range])), to: state.peer, recipient: state.recipient, into: &output)
        }
    }
}
