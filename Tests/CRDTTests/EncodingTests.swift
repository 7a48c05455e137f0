@testable import CRDT
import Testing

@Suite("Encoding")
struct EncodingTests {
    @Test func murmur3MatchesPublishedVectors() {
        // Reference vectors of MurmurHash3_x64_128, seed 0 (as published with Guava and Boost.Hash2).
        let vectors: [(String, String)] = [
            ("", "00000000000000000000000000000000"),
            ("hello", "029bbd41b3a7d8cb191dae486a901e5b"),
            ("abc", "6778ad3f3f3f96b4522dca264174a23b"),
            ("The quick brown fox jumps over the lazy dog", "6c1b07bc7bbc4be347939ac4a93c437a"),
            ("The quick brown fox jumps over the lazy cog", "9a2685ff70a98c653e5c8ea6eae3fe43"),
            ("The quick brown fox jumps over the lazy dog.", "c902e99e1f4899cde7b68789a3a15d69"),
        ]
        for (input, expected) in vectors {
            #expect(Digest128(hashing: Array(input.utf8)).hex == expected, "MurmurHash3 of \"\(input)\"")
        }
    }

    @Test func varintsRoundTripAndAreMinimal() throws {
        let values: [UInt64] = [0, 1, 127, 128, 255, 300, 16_383, 16_384, 1 << 32, .max - 1, .max]
        for value in values {
            var writer = BinaryWriter()
            writer.write(varint: value)
            var reader = try BinaryReader(writer.bytes)
            #expect(try reader.readVarint() == value)
            #expect(reader.remaining == 0)
        }
        var writer = BinaryWriter()
        writer.write(varint: .max)
        #expect(writer.bytes.count == 10)
        for value: Int64 in [0, -1, 1, -64, 63, .min, .max] {
            var writer = BinaryWriter()
            writer.write(zigzag: value)
            var reader = try BinaryReader(writer.bytes)
            #expect(try reader.readZigZag() == value)
        }
    }

