import TestSupport
import CRDT
import Testing

/// Seeded property tests for every type: join laws, delta == full mutation, convergence of N
/// replicas under duplicated, reordered and lost-then-repaired deltas, encoding round trip, digests.
@Suite("Properties")
struct PropertyTests {
    @Test func gCounter() { runProperties(Harnesses.gCounter) }

    @Test func pnCounter() { runProperties(Harnesses.pnCounter) }

    @Test func resettableCounter() { runProperties(Harnesses.resettableCounter) }

    @Test func gSet() { runProperties(Harnesses.gSet) }

    @Test func twoPhaseSet() { runProperties(Harnesses.twoPhaseSet) }

    @Test func awSet() { runProperties(Harnesses.awSet) }

    @Test func lwwRegister() { runProperties(Harnesses.lwwRegister) }

    @Test func mvRegister() { runProperties(Harnesses.mvRegister) }

    @Test func causalLWWRegister() { runProperties(Harnesses.causalLWWRegister) }

    @Test func ewFlag() { runProperties(Harnesses.ewFlag) }

    @Test func orMapOfRegisters() { runProperties(Harnesses.orMapOfRegisters) }

    @Test func orMapOfSets() { runProperties(Harnesses.orMapOfSets) }

    @Test func nestedORMaps() { runProperties(Harnesses.nestedORMaps) }

    @Test func orMapOfFlags() { runProperties(Harnesses.orMapOfFlags) }

    @Test func boundedCounter() { runProperties(Harnesses.boundedCounter) }

    @Test func countingRegister() { runProperties(Harnesses.countingRegister) }

    @Test func countingRegisterOfScores() { runProperties(Harnesses.countingRegisterOfScores) }

    @Test func orMapOfCountingRegisters() { runProperties(Harnesses.orMapOfCountingRegisters) }

    @Test func hyperLogLog() { runProperties(Harnesses.hyperLogLog) }

    @Test func expiryRegister() { runProperties(Harnesses.expiryRegister) }

    @Test func sortedSet() { runProperties(Harnesses.sortedSet) }

    @Test func replicatedList() { runProperties(Harnesses.replicatedList) }
}

/// One random-operation generator per CRDT type (and per nesting the daemon relies on), shared by
/// the property tests and the decoder fuzzing.
enum Harnesses {
    static var gCounter: CRDTHarness<GCounter> {
        CRDTHarness<GCounter>(name: "GCounter") { state, clock, rng in
            try? state.increment(by: UInt64(rng.below(5)), replica: clock.replica)
        }
    }

    static var pnCounter: CRDTHarness<PNCounter> {
        CRDTHarness<PNCounter>(name: "PNCounter") { state, clock, rng in
            try? state.add(Int64(rng.below(11) - 5), replica: clock.replica)
        }
    }

    static var resettableCounter: CRDTHarness<ResettableCounter> {
        CRDTHarness<ResettableCounter>(name: "ResettableCounter") { state, clock, rng in
            rng.chance(0.2) ? state.reset() : try? state.add(Int64(rng.below(11) - 5), replica: clock.replica)
        }
    }

    static var gSet: CRDTHarness<GSet<UInt64>> {
        CRDTHarness<GSet<UInt64>>(name: "GSet") { state, _, rng in
            state.add(UInt64(rng.below(12)))
        }
    }

    static var twoPhaseSet: CRDTHarness<TwoPhaseSet<String>> {
        CRDTHarness<TwoPhaseSet<String>>(name: "TwoPhaseSet") { state, _, rng in
            let element = "e\(rng.below(10))"
            return rng.chance(0.3) ? state.remove(element) : state.add(element)
        }
    }

    static var awSet: CRDTHarness<AWSet<[UInt8]>> {
        CRDTHarness<AWSet<[UInt8]>>(name: "AWSet") { state, clock, rng in
            let element = bytes("k\(rng.below(8))")
            switch rng.below(10) {
            case 0: return state.removeAll()
            case 1...3: return state.remove(element)
            default: return state.add(element, replica: clock.replica)
            }
        }
    }

    static var lwwRegister: CRDTHarness<LWWRegister<[UInt8]>> {
        CRDTHarness<LWWRegister<[UInt8]>>(name: "LWWRegister") { state, clock, rng in
            state.assign(rng.chance(0.2) ? nil : bytes("v\(rng.below(6))"), clock: &clock)
        }
    }

