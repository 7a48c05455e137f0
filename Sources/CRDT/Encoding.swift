// The canonical binary encoding of every CRDT state and delta. Collections are written sorted (by
// key, or by the key's encoded bytes for generic keys) and decoders insist on strictly increasing
// keys, so a decoded value re-encodes to the very same bytes and equal states give equal digests.

// MARK: Scalars

extension UInt64: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) { writer.write(varint: self) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try reader.readVarint() }
}

extension Int64: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) { writer.write(zigzag: self) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try reader.readZigZag() }
}

extension Bool: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) { writer.write(byte: self ? 1 : 0) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        switch try reader.readByte() {
        case 0: self = false
        case 1: self = true
        default: throw .invalidValue(reason: "a boolean must be 0 or 1", offset: start)
        }
    }
}

/// Byte strings (Redis keys and values) are length-prefixed.
extension Array: BinaryCodable where Element == UInt8 {
    @inlinable
    public func encode(to writer: inout BinaryWriter) { writer.write(lengthPrefixed: self) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try reader.readLengthPrefixed() }
}

/// Strings are length-prefixed UTF-8; invalid UTF-8 is rejected rather than repaired, so decoding
/// never yields a string that would re-encode differently.
extension String: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) { writer.write(lengthPrefixed: Array(utf8)) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        let bytes = try reader.readLengthPrefixed()
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw .invalidValue(reason: "string is not valid UTF-8", offset: start)
        }
        self = string
    }
}

extension Optional: BinaryCodable where Wrapped: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .none: writer.write(byte: 0)
        case .some(let wrapped):
            writer.write(byte: 1)
            wrapped.encode(to: &writer)
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        switch try reader.readByte() {
        case 0: self = .none
        case 1: self = .some(try Wrapped(from: &reader))
        default: throw .invalidValue(reason: "an optional's marker must be 0 or 1", offset: start)
        }
    }
}

/// Replica ids are random 64-bit numbers, so a fixed 8 bytes is shorter than a varint.
extension ReplicaID: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) { writer.write(fixed64: rawValue) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self.init(try reader.readFixed64()) }
}

extension Dot: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        replica.encode(to: &writer)
        writer.write(varint: counter)
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let replica = try ReplicaID(from: &reader)
        let start = reader.offset
        let counter = try reader.readVarint()
        guard counter > 0 else { throw .invalidValue(reason: "dot counters start at 1", offset: start) }
        self.init(replica: replica, counter: counter)
    }
}

extension LamportTimestamp: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        writer.write(varint: counter)
        replica.encode(to: &writer)
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let counter = try reader.readVarint()
        self.init(counter: counter, replica: try ReplicaID(from: &reader))
    }
}

extension Stamped: BinaryCodable where Value: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        timestamp.encode(to: &writer)
        value.encode(to: &writer)
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let timestamp = try LamportTimestamp(from: &reader)
        self.init(timestamp: timestamp, value: try Value(from: &reader))
    }
}

// MARK: Collection helpers

/// Writes a count, then entries sorted by their keys' encoded bytes.
@inlinable
func encodeSortedByKeyBytes<Key: BinaryCodable, Value>(
    _ entries: [(key: Key, value: Value)], to writer: inout BinaryWriter,
    value encodeValue: (Value, inout BinaryWriter) -> Void
) {
    var scratch = BinaryWriter()
    var keyed: [(bytes: [UInt8], value: Value)] = []
    keyed.reserveCapacity(entries.count)
    for entry in entries {
        scratch.removeAll()
        entry.key.encode(to: &scratch)
        keyed.append((scratch.bytes, entry.value))
    }
    keyed.sort { bytesPrecede($0.bytes, $1.bytes) }
    writer.write(varint: UInt64(keyed.count))
    for entry in keyed {
        writer.write(raw: entry.bytes)
        encodeValue(entry.value, &writer)
    }
}

