import TestSupport
import CRDT
import Testing

private let a = replicaIDs[0]
private let b = replicaIDs[1]
private let c = replicaIDs[2]

/// The canonical ways a wrong CRDT goes wrong, each as a named scenario.
@Suite("Traps")
struct TrapTests {
    @Test func concurrentAddAndRemoveOfOneElementAddWins() {
        var replicaA = AWSet<[UInt8]>()
        let firstAdd = replicaA.add(bytes("x"), replica: a)
        var replicaB = AWSet<[UInt8]>()
        replicaB.join(firstAdd)

        let reAdd = replicaA.add(bytes("x"), replica: a)   // concurrent with B's remove
        let remove = replicaB.remove(bytes("x"))
        #expect(!replicaB.contains(bytes("x")))

        replicaA.join(remove)
        replicaB.join(reAdd)
        #expect(replicaA.contains(bytes("x")), "the add B did not see must survive its remove")
        #expect(replicaA == replicaB)
    }

    @Test func staleRemoveDeltaArrivingAfterReAddChangesNothing() {
        var replicaA = AWSet<[UInt8]>()
        var replicaB = AWSet<[UInt8]>()
        var replicaC = AWSet<[UInt8]>()
        let add = replicaA.add(bytes("x"), replica: a)
        replicaB.join(add)
        let remove = replicaB.remove(bytes("x"))
        replicaA.join(remove)
        let reAdd = replicaA.add(bytes("x"), replica: a)

        // C gets the re-add first, then the old add and the stale remove, twice.
        for delta in [reAdd, add, remove, remove, add] { replicaC.join(delta) }
        replicaA.join(remove)
        replicaB.join(reAdd)
        replicaB.join(remove)
        for replica in [replicaA, replicaB, replicaC] {
            #expect(replica.contains(bytes("x")), "a stale remove must not delete a later add")
            #expect(replica == replicaA)
        }
    }

