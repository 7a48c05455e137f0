/// Limits that bound what a decoder accepts, so untrusted input cannot make it allocate or recurse
/// beyond what the limits (and the input's own length) justify.
public struct DecodingLimits: Hashable, Sendable {
    /// Largest input accepted, in bytes.
    public var maxBytes: Int
    /// Most elements accepted in one collection (set, map, context, counter).
    public var maxElements: Int
    /// Deepest nesting of maps accepted.
    public var maxDepth: Int

    /// Limits with the given values.
    public init(maxBytes: Int = 16 << 20, maxElements: Int = 1 << 20, maxDepth: Int = 8) {
        self.maxBytes = maxBytes
        self.maxElements = maxElements
        self.maxDepth = maxDepth
    }

    /// 16 MiB, 2^20 elements per collection, 8 levels of nesting.
    public static let `default` = DecodingLimits()
}

/// Why bytes could not be decoded. Decoding never traps; every rejection is one of these.
public enum CRDTDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The input is larger than ``DecodingLimits/maxBytes``.
    case inputTooLarge(size: Int, limit: Int)
    /// The input ended in the middle of a value.
    case truncated(offset: Int)
    /// A varint was longer than 10 bytes, overflowed 64 bits, or was not minimally encoded.
    case malformedVarint(offset: Int)
    /// A collection announced more elements than ``DecodingLimits/maxElements`` allows.
    case tooManyElements(count: UInt64, limit: Int, offset: Int)
    /// Maps were nested deeper than ``DecodingLimits/maxDepth``.
    case tooDeep(limit: Int, offset: Int)
    /// The format version byte is not one this build understands.
    case unsupportedVersion(found: UInt8, supported: UInt8)
    /// The type tag names a different CRDT type than the one being decoded.
    case wrongType(expected: UInt8, found: UInt8, offset: Int)
    /// A value is outside its domain (a zero count where zero is absent, a bad flag byte, bad UTF-8,
    /// a dot its state's causal context does not hold).
    case invalidValue(reason: String, offset: Int)
    /// Keys are out of order or repeated: the encoding is not the canonical one.
    case notCanonical(reason: String, offset: Int)
    /// Bytes were left over after the top-level value.
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case .inputTooLarge(let size, let limit):
            return "input of \(size) bytes exceeds the \(limit)-byte limit; raise DecodingLimits.maxBytes if the sender is trusted"
        case .truncated(let offset):
            return "input ends in the middle of a value at byte \(offset); the message was cut short"
        case .malformedVarint(let offset):
            return "malformed varint at byte \(offset) (too long, over 64 bits, or not minimal)"
        case .tooManyElements(let count, let limit, let offset):
            return "collection at byte \(offset) announces \(count) elements; at most \(limit) are allowed (DecodingLimits.maxElements)"
        case .tooDeep(let limit, let offset):
            return "nesting deeper than \(limit) levels at byte \(offset); raise DecodingLimits.maxDepth if intended"
        case .unsupportedVersion(let found, let supported):
            return "format version \(found) is not supported (this build reads version \(supported)); upgrade the reader"
        case .wrongType(let expected, let found, let offset):
            return "type tag \(found) at byte \(offset) where tag \(expected) was expected; the bytes hold another CRDT type"
        case .invalidValue(let reason, let offset):
            return "invalid value at byte \(offset): \(reason)"
        case .notCanonical(let reason, let offset):
            return "non-canonical encoding at byte \(offset): \(reason)"
        case .trailingBytes(let count):
            return "\(count) unexpected bytes after the value; the input holds more than one value or is corrupt"
        }
    }
}

/// Appends the binary encoding: LEB128 varints, zigzag signed integers, fixed little-endian 64-bit
/// words and length-prefixed byte strings. Reusable by the peer wire format.
public struct BinaryWriter: Sendable {
    /// The bytes written so far.
    public var bytes: [UInt8] { storage }
    @usableFromInline var storage: [UInt8]

    /// An empty writer with room for `capacity` bytes.
    @inlinable
    public init(capacity: Int = 64) {
        storage = []
        storage.reserveCapacity(capacity)
    }

    /// Forgets the bytes written, keeping the allocated capacity for reuse.
    @inlinable
    public mutating func removeAll() { storage.removeAll(keepingCapacity: true) }

    /// Appends one byte.
    @inlinable
    public mutating func write(byte: UInt8) { storage.append(byte) }