/// `lhs.lexicographicallyPrecedes(rhs)` for byte arrays, eight bytes per step: the sort of a large
/// set's or hash's members by their encoding (every snapshot) spent most of its time in the generic
/// element-by-element comparison.
@inlinable
func bytesPrecede(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    lhs.withUnsafeBytes { a in
        rhs.withUnsafeBytes { b in
            let common = min(a.count, b.count)
            var offset = 0
            while offset + 8 <= common {
                // Big-endian words compare as their bytes do.
                let x = UInt64(bigEndian: a.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                let y = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                if x != y { return x < y }
                offset += 8
            }
            while offset < common {
                if a[offset] != b[offset] { return a[offset] < b[offset] }
                offset += 1
            }
            return a.count < b.count
        }
    }
}

/// Reads a count, then entries whose keys' encoded bytes strictly increase. `reserve` gets the count
/// first, so that a large map is allocated once instead of rehashed as it grows.
@inlinable
func decodeSortedByKeyBytes<Key: BinaryCodable>(
    from reader: inout BinaryReader, minimumElementSize: Int = 1, reserve: (Int) -> Void = { _ in },
    entry decodeEntry: (Key, inout BinaryReader) throws(CRDTDecodingError) -> Void
) throws(CRDTDecodingError) {
    let count = try reader.readCount(minimumElementSize: minimumElementSize)
    reserve(count)
    var previous: Range<Int>? = nil
    for _ in 0..<count {
        let start = reader.offset
        let key = try Key(from: &reader)
        let range = start..<reader.offset
        if let previous, !reader.bytes(in: previous, precede: range) {
            throw .notCanonical(reason: "keys must be sorted by their encoding, without repeats", offset: start)
        }
        previous = range
        try decodeEntry(key, &reader)
    }
}

/// Writes a count, then the entries sorted by a `Comparable` key.
@inlinable
func encodeSorted<Key: BinaryCodable & Comparable, Value>(
    _ dictionary: [Key: Value], to writer: inout BinaryWriter,
    value encodeValue: (Value, inout BinaryWriter) -> Void
) {
    writer.write(varint: UInt64(dictionary.count))
    if dictionary.count == 1, let only = dictionary.first {
        only.key.encode(to: &writer)
        encodeValue(only.value, &writer)
        return
    }
    for (key, value) in dictionary.sorted(by: { $0.key < $1.key }) {
        key.encode(to: &writer)
        encodeValue(value, &writer)
    }
}

/// Reads a count, then entries whose `Comparable` keys strictly increase.
@inlinable
func decodeSorted<Key: BinaryCodable & Comparable>(
    from reader: inout BinaryReader, minimumElementSize: Int, reserve: (Int) -> Void = { _ in },
    entry decodeEntry: (Key, inout BinaryReader) throws(CRDTDecodingError) -> Void
) throws(CRDTDecodingError) {
    let count = try reader.readCount(minimumElementSize: minimumElementSize)
    reserve(count)
    var previous: Key? = nil
    for _ in 0..<count {
        let start = reader.offset
        let key = try Key(from: &reader)
        if let previous, !(previous < key) {
            throw .notCanonical(reason: "keys must be strictly increasing", offset: start)
        }
        previous = key
        try decodeEntry(key, &reader)
    }
}

/// Reads a varint that must be positive (zero entries are left out of the canonical encoding).
@inlinable
func readPositive(_ reader: inout BinaryReader, _ what: String) throws(CRDTDecodingError) -> UInt64 {
    let start = reader.offset
    let value = try reader.readVarint()
    guard value > 0 else { throw .invalidValue(reason: "\(what) must be positive (zero entries are omitted)", offset: start) }
    return value
}

// MARK: Logical time

extension CausalContext: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        encodeSorted(versionVector, to: &writer) { counter, writer in writer.write(varint: counter) }
        writer.write(varint: UInt64(cloud.count))
        for dot in (cloud.count == 1 ? Array(cloud) : sortedCloud) { dot.encode(to: &writer) }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        var vector: [ReplicaID: UInt64] = [:]
        try decodeSorted(from: &reader, minimumElementSize: 9) { (replica: ReplicaID, reader: inout BinaryReader) throws(CRDTDecodingError) in
            vector[replica] = try readPositive(&reader, "a version vector entry")
        }
        let count = try reader.readCount(minimumElementSize: 9)
        var cloud = Set<Dot>(minimumCapacity: count)
        var previous: Dot? = nil
        for _ in 0..<count {
            let start = reader.offset
            let dot = try Dot(from: &reader)
            if let previous, !(previous < dot) {
                throw .notCanonical(reason: "cloud dots must be strictly increasing", offset: start)
            }
            guard dot.counter > vector[dot.replica, default: 0] &+ 1 else {
                throw .notCanonical(reason: "cloud dot \(dot) is covered by or extends the version vector; compact it", offset: start)
            }
            previous = dot
            cloud.insert(dot)
        }
        self.init(uncheckedVersionVector: vector, cloud: cloud)
    }
}

