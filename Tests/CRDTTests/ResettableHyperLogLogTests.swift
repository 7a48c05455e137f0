import TestSupport
import Testing
@testable import CRDT

extension Harnesses {
    static var resettableHyperLogLog: CRDTHarness<ResettableHyperLogLog> {
        CRDTHarness<ResettableHyperLogLog>(name: "ResettableHyperLogLog") { state, clock, rng in
            switch rng.below(10) {
            case 0: return state.removeAll()
            case 1:
                var other = HyperLogLog()
                _ = other.add(contentsOf: (0..<rng.below(4)).map { _ in bytes("m\(rng.below(500))") })
                return state.merge(other, replica: clock.replica).delta
            default:
                return state.add((0..<(1 + rng.below(3))).map { _ in bytes("e\(rng.below(500))") }, replica: clock.replica).delta
            }
        }
    }
}

@Suite struct ResettableHyperLogLogTests {
    @Test func properties() { runProperties(Harnesses.resettableHyperLogLog) }

    let a = ReplicaID(1)
    let b = ReplicaID(2)

    @Test func countsLikeOneSketchAndAnswersWhetherItChanged() {
        var state = ResettableHyperLogLog()
        var plain = HyperLogLog()
        for i in 0..<1_000 { _ = plain.add(bytes("x\(i)")) }
        let (_, created) = state.add([], replica: a)
        #expect(created, "PFADD key with no element creates the key")
        #expect(state.exists)
        #expect(state.add((0..<1_000).map { bytes("x\($0)") }, replica: a).changed)
        #expect(state.count == plain.count)
        #expect(!state.add([bytes("x1")], replica: a).changed, "an element already counted raises no register")
        #expect(state.sketches.count == 1, "one sketch per replica")
    }

    @Test func concurrentAddsOnTwoReplicasBothCount() {
        var left = ResettableHyperLogLog()
        var right = ResettableHyperLogLog()
        let fromLeft = left.add((0..<500).map { bytes("l\($0)") }, replica: a).delta
        let fromRight = right.add((0..<500).map { bytes("r\($0)") }, replica: b).delta
        left.join(fromRight)
        right.join(fromLeft)
        #expect(left == right)
        var union = HyperLogLog()
        _ = union.add(contentsOf: (0..<500).map { bytes("l\($0)") } + (0..<500).map { bytes("r\($0)") })
        #expect(left.count == union.count)
    }

    @Test func removalDropsWhatItSawAndKeepsAConcurrentFirstAdd() {
        var left = ResettableHyperLogLog()
        var right = ResettableHyperLogLog()
        right.join(left.add([bytes("old")], replica: a).delta)
        // Concurrently: left removes the key, right adds for the first time (a sketch left never saw),
        // and left's own sketch, which the removal saw, is gone everywhere.
        let removal = left.removeAll()
        let firstAdd = right.add([bytes("new")], replica: b).delta
        let leftChanged = left.inflate(with: firstAdd)
        let rightChanged = right.inflate(with: removal)
        #expect(leftChanged && rightChanged)
        #expect(left == right)
        #expect(left.sketches.keys.map(\.replica) == [b])
        var expected = HyperLogLog()
        _ = expected.add(bytes("new"))
        #expect(left.count == expected.count)
        let again = left.inflate(with: removal)
        #expect(!again, "a repeated removal changes nothing")
    }

    @Test func anAddAfterSeeingARemovalStartsAFreshSketch() {
        var state = ResettableHyperLogLog()
        let first = state.add([bytes("x")], replica: a).delta
        state.removeAll()
        #expect(!state.exists)
        let again = state.add([bytes("y")], replica: a).delta
        #expect(Set(first.sketches.keys).isDisjoint(with: again.sketches.keys), "a new dot, so a stale removal cannot drop it")
        var other = ResettableHyperLogLog()
        other.join(again)
        other.join(first)
        #expect(other.sketches.count == 2, "the old dot arrived late and was never removed here")
        other.join(state)
        #expect(other == state)
    }

    @Test func rejectsASketchOutsideItsContext() throws {
        var state = ResettableHyperLogLog()
        _ = state.add([bytes("x")], replica: a)
        var bytes = state.serializedBytes()
        // The context is the last part: replace it with an empty one.
        let context = state.context.serializedForTest()
        bytes.removeLast(context.count)
        bytes += CausalContext().serializedForTest()
        #expect(throws: CRDTDecodingError.self) { _ = try ResettableHyperLogLog(serializedBytes: bytes) }
    }
}

extension CausalContext {
    func serializedForTest() -> [UInt8] {
        var writer = BinaryWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

@Suite struct DecodedDigestTests {
    /// A decoded map of counting registers has the digest of the map it was encoded from: the decoder
    /// sums the values' digests (which carry shard versions), as mutation does.
    @Test func aDecodedMapOfCountingRegistersKeepsItsDigest() throws {
        var map = ORMap<[UInt8], CountingRegister<[UInt8], Int64>>()
        for step in 1...3 {
            _ = try map.update(bytes("f")) { (r: inout CountingRegister<[UInt8], Int64>) throws(CRDTMutationError) in
                try r.increment(by: Int64(step), replica: ReplicaID(1))
            }
        }
        let decoded = try ORMap<[UInt8], CountingRegister<[UInt8], Int64>>(serializedBytes: map.serializedBytes())
        #expect(decoded == map)
        #expect(decoded.store.dotDigest == map.store.dotDigest)
    }
}