    /// Appends an unsigned LEB128 varint (1 to 10 bytes, minimal).
    @inlinable
    public mutating func write(varint value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            storage.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        storage.append(UInt8(truncatingIfNeeded: remaining))
    }

    /// Appends a signed integer as a zigzag varint (small magnitudes take few bytes).
    @inlinable
    public mutating func write(zigzag value: Int64) {
        write(varint: UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Appends 8 bytes, little-endian.
    @inlinable
    public mutating func write(fixed64 value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { storage.append(contentsOf: $0) }
    }

    /// Appends a varint length, then the bytes.
    @inlinable
    public mutating func write<C: Collection>(lengthPrefixed data: C) where C.Element == UInt8 {
        write(varint: UInt64(data.count))
        storage.append(contentsOf: data)
    }

    /// Appends bytes as they are.
    @inlinable
    public mutating func write<C: Collection>(raw data: C) where C.Element == UInt8 {
        storage.append(contentsOf: data)
    }
}

/// Reads what ``BinaryWriter`` writes, from untrusted bytes: every read checks bounds and limits and
/// throws ``CRDTDecodingError``; nothing traps and nothing allocates beyond the input's size.
public struct BinaryReader: Sendable {
    @usableFromInline let bytes: [UInt8]
    /// Position of the next byte to read.
    public var offset: Int { position }
    @usableFromInline var position: Int
    /// The limits enforced.
    public let limits: DecodingLimits
    @usableFromInline var depth: Int

    /// A reader over `bytes`; throws if the input exceeds `limits.maxBytes`.
    @inlinable
    public init(_ bytes: [UInt8], limits: DecodingLimits = .default) throws(CRDTDecodingError) {
        guard bytes.count <= limits.maxBytes else { throw .inputTooLarge(size: bytes.count, limit: limits.maxBytes) }
        self.bytes = bytes
        self.position = 0
        self.limits = limits
        self.depth = 0
    }

    /// Bytes not yet read.
    @inlinable
    public var remaining: Int { bytes.count - position }

    /// Reads one byte.
    @inlinable
    public mutating func readByte() throws(CRDTDecodingError) -> UInt8 {
        guard position < bytes.count else { throw .truncated(offset: position) }
        defer { position += 1 }
        return bytes[position]
    }

    /// Reads a minimal unsigned LEB128 varint of at most 64 bits.
    @inlinable
    public mutating func readVarint() throws(CRDTDecodingError) -> UInt64 {
        // Most varints (counts, small counters) are one byte.
        if position < bytes.count, bytes[position] < 0x80 {
            defer { position += 1 }
            return UInt64(bytes[position])
        }
        return try readMultiByteVarint()
    }

    @usableFromInline
    mutating func readMultiByteVarint() throws(CRDTDecodingError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < bytes.count else { throw .truncated(offset: position) }
            let byte = bytes[position]
            position += 1
            if shift == 63 && byte > 1 { throw .malformedVarint(offset: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                // A zero final byte after others means a longer-than-needed encoding.
                if byte == 0 && shift > 0 { throw .malformedVarint(offset: start) }
                return result
            }
            shift += 7
        }
    }

    /// Reads a zigzag-encoded signed integer.
    @inlinable
    public mutating func readZigZag() throws(CRDTDecodingError) -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    /// Reads 8 little-endian bytes.
    @inlinable
    public mutating func readFixed64() throws(CRDTDecodingError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated(offset: position) }
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: UInt64.self) }
        position += 8
        return UInt64(littleEndian: value)
    }

    /// Reads a collection's element count, checking it against ``DecodingLimits/maxElements`` and
    /// against the remaining input, given that each element takes at least `minimumElementSize` bytes.
    @inlinable
    public mutating func readCount(minimumElementSize: Int = 1) throws(CRDTDecodingError) -> Int {
        let start = position
        let count = try readVarint()
        guard count <= UInt64(limits.maxElements) else {
            throw .tooManyElements(count: count, limit: limits.maxElements, offset: start)
        }
        // Every element takes at least `minimumElementSize` bytes, so a count the remaining input
        // cannot hold is a cut-short message, found before anything is allocated for it.
        guard count <= UInt64(remaining / max(1, minimumElementSize)) else { throw .truncated(offset: start) }
        return Int(count)
    }

    /// Reads a varint length and that many bytes.
    @inlinable
    public mutating func readLengthPrefixed() throws(CRDTDecodingError) -> [UInt8] {
        let range = try readLengthPrefixedRange()
        return Array(bytes[range])
    }

    /// Reads a varint length and returns the range of the bytes it covers in the input.
    @inlinable
    public mutating func readLengthPrefixedRange() throws(CRDTDecodingError) -> Range<Int> {
        let start = position
        let length = try readVarint()
        guard length <= UInt64(remaining) else {
            throw length <= UInt64(limits.maxBytes) ? .truncated(offset: start) : .inputTooLarge(size: Int(clamping: length), limit: limits.maxBytes)
        }
        let range = position..<(position + Int(length))
        position = range.upperBound
        return range
    }

    /// The input bytes in `range`, for comparing encoded keys without copying.
    @inlinable
    public func slice(_ range: Range<Int>) -> ArraySlice<UInt8> { bytes[range] }

    /// Whether the input bytes in `first` sort strictly before those in `second` (both already read),
    /// compared in place: decoding a large map compares every key with the one before it.
    @inlinable
    func bytes(in first: Range<Int>, precede second: Range<Int>) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var index = 0
            let common = min(first.count, second.count)
            while index < common {
                let left = buffer[first.lowerBound + index], right = buffer[second.lowerBound + index]
                if left != right { return left < right }
                index += 1
            }
            return first.count < second.count
        }
    }

    /// Runs `body` one nesting level deeper, failing with ``CRDTDecodingError/tooDeep(limit:offset:)``
    /// past ``DecodingLimits/maxDepth``.
    @inlinable
    public mutating func nested<T>(_ body: (inout BinaryReader) throws(CRDTDecodingError) -> T) throws(CRDTDecodingError) -> T {
        guard depth < limits.maxDepth else { throw .tooDeep(limit: limits.maxDepth, offset: position) }
        depth += 1
        defer { depth -= 1 }
        return try body(&self)
    }

    /// Throws ``CRDTDecodingError/trailingBytes(count:)`` unless every byte was read.
    @inlinable
    public func finish() throws(CRDTDecodingError) {
        guard remaining == 0 else { throw .trailingBytes(count: remaining) }
    }
}

