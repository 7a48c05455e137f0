import TestSupport
import CRDT
import Testing

@Suite("Logical time")
struct LogicalTimeTests {
    @Test func clockTicksPastEverythingObserved() {
        var clock = LamportClock(replica: ReplicaID(7))
        let first = clock.tick()
        #expect(first == LamportTimestamp(counter: 1, replica: ReplicaID(7)))
        clock.observe(LamportTimestamp(counter: 41, replica: ReplicaID(9)))
        let next = clock.tick()
        #expect(next.counter == 42 && next > LamportTimestamp(counter: 41, replica: ReplicaID(9)))
        clock.observe(LamportTimestamp(counter: 3, replica: ReplicaID(9)))
        #expect(clock.tick().counter == 43, "observing an older timestamp must not move the clock back")
    }

    @Test func clockSaturatesInsteadOfTrapping() {
        var clock = LamportClock(replica: ReplicaID(1), counter: .max - 1)
        #expect(clock.tick().counter == .max)
        #expect(clock.tick().counter == .max)
    }

    @Test func timestampsOrderByCounterThenReplica() {
        let low = LamportTimestamp(counter: 5, replica: ReplicaID(.max))
        let high = LamportTimestamp(counter: 6, replica: ReplicaID(0))
        let tieHigh = LamportTimestamp(counter: 6, replica: ReplicaID(1))
        #expect(low < high && high < tieHigh)
        #expect([tieHigh, low, high].sorted() == [low, high, tieHigh])
    }

    @Test func contextCompactsContiguousDots() {
        let r = ReplicaID(3)
        var context = CausalContext()
        for counter in [3, 5, 2, 1] as [UInt64] { context.insert(Dot(replica: r, counter: counter)) }
        #expect(context.versionVector == [r: 3])
        #expect(context.cloud == [Dot(replica: r, counter: 5)])
        context.insert(Dot(replica: r, counter: 4))
        #expect(context.versionVector == [r: 5] && context.cloud.isEmpty)
        #expect(context.nextDot(for: r) == Dot(replica: r, counter: 6))
        #expect(context.nextDot(for: ReplicaID(4)) == Dot(replica: ReplicaID(4), counter: 1))
    }

    @Test func dotCountSaturatesInsteadOfWrapping() throws {
        // A forged context whose vector sums past 2^64 must not look small (joins enumerate small
        // contexts dot by dot).
        var writer = BinaryWriter()
        writer.write(varint: 2)
        ReplicaID(1).encode(to: &writer)
        writer.write(varint: 1 << 63)
        ReplicaID(2).encode(to: &writer)
        writer.write(varint: 1 << 63)
        writer.write(varint: 0)
        var reader = try BinaryReader(writer.bytes)
        let context = try CausalContext(from: &reader)
        #expect(context.dotCount == .max)

        var flag = EWFlag()
        flag.enable(replica: ReplicaID(3))
        let forged = EWFlag(store: DotSet(), context: context)
        var map = ORMap<UInt64, EWFlag>()
        map.update(1) { $0.enable(replica: ReplicaID(3)) }
        map.join(ORMap(store: DotMap(), context: context))  // must finish promptly
        #expect(map.count == 1)
        flag.join(forged)
        #expect(flag.isEnabled)
    }

    @Test func nextDotSkipsPastCloudDots() {
        let r = ReplicaID(3)
        let context = CausalContext(dots: [Dot(replica: r, counter: 9)])
        #expect(context.nextDot(for: r) == Dot(replica: r, counter: 10))
    }

    @Test(arguments: propertySeeds)
    func contextAgreesWithAPlainSetOfDots(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<200 {
            var model = Set<Dot>()
            var context = CausalContext()
            var other = CausalContext()
            var otherModel = Set<Dot>()
            for _ in 0..<rng.below(40) {
                let dot = Dot(replica: replicaIDs[rng.below(3)], counter: UInt64(rng.below(12) + 1))
                if rng.chance(0.5) {
                    model.insert(dot); context.insert(dot)
                } else {
                    otherModel.insert(dot); other.insert(dot)
                }
            }
            #expect(context == CausalContext(dots: model), "insert order changed the context — seed \(seed)")
            let union = context.union(other)
            #expect(union == CausalContext(dots: model.union(otherModel)), "union differs from set union — seed \(seed)")
            #expect(union.dotCount == UInt64(model.union(otherModel).count), "dot count wrong — seed \(seed)")
            var grown = context
            let grew = grown.formUnionReportingGrowth(other)
            #expect(grown == union, "the reporting union differs — seed \(seed)")
            #expect(grew == !otherModel.isSubset(of: model), "growth reported wrongly — seed \(seed)")
            for replica in replicaIDs.prefix(3) {
                for counter in 1...13 as ClosedRange<UInt64> {
                    let dot = Dot(replica: replica, counter: counter)
                    #expect(union.contains(dot) == (model.contains(dot) || otherModel.contains(dot)), "contains(\(dot)) wrong — seed \(seed)")
                }
                // Canonical: no cloud dot is covered by or extends the vector.
                for dot in union.cloud where dot.replica == replica {
                    #expect(dot.counter > union.versionVector[replica, default: 0] + 1, "context not compacted — seed \(seed)")
                }
            }
        }
    }
}
