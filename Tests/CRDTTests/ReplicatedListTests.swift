import TestSupport
import CRDT
import Testing

private let a = replicaIDs[0]
private let b = replicaIDs[1]

private typealias List = ReplicatedList<[UInt8]>

private func strings(_ list: List) -> [String] { list.values.map { String(decoding: $0, as: UTF8.self) } }

@Suite("Replicated list")
struct ReplicatedListTests {
    /// One replica against an array: every positional operation lands where Redis would put it.
    @Test(arguments: propertySeeds)
    func sequentialHistoryMatchesAnArray(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var list = List()
        var clock = LamportClock(replica: a)
        var reference: [[UInt8]] = []
        for step in 0..<800 {
            let value = bytes("v\(step)")
            switch rng.below(10) {
            case 0, 1:
                if !reference.isEmpty {
                    let index = rng.below(reference.count)
                    list.remove(at: index)
                    reference.remove(at: index)
                }
            case 2:
                if !reference.isEmpty {
                    let index = rng.below(reference.count)
                    list.set(value, at: index, clock: &clock)
                    reference[index] = value
                }
            case 3, 4:
                list.insert(value, at: 0, clock: &clock)
                reference.insert(value, at: 0)
            case 5, 6:
                list.insert(value, at: list.count, clock: &clock)
                reference.append(value)
            default:
                // Often the same gap, so positions must go deeper.
                let index = rng.chance(0.5) ? min(1, reference.count) : rng.below(reference.count + 1)
                list.insert(value, at: index, clock: &clock)
                reference.insert(value, at: index)
            }
            #expect(list.count == reference.count, "step \(step) — seed \(seed)")
            if step % 25 == 0 {
                #expect(list.values == reference, "step \(step) — seed \(seed)")
                if !reference.isEmpty {
                    let index = rng.below(reference.count)
                    #expect(list.value(at: index) == reference[index])
                    let end = min(reference.count, index + rng.below(10))
                    #expect(list.values(in: index..<end) == Array(reference[index..<end]))
                }
            }
        }
        #expect(list.values == reference)
        #expect(ReplicatedList(store: list.store, context: list.context).values == reference, "the index is derived")
    }

