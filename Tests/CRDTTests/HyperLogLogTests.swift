import TestSupport
import CRDT
import Testing

/// Elements "e0", "e1", ... as a client would send them.
private func elements(_ range: Range<Int>, prefix: String = "e") -> [[UInt8]] { range.map { bytes("\(prefix)\($0)") } }

private func sketch(_ range: Range<Int>, prefix: String = "e") -> HyperLogLog {
    var sketch = HyperLogLog()
    sketch.add(contentsOf: elements(range, prefix: prefix))
    return sketch
}

@Suite("HyperLogLog")
struct HyperLogLogTests {
    /// PFCOUNT answers of redis-server 7.0.15 for PFADD of "e0" ... "e(n-1)", recorded on this
    /// machine (`redis-cli PFADD h e0 e1 ...; PFCOUNT h`). Equal answers mean the same hash, the same
    /// register and rank rule and the same estimator.
    @Test func estimatesMatchRedis() {
        let redis: [(Int, UInt64)] = [(1, 1), (2, 2), (3, 3), (10, 10), (100, 100), (1_000, 1_008), (5_000, 4_968), (10_000, 9_973), (100_000, 100_853)]
        for (count, expected) in redis {
            let estimate = sketch(0..<count).count
            #expect(estimate == expected, "PFCOUNT after \(count) distinct elements")
        }
        // PFCOUNT u1 u2 of two overlapping sketches: the union's estimate.
        let union = HyperLogLog.unionCount([sketch(0..<500, prefix: "a"), sketch(250..<900, prefix: "a")])
        #expect(union == 895)
    }

    @Test(arguments: propertySeeds)
    func errorOverAHundredThousandDistinctElementsIsWithinTwoPercent(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var sketch = HyperLogLog()
        let distinct = 100_000
        for _ in 0..<distinct {
            var element = [UInt8](repeating: 0, count: 16)
            for index in element.indices { element[index] = UInt8.random(in: 0...255, using: &rng) }
            sketch.add(element)
        }
        let error = abs(Double(sketch.count) - Double(distinct)) / Double(distinct)
        #expect(error < 0.02, "estimate \(sketch.count) for \(distinct) distinct elements — seed \(seed)")
        #expect(sketch.isDense)
    }

    @Test func addingAnElementTwiceChangesNothing() {
        var sketch = HyperLogLog()
        #expect(!sketch.add(bytes("x")).isEmpty, "PFADD of a new element raises a register (answers 1)")
        #expect(sketch.add(bytes("x")).isEmpty, "PFADD of a seen element raises none (answers 0)")
        #expect(sketch.count == 1)
    }

    @Test func deltaOfOneAddIsOneRegisterWhateverTheSketchSize() {
        var big = sketch(0..<50_000)
        #expect(big.isDense)
        var delta = HyperLogLog()
        for index in 50_000..<60_000 {
            delta = big.add(bytes("e\(index)"))
            if !delta.isEmpty { break }
        }
        #expect(delta.nonZeroRegisterCount == 1)
        #expect(delta.serializedBytes().count <= 7, "version, tag, form, count, index (1 or 2 bytes), rank")
        #expect(big.serializedBytes().count == 2 + 1 + 12_288)
    }

    @Test func mergeShipsOnlyTheRegistersItRaised() {
        var destination = sketch(0..<3_000)
        let source = sketch(0..<3_000)
        #expect(destination.merge(source).isEmpty, "PFMERGE of a sketch it already covers ships nothing")
        let more = sketch(2_990..<3_010)
        let before = destination
        let delta = destination.merge(more)
        #expect(before.joined(delta) == destination)
        #expect(delta.nonZeroRegisterCount < 20)
    }

    /// The join laws where the property simulation does not reach: across the sparse/dense boundary.
    @Test func joinLawsHoldForDenseSketches() throws {
        let pool = [HyperLogLog(), sketch(0..<100), sketch(0..<8_000), sketch(5_000..<20_000), sketch(0..<4_000, prefix: "x"), sketch(0..<30_000)]
        for a in pool {
            #expect(a.joined(a) == a)
            #expect(try HyperLogLog(serializedBytes: a.serializedBytes()) == a)
            for b in pool {
                #expect(a.joined(b) == b.joined(a))
                for c in pool { #expect(a.joined(b).joined(c) == a.joined(b.joined(c))) }
            }
        }
        // One sketch reached by adds and by joins of parts, in either form, is the same state.
        var joinedParts = sketch(0..<2_000)
        joinedParts.join(sketch(2_000..<9_000))
        #expect(joinedParts == sketch(0..<9_000))
        #expect(joinedParts.serializedBytes() == sketch(0..<9_000).serializedBytes())
    }

    @Test func decoderRefusesTheOtherFormAndBadRanks() throws {
        let dense = sketch(0..<20_000).serializedBytes()
        var denseForm = HyperLogLog()
        denseForm.join(sketch(0..<20_000))
        #expect(try HyperLogLog(serializedBytes: dense) == denseForm)
        // A dense encoding of a sparse-sized sketch: refused.
        var writer = BinaryWriter()
        writer.write(raw: [crdtFormatVersion, HyperLogLog.binaryTypeTag, 1])
        writer.write(raw: [UInt8](repeating: 0, count: 12_288 - 3))
        writer.write(raw: [1, 0, 0])
        #expect(throws: CRDTDecodingError.self) { try HyperLogLog(serializedBytes: writer.bytes) }
        // A rank beyond 51 (0x3F in one register): refused.
        var badRank = dense
        badRank[3] |= 0x3F
        #expect(throws: CRDTDecodingError.self) { try HyperLogLog(serializedBytes: badRank) }
        // A sparse index past the last register: refused.
        #expect(throws: CRDTDecodingError.self) {
            try HyperLogLog(serializedBytes: [crdtFormatVersion, HyperLogLog.binaryTypeTag, 0, 1, 0x80, 0x80, 0x01, 1])
        }
    }

    /// The fuzz loop's byte limit keeps dense sketches out, so they get mutated here.
    @Test func mutatedDenseEncodingsAreRefusedOrCanonical() {
        let samples = [sketch(0..<20_000).serializedBytes(), sketch(0..<6_000).serializedBytes()]
        var rng = SplitMix64(seed: 31)
        var accepted = 0
        for _ in 0..<300 {
            let input = mutatedInput(from: samples, using: &rng)
            guard let decoded = try? HyperLogLog(serializedBytes: input) else { continue }
            accepted += 1
            #expect(decoded.serializedBytes() == input)
            _ = decoded.joined(HyperLogLog()).count
        }
        #expect(accepted > 0)
    }
}
