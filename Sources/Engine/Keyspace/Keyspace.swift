import CRDT

/// Every key's replicated object and the bookkeeping derived from it: live keys by type, the byte
/// order of keys (for SCAN), per-key and bucket digests (for repair), expiry deadlines (for the tick
/// that expires keys) and how much of each key's stored form is appended deltas (for compaction).
///
/// An object changes in exactly two ways, a local write (`apply(local:_:)`) and a join of what a peer
/// sent (`join(remote:bytes:into:)`), and both keep every piece of bookkeeping in step, so none can
/// drift. Both cost O(delta): the object is mutated in place (never copied), change is detected by the
/// join itself, and the key's digest is recomputed from its small parts and its maps' dot digests.
struct Keyspace {
    /// Keyed by `KeyName`, which hashes the bytes in one call (`[UInt8]` feeds the hasher byte by byte).
    private var objects: [KeyName: KeyObject] = [:]
    private var typeCounts: [KeyType: Int] = [:]
    private var compaction: [KeyName: CompactionState] = [:]
    /// Every key in byte order, rebuilt only after a key was created (`KEYS`). A collected key stays in it
    /// until the next rebuild; readers skip keys without an object.
    /// key keeps its tombstone), so a SCAN cursor, an index into this order, only sees keys move later:
    /// a key present for the whole iteration is returned at least once.
    private var order: [Bytes]?
    /// Every key with its scan hash, in hash order, rebuilt after a key was created: `SCAN`'s cursor is a
    /// hash, so a key present for a whole iteration is returned, whatever is created or collected meanwhile.
    private var scanOrder: [(hash: UInt64, key: Bytes)]?
    /// Keys that showed no type after their last change: the candidates for collection, examined a
    /// bounded number at a time (`collectTombstones`).
    private var tombstones = TombstoneQueue()
    private var digests: DigestIndex
    private var expiries = ExpiryIndex()
    /// A key's deltas are folded into a snapshot once they outweigh the last snapshot (and this floor):
    /// storage stays within about twice the state while each write costs O(delta), amortised.
    let snapshotFloorBytes: Int
    /// Monotonic time of the last tick (simulated time in simulation), to stamp when a key last
    /// changed; it never decides a conflict, only whether a key is still in flux for repair.
    var now: UInt64 = 0

    /// When and how large objects are snapshotted in parts.
    let stagingSettings: StagingSettings
    /// Keys whose snapshot is due and will be staged at the end of the step.
    private var stagingDue: [Bytes] = []
    /// Staged snapshots being written, oldest first: the bytes serialised at the begin, and how many of
    /// them were handed out as parts.
    private var staging: [StagedSnapshot] = []
    /// Bytes of the deltas persisted since the last `stageSnapshots`: each step writes at least twice
    /// that in parts, so a staged snapshot ends before the deltas written meanwhile outweigh it.
    private var stepDeltaBytes = 0

    init(digestBuckets: Int, snapshotFloorBytes: Int, staging: StagingSettings = StagingSettings()) {
        digests = DigestIndex(bucketCount: digestBuckets)
        self.snapshotFloorBytes = snapshotFloorBytes
        self.stagingSettings = staging
    }

    /// What a local write produced: the delta to ship and the record to persist, and the type the key
    /// showed before and after (for keyspace notifications).
    struct LocalWrite {
        var delta: Bytes
        var record: DurableRecord
        var typeBefore: KeyType?
        var typeAfter: KeyType?
    }

    /// Whether someone listens for keyspace notifications: only then are remote changes kept in
    /// `remoteChanges` (and local ones reported), so that nobody listening costs one flag test.
    var recordsChanges = false
    /// Changes joined from peers since the engine last took them, when `recordsChanges`.
    private(set) var remoteChanges: [RemoteChange] = []

    /// A key changed by a peer's delta or state: what a notification can say of it, read in O(1).
    struct RemoteChange: Equatable {
        var key: Bytes
        var typeBefore: KeyType?
        var typeAfter: KeyType?
        /// Elements of the shown type (members, fields, list elements) before and after.
        var countBefore: Int
        var countAfter: Int
        /// The delta changed nothing but the deadline.
        var onlyDeadline: Bool
        var deadline: UInt64?
    }

    mutating func takeRemoteChanges() -> [RemoteChange] {
        defer { remoteChanges.removeAll(keepingCapacity: true) }
        return remoteChanges
    }

