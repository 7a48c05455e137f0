import CRDT
import Testing
import TestSupport


/// The seeds every property test runs with. Replay a failure by putting its printed seed here.
let propertySeeds: [UInt64] = [1, 0xC0FFEE, 0xDEAD_BEEF_2026]

/// Replica ids spread over the 64-bit range, as the daemon's random ids are.
let replicaIDs: [ReplicaID] = [0x9F3A_11D2_0000_0001, 0x0000_0000_0000_0002, 0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFF0, 42]
    .map(ReplicaID.init)

/// How to exercise one CRDT type: a random mutator at a replica (returning its delta, or nil when the
/// mutator refused, e.g. a bounded counter short of rights).
struct CRDTHarness<T: SerializableCRDT> {
    let name: String
    let randomOperation: (inout T, inout LamportClock, inout SplitMix64) -> T?
}

/// A message in the simulated network: a delta for one replica.
struct InFlight<T> {
    let target: Int
    let delta: T
}

/// Runs `operations` random mutations over `replicaCount` replicas exchanging deltas through a
/// network that duplicates, reorders and (when `lossy`) drops them. Returns every state and delta
/// seen, for the algebraic checks, and checks convergence itself.
@discardableResult
func simulate<T: SerializableCRDT>(
    _ harness: CRDTHarness<T>, seed: UInt64, replicaCount: Int = 4, operations: Int = 150, lossy: Bool,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [T] {
    var rng = SplitMix64(seed: seed)
    var states = [T](repeating: T(), count: replicaCount)
    var clocks = (0..<replicaCount).map { LamportClock(replica: replicaIDs[$0]) }
    var network: [InFlight<T>] = []
    var pool: [T] = [T()]
    var dropped = 0

    for _ in 0..<operations {
        let actor = rng.below(replicaCount)
        let before = states[actor]
        if let delta = harness.randomOperation(&states[actor], &clocks[actor], &rng) {
            // Delta mutation agrees with full-state mutation: join(s, m_delta(s)) == m(s).
            #expect(before.joined(delta) == states[actor],
                    "\(harness.name): join(s, delta) != m(s) — seed \(seed)", sourceLocation: sourceLocation)
            pool.append(delta)
            for target in 0..<replicaCount where target != actor {
                if lossy && rng.chance(0.2) { dropped += 1; continue }
                network.append(InFlight(target: target, delta: delta))
                if rng.chance(0.15) { network.append(InFlight(target: target, delta: delta)) }
            }
        }
        // Deliver a few messages in random order.
        for _ in 0..<rng.below(3) where !network.isEmpty {
            let message = network.remove(at: rng.below(network.count))
            states[message.target].join(message.delta)
        }
        if rng.chance(0.1) { pool.append(states[rng.below(replicaCount)]) }
    }
    while !network.isEmpty {
        let message = network.remove(at: rng.below(network.count))
        states[message.target].join(message.delta)
    }
    pool.append(contentsOf: states)

    if dropped == 0 {
        for index in 1..<replicaCount {
            #expect(states[index] == states[0],
                    "\(harness.name): replicas diverged after every delta arrived — seed \(seed)", sourceLocation: sourceLocation)
        }
    }
    // Repair lost deltas by full-state anti-entropy in a random order.
    for _ in 0..<2 {
        for target in (0..<replicaCount).shuffled(using: &rng) {
            states[target].join(states[rng.below(replicaCount)])
            for source in 0..<replicaCount { states[target].join(states[source]) }
        }
    }
    for index in 1..<replicaCount {
        #expect(states[index] == states[0],
                "\(harness.name): replicas diverged after repair — seed \(seed)", sourceLocation: sourceLocation)
        #expect(states[index].digest == states[0].digest,
                "\(harness.name): equal states with different digests — seed \(seed)", sourceLocation: sourceLocation)
    }
    pool.append(states[0])
    return pool
}

/// Checks the join laws, the encoding round trip and digest agreement over a pool of states.
func checkLaws<T: SerializableCRDT>(
    _ name: String, pool: [T], seed: UInt64, samples: Int = 300,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    var rng = SplitMix64(seed: seed ^ 0x5EED)
    for state in pool {
        let bytes = state.serializedBytes()
        let decoded = try? T(serializedBytes: bytes)
        #expect(decoded == state, "\(name): decode(encode(s)) != s — seed \(seed)", sourceLocation: sourceLocation)
        #expect(decoded?.serializedBytes() == bytes, "\(name): encoding not canonical — seed \(seed)", sourceLocation: sourceLocation)
        #expect(state.joined(state) == state, "\(name): join not idempotent — seed \(seed)", sourceLocation: sourceLocation)
        #expect(state.joined(T()) == state, "\(name): bottom is not the identity — seed \(seed)", sourceLocation: sourceLocation)
    }
    for _ in 0..<samples {
        let a = pool[rng.below(pool.count)]
        let b = pool[rng.below(pool.count)]
        let c = pool[rng.below(pool.count)]
        #expect(a.joined(b) == b.joined(a), "\(name): join not commutative — seed \(seed)", sourceLocation: sourceLocation)
        #expect(a.joined(b).joined(c) == a.joined(b.joined(c)), "\(name): join not associative — seed \(seed)", sourceLocation: sourceLocation)
        let ab = a.joined(b)
        // `inflate` is the join, and reports exactly whether the state changed (the receive path of the
        // daemon decides persistence and forwarding with it, without a copy).
        var inflated = a
        let grew = inflated.inflate(with: b)
        #expect(inflated == ab, "\(name): inflate(with:) differs from join — seed \(seed)", sourceLocation: sourceLocation)
        #expect(grew == (ab != a), "\(name): inflate(with:) reported \(grew) but the state \(ab != a ? "changed" : "did not change") — seed \(seed)",
                sourceLocation: sourceLocation)
        #expect(ab.joined(a) == ab && ab.joined(b) == ab, "\(name): join is not an upper bound — seed \(seed)", sourceLocation: sourceLocation)
        #expect((a == b) == (a.digest == b.digest), "\(name): digest equality disagrees with state equality — seed \(seed)", sourceLocation: sourceLocation)
        #expect((a == b) == (a.serializedBytes() == b.serializedBytes()), "\(name): bytes equality disagrees with state equality — seed \(seed)", sourceLocation: sourceLocation)
    }
}

/// Runs the full property suite for one type: lossless and lossy convergence, then the laws.
func runProperties<T: SerializableCRDT>(_ harness: CRDTHarness<T>, sourceLocation: SourceLocation = #_sourceLocation) {
    for seed in propertySeeds {
        // Each simulation is its own universe (the same replica ids reissue the same dots), so states
        // of different simulations are never mixed.
        let lossless = simulate(harness, seed: seed, lossy: false, sourceLocation: sourceLocation)
        checkLaws(harness.name, pool: lossless, seed: seed, sourceLocation: sourceLocation)
        let lossy = simulate(harness, seed: seed &+ 1, lossy: true, sourceLocation: sourceLocation)
        checkLaws(harness.name, pool: lossy, seed: seed &+ 1, sourceLocation: sourceLocation)
    }
}

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }
