import CRDT

/// The replicated state behind one key: one slot per data type, joined slot by slot.
///
/// Redis keys have one type, but two replicas may concurrently create one name with two types
/// (`INCR k` here, `SADD k x` there) and no coordination may pick a winner. So every key is a product
/// lattice of all types: both writes survive, the join stays commutative, and the key *reads* as the
/// first non-empty slot in a fixed order — counter, string, set, hash, bounded counter, sorted set,
/// HyperLogLog, list. Commands for a
/// shadowed type answer `WRONGTYPE`; `DEL` clears every slot, after which the shadowed data is gone too.
/// Every replica applies the same order, so every replica shows the same type.
public struct KeyObject: DeltaCRDT, BinaryCodable {
    /// A hash field: a written value with a counter on top (`HSET` writes, `HINCRBY` increments).
    public typealias HashField = CountingRegister<Bytes, Int64>

    /// `INCR`/`INCRBY`/`DECR`/`DECRBY`; `DEL` is an observed reset.
    public var counter = ResettableCounter()
    /// `SET`/`GET`: last writer wins by (Lamport timestamp, replica); `DEL` removes the observed value.
    public var string = CausalLWWRegister<Bytes>()
    /// `EXPIRE`/`PERSIST`: the key's deadline. Not a type: it applies to whatever the key holds.
    public var expiry = ExpiryRegister()
    /// Per replica, the last local write stamp among the writes this object reflects (see `WriteStamps`).
    var stamps = WriteStamps()
    /// The collection slots, allocated only for a key that has one. Inline, the nine slots took 432
    /// bytes and about 35 reference-counted buffers per key, for keys that almost always use one
    /// slot: every counter and string paid for a set, a hash, a sorted set and a list in memory, and
    /// in every copy and destroy of the object. Copy on write: see `collectionsForWriting`.
    @usableFromInline var collections: Collections?

    /// `SADD`/`SREM`: add wins over a concurrent remove.
    public var set: AWSet<Bytes> {
        get { collections?.set ?? AWSet() }
        set { collectionsForWriting().set = newValue }
        _modify { yield &collectionsForWriting().set }
    }
    /// `HSET`/`HINCRBY`/`HDEL`: an observed-remove map of fields, each a last-writer-wins value plus
    /// the increments the winning write had not seen.
    public var hash: ORMap<Bytes, HashField> {
        get { collections?.hash ?? ORMap() }
        set { collectionsForWriting().hash = newValue }
        _modify { yield &collectionsForWriting().hash }
    }
    /// `CRDT.B*`: a counter that never goes below zero without coordination.
    public var bounded: BoundedCounter {
        get { collections?.bounded ?? BoundedCounter() }
        set { collectionsForWriting().bounded = newValue }
        _modify { yield &collectionsForWriting().bounded }
    }
    /// `ZADD`/`ZINCRBY`/`ZREM`: an observed-remove map from member to score.
    public var sortedSet: SortedSet {
        get { collections?.sortedSet ?? SortedSet() }
        set { collectionsForWriting().sortedSet = newValue }
        _modify { yield &collectionsForWriting().sortedSet }
    }
    /// `PFADD`/`PFMERGE`: per-replica sketches that a `DEL` can remove.
    public var hyperLogLog: ResettableHyperLogLog {
        get { collections?.hyperLogLog ?? ResettableHyperLogLog() }
        set { collectionsForWriting().hyperLogLog = newValue }
        _modify { yield &collectionsForWriting().hyperLogLog }
    }
    /// `LPUSH`/`RPUSH`/`LSET`/`LPOP`/`LREM`: a sequence CRDT; concurrent inserts are all kept.
    public var list: ReplicatedList<Bytes> {
        get { collections?.list ?? ReplicatedList() }
        set { collectionsForWriting().list = newValue }
        _modify { yield &collectionsForWriting().list }
    }