    subscript(key: Bytes) -> KeyObject? { objects[KeyName(key)] }

    /// Every object, for tests and `INFO`-style walks; O(keys).
    var allObjects: Dictionary<KeyName, KeyObject>.Values { objects.values }

    /// Every key held, tombstones included. O(1).
    var storedKeyCount: Int { objects.count }

    /// Keys that show a type (`DBSIZE`). O(types).
    var liveKeyCount: Int { typeCounts.values.reduce(0, +) }

    /// Live keys by the type they show. O(types): the counts are kept on every change.
    var keysByType: [KeyType: Int] { typeCounts.filter { $0.value > 0 } }

    /// Installs a key read back from the store at start.
    mutating func recover(key: Bytes, object: KeyObject, snapshotBytes: Int, deltaBytes: Int) {
        countTypeChange(from: objects[KeyName(key)]?.visibleType, to: object.visibleType)
        if object.visibleType == nil { tombstones.enqueue(KeyName(key)) }
        objects[KeyName(key)] = object
        keyCreated()
        digests.invalidate(key)
        compaction[KeyName(key)] = CompactionState(snapshotBytes: snapshotBytes, deltaBytes: deltaBytes)
        expiries.update(key, deadline: object.expiry.expiresAt)
    }

    /// A local write: `body` mutates the key's object (bottom if absent) and returns the delta. `nil`
    /// when the delta is empty: nothing changed and nothing is persisted or shipped. A write that changed
    /// something carries `stamp` (its node-wide write stamp) in the object and in the delta.
    ///
    /// After a collection (`floor` not zero), the slots that must resume their numbering above the floor
    /// claim it first (`KeyObject.claim`): those of `touching`, the slots the write may number in. The claims ship with the write. If `body` throws after a claim changed an
    /// existing slot, the claim alone is the write (`takeOrphanedClaim`): it must reach the disk and the
    /// peers like any change.
    mutating func apply<Failure: Error>(
        local key: Bytes, stamp: Dot? = nil, floor: DotFloor? = nil, touching: KeyObject.SlotSet = .all,
        _ body: (inout KeyObject) throws(Failure) -> KeyObject
    ) throws(Failure) -> LocalWrite? {
        // Mutated in place through `Dictionary.Values`' modify accessor: one hash lookup, and neither a
        // copy of the object nor a delete and re-insert. What the bookkeeping needs of the object after
        // the write is read inside that same access (a read through the dictionary's getter copies the
        // whole object: every slot's storage retained and released).
        var change = Change()
        let floor = floor.flatMap { $0.isZero ? nil : $0 }
        if let existing = objects.index(forKey: KeyName(key)) {
            let claims = floor.map { objects.values[existing].claim($0, touching: touching) }
            var delta: KeyObject
            do {
                delta = try Self.write(&objects.values[existing], &change, body)
            } catch {
                if let claims { orphan(key, at: existing, claims, stamp) }
                throw error
            }
            if let claims { objects.values[existing].settle(claims.claims, created: claims.created, into: &delta) }
            guard !delta.isBottom else { return nil }
            if let stamp { Self.stamp(&objects.values[existing], &delta, stamp) }
            return recorded(key, delta, change)
        }
        var created = KeyObject()
        let claims = floor.map { created.claim($0, touching: touching) }
        var delta = try Self.write(&created, &change, body)
        if let claims { created.settle(claims.claims, created: claims.created, into: &delta) }
        guard !delta.isBottom else { return nil }
        if let stamp { Self.stamp(&created, &delta, stamp) }
        objects[KeyName(key)] = consume created
        keyCreated()
        return recorded(key, delta, change)
    }

    /// A claim made before a write that then failed, and which changed the object: its own write.
    private(set) var orphanedClaim: LocalWrite?

    mutating func takeOrphanedClaim() -> LocalWrite? {
        defer { orphanedClaim = nil }
        return orphanedClaim
    }

    private mutating func orphan(_ key: Bytes, at index: Dictionary<KeyName, KeyObject>.Index,
                                 _ claims: (claims: KeyObject, created: KeyObject.SlotSet), _ stamp: Dot?) {
        var delta = KeyObject()
        objects.values[index].settle(claims.claims, created: claims.created, into: &delta)
        guard !delta.isBottom else { return }
        if let stamp { Self.stamp(&objects.values[index], &delta, stamp) }
        let type = objects.values[index].visibleType
        orphanedClaim = recorded(key, delta, Change(typeBefore: type, typeAfter: type, deadline: objects.values[index].expiry.expiresAt))
    }