// MARK: Dot stores

extension DotSet: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        switch storage {
        case .empty: writer.write(varint: 0)
        case .one(let dot):
            writer.write(varint: 1)
            dot.encode(to: &writer)
        case .many(let dots):
            writer.write(varint: UInt64(dots.count))
            for dot in dots.sorted() { dot.encode(to: &writer) }
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let count = try reader.readCount(minimumElementSize: 9)
        if count == 1 {
            self.init(try Dot(from: &reader))
            return
        }
        var elements = Set<Dot>(minimumCapacity: count)
        var previous: Dot? = nil
        for _ in 0..<count {
            let start = reader.offset
            let dot = try Dot(from: &reader)
            if let previous, !(previous < dot) { throw .notCanonical(reason: "dots must be strictly increasing", offset: start) }
            previous = dot
            elements.insert(dot)
        }
        self.init(elements)
    }
}

extension DotFun: BinaryCodable where Value: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        encodeSorted(entries, to: &writer) { value, writer in value.encode(to: &writer) }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        var entries: [Dot: Value] = [:]
        try decodeSorted(from: &reader, minimumElementSize: 9) { (dot: Dot, reader: inout BinaryReader) throws(CRDTDecodingError) in
            entries[dot] = try Value(from: &reader)
        }
        self.init(entries)
    }
}

extension DotMap: BinaryCodable where Key: BinaryCodable, Value: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        encodeSortedByKeyBytes(entries.map { ($0.key, $0.value) }, to: &writer) { value, writer in value.encode(to: &writer) }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        var entries: [Key: Value] = [:]
        var owners: [Dot: Key] = [:]
        var digest = DotDigest()
        try decodeSortedByKeyBytes(from: &reader, minimumElementSize: 2, reserve: {
            entries.reserveCapacity($0)
            owners.reserveCapacity($0)
        }) { (key: Key, reader: inout BinaryReader) throws(CRDTDecodingError) in
            let start = reader.offset
            let value = try reader.nested { (inner: inout BinaryReader) throws(CRDTDecodingError) in try Value(from: &inner) }
            guard !value.isBottom else { throw .invalidValue(reason: "a map entry cannot hold an empty value", offset: start) }
            entries[key] = value
            value.forEachDot { owners[$0] = key }
            // The value's own digest, as `DotMap` keeps it when mutated: a counting store mixes its
            // shards' versions in, so the plain digest of its dots would differ.
            digest.add(value.dotDigest)
        }
        self.init(entries: entries, owners: owners, dotDigest: digest)
    }
}

// MARK: Causal CRDTs

extension CausalCRDT where Store: BinaryCodable {
    @inlinable
    func encodeCausal(to writer: inout BinaryWriter) {
        store.encode(to: &writer)
        context.encode(to: &writer)
    }

    /// Decodes a store and its context, and checks that the context holds every dot of the store
    /// and that no dot appears twice (a dot names exactly one event).
    @inlinable
    static func decodeCausal(from reader: inout BinaryReader) throws(CRDTDecodingError) -> Self {
        let store = try Store(from: &reader)
        let start = reader.offset
        let context = try CausalContext(from: &reader)
        let probe = CausalContext.Probe(context)
        var missing: Dot? = nil
        var count = 0
        store.forEachDot { dot in
            count += 1
            if missing == nil, !probe.contains(dot) { missing = dot }
        }
        if let missing {
            throw .invalidValue(reason: "dot \(missing) is held but missing from the causal context", offset: start)
        }
        // A store that counts its distinct dots (DotMap's index) spares a second set of every dot.
        if store.distinctDotCount != count, let repeated = store.firstRepeatedDot() {
            throw .invalidValue(reason: "dot \(repeated) appears twice in one state", offset: start)
        }
        return Self(store: store, context: context)
    }
}

extension AWSet: BinaryCodable, SerializableCRDT where Element: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 6 }
    @inlinable
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

extension EWFlag: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 10 }
    @inlinable
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

extension MVRegister: BinaryCodable, SerializableCRDT where Value: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 8 }
    @inlinable
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

extension CausalLWWRegister: BinaryCodable, SerializableCRDT where Value: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 9 }
    @inlinable
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

extension ORMap: BinaryCodable, SerializableCRDT where Key: BinaryCodable, Value.Store: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 11 }
    @inlinable
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