    @Test func malformedVarintsAreRejected() throws {
        let cases: [[UInt8]] = [
            [0x80, 0x00],                                                 // overlong zero
            [0xFF, 0x00],                                                 // overlong
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], // 65 bits
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x00], // 11 bytes
        ]
        for bytes in cases {
            var reader = try BinaryReader(bytes)
            #expect(throws: CRDTDecodingError.malformedVarint(offset: 0)) { try reader.readVarint() }
        }
        var truncated = try BinaryReader([0x80, 0x80])
        #expect(throws: CRDTDecodingError.truncated(offset: 2)) { try truncated.readVarint() }
    }

    @Test func headerIsCheckedAndTrailingBytesRejected() throws {
        var counter = GCounter()
        try counter.increment(by: 3, replica: ReplicaID(1))
        let bytes = counter.serializedBytes()
        #expect(bytes[0] == crdtFormatVersion && bytes[1] == GCounter.binaryTypeTag)
        #expect(try GCounter(serializedBytes: bytes) == counter)
        #expect(throws: CRDTDecodingError.unsupportedVersion(found: 9, supported: crdtFormatVersion)) {
            try GCounter(serializedBytes: [9] + bytes.dropFirst())
        }
        #expect(throws: CRDTDecodingError.wrongType(expected: PNCounter.binaryTypeTag, found: GCounter.binaryTypeTag, offset: 1)) {
            try PNCounter(serializedBytes: bytes)
        }
        #expect(throws: CRDTDecodingError.trailingBytes(count: 1)) { try GCounter(serializedBytes: bytes + [0]) }
        #expect(throws: CRDTDecodingError.truncated(offset: 2)) { try GCounter(serializedBytes: Array(bytes.dropLast())) }
    }

    @Test func counterDeltaIsCompact() throws {
        var counter = ResettableCounter()
        let delta = try counter.add(5, replica: ReplicaID(0x1234_5678_9ABC_DEF0))
        // version, tag, count, 8-byte replica id, four varints.
        #expect(delta.serializedBytes().count == 2 + 1 + 8 + 4)
    }

    @Test func limitsAreEnforced() throws {
        var set = GSet<UInt64>()
        for element in 0..<100 as Range<UInt64> { set.add(element) }
        let bytes = set.serializedBytes()
        #expect(throws: CRDTDecodingError.inputTooLarge(size: bytes.count, limit: 50)) {
            try GSet<UInt64>(serializedBytes: bytes, limits: DecodingLimits(maxBytes: 50))
        }
        #expect(throws: CRDTDecodingError.tooManyElements(count: 100, limit: 99, offset: 2)) {
            try GSet<UInt64>(serializedBytes: bytes, limits: DecodingLimits(maxElements: 99))
        }
        // A count far beyond the bytes that follow is refused before anything is allocated.
        #expect(throws: CRDTDecodingError.tooManyElements(count: 1 << 40, limit: DecodingLimits.default.maxElements, offset: 2)) {
            var writer = BinaryWriter()
            writer.write(raw: [crdtFormatVersion, GSet<UInt64>.binaryTypeTag])
            writer.write(varint: 1 << 40)
            return try GSet<UInt64>(serializedBytes: writer.bytes)
        }
        #expect(throws: CRDTDecodingError.truncated(offset: 2)) {
            try GSet<UInt64>(serializedBytes: [crdtFormatVersion, GSet<UInt64>.binaryTypeTag, 50, 1, 2, 3])
        }
    }

    @Test func nestingDepthIsLimited() throws {
        typealias Leaf = ORMap<UInt64, EWFlag>
        typealias Deep = ORMap<UInt64, ORMap<UInt64, ORMap<UInt64, Leaf>>>
        var deep = Deep()
        deep.update(1) { level2 in level2.update(2) { level3 in level3.update(3) { leaf in leaf.update(4) { $0.enable(replica: ReplicaID(1)) } } } }
        let bytes = deep.serializedBytes()
        #expect(try Deep(serializedBytes: bytes) == deep)
        #expect(throws: CRDTDecodingError.self) { try Deep(serializedBytes: bytes, limits: DecodingLimits(maxDepth: 3)) }
        do {
            _ = try Deep(serializedBytes: bytes, limits: DecodingLimits(maxDepth: 3))
        } catch {
            guard case .tooDeep(limit: 3, offset: _) = error else {
                Issue.record("expected tooDeep, got \(error)")
                return
            }
        }
    }

    @Test func nonCanonicalInputIsRejected() throws {
        let tag = GCounter.binaryTypeTag
        let r1: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0]
        let r2: [UInt8] = [2, 0, 0, 0, 0, 0, 0, 0]
        // Out of order, repeated, and a zero count: all refused.
        for body in [[2] + r2 + [1] + r1 + [1], [2] + r1 + [1] + r1 + [1], [1] + r1 + [0]] {
            #expect(throws: CRDTDecodingError.self) { try GCounter(serializedBytes: [crdtFormatVersion, tag] + body) }
        }
        #expect(try GCounter(serializedBytes: [crdtFormatVersion, tag, 2] + r1 + [1] + r2 + [1]).value == 2)

        // A causal state whose store holds a dot its context does not: refused.
        var flag = EWFlag()
        flag.enable(replica: ReplicaID(1))
        #expect(try EWFlag(serializedBytes: flag.serializedBytes()) == flag)
        var writer = BinaryWriter()
        writer.write(raw: [crdtFormatVersion, EWFlag.binaryTypeTag])
        writeOneDotSet(Dot(replica: ReplicaID(1), counter: 1), into: &writer)
        CausalContext().encode(to: &writer)
        let orphanDot = writer.bytes
        #expect(throws: CRDTDecodingError.self) { try EWFlag(serializedBytes: orphanDot) }

        // A context that is not compacted: refused.
        var contextWriter = BinaryWriter()
        contextWriter.write(varint: 0)
        contextWriter.write(varint: 1)
        Dot(replica: ReplicaID(1), counter: 1).encode(to: &contextWriter)
        var reader = try BinaryReader(contextWriter.bytes)
        #expect(throws: CRDTDecodingError.self) { try CausalContext(from: &reader) }
    }

    /// The decoder checks repeated dots by the dot index's count (DotMap), no longer by a set of
    /// every dot: a dot under two members must still be refused, and a dot the context lacks too.
    @Test func repeatedAndUncoveredDotsAreRejected() throws {
        let replica = ReplicaID(1)
        func setBytes(members: [String], dots: [UInt64], contextTop: UInt64) -> [UInt8] {
            var writer = BinaryWriter()
            writer.write(byte: crdtFormatVersion)
            writer.write(byte: AWSet<[UInt8]>.binaryTypeTag)
            writer.write(varint: UInt64(members.count))
            for (member, counter) in zip(members, dots) {
                writer.write(lengthPrefixed: Array(member.utf8))
                writer.write(varint: 1)
                replica.encode(to: &writer)
                writer.write(varint: counter)
            }
            writer.write(varint: 1)
            replica.encode(to: &writer)
            writer.write(varint: contextTop)
            writer.write(varint: 0)
            return writer.bytes
        }
        #expect(try AWSet<[UInt8]>(serializedBytes: setBytes(members: ["a", "b"], dots: [1, 2], contextTop: 2)).count == 2)
        func reason(_ bytes: [UInt8]) -> String? {
            do {
                _ = try AWSet<[UInt8]>(serializedBytes: bytes)
                return nil
            } catch {
                guard case .invalidValue(let reason, _) = error else { return "\(error)" }
                return reason
            }
        }
        #expect(reason(setBytes(members: ["a", "b"], dots: [1, 1], contextTop: 2))?.contains("appears twice") == true)
        #expect(reason(setBytes(members: ["a", "b"], dots: [1, 3], contextTop: 2))?.contains("missing from the causal context") == true)
    }

    @Test func byteStringsAndStringsAreValidated() throws {
        var set = AWSet<String>()
        set.add("héllo", replica: ReplicaID(1))
        #expect(try AWSet<String>(serializedBytes: set.serializedBytes()) == set)
        var writer = BinaryWriter()
        writer.write(lengthPrefixed: [0xFF, 0xFE] as [UInt8])
        var reader = try BinaryReader(writer.bytes)
        #expect(throws: CRDTDecodingError.invalidValue(reason: "string is not valid UTF-8", offset: 0)) { try String(from: &reader) }
    }

    @Test func digestsAreStableAcrossInsertionOrder() {
        var forward = AWSet<[UInt8]>()
        var backward = AWSet<[UInt8]>()
        var forwardDeltas: [AWSet<[UInt8]>] = []
        for index in 0..<50 { forwardDeltas.append(forward.add(bytes("e\(index)"), replica: ReplicaID(UInt64(index % 3)))) }
        for delta in forwardDeltas.reversed() { backward.join(delta) }
        #expect(forward == backward)
        #expect(forward.serializedBytes() == backward.serializedBytes())
        #expect(forward.digest == backward.digest)
        backward.remove(bytes("e3"))
        #expect(forward.digest != backward.digest)
    }
}

/// Writes a dot set holding one dot (a helper for building deliberately broken inputs).
private func writeOneDotSet(_ dot: Dot, into writer: inout BinaryWriter) {
    writer.write(varint: 1)
    dot.encode(to: &writer)
}

@Suite("Byte order")
struct ByteOrderTests {
    /// The word-at-a-time comparison that sorts members for encoding must be exactly the
    /// lexicographic order, including shared prefixes, prefixes of each other and empty arrays.
    @Test func bytesPrecedeIsLexicographicOrder() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let prefix = Array("element:0000".utf8)
        var samples: [[UInt8]] = [[], [0], [255], prefix]
        for _ in 0..<300 {
            let length = Int(next() % 24)
            var bytes = next() % 2 == 0 ? prefix : []
            for _ in 0..<length { bytes.append(UInt8(truncatingIfNeeded: next() % 4 == 0 ? next() : next() % 3)) }
            samples.append(bytes)
            samples.append(bytes + [0])
        }
        for a in samples {
            for b in samples {
                #expect(bytesPrecede(a, b) == a.lexicographicallyPrecedes(b), "\(a) vs \(b)")
            }
        }
    }
}