    /// The boxed slots. A box is shared between copies of a `KeyObject` and mutated only by an object that
    /// holds the sole reference (`collectionsForWriting` copies it first otherwise), so it behaves as a value.
    // @unchecked Sendable: a box reachable from two `KeyObject` values (so possibly two threads) is never
    // mutated; mutation happens only through `collectionsForWriting`, after `isKnownUniquelyReferenced`.
    @usableFromInline final class Collections: @unchecked Sendable {
        @usableFromInline var set = AWSet<Bytes>()
        @usableFromInline var hash = ORMap<Bytes, HashField>()
        @usableFromInline var bounded = BoundedCounter()
        @usableFromInline var sortedSet = SortedSet()
        @usableFromInline var hyperLogLog = ResettableHyperLogLog()
        @usableFromInline var list = ReplicatedList<Bytes>()

        @usableFromInline init() {}

        /// The boxed slots' part of `KeyObject.digest(key:)`, between the string and the expiry (the list
        /// comes last, and only when present).
        func writeDigestPart(to writer: inout BinaryWriter) {
            bounded.encode(to: &writer)
            set.context.encode(to: &writer)
            writer.write(fixed64: set.store.dotDigest.high)
            writer.write(fixed64: set.store.dotDigest.low)
            hash.context.encode(to: &writer)
            writer.write(fixed64: hash.store.dotDigest.high)
            writer.write(fixed64: hash.store.dotDigest.low)
            sortedSet.context.encode(to: &writer)
            writer.write(fixed64: sortedSet.store.dotDigest.high)
            writer.write(fixed64: sortedSet.store.dotDigest.low)
            hyperLogLog.encode(to: &writer)
        }

        @usableFromInline init(copying other: Collections) {
            set = other.set
            hash = other.hash
            bounded = other.bounded
            sortedSet = other.sortedSet
            hyperLogLog = other.hyperLogLog
            list = other.list
        }
    }

    /// The box, allocated or copied so that this object holds the only reference to it.
    @inlinable
    mutating func collectionsForWriting() -> Collections {
        // Checked before anything else holds the box: a binding taken first would make it look shared.
        if !isKnownUniquelyReferenced(&collections) {
            collections = collections.map(Collections.init(copying:)) ?? Collections()
        }
        return collections.unsafelyUnwrapped
    }

    public static func == (lhs: KeyObject, rhs: KeyObject) -> Bool {
        lhs.counter == rhs.counter && lhs.string == rhs.string && lhs.expiry == rhs.expiry && lhs.stamps == rhs.stamps
            && lhs.set == rhs.set
            && lhs.hash == rhs.hash && lhs.bounded == rhs.bounded && lhs.sortedSet == rhs.sortedSet
            && lhs.hyperLogLog == rhs.hyperLogLog && lhs.list == rhs.list
    }

    public init() {}

    public mutating func join(_ other: KeyObject) {
        _ = inflate(with: other)
    }

    /// Joins slot by slot, skipping the slots `other` leaves at bottom (a delta touches one or two), and
    /// reports whether anything changed. O(other): a delta received into a set of a million members
    /// costs what the delta holds.
    public mutating func inflate(with other: KeyObject) -> Bool {
        var changed = false
        if !other.counter.entries.isEmpty { changed = counter.inflate(with: other.counter) || changed }
        if !other.string.context.isEmpty { changed = string.inflate(with: other.string) || changed }
        if !other.expiry.context.isEmpty { changed = expiry.inflate(with: other.expiry) || changed }
        if !other.stamps.isEmpty { changed = stamps.formMaximum(other.stamps) || changed }
        guard let other = other.collections else { return changed }
        if !other.set.context.isEmpty { changed = set.inflate(with: other.set) || changed }
        if !other.hash.context.isEmpty { changed = hash.inflate(with: other.hash) || changed }
        if !other.bounded.rights.isEmpty || !other.bounded.decrements.isEmpty {
            changed = bounded.inflate(with: other.bounded) || changed
        }
        if !other.sortedSet.context.isEmpty { changed = sortedSet.inflate(with: other.sortedSet) || changed }
        if !other.hyperLogLog.context.isEmpty { changed = hyperLogLog.inflate(with: other.hyperLogLog) || changed }
        if !other.list.context.isEmpty { changed = list.inflate(with: other.list) || changed }
        return changed
    }