    private static func stamp(_ object: inout KeyObject, _ delta: inout KeyObject, _ stamp: Dot) {
        object.stamps.raise(stamp.replica, to: stamp.counter)
        delta.stamps = WriteStamps(stamp.replica, stamp.counter)
    }

    private mutating func recorded(_ key: Bytes, _ delta: borrowing KeyObject, _ change: Change) -> LocalWrite {
        let bytes = delta.serialized()
        return LocalWrite(delta: bytes, record: changed(key, change, deltaBytes: bytes), typeBefore: change.typeBefore,
                          typeAfter: change.typeAfter)
    }

    /// Joins a delta or state a peer sent into `key`. Returns the record to persist, or `nil` when the
    /// peer sent nothing new (a duplicate, a replay, or something already covered): the common case
    /// under gossip, decided in O(delta).
    mutating func join(remote delta: KeyObject, bytes: Bytes, into key: Bytes) -> DurableRecord? {
        var change = Change()
        let recording = recordsChanges
        var counts = (before: 0, after: 0)
        if let existing = objects.index(forKey: KeyName(key)) {
            guard Self.write(&objects.values[existing], &change, { object in
                Self.inflate(&object, with: delta, counting: recording, &counts)
            }) else { return nil }
        } else {
            var created = KeyObject()
            guard Self.write(&created, &change, { object in
                Self.inflate(&object, with: delta, counting: recording, &counts)
            }) else { return nil }
            objects[KeyName(key)] = consume created
            keyCreated()
        }
        if recording {
            remoteChanges.append(RemoteChange(key: key, typeBefore: change.typeBefore, typeAfter: change.typeAfter,
                                              countBefore: counts.before, countAfter: counts.after,
                                              onlyDeadline: delta.changesOnlyDeadline, deadline: change.deadline))
        }
        return changed(key, change, deltaBytes: bytes)
    }

    /// Joins a large state a peer sent whole (repair, in chunks) into a key that holds nothing here, and
    /// persists it as a staged snapshot of the received bytes, written in parts over the next steps,
    /// instead of as one delta of them (27 MB in one commit for a million members). The key had no
    /// records, so the snapshot (bottom joined with the state: the state) covers everything before its
    /// begin; deltas joined while the parts are written come after it and stay live. `false` when the key
    /// exists here or the state is small: the caller joins it as any state. O(1) on the engine thread.
    mutating func joinStaged(remote state: KeyObject, bytes: Bytes, into key: Bytes, records: inout [DurableRecord]) -> Bool {
        let name = KeyName(key)
        guard bytes.count >= stagingSettings.thresholdBytes, objects[name] == nil, compaction[name] == nil else { return false }
        // Bottom: nothing to keep.
        guard !state.isBottom else { return true }
        // Bottom joined with the state is the state: it is installed as it was decoded (the sender's own
        // representation), without a join that walks a million members on the engine thread.
        let type = state.visibleType
        countTypeChange(from: nil, to: type)
        digests.invalidate(key)
        expiries.update(key, deadline: state.expiry.expiresAt)
        if recordsChanges {
            remoteChanges.append(RemoteChange(key: key, typeBefore: nil, typeAfter: type, countBefore: 0,
                                              countAfter: state.shownCount, onlyDeadline: false,
                                              deadline: state.expiry.expiresAt))
        }
        objects[name] = state
        keyCreated()
        if type == nil { tombstones.enqueue(name) }
        // Staging: the key's own deltas do not make it due for a snapshot until this one is sealed.
        compaction[name] = CompactionState(snapshotBytes: bytes.count, deltaBytes: 0, changedAt: now, staging: true)
        records.append(.snapshotBegin(key: key))
        staging.append(StagedSnapshot(key: key, bytes: bytes))
        return true
    }

    private static func inflate(_ object: inout KeyObject, with delta: KeyObject, counting: Bool,
                                _ counts: inout (before: Int, after: Int)) -> Bool {
        if counting { counts.before = object.shownCount }
        let inflated = object.inflate(with: delta)
        if counting { counts.after = object.shownCount }
        return inflated
    }

    /// What the bookkeeping needs to know of a change to one object.
    private struct Change {
        var typeBefore: KeyType?
        var typeAfter: KeyType?
        var deadline: UInt64?
    }

