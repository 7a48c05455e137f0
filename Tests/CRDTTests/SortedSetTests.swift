import TestSupport
import CRDT
import Testing

private let a = replicaIDs[0]
private let b = replicaIDs[1]

@Suite("Ordered index")
struct OrderedIndexTests {
    @Test(arguments: propertySeeds)
    func agreesWithASortedArray(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var index = OrderedIndex<Int>()
        var reference: [Int] = []
        for step in 0..<3_000 {
            let value = rng.below(300)
            if rng.chance(0.4) && !reference.isEmpty {
                let victim = rng.chance(0.8) ? reference[rng.below(reference.count)] : value
                let expected = reference.firstIndex(of: victim).map { reference.remove(at: $0) } != nil
                #expect(index.remove(victim) == expected, "step \(step) — seed \(seed)")
            } else {
                index.insert(value)
                reference.insert(value, at: reference.firstIndex { $0 > value } ?? reference.count)
            }
            #expect(index.count == reference.count)
            if step % 50 == 0 {
                #expect(index.sorted == reference, "step \(step) — seed \(seed)")
                let probe = rng.below(300)
                #expect(index.rank(of: probe) == reference.filter { $0 < probe }.count)
                #expect(index.partitionIndex { $0 <= probe } == reference.filter { $0 <= probe }.count)
                #expect(index.contains(probe) == reference.contains(probe))
                if !reference.isEmpty {
                    let position = rng.below(reference.count)
                    #expect(index[position] == reference[position])
                    let end = min(reference.count, position + rng.below(20))
                    #expect(index.elements(in: position..<end) == Array(reference[position..<end]))
                }
            }
        }
    }

    @Test func copiesAreIndependent() {
        var original = OrderedIndex<Int>()
        for value in 0..<100 { original.insert(value) }
        var copy = original
        copy.remove(50)
        copy.insert(1_000)
        #expect(original.count == 100 && original.contains(50) && !original.contains(1_000))
        #expect(copy.count == 100 && !copy.contains(50) && copy.contains(1_000))
    }
}

@Suite("Sorted set")
struct SortedSetTests {
    /// The index is derived: after any history it must list exactly the members with their scores.
    static func indexIsConsistent(_ set: SortedSet) -> Bool {
        let rebuilt = SortedSet(store: set.store, context: set.context)
        let expected = set.store.entries.keys.map { member in
            ScoredMember(member: member, score: rebuilt.score(of: member)!)
        }.sorted()
        return set.sortedMembers == expected && set.count == expected.count
    }

    /// One replica against Redis's semantics: ZADD sets, ZINCRBY adds (creating at the amount),
    /// ZREM removes; ranks, score ranges and lex ranges against a sorted reference.
    @Test(arguments: propertySeeds)
    func sequentialHistoryMatchesRedis(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var set = SortedSet()
        var clock = LamportClock(replica: a)
        var redis: [[UInt8]: Double] = [:]
        for step in 0..<800 {
            let member = bytes("m\(rng.below(40))")
            switch rng.below(8) {
            case 0:
                set.remove(member)
                redis[member] = nil
            case 1...4:
                let score = Double(rng.below(30)) - 10
                set.add(member, score: score, clock: &clock)
                redis[member] = score
            default:
                let amount = Double(rng.below(7)) - 3
                try set.increment(member, by: amount, replica: a)
                redis[member, default: 0] += amount
            }
            #expect(set.score(of: member) == redis[member], "step \(step) — seed \(seed)")
            guard step % 40 == 0 else { continue }
            let reference = redis.map { ScoredMember(member: $0.key, score: $0.value) }.sorted()
            #expect(set.sortedMembers == reference, "step \(step) — seed \(seed)")
            #expect(Self.indexIsConsistent(set))
            if let probe = reference.randomElement(using: &rng) {
                #expect(set.rank(of: probe.member) == reference.firstIndex(of: probe))
            }
            let low = Double(rng.below(20)) - 12
            let high = low + Double(rng.below(10))
            let inclusive = reference.indices.filter { reference[$0].score >= low && reference[$0].score <= high }
            #expect(Array(set.ranks(scoresFrom: .inclusive(low), to: .inclusive(high))) == inclusive)
            let exclusive = reference.indices.filter { reference[$0].score > low && reference[$0].score < high }
            #expect(Array(set.ranks(scoresFrom: .exclusive(low), to: .exclusive(high))) == exclusive)
            #expect(set.ranks(scoresFrom: .inclusive(-.infinity), to: .inclusive(.infinity)) == 0..<reference.count)
        }
    }

