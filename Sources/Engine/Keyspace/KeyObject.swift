import CRDT

/// The replicated state behind one key: one slot per data type, joined slot by slot.
///
/// Redis keys have one type, but two replicas may concurrently create one name with two types
/// (`INCR k` here, `SADD k x` there) and no coordination may pick a winner. So every key is a product
/// lattice of all types: both writes survive, the join stays commutative, and the key *reads* as the
/// first non-empty slot in a fixed order — counter, string, set, hash, bounded counter. Commands for a
/// shadowed type answer `WRONGTYPE`; `DEL` clears every slot, after which the shadowed data is gone too.
/// Every replica applies the same order, so every replica shows the same type.
public struct KeyObject: DeltaCRDT, BinaryCodable {
    /// `INCR`/`INCRBY`/`DECR`/`DECRBY`; `DEL` is an observed reset.
    public var counter = ResettableCounter()
    /// `SET`/`GET`: last writer wins by (Lamport timestamp, replica); `DEL` removes the observed value.
    public var string = CausalLWWRegister<Bytes>()
    /// `SADD`/`SREM`: add wins over a concurrent remove.
    public var set = AWSet<Bytes>()
    /// `HSET`/`HDEL`: an observed-remove map of last-writer-wins fields.
    public var hash = ORMap<Bytes, CausalLWWRegister<Bytes>>()
    /// `CRDT.B*`: a counter that never goes below zero without coordination.
    public var bounded = BoundedCounter()

    public init() {}

    public mutating func join(_ other: KeyObject) {
        _ = inflate(with: other)
    }

    /// Joins slot by slot, skipping the slots `other` leaves at bottom (a delta touches one), and
    /// reports whether anything changed. O(other): a delta received into a set of a million members
    /// costs what the delta holds.
    public mutating func inflate(with other: KeyObject) -> Bool {
        var changed = false
        if !other.counter.entries.isEmpty { changed = counter.inflate(with: other.counter) || changed }
        if !other.string.context.isEmpty { changed = string.inflate(with: other.string) || changed }
        if !other.set.context.isEmpty { changed = set.inflate(with: other.set) || changed }
        if !other.hash.context.isEmpty { changed = hash.inflate(with: other.hash) || changed }
        if !other.bounded.rights.isEmpty || !other.bounded.decrements.isEmpty {
            changed = bounded.inflate(with: other.bounded) || changed
        }
        return changed
    }

    /// A digest of the whole state that costs O(replicas + out-of-order dots), not O(elements): the
    /// set's and the hash's stores enter through the dot digests their maps keep up to date (a dot
    /// names one event, so equal dots mean equal entries between honest replicas); everything else is
    /// small and is encoded. Equal on two replicas exactly when their states are equal (up to hash
    /// collisions).
    public func digest(key: Bytes) -> Digest128 {
        var writer = BinaryWriter()
        writer.write(lengthPrefixed: key)
        counter.encode(to: &writer)
        string.encode(to: &writer)
        bounded.encode(to: &writer)
        set.context.encode(to: &writer)
        writer.write(fixed64: set.store.dotDigest.high)
        writer.write(fixed64: set.store.dotDigest.low)
        hash.context.encode(to: &writer)
        writer.write(fixed64: hash.store.dotDigest.high)
        writer.write(fixed64: hash.store.dotDigest.low)
        return Digest128(hashing: writer.bytes)
    }

    /// An observed remove of every slot (`DEL`, `FLUSHDB`, an expired key): what this replica has seen
    /// is removed, and a concurrent write survives. Returns the delta. The bounded counter is left alone:
    /// its rights are spread over replicas and cannot be revoked without coordination.
    public mutating func removeObserved() -> KeyObject {
        var delta = KeyObject()
        delta.counter = counter.reset()
        delta.string = string.remove()
        delta.set = set.removeAll()
        delta.hash = hash.removeAll()
        return delta
    }

    /// The type the key shows to clients, or `nil` when the key does not exist.
    public var visibleType: KeyType? {
        if counter.isLive { return .counter }
        if string.value != nil { return .string }
        if set.count > 0 { return .set }
        if !hash.isEmpty { return .hash }
        if bounded != BoundedCounter() { return .boundedCounter }
        return nil
    }

    // MARK: Encoding

    /// Slots are written only when they differ from bottom, behind a bit mask, so a delta touching one
    /// slot costs one byte over that slot's own encoding.
    public func encode(to writer: inout BinaryWriter) {
        var mask: UInt8 = 0
        if counter != ResettableCounter() { mask |= 1 << 0 }
        if string != CausalLWWRegister() { mask |= 1 << 1 }
        if set != AWSet() { mask |= 1 << 2 }
        if hash != ORMap() { mask |= 1 << 3 }
        if bounded != BoundedCounter() { mask |= 1 << 4 }
        writer.write(byte: mask)
        if mask & (1 << 0) != 0 { counter.encode(to: &writer) }
        if mask & (1 << 1) != 0 { string.encode(to: &writer) }
        if mask & (1 << 2) != 0 { set.encode(to: &writer) }
        if mask & (1 << 3) != 0 { hash.encode(to: &writer) }
        if mask & (1 << 4) != 0 { bounded.encode(to: &writer) }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let mask = try reader.readByte()
        guard mask < 1 << 5 else { throw .invalidValue(reason: "key object slot mask \(mask)", offset: reader.offset - 1) }
        if mask & (1 << 0) != 0 { counter = try ResettableCounter(from: &reader) }
        if mask & (1 << 1) != 0 { string = try CausalLWWRegister(from: &reader) }
        if mask & (1 << 2) != 0 { set = try AWSet(from: &reader) }
        if mask & (1 << 3) != 0 { hash = try ORMap(from: &reader) }
        if mask & (1 << 4) != 0 { bounded = try BoundedCounter(from: &reader) }
    }

    /// The stored and shipped form: a format version byte, then the body.
    public func serialized() -> Bytes {
        var writer = BinaryWriter()
        writer.write(byte: Self.formatVersion)
        encode(to: &writer)
        return writer.bytes
    }

    /// Decodes bytes from `serialized()`, rejecting other versions and trailing bytes.
    public init(serialized bytes: Bytes, limits: DecodingLimits = .default) throws(CRDTDecodingError) {
        var reader = try BinaryReader(bytes, limits: limits)
        let version = try reader.readByte()
        guard version == Self.formatVersion else {
            throw .unsupportedVersion(found: version, supported: Self.formatVersion)
        }
        try self.init(from: &reader)
        try reader.finish()
    }

    static let formatVersion: UInt8 = 1
}

/// The type a key shows to clients (`TYPE`).
public enum KeyType: String, Sendable, CaseIterable {
    case counter, string, set, hash
    case boundedCounter = "bcounter"
}

extension ResettableCounter {
    /// Whether any contribution is beyond what a reset observed: the key exists (even at value 0).
    var isLive: Bool {
        contributions.values.contains { $0.increments > $0.resetIncrements || $0.decrements > $0.resetDecrements }
    }
}