    /// Runs `body` on `object` in place and reads what `changed` needs before and after it. The
    /// change comes back through `change`, not in a tuple with the result: returning the delta
    /// alone lets it move to the caller instead of being copied out of the tuple.
    private static func write<Result, Failure: Error>(
        _ object: inout KeyObject, _ change: inout Change, _ body: (inout KeyObject) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        change.typeBefore = object.visibleType
        let result = try body(&object)
        change.typeAfter = object.visibleType
        change.deadline = object.expiry.expiresAt
        return result
    }

    /// Bookkeeping after `key`'s object changed by a delta of `deltaBytes`; returns what to persist.
    private mutating func changed(_ key: Bytes, _ change: Change, deltaBytes: Bytes) -> DurableRecord {
        countTypeChange(from: change.typeBefore, to: change.typeAfter)
        if change.typeAfter == nil { tombstones.enqueue(KeyName(key)) }
        digests.invalidate(key)
        expiries.update(key, deadline: change.deadline)
        stepDeltaBytes += deltaBytes.count
        // One lookup of the key's compaction state, updated in place.
        let snapshotDue = Self.account(&compaction[KeyName(key), default: CompactionState()], deltaBytes: deltaBytes.count,
                                       now: now, floor: snapshotFloorBytes)
        guard snapshotDue else { return .delta(key: key, bytes: deltaBytes) }
        // Rare (once the deltas outweigh the last snapshot).
        let name = KeyName(key)
        let state = compaction[name]!
        // Staged already, or being staged: the deltas keep counting, and are looked at again at the seal.
        guard !state.staging else { return .delta(key: key, bytes: deltaBytes) }
        if state.snapshotBytes + state.deltaBytes >= stagingSettings.thresholdBytes {
            // A large object: snapshotted in parts from the end of this step on (`stageSnapshots`).
            compaction[name]!.staging = true
            stagingDue.append(key)
            return .delta(key: key, bytes: deltaBytes)
        }
        // The copy the getter makes is affordable.
        let snapshot = objects[name]!.serialized()
        compaction[name] = CompactionState(snapshotBytes: snapshot.count, deltaBytes: 0, changedAt: now)
        return .snapshot(key: key, bytes: snapshot)
    }

    /// Ends a step for the staged snapshots: begins those that came due (after every delta of the step,
    /// so each covers them), then hands out parts, at least one part's worth and twice the step's delta
    /// bytes, oldest stage first, and seals a stage after its last part. O(the parts written), plus, at a
    /// begin, one serialisation of the object (O(object) once per O(object) of deltas written), which
    /// runs off the engine thread when the shell gave a `StagingSettings.background` runner: the begin is
    /// emitted at once (it covers what the copy holds) and the parts follow once the bytes are ready.
    mutating func stageSnapshots(into records: inout [DurableRecord]) {
        defer { stepDeltaBytes = 0 }
        guard !stagingDue.isEmpty || !staging.isEmpty else { return }
        for key in stagingDue {
            let name = KeyName(key)
            guard let object = objects[name] else {
                compaction[name]?.staging = false
                continue
            }
            let changedAt = compaction[name]?.changedAt ?? now
            guard stagingSettings.background == nil else {
                // Off the engine thread, from a copy-on-write copy of the object as of this step. Its size
                // is not known yet: the estimate (what the store held) stands until the bytes arrive.
                let estimate = (compaction[name]?.snapshotBytes ?? 0) + (compaction[name]?.deltaBytes ?? 0)
                compaction[name] = CompactionState(snapshotBytes: estimate, deltaBytes: 0, changedAt: changedAt, staging: true)
                records.append(.snapshotBegin(key: key))
                staging.append(StagedSnapshot(key: key, pending: PendingSerialisation(object, background: stagingSettings.background)))
                continue
            }
            let bytes = object.serialized()
            let staged = bytes.count >= stagingSettings.thresholdBytes
            compaction[name] = CompactionState(snapshotBytes: bytes.count, deltaBytes: 0, changedAt: changedAt, staging: staged)
            guard staged else {
                // It shrank below the threshold since it came due: one commit writes it, as for any object.
                records.append(.snapshot(key: key, bytes: bytes))
                continue
            }
            records.append(.snapshotBegin(key: key))
            staging.append(StagedSnapshot(key: key, bytes: bytes))
        }
        stagingDue.removeAll(keepingCapacity: true)
        var budget = max(stagingSettings.partBytes, 2 * stepDeltaBytes)
        var sealed = 0
        while budget > 0, sealed < staging.count {
            if staging[sealed].bytes == nil {
                // Still being serialised: this stage, and those behind it, wait for a later step.
                guard let bytes = staging[sealed].pending?.bytes else { break }
                staging[sealed].bytes = bytes
                staging[sealed].pending = nil
                compaction[KeyName(staging[sealed].key)]?.snapshotBytes = bytes.count
            }
            let total = staging[sealed].bytes!.count
            let count = min(stagingSettings.partBytes, total - staging[sealed].offset, budget)
            let start = staging[sealed].offset
            records.append(.snapshotPart(key: staging[sealed].key, bytes: Array(staging[sealed].bytes![start..<(start + count)])))
            staging[sealed].offset += count
            budget -= count
            guard staging[sealed].offset == total else { continue }
            let key = staging[sealed].key
            records.append(.snapshotSeal(key: key))
            sealed += 1
            let name = KeyName(key)
            compaction[name]?.staging = false
            // The deltas written while the parts were may outweigh it already: staged again next step.
            if let state = compaction[name], state.deltaBytes > max(state.snapshotBytes, snapshotFloorBytes) {
                compaction[name]!.staging = true
                stagingDue.append(key)
            }
        }
        staging.removeFirst(sealed)
    }