    @Test func lexRangesOverEqualScores() {
        var set = SortedSet()
        var clock = LamportClock(replica: a)
        for name in ["a", "b", "c", "d", "e", "f", "g"] { set.add(bytes(name), score: 0, clock: &clock) }
        func names(_ range: Range<Int>) -> [String] { set.members(inRanks: range).map { String(decoding: $0.member, as: UTF8.self) } }
        // The examples of Redis's ZRANGEBYLEX documentation.
        #expect(names(set.ranks(membersFrom: .unbounded, to: .inclusive(bytes("c")))) == ["a", "b", "c"])
        #expect(names(set.ranks(membersFrom: .unbounded, to: .exclusive(bytes("c")))) == ["a", "b"])
        #expect(names(set.ranks(membersFrom: .inclusive(bytes("aaa")), to: .exclusive(bytes("g")))) == ["b", "c", "d", "e", "f"])
        #expect(names(set.ranks(membersFrom: .exclusive(bytes("b")), to: .unbounded)) == ["c", "d", "e", "f", "g"])
        #expect(set.ranks(membersFrom: .inclusive(bytes("z")), to: .unbounded).isEmpty)
    }

    @Test func concurrentIncrementsBothCountAndAddIncrementCountsOnTop() throws {
        var clockA = LamportClock(replica: a)
        var replicaA = SortedSet()
        var replicaB = SortedSet()
        replicaB.join(replicaA.add(bytes("m"), score: 10, clock: &clockA))
        let incrementA = try replicaA.increment(bytes("m"), by: 1.5, replica: a)
        let incrementB = try replicaB.increment(bytes("m"), by: 2, replica: b)
        replicaA.join(incrementB)
        replicaB.join(incrementA)
        #expect(replicaA == replicaB && replicaA.score(of: bytes("m")) == 13.5)

        var clockB = LamportClock(replica: b)
        let reset = replicaB.add(bytes("m"), score: 1, clock: &clockB)          // saw both increments
        let concurrent = try replicaA.increment(bytes("m"), by: 4, replica: a)
        replicaA.join(reset)
        replicaB.join(concurrent)
        #expect(replicaA == replicaB)
        #expect(replicaA.score(of: bytes("m")) == 5, "ZADD 1 replaces the increments it saw; the concurrent +4 counts")
        #expect(Self.indexIsConsistent(replicaA) && Self.indexIsConsistent(replicaB))
    }

    @Test func removeConcurrentWithAddKeepsTheMember() {
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var replicaA = SortedSet()
        var replicaB = SortedSet()
        replicaB.join(replicaA.add(bytes("m"), score: 1, clock: &clockA))
        let removal = replicaA.remove(bytes("m"))
        let update = replicaB.add(bytes("m"), score: 7, clock: &clockB)
        replicaA.join(update)
        replicaB.join(removal)
        #expect(replicaA == replicaB && replicaA.score(of: bytes("m")) == 7)
        #expect(replicaA.rank(of: bytes("m")) == 0)
    }

    @Test func deltaOfOneChangeIsSmallAndAppliesToALargeSet() throws {
        var clock = LamportClock(replica: a)
        var large = SortedSet()
        for index in 0..<5_000 { large.add(bytes("member\(index)"), score: Double(index), clock: &clock) }
        var replica = large
        let delta = try large.increment(bytes("member10"), by: 10_000, replica: b)
        #expect(delta.serializedBytes().count < 64)
        replica.join(delta)
        #expect(replica == large)
        #expect(replica.rank(of: bytes("member10")) == 4_999)
        #expect(replica.members(inRanks: 0..<2).map(\.score) == [0, 1])
        let removal = large.remove(bytes("member0"))
        replica.join(removal)
        #expect(replica.count == 4_999 && replica.score(of: bytes("member0")) == nil)
        #expect(Self.indexIsConsistent(replica))
    }

    @Test(arguments: propertySeeds)
    func indexFollowsJoinsOfDeltasAndStates(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var replicas = [SortedSet](repeating: SortedSet(), count: 3)
        var clocks = (0..<3).map { LamportClock(replica: replicaIDs[$0]) }
        for step in 0..<300 {
            let actor = rng.below(3)
            let delta = Harnesses.sortedSet.randomOperation(&replicas[actor], &clocks[actor], &rng)
            let target = rng.below(3)
            if rng.chance(0.2) { replicas[target].join(replicas[actor]) } else if let delta { replicas[target].join(delta) }
            for replica in replicas {
                #expect(Self.indexIsConsistent(replica), "step \(step) — seed \(seed)")
            }
        }
    }

    @Test func decodedSetHasItsIndex() throws {
        var clock = LamportClock(replica: a)
        var set = SortedSet()
        for (index, name) in ["x", "y", "z"].enumerated() { set.add(bytes(name), score: Double(3 - index), clock: &clock) }
        let decoded = try SortedSet(serializedBytes: set.serializedBytes())
        #expect(decoded == set)
        #expect(decoded.sortedMembers.map(\.member) == [bytes("z"), bytes("y"), bytes("x")])
    }
}