    /// A digest of the whole state that costs O(replicas + out-of-order dots), not O(elements): the
    /// set's, hash's and sorted set's stores enter through the dot digests their maps keep up to date
    /// (a dot names one event, and a counting shard's version enters its dot's digest, so equal digests
    /// mean equal entries between honest replicas); everything else is small and is encoded. A
    /// HyperLogLog is at most 12 KiB per replica that adds to it. Equal on two replicas exactly when
    /// their states are equal (up to hash collisions).
    public func digest(key: Bytes) -> Digest128 {
        var writer = BinaryWriter()
        writer.write(lengthPrefixed: key)
        counter.encode(to: &writer)
        string.encode(to: &writer)
        if let c = collections {
            c.writeDigestPart(to: &writer)
        } else {
            writer.write(raw: Self.bottomCollectionsDigestBytes)
        }
        expiry.encode(to: &writer)
        if let list = collections?.list, !list.context.isEmpty {
            // Only when present, so the digests of keys without a list are what they were before lists.
            list.context.encode(to: &writer)
            writer.write(fixed64: list.store.dotDigest.high)
            writer.write(fixed64: list.store.dotDigest.low)
        }
        // The write stamps are left out: they are bookkeeping about the content, not content. Two replicas
        // with the same content may hold different stamps for good: a node that collected a key and got it
        // back (recreated elsewhere before the others collected it) has lost the stamps of the first life,
        // which are all stable, and comparing them would make the digests differ for ever.
        return Digest128(hashing: writer.bytes)
    }

    /// What `digest(key:)` writes for the boxed slots at bottom, so that a key without a box digests as
    /// it did when every slot was inline.
    static let bottomCollectionsDigestBytes: Bytes = {
        var writer = BinaryWriter()
        Collections().writeDigestPart(to: &writer)
        return writer.bytes
    }()

    /// An observed remove of every slot (`DEL`, `FLUSHDB`, an expired key): what this replica has seen
    /// is removed, and a concurrent write survives. Returns the delta. The bounded counter is left alone:
    /// its rights are spread over replicas and cannot be revoked without coordination. `SET ... KEEPTTL`
    /// keeps the deadline.
    public mutating func removeObserved(keepingDeadline: Bool = false) -> KeyObject {
        // A slot that holds no dot removes nothing (its removal delta is bottom): skip it, so a `SET`
        // of a key holding a string costs one slot's removal, not seven.
        var delta = KeyObject()
        if !counter.entries.isEmpty { delta.counter = counter.reset() }
        if !string.store.isBottom { delta.string = string.remove() }
        if let c = collections {
            if !c.set.store.isBottom { delta.set = set.removeAll() }
            if !c.hash.store.isBottom { delta.hash = hash.removeAll() }
            if !c.sortedSet.store.isBottom { delta.sortedSet = sortedSet.removeAll() }
            if !c.hyperLogLog.sketches.isEmpty { delta.hyperLogLog = hyperLogLog.removeAll() }
            if !c.list.context.isEmpty { delta.list = list.removeAll() }
        }
        if !keepingDeadline && !expiry.store.isBottom { delta.expiry = expiry.clear() }
        return delta
    }

    /// Whether every slot is bottom (equal to `KeyObject()`): a write that produced this changed
    /// nothing. O(1), where `== KeyObject()` builds eight bottoms and compares every part.
    public var isBottom: Bool {
        guard counter.entries.isEmpty && string.isBottom && expiry.isBottom && stamps.isEmpty else { return false }
        guard let c = collections else { return true }
        return c.set.isBottom && c.hash.isBottom && c.bounded.isBottom && c.sortedSet.isBottom && c.hyperLogLog.isBottom
            && c.list.context.isEmpty
    }

    /// The type the key shows to clients, or `nil` when the key does not exist. Expiry is not
    /// considered here: the engine hides an expired key (it knows the time).
    public var visibleType: KeyType? {
        if counter.isLive { return .counter }
        if string.value != nil { return .string }
        guard let c = collections else { return nil }
        if c.set.count > 0 { return .set }
        if !c.hash.isEmpty { return .hash }
        if !c.bounded.isBottom { return .boundedCounter }
        if c.sortedSet.count > 0 { return .sortedSet }
        if c.hyperLogLog.exists { return .hyperLogLog }
        if c.list.count > 0 { return .list }
        return nil
    }

    // MARK: Encoding

    /// The slots in encoding order, by bit of the slot mask.
    enum Slot: Int, CaseIterable {
        case counter, string, set, hash, bounded, sortedSet, hyperLogLog, expiry, list, stamps
    }

