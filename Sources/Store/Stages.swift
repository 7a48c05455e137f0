/// Staged snapshots: the snapshot of a large object written a bounded number of bytes per commit, as
/// parts of a *stage*, and switched to in one small commit (the seal). See docs/storage.md.
///
/// A stage is a row of `snapshot_stages` (small columns only) and its parts rows of `snapshot_parts`,
/// appended in order. A key has at most one sealed stage (its current snapshot, unless an inline
/// snapshot replaced it) and at most one pending stage (being written). A stage that is replaced,
/// discarded or found unsealed at start is *doomed*: its row is deleted at once and its parts, by rowid
/// range, a bounded number per commit, so freeing a large old snapshot is spread over commits as well.
struct StageBook {
    /// One stage the store knows of.
    struct Stage: Equatable {
        var id: Int64
        var key: [UInt8]
        /// The last delta sequence number the stage's snapshot covers.
        var through: Int64
        /// The rowids of its parts, in order.
        var parts = SequenceRuns()
        /// Total bytes of its parts.
        var bytes = 0
    }

    /// Per key, the stage being written.
    private(set) var pending: [RowKey: Stage] = [:]
    /// Per key, the sealed stage that is its snapshot.
    private(set) var sealed: [RowKey: Stage] = [:]
    /// Part rowids of doomed stages, oldest first; not one run, since parts of stages written at the same
    /// time interleave.
    private(set) var doomedParts = SequenceRuns()
    var doomedPartCount: Int { doomedParts.count }

    func pendingStage(_ key: [UInt8]) -> Stage? { pending[RowKey(key)] }
    func sealedStage(_ key: [UInt8]) -> Stage? { sealed[RowKey(key)] }

    mutating func begin(_ stage: Stage) -> Stage? {
        pending.updateValue(stage, forKey: RowKey(stage.key))
    }

    mutating func appendPart(_ rowid: Int64, bytes: Int, key: [UInt8]) {
        pending[RowKey(key)]!.parts.append(rowid)
        pending[RowKey(key)]!.bytes += bytes
    }

    /// Seals `key`'s pending stage; returns it and the sealed stage it replaces.
    mutating func seal(_ key: [UInt8]) -> (sealed: Stage, replaced: Stage?)? {
        guard let stage = pending.removeValue(forKey: RowKey(key)) else { return nil }
        return (stage, sealed.updateValue(stage, forKey: RowKey(key)))
    }

    /// Forgets `key`'s pending stage and sealed stage, returning them (for their rows to be deleted).
    mutating func drop(_ key: [UInt8]) -> [Stage] {
        [pending.removeValue(forKey: RowKey(key)), sealed.removeValue(forKey: RowKey(key))].compactMap { $0 }
    }

    /// A stage found sealed by `load()`.
    mutating func loadedSealed(_ stage: Stage) { sealed[RowKey(stage.key)] = stage }

    /// Queues the parts of a doomed stage for deletion.
    mutating func doom(_ parts: SequenceRuns) { doomedParts.append(contentsOf: parts) }

    /// The oldest doomed part ranges holding at most `limit` parts.
    func nextDoomed(_ limit: Int) -> (ranges: [ClosedRange<Int64>], parts: Int) {
        (doomedParts.peek(limit), min(limit, doomedParts.count))
    }

    /// The parts `nextDoomed(limit)` returned were deleted.
    mutating func collectedDoomed(_ parts: Int) { doomedParts.removeFirst(parts) }
}

/// The checksum of one part: 64-bit, eight bytes a step, to tell a damaged part from a good one at
/// load (SQLite checks its pages' structure, not the bytes of a blob). Not cryptographic.
func partChecksum(_ bytes: [UInt8]) -> Int64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(bytes.count)
    let prime: UInt64 = 0x0000_0100_0000_01B3
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset + 8 <= raw.count {
            let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            hash = (hash ^ word) &* prime
            hash ^= hash >> 29
            offset += 8
        }
        while offset < raw.count {
            hash = (hash ^ UInt64(raw[offset])) &* prime
            offset += 1
        }
    }
    hash ^= hash >> 32
    return Int64(bitPattern: hash)
}
