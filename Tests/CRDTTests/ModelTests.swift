import TestSupport
import CRDT
import Testing

/// Compares the optimised types with the abstract specification they implement, operation by
/// operation, over a network that duplicates, reorders and drops messages: every add (increment)
/// gets a unique id, a remove (reset) cancels exactly the ids its replica has seen, and the read is
/// a function of the ids seen and cancelled. Convergence tests alone would accept a type that
/// converges to the wrong value; these would not.
@Suite("Against the abstract specification")
struct ModelTests {
    /// The observed-remove set specification: an element is present when some add of it was seen
    /// and not cancelled by a remove that saw it.
    struct SetModel {
        var adds: [String: Set<Int>] = [:]
        var cancelled: Set<Int> = []

        func visibleIDs(of element: String) -> Set<Int> { adds[element, default: []].subtracting(cancelled) }
        var present: Set<String> { Set(adds.keys.filter { !visibleIDs(of: $0).isEmpty }) }

        mutating func merge(_ other: SetModel) {
            adds.merge(other.adds) { $0.union($1) }
            cancelled.formUnion(other.cancelled)
        }
    }

    @Test(arguments: propertySeeds)
    func awSetMatchesObservedRemoveSpecification(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let count = 4
        var sets = [AWSet<String>](repeating: AWSet(), count: count)
        var models = [SetModel](repeating: SetModel(), count: count)
        var network: [(target: Int, delta: AWSet<String>, model: SetModel)] = []
        var nextID = 0

        for step in 0..<600 {
            let actor = rng.below(count)
            let element = "e\(rng.below(5))"
            var modelDelta = SetModel()
            let delta: AWSet<String>
            switch rng.below(10) {
            case 0:
                // Only what is still visible: a delta ships no news of removals it did not make.
                modelDelta.cancelled = Set(models[actor].adds.keys.flatMap { models[actor].visibleIDs(of: $0) })
                delta = sets[actor].removeAll()
            case 1...3:
                modelDelta.cancelled = models[actor].visibleIDs(of: element)
                delta = sets[actor].remove(element)
            default:
                nextID += 1
                modelDelta.adds[element] = [nextID]
                modelDelta.cancelled = models[actor].visibleIDs(of: element)  // the add supersedes them
                delta = sets[actor].add(element, replica: replicaIDs[actor])
            }
            models[actor].merge(modelDelta)
            for target in 0..<count where target != actor && !rng.chance(0.1) {
                network.append((target, delta, modelDelta))
                if rng.chance(0.1) { network.append((target, delta, modelDelta)) }
            }
            for _ in 0..<rng.below(4) where !network.isEmpty {
                let message = network.remove(at: rng.below(network.count))
                sets[message.target].join(message.delta)
                models[message.target].merge(message.model)
            }
            for replica in 0..<count {
                #expect(sets[replica].elements == models[replica].present,
                        "replica \(replica) disagrees with the specification at step \(step) — seed \(seed)")
            }
        }
    }

    /// The observed-reset counter specification: each addition has an id `[origin, sign, n]`; a
    /// replica that has seen origin r's n-th addition of one sign has seen r's earlier ones of that
    /// sign (a PN-counter ships running totals per sign); a reset cancels every addition its replica
    /// has seen; the value is the sum of seen, uncancelled additions.
    struct CounterModel {
        var seen: [[Int]: Int] = [:]        // [origin, sign] -> highest sequence seen
        var cancelled: Set<[Int]> = []      // [origin, sign, sequence]

        func isSeen(_ key: [Int]) -> Bool { key[2] <= seen[[key[0], key[1]], default: 0] }

        func value(_ increments: [[Int]: Int64]) -> Int64 {
            increments.reduce(0) { sum, entry in
                isSeen(entry.key) && !cancelled.contains(entry.key) ? sum + entry.value : sum
            }
        }

        func visible(_ increments: [[Int]: Int64]) -> Set<[Int]> { Set(increments.keys.filter(isSeen)) }

        mutating func merge(_ other: CounterModel) {
            seen.merge(other.seen) { max($0, $1) }
            cancelled.formUnion(other.cancelled)
        }
    }

    @Test(arguments: propertySeeds)
    func resettableCounterMatchesObservedResetSpecification(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let count = 4
        var counters = [ResettableCounter](repeating: ResettableCounter(), count: count)
        var models = [CounterModel](repeating: CounterModel(), count: count)
        var increments: [[Int]: Int64] = [:]
        var sequences: [[Int]: Int] = [:]   // [origin, sign] -> additions so far
        var network: [(target: Int, delta: ResettableCounter, model: CounterModel)] = []

        for step in 0..<600 {
            let actor = rng.below(count)
            var modelDelta = CounterModel()
            let delta: ResettableCounter
            if rng.chance(0.15) {
                modelDelta.seen = models[actor].seen
                modelDelta.cancelled = models[actor].visible(increments)
                delta = counters[actor].reset()
            } else {
                var amount = Int64(rng.below(21) - 10)
                if amount == 0 { amount = 1 }
                let sign = amount > 0 ? 1 : 0
                sequences[[actor, sign], default: 0] += 1
                let sequence = sequences[[actor, sign]]!
                increments[[actor, sign, sequence]] = amount
                modelDelta.seen[[actor, sign]] = sequence
                delta = try counters[actor].add(amount, replica: replicaIDs[actor])
            }
            models[actor].merge(modelDelta)
            for target in 0..<count where target != actor && !rng.chance(0.1) {
                network.append((target, delta, modelDelta))
                if rng.chance(0.1) { network.append((target, delta, modelDelta)) }
            }
            for _ in 0..<rng.below(4) where !network.isEmpty {
                let message = network.remove(at: rng.below(network.count))
                counters[message.target].join(message.delta)
                models[message.target].merge(message.model)
            }
            for replica in 0..<count {
                #expect(counters[replica].value == models[replica].value(increments),
                        "replica \(replica) disagrees with the specification at step \(step) — seed \(seed)")
            }
        }
    }
}
