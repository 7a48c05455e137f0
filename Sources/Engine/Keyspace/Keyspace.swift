import CRDT

/// Every key's replicated object and the bookkeeping derived from it: live keys by type, the byte
/// order of keys (for SCAN), per-key and bucket digests (for repair) and how much of each key's stored
/// form is appended deltas (for compaction).
///
/// An object changes in exactly two ways, a local write (`apply(local:_:)`) and a join of what a peer
/// sent (`join(remote:bytes:into:)`), and both keep every piece of bookkeeping in step, so none can
/// drift. Both cost O(delta): the object is mutated in place (never copied), change is detected by the
/// join itself, and the key's digest is recomputed from its small parts and its maps' dot digests.
struct Keyspace {
    private var objects: [Bytes: KeyObject] = [:]
    private var typeCounts: [KeyType: Int] = [:]
    private var compaction: [Bytes: CompactionState] = [:]
    /// Every key in byte order, rebuilt only after a key was created. Keys are never removed (a deleted
    /// key keeps its tombstone), so a SCAN cursor, an index into this order, only sees keys move later:
    /// a key present for the whole iteration is returned at least once.
    private var order: [Bytes]?
    private var digests: DigestIndex
    /// A key's deltas are folded into a snapshot once they outweigh the last snapshot (and this floor):
    /// storage stays within about twice the state while each write costs O(delta), amortised.
    let snapshotFloorBytes: Int
    /// Monotonic time of the last tick (simulated time in simulation), to stamp when a key last
    /// changed; it never decides a conflict, only whether a key is still in flux for repair.
    var now: UInt64 = 0

    init(digestBuckets: Int, snapshotFloorBytes: Int) {
        digests = DigestIndex(bucketCount: digestBuckets)
        self.snapshotFloorBytes = snapshotFloorBytes
    }

    /// What a local write produced: the delta to ship and the record to persist.
    struct LocalWrite {
        var delta: Bytes
        var record: DurableRecord
    }

    subscript(key: Bytes) -> KeyObject? { objects[key] }

    /// Every object, for tests and `INFO`-style walks; O(keys).
    var allObjects: Dictionary<Bytes, KeyObject>.Values { objects.values }

    /// Keys that show a type (`DBSIZE`). O(types).
    var liveKeyCount: Int { typeCounts.values.reduce(0, +) }

    /// Live keys by the type they show. O(types): the counts are kept on every change.
    var keysByType: [KeyType: Int] { typeCounts.filter { $0.value > 0 } }

    /// Installs a key read back from the store at start.
    mutating func recover(key: Bytes, object: KeyObject, snapshotBytes: Int, deltaBytes: Int) {
        countTypeChange(from: objects[key]?.visibleType, to: object.visibleType)
        objects[key] = object
        order = nil
        digests.invalidate(key)
        compaction[key] = CompactionState(snapshotBytes: snapshotBytes, deltaBytes: deltaBytes)
    }

    /// A local write: `body` mutates the key's object (bottom if absent) and returns the delta. `nil`
    /// when the delta is empty: nothing changed and nothing is persisted or shipped.
    mutating func apply<Failure: Error>(
        local key: Bytes, _ body: (inout KeyObject) throws(Failure) -> KeyObject
    ) throws(Failure) -> LocalWrite? {
        // Mutated in place through `Dictionary.Values`' modify accessor: one hash lookup, and neither a
        // copy of the object nor a delete and re-insert.
        let delta: KeyObject
        let index: Dictionary<Bytes, KeyObject>.Index
        let typeBefore: KeyType?
        if let existing = objects.index(forKey: key) {
            typeBefore = objects.values[existing].visibleType
            delta = try body(&objects.values[existing])
            guard delta != KeyObject() else { return nil }
            index = existing
        } else {
            var created = KeyObject()
            typeBefore = nil
            delta = try body(&created)
            guard delta != KeyObject() else { return nil }
            objects[key] = created
            order = nil
            index = objects.index(forKey: key)!
        }
        let bytes = delta.serialized()
        return LocalWrite(delta: bytes, record: changed(key, at: index, typeBefore: typeBefore, deltaBytes: bytes))
    }

    /// Joins a delta or state a peer sent into `key`. Returns the record to persist, or `nil` when the
    /// peer sent nothing new (a duplicate, a replay, or something already covered): the common case
    /// under gossip, decided in O(delta).
    mutating func join(remote delta: KeyObject, bytes: Bytes, into key: Bytes) -> DurableRecord? {
        if let existing = objects.index(forKey: key) {
            let typeBefore = objects.values[existing].visibleType
            guard objects.values[existing].inflate(with: delta) else { return nil }
            return changed(key, at: existing, typeBefore: typeBefore, deltaBytes: bytes)
        }
        var created = KeyObject()
        guard created.inflate(with: delta) else { return nil }
        objects[key] = created
        order = nil
        return changed(key, at: objects.index(forKey: key)!, typeBefore: nil, deltaBytes: bytes)
    }

    /// Bookkeeping after `key`'s object changed by a delta of `deltaBytes`; returns what to persist.
    private mutating func changed(_ key: Bytes, at index: Dictionary<Bytes, KeyObject>.Index, typeBefore: KeyType?,
                                  deltaBytes: Bytes) -> DurableRecord {
        countTypeChange(from: typeBefore, to: objects.values[index].visibleType)
        digests.invalidate(key)
        var state = compaction[key] ?? CompactionState()
        state.changedAt = now
        state.deltaBytes += deltaBytes.count
        defer { compaction[key] = state }
        if state.deltaBytes > max(state.snapshotBytes, snapshotFloorBytes) {
            let snapshot = objects.values[index].serialized()
            state = CompactionState(snapshotBytes: snapshot.count, deltaBytes: 0, changedAt: now)
            return .snapshot(key: key, bytes: snapshot)
        }
        return .delta(key: key, bytes: deltaBytes)
    }

    private mutating func countTypeChange(from old: KeyType?, to new: KeyType?) {
        guard old != new else { return }
        if let old { typeCounts[old, default: 0] -= 1 }
        if let new { typeCounts[new, default: 0] += 1 }
    }

    /// Every key in byte order (cached until a key is created).
    mutating func orderedKeys() -> [Bytes] {
        if let order { return order }
        let sorted = objects.keys.sorted { $0.lexicographicallyPrecedes($1) }
        order = sorted
        return sorted
    }

    // MARK: Digests

    /// Brings the digests of the keys changed since the last call up to date: O(changed keys), each
    /// O(replicas), whatever the size of their objects.
    private mutating func refreshDigests() { digests.refresh(objects) }

    /// One digest of the whole keyspace: equal on two replicas exactly when they hold the same keys
    /// with the same states.
    mutating func rootDigest() -> Digest128 {
        refreshDigests()
        return digests.root
    }

    /// The bucket digests, for repair.
    mutating func bucketDigests() -> [Digest128] {
        refreshDigests()
        return digests.bucketDigests
    }

    /// One bucket's keys and digests, in key order.
    mutating func keyDigests(inBucket bucket: Int) -> [(key: Bytes, digest: Digest128)] {
        refreshDigests()
        return digests.keys(inBucket: bucket)
    }

    func bucket(of key: Bytes) -> Int { digests.bucket(of: key) }

    /// When `key` last changed here (tick time), if it ever did since start.
    func lastChange(of key: Bytes) -> UInt64? { compaction[key]?.changedAt }
}

/// How much of a key's stored form is snapshot and how much appended deltas, and when it last changed.
struct CompactionState {
    var snapshotBytes = 0
    var deltaBytes = 0
    var changedAt: UInt64 = 0
}