// MARK: Counters, sets and registers

extension GCounter: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 1 }

    public func encode(to writer: inout BinaryWriter) {
        encodeSorted(counts, to: &writer) { count, writer in writer.write(varint: count) }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        var counts: [ReplicaID: UInt64] = [:]
        try decodeSorted(from: &reader, minimumElementSize: 9, reserve: { counts.reserveCapacity($0) }) { (replica: ReplicaID, reader: inout BinaryReader) throws(CRDTDecodingError) in
            counts[replica] = try readPositive(&reader, "a count")
        }
        self.init(counts: counts)
    }
}

extension PNCounter: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 2 }

    public func encode(to writer: inout BinaryWriter) {
        increments.encode(to: &writer)
        decrements.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let increments = try GCounter(from: &reader)
        self.init(increments: increments, decrements: try GCounter(from: &reader))
    }
}

extension ResettableCounter: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 3 }

    public func encode(to writer: inout BinaryWriter) {
        writer.write(varint: UInt64(entries.count))
        for entry in entries {
            entry.replica.encode(to: &writer)
            writer.write(varint: entry.contribution.increments)
            writer.write(varint: entry.contribution.decrements)
            writer.write(varint: entry.contribution.resetIncrements)
            writer.write(varint: entry.contribution.resetDecrements)
        }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let count = try reader.readCount(minimumElementSize: 12)
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let start = reader.offset
            let replica = try ReplicaID(from: &reader)
            if let previous = entries.last, !(previous.replica < replica) {
                throw .notCanonical(reason: "replicas must be strictly increasing", offset: start)
            }
            var contribution = Contribution()
            contribution.increments = try reader.readVarint()
            contribution.decrements = try reader.readVarint()
            contribution.resetIncrements = try reader.readVarint()
            contribution.resetDecrements = try reader.readVarint()
            guard !contribution.isZero else {
                throw .invalidValue(reason: "an all-zero contribution must be omitted", offset: start)
            }
            guard contribution.resetIncrements <= contribution.increments,
                  contribution.resetDecrements <= contribution.decrements
            else { throw .invalidValue(reason: "a reset cannot observe more than was counted", offset: start) }
            entries.append(Entry(replica: replica, contribution: contribution))
        }
        self.init(entries: entries)
    }
}

extension BoundedCounter.Transfer: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        from.encode(to: &writer)
        to.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let from = try ReplicaID(from: &reader)
        self.init(from: from, to: try ReplicaID(from: &reader))
    }
}

extension BoundedCounter: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 12 }

    public func encode(to writer: inout BinaryWriter) {
        encodeSorted(rights, to: &writer) { amount, writer in writer.write(varint: amount) }
        encodeSorted(decrements, to: &writer) { amount, writer in writer.write(varint: amount) }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        var rights: [Transfer: UInt64] = [:]
        try decodeSorted(from: &reader, minimumElementSize: 17) { (pair: Transfer, reader: inout BinaryReader) throws(CRDTDecodingError) in
            rights[pair] = try readPositive(&reader, "a rights total")
        }
        var decrements: [ReplicaID: UInt64] = [:]
        try decodeSorted(from: &reader, minimumElementSize: 9) { (replica: ReplicaID, reader: inout BinaryReader) throws(CRDTDecodingError) in
            decrements[replica] = try readPositive(&reader, "a decrement total")
        }
        self.init(rights: rights, decrements: decrements)
    }
}

extension GSet: BinaryCodable, SerializableCRDT where Element: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 4 }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        encodeSortedByKeyBytes(elements.map { ($0, ()) }, to: &writer) { _, _ in }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        var elements = Set<Element>()
        try decodeSortedByKeyBytes(from: &reader) { (element: Element, _: inout BinaryReader) throws(CRDTDecodingError) in
            elements.insert(element)
        }
        self.init(elements: elements)
    }
}

extension TwoPhaseSet: BinaryCodable, SerializableCRDT where Element: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 5 }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        added.encode(to: &writer)
        removed.encode(to: &writer)
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let added = try GSet<Element>(from: &reader)
        self.init(added: added, removed: try GSet<Element>(from: &reader))
    }
}

