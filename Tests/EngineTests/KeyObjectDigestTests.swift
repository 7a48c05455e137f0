import CRDT
import Testing
@testable import Engine

/// `KeyObject.digest(key:)` stands for the whole state at O(replicas) cost (dot digests for the maps).
/// Over random states built by mutations and joins it must agree with state equality, and `inflate`
/// must agree with the join.
@Suite struct KeyObjectDigestTests {
    @Test func digestAgreesWithEqualityAndInflateWithJoin() throws {
        let key = Array("k".utf8)
        for seed: UInt64 in [1, 0xC0FFEE, 0xBADC0DE] {
            var random = SplitMix64(seed: seed)
            let replicas = (1...3).map { ReplicaID(UInt64($0) * 0x1_0000_0001) }
            var states = [KeyObject](repeating: KeyObject(), count: 3)
            var clocks = replicas.map { LamportClock(replica: $0) }
            var pool: [KeyObject] = [KeyObject()]
            for step in 0..<600 {
                let actor = Int(random.next() % 3)
                let member = Array("m\(random.next() % 12)".utf8)
                var delta = KeyObject()
                switch random.next() % 7 {
                case 0: delta.set = states[actor].set.add(member, replica: replicas[actor])
                case 1: delta.set = states[actor].set.remove(member)
                case 2: delta.hash = states[actor].hash.update(member) { $0.assign(Array("v\(step)".utf8), clock: &clocks[actor]) }
                case 3: delta.hash = states[actor].hash.remove(member)
                case 4: delta.counter = try states[actor].counter.add(Int64(random.next() % 5) + 1, replica: replicas[actor])
                case 5: delta.string = states[actor].string.assign(member, clock: &clocks[actor])
                default:
                    delta.counter = states[actor].counter.reset()
                    delta.set = states[actor].set.removeAll()
                }
                let target = Int(random.next() % 3)
                let incoming = random.next() % 5 == 0 ? states[actor] : delta
                let before = states[target]
                let expected = before.joined(incoming)
                let changed = states[target].inflate(with: incoming)
                #expect(states[target] == expected, "seed \(seed), step \(step): inflate differs from join")
                #expect(changed == (expected != before), "seed \(seed), step \(step): inflate reported \(changed)")
                pool.append(states[target])
            }
            for a in pool.indices where a % 7 == 0 {
                for b in pool.indices where b % 11 == 0 {
                    #expect((pool[a] == pool[b]) == (pool[a].digest(key: key) == pool[b].digest(key: key)),
                            "seed \(seed): digest equality disagrees with state equality (\(a), \(b))")
                }
            }
        }
    }
}