    static var mvRegister: CRDTHarness<MVRegister<UInt64>> {
        CRDTHarness<MVRegister<UInt64>>(name: "MVRegister") { state, clock, rng in
            rng.chance(0.2) ? state.clear() : state.assign(UInt64(rng.below(100)), replica: clock.replica)
        }
    }

    static var causalLWWRegister: CRDTHarness<CausalLWWRegister<[UInt8]>> {
        CRDTHarness<CausalLWWRegister<[UInt8]>>(name: "CausalLWWRegister") { state, clock, rng in
            rng.chance(0.2) ? state.remove() : state.assign(bytes("v\(rng.below(6))"), clock: &clock)
        }
    }

    static var ewFlag: CRDTHarness<EWFlag> {
        CRDTHarness<EWFlag>(name: "EWFlag") { state, clock, rng in
            rng.chance(0.4) ? state.disable() : state.enable(replica: clock.replica)
        }
    }

    static var orMapOfRegisters: CRDTHarness<ORMap<[UInt8], CausalLWWRegister<[UInt8]>>> {
        CRDTHarness<ORMap<[UInt8], CausalLWWRegister<[UInt8]>>>(name: "ORMap<field, CausalLWWRegister>") { state, clock, rng in
            let field = bytes("f\(rng.below(6))")
            switch rng.below(12) {
            case 0: return state.removeAll()
            case 1...3: return state.remove(field)
            default:
                let value = bytes("v\(rng.below(9))")
                return state.update(field) { $0.assign(value, clock: &clock) }
            }
        }
    }

    static var orMapOfSets: CRDTHarness<ORMap<UInt64, AWSet<UInt64>>> {
        CRDTHarness<ORMap<UInt64, AWSet<UInt64>>>(name: "ORMap<key, AWSet>") { state, clock, rng in
            let key = UInt64(rng.below(4))
            let element = UInt64(rng.below(5))
            switch rng.below(10) {
            case 0: return state.removeAll()
            case 1, 2: return state.remove(key)
            case 3, 4: return state.update(key) { $0.remove(element) }
            default: return state.update(key) { $0.add(element, replica: clock.replica) }
            }
        }
    }

    static var nestedORMaps: CRDTHarness<ORMap<String, NestedInner>> {
        CRDTHarness<ORMap<String, NestedInner>>(name: "ORMap<key, ORMap<key, MVRegister>>") { state, clock, rng in
            let outer = "o\(rng.below(3))"
            let inner = "i\(rng.below(3))"
            switch rng.below(10) {
            case 0: return state.remove(outer)
            case 1: return state.update(outer) { $0.remove(inner) }
            case 2: return state.update(outer) { map in map.update(inner) { $0.clear() } }
            default:
                let value = Int64(rng.below(200) - 100)
                return state.update(outer) { map in map.update(inner) { $0.assign(value, replica: clock.replica) } }
            }
        }
    }

    static var orMapOfFlags: CRDTHarness<ORMap<UInt64, EWFlag>> {
        CRDTHarness<ORMap<UInt64, EWFlag>>(name: "ORMap<key, EWFlag>") { state, clock, rng in
            let key = UInt64(rng.below(5))
            switch rng.below(6) {
            case 0: return state.remove(key)
            case 1: return state.update(key) { $0.disable() }
            default: return state.update(key) { $0.enable(replica: clock.replica) }
            }
        }
    }

    static var boundedCounter: CRDTHarness<BoundedCounter> {
        CRDTHarness<BoundedCounter>(name: "BoundedCounter") { state, clock, rng in
            let me = clock.replica
            switch rng.below(10) {
            case 0...2: return try? state.increment(by: UInt64(rng.below(4)), replica: me)
            case 3...6: return try? state.decrement(by: UInt64(rng.below(3) + 1), replica: me)
            default:
                let target = replicaIDs[rng.below(4)]
                return try? state.transfer(rights: UInt64(rng.below(3) + 1), from: me, to: target)
            }
        }
    }
}