extension LWWRegister: BinaryCodable, SerializableCRDT where Value: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 7 }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        timestamp.encode(to: &writer)
        if timestamp != nil { value.encode(to: &writer) }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        guard let timestamp = try LamportTimestamp?(from: &reader) else {
            self.init()
            return
        }
        self.init(timestamp: timestamp, value: try Value?(from: &reader))
    }
}

// MARK: Floats and counting registers

/// Doubles are their IEEE 754 bit pattern in 8 little-endian bytes. NaN is refused (it is not equal
/// to itself, so no state holding it could converge by `==`), and negative zero is written and read
/// as zero, so values that compare equal encode equally.
extension Double: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) { writer.write(fixed64: (self == 0 ? 0 : self).bitPattern) }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        let value = Double(bitPattern: try reader.readFixed64())
        guard !value.isNaN else { throw .invalidValue(reason: "a number cannot be NaN", offset: start) }
        guard value != 0 || value.sign == .plus else { throw .notCanonical(reason: "negative zero is written as zero", offset: start) }
        self = value
    }
}

extension CountingEntry: BinaryCodable where Value: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .write(let stamped, let floors):
            writer.write(byte: 0)
            stamped.encode(to: &writer)
            encodeSorted(floors, to: &writer) { floor, writer in
                writer.write(varint: floor.version)
                floor.total.encode(to: &writer)
            }
        case .shard(let version, let total):
            writer.write(byte: 1)
            writer.write(varint: version)
            total.encode(to: &writer)
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        switch try reader.readByte() {
        case 0:
            let stamped = try Stamped<Value>(from: &reader)
            var floors: [Dot: CountingFloor<Amount>] = [:]
            try decodeSorted(from: &reader, minimumElementSize: 11) { (dot: Dot, reader: inout BinaryReader) throws(CRDTDecodingError) in
                let version = try readPositive(&reader, "a shard version")
                floors[dot] = CountingFloor(version: version, total: try Amount(from: &reader))
            }
            self = .write(stamped, floors: floors)
        case 1:
            let version = try readPositive(&reader, "a shard version")
            self = .shard(version: version, total: try Amount(from: &reader))
        default:
            throw .invalidValue(reason: "a counting register entry is a write (0) or a shard (1)", offset: start)
        }
    }
}

extension CountingStore: BinaryCodable where Value: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        encodeSorted(entries, to: &writer) { entry, writer in entry.encode(to: &writer) }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        var entries: [Dot: Entry] = [:]
        try decodeSorted(from: &reader, minimumElementSize: 11) { (dot: Dot, reader: inout BinaryReader) throws(CRDTDecodingError) in
            entries[dot] = try Entry(from: &reader)
        }
        self.init(entries)
    }
}

extension CountingRegister: BinaryCodable, SerializableCRDT where Value: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 15 }
    @inlinable
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

// MARK: HyperLogLog