    /// Staged snapshots being written (tests, `INFO`).
    var stagedSnapshotsInProgress: Int { staging.count + stagingDue.count }

    /// Counts a delta into a key's compaction state; true when the deltas now outweigh the snapshot.
    private static func account(_ state: inout CompactionState, deltaBytes: Int, now: UInt64, floor: Int) -> Bool {
        state.changedAt = now
        state.deltaBytes += deltaBytes
        return state.deltaBytes > max(state.snapshotBytes, floor)
    }

    /// Whether `key` holds a bounded counter (which `SET` may not overwrite), without copying its object.
    mutating func holdsBoundedCounter(_ key: Bytes) -> Bool {
        guard let index = objects.index(forKey: KeyName(key)) else { return false }
        return Self.isBounded(&objects.values[index])
    }

    private static func isBounded(_ object: inout KeyObject) -> Bool { !object.bounded.isBottom }

    /// `key`'s expiry deadline (Unix milliseconds), from the expiry index: no lookup of the object.
    func deadline(of key: Bytes) -> UInt64? { expiries.deadline(of: key) }

    private mutating func countTypeChange(from old: KeyType?, to new: KeyType?) {
        guard old != new else { return }
        if let old { typeCounts[old, default: 0] -= 1 }
        if let new { typeCounts[new, default: 0] += 1 }
    }

    private mutating func keyCreated() {
        order = nil
        scanOrder = nil
    }

    /// `SCAN`'s hash of a key: never 0, the cursor that starts an iteration.
    static func scanHash(_ key: Bytes) -> UInt64 { Digest128(hashing: key).high | 1 }

    /// The keys in scan-hash order from the first whose hash is at least `cursor` (a slice: no copy).
    mutating func scanOrder(from cursor: UInt64) -> ArraySlice<(hash: UInt64, key: Bytes)> {
        if scanOrder == nil {
            scanOrder = objects.keys.map { (Self.scanHash($0.bytes), $0.bytes) }
                .sorted { $0.hash != $1.hash ? $0.hash < $1.hash : $0.key.lexicographicallyPrecedes($1.key) }
        }
        let all = scanOrder!
        var low = 0, high = all.count
        while low < high {
            let middle = (low + high) / 2
            if all[middle].hash < cursor { low = middle + 1 } else { high = middle }
        }
        return all[low...]
    }

    // MARK: Collection