    @Test func elementAddedByTwoRemovedByThirdThatSawOne() {
        var replicaA = AWSet<String>()
        var replicaB = AWSet<String>()
        var replicaC = AWSet<String>()
        let addA = replicaA.add("x", replica: a)
        let addB = replicaB.add("x", replica: b)
        replicaC.join(addA)
        let removeC = replicaC.remove("x")

        var merged = replicaA
        for delta in [addB, removeC] { merged.join(delta) }
        #expect(merged.contains("x"), "B's add was not observed by C's remove, so x stays")
        #expect(merged.store.entries["x"]?.elements == [Dot(replica: b, counter: 1)],
                "only B's dot is left: C removed the dot it saw")
        var other = replicaC
        for delta in [addB, addA] { other.join(delta) }
        #expect(other == merged)
    }

    @Test func clearConcurrentWithAdd() {
        var replicaA = AWSet<String>()
        var replicaB = AWSet<String>()
        for element in ["x", "y"] { replicaB.join(replicaA.add(element, replica: a)) }
        let clear = replicaA.removeAll()
        let addZ = replicaB.add("z", replica: b)
        let addXAgain = replicaB.add("x", replica: b)
        replicaA.join(addZ)
        replicaA.join(addXAgain)
        replicaB.join(clear)
        #expect(replicaA.elements == ["x", "z"], "the clear removes only what it saw")
        #expect(replicaA == replicaB)
    }

    @Test func counterResetConcurrentWithIncrementKeepsExactlyTheIncrement() throws {
        var replicaA = ResettableCounter()
        var replicaB = ResettableCounter()
        var replicaC = ResettableCounter()
        replicaB.join(try replicaA.add(10, replica: a))
        replicaA.join(try replicaB.add(5, replica: b))
        replicaC.join(replicaA)
        #expect(replicaA.value == 15 && replicaC.value == 15)

        let resetA = replicaA.reset()
        let resetC = replicaC.reset()               // two concurrent resets of the same state
        let increment = try replicaB.add(3, replica: b)  // concurrent with both
        for delta in [resetA, resetC] { replicaB.join(delta) }
        for delta in [increment, resetC] { replicaA.join(delta) }
        replicaC.join(increment)
        replicaC.join(resetA)
        for replica in [replicaA, replicaB, replicaC] {
            #expect(replica.value == 3, "only the unobserved increment survives, once")
            #expect(replica == replicaA)
        }
    }

    @Test func lwwTiesAreBrokenByReplicaID() {
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var registerA = LWWRegister<String>()
        var registerB = LWWRegister<String>()
        let writeA = registerA.assign("from a", clock: &clockA)
        let writeB = registerB.assign("from b", clock: &clockB)
        #expect(writeA.timestamp?.counter == writeB.timestamp?.counter, "the scenario needs equal counters")
        registerA.join(writeB)
        registerB.join(writeA)
        let expected = a > b ? "from a" : "from b"
        #expect(registerA.value == expected && registerB.value == expected)

        var causalA = CausalLWWRegister<String>()
        var causalB = CausalLWWRegister<String>()
        var clockA2 = LamportClock(replica: a)
        var clockB2 = LamportClock(replica: b)
        let causalWriteA = causalA.assign("from a", clock: &clockA2)
        let causalWriteB = causalB.assign("from b", clock: &clockB2)
        causalA.join(causalWriteB)
        causalB.join(causalWriteA)
        #expect(causalA.value == expected && causalB.value == expected)
        #expect(causalA == causalB)
    }

    @Test func localWriteTimestampAlwaysIncreases() {
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var registerA = LWWRegister<UInt64>()
        var registerB = LWWRegister<UInt64>()
        for _ in 0..<50 { registerB.assign(1, clock: &clockB) }   // B races far ahead in logical time
        registerA.join(registerB)
        let before = registerA.timestamp
        let write = registerA.assign(2, clock: &clockA)           // A's own clock is still at 0
        #expect(write.timestamp! > before!, "a local write must be ordered after the value it replaces")
        #expect(registerA.value == 2)
        registerB.join(write)
        #expect(registerB.value == 2)

        var causal = CausalLWWRegister<UInt64>()
        var remote = CausalLWWRegister<UInt64>()
        var clockC = LamportClock(replica: c)
        for _ in 0..<20 { remote.assign(7, clock: &clockB) }
        causal.join(remote)
        var previous = causal.winner!.timestamp
        for value in 0..<10 as Range<UInt64> {
            causal.assign(value, clock: &clockC)
            #expect(causal.winner!.timestamp > previous)
            #expect(causal.value == value)
            previous = causal.winner!.timestamp
        }
    }

    @Test func removedMapKeyConcurrentWithNestedRegisterUpdate() {
        typealias Hash = ORMap<[UInt8], CausalLWWRegister<[UInt8]>>
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var replicaA = Hash()
        var replicaB = Hash()
        replicaB.join(replicaA.update(bytes("f")) { $0.assign(bytes("old"), clock: &clockA) })

        let remove = replicaA.remove(bytes("f"))
        let update = replicaB.update(bytes("f")) { $0.assign(bytes("new"), clock: &clockB) }
        replicaA.join(update)
        replicaB.join(remove)
        #expect(replicaA[bytes("f")]?.value == bytes("new"), "the concurrent write survives the removal")
        #expect(replicaA == replicaB)

        // Re-created after a removal that saw everything, the field starts from scratch.
        replicaB.join(replicaA.remove(bytes("f")))
        #expect(replicaA[bytes("f")] == nil && replicaB.count == 0)
        replicaA.join(replicaB.update(bytes("f")) { $0.assign(bytes("again"), clock: &clockB) })
        #expect(replicaA[bytes("f")]?.store.entries.count == 1)
        #expect(replicaA[bytes("f")]?.value == bytes("again"))
    }

    @Test func removedMapKeyConcurrentWithNestedSetUpdateDoesNotResurrect() {
        typealias Sets = ORMap<String, AWSet<String>>
        var replicaA = Sets()
        var replicaB = Sets()
        replicaB.join(replicaA.update("k") { $0.add("old", replica: a) })

        let remove = replicaA.remove("k")
        let update = replicaB.update("k") { $0.add("new", replica: b) }
        // Deliver in both orders, with a duplicate.
        var viaRemoveFirst = replicaA
        viaRemoveFirst.join(update)
        var viaUpdateFirst = Sets()
        for delta in [update, remove, update] { viaUpdateFirst.join(delta) }
        replicaB.join(remove)
        for replica in [viaRemoveFirst, viaUpdateFirst, replicaB] {
            #expect(replica["k"]?.elements == ["new"], "the key stays, holding only what the remover did not see")
        }
        #expect(viaRemoveFirst == replicaB)
    }

    @Test func mapRemoveAllConcurrentWithNestedUpdate() {
        typealias Hash = ORMap<String, CausalLWWRegister<String>>
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var replicaA = Hash()
        var replicaB = Hash()
        for field in ["f", "g", "h"] { replicaB.join(replicaA.update(field) { $0.assign("v", clock: &clockA) }) }
        let clear = replicaA.removeAll()
        let update = replicaB.update("g") { $0.assign("w", clock: &clockB) }
        replicaA.join(update)
        replicaB.join(clear)
        #expect(replicaA.keys.sorted() == ["g"])
        #expect(replicaA["g"]?.value == "w")
        #expect(replicaA.entries.map { "\($0.key)=\($0.value.value ?? "")" } == ["g=w"])
        #expect(replicaA == replicaB)
    }

    @Test func concurrentEnableWinsOverDisable() {
        var replicaA = EWFlag()
        var replicaB = EWFlag()
        replicaB.join(replicaA.enable(replica: a))
        let disable = replicaA.disable()
        let enable = replicaB.enable(replica: b)
        replicaA.join(enable)
        replicaB.join(disable)
        #expect(replicaA.isEnabled && replicaB.isEnabled)
        #expect(replicaA == replicaB)
        // A disable that saw the enable does win.
        replicaA.join(replicaB.disable())
        #expect(!replicaA.isEnabled)
    }

    @Test func concurrentMultiValueWritesAreAllKeptUntilOverwritten() {
        var replicaA = MVRegister<String>()
        var replicaB = MVRegister<String>()
        let writeA = replicaA.assign("a", replica: a)
        let writeB = replicaB.assign("b", replica: b)
        replicaA.join(writeB)
        replicaB.join(writeA)
        #expect(Set(replicaA.values) == ["a", "b"] && replicaA.values == replicaB.values)
        replicaB.join(replicaA.assign("c", replica: a))
        #expect(replicaA.values == ["c"] && replicaB.values == ["c"])
    }

    @Test func twoPhaseSetRemoveIsForever() {
        var replicaA = TwoPhaseSet<String>()
        var replicaB = TwoPhaseSet<String>()
        replicaB.join(replicaA.add("x"))
        let remove = replicaB.remove("x")
        let reAdd = replicaA.add("x")
        replicaA.join(remove)
        replicaB.join(reAdd)
        #expect(!replicaA.contains("x") && !replicaB.contains("x"), "remove wins and is permanent")
        #expect(replicaA == replicaB)
    }

    @Test(arguments: propertySeeds)
    func boundedCounterNeverBelowZero(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let count = 4
        var states = [BoundedCounter](repeating: BoundedCounter(), count: count)
        var network: [InFlight<BoundedCounter>] = []
        var refused = 0
        // Rights start at replica 0 only; everyone else must get them by transfer.
        network += (1..<count).map { InFlight(target: $0, delta: try! states[0].increment(by: 20, replica: replicaIDs[0])) }

        for step in 0..<2_000 {
            let actor = rng.below(count)
            let me = replicaIDs[actor]
            var delta: BoundedCounter? = nil
            do {
                switch rng.below(10) {
                case 0: delta = try states[actor].increment(by: UInt64(rng.below(3)), replica: me)
                case 1...5: delta = try states[actor].decrement(by: UInt64(rng.below(4) + 1), replica: me)
                default:
                    let target = (actor + 1 + rng.below(count - 1)) % count
                    delta = try states[actor].transfer(rights: UInt64(rng.below(5) + 1), from: me, to: replicaIDs[target])
                }
            } catch {
                refused += 1
            }
            if let delta {
                for target in 0..<count where target != actor && !rng.chance(0.1) {
                    network.append(InFlight(target: target, delta: delta))
                }
            }
            for _ in 0..<rng.below(3) where !network.isEmpty {
                let message = network.remove(at: rng.below(network.count))
                states[message.target].join(message.delta)
            }
            // The invariant, at every replica and for the join of all of them, at every step.
            let everything = states.reduce(BoundedCounter()) { $0.joined($1) }
            for state in states + [everything] {
                let increments = state.rights.filter { $0.key.from == $0.key.to }.values.reduce(0, +)
                let decrements = state.decrements.values.reduce(0, +)
                #expect(increments >= decrements, "value below zero at step \(step) — seed \(seed)")
            }
            let totalRights = replicaIDs.prefix(count).map { everything.localRights(of: $0) }.reduce(0, +)
            #expect(totalRights == everything.value, "rights must add up to the value at step \(step) — seed \(seed)")
        }
        #expect(refused > 0, "the scenario must exercise refused decrements — seed \(seed)")
        while !network.isEmpty { states[0].join(network.removeLast().delta) }
        for state in states.dropFirst() { states[0].join(state) }
        #expect(states[0].value < 1_000_000, "value wrapped below zero — seed \(seed)")
    }

    @Test func boundedCounterRefusesToSpendMissingRights() throws {
        var counter = BoundedCounter()
        try counter.increment(by: 5, replica: a)
        #expect(throws: CRDTMutationError.insufficientRights(requested: 1, available: 0)) {
            try counter.decrement(by: 1, replica: b)
        }
        let transfer = try counter.transfer(rights: 3, from: a, to: b)
        var atB = BoundedCounter()
        atB.join(transfer)
        #expect(atB.localRights(of: b) == 3 && atB.localRights(of: a) == 2)
        try atB.decrement(by: 3, replica: b)
        #expect(throws: CRDTMutationError.insufficientRights(requested: 1, available: 0)) {
            try atB.decrement(by: 1, replica: b)
        }
        #expect(throws: CRDTMutationError.transferToSelf) { try counter.transfer(rights: 1, from: a, to: a) }
        #expect(atB.value == 2)
    }
}