/// A sparse sketch is `0`, a count and per register the gap from the previous index and the rank;
/// a dense one is `1` and the 16,384 ranks packed 6 bits each (4 per 3 bytes, little-endian). The
/// decoder accepts each form only where the sketch uses it (sparse up to `sparseLimit` non-zero
/// registers), so a sketch has one encoding.
extension HyperLogLog: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 13 }

    public func encode(to writer: inout BinaryWriter) {
        switch registers {
        case .sparse(let entries):
            writer.write(byte: 0)
            writer.write(varint: UInt64(entries.count))
            var next = 0
            for entry in entries {
                writer.write(varint: UInt64(Int(entry.index) - next))
                writer.write(byte: entry.rank)
                next = Int(entry.index) + 1
            }
        case .dense(let ranks):
            writer.write(byte: 1)
            for group in stride(from: 0, to: ranks.count, by: 4) {
                let packed = UInt32(ranks[group]) | UInt32(ranks[group + 1]) << 6 | UInt32(ranks[group + 2]) << 12 | UInt32(ranks[group + 3]) << 18
                writer.write(byte: UInt8(truncatingIfNeeded: packed))
                writer.write(byte: UInt8(truncatingIfNeeded: packed >> 8))
                writer.write(byte: UInt8(truncatingIfNeeded: packed >> 16))
            }
        }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        switch try reader.readByte() {
        case 0:
            let countOffset = reader.offset
            let count = try reader.readCount(minimumElementSize: 2)
            guard count <= Self.sparseLimit else {
                throw .notCanonical(reason: "a sketch with \(count) non-zero registers is written dense", offset: countOffset)
            }
            var entries: [SparseRegister] = []
            entries.reserveCapacity(count)
            var next: UInt64 = 0
            for _ in 0..<count {
                let entryOffset = reader.offset
                let gap = try reader.readVarint()
                guard gap < UInt64(Self.registerCount), next + gap < UInt64(Self.registerCount) else {
                    throw .invalidValue(reason: "register index beyond \(Self.registerCount - 1)", offset: entryOffset)
                }
                let rank = try reader.readByte()
                guard rank >= 1 && rank <= Self.maxRank else {
                    throw .invalidValue(reason: "a sparse register's rank must be 1 to \(Self.maxRank)", offset: entryOffset)
                }
                entries.append(SparseRegister(index: UInt16(next + gap), rank: rank))
                next += gap + 1
            }
            self.init(registers: .sparse(entries))
        case 1:
            guard reader.remaining >= Self.registerCount / 4 * 3 else { throw .truncated(offset: reader.offset) }
            var ranks = [UInt8](repeating: 0, count: Self.registerCount)
            var nonZero = 0
            for group in stride(from: 0, to: Self.registerCount, by: 4) {
                let groupOffset = reader.offset
                let packed = UInt32(try reader.readByte()) | UInt32(try reader.readByte()) << 8 | UInt32(try reader.readByte()) << 16
                for slot in 0..<4 {
                    let rank = UInt8((packed >> (6 * UInt32(slot))) & 0x3F)
                    guard rank <= Self.maxRank else {
                        throw .invalidValue(reason: "a register's rank must be at most \(Self.maxRank)", offset: groupOffset)
                    }
                    ranks[group + slot] = rank
                    if rank != 0 { nonZero += 1 }
                }
            }
            guard nonZero > Self.sparseLimit else {
                throw .notCanonical(reason: "a sketch with \(nonZero) non-zero registers is written sparse", offset: start)
            }
            self.init(registers: .dense(ranks))
        default:
            throw .invalidValue(reason: "a sketch is sparse (0) or dense (1)", offset: start)
        }
    }
}

// MARK: Expiry

extension Deadline: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .at(let milliseconds):
            writer.write(byte: 0)
            writer.write(varint: milliseconds)
        case .never:
            writer.write(byte: 1)
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        switch try reader.readByte() {
        case 0: self = .at(milliseconds: try reader.readVarint())
        case 1: self = .never
        default: throw .invalidValue(reason: "a deadline is an instant (0) or never (1)", offset: start)
        }
    }
}

extension ExpiryRegister: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 14 }
    @inlinable
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    @inlinable
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

// MARK: Sorted sets

/// The map and its context, as for ``ORMap``; the order index is rebuilt on decoding.
extension SortedSet: BinaryCodable, SerializableCRDT {
    public static var binaryTypeTag: UInt8 { 16 }
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}

// MARK: Lists

/// A count, then per component its digit (varint), replica (8 bytes) and counter (varint). Refused:
/// an empty path, a digit at or above `base`, and a last digit of 0 (the allocation relies on room
/// below every place).
extension ListPosition: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.write(varint: UInt64(components.count))
        for component in components {
            writer.write(varint: component.digit)
            component.replica.encode(to: &writer)
            writer.write(varint: component.counter)
        }
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let start = reader.offset
        let count = try reader.readCount(minimumElementSize: 10)
        guard count > 0 else { throw .invalidValue(reason: "a list position cannot be empty", offset: start) }
        var components: [Component] = []
        components.reserveCapacity(count)
        for _ in 0..<count {
            let offset = reader.offset
            let digit = try reader.readVarint()
            guard digit < ListPosition.base else { throw .invalidValue(reason: "a position digit must be below 2^62", offset: offset) }
            let replica = try ReplicaID(from: &reader)
            components.append(Component(digit: digit, replica: replica, counter: try reader.readVarint()))
        }
        guard components[components.count - 1].digit != 0 else {
            throw .invalidValue(reason: "a position cannot end in the digit 0", offset: start)
        }
        self.init(components: components)
    }
}

/// The map of positions to registers and its context, as for ``ORMap``; the order is rebuilt.
extension ReplicatedList: BinaryCodable, SerializableCRDT where Value: BinaryCodable {
    public static var binaryTypeTag: UInt8 { 17 }
    public func encode(to writer: inout BinaryWriter) { encodeCausal(to: &writer) }
    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) { self = try Self.decodeCausal(from: &reader) }
}