    /// Removes the tombstones whose every write is at or below `frontier`: it examines up to `budget`
    /// candidates (O(budget), whatever the size of the keyspace) and appends a `remove` record for each
    /// key collected. Returns how many were collected and the largest dot and count `replica` numbered in
    /// them, which the floor must cover from now on.
    mutating func collectTombstones(under frontier: [ReplicaID: UInt64], replica: ReplicaID, budget: Int,
                                    into records: inout [DurableRecord]) -> (collected: Int, dots: UInt64, counts: UInt64) {
        var result = (collected: 0, dots: UInt64(0), counts: UInt64(0))
        var kept: [KeyName] = []
        for _ in 0..<budget {
            guard let name = tombstones.dequeue() else { break }
            guard let object = objects[name], object.visibleType == nil else { continue }
            guard object.isTombstone else {
                // Still holds something (a deadline on nothing, a bounded counter): looked at again after its
                // next change.
                continue
            }
            // Without stamps (written before stamps existed) it cannot be shown stable: kept for good.
            guard !object.stamps.isEmpty else { continue }
            guard object.stamps.isCovered(by: frontier), compaction[name]?.staging != true else {
                kept.append(name)
                continue
            }
            let numbering = object.numbering(of: replica)
            result.dots = max(result.dots, numbering.dots)
            result.counts = max(result.counts, numbering.counts)
            objects[name] = nil
            compaction[name] = nil
            digests.invalidate(name.bytes)
            expiries.update(name.bytes, deadline: nil)
            records.append(.remove(key: name.bytes))
            result.collected += 1
        }
        for name in kept { tombstones.enqueue(name) }
        if result.collected > 0 { shrinkAfterCollection() }
        return result
    }

    /// Tables keep their capacity when entries go: after most of the keyspace was collected they are
    /// rebuilt at their size (O(keys left), at most once per halving), so the memory goes too.
    private mutating func shrinkAfterCollection() {
        order = nil
        scanOrder = nil
        tombstones.shrink()
        digests.shrink()
        guard objects.capacity > 4 * max(objects.count, 1024) else { return }
        objects = Dictionary(objects.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        compaction = Dictionary(compaction.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// Candidates for collection waiting (`INFO`).
    var tombstoneCandidates: Int { tombstones.count }

    /// Every key in byte order (cached until a key is created).
    mutating func orderedKeys() -> [Bytes] {
        if let order { return order }
        let sorted = objects.keys.map(\.bytes).sorted { $0.lexicographicallyPrecedes($1) }
        order = sorted
        return sorted
    }

    // MARK: Expiry

    /// Keys with an expiry deadline.
    var keysWithDeadline: Int { expiries.count }

    /// Up to `limit` keys whose deadline is before `now` (Unix milliseconds), earliest first.
    mutating func keysExpired(before now: UInt64, limit: Int) -> [Bytes] { expiries.due(before: now, limit: limit) }

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

    /// About how many bytes `key`'s object serialises to (its last snapshot and the deltas since), in O(1).
    func storedBytes(of key: Bytes) -> Int {
        guard let state = compaction[KeyName(key)] else { return 0 }
        return state.snapshotBytes + state.deltaBytes
    }

    /// When `key` last changed here (tick time), if it ever did since start.
    func lastChange(of key: Bytes) -> UInt64? { compaction[KeyName(key)]?.changedAt }
}

/// How much of a key's stored form is snapshot and how much appended deltas, and when it last changed.
struct CompactionState {
    var snapshotBytes = 0
    var deltaBytes = 0
    var changedAt: UInt64 = 0
    /// A staged snapshot of the key is due or being written.
    var staging = false
}

/// When an object is snapshotted in parts, and how large the parts are (`EngineConfiguration`).
struct StagingSettings {
    var thresholdBytes = 1 << 20
    var partBytes = 256 << 10
    /// Where a staged snapshot's object is serialised; `nil`: inline, in the step that begins it.
    var background: BackgroundRunner?
}

/// A staged snapshot being written: the object serialised at its begin (or being serialised off the
/// engine thread), and the bytes handed out.
struct StagedSnapshot {
    var key: Bytes
    var bytes: Bytes?
    var pending: PendingSerialisation?
    var offset = 0
}

/// Keys to examine for collection, each once, oldest first.
struct TombstoneQueue {
    private var queue: [KeyName] = []
    private var head = 0
    private var queued: Set<KeyName> = []

    var count: Int { queued.count }

    mutating func enqueue(_ name: KeyName) {
        guard queued.insert(name).inserted else { return }
        queue.append(name)
    }

    /// Gives back the memory of a queue that grew large and was drained.
    mutating func shrink() {
        guard queued.isEmpty, queue.capacity > 1024 else { return }
        queue = []
        head = 0
        queued = []
    }

    mutating func dequeue() -> KeyName? {
        guard head < queue.count else { return nil }
        let name = queue[head]
        head += 1
        if head >= 1024 && head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
        queued.remove(name)
        return name
    }
}