/// A value with a deterministic binary encoding: equal values encode to equal bytes.
public protocol BinaryCodable {
    /// Appends the encoding.
    func encode(to writer: inout BinaryWriter)
    /// Decodes one value, validating it; throws on any malformed or non-canonical input.
    init(from reader: inout BinaryReader) throws(CRDTDecodingError)
}

/// A CRDT state or delta that can be shipped and stored on its own: a format version byte and a
/// type tag precede the body, and the digest of those bytes identifies the state across replicas.
public protocol SerializableCRDT: DeltaCRDT, BinaryCodable {
    /// Identifies the CRDT type in the header, so bytes of one type are never read as another.
    static var binaryTypeTag: UInt8 { get }
}

/// The binary format version written by this build.
public let crdtFormatVersion: UInt8 = 1

extension SerializableCRDT {
    /// The self-describing encoding: version, type tag, body.
    @inlinable
    public func serializedBytes() -> [UInt8] {
        var writer = BinaryWriter()
        writer.write(byte: crdtFormatVersion)
        writer.write(byte: Self.binaryTypeTag)
        encode(to: &writer)
        return writer.bytes
    }

    /// Decodes bytes produced by ``serializedBytes()``, rejecting other versions, other types,
    /// malformed input and trailing bytes.
    @inlinable
    public init(serializedBytes bytes: [UInt8], limits: DecodingLimits = .default) throws(CRDTDecodingError) {
        var reader = try BinaryReader(bytes, limits: limits)
        let version = try reader.readByte()
        guard version == crdtFormatVersion else { throw .unsupportedVersion(found: version, supported: crdtFormatVersion) }
        let tag = try reader.readByte()
        guard tag == Self.binaryTypeTag else { throw .wrongType(expected: Self.binaryTypeTag, found: tag, offset: 1) }
        try self.init(from: &reader)
        try reader.finish()
    }

    /// A 128-bit digest of the serialized state (MurmurHash3 x64-128, seed 0): equal states have
    /// equal digests on every replica and platform.
    public var digest: Digest128 { Digest128(hashing: serializedBytes()) }
}