    @Test func positionsFromPushesStayOneLevelDeep() {
        var list = List()
        var clock = LamportClock(replica: a)
        for index in 0..<5_000 {
            if index % 2 == 0 { list.insert(bytes("r\(index)"), at: list.count, clock: &clock) } else { list.insert(bytes("l\(index)"), at: 0, clock: &clock) }
        }
        for index in 0..<list.count { #expect(list.position(at: index)!.components.count == 1) }
        let delta = list.insert(bytes("x"), at: list.count, clock: &clock)
        #expect(delta.serializedBytes().count < 64, "one element: position, dot, timestamp, value, one-dot context")
    }

    /// `between` always lands strictly inside, even when squeezed into one gap again and again,
    /// against the start, and against places that end in small digits.
    @Test(arguments: propertySeeds)
    func betweenLandsStrictlyInside(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var places: [ListPosition] = []
        var counter: UInt64 = 0
        func site() -> Dot {
            counter += 1
            return Dot(replica: replicaIDs[rng.below(3)], counter: counter)
        }
        for step in 0..<2_000 {
            let gap: Int
            switch rng.below(4) {
            case 0: gap = 0                                   // before the first
            case 1: gap = places.count                        // after the last
            case 2: gap = min(1, places.count)                // one gap, over and over
            default: gap = rng.below(places.count + 1)
            }
            let lower = gap > 0 ? places[gap - 1] : nil
            let upper = gap < places.count ? places[gap] : nil
            let made = ListPosition.between(lower, upper, site: site())
            if let lower { #expect(lower < made, "step \(step) — seed \(seed)") }
            if let upper { #expect(made < upper, "step \(step) — seed \(seed)") }
            #expect(made.components.last!.digit != 0)
            places.insert(made, at: gap)
        }
        #expect(places == places.sorted())
        let smallest = ListPosition(components: [ListPosition.Component(digit: 1, replica: a, counter: 1)])
        let below = ListPosition.between(nil, smallest, site: Dot(replica: b, counter: 9))
        #expect(below < smallest)
        #expect(ListPosition.between(nil, below, site: Dot(replica: b, counter: 10)) < below)
    }

    @Test func concurrentInsertsAtOnePlaceAreBothKeptInOneOrder() {
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var replicaA = List()
        replicaA.insert(bytes("x"), at: 0, clock: &clockA)
        replicaA.insert(bytes("z"), at: 1, clock: &clockA)
        var replicaB = replicaA
        let fromA = replicaA.insert(bytes("a"), at: 1, clock: &clockA)
        let fromB = replicaB.insert(bytes("b"), at: 1, clock: &clockB)
        replicaA.join(fromB)
        replicaB.join(fromA)
        #expect(replicaA == replicaB)
        #expect(strings(replicaA) == strings(replicaB))
        #expect(Set(strings(replicaA)) == ["x", "a", "b", "z"] && strings(replicaA).first == "x" && strings(replicaA).last == "z")
    }

    /// Documented: two nodes popping the head concurrently both get the same element.
    @Test func concurrentPopsTakeTheSameElementOnBothSides() {
        var clock = LamportClock(replica: a)
        var replicaA = List()
        for name in ["job1", "job2", "job3"] { replicaA.insert(bytes(name), at: replicaA.count, clock: &clock) }
        var replicaB = replicaA
        let poppedA = replicaA.value(at: 0)
        let popA = replicaA.remove(at: 0)!
        let poppedB = replicaB.value(at: 0)
        let popB = replicaB.remove(at: 0)!
        #expect(poppedA == poppedB, "both consumers got job1")
        replicaA.join(popB)
        replicaB.join(popA)
        #expect(replicaA == replicaB && strings(replicaA) == ["job2", "job3"], "and it is gone once")
    }

    @Test func setConcurrentWithRemoveKeepsTheElementWithTheNewValue() {
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var replicaA = List()
        replicaA.insert(bytes("old"), at: 0, clock: &clockA)
        var replicaB = replicaA
        let removal = replicaA.remove(at: 0)!
        let write = replicaB.set(bytes("new"), at: 0, clock: &clockB)!
        replicaA.join(write)
        replicaB.join(removal)
        #expect(replicaA == replicaB && strings(replicaA) == ["new"])

        let later = replicaA.set(bytes("A"), at: 0, clock: &clockA)!
        let concurrent = replicaB.set(bytes("B"), at: 0, clock: &clockB)!
        replicaA.join(concurrent)
        replicaB.join(later)
        #expect(replicaA == replicaB && replicaA.count == 1, "concurrent LSETs: one element, the later Lamport write")
    }

    @Test(arguments: propertySeeds)
    func indexFollowsJoinsOfDeltasAndStates(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var replicas = [List](repeating: List(), count: 3)
        var clocks = (0..<3).map { LamportClock(replica: replicaIDs[$0]) }
        for step in 0..<300 {
            let actor = rng.below(3)
            let delta = Harnesses.replicatedList.randomOperation(&replicas[actor], &clocks[actor], &rng)
            let target = rng.below(3)
            if rng.chance(0.2) { replicas[target].join(replicas[actor]) } else if let delta { replicas[target].join(delta) }
            for replica in replicas {
                let rebuilt = ReplicatedList(store: replica.store, context: replica.context)
                #expect(replica.values == rebuilt.values && replica.count == replica.store.entries.count, "step \(step) — seed \(seed)")
            }
        }
    }

    @Test func decoderRefusesPositionsWithoutRoomBelow() throws {
        var clock = LamportClock(replica: a)
        var list = List()
        list.insert(bytes("x"), at: 0, clock: &clock)
        #expect(try List(serializedBytes: list.serializedBytes()) == list)
        for digit: UInt64 in [0, ListPosition.base] {
            var writer = BinaryWriter()
            ListPosition(components: [ListPosition.Component(digit: digit, replica: a, counter: 1)]).encode(to: &writer)
            var reader = try BinaryReader(writer.bytes)
            #expect(throws: CRDTDecodingError.self) { try ListPosition(from: &reader) }
        }
    }
}
