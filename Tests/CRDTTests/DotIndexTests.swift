@testable import CRDT
import TestSupport
import Testing

/// The dot-to-key index of `DotMap` is derived data that the join relies on; after any sequence of
/// mutations and joins it must list exactly the dots held, each under the key that holds it.
@Suite("Dot index")
struct DotIndexTests {
    static func indexIsConsistent<Key, Value>(_ map: DotMap<Key, Value>) -> Bool {
        var expected: [Dot: Key] = [:]
        for (key, value) in map.entries {
            for dot in value.dots { expected[dot] = key }
        }
        // The dot digest is kept up to date with the index; it must equal one computed from scratch.
        return map.owners == expected && map.dotDigest == DotDigest(of: expected.keys)
    }

    @Test(arguments: propertySeeds)
    func indexFollowsMutationsAndJoins(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var replicas = [AWSet<UInt64>](repeating: AWSet(), count: 3)
        var hashes = [ORMap<UInt64, CausalLWWRegister<UInt64>>](repeating: ORMap(), count: 3)
        var clocks = (0..<3).map { LamportClock(replica: replicaIDs[$0]) }
        for step in 0..<400 {
            let actor = rng.below(3)
            let key = UInt64(rng.below(20))
            let setDelta: AWSet<UInt64>
            let hashDelta: ORMap<UInt64, CausalLWWRegister<UInt64>>
            switch rng.below(10) {
            case 0:
                setDelta = replicas[actor].removeAll()
                hashDelta = hashes[actor].removeAll()
            case 1...3:
                setDelta = replicas[actor].remove(key)
                hashDelta = hashes[actor].remove(key)
            default:
                setDelta = replicas[actor].add(key, replica: replicaIDs[actor])
                hashDelta = hashes[actor].update(key) { $0.assign(UInt64(step), clock: &clocks[actor]) }
            }
            let target = rng.below(3)
            replicas[target].join(rng.chance(0.2) ? replicas[actor] : setDelta)
            hashes[target].join(rng.chance(0.2) ? hashes[actor] : hashDelta)
            for replica in 0..<3 {
                #expect(Self.indexIsConsistent(replicas[replica].store), "set index wrong at step \(step) — seed \(seed)")
                #expect(Self.indexIsConsistent(hashes[replica].store), "hash index wrong at step \(step) — seed \(seed)")
            }
        }
    }

    @Test func decodedMapsHaveAnIndex() throws {
        var set = AWSet<String>()
        for element in ["a", "b", "c"] { set.add(element, replica: replicaIDs[0]) }
        let decoded = try AWSet<String>(serializedBytes: set.serializedBytes())
        #expect(Self.indexIsConsistent(decoded.store))
        #expect(decoded.store.owners.count == 3)
    }

    @Test func largeSetLosesOnlyTheRemovedElementWhenADeltaArrives() {
        var source = AWSet<UInt64>()
        for element in 0..<500 as Range<UInt64> { source.add(element, replica: replicaIDs[replicaIndex(element)]) }
        var target = source
        let removal = source.remove(250)
        target.join(removal)
        #expect(target.count == 499 && !target.contains(250))
        #expect(target == source)
        #expect(Self.indexIsConsistent(target.store))
    }
}

private func replicaIndex(_ value: UInt64) -> Int { Int(value % 3) }

/// `DotSet` holds one dot inline and two or more in a `Set`; its join must be the rule of the causal
/// join on sets of dots whatever the shapes on either side, and equal sets must be equal values.
@Suite("DotSet")
struct DotSetTests {
    @Test(arguments: propertySeeds)
    func joinIsTheSetRule(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let replica = ReplicaID(7)
        func randomDots() -> Set<Dot> {
            // Mostly zero, one or two dots, as a set's elements hold; now and then more.
            let count = rng.below(10) < 8 ? rng.below(3) : rng.below(6)
            return Set((0..<count).map { _ in Dot(replica: replica, counter: UInt64(1 + rng.below(6))) })
        }
        func randomContext(covering dots: Set<Dot>) -> CausalContext {
            var context = CausalContext(dots: dots)
            for _ in 0..<rng.below(4) { context.insert(Dot(replica: replica, counter: UInt64(1 + rng.below(6)))) }
            return context
        }
        for _ in 0..<500 {
            let mine = randomDots(), theirs = randomDots()
            let context = randomContext(covering: mine), otherContext = randomContext(covering: theirs)
            let expected = mine.filter { !otherContext.contains($0) || theirs.contains($0) }
                .union(theirs.filter { !context.contains($0) })
            var joined = DotSet(mine)
            joined.join(DotSet(theirs), context: context, otherContext: otherContext)
            #expect(joined.elements == expected, "\(mine) ⊔ \(theirs)")
            #expect(joined == DotSet(expected), "the same dots, the same value")
            #expect(joined.count == expected.count && joined.isBottom == expected.isEmpty)
            var bytes = BinaryWriter()
            joined.encode(to: &bytes)
            let decoded = try? { () throws(CRDTDecodingError) -> DotSet in
                var reader = try BinaryReader(bytes.bytes)
                return try DotSet(from: &reader)
            }()
            #expect(decoded == joined)
        }
    }
}