    /// Slots are written only when they differ from bottom, behind a bit mask (a varint), so a delta
    /// touching one slot costs one byte over that slot's own encoding.
    public func encode(to writer: inout BinaryWriter) {
        var mask: UInt64 = 0
        func mark(_ slot: Slot, _ present: Bool) { if present { mask |= 1 << slot.rawValue } }
        // `isBottom` rather than `!= T()`: the same test without building and comparing bottoms.
        mark(.counter, !counter.entries.isEmpty)
        mark(.string, !string.isBottom)
        mark(.expiry, !expiry.isBottom)
        mark(.stamps, !stamps.isEmpty)
        let c = collections
        if let c {
            mark(.set, !c.set.isBottom)
            mark(.hash, !c.hash.isBottom)
            mark(.bounded, !c.bounded.isBottom)
            mark(.sortedSet, !c.sortedSet.isBottom)
            mark(.hyperLogLog, !c.hyperLogLog.isBottom)
            mark(.list, !c.list.context.isEmpty)   // a list's dots are all in its context: empty only at bottom
        }
        writer.write(varint: mask)
        func has(_ slot: Slot) -> Bool { mask & (1 << slot.rawValue) != 0 }
        if has(.counter) { counter.encode(to: &writer) }
        if has(.string) { string.encode(to: &writer) }
        if let c {
            if has(.set) { c.set.encode(to: &writer) }
            if has(.hash) { c.hash.encode(to: &writer) }
            if has(.bounded) { c.bounded.encode(to: &writer) }
            if has(.sortedSet) { c.sortedSet.encode(to: &writer) }
            if has(.hyperLogLog) { c.hyperLogLog.encode(to: &writer) }
        }
        if has(.expiry) { expiry.encode(to: &writer) }
        if let c, has(.list) { c.list.encode(to: &writer) }
        if has(.stamps) { stamps.encode(to: &writer) }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let offset = reader.offset
        let mask = try reader.readVarint()
        guard mask < 1 << Slot.allCases.count else { throw .invalidValue(reason: "key object slot mask \(mask)", offset: offset) }
        func has(_ slot: Slot) -> Bool { mask & (1 << slot.rawValue) != 0 }
        if has(.counter) { counter = try ResettableCounter(from: &reader) }
        if has(.string) { string = try CausalLWWRegister(from: &reader) }
        if has(.set) { set = try AWSet(from: &reader) }
        if has(.hash) { hash = try ORMap(from: &reader) }
        if has(.bounded) { bounded = try BoundedCounter(from: &reader) }
        if has(.sortedSet) { sortedSet = try SortedSet(from: &reader) }
        if has(.hyperLogLog) { hyperLogLog = try ResettableHyperLogLog(from: &reader) }
        if has(.expiry) { expiry = try ExpiryRegister(from: &reader) }
        if has(.list) { list = try ReplicatedList(from: &reader) }
        if has(.stamps) { stamps = try WriteStamps(from: &reader) }
    }

    /// Format 1 (before issue 16): a one-byte mask of five slots, hash fields as plain registers.
    init(version1 reader: inout BinaryReader) throws(CRDTDecodingError) {
        let mask = try reader.readByte()
        guard mask < 1 << 5 else { throw .invalidValue(reason: "key object slot mask \(mask)", offset: reader.offset - 1) }
        if mask & (1 << 0) != 0 { counter = try ResettableCounter(from: &reader) }
        if mask & (1 << 1) != 0 { string = try CausalLWWRegister(from: &reader) }
        if mask & (1 << 2) != 0 { set = try AWSet(from: &reader) }
        if mask & (1 << 3) != 0 {
            let fields = try ORMap<Bytes, CausalLWWRegister<Bytes>>(from: &reader)
            hash = ORMap(converting: fields, HashField.store(converting:))
        }
        if mask & (1 << 4) != 0 { bounded = try BoundedCounter(from: &reader) }
    }

    /// The stored and shipped form: a format version byte, then the body.
    public func serialized() -> Bytes {
        var writer = BinaryWriter()
        writer.write(byte: Self.formatVersion)
        encode(to: &writer)
        return writer.bytes
    }