extension Harnesses {
    static var countingRegister: CRDTHarness<CountingRegister<[UInt8], Int64>> {
        CRDTHarness<CountingRegister<[UInt8], Int64>>(name: "CountingRegister<bytes, Int64>") { state, clock, rng in
            switch rng.below(10) {
            case 0: return state.remove()
            case 1...3: return state.assign(bytes("\(rng.below(50))"), clock: &clock)
            default: return try? state.increment(by: Int64(rng.below(21) - 10), replica: clock.replica)
            }
        }
    }

    static var countingRegisterOfScores: CRDTHarness<CountingRegister<Double, Double>> {
        CRDTHarness<CountingRegister<Double, Double>>(name: "CountingRegister<Double, Double>") { state, clock, rng in
            switch rng.below(10) {
            case 0: return state.remove()
            case 1...3: return state.assign(Double(rng.below(100)) / 4 - 10, clock: &clock)
            default: return try? state.increment(by: Double(rng.below(40)) / 8 - 2.5, replica: clock.replica)
            }
        }
    }

    /// A Redis hash under HSET, HINCRBY, HDEL and DEL.
    static var orMapOfCountingRegisters: CRDTHarness<ORMap<[UInt8], CountingRegister<[UInt8], Int64>>> {
        CRDTHarness<ORMap<[UInt8], CountingRegister<[UInt8], Int64>>>(name: "ORMap<field, CountingRegister>") { state, clock, rng in
            let field = bytes("f\(rng.below(5))")
            switch rng.below(12) {
            case 0: return state.removeAll()
            case 1, 2: return state.remove(field)
            case 3, 4:
                let value = bytes("\(rng.below(9))")
                return state.update(field) { $0.assign(value, clock: &clock) }
            default:
                let amount = Int64(rng.below(9) - 4)
                return try? state.update(field) { (register: inout CountingRegister<[UInt8], Int64>) throws(CRDTMutationError) in
                    try register.increment(by: amount, replica: clock.replica)
                }
            }
        }
    }
}

extension Harnesses {
    static var hyperLogLog: CRDTHarness<HyperLogLog> {
        CRDTHarness<HyperLogLog>(name: "HyperLogLog") { state, _, rng in
            if rng.chance(0.3) {
                return state.add(contentsOf: (0..<rng.below(6)).map { _ in bytes("e\(rng.below(2_000))") })
            }
            return state.add(bytes("e\(rng.below(2_000))"))
        }
    }
}

extension Harnesses {
    static var expiryRegister: CRDTHarness<ExpiryRegister> {
        CRDTHarness<ExpiryRegister>(name: "ExpiryRegister") { state, clock, rng in
            switch rng.below(10) {
            case 0, 1: return state.clear()
            case 2: return state.persist(replica: clock.replica)
            default: return state.expire(atMilliseconds: 1_700_000_000_000 + UInt64(rng.below(100_000)), replica: clock.replica)
            }
        }
    }
}

extension Harnesses {
    static var sortedSet: CRDTHarness<SortedSet> {
        CRDTHarness<SortedSet>(name: "SortedSet") { state, clock, rng in
            let member = bytes("m\(rng.below(8))")
            switch rng.below(12) {
            case 0: return state.removeAll()
            case 1, 2: return state.remove(member)
            case 3...6: return state.add(member, score: Double(rng.below(20)) - 5, clock: &clock)
            default: return try? state.increment(member, by: Double(rng.below(9)) / 2 - 2, replica: clock.replica)
            }
        }
    }
}

extension Harnesses {
    static var replicatedList: CRDTHarness<ReplicatedList<[UInt8]>> {
        CRDTHarness<ReplicatedList<[UInt8]>>(name: "ReplicatedList") { state, clock, rng in
            let value = bytes("v\(rng.below(20))")
            switch rng.below(14) {
            case 0: return state.removeAll()
            case 1...3: return state.remove(at: rng.below(max(1, state.count)))
            case 4, 5: return state.set(value, at: rng.below(max(1, state.count)), clock: &clock)
            case 6...8: return state.insert(value, at: 0, clock: &clock)
            case 9...11: return state.insert(value, at: state.count, clock: &clock)
            default: return state.insert(value, at: rng.below(state.count + 1), clock: &clock)
            }
        }
    }
}

typealias NestedInner = ORMap<String, MVRegister<Int64>>