    /// Decodes bytes from `serialized()`, rejecting unknown versions and trailing bytes. Format 1,
    /// which a database or a peer from before issue 16 holds, is read and converted (same dots and
    /// contexts, so a converted state joins exactly with what other nodes converted).
    public init(serialized bytes: Bytes, limits: DecodingLimits = .default) throws(CRDTDecodingError) {
        var reader = try BinaryReader(bytes, limits: limits)
        let version = try reader.readByte()
        switch version {
        case Self.formatVersion: try self.init(from: &reader)
        case 1: try self.init(version1: &reader)
        default: throw .unsupportedVersion(found: version, supported: Self.formatVersion)
        }
        try reader.finish()
    }

    /// 2 since issue 16: a varint slot mask, sorted sets, HyperLogLogs, expiry, and counting hash fields.
    /// Lists came later as slot 8 of the same format: an older node refuses such a key's bytes (slot mask
    /// out of range) rather than misreading them. Write stamps came later still, as slot 9.
    static let formatVersion: UInt8 = 2
}

/// The type a key shows to clients (`TYPE`).
extension KeyObject {
    /// Elements of the shown type (members, fields, list elements; 0 for a counter, string or sketch),
    /// in O(1), for keyspace notifications of changes from peers.
    var shownCount: Int {
        switch visibleType {
        case .set: set.count
        case .hash: hash.count
        case .sortedSet: sortedSet.count
        case .list: list.count
        default: 0
        }
    }

    /// Whether this delta holds nothing but a deadline change (`EXPIRE`, `PERSIST` on another node).
    var changesOnlyDeadline: Bool {
        !expiry.isBottom && counter.entries.isEmpty && string.isBottom && set.isBottom && hash.isBottom && bounded.isBottom
            && sortedSet.isBottom && hyperLogLog.isBottom && list.context.isEmpty
    }
}

public enum KeyType: String, Sendable, CaseIterable {
    case counter, string, set, hash
    case boundedCounter = "bcounter"
    case sortedSet = "zset"
    case hyperLogLog = "hyperloglog"
    case list
}

extension BoundedCounter {
    /// Whether it equals `BoundedCounter()`, without building one.
    var isBottom: Bool { rights.isEmpty && decrements.isEmpty }
}

extension ResettableHyperLogLog {
    /// Whether it equals `ResettableHyperLogLog()` (its equality compares sketches and context).
    var isBottom: Bool { sketches.isEmpty && context.isEmpty }
}

extension ResettableCounter {
    /// Whether any contribution is beyond what a reset observed: the key exists (even at value 0).
    var isLive: Bool {
        contributions.values.contains { $0.increments > $0.resetIncrements || $0.decrements > $0.resetDecrements }
    }
}

// MARK: Numbering after collection

extension KeyObject {
    /// Slots, as a set (`Slot` raw values as bits).
    struct SlotSet: OptionSet, Hashable {
        let rawValue: UInt16
        init(rawValue: UInt16) { self.rawValue = rawValue }
        init(_ slot: Slot) { rawValue = 1 << slot.rawValue }
        static let all = SlotSet(rawValue: (1 << Slot.allCases.count) - 1)
        static let counter = SlotSet(.counter), string = SlotSet(.string), expiry = SlotSet(.expiry)
        static let set = SlotSet(.set), hash = SlotSet(.hash), sortedSet = SlotSet(.sortedSet)
        static let hyperLogLog = SlotSet(.hyperLogLog), list = SlotSet(.list)
    }

    /// Claims `floor` before a local write in the slots of `touching` (those the write may number in)
    /// that must resume above it. Returns the claims, to ship with the write, and the empty slots it
    /// claimed in (emptied again if the write leaves them untouched: a claim alone must not create a
    /// slot). The bounded counter is not numbered by dots.
    mutating func claim(_ floor: DotFloor, touching: SlotSet) -> (claims: KeyObject, created: SlotSet) {
        var claims = KeyObject()
        var created: SlotSet = []
        func consider(_ slot: Slot, empty: Bool, _ claim: () -> Void) {
            guard touching.contains(SlotSet(slot)) else { return }
            if empty { created.insert(SlotSet(slot)) }
            claim()
        }
        consider(.counter, empty: counter.entries.isEmpty) { if let c = counter.claim(floor) { claims.counter = c } }
        consider(.string, empty: string.isBottom) { if let c = string.claim(floor) { claims.string = c } }
        consider(.expiry, empty: expiry.isBottom) { if let c = expiry.claim(floor) { claims.expiry = c } }
        let box = collections
        consider(.set, empty: box?.set.isBottom ?? true) { if let c = set.claim(floor) { claims.set = c } }
        consider(.hash, empty: box?.hash.isBottom ?? true) { if let c = hash.claim(floor) { claims.hash = c } }
        consider(.sortedSet, empty: box?.sortedSet.isBottom ?? true) { if let c = sortedSet.claim(floor) { claims.sortedSet = c } }
        consider(.hyperLogLog, empty: box?.hyperLogLog.isBottom ?? true) { if let c = hyperLogLog.claim(floor) { claims.hyperLogLog = c } }
        consider(.list, empty: box?.list.context.isEmpty ?? true) { if let c = list.claim(floor) { claims.list = c } }
        return (claims, created)
    }

    /// After the write: empties the slots claimed in only because they were in `creating` and that the
    /// write left untouched, and adds the remaining claims to the write's delta.
    mutating func settle(_ claims: KeyObject, created: SlotSet, into delta: inout KeyObject) {
        var claims = claims
        func untouched(_ slot: Slot, _ deltaEmpty: Bool, _ reset: () -> Void) {
            guard created.contains(SlotSet(slot)), deltaEmpty else { return }
            reset()
        }
        untouched(.counter, delta.counter.entries.isEmpty) { counter = ResettableCounter(); claims.counter = ResettableCounter() }
        untouched(.string, delta.string.isBottom) { string = CausalLWWRegister(); claims.string = CausalLWWRegister() }
        untouched(.expiry, delta.expiry.isBottom) { expiry = ExpiryRegister(); claims.expiry = ExpiryRegister() }
        if collections != nil {
            untouched(.set, delta.set.isBottom) { set = AWSet(); claims.set = AWSet() }
            untouched(.hash, delta.hash.isBottom) { hash = ORMap(); claims.hash = ORMap() }
            untouched(.sortedSet, delta.sortedSet.isBottom) { sortedSet = SortedSet(); claims.sortedSet = SortedSet() }
            untouched(.hyperLogLog, delta.hyperLogLog.isBottom) { hyperLogLog = ResettableHyperLogLog(); claims.hyperLogLog = ResettableHyperLogLog() }
            untouched(.list, delta.list.context.isEmpty) { list = ReplicatedList(); claims.list = ReplicatedList() }
            if let c = collections, c.set.isBottom, c.hash.isBottom, c.bounded.isBottom, c.sortedSet.isBottom,
               c.hyperLogLog.isBottom, c.list.context.isEmpty {
                collections = nil
            }
        }
        if !claims.isBottom { delta.join(claims) }
    }

    /// The largest dot and count `replica` numbered in this object: what the floor must cover once it
    /// is collected.
    func numbering(of replica: ReplicaID) -> (dots: UInt64, counts: UInt64) {
        var dots = max(string.context.maxCounter(of: replica), expiry.context.maxCounter(of: replica))
        if let c = collections {
            dots = max(dots, c.set.context.maxCounter(of: replica), c.hash.context.maxCounter(of: replica),
                       c.sortedSet.context.maxCounter(of: replica), c.hyperLogLog.context.maxCounter(of: replica),
                       c.list.context.maxCounter(of: replica))
        }
        let own = counter.contribution(of: replica)
        return (dots, max(own.increments, own.decrements))
    }

    /// Whether the object holds nothing but its causal history: no dot, no live count, no bounded counter
    /// (whose rights cannot be revoked), no deadline. A collectable tombstone once its stamps are stable.
    var isTombstone: Bool {
        guard !counter.isLive, string.store.isBottom, expiry.store.isBottom else { return false }
        guard let c = collections else { return true }
        return c.set.store.isBottom && c.hash.store.isBottom && c.bounded.isBottom && c.sortedSet.store.isBottom
            && c.hyperLogLog.sketches.isEmpty && c.list.count == 0 && c.list.store.isBottom
    }
}
